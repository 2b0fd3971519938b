/* min_copies durability: a committed blob upload asks one other node to copy
 * the blob (replicate on its peer port: a background fetch
 * there), and a manifest PUT waits, bounded by copy_wait, until every blob it
 * references is held by min_copies stores (DESIGN.md section 7). */
#ifndef NODE_REPLICATE_H
#define NODE_REPLICATE_H

#include "node/reply/context.h"

#define NODE_REPLICATE_ASK_MS   3000 /* one ask to one node */
#define NODE_REPLICATE_MAX_COPY 16
#define NODE_REPLICATE_KICK_MS  2000 /* a waiting PUT asks again this often */
#define NODE_REPLICATE_TICK_MS  50   /* a waiting PUT checks this often */

struct node_repl; /* owned by api->repl, made on first use */

/* min_copies in force: the configured number, or with "auto" 2 when the
 * node table lists at least 2 nodes in the raft configuration, else 1. */
unsigned node_copies_min(struct node_api *api);

/* Stores known to hold d: meta_blob_holders in the raft configuration (a
 * removed node no longer counts) plus this node when its store has d. */
unsigned node_copies_count(struct node_api *api, const struct at_digest *d);

/* Ask one other node (same region first, then by name; skipping nodes that
 * hold d) to copy blob d, linked in repo, unless min_copies is 1, d already
 * has enough copies, or an ask for d is in flight. Fire and forget: the
 * outcome is logged; the target records itself as a holder when done. */
void node_replicate_blob(struct node_api *api,
                         const char *repo,
                         const struct at_digest *d);

/* status 0: every blob has its copies; AT_ETIMEDOUT after copy_wait_ms with
 * why naming a blob short of copies; AT_ESHUTDOWN. why is borrowed for the
 * call. */
typedef void (*node_copies_cb)(void *data, int status, const char *why);

/* Wait until each of the n blobs (copied) has node_copies_min copies,
 * asking copies for those short of them (again every
 * NODE_REPLICATE_KICK_MS). cb runs exactly once, possibly before this
 * returns (nothing to wait for). */
void node_copies_wait(struct node_api *api,
                      const char *repo,
                      const struct at_digest *digests,
                      size_t n,
                      node_copies_cb cb,
                      void *data);

/* The replicate endpoint of the peer listener (a PeerReplicate body):
 * start a background fetch of a blob this node knows (node_fetch_start) and
 * answer 202 at once; 409 when the blob is not known here yet (the asker
 * retries), 507 below the free-space reserve, 503 when stopping. */
void node_replicate_handle(struct node_api *api, struct node_http_req *req);

/* For /metrics and /_atoll/status: blobs short of copies at the last scan
 * (leader; 0 elsewhere) and copies in flight (asks sent from here plus
 * background fetches running here). */
void node_replicate_counts(struct node_api *api,
                           uint64_t *under_replicated,
                           uint64_t *copies_in_flight);

/* Detach from api (r may be NULL): work in flight ends without touching api
 * and the state is freed with the last of it. Call at stop, next to
 * node_fetch_table_close. */
void node_replicate_close(struct node_repl *r);

#endif /* NODE_REPLICATE_H */
