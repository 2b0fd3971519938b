/* Leader operations on the peer listener: forwarded writes (propose), the
 * read index of a follower read, and the term a leader asks its voters. */
#include "common/compat.h"

#define AT_LOG_COMP "peer"

#include "node/cluster/peer_api.h"
#include "node/cluster/peer_internal.h"

static void on_propose_done(void *data, int status, int result, uint64_t index)
{
    struct node_peer_op *op = data;
    char b[128];
    int n;

    if (status == AT_ENOTLEADER) {
        node_peer__reply_status(op->req, 503, status);
    } else {
        n = snprintf(b, sizeof(b),
                     "{\"status\":%d,\"result\":%d,\"index\":%" PRIu64 "}\n",
                     status, result, index);
        node_peer__reply_json(op->req, 200, b, (size_t)n);
    }
    node_peer__op_free(op);
}

static void on_read_index(void *data, int status, uint64_t index)
{
    struct node_peer_op *op = data;
    char b[96];
    int n;

    if (status != 0) {
        node_peer__reply_status(op->req, 503, status);
    } else {
        n = snprintf(b, sizeof(b), "{\"status\":0,\"index\":%" PRIu64 "}\n",
                     index);
        node_peer__reply_json(op->req, 200, b, (size_t)n);
    }
    node_peer__op_free(op);
}

/* see peer_internal.h */
void node_peer__propose(struct node_peer_op *op)
{
    int rv = meta_propose_packed(op->api->meta, op->body.data, op->body.len,
                                 on_propose_done, op);

    if (rv != 0) {
        node_peer__reply_status(op->req, rv == AT_ENOTLEADER ? 503 : 400, rv);
        node_peer__op_free(op);
    }
}

/* see peer_internal.h */
void node_peer__read_index(struct node_peer_op *op)
{
    /* body (optional): "<asker id> <asker term>", see hook_read_index */
    uint64_t from_id = 0, from_term = 0;
    const char *b = op->body.data, *sp;
    int rv;

    if (b != NULL && op->body.len > 0 &&
        (sp = memchr(b, ' ', op->body.len)) != NULL &&
        (at_parse_u64(b, (size_t)(sp - b), &from_id) != 0 ||
         at_parse_u64(sp + 1, op->body.len - (size_t)(sp + 1 - b),
                      &from_term) != 0))
        from_id = from_term = 0;
    rv = meta_read_index_for(op->api->meta, from_id, from_term, on_read_index,
                             op);
    if (rv != 0)
        on_read_index(op, rv, 0);
}

/* POST /_atoll/term: this node's current raft term, asked by a leader
 * confirming its leadership for reads (hooks->term). Answered at once;
 * see peer_internal.h */
void node_peer__term(struct node_peer_api *api, struct node_http_req *req)
{
    char b[64];
    int n = snprintf(b, sizeof(b), "{\"status\":0,\"index\":%" PRIu64 "}\n",
                     meta_term(api->meta));

    node_peer__reply_json(req, 200, b, (size_t)n);
}
