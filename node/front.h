/* The API listener's handler: binds the reply context, holds a request
 * until the index it asks for (X-Atoll-Min-Index) is applied here, then
 * hands it to the node's own endpoints or to the OCI API. */
#ifndef NODE_FRONT_H
#define NODE_FRONT_H

#include "node/reply/reply.h"

#define NODE_MIN_INDEX_WAIT_MS 5000 /* X-Atoll-Min-Index: longest wait */

/* The handler given to node_http_start for --listen; data is the
 * listener's struct node_reply_ctx (borrowed). */
void node_front_handle(void *data, struct node_http_req *req);

#endif /* NODE_FRONT_H */
