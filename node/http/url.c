/* URL pieces: percent-decoding and query parameters (see url.h). */
#include "common/compat.h"

#include "common/common.h"
#include "node/http/url.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* see url.h */
int node_url_decode(const char *s, size_t n, char **out)
{
    char *d = at_malloc(n + 1);
    size_t j = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi;
            int lo;
            if (i + 2 >= n) {
                free(d);
                return AT_EINVAL;
            }
            hi = hexval(s[i + 1]);
            lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(d);
                return AT_EINVAL;
            }
            d[j++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            d[j++] = s[i];
        }
    }
    d[j] = '\0';
    *out = d;
    return 0;
}

/* see url.h */
int node_query_get(const char *query, const char *key, char **out)
{
    size_t klen = strlen(key);
    const char *p = query;

    while (p != NULL && *p != '\0') {
        const char *amp = strchr(p, '&');
        size_t len = amp != NULL ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        size_t nlen = eq != NULL ? (size_t)(eq - p) : len;

        if (nlen == klen && memcmp(p, key, klen) == 0) {
            if (eq == NULL) {
                *out = at_strdup("");
                return 0;
            }
            return node_url_decode(eq + 1, len - nlen - 1, out);
        }
        p = amp != NULL ? amp + 1 : NULL;
    }
    return AT_ENOTFOUND;
}
