/* Validation of OCI repository names and tags (see names.h). */
#include "common/compat.h"

#include "node/oci/names.h"

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

/* see names.h */
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

/* see names.h */
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
