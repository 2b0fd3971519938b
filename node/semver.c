/* Semantic versions and ranges: see semver.h. */
#include "common/compat.h"

#include <ctype.h>
#include <stdlib.h>

#include "common/common.h"
#include "node/semver.h"

static bool part(const char **p, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    if (!isdigit((unsigned char)*s))
        return false;
    while (isdigit((unsigned char)*s)) {
        if (v > 100000000000ULL)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
        s++;
    }
    *p = s;
    *out = v;
    return true;
}

/* see semver.h */
int node_semver_parse(const char *s, struct node_semver *out)
{
    memset(out, 0, sizeof(*out));
    if (*s == 'v' || *s == 'V')
        s++;
    for (int i = 0; i < 3; i++) {
        if (!part(&s, &out->v[i]))
            return AT_EINVAL;
        if (*s != '.')
            break;
        if (i < 2)
            s++;
    }
    if (*s == '-') {
        size_t n = strcspn(s + 1, "+");
        if (n == 0 || n >= sizeof(out->pre))
            return AT_EINVAL;
        for (size_t i = 0; i < n; i++) {
            char c = s[1 + i];
            if (!isalnum((unsigned char)c) && c != '.' && c != '-')
                return AT_EINVAL;
        }
        memcpy(out->pre, s + 1, n);
        out->pre[n] = '\0';
        s += 1 + n;
    }
    if (*s == '+') {
        s++;
        if (*s == '\0')
            return AT_EINVAL;
        for (; *s != '\0'; s++)
            if (!isalnum((unsigned char)*s) && *s != '.' && *s != '-')
                return AT_EINVAL;
    }
    return *s == '\0' ? 0 : AT_EINVAL;
}

/* Pre-release identifiers, dot-separated, as semver 2.0.0 orders them. */
static int pre_cmp(const char *a, const char *b)
{
    if (a[0] == '\0' || b[0] == '\0')
        return (a[0] == '\0') - (b[0] == '\0'); /* a release is higher */
    while (*a != '\0' && *b != '\0') {
        size_t na = strcspn(a, "."), nb = strcspn(b, ".");
        bool da = strspn(a, "0123456789") == na;
        bool db = strspn(b, "0123456789") == nb;
        int c;
        if (da && db)
            c = na != nb ? (na < nb ? -1 : 1) : strncmp(a, b, na);
        else if (da != db)
            c = da ? -1 : 1; /* numbers are lower */
        else {
            c = strncmp(a, b, AT_MIN(na, nb));
            if (c == 0 && na != nb)
                c = na < nb ? -1 : 1;
        }
        if (c != 0)
            return c < 0 ? -1 : 1;
        a += na + (a[na] == '.');
        b += nb + (b[nb] == '.');
    }
    return (*a != '\0') - (*b != '\0'); /* more identifiers: higher */
}

/* see semver.h */
int node_semver_cmp(const struct node_semver *a, const struct node_semver *b)
{
    for (int i = 0; i < 3; i++)
        if (a->v[i] != b->v[i])
            return a->v[i] < b->v[i] ? -1 : 1;
    return pre_cmp(a->pre, b->pre);
}

static bool add(struct node_semver_range *r,
                int op,
                const struct node_semver *v)
{
    if (r->n == NODE_SEMVER_TERMS_MAX)
        return false;
    r->t[r->n].op = op;
    r->t[r->n].v = *v;
    r->t[r->n].ends_set = false;
    r->n++;
    return true;
}

/* One comparator word w into r. */
static bool comparator(struct node_semver_range *r, const char *w)
{
    struct node_semver v, hi;
    int op = '=';

    if (w[0] == '^' || w[0] == '~') {
        if (node_semver_parse(w + 1, &v) != 0)
            return false;
        memset(&hi, 0, sizeof(hi));
        if (w[0] == '~' || (v.v[0] == 0 && v.v[1] != 0)) {
            hi.v[0] = v.v[0];
            hi.v[1] = v.v[1] + 1;
        } else if (v.v[0] == 0 && v.v[1] == 0) {
            hi.v[2] = v.v[2] + 1;
        } else {
            hi.v[0] = v.v[0] + 1;
        }
        return add(r, 'g', &v) && add(r, '<', &hi);
    }
    if (strncmp(w, ">=", 2) == 0) {
        op = 'g';
        w += 2;
    } else if (strncmp(w, "<=", 2) == 0) {
        op = 'l';
        w += 2;
    } else if (w[0] == '>' || w[0] == '<' || w[0] == '=') {
        op = w[0];
        w++;
    }
    return node_semver_parse(w, &v) == 0 && add(r, op, &v);
}

/* see semver.h */
int node_semver_range_parse(const char *s,
                            struct node_semver_range *out,
                            char *errmsg)
{
    char word[96];
    const char *p = s;

    memset(out, 0, sizeof(*out));
    if (strlen(s) > NODE_SEMVER_RANGE_MAX)
        goto bad;
    for (;;) {
        while (*p == ' ')
            p++;
        if (*p == '\0' || strncmp(p, "||", 2) == 0) {
            if (out->n == 0 || out->t[out->n - 1].ends_set)
                goto bad; /* an empty set */
            out->t[out->n - 1].ends_set = true;
            if (*p == '\0')
                return 0;
            p += 2;
            continue;
        }
        size_t n = strcspn(p, " |");
        if (n >= sizeof(word))
            goto bad;
        memcpy(word, p, n);
        word[n] = '\0';
        if (!comparator(out, word))
            goto bad;
        p += n;
    }
bad:
    at_errmsg_printf(errmsg,
                     "semver range '%.60s': want comparators such as "
                     ">=1.2.0 <2.0.0, ^1.2, ~1.2.3, joined by ||",
                     s);
    return AT_EINVAL;
}

/* see semver.h */
bool node_semver_range_has(const struct node_semver_range *r, const char *tag)
{
    struct node_semver v;
    bool ok = true;

    if (node_semver_parse(tag, &v) != 0)
        return false;
    for (size_t i = 0; i < r->n; i++) {
        int c = node_semver_cmp(&v, &r->t[i].v);
        bool holds = r->t[i].op == '<'   ? c < 0
                     : r->t[i].op == 'l' ? c <= 0
                     : r->t[i].op == '>' ? c > 0
                     : r->t[i].op == 'g' ? c >= 0
                                         : c == 0;
        ok = ok && holds;
        if (r->t[i].ends_set) {
            if (ok)
                return true;
            ok = true;
        }
    }
    return false;
}
