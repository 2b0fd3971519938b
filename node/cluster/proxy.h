/* Upload proxy: relays one OCI upload request (PATCH/PUT/GET/HEAD/DELETE on
 * /v2/<name>/blobs/uploads/<id>) that landed on a node other than the
 * upload's owner to the owner's peer listener, and relays the answer.
 *
 * The request goes out on a fresh raw HTTP/1.1 connection (bound to this
 * node's peer IP) with Authorization: Bearer <cluster secret> and
 * X-Atoll-Proxied: 1; the body streams through as it arrives, with
 * backpressure (the client is paused while more than NODE_PROXY_HIGH_WATER
 * bytes wait for the owner's socket). The owner's answer is parsed with
 * llhttp, bounded (NODE_PROXY_MAX_HEAD header bytes, NODE_PROXY_MAX_BODY body
 * bytes), and sent to the client with the same status, the upload headers
 * and the body.
 *
 * Failures: owner unreachable (resolve, bind or connect fails, or connect
 * times out) -> 404 BLOB_UPLOAD_UNKNOWN (the client restarts the upload);
 * the owner fails after the request started (reset, idle timeout, malformed
 * or oversized answer) -> 502 UNAVAILABLE and the client connection is
 * closed. A client that goes away closes the owner connection: the owner
 * sees a client disconnect (nothing is committed from a partial body). */
#ifndef NODE_PROXY_H
#define NODE_PROXY_H

#include "node/reply/context.h"

#define NODE_PROXY_CONNECT_MS  5000
#define NODE_PROXY_IDLE_MS     120000
#define NODE_PROXY_HIGH_WATER  (4u * 1024 * 1024)
#define NODE_PROXY_LOW_WATER   (1u * 1024 * 1024)
#define NODE_PROXY_MAX_HEAD    (64 * 1024)
#define NODE_PROXY_MAX_BODY    (64 * 1024)
#define NODE_PROXY_MAX_HDR_VAL 4096 /* a relayed request header's value */

/* Relay req to the peer listener at owner_addr ("host:port" or
 * "[v6]:port"). Always answers req (possibly later, on the loop). */
void node_proxy_upload(struct node_api *api,
                       struct node_http_req *req,
                       const char *owner_addr);

#endif /* NODE_PROXY_H */
