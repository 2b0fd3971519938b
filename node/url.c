/* URL decoding, query parameters, and validation of names and tags. */
#include "common/compat.h"

#include "common/common.h"
#include "node/url.h"

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

static bool lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)* */
static bool component_valid(const char *s, size_t n)
{
    size_t i = 0;

    if (n == 0 || !lower_alnum(s[0]) || !lower_alnum(s[n - 1]))
        return false;
    while (i < n) {
        if (lower_alnum(s[i])) {
            i++;
            continue;
        }
        /* a separator run: ".", "_", "__", or one or more "-" */
        if (s[i] == '.') {
            i++;
        } else if (s[i] == '_') {
            i++;
            if (i < n && s[i] == '_')
                i++;
        } else if (s[i] == '-') {
            while (i < n && s[i] == '-')
                i++;
        } else {
            return false;
        }
        if (i >= n || !lower_alnum(s[i]))
            return false;
    }
    return true;
}

/* see url.h */
bool node_name_valid(const char *s, size_t n)
{
    size_t start = 0;

    if (n == 0 || n > NODE_NAME_MAX)
        return false;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '/') {
            if (!component_valid(s + start, i - start))
                return false;
            start = i + 1;
        }
    }
    return true;
}

/* see url.h */
bool node_tag_valid(const char *s, size_t n)
{
    if (n == 0 || n > NODE_TAG_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '_' ||
                  (i > 0 && (c == '.' || c == '-'));
        if (!ok)
            return false;
    }
    return true;
}
