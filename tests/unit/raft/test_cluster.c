/* Unit tests of the raft/ cluster core: up to five meta instances on
 * one loop, each with its own raft dir and a real loopback peer listener
 * that performs the server side of the raft upgrade handshake. */
#include "common/compat.h"

#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>

#include "raft/internal.h" /* leader_wait_ms, set on an open node */
#include "raft/meta.h"
#include "raft/transport.h"
#include "tests/unit/raft/fixture.h"

#define SECRET  "s3cret-for-tests"
#define NNODES  5
#define TIMEOUT 60000 /* ms, per wait */

struct tnode {
    int idx;
    char name[16];
    char dir[300];
    char peer[64];
    const char *secret; /* what this node's listener accepts */
    uv_tcp_t listener;
    struct meta *m; /* NULL while closed */
    bool closed;
};

static uv_loop_t loop;
static struct tnode nodes[NNODES];
static bool answer_old_protocol; /* the listener answers like an old node */
static char root[64];
static unsigned threshold = 0;

#include "tests/unit/raft/cluster_fixture.h"

static unsigned forwards, read_indexes;

/* A record of a call to the node with leader_id (set in *leader), for its
 * answer to data; NULL when no open node has that id. */
static struct hook_call *hook_call_new(uint64_t leader_id,
                                       void *data,
                                       struct tnode **leader)
{
    *leader = by_id(leader_id);
    if (*leader == NULL)
        return NULL;
    struct hook_call *h = at_calloc(1, sizeof(*h));
    h->data = data;
    return h;
}

/* rv, the call's start: counts the call in *count, or frees h. */
static int hook_call_started(struct hook_call *h, int rv, unsigned *count)
{
    if (rv != 0)
        at_free(h);
    else
        (*count)++;
    return rv;
}

static void on_hook_write(void *data, int status, int result, uint64_t index)
{
    struct hook_call *h = data;
    h->fcb(h->data, status, result, index);
    at_free(h);
}

/* FWD_LOSE: the next forward is proposed on the leader, which applies it,
 * but its answer is lost (the forwarder hears AT_EUNKNOWN, as when the
 * leader dies before answering); later ones (FWD_REFUSE) find no leader. */
static enum { FWD_NORMAL, FWD_LOSE, FWD_REFUSE } forward_mode;

static void on_hook_write_lost(void *data,
                               int status,
                               int result,
                               uint64_t index)
{
    struct hook_call *h = data;
    AT_UNUSED(status);
    AT_UNUSED(result);
    AT_UNUSED(index);
    h->fcb(h->data, AT_EUNKNOWN, 0, 0);
    at_free(h);
}

static int hook_forward(void *hooks_data,
                        uint64_t leader_id,
                        const void *cmd,
                        size_t len,
                        meta_forward_cb cb,
                        void *cb_data)
{
    AT_UNUSED(hooks_data);
    struct tnode *l;
    if (forward_mode == FWD_REFUSE)
        return AT_ENOTLEADER;
    struct hook_call *h = hook_call_new(leader_id, cb_data, &l);
    if (h == NULL)
        return AT_ENOTLEADER;
    h->fcb = cb;
    if (forward_mode == FWD_LOSE) {
        forward_mode = FWD_REFUSE;
        return hook_call_started(
            h, meta_propose_packed(l->m, cmd, len, on_hook_write_lost, h),
            &forwards);
    }
    return hook_call_started(
        h, meta_propose_packed(l->m, cmd, len, on_hook_write, h), &forwards);
}

static void on_hook_index(void *data, int status, uint64_t index)
{
    struct hook_call *h = data;
    h->icb(h->data, status, index);
    at_free(h);
}

static int hook_read_index(void *hooks_data,
                           uint64_t leader_id,
                           meta_index_cb cb,
                           void *cb_data)
{
    AT_UNUSED(hooks_data);
    struct tnode *l;
    struct hook_call *h = hook_call_new(leader_id, cb_data, &l);
    if (h == NULL)
        return AT_ENOTLEADER;
    h->icb = cb;
    return hook_call_started(h, meta_read_index(l->m, on_hook_index, h),
                             &read_indexes);
}

