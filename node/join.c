/* Joining a cluster on first start, and the --bootstrap-expect wait: see
 * join.h. */
#define AT_LOG_COMP "node"
#include "common/compat.h"

#include <fcntl.h>
#include <unistd.h>

#include "node/cluster/gossip.h"
#include "node/cluster/peer.h"
#include "node/join.h"
#include "proto/peer.h"

#define JOIN_MARKER      "join-pending"
#define JOIN_ATTEMPTS    120  /* about 10 minutes at the largest backoff */
#define JOIN_BACKOFF_MIN 250  /* ms */
#define JOIN_BACKOFF_MAX 5000 /* ms */
#define EXPECT_TICK_MS   100
#define EXPECT_LOG_MS    10000

static bool file_in(const char *dir, const char *name)
{
    char *path = at_asprintf("%s/%s", dir, name);
    bool yes = access(path, F_OK) == 0;

    free(path);
    return yes;
}

/* see join.h */
bool node_join_needed(const char *raft_dir)
{
    bool pristine = !file_in(raft_dir, "metadata1") &&
                    !file_in(raft_dir, "metadata2") &&
                    !file_in(raft_dir, "node-id");

    return pristine || file_in(raft_dir, JOIN_MARKER);
}

/* see join.h */
int node_join_marker(const char *raft_dir, bool on)
{
    char *path = at_asprintf("%s/" JOIN_MARKER, raft_dir);
    int rv = 0;
    int fd;

    if (on) {
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0 || fsync(fd) != 0)
            rv = -errno;
        if (fd >= 0)
            close(fd);
    } else if (unlink(path) != 0 && errno != ENOENT) {
        rv = -errno;
    }
    free(path);
    return rv;
}

/* ---- the PeerJoin ---- */

static void join_try(uv_timer_t *t);

static void join_retry(struct node_join *j, const char *why)
{
    if (j->stopping)
        return;
    if (++j->attempts >= JOIN_ATTEMPTS) {
        LOG_ERROR("join via %s: giving up after %u attempts (%s); exiting "
                  "(a restart tries again)",
                  j->target, j->attempts, why);
        j->joining = false;
        j->fatal(j->data);
        return;
    }
    LOG_WARN("join via %s: %s; retrying in %" PRIu64 "ms (attempt %u)",
             j->target, why, j->backoff, j->attempts);
    uv_timer_start(&j->timer, join_try, j->backoff, 0);
    j->backoff = AT_MIN(j->backoff * 2, JOIN_BACKOFF_MAX);
}

static void on_join_answer(void *data,
                           int status,
                           int http,
                           const char *body,
                           size_t len)
{
    struct node_join *j = data;
    char why[160];
    char errmsg[AT_ERRMSG_SIZE];
    struct proto_peer_reply r;

    if (status == AT_ESHUTDOWN || j->stopping)
        return;
    if (status != 0) {
        snprintf(why, sizeof(why), "%s", at_strerror(status));
        join_retry(j, why);
        return;
    }
    if (http == 200) {
        /* the leader's PeerReply names the role this node got */
        if (proto_peer_reply_unpack(body, len, &r, errmsg) != 0)
            LOG_WARN("join via %s: %s", j->target, errmsg);
        LOG_INFO("joined the cluster via %s as %s", j->target,
                 r.role != NULL ? r.role : "?");
        proto_peer_reply_release(&r);
        if (node_join_marker(j->raft_dir, false) != 0)
            LOG_WARN("cannot remove '%s/" JOIN_MARKER "'", j->raft_dir);
        j->joining = false;
        node_gossip_refresh(j->gossip); /* in the cluster now: say so */
        return;
    }
    if (http == 409 || http == 401 || http == 400) {
        LOG_ERROR("join via %s refused (HTTP %d: %s); exiting", j->target,
                  http,
                  http == 409   ? "the name is taken by another address"
                  : http == 401 ? "wrong cluster secret"
                                : "bad request");
        j->joining = false;
        j->fatal(j->data); /* never a registry that is in no cluster */
        return;
    }
    snprintf(why, sizeof(why), "HTTP %d", http);
    join_retry(j, why);
}

/* The member bootstrap-expect named first, then the --join list's entries
 * (host:port or DNS name:port, which the peer client resolves) round-robin
 * over retries, into j->target. */
static void join_pick(struct node_join *j)
{
    unsigned n = at_csv_count(j->cfg->join);

    if (j->first[0] != '\0') {
        snprintf(j->target, sizeof(j->target), "%s", j->first);
        j->first[0] = '\0';
        return;
    }
    /* config checked every entry: none is empty or over 255 bytes */
    (void)at_csv_item(j->cfg->join, n > 0 ? j->next++ % n : 0, j->target,
                      sizeof(j->target));
}

