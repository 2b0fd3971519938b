/* The peer listener's front: every request is authenticated with the
 * cluster secret, its peer protocol version checked, and it is routed by
 * proto/peer.h's endpoint table; a body is buffered up to the endpoint's
 * bound and, for a protobuf endpoint, decoded before its handler runs.
 *
 * Every request must carry Authorization: Bearer <cluster secret>; anything
 * else gets a 401, a WARN line naming the peer address (never the secret)
 * and a closed connection. Then it must state a peer protocol version this
 * node accepts (PROTO_PEER_VERSION_HEADER): a request without one (a node
 * of the first protocol) or with another gets a 426 naming both versions,
 * one WARN line per peer address and minute saying which node must be
 * upgraded, and a closed connection. A malformed body gets 400, an
 * oversized one 413. Then one async meta call runs; the request is
 * referenced until its callback answered (or found the client gone). */
#include "common/compat.h"

#define AT_LOG_COMP "peer"

#include "node/cluster/peer_api.h"
#include "node/cluster/peer_internal.h"
#include "node/cluster/pullthrough.h"
#include "node/cluster/replicate.h"
#include "node/reply/reply.h"

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

/* The whole body is here: decode it, then run the operation. */
static void op_run(struct node_peer_op *op)
{
    const struct proto_peer_endpoint *e = &proto_peer_endpoints[op->ep];
    char errmsg[AT_ERRMSG_SIZE];
    int rv;

    if (e->body == PROTO_PEER_BODY_PROTOBUF) {
        rv = proto_peer_msg_unpack(op->ep, op->body.data, op->body.len,
                                   &op->msg, errmsg);
        if (rv != 0) {
            LOG_WARN("peer %s: %s refused: %s", node_http_req_peer(op->req),
                     e->name, errmsg);
            node_peer__reply_status(op, rv == AT_ETOOBIG ? 413 : 400, rv);
            node_peer__op_free(op);
            return;
        }
    }
    switch (op->ep) {
    case PROTO_PEER_PROPOSE:
        node_peer__propose(op);
        break;
    case PROTO_PEER_READ_INDEX:
        node_peer__read_index(op);
        break;
    case PROTO_PEER_TERM:
        node_peer__term(op);
        break;
    case PROTO_PEER_REMOVED:
        node_peer__removed(op);
        break;
    case PROTO_PEER_GOSSIP:
        node_peer__gossip(op);
        break;
    default: /* join, members/remove, transfer */
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
        node_peer__reply_status(op, 413, AT_ETOOBIG);
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
                     enum proto_peer_ep ep)
{
    struct node_peer_op *op = at_calloc(1, sizeof(*op));
    const char *q = node_http_req_query(req);
    size_t max = proto_peer_endpoints[ep].body_max;

    op->api = api;
    op->req = req;
    op->ep = ep;
    op->proxied = q != NULL && strstr(q, "proxied=1") != NULL;
    node_http_req_ref(req);
    at_buf_init(&op->body, max);
    if (node_http_req_has_length(req) &&
        node_http_req_content_length(req) > max) {
        node_peer__reply_status(op, 413, AT_ETOOBIG);
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

/* ---- the peer protocol version ---- */

/* The peer's address without its port: one warning line per host. */
static void peer_host(const char *peer, char *out, size_t size)
{
    const char *colon = strrchr(peer, ':');
    size_t n = colon != NULL ? (size_t)(colon - peer) : strlen(peer);

    snprintf(out, size, "%.*s", (int)AT_MIN(n, size - 1), peer);
}

static void version_warn(struct node_peer_api *api,
                         struct node_http_req *req,
                         unsigned v)
{
    char host[64], more[64] = "";
    uint64_t quiet = 0;

    peer_host(node_http_req_peer(req), host, sizeof(host));
    if (!node_peer_warn_due(api->warns, NODE_PEER_WARN_SLOTS, host, at_now_ms(),
                            &quiet))
        return;
    if (quiet > 0)
        snprintf(more, sizeof(more), " (%" PRIu64 " more from %s since)", quiet,
                 host);
    if (v == 0)
        LOG_WARN("peer %s: %s %s with a malformed %s header: refused%s",
                 node_http_req_peer(req), node_http_req_method_str(req),
                 node_http_req_path(req), PROTO_PEER_VERSION_HEADER, more);
    else if (v < PROTO_PEER_VERSION_MIN)
        LOG_WARN(
            "peer %s speaks the older peer protocol %u%s; this node "
            "speaks %d (accepts %d..%d): %s %s refused, that node must "
            "be upgraded%s",
            node_http_req_peer(req), v,
            v == PROTO_PEER_VERSION_OLD ? " (no " PROTO_PEER_VERSION_HEADER
                                          " header)"
                                        : "",
            PROTO_PEER_VERSION, PROTO_PEER_VERSION_MIN, PROTO_PEER_VERSION_MAX,
            node_http_req_method_str(req), node_http_req_path(req), more);
    else
        LOG_WARN(
            "peer %s speaks the newer peer protocol %u; this node "
            "speaks %d (accepts %d..%d): %s %s refused, this node must "
            "be upgraded%s",
            node_http_req_peer(req), v, PROTO_PEER_VERSION,
            PROTO_PEER_VERSION_MIN, PROTO_PEER_VERSION_MAX,
            node_http_req_method_str(req), node_http_req_path(req), more);
}

/* see peer_api.h */
void node_peer_tls_refused(void *data, const char *peer, const char *why)
{
    struct node_peer_api *api = data;
    char host[64], more[64] = "";
    uint64_t quiet = 0;

    peer_host(peer, host, sizeof(host));
    if (!node_peer_warn_due(api->warns, NODE_PEER_WARN_SLOTS, host, at_now_ms(),
                            &quiet))
        return;
    if (quiet > 0)
        snprintf(more, sizeof(more), " (%" PRIu64 " more from %s since)", quiet,
                 host);
    LOG_WARN("peer %s refused by mutual TLS: %s%s", peer, why, more);
}

/* True when req states a version this node accepts; else answers 426. */
static bool version_ok(struct node_peer_api *api, struct node_http_req *req)
{
    unsigned v = proto_peer_version_of(
        node_http_req_header(req, PROTO_PEER_VERSION_HEADER));
    char msg[256];

    if (proto_peer_version_ok(v))
        return true;
    version_warn(api, req, v);
    snprintf(msg, sizeof(msg),
             "peer protocol %u is not accepted: this node speaks %d "
             "(accepts %d..%d); upgrade the older node",
             v, PROTO_PEER_VERSION, PROTO_PEER_VERSION_MIN,
             PROTO_PEER_VERSION_MAX);
    node_http_resp_close(req);
    /* RFC 9110 15.5.22: a 426 names the protocol to switch to */
    node_http_resp_header(req, "Upgrade", "atoll-peer/%d", PROTO_PEER_VERSION);
    node_peer__error(req, 426, "PEER_PROTOCOL", msg);
    return false;
}

/* ---- routing ---- */

/* Hand req to the handler of ep. */
static void dispatch(struct node_peer_api *api,
                     struct node_http_req *req,
                     enum proto_peer_ep ep,
                     const char *rest)
{
    struct at_buf b;

    switch (ep) {
    case PROTO_PEER_RAFT:
        node_peer__raft(api, req);
        break;
    case PROTO_PEER_MEMBERS:
        at_buf_init(&b, 0);
        node_peer_members_json(api->meta, api->gossip, &b);
        node_peer__reply_body(req, 200, "application/json", b.data, b.len);
        at_buf_release(&b);
        break;
    case PROTO_PEER_BLOB:
        node_peer__blob(api, req, rest);
        break;
    case PROTO_PEER_SNAPSHOT:
        node_peer__snapshot(api, req, rest);
        break;
    case PROTO_PEER_REPLICATE: /* reads its own body */
        node_replicate_handle(api->node_api, req);
        break;
    case PROTO_PEER_PULLTHROUGH:
        node_pullthrough_handle(api->node_api, req, rest);
        break;
    case PROTO_PEER_RELAY:
        /* An upload request relayed by the node it landed on
         * (node/cluster/proxy.c): served as on the API port, never relayed
         * again. */
        api->relay(api->node_api, req);
        break;
    default: /* the body is buffered, then one handler runs */
        op_start(api, req, ep);
        break;
    }
}

/* see peer_api.h */
void node_peer_api_handle(void *data, struct node_http_req *req)
{
    struct node_peer_api *api = data;
    const char *path = node_http_req_path(req);
    const char *rest = "";
    enum proto_peer_ep ep;

    node_reply_bind(req, &api->reply);
    node_http_resp_header(req, PROTO_PEER_VERSION_HEADER, "%d",
                          PROTO_PEER_VERSION);
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
    if (!version_ok(api, req))
        return;
    ep = proto_peer_find(path, &rest);
    /* gossip runs before the metadata opens and after it closed */
    if (api->meta == NULL && ep != PROTO_PEER_GOSSIP) {
        node_peer__error(req, 503, "UNAVAILABLE", "node is starting");
        return;
    }
    if (ep == PROTO_PEER_RELAY &&
        (api->relay == NULL || api->node_api == NULL ||
         node_http_req_header(req, "x-atoll-proxied") == NULL))
        ep = PROTO_PEER_EP_COUNT;
    if ((ep == PROTO_PEER_REPLICATE || ep == PROTO_PEER_PULLTHROUGH) &&
        api->node_api == NULL)
        ep = PROTO_PEER_EP_COUNT;
    if (ep == PROTO_PEER_EP_COUNT) {
        node_peer__error(req, 404, "UNSUPPORTED", "unknown peer endpoint");
        return;
    }
    if (!proto_peer_method_ok(ep, node_http_req_method_str(req))) {
        node_peer__error(req, 405, "UNSUPPORTED", "method not allowed");
        return;
    }
    dispatch(api, req, ep, rest);
}