/* hooks->term: answered on a later loop iteration, as over the network. */
struct term_call {
    uv_timer_t timer;
    uint64_t id;
    meta_index_cb cb;
    void *data;
};
static unsigned term_queries;

static void on_term_closed(uv_handle_t *h)
{
    at_free(h->data);
}

static void on_term_timer(uv_timer_t *t)
{
    struct term_call *tc = t->data;
    struct tnode *n = by_id(tc->id);
    if (n != NULL)
        tc->cb(tc->data, 0, meta_term(n->m));
    else
        tc->cb(tc->data, AT_EIO, 0);
    uv_close((uv_handle_t *)&tc->timer, on_term_closed);
}

static int hook_term(void *hooks_data,
                     uint64_t node_id,
                     uint64_t timeout_ms,
                     meta_index_cb cb,
                     void *cb_data)
{
    AT_UNUSED(hooks_data);
    AT_UNUSED(timeout_ms);
    if (by_id(node_id) == NULL)
        return AT_EIO;
    struct term_call *tc = at_calloc(1, sizeof(*tc));
    tc->id = node_id;
    tc->cb = cb;
    tc->data = cb_data;
    uv_timer_init(&loop, &tc->timer);
    tc->timer.data = tc;
    uv_timer_start(&tc->timer, on_term_timer, 1, 0);
    term_queries++;
    return 0;
}

static const struct meta_hooks hooks = { .forward = hook_forward,
                                         .read_index = hook_read_index,
                                         .term = hook_term };

/* ---- nodes ---- */

static void node_open(int i, bool join)
{
    struct tnode *n = &nodes[i];
    struct meta_config cfg = { 0 };
    char e[AT_ERRMSG_SIZE] = "";
    cfg.dir = n->dir;
    cfg.name = n->name;
    cfg.join = join;
    cfg.peer_address = n->peer;
    char api[64];
    snprintf(api, sizeof(api), "127.0.0.1:%d", 15000 + i); /* never dialed */
    cfg.api_address = api;
    cfg.region = i % 2 ? "east" : "west";
    cfg.cluster_secret = SECRET;
    cfg.election_timeout_ms = 400;
    cfg.heartbeat_timeout_ms = 40;
    cfg.snapshot_threshold = threshold;
    cfg.snapshot_trailing = threshold ? threshold / 2 : 0;
    cfg.hooks = &hooks;
    cfg.hooks_data = n;
    int rv = meta_open(&n->m, &loop, &cfg, e);
    if (rv != 0)
        print_error("meta_open %s: %s\n", n->name, e);
    assert_int_equal(rv, 0);
}

struct count {
    unsigned n, voters, standbys, leaders;
    bool has[NNODES];
};

static void count_each(void *data, const struct meta_node *n)
{
    struct count *c = data;
    c->n++;
    if (n->role == 1)
        c->voters++;
    if (n->role == 2)
        c->standbys++;
    if (n->leader)
        c->leaders++;
    for (int i = 0; i < NNODES; i++) {
        if (strcmp(n->name, nodes[i].name) == 0) {
            c->has[i] = true;
            assert_string_equal(n->peer_address, nodes[i].peer);
        }
    }
}

static struct count members(int i)
{
    struct count c = { 0 };
    meta_members(nodes[i].m, count_each, &c);
    return c;
}

static bool three_voters(void *arg)
{
    int i = *(int *)arg;
    return members(i).voters == 3;
}

static bool self_recorded(void *arg)
{
    int i = *(int *)arg;
    return members(i).has[i];
}

/* ---- operations ---- */

struct op {
    bool done;
    int status, result;
    uint64_t index;
};

static void on_op(void *data, int status)
{
    struct op *o = data;
    o->status = status;
    o->done = true;
}

