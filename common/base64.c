/* Base64 in both alphabets (see base64.h). */
#include "common/compat.h"

#include "common/base64.h"
#include "common/buf.h"

static const char alpha[2][65] = {
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
};

/* see base64.h */
int at_base64_encode(const void *p,
                     size_t n,
                     enum at_base64 a,
                     struct at_buf *b)
{
    const uint8_t *s = p;
    const char *abc = alpha[a == AT_BASE64_URL];
    char out[4];
    int rv = 0;

    for (size_t i = 0; rv == 0 && i < n; i += 3) {
        size_t k = n - i >= 3 ? 3 : n - i;
        uint32_t v = (uint32_t)s[i] << 16;
        if (k > 1)
            v |= (uint32_t)s[i + 1] << 8;
        if (k > 2)
            v |= s[i + 2];
        out[0] = abc[(v >> 18) & 63];
        out[1] = abc[(v >> 12) & 63];
        out[2] = k > 1 ? abc[(v >> 6) & 63] : '=';
        out[3] = k > 2 ? abc[v & 63] : '=';
        /* URL: no padding */
        rv = at_buf_append(b, out, a == AT_BASE64_URL ? k + 1 : 4);
    }
    explicit_bzero(out, sizeof(out));
    return rv;
}

static int value(char c, enum at_base64 a)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (a == AT_BASE64_URL ? '-' : '+'))
        return 62;
    if (c == (a == AT_BASE64_URL ? '_' : '/'))
        return 63;
    return -1;
}

/* see base64.h */
long at_base64_decode(const char *s,
                      size_t n,
                      enum at_base64 a,
                      uint8_t *out,
                      size_t size)
{
    uint32_t acc = 0;
    size_t bits = 0, len = 0, pad = 0;

    if (a == AT_BASE64_STD) {
        while (n > 0 && s[n - 1] == '=' && pad < 2) {
            n--;
            pad++;
        }
        if (pad > 0 && (n + pad) % 4 != 0)
            return -1;
    }
    if (n % 4 == 1)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int v = value(s[i], a);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (len >= size)
                return -1;
            out[len++] = (uint8_t)(acc >> bits);
        }
        acc &= (1u << bits) - 1;
    }
    /* the unused bits of the last character are zero */
    if (acc != 0)
        return -1;
    return (long)len;
}
