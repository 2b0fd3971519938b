/* Lazy peer blob fetch: a GET of a blob linked in a repository but missing
 * from the local store downloads it from a node that holds it (one transfer
 * per digest, shared by every waiting request), stores it verified, records
 * this node as a holder, then serves the waiters from the local file. */
#ifndef NODE_FETCH_H
#define NODE_FETCH_H

#include "node/reply/context.h"

#define NODE_FETCH_WAIT_MS 120000 /* a waiter gets a 503 after this */

/* Answer req, a GET of blob d (size bytes per the metadata) linked in repo
 * but not in the local store: join the fetch of d already running or start
 * one. req is answered in every case: a plain GET is streamed while the
 * transfer runs (200, full Content-Length, the tail withheld until the digest
 * is verified; the connection is closed mid-body if it is not); a Range GET
 * is served from the blob file after the commit; 503 UNAVAILABLE with
 * Retry-After when no holder could give it (or the wait exceeded
 * NODE_FETCH_WAIT_MS before any byte was sent). When no fetch runs and
 * free space is below the reserve, no copy is made: req is relayed
 * (node_relay_blob). A client that goes away leaves the fetch
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

#endif /* NODE_FETCH_H */
