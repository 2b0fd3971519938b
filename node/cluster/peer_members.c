/* Membership on the peer listener: join (PeerJoin -> PeerReply), remove
 * and leadership transfer (operator calls in JSON); a follower proxies
 * them once to the leader's peer listener. Also the notice a removed node
 * gets (PeerRemoved) and the members document. */
#include "common/compat.h"

#define AT_LOG_COMP "peer"

#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <unistd.h>

#include "node/cluster/gossip.h"
#include "node/cluster/peer_api.h"
#include "node/cluster/peer_internal.h"

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
    struct gossip_member_info *gm; /* owned: what gossip knows */
    bool *seen;                    /* owned: gm[i] is in the node table */
    size_t n, cap;
    bool gossip; /* gossip is on */
};

static void put_str(struct at_buf *b, const char *key, const char *v)
{
    at_buf_printf(b, "\"%s\":", key);
    if (v == NULL)
        v = "";
    at_buf_json_str(b, v, strlen(v));
}

static const char *gossip_state_name(enum gossip_state st)
{
    switch (st) {
    case GOSSIP_ALIVE:
        return "alive";
    case GOSSIP_SUSPECT:
        return "suspect";
    case GOSSIP_DEAD:
        return "dead";
    case GOSSIP_LEFT:
        return "left";
    }
    return "unknown";
}

/* ,"gossip":...,"rtt_ms":...,"version","zone","gossip_role" */
static void put_gossip(struct at_buf *b, const struct gossip_member_info *m)
{
    at_buf_printf(b, ",\"gossip\":\"%s\",\"rtt_ms\":",
                  m != NULL ? gossip_state_name(m->state) : "unknown");
    if (m != NULL && m->rtt_us > 0)
        at_buf_printf(b, "%.3f", m->rtt_us / 1000.0);
    else
        at_buf_puts(b, "null");
    at_buf_puts(b, ",");
    put_str(b, "version", m != NULL ? m->meta.version : "");
    at_buf_puts(b, ",");
    put_str(b, "zone", m != NULL ? m->meta.zone : "");
    at_buf_puts(b, ",");
    put_str(b, "gossip_role", m != NULL ? m->meta.role : "");
}

static void gossip_collect(void *data, const struct gossip_member_info *m)
{
    struct members_ctx *mc = data;

    if (mc->n == mc->cap) {
        mc->cap = mc->cap > 0 ? 2 * mc->cap : 16;
        mc->gm = at_realloc(mc->gm, mc->cap * sizeof(*mc->gm));
        mc->seen = at_realloc(mc->seen, mc->cap * sizeof(*mc->seen));
    }
    mc->seen[mc->n] = false;
    mc->gm[mc->n++] = *m;
}

static const struct gossip_member_info *gossip_find(struct members_ctx *mc,
                                                    const char *name)
{
    for (size_t i = 0; name != NULL && i < mc->n; i++)
        if (strcmp(mc->gm[i].name, name) == 0) {
            mc->seen[i] = true;
            return &mc->gm[i];
        }
    return NULL;
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
    at_buf_printf(b, ",\"role\":\"%s\",\"leader\":%s", role_name(n->role),
                  n->leader ? "true" : "false");
    if (mc->gossip)
        put_gossip(b, gossip_find(mc, n->name));
    at_buf_puts(b, "}");
}

/* Members gossip knows that are not in the node table: live ones that
 * have no raft state yet (joining). A member in-cluster by its own word
 * but absent from our table was removed (or our table lags): not shown,
 * nor are dead or left ones. */
