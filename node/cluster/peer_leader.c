/* Leader operations on the peer listener: forwarded writes (propose), the
 * read index of a follower read, and the term a leader asks its voters.
 * Each answers a PeerReply. */
#include "common/compat.h"

#define AT_LOG_COMP "peer"

#include "node/cluster/peer_api.h"
#include "node/cluster/peer_internal.h"

static void on_propose_done(void *data, int status, int result, uint64_t index)
{
    struct node_peer_op *op = data;
    struct proto_peer_reply r = { .status = status };

    if (status == AT_ENOTLEADER) {
        node_peer__reply(op, 503, &r);
    } else {
        r.result = result;
        r.index = index;
        node_peer__reply(op, 200, &r);
    }
    node_peer__op_free(op);
}

static void on_read_index(void *data, int status, uint64_t index)
{
    struct node_peer_op *op = data;
    struct proto_peer_reply r = { .status = status };

    if (status != 0) {
        node_peer__reply(op, 503, &r);
    } else {
        r.index = index;
        node_peer__reply(op, 200, &r);
    }
    node_peer__op_free(op);
}

/* see peer_internal.h */
void node_peer__propose(struct node_peer_op *op)
{
    int rv = meta_propose_packed(op->api->meta, op->msg.u.propose.command,
                                 op->msg.u.propose.len, on_propose_done, op);

    if (rv != 0) {
        node_peer__reply_status(op,
                                rv == AT_ENOTLEADER ? 503
                                : rv == AT_ENOSPC   ? 507
                                                    : 400,
                                rv);
        node_peer__op_free(op);
    }
}

/* see peer_internal.h: the asker's id and term may count as its vote of
 * confidence (hook_read_index) */
void node_peer__read_index(struct node_peer_op *op)
{
    int rv =
        meta_read_index_for(op->api->meta, op->msg.u.read_index.from_id,
                            op->msg.u.read_index.from_term, on_read_index, op);

    if (rv != 0)
        on_read_index(op, rv, 0);
}

/* This node's current raft term, asked by a leader confirming its
 * leadership for reads (hooks->term). Answered at once; see
 * peer_internal.h */
void node_peer__term(struct node_peer_op *op)
{
    struct proto_peer_reply r = { .term = meta_term(op->api->meta) };

    node_peer__reply(op, 200, &r);
    node_peer__op_free(op);
}
