/* Peer listener endpoints (raft upgrade, propose, read index, join,
 * membership) and the meta hooks that reach the leader's endpoints.
 *
 * Every request must carry Authorization: Bearer <cluster secret>; anything
 * else gets a 401, a WARN line naming the peer address (never the secret)
 * and a closed connection. Requests with a body are buffered (bounded per
 * endpoint), then one async meta call runs; the request is referenced until
 * its callback answered (or found the client gone). join, members/remove and
 * transfer on a follower are proxied once to the leader's peer listener. */
#include "common/compat.h"

#define AT_LOG_COMP "peer"

#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <unistd.h>

#include "node/cluster/peer_api.h"
#include "node/cluster/replicate.h"
#include "node/cluster/verify.h"
#include "node/reply/reply.h"

enum peer_op_kind {
    OP_PROPOSE,
    OP_READ_INDEX,
    OP_JOIN,
    OP_REMOVE,
    OP_TRANSFER,
};

/* One in-flight peer request. */
struct peer_op {
    struct node_peer_api *api; /* borrowed */
    struct node_http_req *req; /* one reference */
    enum peer_op_kind kind;
    struct at_buf body; /* bounded by the endpoint's maximum */
    bool proxied;       /* arrived from another follower: never proxy again */
    char name[256];     /* join: the joining node's name */
    char notify[256];   /* remove: peer address of the removed node */
    uint64_t notify_id; /* remove: its raft id */
};

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

