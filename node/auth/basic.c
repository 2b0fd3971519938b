/* Basic credentials (RFC 7617) out of an Authorization header, and new
 * robot secrets: the two places base64 appears in authentication. */
#include "common/compat.h"

#include <strings.h>
#include <sys/random.h>

#include "node/auth/auth.h"

#define BASIC_VALUE_MAX 1024 /* longer headers are no Basic we accept */

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Standard base64 with optional padding into out (size bytes); the
 * decoded length, or -1. */
static long b64_decode(const char *s, size_t n, uint8_t *out, size_t size)
{
    uint32_t acc = 0;
    size_t bits = 0, len = 0;

    while (n > 0 && s[n - 1] == '=')
        n--;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value(s[i]);
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
    }
    /* the bits left over must be zero padding of the last byte */
    if (bits >= 6 || (acc & ((1u << bits) - 1)) != 0)
        return -1;
    return (long)len;
}

/* see auth.h */
int node_auth_basic_parse(const char *value,
                          char *user,
                          size_t usize,
                          char *password,
                          size_t psize)
{
    uint8_t raw[BASIC_VALUE_MAX];
    const char *p;
    size_t n, ulen;
    long len;
    uint8_t *colon;
    int rv = AT_EINVAL;

    if (value == NULL || strncasecmp(value, "Basic ", 6) != 0)
        return AT_EINVAL;
    p = value + 6;
    while (*p == ' ')
        p++;
    n = strlen(p);
    while (n > 0 && p[n - 1] == ' ')
        n--;
    if (n == 0 || n > BASIC_VALUE_MAX)
        return AT_EINVAL;
    len = b64_decode(p, n, raw, sizeof(raw));
    if (len <= 0 || memchr(raw, '\0', (size_t)len) != NULL)
        goto out;
    colon = memchr(raw, ':', (size_t)len);
    if (colon == NULL)
        goto out;
    ulen = (size_t)(colon - raw);
    if (ulen >= usize || (size_t)len - ulen - 1 >= psize)
        goto out;
    memcpy(user, raw, ulen);
    user[ulen] = '\0';
    memcpy(password, colon + 1, (size_t)len - ulen - 1);
    password[(size_t)len - ulen - 1] = '\0';
    rv = 0;
out:
    explicit_bzero(raw, sizeof(raw));
    return rv;
}

/* see auth.h */
void node_auth_secret_new(char out[NODE_AUTH_SECRET_SIZE])
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t raw[33]; /* 32 random bytes and a zero to end the last group */
    size_t got = 0, o = 0;

    while (got < 32) {
        ssize_t n = getrandom(raw + got, 32 - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        AT_ASSERT(n > 0); /* getrandom on Linux >= 3.17 does not fail */
        got += (size_t)n;
    }
    raw[32] = 0;
    /* 32 bytes are 256 bits: 43 base64 characters, the last one 4 bits */
    for (size_t i = 0; i < 33; i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16 |
                     (uint32_t)(i + 1 < 33 ? raw[i + 1] : 0) << 8 |
                     (uint32_t)(i + 2 < 33 ? raw[i + 2] : 0);
        for (int k = 18; k >= 0 && o < NODE_AUTH_SECRET_SIZE - 1; k -= 6)
            out[o++] = alphabet[(v >> k) & 63];
    }
    out[o] = '\0';
    explicit_bzero(raw, sizeof(raw));
}
