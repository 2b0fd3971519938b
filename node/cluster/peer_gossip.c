/* The push-pull endpoint of the peer listener (POST /_atoll/gossip): the
 * asker's GossipState is merged into our gossip table and ours is the
 * answer. Authenticated like every peer request (cluster secret, mutual
 * TLS when configured) by the front. */
#include "common/compat.h"

#define AT_LOG_COMP "peer"

#include "node/cluster/gossip.h"
#include "node/cluster/peer_api.h"
#include "node/cluster/peer_internal.h"

/* see peer_internal.h */
void node_peer__gossip(struct node_peer_op *op)
{
    uint8_t *out = NULL;
    size_t len = 0;
    int rv;

    if (op->api->gossip == NULL || op->api->stopping) {
        node_peer__error(op->req, 503, "UNAVAILABLE", "gossip is off here");
        node_peer__op_free(op);
        return;
    }
    rv = node_gossip_push_pull(op->api->gossip, op->body.data, op->body.len,
                               &out, &len);
    if (rv != 0) {
        LOG_WARN("peer %s: gossip push-pull refused: %s",
                 node_http_req_peer(op->req), at_strerror(rv));
        node_peer__error(op->req, rv == AT_EPROTO ? 400 : 500, "BAD_REQUEST",
                         "malformed gossip state");
    } else {
        node_peer__reply_body(op->req, 200, PROTO_PEER_CONTENT_TYPE, out, len);
    }
    free(out);
    node_peer__op_free(op);
}
