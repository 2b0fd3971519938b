/* The client side of the peer protocol's leader calls: the meta hooks
 * (forward -> propose, read_index -> read-index, term -> term) that reach
 * another node's peer listener, with protobuf bodies and PeerReply
 * answers. */
#include "common/compat.h"

#define AT_LOG_COMP "peer"

#include "node/cluster/gossip.h"
#include "node/cluster/peer_api.h"
#include "node/cluster/peer_internal.h"

/* One call to another node: the endpoint and whose callback gets the
 * answer. */
struct hook_call {
    enum proto_peer_ep ep;
    meta_forward_cb fwd;
    meta_index_cb idx;
    void *cb_data;
};

/* The meta status of an answer: 0 and the PeerReply in *r, or why not.
 * Nothing that the leader did not answer with its own document counts as
 * applied there. */
static int answer_status(int status,
                         int http,
                         const char *body,
                         size_t len,
                         struct proto_peer_reply *r)
{
    char errmsg[AT_ERRMSG_SIZE];

    if (status == AT_EIO || status == AT_EPROTO)
        return AT_ENOTLEADER; /* never reached, or refused before dispatch */
    if (status == AT_ESHUTDOWN)
        return AT_ESHUTDOWN;
    if (status != 0)
        return AT_EUNKNOWN;
    /* 401, 404, 426 and 5xx from the front are JSON error documents, which
     * never decode as a PeerReply (a '{' is no protobuf tag) */
    if (proto_peer_reply_unpack(body, len, r, errmsg) != 0) {
        LOG_DEBUG("peer answer (HTTP %d) is no PeerReply: %s", http, errmsg);
        return http == 200 ? AT_EUNKNOWN : AT_ENOTLEADER;
    }
    if (http != 200)
        return r->status == AT_ESHUTDOWN || r->status == AT_ENOSPC
                   ? r->status
                   : AT_ENOTLEADER;
    if (r->status > 0 || r->status < -100)
        return AT_EUNKNOWN;
    return r->status;
}

static void on_hook_answer(void *data,
                           int status,
                           int http,
                           const char *body,
                           size_t len)
{
    struct hook_call *hc = data;
    struct proto_peer_reply r = { 0 };
    int out = answer_status(status, http, body, len, &r);

    if (hc->fwd != NULL)
        hc->fwd(hc->cb_data, out, out == 0 ? r.result : 0,
                out == 0 ? r.index : 0);
    else
        hc->idx(hc->cb_data, out,
                out != 0                    ? 0
                : hc->ep == PROTO_PEER_TERM ? r.term
                                            : r.index);
    proto_peer_reply_release(&r);
    at_free(hc);
}

/* POST m to addr; 0 and then on_hook_answer runs, or an AT_E* for the
 * caller (the callback never runs). */
static int hook_post(struct node_peer_api *api,
                     const char *addr,
                     const struct proto_peer_msg *m,
                     uint64_t timeout_ms,
                     struct hook_call *hc)
{
    char errmsg[AT_ERRMSG_SIZE];
    struct at_buf b;
    int rv;

    at_buf_init(&b, 0);
    rv = proto_peer_msg_pack(m, &b, errmsg);
    if (rv != 0) {
        LOG_WARN("peer %s: %s", proto_peer_endpoints[m->ep].name, errmsg);
        at_buf_release(&b);
        return rv;
    }
    hc->ep = m->ep;
    rv = node_peer_request(api->peer, "POST", addr, proto_peer_path(m->ep),
                           PROTO_PEER_CONTENT_TYPE, b.data, b.len, timeout_ms,
                           on_hook_answer, hc);
    at_buf_release(&b);
    return rv;
}

static int hook_send(struct node_peer_api *api,
                     uint64_t leader_id,
                     const struct proto_peer_msg *m,
                     struct hook_call *hc)
{
    struct meta_node leader;
    const char *addr;
    int rv;

    if (api->peer == NULL || api->meta == NULL || api->stopping)
        return AT_ENOTLEADER;
    if (!meta_leader(api->meta, &leader) ||
        (leader_id != 0 && leader.id != leader_id))
        return AT_ENOTLEADER;
    addr = node_peer__address_of(api, leader.name, leader.peer_address);
    if (addr == NULL)
        return AT_ENOTLEADER;
    rv = hook_post(api, addr, m, NODE_PEER_TIMEOUT_MS, hc);
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
    struct proto_peer_msg m = { .ep = PROTO_PEER_PROPOSE };
    int rv;

    hc->fwd = cb;
    hc->cb_data = cb_data;
    m.u.propose.command = cmd;
    m.u.propose.len = len;
    rv = hook_send(hooks_data, leader_id, &m, hc);
    if (rv != 0)
        at_free(hc);
    return rv;
}