/* An OCI-style error document. */
static void peer_error(struct node_http_req *req,
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

static void reply_json(struct node_http_req *req,
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

static void reply_status(struct node_http_req *req, int http, int status)
{
    char b[64];
    int n = snprintf(b, sizeof(b), "{\"status\":%d}\n", status);

    reply_json(req, http, b, (size_t)n);
}

static const char *role_name(int role)
{
    switch (role) {
    case 0:
        return "spare";
    case 1:
        return "voter";
    case 2:
        return "standby";
    default:
        return "none";
    }
}

struct members_ctx {
    struct at_buf *out;
    bool first;
};

static void put_str(struct at_buf *b, const char *key, const char *v)
{
    at_buf_printf(b, "\"%s\":", key);
    if (v == NULL)
        v = "";
    at_buf_json_str(b, v, strlen(v));
}

static void members_each(void *data, const struct meta_node *n)
{
    struct members_ctx *mc = data;
    struct at_buf *b = mc->out;

    at_buf_puts(b, mc->first ? "{" : ",{");
    mc->first = false;
    put_str(b, "name", n->name);
    at_buf_printf(b, ",\"id\":%" PRIu64 ",", n->id);
    put_str(b, "peer_address", n->peer_address);
    at_buf_puts(b, ",");
    put_str(b, "api_address", n->api_address);
    at_buf_puts(b, ",");
    put_str(b, "region", n->region);
    at_buf_printf(b, ",\"role\":\"%s\",\"leader\":%s}", role_name(n->role),
                  n->leader ? "true" : "false");
}

/* see peer_api.h */
void node_peer_members_json(struct meta *m, struct at_buf *out)
{
    struct meta_node leader;
    struct members_ctx mc = { out, true };

    at_buf_puts(out, "{\"leader\":");
    if (meta_leader(m, &leader) && leader.name != NULL)
        at_buf_json_str(out, leader.name, strlen(leader.name));
    else
        at_buf_puts(out, "null");
    at_buf_puts(out, ",\"nodes\":[");
    meta_members(m, members_each, &mc);
    at_buf_puts(out, "]}\n");
}

static void op_free(struct peer_op *op)
{
    at_buf_release(&op->body);
    if (op->req != NULL)
        node_http_req_unref(op->req);
    at_free(op);
}

/* ---- proxying to the leader ---- */

static void on_proxied(void *data,
                       int status,
                       int http,
                       const char *body,
                       size_t len)
{
    struct peer_op *op = data;

    if (status != 0) {
        reply_status(op->req, 503,
                     status == AT_EIO ? AT_ENOTLEADER : AT_EUNKNOWN);
    } else {
        reply_json(op->req, http, body, len);
    }
    op_free(op);
}

/* Send the buffered body to the leader's peer listener, same path (once:
 * the leader never proxies a proxied request again); relays its answer. */
static void op_proxy(struct peer_op *op, const char *path)
{
    struct meta_node leader;
    bool known = !op->proxied && meta_leader(op->api->meta, &leader);
    char *p;
    int rv;

    if (known &&
        (leader.peer_address == NULL || leader.peer_address[0] == '\0') &&
        leader.name != NULL)
        leader.peer_address = at_map_gets(&op->api->peer_hints, leader.name);
    if (!known || op->api->peer == NULL || leader.peer_address == NULL ||
        leader.peer_address[0] == '\0') {
        reply_status(op->req, 503, AT_ENOTLEADER);
        op_free(op);
        return;
    }
    p = at_asprintf("%s?proxied=1", path);
    rv = node_peer_request(op->api->peer, "POST", leader.peer_address, p,
                           "application/json", op->body.data, op->body.len,
                           NODE_PEER_TIMEOUT_MS, on_proxied, op);
    at_free(p);
    if (rv != 0) {
        reply_status(op->req, 503, AT_ENOTLEADER);
        op_free(op);
    }
}

/* ---- operations ---- */

static void on_propose_done(void *data, int status, int result, uint64_t index)
{
    struct peer_op *op = data;
    char b[128];
    int n;

    if (status == AT_ENOTLEADER) {
        reply_status(op->req, 503, status);
    } else {
        n = snprintf(b, sizeof(b),
                     "{\"status\":%d,\"result\":%d,\"index\":%" PRIu64 "}\n",
                     status, result, index);
        reply_json(op->req, 200, b, (size_t)n);
    }
    op_free(op);
}

static void on_read_index(void *data, int status, uint64_t index)
{
    struct peer_op *op = data;
    char b[96];
    int n;

    if (status != 0) {
        reply_status(op->req, 503, status);
    } else {
        n = snprintf(b, sizeof(b), "{\"status\":0,\"index\":%" PRIu64 "}\n",
                     index);
        reply_json(op->req, 200, b, (size_t)n);
    }
    op_free(op);
}

struct role_find {
    const char *name;
    uint64_t id;
    int role;
    const char *peer_address; /* borrowed for the meta_members call */
    bool found, other_address;
    const char *want_address;
};

static void role_each(void *data, const struct meta_node *n)
{
    struct role_find *rf = data;

    if (n->name == NULL || strcmp(n->name, rf->name) != 0)
        return;
    rf->found = true;
    rf->id = n->id;
    rf->role = n->role;
    if (rf->want_address != NULL && n->peer_address != NULL &&
        strcmp(n->peer_address, rf->want_address) != 0)
        rf->other_address = true;
}

static void on_join_done(void *data, int status)
{
    struct peer_op *op = data;
    struct role_find rf;
    char b[128];
    int n;

    if (status == AT_ENOTLEADER) {
        reply_status(op->req, 503, status);
    } else if (status == AT_EEXIST) {
        reply_status(op->req, 409, status);
    } else if (status != 0) {
        reply_status(op->req, 500, status);
    } else {
        memset(&rf, 0, sizeof(rf));
        rf.name = op->name;
        rf.role = -1;
        meta_members(op->api->meta, role_each, &rf);
        n = snprintf(b, sizeof(b), "{\"id\":%" PRIu64 ",\"role\":\"%s\"}\n",
                     rf.id, role_name(rf.role));
        reply_json(op->req, 200, b, (size_t)n);
    }
    op_free(op);
}

static void on_removed_told(void *data,
                            int status,
                            int http,
                            const char *body,
                            size_t len)
{
    AT_UNUSED(data);
    AT_UNUSED(body);
    AT_UNUSED(len);
    if (status != 0 || http != 200)
        LOG_INFO("the removed node was not told (it may be down): %s",
                 status != 0 ? at_strerror(status) : "refused");
}

static void on_member_done(void *data, int status)
{
    struct peer_op *op = data;

    /* tell a removed node, which no longer gets the log, that it is out */
    if (status == 0 && op->kind == OP_REMOVE && op->notify[0] != '\0' &&
        op->api->peer != NULL) {
        char path[64];
        snprintf(path, sizeof(path), "/_atoll/removed/%" PRIu64, op->notify_id);
        node_peer_request(op->api->peer, "POST", op->notify, path, NULL, NULL,
                          0, 2000, on_removed_told, NULL);
    }

    if (status == 0)
        reply_status(op->req, 200, 0);
    else if (status == AT_ENOTFOUND)
        reply_status(op->req, 404, status);
    else
        reply_status(op->req, 503, status);
    op_free(op);
}

static void notify_find(void *data, const struct meta_node *n)
{
    struct peer_op *op = data;

    if (n->name != NULL && strcmp(n->name, op->name) == 0 &&
        n->peer_address != NULL) {
        snprintf(op->notify, sizeof(op->notify), "%s", n->peer_address);
        op->notify_id = n->id;
    }
}

/* Leadership moved away before this node (the old leader) is removed:
 * the new leader does the removal (one more hop even for a request that
 * was proxied here already: the new leader answers it itself). */
static void on_self_transferred(void *data, int status)
{
    struct peer_op *op = data;

    if (status != 0) {
        on_member_done(op, status);
        return;
    }
    op->proxied = false;
    op_proxy(op, "/_atoll/members/remove");
}

static bool is_leader(struct meta *m)
{
    struct meta_status st;

    meta_status_get(m, &st);
    return st.state == 3;
}

/* A printable string field of at most max bytes; NULL when absent or bad. */
static const char *json_field(json_t *o, const char *key, size_t max)
{
    json_t *v = json_object_get(o, key);
    const char *s;

    if (!json_is_string(v))
        return NULL;
    s = json_string_value(v);
    if (strlen(s) > max)
        return NULL;
    for (const char *p = s; *p != '\0'; p++)
        if ((unsigned char)*p < ' ' || *p == 127)
            return NULL;
    return s;
}

static void op_join(struct peer_op *op, json_t *doc)
{
    struct meta_node n;
    struct role_find rf;
    json_t *sb = json_object_get(doc, "standby");
    json_t *idv = json_object_get(doc, "id");
    int rv;

    memset(&n, 0, sizeof(n));
    n.name = json_field(doc, "name", 200);
    n.peer_address = json_field(doc, "peer_address", 255);
    n.api_address = json_field(doc, "api_address", 255);
    n.region = json_field(doc, "region", 200);
    if (n.region == NULL)
        n.region = "";
    if (idv != NULL && json_is_integer(idv) && json_integer_value(idv) > 0)
        n.id = (uint64_t)json_integer_value(idv);
    if (n.name == NULL || n.name[0] == '\0' || n.peer_address == NULL ||
        n.peer_address[0] == '\0' || n.api_address == NULL ||
        (sb != NULL && !json_is_boolean(sb))) {
        reply_status(op->req, 400, AT_EINVAL);
        op_free(op);
        return;
    }
    snprintf(op->name, sizeof(op->name), "%s", n.name);
    memset(&rf, 0, sizeof(rf));
    rf.name = n.name;
    rf.want_address = n.peer_address;
    meta_members(op->api->meta, role_each, &rf);
    if (rf.other_address) {
        reply_status(op->req, 409, AT_EEXIST);
        op_free(op);
        return;
    }
    LOG_INFO("join request from node '%s' at %s (%s)", n.name, n.peer_address,
             json_is_true(sb) ? "standby" : "voter");
    rv =
        meta_member_join(op->api->meta, &n, json_is_true(sb), on_join_done, op);
    if (rv != 0)
        on_join_done(op, rv);
}

/* The whole body is here: run the operation. */
static void op_run(struct peer_op *op)
{
    struct meta *m = op->api->meta;
    json_t *doc = NULL;
    json_error_t jerr;
    int rv = 0;

    if (op->kind == OP_PROPOSE) {
        rv = meta_propose_packed(m, op->body.data, op->body.len,
                                 on_propose_done, op);
        if (rv != 0) {
            reply_status(op->req, rv == AT_ENOTLEADER ? 503 : 400, rv);
            op_free(op);
        }
        return;
    }
    if (op->kind == OP_READ_INDEX) {
        /* body (optional): "<asker id> <asker term>", see hook_read_index */
        uint64_t from_id = 0, from_term = 0;
        const char *b = op->body.data, *sp;
        if (b != NULL && op->body.len > 0 &&
            (sp = memchr(b, ' ', op->body.len)) != NULL &&
            (at_parse_u64(b, (size_t)(sp - b), &from_id) != 0 ||
             at_parse_u64(sp + 1, op->body.len - (size_t)(sp + 1 - b),
                          &from_term) != 0))
            from_id = from_term = 0;
        rv = meta_read_index_for(m, from_id, from_term, on_read_index, op);
        if (rv != 0)
            on_read_index(op, rv, 0);
        return;
    }
    if (!is_leader(m)) {
        op_proxy(op, op->kind == OP_JOIN     ? "/_atoll/join"
                     : op->kind == OP_REMOVE ? "/_atoll/members/remove"
                                             : "/_atoll/transfer");
        return;
    }
    doc = json_loadb(op->body.len > 0 ? op->body.data : "{}",
                     op->body.len > 0 ? op->body.len : 2, 0, &jerr);
    if (doc == NULL || !json_is_object(doc)) {
        json_decref(doc);
        reply_status(op->req, 400, AT_EINVAL);
        op_free(op);
        return;
    }
    switch (op->kind) {
    case OP_JOIN:
        op_join(op, doc);
        break;
    case OP_REMOVE: {
        const char *name = json_field(doc, "name", 200);
        if (name == NULL) {
            reply_status(op->req, 400, AT_EINVAL);
            op_free(op);
            break;
        }
        struct meta_status st;
        meta_status_get(m, &st);
        if (st.name != NULL && strcmp(name, st.name) == 0) {
            /* A leader that removes itself steps down half-way and cannot
             * tell the outcome: hand leadership over, then let the new
             * leader remove this node. */
            LOG_INFO(
                "removing this node, the leader: handing leadership "
                "over first");
            rv = meta_transfer(m, NULL, on_self_transferred, op);
            if (rv != 0)
                on_member_done(op, rv);
            break;
        }
        LOG_INFO("removing node '%s' from the cluster", name);
        snprintf(op->name, sizeof(op->name), "%s", name);
        meta_members(m, notify_find, op);
        rv = meta_member_remove(m, name, on_member_done, op);
        if (rv != 0)
            on_member_done(op, rv);
        break;
    }
    case OP_TRANSFER: {
        json_t *nv = json_object_get(doc, "name");
        const char *name = json_field(doc, "name", 200);
        if (nv != NULL && !json_is_null(nv) && name == NULL) {
            reply_status(op->req, 400, AT_EINVAL);
            op_free(op);
            break;
        }
        LOG_INFO("transferring leadership to %s", name != NULL ? name : "any");
        rv = meta_transfer(m, name, on_member_done, op);
        if (rv != 0)
            on_member_done(op, rv);
        break;
    }
    default:
        break;
    }
    json_decref(doc);
}

static int op_on_body(struct node_http_req *req, const char *p, size_t n)
{
    struct peer_op *op = node_http_req_data(req);

    if (op == NULL)
        return 0;
    if (at_buf_append(&op->body, p, n) != 0) {
        node_http_req_set_data(req, NULL);
        reply_status(req, 413, AT_ETOOBIG);
        /* The server stops reading; the abort/end callbacks will not run. */
        op_free(op);
        return 0;
    }
    return 0;
}

static void op_on_end(struct node_http_req *req)
{
    struct peer_op *op = node_http_req_data(req);

    if (op == NULL)
        return;
    node_http_req_set_data(req, NULL);
    op_run(op);
}

static void op_on_abort(struct node_http_req *req)
{
    struct peer_op *op = node_http_req_data(req);

    /* Only while the body is read: after that the op owns its lifetime. */
    if (op != NULL) {
        node_http_req_set_data(req, NULL);
        op_free(op);
    }
}

static void op_start(struct node_peer_api *api,
                     struct node_http_req *req,
                     enum peer_op_kind kind,
                     size_t max)
{
    struct peer_op *op = at_calloc(1, sizeof(*op));
    const char *q = node_http_req_query(req);

    op->api = api;
    op->req = req;
    op->kind = kind;
    op->proxied = q != NULL && strstr(q, "proxied=1") != NULL;
    node_http_req_ref(req);
    at_buf_init(&op->body, max);
    if (node_http_req_has_length(req) &&
        node_http_req_content_length(req) > max) {
        reply_status(req, 413, AT_ETOOBIG);
        op_free(op);
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

/* ---- raft upgrade ---- */

struct raft_accept {
    struct node_peer_api *api; /* borrowed */
    uint64_t id;
    char address[256];
    char peer_address[256]; /* X-Atoll-Peer-Address, may be "" */
    char peer[64];
};

#define PEER_HINTS_MAX 1024

static void hint_put(struct node_peer_api *api,
                     const char *name,
                     const char *addr)
{
    const char *old = at_map_gets(&api->peer_hints, name);

    if (old != NULL && strcmp(old, addr) == 0)
        return;
    if (old == NULL && api->peer_hints.len >= PEER_HINTS_MAX)
        return;
    at_free(at_map_put(&api->peer_hints, name, strlen(name), at_strdup(addr)));
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

static void on_stream_closed(uv_handle_t *h)
{
    at_free(h);
}

static void on_raft_upgraded(void *data, uv_stream_t *stream)
{
    struct raft_accept *ra = data;

    if (stream == NULL) {
        LOG_INFO("raft connection from %s failed during the upgrade", ra->peer);
    } else if (ra->api->stopping || ra->api->meta == NULL) {
        uv_close((uv_handle_t *)stream, on_stream_closed);
    } else {
        LOG_DEBUG("raft connection from node %" PRIu64 " '%s' (%s)", ra->id,
                  ra->address, ra->peer);
        if (ra->peer_address[0] != '\0') {
            meta_peer_hint(ra->api->meta, ra->address, ra->peer_address);
            hint_put(ra->api, ra->address, ra->peer_address);
        }
        meta_raft_accept(ra->api->meta, ra->id, ra->address, stream);
    }
    at_free(ra);
}

static void handle_raft(struct node_peer_api *api, struct node_http_req *req)
{
    const char *up = node_http_req_header(req, "upgrade");
    const char *idh = node_http_req_header(req, "x-atoll-raft-id");
    const char *addr = node_http_req_header(req, "x-atoll-raft-address");
    const char *paddr = node_http_req_header(req, "x-atoll-peer-address");
    struct raft_accept *ra;
    uint64_t id = 0;
    bool addr_ok = addr != NULL && addr[0] != '\0' && strlen(addr) < 256;

    for (const char *p = addr; addr_ok && *p != '\0'; p++)
        if ((unsigned char)*p <= ' ' || *p == 127)
            addr_ok = false;
    if (up == NULL || strcasecmp(up, NODE_PEER_RAFT_PROTO) != 0 ||
        idh == NULL || at_parse_u64(idh, strlen(idh), &id) != 0 || id == 0 ||
        !addr_ok || node_http_req_has_body(req)) {
        LOG_WARN("bad raft upgrade request from %s", node_http_req_peer(req));
        node_http_resp_close(req);
        peer_error(req, 400, "BAD_REQUEST", "bad raft upgrade request");
        return;
    }
    if (api->stopping || api->meta == NULL) {
        node_http_resp_close(req);
        peer_error(req, 503, "UNAVAILABLE", "node is stopping");
        return;
    }
    ra = at_calloc(1, sizeof(*ra));
    ra->api = api;
    ra->id = id;
    snprintf(ra->address, sizeof(ra->address), "%s", addr);
    if (paddr != NULL && strlen(paddr) < sizeof(ra->peer_address))
        snprintf(ra->peer_address, sizeof(ra->peer_address), "%s", paddr);
    snprintf(ra->peer, sizeof(ra->peer), "%s", node_http_req_peer(req));
    node_http_req_upgrade(req, NODE_PEER_RAFT_PROTO, on_raft_upgraded, ra);
}

/* ---- blobs for peer fetch ---- */

/* GET /_atoll/blobs/<digest>: the local copy, for a node that fetches a blob
 * it knows from the metadata but does not hold (node/cluster/fetch.c). */
struct peer_blob {
    struct node_peer_api *api;
    struct at_digest d;
};

static void peer_blob_serve(struct node_http_req *req,
                            int fd,
                            uint64_t size,
                            void *data)
{
    struct peer_blob *pb = data;
    char dstr[AT_DIGEST_STR_SIZE];

    if (node_http_req_method(req) == NODE_HTTP_GET) {
        pb->api->blob_serves++;
        LOG_INFO("serving blob '%s' (%" PRIu64 " bytes) to peer %s",
                 at_digest_format(&pb->d, dstr), size, node_http_req_peer(req));
    }
    node_http_resp_status(req, 200);
    node_http_resp_header(req, "Docker-Content-Digest", "%s",
                          at_digest_format(&pb->d, dstr));
    node_http_resp_header(req, "Content-Type", "application/octet-stream");
    node_http_resp_send_file(req, fd, 0, size);
}

static void peer_blob_bad(struct node_http_req *req, int status, void *data)
{
    AT_UNUSED(data);
    if (status == AT_EDIGEST)
        peer_error(req, 404, "BLOB_UNKNOWN",
                   "this node's copy was corrupt and is removed");
    else
        peer_error(req, 503, "UNAVAILABLE", "blob not readable now");
}

static void handle_blob(struct node_peer_api *api,
                        struct node_http_req *req,
                        const char *digest)
{
    struct at_digest d;
    uint64_t size = 0;
    int fd = -1;
    int rv;

    if (at_digest_parse(digest, strlen(digest), &d) != 0) {
        peer_error(req, 400, "DIGEST_INVALID", "invalid digest");
        return;
    }
    if (api->store == NULL || api->stopping) {
        peer_error(req, 503, "UNAVAILABLE", "node is stopping");
        return;
    }
    rv = storage_blob_open(api->store, &d, &fd, &size);
    if (rv != 0) {
        peer_error(req, rv == AT_ENOTFOUND ? 404 : 503,
                   rv == AT_ENOTFOUND ? "BLOB_UNKNOWN" : "UNAVAILABLE",
                   rv == AT_ENOTFOUND ? "blob not held by this node"
                                      : "blob not readable");
        return;
    }
    if (node_http_req_method(req) == NODE_HTTP_GET && api->node_api != NULL) {
        /* verified before a byte goes out (node/cluster/verify.h); the fetching
         * node checks the digest too, but a bad copy is better dropped
         * here at once */
        struct peer_blob *pb = at_calloc(1, sizeof(*pb));
        pb->api = api;
        pb->d = d;
        node_verify_then(api->node_api, req, &d, fd, size, peer_blob_serve,
                         peer_blob_bad, pb, free);
        return;
    }
    peer_blob_serve(req, fd, size, &(struct peer_blob){ api, d });
}

/* POST /_atoll/removed/<raft id of this node>: the leader removed this
 * node from the cluster (it gets no more log entries, so it cannot learn it
 * otherwise). Leave a marker in the raft dir (a restart refuses to serve
 * with it), log it, and stop gracefully. */
static void handle_removed(struct node_peer_api *api,
                           struct node_http_req *req,
                           const char *id_str)
{
    struct meta_status st;
    uint64_t id;
    char *path;
    int fd;

    meta_status_get(api->meta, &st);
    if (at_parse_u64(id_str, strlen(id_str), &id) != 0 || id != st.id) {
        peer_error(req, 409, "UNSUPPORTED", "not this node");
        return;
    }
    if (api->raft_dir == NULL) {
        peer_error(req, 503, "UNAVAILABLE", "no raft dir");
        return;
    }
    path = at_asprintf("%s/removed", api->raft_dir);
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        (void)!write(fd, st.name, strlen(st.name));
        fsync(fd);
        close(fd);
    }
    LOG_ERROR(
        "this node ('%s') was removed from the cluster: stopping; "
        "to bring it back, wipe its data dir and start it with --join",
        st.name);
    free(path);
    reply_json(req, 200, "{\"status\":0}\n", 13);
    uv_kill(getpid(), SIGTERM); /* the graceful shutdown path */
}

/* POST /_atoll/term: this node's current raft term, asked by a leader
 * confirming its leadership for reads (hooks->term). Answered at once. */
static void handle_term(struct node_peer_api *api, struct node_http_req *req)
{
    char b[64];
    int n = snprintf(b, sizeof(b), "{\"status\":0,\"index\":%" PRIu64 "}\n",
                     meta_term(api->meta));

    reply_json(req, 200, b, (size_t)n);
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
        peer_error(req, 401, "UNAUTHORIZED", "missing or wrong cluster secret");
        return;
    }
    if (api->meta == NULL) {
        peer_error(req, 503, "UNAVAILABLE", "node is starting");
        return;
    }
    if (strcmp(path, "/_atoll/members") == 0 &&
        (method == NODE_HTTP_GET || method == NODE_HTTP_HEAD)) {
        at_buf_init(&b, 0);
        node_peer_members_json(api->meta, &b);
        reply_json(req, 200, b.data, b.len);
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
        handle_blob(api, req, path + 14);
        return;
    }
    if (method != NODE_HTTP_POST) {
        peer_error(req, strncmp(path, "/_atoll/", 8) == 0 ? 405 : 404,
                   "UNSUPPORTED", "unknown peer endpoint");
        return;
    }
    if (strcmp(path, "/_atoll/raft") == 0)
        handle_raft(api, req);
    else if (strcmp(path, "/_atoll/propose") == 0)
        op_start(api, req, OP_PROPOSE, NODE_PEER_PROPOSE_MAX);
    else if (strcmp(path, "/_atoll/read-index") == 0)
        op_start(api, req, OP_READ_INDEX, NODE_PEER_JSON_MAX);
    else if (strcmp(path, "/_atoll/term") == 0)
        handle_term(api, req);
    else if (strncmp(path, "/_atoll/removed/", 16) == 0)
        handle_removed(api, req, path + 16);
    else if (strcmp(path, "/_atoll/replicate") == 0 && api->node_api != NULL)
        node_replicate_handle(api->node_api, req);
    else if (strcmp(path, "/_atoll/join") == 0)
        op_start(api, req, OP_JOIN, NODE_PEER_JSON_MAX);
    else if (strcmp(path, "/_atoll/members/remove") == 0)
        op_start(api, req, OP_REMOVE, NODE_PEER_JSON_MAX);
    else if (strcmp(path, "/_atoll/transfer") == 0)
        op_start(api, req, OP_TRANSFER, NODE_PEER_JSON_MAX);
    else
        peer_error(req, 404, "UNSUPPORTED", "unknown peer endpoint");
}

/* ---- hooks: a follower reaches the leader ---- */

struct hook_call {
    meta_forward_cb fwd;
    meta_index_cb idx;
    void *cb_data;
};

/* A JSON integer field; false when absent or not an integer. */
static bool json_int(json_t *o, const char *key, json_int_t *out)
{
    json_t *v = json_object_get(o, key);

    if (!json_is_integer(v))
        return false;
    *out = json_integer_value(v);
    return true;
}

static void on_hook_answer(void *data,
                           int status,
                           int http,
                           const char *body,
                           size_t len)
{
    struct hook_call *hc = data;
    json_t *doc = NULL;
    json_error_t jerr;
    json_int_t st = 0, result = 0, index = 0;
    int out;

    if (status == AT_EIO) {
        out = AT_ENOTLEADER; /* never reached the leader */
    } else if (status == AT_ESHUTDOWN) {
        out = AT_ESHUTDOWN;
    } else if (status != 0) {
        out = AT_EUNKNOWN;
    } else {
        doc = json_loadb(body, len, 0, &jerr);
        if (doc == NULL || !json_int(doc, "status", &st)) {
            /* 401, 404, 5xx without our document: not applied there. */
            out = http == 200 ? AT_EUNKNOWN : AT_ENOTLEADER;
        } else if (http != 200) {
            out = st == AT_ESHUTDOWN ? AT_ESHUTDOWN : AT_ENOTLEADER;
        } else {
            out = (int)st;
            json_int(doc, "result", &result);
            json_int(doc, "index", &index);
            if (index < 0)
                index = 0;
            if (out > 0 || out < -100)
                out = AT_EUNKNOWN;
        }
        json_decref(doc);
    }
    if (hc->fwd != NULL)
        hc->fwd(hc->cb_data, out, out == 0 ? (int)result : 0,
                out == 0 ? (uint64_t)index : 0);
    else
        hc->idx(hc->cb_data, out, out == 0 ? (uint64_t)index : 0);
    at_free(hc);
}

static int hook_send(struct node_peer_api *api,
                     uint64_t leader_id,
                     const char *path,
                     const void *body,
                     size_t len,
                     struct hook_call *hc)
{
    struct meta_node leader;
    int rv;

    if (api->peer == NULL || api->meta == NULL || api->stopping)
        return AT_ENOTLEADER;
    if (!meta_leader(api->meta, &leader) ||
        (leader_id != 0 && leader.id != leader_id))
        return AT_ENOTLEADER;
    if ((leader.peer_address == NULL || leader.peer_address[0] == '\0') &&
        leader.name != NULL)
        leader.peer_address = at_map_gets(&api->peer_hints, leader.name);
    if (leader.peer_address == NULL || leader.peer_address[0] == '\0')
        return AT_ENOTLEADER;
    rv = node_peer_request(api->peer, "POST", leader.peer_address, path,
                           "application/octet-stream", body, len,
                           NODE_PEER_TIMEOUT_MS, on_hook_answer, hc);
    if (rv != 0)
        return rv == AT_ESHUTDOWN ? AT_ESHUTDOWN : AT_ENOTLEADER;
    return 0;
}

static int hook_forward(void *hooks_data,
                        uint64_t leader_id,
                        const void *cmd,
                        size_t len,
                        meta_forward_cb cb,
                        void *cb_data)
{
    struct hook_call *hc = at_calloc(1, sizeof(*hc));
    int rv;

    hc->fwd = cb;
    hc->cb_data = cb_data;
    rv = hook_send(hooks_data, leader_id, "/_atoll/propose", cmd, len, hc);
    if (rv != 0)
        at_free(hc);
    return rv;
}

static int hook_read_index(void *hooks_data,
                           uint64_t leader_id,
                           meta_index_cb cb,
                           void *cb_data)
{
    struct hook_call *hc = at_calloc(1, sizeof(*hc));
    int rv;

    struct node_peer_api *api = hooks_data;
    struct meta_status st;
    char body[64];
    int n = 0;

    hc->idx = cb;
    hc->cb_data = cb_data;
    /* our id and term, read now (after the reads it serves arrived): the
     * leader may count them as our vote of confidence (meta.h) */
    if (api->meta != NULL) {
        meta_status_get(api->meta, &st);
        n = snprintf(body, sizeof(body), "%" PRIu64 " %" PRIu64, st.id,
                     meta_term(api->meta));
    }
    rv = hook_send(hooks_data, leader_id, "/_atoll/read-index",
                   n > 0 ? body : NULL, n > 0 ? (size_t)n : 0, hc);
    if (rv != 0)
        at_free(hc);
    return rv;
}

struct node_find {
    uint64_t id;
    char addr[256];
    char name[256];
};

static void node_find_each(void *data, const struct meta_node *n)
{
    struct node_find *f = data;

    if (n->id != f->id)
        return;
    snprintf(f->addr, sizeof(f->addr), "%s",
             n->peer_address != NULL ? n->peer_address : "");
    snprintf(f->name, sizeof(f->name), "%s", n->name != NULL ? n->name : "");
}

static int hook_term(void *hooks_data,
                     uint64_t node_id,
                     uint64_t timeout_ms,
                     meta_index_cb cb,
                     void *cb_data)
{
    struct node_peer_api *api = hooks_data;
    struct node_find f = { .id = node_id };
    const char *addr;
    int rv;

    if (api->peer == NULL || api->meta == NULL || api->stopping)
        return AT_ESHUTDOWN;
    meta_members(api->meta, node_find_each, &f);
    addr = f.addr;
    if (addr[0] == '\0' && f.name[0] != '\0')
        addr = at_map_gets(&api->peer_hints, f.name);
    if (addr == NULL || addr[0] == '\0')
        return AT_ENOTFOUND;
    struct hook_call *hc = at_calloc(1, sizeof(*hc));
    hc->idx = cb;
    hc->cb_data = cb_data;
    rv = node_peer_request(api->peer, "POST", addr, "/_atoll/term",
                           "application/octet-stream", NULL, 0, timeout_ms,
                           on_hook_answer, hc);
    if (rv != 0)
        at_free(hc);
    return rv;
}

/* see peer_api.h */
const struct meta_hooks node_peer_hooks = {
    .forward = hook_forward,
    .read_index = hook_read_index,
    .term = hook_term,
};
