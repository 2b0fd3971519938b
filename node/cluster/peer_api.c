/* The peer listener's front: every request is authenticated with the
 * cluster secret, routed to its endpoint, and (with a body) buffered up to
 * the endpoint's bound before its handler runs.
 *
 * Every request must carry Authorization: Bearer <cluster secret>; anything
 * else gets a 401, a WARN line naming the peer address (never the secret)
 * and a closed connection. Requests with a body are buffered (bounded per
 * endpoint), then one async meta call runs; the request is referenced until
 * its callback answered (or found the client gone). */
#include "common/compat.h"

#define AT_LOG_COMP "peer"

#include "node/cluster/peer_api.h"
#include "node/cluster/peer_internal.h"
#include "node/cluster/replicate.h"
#include "node/reply/reply.h"

/* ---- helpers ---- */

/* see peer_api.h */
bool node_peer_auth_ok(const char *value, const char *secret)
{
    static const char prefix[] = "Bearer ";
    size_t plen = sizeof(prefix) - 1;
    size_t slen, vlen;
    unsigned char diff = 0;

    if (secret == NULL || secret[0] == '\0' || value == NULL)
        return false;
    slen = strlen(secret);
    vlen = strlen(value);
    if (vlen != plen + slen || strncmp(value, prefix, plen) != 0)
        return false;
    for (size_t i = 0; i < slen; i++)
        diff |= (unsigned char)(value[plen + i] ^ secret[i]);
    return diff == 0;
}

/* see peer_internal.h */
void node_peer__error(struct node_http_req *req,
                      int status,
                      const char *code,
                      const char *msg)
{
    struct at_buf b;

    at_buf_init(&b, 0);
    at_buf_printf(&b, "{\"errors\":[{\"code\":\"%s\",\"message\":", code);
    at_buf_json_str(&b, msg, strlen(msg));
    at_buf_puts(&b, "}]}\n");
    node_http_resp_status(req, status);
    node_http_resp_header(req, "Content-Type", "application/json");
    node_http_resp_send(req, b.data, b.len);
    at_buf_release(&b);
}

/* see peer_internal.h */
void node_peer__reply_json(struct node_http_req *req,
                           int status,
                           const char *body,
                           size_t len)
{
    if (node_http_req_done(req))
        return;
    node_http_resp_status(req, status);
    node_http_resp_header(req, "Content-Type", "application/json");
    node_http_resp_send(req, body, len);
}

/* see peer_internal.h */
void node_peer__reply_status(struct node_http_req *req, int http, int status)
{
    char b[64];
    int n = snprintf(b, sizeof(b), "{\"status\":%d}\n", status);

    node_peer__reply_json(req, http, b, (size_t)n);
}

/* see peer_internal.h */
void node_peer__op_free(struct node_peer_op *op)
{
    at_buf_release(&op->body);
    if (op->req != NULL)
        node_http_req_unref(op->req);
    at_free(op);
}

/* The whole body is here: run the operation. */
static void op_run(struct node_peer_op *op)
{
    switch (op->kind) {
    case OP_PROPOSE:
        node_peer__propose(op);
        break;
    case OP_READ_INDEX:
        node_peer__read_index(op);
        break;
    default:
        node_peer__member_op(op);
        break;
    }
}

static int op_on_body(struct node_http_req *req, const char *p, size_t n)
{
    struct node_peer_op *op = node_http_req_data(req);

    if (op == NULL)
        return 0;
    if (at_buf_append(&op->body, p, n) != 0) {
        node_http_req_set_data(req, NULL);
        node_peer__reply_status(req, 413, AT_ETOOBIG);
        /* The server stops reading; the abort/end callbacks will not run. */
        node_peer__op_free(op);
        return 0;
    }
    return 0;
}

static void op_on_end(struct node_http_req *req)
{
    struct node_peer_op *op = node_http_req_data(req);

    if (op == NULL)
        return;
    node_http_req_set_data(req, NULL);
    op_run(op);
}

static void op_on_abort(struct node_http_req *req)
{
    struct node_peer_op *op = node_http_req_data(req);

    /* Only while the body is read: after that the op owns its lifetime. */
    if (op != NULL) {
        node_http_req_set_data(req, NULL);
        node_peer__op_free(op);
    }
}