static void on_write(void *data, int status, int result, uint64_t index)
{
    struct op *o = data;
    o->status = status;
    o->result = result;
    o->index = index;
    o->done = true;
}

/* A write on node i (forwarded when i is a follower). */
static void write_blob(int i, const char *repo, const char *blob)
{
    struct op o = { 0 };
    struct at_digest d = dg(blob);
    struct meta_cmd c = { .kind = META_CMD_BLOB_STORED,
                          .blob_stored = {
                              .repo = repo, .digest = d, .size = 42 } };
    assert_int_equal(meta_propose(nodes[i].m, &c, on_write, &o), 0);
    run_until(flag_set, &o.done);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.result, META_OK);
    /* answered after the local apply: visible here at once */
    assert_true(meta_blob_linked(nodes[i].m, repo, &d, NULL));
}

static void barrier(int i)
{
    struct op o = { 0 };
    int rv;
    /* a follower may not know the leader yet right after an election */
    for (int tries = 0; tries < 200; tries++) {
        rv = meta_read_barrier(nodes[i].m, on_op, &o);
        if (rv != AT_ENOTLEADER)
            break;
        run_ms(20);
    }
    assert_int_equal(rv, 0);
    run_until(flag_set, &o.done);
    assert_int_equal(o.status, 0);
}

static void check_blob(int i, const char *repo, const char *blob)
{
    struct at_digest d = dg(blob);
    barrier(i);
    assert_true(meta_blob_linked(nodes[i].m, repo, &d, NULL));
}

static void join(int leader, int i, bool standby)
{
    struct meta_node n = { 0 };
    struct op o = { 0 };
    n.name = nodes[i].name;
    n.peer_address = nodes[i].peer;
    n.api_address = "127.0.0.1:1";
    assert_int_equal(meta_member_join(nodes[leader].m, &n, standby, on_op, &o),
                     0);
    run_until(flag_set, &o.done);
    assert_int_equal(o.status, 0);
}

/* ---- transport failure path, driven directly ---- */

struct dial {
    bool done;
    int status;
    uv_stream_t *stream;
};

static void on_dialed(struct raft_uv_connect *req,
                      struct uv_stream_s *stream,
                      int status)
{
    struct dial *d = req->data;
    d->done = true;
    d->status = status;
    d->stream = stream;
}

static void on_tr_closed(struct raft_uv_transport *t)
{
    *(bool *)t->data = true;
}

static int resolve_to(void *data, const char *name, char *out, size_t size)
{
    AT_UNUSED(name);
    snprintf(out, size, "%s", (const char *)data);
    return 0;
}

static void on_raw_closed(uv_handle_t *h)
{
    raft_free(h);
}

/* A dial to target with secret, on a transport tr of its own; d hears of
 * its end. */
static void dial_start(struct meta_transport *tr,
                       struct raft_uv_connect *req,
                       struct dial *d,
                       const char *secret,
                       const char *target)
{
    meta__transport_init(tr, &loop);
    tr->t.init(&tr->t, 999, "tester");
    tr->secret = secret;
    tr->resolve = resolve_to;
    tr->resolve_data = (void *)target;
    req->data = d;
    assert_int_equal(tr->t.connect(&tr->t, req, 1, "n0", on_dialed), 0);
}

static void dial_with(const char *secret, const char *target, int want)
{
    struct meta_transport tr;
    struct raft_uv_connect req;
    struct dial d = { 0 };
    dial_start(&tr, &req, &d, secret, target);
    run_until(flag_set, &d.done);
    assert_int_equal(d.status, want);
    if (want == 0) {
        assert_non_null(d.stream);
        uv_close((uv_handle_t *)d.stream, on_raw_closed);
    } else {
        assert_null(d.stream);
    }
    bool closed = false;
    tr.t.data = &closed;
    tr.t.close(&tr.t, on_tr_closed);
    run_until(flag_set, &closed);
}

