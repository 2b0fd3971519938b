/* The API listener's request durations for /metrics (see metrics.h): the
 * route class of each path, a fixed-bucket histogram per class and method
 * filled from the listener's done callback, and its text. */
#include "common/compat.h"

#include "node/access_log.h"
#include "node/metrics.h"

/* Upper bounds of the buckets in microseconds; the last one is +Inf. */
static const uint64_t bucket_micros[NODE_METRICS_BUCKETS - 1] = {
    1000,   2500,   5000,    10000,   25000,   50000,   100000,
    250000, 500000, 1000000, 2500000, 5000000, 10000000
};
static const char *const bucket_le[NODE_METRICS_BUCKETS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "0.25",  "0.5",    "1",     "2.5",  "5",     "10",   "+Inf"
};
static const char *const route_names[NODE_ROUTE_COUNT] = {
    "base",      "manifest", "blob",  "upload", "tags",
    "referrers", "catalog",  "token", "admin",  "other"
};
static const char *const method_names[NODE_METRICS_METHODS] = {
    "other", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"
};

/* see metrics.h */
const char *node_metrics_route_name(enum node_metrics_route route)
{
    return (unsigned)route < NODE_ROUTE_COUNT ? route_names[route] : "other";
}

static bool seg_is(const char *p, size_t n, const char *word)
{
    return p != NULL && strlen(word) == n && memcmp(p, word, n) == 0;
}

/* The OCI routes by their last path segments (a repository name may
 * itself hold "blobs" or "manifests" components: only the tail decides). */
static enum node_metrics_route v2_route(const char *rest)
{
    const char *seg[3] = { NULL, NULL, NULL }; /* last, previous, before */
    size_t len[3] = { 0, 0, 0 };
    const char *end = rest + strlen(rest);

    for (int i = 0; i < 3; i++) {
        const char *p = end;
        while (p > rest && p[-1] != '/')
            p--;
        seg[i] = p;
        len[i] = (size_t)(end - p);
        if (p == rest)
            break;
        end = p - 1;
    }
    if (seg_is(seg[1], len[1], "uploads") && seg_is(seg[2], len[2], "blobs"))
        return NODE_ROUTE_UPLOAD;
    if (seg_is(seg[0], len[0], "uploads") && seg_is(seg[1], len[1], "blobs"))
        return NODE_ROUTE_UPLOAD;
    if (seg_is(seg[1], len[1], "manifests"))
        return NODE_ROUTE_MANIFEST;
    if (seg_is(seg[1], len[1], "blobs"))
        return NODE_ROUTE_BLOB;
    if (seg_is(seg[1], len[1], "tags") && seg_is(seg[0], len[0], "list"))
        return NODE_ROUTE_TAGS;
    if (seg_is(seg[1], len[1], "referrers"))
        return NODE_ROUTE_REFERRERS;
    return NODE_ROUTE_OTHER;
}

/* see metrics.h */
enum node_metrics_route node_metrics_route(const char *path)
{
    if (strcmp(path, "/v2") == 0 || strcmp(path, "/v2/") == 0)
        return NODE_ROUTE_BASE;
    if (strcmp(path, "/v2/_catalog") == 0)
        return NODE_ROUTE_CATALOG;
    if (strncmp(path, "/v2/", 4) == 0)
        return v2_route(path + 4);
    if (strcmp(path, "/_atoll/token") == 0)
        return NODE_ROUTE_TOKEN;
    if (strncmp(path, "/_atoll/", 8) == 0 || strcmp(path, "/livez") == 0 ||
        strcmp(path, "/readyz") == 0 || strcmp(path, "/metrics") == 0)
        return NODE_ROUTE_ADMIN;
    return NODE_ROUTE_OTHER;
}

static unsigned method_index(enum node_http_method m)
{
    return (unsigned)m < NODE_METRICS_METHODS ? (unsigned)m : 0;
}

/* see metrics.h */
void node_metrics_on_done(void *data,
                          const struct node_http_req *r,
                          const struct node_http_done *done)
{
    struct node_api *api = data;
    struct node_metrics_http *h = api->http_durations;

    if (h != NULL) {
        enum node_metrics_route rt = node_metrics_route(node_http_req_path(r));
        unsigned m = method_index(node_http_req_method(r));
        unsigned b = 0;

        while (b < NODE_METRICS_BUCKETS - 1 && done->micros > bucket_micros[b])
            b++;
        h->count[rt][m][b]++;
        h->sum_micros[rt][m] += done->micros;
    }
    if (api->cfg != NULL && api->cfg->access_log)
        node_access_log(NULL, r, done);
}

/* see metrics.h */
void node_metrics_http_text(const struct node_metrics_http *h, struct at_buf *b)
{
    at_buf_puts(b,
                "# HELP atoll_http_request_duration_seconds Time from a "
                "request's first byte to its response's last, by route "
                "class and method (API listener).\n"
                "# TYPE atoll_http_request_duration_seconds histogram\n");
    if (h == NULL)
        return;
    for (unsigned rt = 0; rt < NODE_ROUTE_COUNT; rt++) {
        for (unsigned m = 0; m < NODE_METRICS_METHODS; m++) {
            uint64_t cum = 0;

            for (unsigned k = 0; k < NODE_METRICS_BUCKETS; k++)
                cum += h->count[rt][m][k];
            if (cum == 0)
                continue;
            cum = 0;
            for (unsigned k = 0; k < NODE_METRICS_BUCKETS; k++) {
                cum += h->count[rt][m][k];
                at_buf_printf(
                    b,
                    "atoll_http_request_duration_seconds_bucket{"
                    "route=\"%s\",method=\"%s\",le=\"%s\"} %" PRIu64 "\n",
                    route_names[rt], method_names[m], bucket_le[k], cum);
            }
            at_buf_printf(
                b,
                "atoll_http_request_duration_seconds_sum{route=\"%s\","
                "method=\"%s\"} %" PRIu64 ".%06" PRIu64 "\n",
                route_names[rt], method_names[m],
                h->sum_micros[rt][m] / 1000000, h->sum_micros[rt][m] % 1000000);
            at_buf_printf(b,
                          "atoll_http_request_duration_seconds_count{route="
                          "\"%s\",method=\"%s\"} %" PRIu64 "\n",
                          route_names[rt], method_names[m], cum);
        }
    }
}