static void op_start(struct node_peer_api *api,
                     struct node_http_req *req,
                     enum peer_op_kind kind,
                     size_t max)
{
    struct node_peer_op *op = at_calloc(1, sizeof(*op));
    const char *q = node_http_req_query(req);

    op->api = api;
    op->req = req;
    op->kind = kind;
    op->proxied = q != NULL && strstr(q, "proxied=1") != NULL;
    node_http_req_ref(req);
    at_buf_init(&op->body, max);
    if (node_http_req_has_length(req) &&
        node_http_req_content_length(req) > max) {
        node_peer__reply_status(req, 413, AT_ETOOBIG);
        node_peer__op_free(op);
        return;
    }
    if (!node_http_req_has_body(req)) {
        op_run(op);
        return;
    }
    node_http_req_set_data(req, op);
    node_http_req_on_abort(req, op_on_abort);
    node_http_req_read_body(req, op_on_body, op_on_end);
}

/* see peer_api.h */
void node_peer_api_release(struct node_peer_api *api)
{
    const char *k;
    void *v;

    for (size_t i = 0; at_map_next(&api->peer_hints, &i, &k, &v);)
        at_free(v);
    at_map_release(&api->peer_hints);
}

/* ---- routing ---- */

/* see peer_api.h */
void node_peer_api_handle(void *data, struct node_http_req *req)
{
    struct node_peer_api *api = data;
    const char *path = node_http_req_path(req);
    enum node_http_method method = node_http_req_method(req);
    struct at_buf b;

    node_reply_bind(req, &api->reply);
    if (!node_peer_auth_ok(node_http_req_header(req, "authorization"),
                           api->secret)) {
        LOG_WARN("peer %s: %s %s without a valid cluster secret",
                 node_http_req_peer(req), node_http_req_method_str(req), path);
        node_http_resp_close(req);
        node_http_resp_header(req, "WWW-Authenticate", "Bearer");
        node_peer__error(req, 401, "UNAUTHORIZED",
                         "missing or wrong cluster secret");
        return;
    }
    if (api->meta == NULL) {
        node_peer__error(req, 503, "UNAVAILABLE", "node is starting");
        return;
    }
    if (strcmp(path, "/_atoll/members") == 0 &&
        (method == NODE_HTTP_GET || method == NODE_HTTP_HEAD)) {
        at_buf_init(&b, 0);
        node_peer_members_json(api->meta, &b);
        node_peer__reply_json(req, 200, b.data, b.len);
        at_buf_release(&b);
        return;
    }
    if (strncmp(path, "/v2/", 4) == 0 && api->relay != NULL &&
        api->node_api != NULL &&
        node_http_req_header(req, "x-atoll-proxied") != NULL) {
        /* An upload request relayed by the node it landed on
         * (node/cluster/proxy.c): served as on the API port, never relayed
         * again. */
        api->relay(api->node_api, req);
        return;
    }
    if (strncmp(path, "/_atoll/blobs/", 14) == 0 &&
        (method == NODE_HTTP_GET || method == NODE_HTTP_HEAD)) {
        node_peer__blob(api, req, path + 14);
        return;
    }
    if (method != NODE_HTTP_POST) {
        node_peer__error(req, strncmp(path, "/_atoll/", 8) == 0 ? 405 : 404,
                         "UNSUPPORTED", "unknown peer endpoint");
        return;
    }
    if (strcmp(path, "/_atoll/raft") == 0)
        node_peer__raft(api, req);
    else if (strcmp(path, "/_atoll/propose") == 0)
        op_start(api, req, OP_PROPOSE, NODE_PEER_PROPOSE_MAX);
    else if (strcmp(path, "/_atoll/read-index") == 0)
        op_start(api, req, OP_READ_INDEX, NODE_PEER_JSON_MAX);
    else if (strcmp(path, "/_atoll/term") == 0)
        node_peer__term(api, req);
    else if (strncmp(path, "/_atoll/removed/", 16) == 0)
        node_peer__removed(api, req, path + 16);
    else if (strcmp(path, "/_atoll/replicate") == 0 && api->node_api != NULL)
        node_replicate_handle(api->node_api, req);
    else if (strcmp(path, "/_atoll/join") == 0)
        op_start(api, req, OP_JOIN, NODE_PEER_JSON_MAX);
    else if (strcmp(path, "/_atoll/members/remove") == 0)
        op_start(api, req, OP_REMOVE, NODE_PEER_JSON_MAX);
    else if (strcmp(path, "/_atoll/transfer") == 0)
        op_start(api, req, OP_TRANSFER, NODE_PEER_JSON_MAX);
    else
        node_peer__error(req, 404, "UNSUPPORTED", "unknown peer endpoint");
}