/* A handshake in flight when the transport closes is canceled. */
static void dial_cancel(const char *target)
{
    struct meta_transport tr;
    struct raft_uv_connect req;
    struct dial d = { 0 };
    dial_start(&tr, &req, &d, SECRET, target);
    bool closed = false;
    tr.t.data = &closed;
    tr.t.close(&tr.t, on_tr_closed);
    assert_true(d.done);
    assert_int_equal(d.status, RAFT_CANCELED);
    run_until(flag_set, &closed);
}

/* ---- the scenario ---- */

static bool all_applied_equal(void *arg)
{
    AT_UNUSED(arg);
    uint64_t a = 0;
    for (int i = 0; i < NNODES; i++) {
        if (nodes[i].m == NULL)
            continue;
        struct meta_status st;
        meta_status_get(nodes[i].m, &st);
        if (a == 0)
            a = st.applied_index;
        else if (st.applied_index != a)
            return false;
    }
    return true;
}

struct batch {
    unsigned want, ok, failed;
};

static void on_batch(void *data, int status, int result, uint64_t index)
{
    struct batch *b = data;
    AT_UNUSED(index);
    if (status == 0 && result == META_OK)
        b->ok++;
    else
        b->failed++;
}

static bool batch_done(void *arg)
{
    struct batch *b = arg;
    return b->ok + b->failed >= b->want;
}

static void write_manifests(int i, int n)
{
    struct batch b = { (unsigned)n, 0, 0 };
    write_blob(i, "big", "bigblob");
    for (int k = 0; k < n; k++) {
        char content[96], tag[32];
        snprintf(content, sizeof(content), "{\"manifest\":%d}", k);
        snprintf(tag, sizeof(tag), "t%05d", k);
        struct at_digest blob = dg("bigblob");
        struct meta_cmd c = manifest_cmd("big", content, tag);
        c.put_manifest.blobs = &blob;
        c.put_manifest.nblobs = 1;
        assert_int_equal(meta_propose(nodes[i].m, &c, on_batch, &b), 0);
    }
    run_until(batch_done, &b);
    assert_int_equal(b.ok, (unsigned)n);
}

static bool snapshot_in(void *dir)
{
    return has_snapshot(dir);
}

static bool file_in(const char *dir, const char *name)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

/* The scenario, part 1: n0 bootstraps, n1 and n2 join as voters. */
static void cluster_form(void)
{
    /* bootstrap n0; n1, n2 join */
    node_open(0, false);
    node_open(1, true);
    node_open(2, true);
    run_until(have_leader, NULL);
    assert_int_equal(leader_idx(), 0);
    int zero = 0;
    run_until(self_recorded, &zero);
    /* a follower with an empty configuration has no leader: no write */
    struct op o = { 0 };
    struct meta_cmd bs = { .kind = META_CMD_BLOB_STORED,
                           .blob_stored = {
                               .repo = "r", .digest = dg("x"), .size = 1 } };
    assert_int_equal(meta_propose(nodes[1].m, &bs, on_write, &o),
                     AT_ENOTLEADER);
    join(0, 1, false);
    join(0, 2, false);
    struct count c = members(0);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.voters, 3);
    assert_int_equal(c.leaders, 1);
    /* a name held by another address is refused */
    struct meta_node bad = { 0 };
    bad.name = "n1";
    bad.peer_address = "127.0.0.1:1";
    assert_int_equal(meta_member_join(nodes[0].m, &bad, false, on_op, &o),
                     AT_EEXIST);
}

static void count_progress(void *data, const struct meta_peer_progress *p)
{
    unsigned *n = data;

    assert_true(strcmp(p->name, "n1") == 0 || strcmp(p->name, "n2") == 0);
    assert_true(p->match_index > 0);
    assert_true(p->lag <= 2); /* a barrier may be in flight */
    (*n)++;
}

/* meta_peer_progress_each: the leader lists the other two, caught up; a
 * follower lists nobody. */
