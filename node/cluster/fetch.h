/* Lazy peer blob fetch: a GET of a blob linked in a repository but missing
 * from the local store downloads it from a node that holds it (one transfer
 * per digest, shared by every waiting request), stores it verified, records
 * this node as a holder, then serves the waiters from the local file. */
#ifndef NODE_FETCH_H
#define NODE_FETCH_H

#include "node/reply/context.h"

#define NODE_FETCH_WAIT_MS     120000 /* a waiter gets a 503 after this */
#define NODE_FETCH_TRANSFER_MS 600000 /* one transfer from one holder */

/* Answer req, a GET of blob d (size bytes per the metadata) linked in repo
 * but not in the local store: join the fetch of d already running or start
 * one. req is answered in every case: a plain GET is streamed while the
 * transfer runs (200, full Content-Length, the tail withheld until the digest
 * is verified; the connection is closed mid-body if it is not); a Range GET
 * is served from the blob file after the commit; 503 UNAVAILABLE with
 * Retry-After when no holder could give it (or the wait exceeded
 * NODE_FETCH_WAIT_MS before any byte was sent); 507 when no fetch runs and
 * free space is below the reserve. A client that goes away leaves the fetch
 * running for the others and for the local copy. */
void node_fetch_blob(struct node_api *api,
                     struct node_http_req *req,
                     const char *repo,
                     const struct at_digest *d,
                     uint64_t size);

/* Start fetching blob d (size bytes per the metadata, linked in repo) with
 * no client waiting, to make a local copy (min_copies replication): nothing
 * to do when the blob is local or already being fetched. Returns 0,
 * AT_ENOSPC below the free-space reserve, AT_ESHUTDOWN when stopping or
 * without a peer client. The outcome is logged; on success this node is
 * recorded as a holder. */
int node_fetch_start(struct node_api *api,
                     const char *repo,
                     const struct at_digest *d,
                     uint64_t size);

/* Fetches running now, and how many of them have no client (copies). */
void node_fetch_counts(const struct node_api *api,
                       unsigned *active,
                       unsigned *background);

/* How much a node is to be trusted as a source or target of blob bytes,
 * lower first: NODE_RANK_OK; NODE_RANK_SUSPECT when gossip suspects it or
 * it gave bad bytes lately (bad_bytes); NODE_RANK_GONE when gossip sees it
 * dead or left. Without gossip every node is OK (but for bad_bytes). */
enum node_rank { NODE_RANK_OK = 0, NODE_RANK_SUSPECT, NODE_RANK_GONE };
enum node_rank node_fetch_rank(const struct node_api *api,
                               const char *name,
                               bool bad_bytes);

/* A holder as the order below sees it. */
struct node_holder_key {
    enum node_rank rank;
    int group;       /* 0: same region as this node */
    uint32_t rtt_us; /* gossip's round trip; 0 = unknown */
    unsigned load;   /* transfers this node runs from it */
};

/* Holder order: true when holder a is tried before b: lower rank first,
 * then same-region group 0 first, then the nearer (both round trips
 * known and a's under half of b's: noise of a millisecond or two on a LAN
 * does not reorder), then fewer running transfers. Exposed for unit
 * tests. */
bool node_fetch_holder_before(const struct node_holder_key *a,
                              const struct node_holder_key *b);

/* Detach the fetch table from api (api->fetches may be NULL): fetches in
 * flight finish without touching api again and the table is freed with the
 * last one. Call once the peer client is closed, before the store is. */
void node_fetch_table_close(struct node_fetch_table *t);

#endif /* NODE_FETCH_H */
