/* Basic credentials (RFC 7617) out of an Authorization header, and new
 * robot secrets. */
#include "common/compat.h"

#include <strings.h>
#include <sys/random.h>

#include "common/base64.h"
#include "node/auth/auth.h"

#define BASIC_VALUE_MAX 1024 /* longer headers are no Basic we accept */

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
    len = at_base64_decode(p, n, AT_BASE64_STD, raw, sizeof(raw));
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
    uint8_t raw[32];
    struct at_buf b;
    size_t got = 0;

    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        AT_ASSERT(n > 0); /* getrandom on Linux >= 3.17 does not fail */
        got += (size_t)n;
    }
    /* 32 bytes are 256 bits: 43 base64url characters */
    at_buf_init(&b, NODE_AUTH_SECRET_SIZE + 4);
    AT_ASSERT(at_base64_encode(raw, sizeof(raw), AT_BASE64_URL, &b) == 0);
    AT_ASSERT(b.len == NODE_AUTH_SECRET_SIZE - 1);
    memcpy(out, b.data, b.len);
    out[b.len] = '\0';
    explicit_bzero(b.data, b.len);
    at_buf_release(&b);
    explicit_bzero(raw, sizeof(raw));
}