static void cluster_progress(void)
{
    unsigned n = 0;

    run_until(all_applied_equal, NULL);
    meta_peer_progress_each(nodes[0].m, count_progress, &n);
    assert_int_equal(n, 2);
    n = 0;
    meta_peer_progress_each(nodes[1].m, count_progress, &n);
    assert_int_equal(n, 0);
}

/* Part 2: writes and reads on the leader and through followers. */
/* A write forwarded to the leader, applied there, whose answer is lost;
 * then no leader takes it again until the follower's leader_wait ends.
 * The writer must hear "outcome unknown" (503 OUTCOME_UNKNOWN), never the
 * definite AT_ENOTLEADER (503 UNAVAILABLE, "not applied"): a soak run saw
 * a write answered so and its value read afterwards. */
static void cluster_lost_forward(void)
{
    struct op o = { 0 };
    struct at_digest d = dg("blob-lost");
    struct meta_cmd c = { .kind = META_CMD_BLOB_STORED,
                          .blob_stored = {
                              .repo = "rl", .digest = d, .size = 42 } };
    nodes[1].m->leader_wait_ms = 300;
    forward_mode = FWD_LOSE;
    assert_int_equal(meta_propose(nodes[1].m, &c, on_write, &o), 0);
    run_until(flag_set, &o.done);
    forward_mode = FWD_NORMAL;
    nodes[1].m->leader_wait_ms = 0;
    assert_int_equal(o.status, AT_EUNKNOWN);
    check_blob(0, "rl", "blob-lost"); /* it was applied */
    check_blob(1, "rl", "blob-lost");
}

static void cluster_reads_writes(void)
{
    /* writes on the leader and through a follower, visible everywhere */
    write_blob(0, "ra", "blob-a");
    unsigned f0 = forwards;
    write_blob(1, "rb", "blob-b");
    assert_int_equal(forwards, f0 + 1);
    unsigned r0 = read_indexes;
    for (int i = 0; i < 3; i++) {
        check_blob(i, "ra", "blob-a");
        check_blob(i, "rb", "blob-b");
    }
    assert_true(read_indexes >= r0 + 2); /* follower barriers via leader */
    /* follower reads in a quiet cluster append nothing: the barrier that
     * pushed the last commit index to the followers is not itself a reason
     * for another (it changes no state) */
    {
        struct meta_status q0, q1;
        barrier(1);
        meta_status_get(nodes[0].m, &q0);
        for (int k = 0; k < 6; k++)
            barrier(1 + k % 2);
        meta_status_get(nodes[0].m, &q1);
        assert_int_equal(q1.last_index, q0.last_index);
    }
    /* once a barrier of the term is committed, leader reads only confirm
     * leadership by asking the voters their term: no log entry */
    unsigned t0 = term_queries;
    struct meta_status st0, st1;
    meta_status_get(nodes[0].m, &st0);
    barrier(0);
    barrier(0);
    meta_status_get(nodes[0].m, &st1);
    assert_true(term_queries >= t0 + 2);
    assert_int_equal(st1.last_index, st0.last_index);
    struct count c = members(2);
    assert_int_equal(c.n, 3);
    assert_true(c.has[0] && c.has[1] && c.has[2]);
    assert_true(file_in(nodes[1].dir, "peers"));
    assert_true(file_in(nodes[1].dir, "node-id"));
    cluster_progress();
}

/* Part 3: leadership moves (transfer, the leader closing) and all three
 * restart from their dirs. */
