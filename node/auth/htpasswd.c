/* The htpasswd table: users kept in a file on this node (a Kubernetes
 * Secret, for instance), bcrypt entries only, as distribution and zot
 * accept them. Parsing is strict and names the first bad line, so a typo
 * stops the start instead of locking a user out in silence. */
#include "common/compat.h"

#include "node/auth/internal.h"

#define HTPASSWD_FILE_MAX  ((size_t)16 << 20)
#define HTPASSWD_USERS_MAX 100000
#define BCRYPT_LEN         60 /* "$2y$NN$" + 22 salt + 31 hash characters */

struct node_auth_htpasswd {
    struct at_map users; /* name -> owned hash */
};

static void table_free(struct node_auth_htpasswd *h)
{
    const char *k;
    void *v;

    if (h == NULL)
        return;
    for (size_t i = 0; at_map_next(&h->users, &i, &k, &v);)
        at_free(v);
    at_map_release(&h->users);
    at_free(h);
}

/* see auth.h */
void node_auth_htpasswd_free(struct node_auth_htpasswd *h)
{
    table_free(h);
}

static bool bcrypt_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '/';
}

/* "$2y$" or "$2b$", a two-digit cost 04..31, "$", 53 characters. */
static bool bcrypt_ok(const char *h, size_t n)
{
    if (n != BCRYPT_LEN || h[0] != '$' || h[1] != '2' ||
        (h[2] != 'y' && h[2] != 'b') || h[3] != '$' || h[6] != '$')
        return false;
    if (h[4] < '0' || h[4] > '3' || h[5] < '0' || h[5] > '9')
        return false;
    int cost = (h[4] - '0') * 10 + (h[5] - '0');
    if (cost < 4 || cost > 31)
        return false;
    for (size_t i = 7; i < n; i++) {
        if (!bcrypt_char(h[i]))
            return false;
    }
    return true;
}

/* One line (without its LF): added to h, skipped, or an error. */
static int parse_line(struct node_auth_htpasswd *h,
                      const char *line,
                      size_t n,
                      unsigned lineno,
                      char *errmsg)
{
    const char *colon;
    char name[META_ACCOUNT_NAME_MAX + 1];
    size_t nlen;

    if (n > 0 && line[n - 1] == '\r')
        n--;
    if (n == 0 || line[0] == '#')
        return 0;
    colon = memchr(line, ':', n);
    if (colon == NULL) {
        at_errmsg_printf(errmsg, "line %u: want name:hash", lineno);
        return AT_EINVAL;
    }
    nlen = (size_t)(colon - line);
    if (nlen == 0 || nlen > META_ACCOUNT_NAME_MAX ||
        memchr(line, '\0', n) != NULL) {
        at_errmsg_printf(errmsg, "line %u: bad user name", lineno);
        return AT_EINVAL;
    }
    memcpy(name, line, nlen);
    name[nlen] = '\0';
    if (!meta_user_name_ok(name)) {
        at_errmsg_printf(errmsg,
                         "line %u: bad user name (want letters, digits "
                         "and ._@-, at most %d)",
                         lineno, META_ACCOUNT_NAME_MAX);
        return AT_EINVAL;
    }
    if (!bcrypt_ok(colon + 1, n - nlen - 1)) {
        at_errmsg_printf(errmsg,
                         "line %u: user '%s': not a bcrypt hash ($2y$ or "
                         "$2b$; make one with htpasswd -B)",
                         lineno, name);
        return AT_EINVAL;
    }
    if (at_map_gets(&h->users, name) != NULL) {
        at_errmsg_printf(errmsg, "line %u: user '%s' appears twice", lineno,
                         name);
        return AT_EINVAL;
    }
    if (h->users.len >= HTPASSWD_USERS_MAX) {
        at_errmsg_printf(errmsg, "line %u: more than %d users", lineno,
                         HTPASSWD_USERS_MAX);
        return AT_EINVAL;
    }
    at_map_put(&h->users, name, nlen, at_strndup(colon + 1, BCRYPT_LEN));
    return 0;
}

/* see auth.h */
int node_auth_htpasswd_parse(const char *text,
                             size_t len,
                             struct node_auth_htpasswd **out,
                             char *errmsg)
{
    struct node_auth_htpasswd *h;
    unsigned lineno = 0;
    size_t pos = 0;

    if (len > HTPASSWD_FILE_MAX) {
        at_errmsg_printf(errmsg, "larger than %zu bytes", HTPASSWD_FILE_MAX);
        return AT_EINVAL;
    }
    h = at_calloc(1, sizeof(*h));
    at_map_init(&h->users);
    while (pos < len) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl != NULL ? (size_t)(nl - (text + pos)) : len - pos;
        int rv = parse_line(h, text + pos, n, ++lineno, errmsg);
        if (rv != 0) {
            table_free(h);
            return rv;
        }
        pos += n + 1;
    }
    *out = h;
    return 0;
}

/* see auth.h */
const char *node_auth_htpasswd_find(const struct node_auth_htpasswd *h,
                                    const char *name)
{
    return h != NULL ? at_map_gets(&h->users, name) : NULL;
}

/* see auth.h */
size_t node_auth_htpasswd_count(const struct node_auth_htpasswd *h)
{
    return h != NULL ? h->users.len : 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* see internal.h */
void node_auth__htpasswd_each(const struct node_auth_htpasswd *h,
                              void (*each)(void *data, const char *name),
                              void *data)
{
    const char **names;
    const char *k;
    void *v;
    size_t n = 0;

    if (h == NULL)
        return;
    names = at_calloc(h->users.len + 1, sizeof(*names));
    for (size_t i = 0; at_map_next(&h->users, &i, &k, &v);)
        names[n++] = k;
    qsort(names, n, sizeof(*names), name_cmp);
    for (size_t i = 0; i < n; i++)
        each(data, names[i]);
    at_free(names);
}

/* see internal.h */
int node_auth__htpasswd_load(const char *file,
                             struct node_auth_htpasswd **out,
                             char *errmsg)
{
    FILE *f = fopen(file, "re");
    struct at_buf b;
    char chunk[4096];
    size_t n;
    int rv = 0;

    if (f == NULL) {
        at_errmsg_printf(errmsg, "htpasswd '%s': %s", file, strerror(errno));
        return AT_EINVAL;
    }
    at_buf_init(&b, HTPASSWD_FILE_MAX);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (at_buf_append(&b, chunk, n) != 0) {
            at_errmsg_printf(errmsg, "htpasswd '%s': larger than %zu bytes",
                             file, HTPASSWD_FILE_MAX);
            rv = AT_EINVAL;
            goto out;
        }
    }
    if (ferror(f)) {
        at_errmsg_printf(errmsg, "htpasswd '%s': read error", file);
        rv = AT_EINVAL;
        goto out;
    }
    rv = node_auth_htpasswd_parse(b.data != NULL ? b.data : "", b.len, out,
                                  errmsg);
    if (rv != 0)
        at_errmsg_wrapf(errmsg, "htpasswd '%s'", file);
out:
    if (b.data != NULL)
        explicit_bzero(b.data, b.len);
    at_buf_release(&b);
    explicit_bzero(chunk, sizeof(chunk));
    fclose(f);
    return rv;
}
