/* The access log of the API listener (see access_log.h). One line per request,
 * built on the stack: at manifest GET rates it must cost no more than one
 * write. */
#include "common/compat.h"

#define AT_LOG_COMP "access"

#include "node/access_log.h"

/* Query parameters of the OCI API that name pages, digests and mounts:
 * safe to log. Anything else (a token endpoint's account or password, a
 * signed URL's signature) is not. */
static const char *const query_keys[] = { "n", "last", "digest", "mount",
                                          "from" };

static bool query_key_ok(const char *p, size_t n)
{
    for (size_t i = 0; i < AT_ARRAY_SIZE(query_keys); i++)
        if (strlen(query_keys[i]) == n && memcmp(query_keys[i], p, n) == 0)
            return true;
    return false;
}

/* see access_log.h */
size_t node_access_query(const char *path,
                         const char *query,
                         char *out,
                         size_t size)
{
    size_t len = 0;
    const char *p = query;

    AT_ASSERT(size > 0);
    out[0] = '\0';
    if (query == NULL || strncmp(path, "/v2/", 4) != 0)
        return 0;
    while (*p != '\0') {
        size_t n = strcspn(p, "&");
        const char *eq = memchr(p, '=', n);
        size_t klen = eq != NULL ? (size_t)(eq - p) : n;

        if (query_key_ok(p, klen) && len + (len > 0) + n < size) {
            if (len > 0)
                out[len++] = '&';
            memcpy(out + len, p, n);
            len += n;
            out[len] = '\0';
        }
        p += n;
        if (*p == '&')
            p++;
    }
    return len;
}

/* see access_log.h */
void node_access_log(void *data,
                     const struct node_http_req *r,
                     const struct node_http_done *done)
{
    char path[NODE_ACCESS_PATH_MAX + 1];
    char query[NODE_ACCESS_QUERY_MAX + 1];
    char rid[NODE_ACCESS_RID_MAX + 1] = "-";
    const char *h = node_http_req_header(r, "x-atoll-request-id");
    struct at_log_field f[11];
    size_t n = 0;

    AT_UNUSED(data);
    if (!at_log_enabled(AT_LOG_COMP, AT_LOG_LEVEL_INFO))
        return;
    if (h == NULL)
        h = node_http_req_header(r, "x-request-id");
    if (h != NULL)
        snprintf(rid, sizeof(rid), "%s", h);
    snprintf(path, sizeof(path), "%s", node_http_req_path(r));
    node_access_query(node_http_req_path(r), node_http_req_query(r), query,
                      sizeof(query));
    f[n++] =
        (struct at_log_field)AT_LOG_STR("method", node_http_req_method_str(r));
    f[n++] = (struct at_log_field)AT_LOG_STR("path", path);
    if (query[0] != '\0')
        f[n++] = (struct at_log_field)AT_LOG_STR("query", query);
    f[n++] = (struct at_log_field)AT_LOG_INT("status", done->status);
    f[n++] = (struct at_log_field)AT_LOG_INT("bytes", done->bytes);
    f[n++] = (struct at_log_field)AT_LOG_STR("user", node_http_req_user(r));
    f[n++] = (struct at_log_field)AT_LOG_MICROS("duration_ms", done->micros);
    f[n++] = (struct at_log_field)AT_LOG_STR("request_id", rid);
    f[n++] = (struct at_log_field)AT_LOG_STR("remote", node_http_req_peer(r));
    if (!done->complete)
        f[n++] = (struct at_log_field)AT_LOG_INT("aborted", 1);
    LOG_FIELDS(AT_LOG_LEVEL_INFO, f, n, "request");
}