static void cluster_leaders(void)
{
    /* transfer leadership to n2 */
    struct op o = { 0 };
    assert_int_equal(meta_transfer(nodes[0].m, "n2", on_op, &o), 0);
    run_until(flag_set, &o.done);
    assert_int_equal(o.status, 0);
    run_until(have_leader, NULL);
    assert_int_equal(leader_idx(), 2);
    {
        /* n1 saw the leader move from n0 to n2 (its tick samples it) */
        struct meta_status st;
        run_ms(300);
        meta_status_get(nodes[1].m, &st);
        assert_true(st.leader_changes >= 1);
    }
    write_blob(2, "rc", "blob-c");
    write_blob(0, "rc", "blob-c2"); /* forwarded to the new leader */

    /* the leader closes (handing leadership over): writes continue */
    node_close(2);
    run_until(have_leader, NULL);
    int l = leader_idx();
    assert_true(l == 0 || l == 1);
    write_blob(l, "rd", "blob-d");
    write_blob(1 - l, "rd", "blob-d2");
    node_open(2, true); /* not pristine: rejoins as it was */
    check_blob(2, "rd", "blob-d2");

    /* restart all three from their dirs: state intact */
    run_until(all_applied_equal, NULL);
    for (int i = 0; i < 3; i++)
        node_close(i);
    node_open(0, false);
    node_open(1, true);
    node_open(2, true);
    run_until(have_leader, NULL);
    for (int i = 0; i < 3; i++) {
        check_blob(i, "ra", "blob-a");
        check_blob(i, "rd", "blob-d2");
    }
    struct count c = members(1);
    assert_int_equal(c.voters, 3);
}

/* Part 4: a node is removed; a 4th joins from a snapshot; a 5th joins as
 * a standby and is promoted once a voter goes. Returns the leader. */
static int cluster_changes(void)
{
    /* remove a node */
    int l = leader_idx();
    int victim = (l + 1) % 3;
    struct op o = { 0 };
    assert_int_equal(
        meta_member_remove(nodes[l].m, nodes[victim].name, on_op, &o), 0);
    run_until(flag_set, &o.done);
    assert_int_equal(o.status, 0);
    struct count c = members(l);
    assert_int_equal(c.n, 2);
    assert_false(c.has[victim]);
    node_close(victim);

    /* 2,000 manifests, then a 4th node joins: it installs a snapshot */
    l = leader_idx();
    write_manifests(l, 2000);
    run_until(snapshot_in, nodes[l].dir);
    node_open(3, true);
    join(l, 3, false);
    c = members(l);
    assert_int_equal(c.voters, 3); /* promoted: 2 voters < 3 */
    check_blob(3, "ra", "blob-a");
    struct at_digest t;
    assert_int_equal(meta_tag_resolve(nodes[3].m, "big", "t01999", &t), 0);
    run_until(snapshot_in, nodes[3].dir);

    /* a 5th node joins while voters are at target: standby; when a voter
     * is removed, the leader promotes it */
    l = leader_idx();
    node_open(4, true);
    join(l, 4, false);
    c = members(l);
    assert_int_equal(c.voters, 3);
    assert_int_equal(c.standbys, 1);
    check_blob(4, "ra", "blob-a"); /* a standby reads via the leader */
    victim = -1;
    for (int i = 0; i < 4; i++) {
        if (i != l && nodes[i].m != NULL)
            victim = i;
    }
    o = (struct op){ 0 };
    assert_int_equal(
        meta_member_remove(nodes[l].m, nodes[victim].name, on_op, &o), 0);
    run_until(flag_set, &o.done);
    assert_int_equal(o.status, 0);
    node_close(victim);
    run_until(three_voters, &l);
    c = members(l);
    assert_int_equal(c.standbys, 0);
    assert_true(c.has[4]);
    return l;
}

/* Part 5: leader l, cut off from the other voters, never confirms a read;
 * everything closes; n3 started from a snapshot. */
