/* The OCI distribution API handlers: shared context, routing and replies. */
#ifndef NODE_API_H
#define NODE_API_H

#include "common/common.h"
#include "node/config.h"
#include "node/http.h"
#include "raft/meta.h"
#include "storage/storage.h"

struct node_peer;
struct node_peer_api;
struct node_fetch_table;
struct node_repl;
struct node_gc;

/* Everything the handlers reach; owned by node/server.c. */
#define NODE_API_MAGIC 0x41504931u /* "API1": node_api_begin's sanity check */

struct node_api {
    uint32_t magic;                /* NODE_API_MAGIC */
    uv_loop_t *loop;               /* borrowed */
    const struct node_config *cfg; /* borrowed */
    struct storage *store;         /* borrowed */
    struct meta *meta;             /* borrowed */
    const char *store_id;          /* borrowed: this node's store name */
    struct node_peer *peer;        /* borrowed: peer client (blob fetch) */
    /* borrowed: the peer listener's counters, for /metrics */
    struct node_peer_api *peer_api;
    /* owned (node/fetch.c), made on the first fetch; node_fetch_table_close
     * at stop */
    struct node_fetch_table *fetches;
    /* owned (node/replicate.c), made on first use; node_replicate_close at
     * stop */
    struct node_repl *repl;
    struct node_gc *gc; /* borrowed: POST /_atoll/gc (node/gc.c) */
    /* owned (node/placement.c): the placement prefetcher, NULL without a
     * region; node_placement_stop at stop */
    struct node_placer *placer;
    /* owned (node/verify.c), made on first use; node_verify_close at stop */
    struct node_verify *verify;
    bool stopping;
    /* counters for /metrics */
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t blobs_committed;
    uint64_t manifests_put;
    uint64_t peer_blob_fetches; /* transfers started from a holder */
};

/* Routes of the API, decided from the path alone. */
enum node_route {
    NODE_ROUTE_NONE = 0,
    NODE_ROUTE_BASE,       /* /v2/ */
    NODE_ROUTE_CATALOG,    /* /v2/_catalog */
    NODE_ROUTE_TAGS,       /* /v2/<name>/tags/list */
    NODE_ROUTE_MANIFEST,   /* /v2/<name>/manifests/<ref> */
    NODE_ROUTE_BLOB,       /* /v2/<name>/blobs/<digest> */
    NODE_ROUTE_UPLOAD_NEW, /* /v2/<name>/blobs/uploads/ */
    NODE_ROUTE_UPLOAD,     /* /v2/<name>/blobs/uploads/<id> */
    NODE_ROUTE_REFERRERS,  /* /v2/<name>/referrers/<digest> */
    NODE_ROUTE_ADMIN,      /* /_atoll/..., /livez, /readyz, /metrics */
};

struct node_route_match {
    enum node_route route;
    char *name; /* owned, decoded; NULL when the route has none */
    char *arg;  /* owned, decoded: ref, digest or upload id */
    bool name_invalid;
};

/* Split a request path into a route; never fails (NODE_ROUTE_NONE). */
void node_route_parse(const char *path, struct node_route_match *m);
void node_route_release(struct node_route_match *m);

/* The handler given to node_http_start. */
void node_api_handle(void *data, struct node_http_req *req);

/* Start a response with the headers every answer carries. */
void node_api_begin(struct node_http_req *req, int status);
/* Send an OCI error: {"errors":[{"code":...,"message":...}]} */
void node_api_error(struct node_http_req *req,
                    int status,
                    const char *code,
                    const char *fmt,
                    ...) AT_PRINTF(4, 5);
/* Map a write's (status, result) to an error reply; returns true when it
 * replied (i.e. the write did not succeed). */
bool node_api_write_failed(struct node_http_req *req, int status, int result);
/* X-Atoll-Index: <index> on the response of a write that succeeded. */
void node_api_write_index(struct node_http_req *req,
                          int status,
                          uint64_t index);
/* The read barrier of tag reads and listings: meta_read_barrier, or, with
 * read_consistency local, cb(data, 0) at once (before returning 0). */
int node_api_read_barrier(struct node_api *api, meta_read_cb cb, void *data);

/* Per-route handlers (blobs.c, uploads.c, manifests.c, api.c). */
void node_api_blob(struct node_api *api,
                   struct node_http_req *req,
                   const char *name,
                   const char *digest);
void node_api_upload_new(struct node_api *api,
                         struct node_http_req *req,
                         const char *name);
void node_api_upload(struct node_api *api,
                     struct node_http_req *req,
                     const char *name,
                     const char *id);
void node_api_manifest(struct node_api *api,
                       struct node_http_req *req,
                       const char *name,
                       const char *ref);

/* Location of an upload session. */
char *node_api_upload_location(const char *name, const char *id);

#endif /* NODE_API_H */
