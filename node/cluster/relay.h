/* Blob relay: a GET of a blob this node does not hold, answered with a
 * holder's bytes passed straight through to the client, none kept. What a
 * node below its free-space reserve does instead of a fetch (fetch.h), so
 * that pulls go on while its disk is full. */
#ifndef NODE_RELAY_H
#define NODE_RELAY_H

#include "node/reply/context.h"

#define NODE_RELAY_HOLDBACK (64 * 1024) /* sent once the digest matched */
#define NODE_RELAY_HIGH_WATER                       \
    (1024 * 1024) /* unwritten: the transfer pauses \
                   */

/* Answer req, a GET of blob d (size bytes per the metadata) linked in repo
 * and not in the local store, from the first holder that gives its bytes:
 * 200 (206 for a single Range, 416 when unsatisfiable) with the body
 * streamed as it arrives, its last NODE_RELAY_HOLDBACK bytes (all of them
 * when fewer) only once all size bytes hashed to d; the connection is
 * closed mid-body when they do not, or when the transfer fails after the
 * answer began. 503 UNAVAILABLE with Retry-After when no holder gave a
 * first byte. req is answered in every case; nothing is written to the
 * local store. */
void node_relay_blob(struct node_api *api,
                     struct node_http_req *req,
                     const char *repo,
                     const struct at_digest *d,
                     uint64_t size);

#endif /* NODE_RELAY_H */
