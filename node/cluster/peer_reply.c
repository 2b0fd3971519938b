/* What the peer listener's endpoints share (see peer_internal.h): their
 * answers, the lifetime of a request with a body, and where a node's peer
 * listener is. The front (peer_front.c) and every endpoint file call this
 * file; it calls none of them. */
#include "common/compat.h"

#define AT_LOG_COMP "peer"

#include "node/cluster/peer_api.h"
#include "node/cluster/peer_internal.h"
#include "node/reply/reply.h"

/* see peer_internal.h */
void node_peer__error(struct node_http_req *req,
                      int status,
                      const char *code,
                      const char *msg)
{
    struct at_buf b;

    at_buf_init(&b, 0);
    node_reply_error_doc(&b, code, msg);
    node_http_resp_status(req, status);
    node_http_resp_header(req, "Content-Type", "application/json");
    node_http_resp_send(req, b.data, b.len);
    at_buf_release(&b);
}

/* see peer_internal.h */
void node_peer__reply_body(struct node_http_req *req,
                           int status,
                           const char *content_type,
                           const void *body,
                           size_t len)
{
    if (node_http_req_done(req))
        return;
    node_http_resp_status(req, status);
    node_http_resp_header(req, "Content-Type", "%s", content_type);
    node_http_resp_send(req, body, len);
}

/* see peer_internal.h */
void node_peer__reply(struct node_peer_op *op,
                      int http,
                      const struct proto_peer_reply *r)
{
    char errmsg[AT_ERRMSG_SIZE];
    struct at_buf b;

    at_buf_init(&b, 0);
    if (proto_peer_endpoints[op->ep].body != PROTO_PEER_BODY_PROTOBUF) {
        at_buf_printf(&b, "{\"status\":%d}\n", r->status);
        node_peer__reply_body(op->req, http, "application/json", b.data, b.len);
    } else if (proto_peer_reply_pack(r, &b, errmsg) == 0) {
        node_peer__reply_body(op->req, http, PROTO_PEER_CONTENT_TYPE, b.data,
                              b.len);
    } else {
        LOG_ERROR("peer %s: %s answer: %s", node_http_req_peer(op->req),
                  proto_peer_endpoints[op->ep].name, errmsg);
        node_peer__error(op->req, 500, "UNKNOWN", "cannot encode the answer");
    }
    at_buf_release(&b);
}

/* see peer_internal.h */
void node_peer__reply_status(struct node_peer_op *op, int http, int status)
{
    struct proto_peer_reply r = { .status = status };

    node_peer__reply(op, http, &r);
}

/* see peer_internal.h */
void node_peer__op_free(struct node_peer_op *op)
{
    proto_peer_msg_release(&op->msg);
    at_buf_release(&op->body);
    if (op->req != NULL)
        node_http_req_unref(op->req);
    at_free(op);
}

/* see peer_internal.h */
const char *node_peer__address_of(struct node_peer_api *api,
                                  const char *name,
                                  const char *address)
{
    if (address != NULL && address[0] != '\0')
        return address;
    address = name != NULL ? at_map_gets(&api->peer_hints, name) : NULL;
    return address != NULL && address[0] != '\0' ? address : NULL;
}
