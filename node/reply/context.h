/* What every request handler of a node reaches: the stores, the FSM, the
 * cluster parts and the counters behind /metrics. One per node, owned by
 * node/server.c; handlers get it as their `api` argument. */
#ifndef NODE_REPLY_CONTEXT_H
#define NODE_REPLY_CONTEXT_H

#include "common/common.h"
#include "node/config.h"
#include "node/http/http.h"
#include "raft/meta.h"
#include "storage/storage.h"

struct node_peer;
struct node_peer_api;
struct node_fetch_table;
struct node_repl;
struct node_repl_scan;
struct node_gc;
struct node_placer;
struct node_verify;
struct node_auth;
struct node_token;
struct node_access;
struct node_metrics_http;
struct node_loop_lag;
struct node_events;
struct node_replicator;
struct node_changes;
struct node_pullthrough;
struct node_upstream;

struct node_api {
    uv_loop_t *loop;               /* borrowed */
    const struct node_config *cfg; /* borrowed */
    struct storage *store;         /* borrowed */
    struct meta *meta;             /* borrowed; NULL until meta_open */
    const char *store_id;          /* borrowed: this node's store name */
    struct node_peer *peer;        /* borrowed: peer client (blob fetch) */
    /* borrowed: the peer listener's counters, for /metrics */
    struct node_peer_api *peer_api;
    /* owned (node/cluster/fetch.c), made on the first fetch;
     * node_fetch_table_close at stop */
    struct node_fetch_table *fetches;
    /* owned (node/cluster/replicate.c), made on first use;
     * node_replicate_close at stop */
    struct node_repl *repl;
    /* owned (node/cluster/repl_scan.c): the leader's min_copies scan,
     * node_repl_scan_close at stop; under_replicated is its last count */
    struct node_repl_scan *repl_scan;
    uint64_t under_replicated;
    struct node_gc *gc; /* borrowed: POST /_atoll/gc (node/cluster/gc.c) */
    /* owned (node/cluster/placement.c): the placement prefetcher, NULL
     * without a region; node_placement_stop at stop */
    struct node_placer *placer;
    /* owned (node/cluster/verify.c), made on first use; node_verify_close
     * at stop */
    struct node_verify *verify;
    /* owned (node/auth/): who is asking; made at start, node_auth_close
     * at stop */
    struct node_auth *auth;
    /* owned (node/token.c): bearer tokens; made at start,
     * node_token_close at stop */
    struct node_token *token;
    /* owned (node/auth/access.c): the callers of requests in flight, made
     * on first use; node_access_close at stop */
    struct node_access *access;
    bool stopping;
    /* borrowed (node/server.c's): the API listener's request durations,
     * filled by node_metrics_on_done; NULL: not counted */
    struct node_metrics_http *http_durations;
    /* owned (node/loop_lag.c): the event loop's lateness, for /metrics;
     * made at start, closed at stop; NULL: none */
    struct node_loop_lag *loop_lag;
    /* owned (node/events.c): the event stream to webhooks; NULL without
     * events_url; node_events_stop at stop */
    struct node_events *events;
    /* owned (node/replication.c): the replication rules' runner (jobs run
     * on the leader); node_replication_stop at stop */
    struct node_replicator *replication;
    /* owned (node/changes.c): the applied changes handed to consumers,
     * made on the first node_changes_add; node_changes_stop at stop */
    struct node_changes *changes;
    /* owned (node/cluster/pullthrough.c): the pull-through prefixes, made
     * by the first node_pullthrough_set; node_pullthrough_close at stop */
    struct node_pullthrough *pullthrough;
    /* owned (node/upstream.c): the importer of the pull-through caches;
     * node_upstream_stop at stop */
    struct node_upstream *upstream;
    /* set by node/events.c when pulls are events: a manifest GET served
     * here (asked for by tag, or by digest with tag NULL); NULL: none */
    void (*on_pulled)(struct node_api *api,
                      const char *repo,
                      const char *tag,
                      const struct at_digest *d,
                      const char *media_type,
                      uint64_t size);
    /* counters for /metrics */
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t blobs_committed;
    uint64_t manifests_put;
    uint64_t peer_blob_fetches; /* transfers started from a holder */
    uint64_t peer_blob_relays;  /* relays started: bytes passed on, no copy */
    /* answers by status class ([1..5]: 1xx..5xx, [0] other), counted by
     * node_reply_begin on every listener that uses the reply toolkit */
    uint64_t status_counts[6];
    /* the gate's decisions (node/gate.c): let in, and refused with 401,
     * 403, 429 (too many failed logins), 503 (no barrier) */
    uint64_t gate_allowed, gate_401, gate_403, gate_429, gate_503;
};

/* The read barrier of tag reads and listings: meta_read_barrier, or, with
 * read_consistency local, cb(data, 0) at once (before returning 0). */
int node_api_read_barrier(struct node_api *api, meta_read_cb cb, void *data);
/* True when node_api_read_barrier would pass at once (read_consistency
 * local, or meta_read_now): the caller may go on synchronously, without
 * the barrier's loop turn. */
bool node_api_read_now(struct node_api *api);

#endif /* NODE_REPLY_CONTEXT_H */