static void join_try(uv_timer_t *t)
{
    struct node_join *j = t->data;
    struct proto_peer_msg m = { .ep = PROTO_PEER_JOIN };
    char errmsg[AT_ERRMSG_SIZE];
    struct meta_status st;
    struct at_buf b;
    int rv;

    if (j->stopping)
        return;
    join_pick(j);
    meta_status_get(j->meta, &st);
    m.u.join.id = st.id;
    m.u.join.name = j->name;
    m.u.join.peer_address = j->peer_address;
    m.u.join.api_address = j->api_address;
    m.u.join.region = j->cfg->region;
    m.u.join.standby = strcmp(j->cfg->role, "voter") != 0; /* or edge */
    at_buf_init(&b, 0);
    rv = proto_peer_msg_pack(&m, &b, errmsg);
    if (rv == 0)
        rv = node_peer_request(
            j->peer, "POST", j->target, proto_peer_path(PROTO_PEER_JOIN),
            PROTO_PEER_CONTENT_TYPE, b.data, b.len, 60000, on_join_answer, j);
    else
        LOG_ERROR("join via %s: %s", j->target, errmsg);
    at_buf_release(&b);
    if (rv != 0)
        join_retry(j, at_strerror(rv));
}

/* ---- bootstrap-expect ---- */

struct members_buf {
    struct gossip_member_info *m;
    size_t n, cap;
};

static void member_each(void *data, const struct gossip_member_info *m)
{
    struct members_buf *mb = data;

    if (mb->n == mb->cap) {
        mb->cap = mb->cap == 0 ? 16 : mb->cap * 2;
        mb->m = at_realloc(mb->m, mb->cap * sizeof(*mb->m));
    }
    mb->m[mb->n++] = *m;
}

static void expect_tick(uv_timer_t *t)
{
    struct node_join *j = t->data;
    struct members_buf mb = { 0 };
    char addr[GOSSIP_ADDR_MAX];
    char why[160];
    char errmsg[AT_ERRMSG_SIZE];
    uint64_t now = uv_now(j->loop);
    enum node_boot_decision d;

    if (j->stopping)
        return;
    node_gossip_each(j->gossip, member_each, &mb);
    d = node_boot_decide(&j->boot, mb.m, mb.n, now, addr, why, sizeof(why));
    at_free(mb.m);
    if (d == NODE_BOOT_WAIT) {
        if (now - j->expect_logged >= EXPECT_LOG_MS) {
            j->expect_logged = now;
            LOG_INFO("bootstrap-expect %u: %s", j->boot.expect, why);
        }
        return;
    }
    uv_timer_stop(&j->timer);
    j->expecting = false;
    if (d == NODE_BOOT_BOOTSTRAP) {
        LOG_INFO("bootstrap-expect %u: bootstrapping a new cluster",
                 j->boot.expect);
        if (node_join_marker(j->raft_dir, false) != 0)
            LOG_WARN("cannot remove '%s/" JOIN_MARKER "'", j->raft_dir);
    } else {
        LOG_INFO("bootstrap-expect %u: a cluster exists, joining via %s",
                 j->boot.expect, addr);
        snprintf(j->first, sizeof(j->first), "%s", addr);
    }
    if (j->open(j->data, d == NODE_BOOT_JOIN, errmsg) != 0) {
        LOG_ERROR("%s", errmsg);
        j->fatal(j->data);
        return;
    }
    if (d == NODE_BOOT_BOOTSTRAP)
        node_gossip_refresh(j->gossip); /* in the cluster now: say so */
    else
        node_join_start(j);
}

/* ---- life ---- */

/* see join.h */
void node_join_init(struct node_join *j)
{
    uv_timer_init(j->loop, &j->timer);
    j->timer.data = j;
}

/* see join.h */
void node_join_start(struct node_join *j)
{
    j->joining = true;
    j->attempts = 0;
    j->backoff = JOIN_BACKOFF_MIN;
    LOG_INFO("joining the cluster via %s",
             j->first[0] != '\0' ? j->first : j->cfg->join);
    uv_timer_start(&j->timer, join_try, 0, 0);
}

/* see join.h */
void node_join_expect(struct node_join *j)
{
    /* nodes started together learn of each other in a few gossip rounds */
    uint64_t settle = AT_MAX(AT_MAX(5 * j->cfg->gossip_interval_ms,
                                    2 * j->cfg->gossip_probe_interval_ms),
                             (uint64_t)300);

    node_boot_init(&j->boot, j->name, j->cfg->role,
                   (unsigned)j->cfg->bootstrap_expect, settle);
    j->expecting = true;
    j->expect_logged = uv_now(j->loop);
    LOG_INFO(
        "bootstrap-expect %u: waiting for the nodes of %s to see each "
        "other",
        j->boot.expect, j->cfg->join);
    uv_timer_start(&j->timer, expect_tick, EXPECT_TICK_MS, EXPECT_TICK_MS);
}

/* see join.h */
bool node_join_pending(const struct node_join *j)
{
    return j->joining || j->expecting;
}

/* see join.h */
void node_join_stop(struct node_join *j)
{
    j->stopping = true;
    j->joining = j->expecting = false;
    uv_timer_stop(&j->timer);
}

static void on_closed(uv_handle_t *h)
{
    struct node_join *j = h->data;

    j->close_cb(j->close_data);
}

/* see join.h */
void node_join_close(struct node_join *j, void (*cb)(void *data), void *data)
{
    j->stopping = true;
    j->close_cb = cb;
    j->close_data = data;
    uv_close((uv_handle_t *)&j->timer, on_closed);
}
