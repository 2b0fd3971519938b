/* Base64 (RFC 4648): the standard alphabet with '=' padding (Basic
 * credentials) and the URL alphabet without padding (JWTs, secrets). */
#ifndef AT_BASE64_H
#define AT_BASE64_H

#include <stddef.h>
#include <stdint.h>

struct at_buf;

enum at_base64 {
    AT_BASE64_STD, /* A-Z a-z 0-9 + /, padded with '=' */
    AT_BASE64_URL, /* A-Z a-z 0-9 - _, no padding */
};

/* Append the encoding of p[0..n) to b. 0, or AT_ETOOBIG (b's bound). */
int at_base64_encode(const void *p,
                     size_t n,
                     enum at_base64 a,
                     struct at_buf *b);

/* Decode s[0..n) into out (size bytes): the length, or -1 for a character
 * outside the alphabet, padding where there may be none (any with URL;
 * with STD only at the end, at most two), a length no encoding has,
 * non-zero bits left in the last character (each value has one
 * spelling), or a result over size. */
long at_base64_decode(const char *s,
                      size_t n,
                      enum at_base64 a,
                      uint8_t *out,
                      size_t size);

#endif /* AT_BASE64_H */