static void gossip_only(struct members_ctx *mc)
{
    struct at_buf *b = mc->out;

    for (size_t i = 0; i < mc->n; i++) {
        const struct gossip_member_info *m = &mc->gm[i];
        if (mc->seen[i] || (m->meta.flags & GOSSIP_META_IN_CLUSTER) != 0 ||
            (m->state != GOSSIP_ALIVE && m->state != GOSSIP_SUSPECT))
            continue;
        at_buf_puts(b, mc->first ? "{" : ",{");
        mc->first = false;
        put_str(b, "name", m->name);
        at_buf_puts(b, ",\"id\":0,");
        put_str(b, "peer_address",
                m->meta.peer_addr[0] != '\0' ? m->meta.peer_addr : m->addr);
        at_buf_puts(b, ",");
        put_str(b, "api_address", m->meta.api_addr);
        at_buf_puts(b, ",");
        put_str(b, "region", m->meta.region);
        at_buf_puts(b, ",\"role\":\"none\",\"leader\":false");
        put_gossip(b, m);
        at_buf_puts(b, "}");
    }
}

/* see peer_api.h */
void node_peer_members_json(struct meta *m,
                            const struct node_gossip *g,
                            struct at_buf *out)
{
    struct meta_node leader;
    struct members_ctx mc = { .out = out, .first = true, .gossip = g != NULL };

    node_gossip_each(g, gossip_collect, &mc);
    at_buf_puts(out, "{\"leader\":");
    if (meta_leader(m, &leader) && leader.name != NULL)
        at_buf_json_str(out, leader.name, strlen(leader.name));
    else
        at_buf_puts(out, "null");
    at_buf_puts(out, ",\"nodes\":[");
    meta_members(m, members_each, &mc);
    gossip_only(&mc);
    at_buf_puts(out, "]}\n");
    at_free(mc.gm);
    at_free(mc.seen);
}

/* ---- proxying to the leader ---- */

static const char *content_type(const struct node_peer_op *op)
{
    return proto_peer_endpoints[op->ep].body == PROTO_PEER_BODY_PROTOBUF
               ? PROTO_PEER_CONTENT_TYPE
               : "application/json";
}

static void on_proxied(void *data,
                       int status,
                       int http,
                       const char *body,
                       size_t len)
{
    struct node_peer_op *op = data;

    if (status != 0) {
        /* not sent, or refused before the leader's handler ran */
        node_peer__reply_status(op, 503,
                                status == AT_EIO || status == AT_EPROTO
                                    ? AT_ENOTLEADER
                                    : AT_EUNKNOWN);
    } else {
        node_peer__reply_body(op->req, http, content_type(op), body, len);
    }
    node_peer__op_free(op);
}

/* Make op's body {"name": name} (a handoff forwarded names its node). */
static void body_name(struct node_peer_op *op, const char *name)
{
    at_buf_reset(&op->body);
    at_buf_puts(&op->body, "{\"name\":");
    at_buf_json_str(&op->body, name, strlen(name));
    at_buf_puts(&op->body, "}");
}

/* Send the buffered body to the leader's peer listener, same endpoint
 * (once: the leader never proxies a proxied request again); relays its
 * answer. */