static int hook_read_index(void *hooks_data,
                           uint64_t leader_id,
                           meta_index_cb cb,
                           void *cb_data)
{
    struct node_peer_api *api = hooks_data;
    struct hook_call *hc = at_calloc(1, sizeof(*hc));
    struct proto_peer_msg m = { .ep = PROTO_PEER_READ_INDEX };
    struct meta_status st;
    int rv;

    hc->idx = cb;
    hc->cb_data = cb_data;
    /* our id and term, read now (after the reads it serves arrived): the
     * leader may count them as our vote of confidence (meta.h) */
    if (api->meta != NULL) {
        meta_status_get(api->meta, &st);
        m.u.read_index.from_id = st.id;
        m.u.read_index.from_term = meta_term(api->meta);
    }
    rv = hook_send(api, leader_id, &m, hc);
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
    addr =
        node_peer__address_of(api, f.name[0] != '\0' ? f.name : NULL, f.addr);
    if (addr == NULL)
        return AT_ENOTFOUND;
    struct hook_call *hc = at_calloc(1, sizeof(*hc));
    struct proto_peer_msg m = { .ep = PROTO_PEER_TERM };
    hc->idx = cb;
    hc->cb_data = cb_data;
    rv = hook_post(api, addr, &m, timeout_ms, hc);
    if (rv != 0)
        at_free(hc);
    return rv;
}

/* ---- a snapshot file fetched from a peer (raft/snaprecv.h) ---- */

struct snap_fetch {
    int fd;            /* borrowed: raft's temporary file */
    uint64_t len, got; /* bytes expected, written */
    void (*cb)(void *cb_data, int status);
    void *cb_data;
};

/* Each piece of the body, written at once: the page cache takes it (the
 * pool fsyncs the whole file before raft sees it). */
static int snap_data(void *data, const char *p, size_t n)
{
    struct snap_fetch *f = data;
    if (n > f->len - f->got)
        return AT_ETOOBIG;
    while (n > 0) {
        ssize_t w = write(f->fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return errno == ENOSPC ? AT_ENOSPC : AT_EIO;
        p += w;
        n -= (size_t)w;
        f->got += (uint64_t)w;
    }
    return 0;
}

static void snap_done(void *data,
                      int status,
                      int http,
                      const char *body,
                      size_t len)
{
    struct snap_fetch *f = data;
    AT_UNUSED(body);
    AT_UNUSED(len);
    if (status == 0 && http != 200)
        status = http == 404 ? AT_ENOTFOUND : AT_EPROTO;
    else if (status == 0 && f->got != f->len)
        status = AT_ECORRUPT; /* short */
    f->cb(f->cb_data, status);
    at_free(f);
}

/* Bytes per second a fetch is given at least, on top of a minute. */
#define SNAP_FETCH_MIN_RATE (10u << 20)

static int hook_snapshot_fetch(void *hooks_data,
                               uint64_t from_id,
                               const char *from_name,
                               uint64_t index,
                               uint64_t hash,
                               uint64_t len,
                               int fd,
                               void (*cb)(void *cb_data, int status),
                               void *cb_data)
{
    struct node_peer_api *api = hooks_data;
    struct node_find nf = { .id = from_id };
    char path[PROTO_PEER_SNAPSHOT_PATH_SIZE];

    if (api->peer == NULL || api->meta == NULL || api->stopping)
        return AT_ESHUTDOWN;
    meta_members(api->meta, node_find_each, &nf);
    const char *addr = node_peer__address_of(
        api, nf.name[0] != '\0' ? nf.name : from_name, nf.addr);
    if (addr == NULL)
        return AT_ENOTFOUND;
    proto_peer_snapshot_path(index, hash, path);
    struct snap_fetch *f = at_calloc(1, sizeof(*f));
    f->fd = fd;
    f->len = len;
    f->cb = cb;
    f->cb_data = cb_data;
    int rv = node_peer_stream(api->peer, addr, path,
                              60000 + len / (SNAP_FETCH_MIN_RATE / 1000),
                              snap_data, snap_done, f, NULL);
    if (rv != 0)
        at_free(f);
    return rv;
}

/* Gossip's view of a node (UNKNOWN without gossip). */
static enum meta_liveness hook_liveness(void *hooks_data,
                                        const char *name,
                                        uint64_t *since_ms)
{
    struct node_peer_api *api = hooks_data;

    return node_gossip_liveness(api->gossip, name, since_ms);
}

/* see peer_api.h */
const struct meta_hooks node_peer_hooks = {
    .forward = hook_forward,
    .read_index = hook_read_index,
    .term = hook_term,
    .liveness = hook_liveness,
    .snapshot_fetch = hook_snapshot_fetch,
};
