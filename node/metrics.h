/* The node's Prometheus text exposition (GET /metrics): the series
 * themselves (metrics.c), the API's request durations (metrics_http.c) and
 * the process' own series (metrics_process.c). One loop thread: no locks. */
#ifndef NODE_METRICS_H
#define NODE_METRICS_H

#include "node/reply/context.h"

/* Route classes of the API listener, by path (node_metrics_route). */
enum node_metrics_route {
    NODE_ROUTE_BASE,      /* /v2/ */
    NODE_ROUTE_MANIFEST,  /* /v2/<name>/manifests/<ref> */
    NODE_ROUTE_BLOB,      /* /v2/<name>/blobs/<digest> */
    NODE_ROUTE_UPLOAD,    /* /v2/<name>/blobs/uploads/[<id>] */
    NODE_ROUTE_TAGS,      /* /v2/<name>/tags/list */
    NODE_ROUTE_REFERRERS, /* /v2/<name>/referrers/<digest> */
    NODE_ROUTE_CATALOG,   /* /v2/_catalog */
    NODE_ROUTE_TOKEN,     /* /_atoll/token */
    NODE_ROUTE_ADMIN,     /* /_atoll/..., /livez, /readyz, /metrics */
    NODE_ROUTE_OTHER,
    NODE_ROUTE_COUNT
};
#define NODE_METRICS_METHODS 7  /* GET HEAD PUT POST PATCH DELETE other */
#define NODE_METRICS_BUCKETS 14 /* 1 ms .. 10 s, then +Inf */

/* Request durations of the API listener, per route class and method:
 * per-bucket (not cumulative) counts, and the sum in microseconds.
 * Zeroed by its owner (node/server.c) before use. */
struct node_metrics_http {
    uint64_t count[NODE_ROUTE_COUNT][NODE_METRICS_METHODS]
                  [NODE_METRICS_BUCKETS];
    uint64_t sum_micros[NODE_ROUTE_COUNT][NODE_METRICS_METHODS];
};

/* Append every metric of the node to out (text format 0.0.4): each
 * family with # HELP and # TYPE, in a form `promtool check metrics`
 * accepts. */
void node_metrics_text(struct node_api *api, struct at_buf *out);

/* The route class of an API path (without the query). Never fails. */
enum node_metrics_route node_metrics_route(const char *path);
/* Its label value ("manifest", ...). */
const char *node_metrics_route_name(enum node_metrics_route route);

/* A node_http_done_cb for the API listener; data is the node's struct
 * node_api (borrowed, outlives the listener). Counts the request's
 * duration in api->http_durations (when not NULL), then writes the access
 * log line when api->cfg->access_log is on (node_access_log). */
void node_metrics_on_done(void *data,
                          const struct node_http_req *r,
                          const struct node_http_done *done);

/* Append the atoll_http_request_duration_seconds histogram of h (only
 * the route/method pairs that saw a request) to out. */
void node_metrics_http_text(const struct node_metrics_http *h,
                            struct at_buf *out);

/* Append the process_* series (resident memory, CPU seconds, open and
 * maximum fds, start time), read from /proc/self on each call; a series
 * whose file cannot be read is left out. */
void node_metrics_process_text(struct at_buf *out);

#endif /* NODE_METRICS_H */