static void op_proxy(struct node_peer_op *op)
{
    struct meta_node leader;
    const char *addr = NULL;
    char *p;
    int rv;

    if (!op->proxied && meta_leader(op->api->meta, &leader))
        addr = node_peer__address_of(op->api, leader.name, leader.peer_address);
    if (addr == NULL || op->api->peer == NULL) {
        node_peer__reply_status(op, 503, AT_ENOTLEADER);
        node_peer__op_free(op);
        return;
    }
    p = at_asprintf("%s?proxied=1", proto_peer_path(op->ep));
    rv = node_peer_request(op->api->peer, "POST", addr, p, content_type(op),
                           op->body.data, op->body.len,
                           op->ep == PROTO_PEER_HANDOFF ? NODE_PEER_HANDOFF_MS
                                                        : NODE_PEER_TIMEOUT_MS,
                           on_proxied, op);
    at_free(p);
    if (rv != 0) {
        node_peer__reply_status(op, 503, AT_ENOTLEADER);
        node_peer__op_free(op);
    }
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

/* The log index reached when a change is done (the change's own entry
 * is at most this). */
static uint64_t index_now(struct meta *m)
{
    struct meta_status st;

    meta_status_get(m, &st);
    return st.last_index;
}

static void on_join_done(void *data, int status)
{
    struct node_peer_op *op = data;
    struct proto_peer_reply r = { .status = status };
    struct role_find rf;

    if (status == AT_ENOTLEADER) {
        node_peer__reply(op, 503, &r);
    } else if (status == AT_EEXIST) {
        node_peer__reply(op, 409, &r);
    } else if (status != 0) {
        node_peer__reply(op, 500, &r);
    } else {
        memset(&rf, 0, sizeof(rf));
        rf.name = op->name;
        rf.role = -1;
        meta_members(op->api->meta, role_each, &rf);
        r.id = rf.id;
        r.role = role_name(rf.role);
        LOG_AUDIT(
            "node '%s' at %s, with the cluster secret, from %s%s "
            "joined as %s (id %" PRIu64 ") at index %" PRIu64,
            op->name, op->msg.u.join.peer_address, node_http_req_peer(op->req),
            op->proxied ? " (proxied)" : "", r.role != NULL ? r.role : "?",
            rf.id, index_now(op->api->meta));
        node_peer__reply(op, 200, &r);
    }
    node_peer__op_free(op);
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

/* see peer_api.h */
void node_peer_tell_removed(struct node_peer_api *api,
                            const char *addr,
                            uint64_t id)
{
    struct proto_peer_msg m = { .ep = PROTO_PEER_REMOVED };
    char errmsg[AT_ERRMSG_SIZE];
    struct at_buf b;

    if (api->peer == NULL)
        return;
    m.u.removed.id = id;
    at_buf_init(&b, 0);
    if (proto_peer_msg_pack(&m, &b, errmsg) == 0)
        node_peer_request(api->peer, "POST", addr,
                          proto_peer_path(PROTO_PEER_REMOVED),
                          PROTO_PEER_CONTENT_TYPE, b.data, b.len, 2000,
                          on_removed_told, NULL);
    else
        LOG_WARN("cannot tell the removed node: %s", errmsg);
    at_buf_release(&b);
}

static void stray_each(void *data, const struct gossip_member_info *g)
{
    struct node_peer_api *api = data;

    if (g->state != GOSSIP_ALIVE ||
        (g->meta.flags & GOSSIP_META_IN_CLUSTER) == 0 || g->meta.raft_id == 0 ||
        g->meta.peer_addr[0] == '\0' ||
        meta_is_member(api->meta, g->meta.raft_id))
        return;
    LOG_WARN(
        "node '%s' at %s says it is in the cluster, but the cluster "
        "removed its raft id %" PRIu64 " (while it was away): telling it",
        g->name, g->meta.peer_addr, g->meta.raft_id);
    node_peer_tell_removed(api, g->meta.peer_addr, g->meta.raft_id);
}

/* see peer_api.h */
void node_peer_tell_strays(struct node_peer_api *api)
{
    if (api->gossip == NULL || api->meta == NULL || !meta_is_leader(api->meta))
        return;
    node_gossip_each(api->gossip, stray_each, api);
}

/* Tell a removed node, which no longer gets the log, that it is out. */
static void tell_removed(struct node_peer_op *op)
{
    node_peer_tell_removed(op->api, op->notify, op->notify_id);
}

static void on_member_done(void *data, int status)
{
    struct node_peer_op *op = data;

    if (status == 0 && op->ep == PROTO_PEER_REMOVE && op->notify[0] != '\0')
        tell_removed(op);
    if (status == 0)
        LOG_AUDIT("the cluster secret from %s%s %s '%s' at index %" PRIu64,
                  node_http_req_peer(op->req), op->proxied ? " (proxied)" : "",
                  op->ep == PROTO_PEER_REMOVE    ? "removed node"
                  : op->ep == PROTO_PEER_HANDOFF ? "handed over the vote of"
                                                 : "transferred leadership to",
                  op->name, index_now(op->api->meta));
    if (status == 0)
        node_peer__reply_status(op, 200, 0);
    else if (status == AT_EAGAIN)
        node_peer__reply_status(op, 409, status); /* no standby: kept */
    else if (status == AT_ENOTFOUND)
        node_peer__reply_status(op, 404, status);
    else
        node_peer__reply_status(op, 503, status);
    node_peer__op_free(op);
}

static void notify_find(void *data, const struct meta_node *n)
{
    struct node_peer_op *op = data;

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
    struct node_peer_op *op = data;

    if (status != 0) {
        on_member_done(op, status);
        return;
    }
    op->proxied = false;
    op_proxy(op);
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

static void op_join(struct node_peer_op *op)
{
    const struct proto_peer_join *j = &op->msg.u.join;
    struct meta_node n;
    struct role_find rf;
    int rv;

    memset(&n, 0, sizeof(n));
    n.id = j->id;
    n.name = j->name;
    n.peer_address = j->peer_address;
    n.api_address = j->api_address;
    n.region = j->region;
    snprintf(op->name, sizeof(op->name), "%s", n.name);
    memset(&rf, 0, sizeof(rf));
    rf.name = n.name;
    rf.want_address = n.peer_address;
    meta_members(op->api->meta, role_each, &rf);
    if (rf.other_address) {
        node_peer__reply_status(op, 409, AT_EEXIST);
        node_peer__op_free(op);
        return;
    }
    LOG_INFO("join request from node '%s' at %s (%s)", n.name, n.peer_address,
             j->standby ? "standby" : "voter");
    rv = meta_member_join(op->api->meta, &n, j->standby, on_join_done, op);
    if (rv != 0)
        on_join_done(op, rv);
}

static void op_remove(struct node_peer_op *op, json_t *doc)
{
    struct meta *m = op->api->meta;
    const char *name = json_field(doc, "name", PROTO_PEER_NAME_MAX);
    struct meta_status st;
    int rv;

    if (name == NULL) {
        node_peer__reply_status(op, 400, AT_EINVAL);
        node_peer__op_free(op);
        return;
    }
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
        return;
    }
    LOG_INFO("removing node '%s' from the cluster", name);
    snprintf(op->name, sizeof(op->name), "%s", name);
    meta_members(m, notify_find, op);
    rv = meta_member_remove(m, name, on_member_done, op);
    if (rv != 0)
        on_member_done(op, rv);
}

/* A node about to stop (a pod's preStop) hands its leadership and its
 * vote over: name null means the node asked first (a follower fills in
 * its own name before proxying). */
static void op_handoff(struct node_peer_op *op, json_t *doc)
{
    struct meta *m = op->api->meta;
    const char *name = json_field(doc, "name", PROTO_PEER_NAME_MAX);
    struct meta_status st;
    int rv;

    meta_status_get(m, &st);
    if (name == NULL)
        name = st.name;
    if (name == NULL) {
        node_peer__reply_status(op, 400, AT_EINVAL);
        node_peer__op_free(op);
        return;
    }
    snprintf(op->name, sizeof(op->name), "%s", name);
    if (st.name != NULL && strcmp(name, st.name) == 0) {
        LOG_INFO("handing over: leadership first");
        body_name(op, name);
        rv = meta_transfer(m, NULL, on_self_transferred, op);
        if (rv != 0)
            on_member_done(op, rv);
        return;
    }
    LOG_INFO("node '%s' hands its vote over", name);
    rv = meta_member_handoff(m, name, on_member_done, op);
    if (rv != 0)
        on_member_done(op, rv);
}

static void op_transfer(struct node_peer_op *op, json_t *doc)
{
    json_t *nv = json_object_get(doc, "name");
    const char *name = json_field(doc, "name", PROTO_PEER_NAME_MAX);
    int rv;

    if (nv != NULL && !json_is_null(nv) && name == NULL) {
        node_peer__reply_status(op, 400, AT_EINVAL);
        node_peer__op_free(op);
        return;
    }
    LOG_INFO("transferring leadership to %s", name != NULL ? name : "any");
    snprintf(op->name, sizeof(op->name), "%s", name != NULL ? name : "any");
    rv = meta_transfer(op->api->meta, name, on_member_done, op);
    if (rv != 0)
        on_member_done(op, rv);
}

/* A handoff on a follower: name this node when the body names none
 * (the leader would read null as itself). False: answered (bad body). */
static bool handoff_named(struct node_peer_op *op)
{
    json_error_t jerr;
    json_t *doc = json_loadb(op->body.len > 0 ? op->body.data : "{}",
                             op->body.len > 0 ? op->body.len : 2, 0, &jerr);
    struct meta_status st;
    bool ok = doc != NULL && json_is_object(doc);

    if (ok && json_field(doc, "name", PROTO_PEER_NAME_MAX) == NULL) {
        meta_status_get(op->api->meta, &st);
        ok = st.name != NULL;
        if (ok)
            body_name(op, st.name);
    }
    json_decref(doc);
    if (!ok) {
        node_peer__reply_status(op, 400, AT_EINVAL);
        node_peer__op_free(op);
    }
    return ok;
}

/* see peer_internal.h */
void node_peer__member_op(struct node_peer_op *op)
{
    json_t *doc;
    json_error_t jerr;

    if (!meta_is_leader(op->api->meta)) {
        if (op->ep == PROTO_PEER_HANDOFF && !handoff_named(op))
            return;
        op_proxy(op);
        return;
    }
    if (op->ep == PROTO_PEER_JOIN) {
        op_join(op);
        return;
    }
    doc = json_loadb(op->body.len > 0 ? op->body.data : "{}",
                     op->body.len > 0 ? op->body.len : 2, 0, &jerr);
    if (doc == NULL || !json_is_object(doc)) {
        json_decref(doc);
        node_peer__reply_status(op, 400, AT_EINVAL);
        node_peer__op_free(op);
        return;
    }
    if (op->ep == PROTO_PEER_REMOVE)
        op_remove(op, doc);
    else if (op->ep == PROTO_PEER_HANDOFF)
        op_handoff(op, doc);
    else
        op_transfer(op, doc);
    json_decref(doc);
}

/* The leader removed this node from the cluster (it gets no more log
 * entries, so it cannot learn it otherwise). Leave a marker in the raft dir
 * (a restart refuses to serve with it), log it, and stop gracefully; see
 * peer_internal.h */
void node_peer__removed(struct node_peer_op *op)
{
    struct node_peer_api *api = op->api;
    struct meta_status st;

    if (api->stopping || (api->node_api != NULL && api->node_api->stopping)) {
        /* told again (the leader repeats it every gossip refresh) while
         * this node stops already */
        node_peer__reply_status(op, 503, AT_ESHUTDOWN);
        node_peer__op_free(op);
        return;
    }
    meta_status_get(api->meta, &st);
    if (op->msg.u.removed.id != st.id) {
        node_peer__reply_status(op, 409, AT_EINVAL); /* not this node */
        node_peer__op_free(op);
        return;
    }
    if (api->raft_dir == NULL) {
        node_peer__reply_status(op, 503, AT_EIO);
        node_peer__op_free(op);
        return;
    }
    node_peer__reply_status(op, 200, 0);
    node_peer__op_free(op);
    node_peer_stop_removed(api);
}

/* see peer_api.h */
void node_peer_stop_removed(struct node_peer_api *api)
{
    struct meta_status st;
    char *path;
    int fd;

    /* told by the leader and seen in its own log: one stop (a second
     * SIGTERM would end the process at once) */
    if (api->raft_dir == NULL || api->removed_stop)
        return;
    api->removed_stop = true;
    meta_status_get(api->meta, &st);
    path = at_asprintf("%s/removed", api->raft_dir);
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        (void)!write(fd, st.name, strlen(st.name));
        fsync(fd);
        close(fd);
    }
    LOG_ERROR(
        "this node ('%s') was removed from the cluster: stopping; "
        "to bring it back, wipe its data dir and start it with --join "
        "(or set auto_rejoin)",
        st.name);
    free(path);
    uv_kill(getpid(), SIGTERM); /* the graceful shutdown path */
}