static void cluster_cut_off(int l)
{
    /* a leader cut off from the other voters never confirms a read */
    for (int i = 0; i < NNODES; i++) {
        if (i != l && nodes[i].m != NULL)
            node_close(i);
    }
    /* nor hands leadership over; the transfer ends while its TimeoutNow
     * may still wait in the io's queue, which the close below cancels (the
     * request must still be there: it goes with the meta) */
    struct op o = { 0 };
    if (meta_transfer(nodes[l].m, NULL, on_op, &o) == 0)
        run_until(flag_set, &o.done); /* timed out, or leadership lost */
    o = (struct op){ 0 };
    if (meta_read_barrier(nodes[l].m, on_op, &o) == 0) {
        run_until(flag_set, &o.done);
        assert_int_not_equal(o.status, 0);
    }

    for (int i = 0; i < NNODES; i++) {
        if (nodes[i].m != NULL)
            node_close(i);
        uv_close((uv_handle_t *)&nodes[i].listener, NULL);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    /* n3 started from the leader's snapshot: no segment from index 1 */
    assert_false(file_in(nodes[3].dir, "0000000000000001-0000000000000001"));
    DIR *dd = opendir(nodes[3].dir);
    struct dirent *de;
    unsigned segments = 0;
    while (dd != NULL && (de = readdir(dd)) != NULL) {
        if (strncmp(de->d_name, "0000000000000001-", 17) == 0)
            fail_msg("n3 replayed the log from index 1: %s", de->d_name);
        if (strlen(de->d_name) == 33 && de->d_name[16] == '-')
            segments++;
    }
    if (dd != NULL)
        closedir(dd);
    assert_true(segments > 0);
    rm_rf(root);
}

static void test_cluster(void **state)
{
    AT_UNUSED(state);
    uv_loop_init(&loop);
    snprintf(root, sizeof(root), "/tmp/atoll-cluster-XXXXXX");
    assert_non_null(mkdtemp(root));
    for (int i = 0; i < NNODES; i++) {
        nodes[i].idx = i;
        snprintf(nodes[i].name, sizeof(nodes[i].name), "n%d", i);
        snprintf(nodes[i].dir, sizeof(nodes[i].dir), "%s/n%d/raft", root, i);
        nodes[i].secret = SECRET;
        listener_start(&nodes[i]);
    }
    threshold = 128;

    cluster_form();
    cluster_reads_writes();
    cluster_lost_forward();
    /* transport: a wrong secret is refused, the right one accepted, a
     * handshake in flight at close is canceled, nobody crashes */
    dial_with("wrong", nodes[0].peer, RAFT_NOCONNECTION);
    dial_with(SECRET, nodes[0].peer, 0);
    answer_old_protocol = true; /* a 101 of the first peer protocol */
    dial_with(SECRET, nodes[0].peer, RAFT_NOCONNECTION);
    answer_old_protocol = false;
    dial_with(SECRET, "127.0.0.1:1", RAFT_NOCONNECTION); /* refused */
    dial_cancel(nodes[0].peer);
    cluster_leaders();
    cluster_cut_off(cluster_changes());
}

/* A raft dir created before node ids existed keeps id 1. */
static void test_legacy_id(void **state)
{
    AT_UNUSED(state);
    uv_loop_init(&loop);
    snprintf(root, sizeof(root), "/tmp/atoll-cluster-XXXXXX");
    assert_non_null(mkdtemp(root));
    struct tnode *n = &nodes[0];
    memset(n, 0, sizeof(*n));
    snprintf(n->name, sizeof(n->name), "legacy");
    snprintf(n->dir, sizeof(n->dir), "%s/raft", root);
    snprintf(n->peer, sizeof(n->peer), "127.0.0.1:1");
    node_open(0, false);
    struct meta_status st;
    meta_status_get(n->m, &st);
    assert_int_equal(st.id, meta_node_id_from_name("legacy"));
    node_close(0);
    char path[400];
    snprintf(path, sizeof(path), "%s/node-id", n->dir);
    assert_int_equal(unlink(path), 0);
    node_open(0, false);
    meta_status_get(n->m, &st);
    assert_int_equal(st.id, 1);
    node_close(0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    rm_rf(root);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as the daemon: peers close connections */
    at_log_configure(getenv("AT_LOG") != NULL ? getenv("AT_LOG") : "error");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_legacy_id),
        cmocka_unit_test(test_cluster),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
