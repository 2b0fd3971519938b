/* Registry credentials from a file: see creds.h. */
#include "common/compat.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>

#include "common/base64.h"
#include "common/common.h"
#include "node/creds.h"
#include "node/ratelimit.h"

/* see creds.h */
void node_creds_wipe(char *s)
{
    if (s == NULL)
        return;
    explicit_bzero(s, strlen(s));
    at_free(s);
}

/* see creds.h */
int node_creds_read(const char *what,
                    const char *path,
                    char **out,
                    char *errmsg)
{
    char *buf = at_malloc(NODE_CREDS_MAX + 1);
    FILE *f = fopen(path, "re");
    size_t n;

    *out = NULL;
    if (f == NULL) {
        at_errmsg_printf(errmsg, "%s '%s': %s", what, path, strerror(errno));
        at_free(buf);
        return AT_EINVAL;
    }
    n = fread(buf, 1, NODE_CREDS_MAX + 1, f);
    fclose(f);
    if (n == 0 || n > NODE_CREDS_MAX) {
        explicit_bzero(buf, NODE_CREDS_MAX + 1);
        at_free(buf);
        at_errmsg_printf(errmsg, "%s '%s': want 1 to %d bytes", what, path,
                         NODE_CREDS_MAX);
        return AT_EINVAL;
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

/* "user:password" into the pair (the first line, without its end). */
static int split_pair(const char *line,
                      size_t n,
                      char **user,
                      char **pass,
                      char *errmsg)
{
    const char *colon = memchr(line, ':', n);

    if (colon == NULL || colon == line) {
        at_errmsg_printf(errmsg, "want user:password");
        return AT_EINVAL;
    }
    *user = at_strndup(line, (size_t)(colon - line));
    *pass = at_strndup(colon + 1, n - (size_t)(colon - line) - 1);
    return 0;
}

/* One JSON entry: username/password, or auth (base64 of user:password). */
static int entry_pair(json_t *e,
                      const char *key,
                      char **user,
                      char **pass,
                      char *errmsg)
{
    const char *u = json_string_value(json_object_get(e, "username"));
    const char *p = json_string_value(json_object_get(e, "password"));
    const char *auth = json_string_value(json_object_get(e, "auth"));

    if (u != NULL && u[0] != '\0' && p != NULL) {
        *user = at_strdup(u);
        *pass = at_strdup(p);
        return 0;
    }
    if (auth != NULL && strlen(auth) < 4096) {
        uint8_t raw[3072];
        long n = at_base64_decode(auth, strlen(auth), AT_BASE64_STD, raw,
                                  sizeof(raw));
        int rv =
            n > 0 ? split_pair((const char *)raw, (size_t)n, user, pass, errmsg)
                  : AT_EINVAL;
        explicit_bzero(raw, sizeof(raw));
        if (rv == 0)
            return 0;
    }
    at_errmsg_printf(errmsg,
                     "the entry for %.100s: want username and password, or "
                     "auth (base64 of user:password)",
                     key);
    return AT_EINVAL;
}

/* Docker Hub is named index.docker.io in a Docker config, and its API is
 * registry-1.docker.io. */
static const char *hub_alias(const char *host)
{
    return strcmp(host, "registry-1.docker.io") == 0 ||
                   strcmp(host, "docker.io") == 0
               ? "index.docker.io"
               : host;
}

/* see creds.h */
int node_creds_for(const char *text,
                   const char *url,
                   char **user,
                   char **pass,
                   char *errmsg)
{
    char want[256], have[256];
    json_t *doc, *map, *e;
    const char *key;
    int rv = 0;

    *user = *pass = NULL;
    while (*text == ' ' || *text == '\t' || *text == '\r' || *text == '\n')
        text++;
    if (*text != '{')
        return split_pair(text, strcspn(text, "\r\n"), user, pass, errmsg);
    doc = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    map = json_object_get(doc, "auths");
    if (map == NULL)
        map = doc;
    if (!json_is_object(map)) {
        json_decref(doc);
        at_errmsg_printf(errmsg,
                         "not JSON of registries (by host, or a Docker "
                         "config with auths)");
        return AT_EINVAL;
    }
    node_rate_host_of(url, want, sizeof(want));
    json_object_foreach(map, key, e)
    {
        /* "host[:port]" or a URL: compare host[:port] */
        node_rate_host_of(key, have, sizeof(have));
        if (strcmp(hub_alias(have), hub_alias(want)) != 0)
            continue;
        rv = entry_pair(e, key, user, pass, errmsg);
        break;
    }
    json_decref(doc); /* jansson frees the secrets' copies unzeroed */
    return rv;
}
