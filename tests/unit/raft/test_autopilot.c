/* Unit tests of the raft/ autopilot (raft/autopilot.c): up to five meta
 * instances on one loop, as in test_cluster.c (each with its own raft dir
 * and a loopback peer listener doing the server side of the raft upgrade),
 * with a liveness hook whose answers the test sets per node. */
#include "common/compat.h"

#include <setjmp.h>
#include <signal.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>

#include "raft/meta.h"
#include "tests/unit/raft/fixture.h"

#define SECRET  "s3cret-for-tests"
#define NNODES  5
#define TIMEOUT 30000 /* ms, per wait */

#define DEAD_AFTER 600 /* ms */
#define REAP_AFTER 900 /* ms */
#define STABLE     300 /* ms */

struct tnode {
    int idx;
    char name[16];
    char dir[300];
    char peer[64];
    const char *secret; /* what this node's listener accepts */
    uv_tcp_t listener;
    struct meta *m; /* NULL while closed */
    const char *region;
    enum meta_liveness live; /* what the liveness hook says of it */
    uint64_t live_since;     /* uv_now when set */
};

static uv_loop_t loop;
static struct tnode nodes[NNODES];
static const bool answer_old_protocol = false;
static char root[64];
/* the configuration of the nodes opened next */
static bool ap_on;
static bool ap_hook;
static unsigned ap_max_lag;
static unsigned ap_reap_after;

#include "tests/unit/raft/cluster_fixture.h"

static void on_hook_write(void *data, int status, int result, uint64_t index)
{
    struct hook_call *h = data;
    h->fcb(h->data, status, result, index);
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
    struct tnode *l = by_id(leader_id);
    if (l == NULL)
        return AT_ENOTLEADER;
    struct hook_call *h = at_calloc(1, sizeof(*h));
    h->fcb = cb;
    h->data = cb_data;
    int rv = meta_propose_packed(l->m, cmd, len, on_hook_write, h);
    if (rv != 0)
        at_free(h);
    return rv;
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
    struct tnode *l = by_id(leader_id);
    if (l == NULL)
        return AT_ENOTLEADER;
    struct hook_call *h = at_calloc(1, sizeof(*h));
    h->icb = cb;
    h->data = cb_data;
    int rv = meta_read_index(l->m, on_hook_index, h);
    if (rv != 0)
        at_free(h);
    return rv;
}

static unsigned liveness_calls;

/* gossip's view, as the test sets it (unknown names: UNKNOWN) */
static enum meta_liveness hook_liveness(void *hooks_data,
                                        const char *name,
                                        uint64_t *since_ms)
{
    AT_UNUSED(hooks_data);
    liveness_calls++;
    for (int i = 0; i < NNODES; i++) {
        if (strcmp(nodes[i].name, name) == 0) {
            if (since_ms != NULL)
                *since_ms = nodes[i].live_since;
            return nodes[i].live;
        }
    }
    return META_LIVE_UNKNOWN;
}

static const struct meta_hooks hooks_live = { .forward = hook_forward,
                                              .read_index = hook_read_index,
                                              .liveness = hook_liveness };
static const struct meta_hooks hooks_plain = { .forward = hook_forward,
                                               .read_index = hook_read_index };

static void set_live(int i, enum meta_liveness l)
{
    nodes[i].live = l;
    nodes[i].live_since = uv_now(&loop);
}

/* ---- nodes ---- */

static void node_open(int i, bool join)
{
    struct tnode *n = &nodes[i];
    struct meta_config cfg = { 0 };
    char e[AT_ERRMSG_SIZE] = "";
    char api[64];
    cfg.dir = n->dir;
    cfg.name = n->name;
    cfg.join = join;
    cfg.peer_address = n->peer;
    snprintf(api, sizeof(api), "127.0.0.1:%d", 15000 + i); /* never dialed */
    cfg.api_address = api;
    cfg.region = n->region;
    cfg.cluster_secret = SECRET;
    cfg.election_timeout_ms = 400;
    cfg.heartbeat_timeout_ms = 40;
    cfg.autopilot = ap_on;
    cfg.autopilot_dead_after_ms = DEAD_AFTER;
    cfg.autopilot_stabilization_ms = STABLE;
    cfg.autopilot_max_lag = ap_max_lag;
    cfg.autopilot_reap_after_ms = ap_reap_after;
    cfg.hooks = ap_hook ? &hooks_live : &hooks_plain;
    cfg.hooks_data = n;
    int rv = meta_open(&n->m, &loop, &cfg, e);
    if (rv != 0)
        print_error("meta_open %s: %s\n", n->name, e);
    assert_int_equal(rv, 0);
}

/* The role (meta_node's) of each test node in node l's view; -2: not in
 * the node table. */
struct roles {
    int role[NNODES];
    unsigned voters, standbys, n;
};

static void roles_each(void *data, const struct meta_node *n)
{
    struct roles *r = data;
    r->n++;
    r->voters += n->role == 1;
    r->standbys += n->role == 2;
    for (int i = 0; i < NNODES; i++) {
        if (strcmp(n->name, nodes[i].name) == 0)
            r->role[i] = n->role;
    }
}

static struct roles roles_of(int l)
{
    struct roles r = { { 0 }, 0, 0, 0 };
    for (int i = 0; i < NNODES; i++)
        r.role[i] = -2;
    meta_members(nodes[l].m, roles_each, &r);
    return r;
}

/* node i's role seen by node 0 (the leader here) is want */
struct role_want {
    int i, want;
};
static bool role_is(void *arg)
{
    struct role_want *w = arg;
    return roles_of(0).role[w->i] == w->want;
}

static void wait_role(int i, int want)
{
    struct role_want w = { i, want };
    run_until(role_is, &w);
}

/* ---- operations ---- */

struct op {
    bool done;
    int status, result;
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
    AT_UNUSED(index);
    o->status = status;
    o->result = result;
    o->done = true;
}

/* A write on node i, committed. */
static void write_blob(int i, const char *repo, const char *blob)
{
    struct op o = { 0 };
    struct meta_cmd c = { .kind = META_CMD_BLOB_STORED,
                          .blob_stored = {
                              .repo = repo, .digest = dg(blob), .size = 42 } };
    assert_int_equal(meta_propose(nodes[i].m, &c, on_write, &o), 0);
    run_until(flag_set, &o.done);
    assert_int_equal(o.status, 0);
    assert_int_equal(o.result, META_OK);
}

static void join(int leader, int i, bool standby)
{
    struct meta_node n = { 0 };
    struct op o = { 0 };
    n.name = nodes[i].name;
    n.peer_address = nodes[i].peer;
    n.api_address = "127.0.0.1:1";
    n.region = nodes[i].region;
    assert_int_equal(meta_member_join(nodes[leader].m, &n, standby, on_op, &o),
                     0);
    run_until(flag_set, &o.done);
    assert_int_equal(o.status, 0);
}

/* The actions of node l's autopilot of kind on node i. */
static unsigned actions(int l, const char *kind, int i)
{
    struct meta_autopilot_status st;
    unsigned n = 0;
    meta_autopilot_status(nodes[l].m, &st);
    for (size_t k = 0; k < st.nactions; k++) {
        if (strcmp(st.actions[k].kind, kind) == 0 &&
            strcmp(st.actions[k].node, nodes[i].name) == 0)
            n++;
    }
    return n;
}

/* ---- set-up ---- */

static const char *const regions[NNODES] = { "west", "east", "west", "west",
                                             "east" };

static int setup(void **state)
{
    AT_UNUSED(state);
    uv_loop_init(&loop);
    snprintf(root, sizeof(root), "/tmp/atoll-ap-XXXXXX");
    assert_non_null(mkdtemp(root));
    memset(nodes, 0, sizeof(nodes));
    for (int i = 0; i < NNODES; i++) {
        nodes[i].idx = i;
        snprintf(nodes[i].name, sizeof(nodes[i].name), "n%d", i);
        snprintf(nodes[i].dir, sizeof(nodes[i].dir), "%s/n%d/raft", root, i);
        nodes[i].secret = SECRET;
        nodes[i].region = regions[i];
        nodes[i].live = META_LIVE_ALIVE;
        listener_start(&nodes[i]);
    }
    ap_on = true;
    ap_hook = true;
    ap_max_lag = 0;    /* default */
    ap_reap_after = 0; /* never */
    return 0;
}

static int teardown(void **state)
{
    AT_UNUSED(state);
    for (int i = 0; i < NNODES; i++) {
        if (nodes[i].m != NULL)
            node_close(i);
        uv_close((uv_handle_t *)&nodes[i].listener, NULL);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    rm_rf(root);
    return 0;
}

/* n0 bootstraps and leads; n1..n(k-1) join and end as voters. */
static void form(int k)
{
    node_open(0, false);
    run_until(have_leader, NULL);
    assert_int_equal(leader_idx(), 0);
    for (int i = 1; i < k; i++) {
        node_open(i, true);
        join(0, i, false);
        wait_role(i, 1);
    }
}

/* (a) a joining node is a standby until alive and caught up for the
 * stabilization time, then a voter. */
static void test_stabilization(void **state)
{
    AT_UNUSED(state);
    node_open(0, false);
    run_until(have_leader, NULL);
    node_open(1, true);
    set_live(1, META_LIVE_SUSPECT);
    join(0, 1, false);
    assert_int_equal(roles_of(0).role[1], 2); /* the join ends as standby */
    run_ms(3 * STABLE);
    assert_int_equal(roles_of(0).role[1], 2); /* not alive: still standby */
    struct meta_autopilot_status st;
    meta_autopilot_status(nodes[0].m, &st);
    assert_true(st.enabled && st.leader);
    assert_int_equal(st.nnodes, 2);
    assert_false(st.nodes[1].healthy);
    assert_true(st.nodes[1].caught_up);
    set_live(1, META_LIVE_ALIVE);
    uint64_t t0 = uv_now(&loop);
    wait_role(1, 1);
    uint64_t took = uv_now(&loop) - t0;
    assert_true(took >= STABLE - 10);
    assert_true(took < STABLE + 1000);
    assert_int_equal(actions(0, "promote", 1), 1);
    meta_autopilot_status(nodes[0].m, &st);
    assert_true(st.nodes[1].healthy);
    assert_true(st.nodes[1].stable_since_ms > 0);
    /* a standby-flagged node never votes */
    node_open(2, true);
    join(0, 2, true);
    run_ms(3 * STABLE);
    assert_int_equal(roles_of(0).role[2], 2);
    write_blob(0, "r", "a");
    write_blob(1, "r", "b"); /* forwarded */
}

/* (b) 3 voters + 2 standbys: a dead voter is replaced by the standby of
 * its region, then demoted; writes go on; back alive it stays standby. */
static void test_replace_dead(void **state)
{
    AT_UNUSED(state);
    form(3);
    node_open(3, true);
    join(0, 3, false);
    node_open(4, true);
    join(0, 4, false);
    struct roles r = roles_of(0);
    assert_int_equal(r.voters, 3);
    assert_int_equal(r.standbys, 2);
    run_ms(STABLE + 200); /* n3, n4 stable */
    /* n1 (east) dies: n4 (east) replaces it, not n3 (west, first) */
    node_close(1);
    set_live(1, META_LIVE_DEAD);
    uint64_t t0 = uv_now(&loop);
    wait_role(4, 1);
    assert_true(uv_now(&loop) - t0 >= DEAD_AFTER - 10);
    wait_role(1, 2);
    r = roles_of(0);
    assert_int_equal(r.voters, 3);
    assert_int_equal(r.role[0], 1);
    assert_int_equal(r.role[2], 1);
    assert_int_equal(r.role[3], 2);
    assert_int_equal(actions(0, "promote", 4), 1);
    assert_int_equal(actions(0, "demote", 1), 1);
    write_blob(0, "r", "a");
    write_blob(4, "r", "b");
    /* n2 dies too: n3 replaces it (another region: the only one left) */
    node_close(2);
    set_live(2, META_LIVE_DEAD);
    wait_role(3, 1);
    wait_role(2, 2);
    write_blob(0, "r", "c");
    /* n1 comes back: alive, caught up, still a standby */
    node_open(1, true);
    set_live(1, META_LIVE_ALIVE);
    run_ms(STABLE + DEAD_AFTER);
    r = roles_of(0);
    assert_int_equal(r.role[1], 2);
    assert_int_equal(r.voters, 3);
}

/* (c) a node that left is removed (table and configuration); a voter that
 * left is replaced by the promotion of a stable standby. */
static void test_left(void **state)
{
    AT_UNUSED(state);
    form(3);
    node_open(3, true);
    join(0, 3, false);
    run_ms(STABLE + 200);
    set_live(2, META_LIVE_LEFT);
    wait_role(2, -2);
    assert_int_equal(actions(0, "remove", 2), 1);
    node_close(2);
    wait_role(3, 1); /* back to 3 voters */
    struct roles r = roles_of(0);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.voters, 3);
    write_blob(0, "r", "a");
}

/* (d) autopilot off, or no liveness hook: joins are voters at once while
 * voters are missing, and a dead voter stays. */
static void off_case(void)
{
    node_open(0, false);
    run_until(have_leader, NULL);
    for (int i = 1; i < 3; i++) {
        node_open(i, true);
        join(0, i, false);
        assert_int_equal(roles_of(0).role[i], 1); /* at once */
    }
    node_open(3, true);
    join(0, 3, false);
    assert_int_equal(roles_of(0).role[3], 2);
    node_close(1);
    set_live(1, META_LIVE_DEAD);
    set_live(2, META_LIVE_LEFT);
    run_ms(2 * DEAD_AFTER + STABLE);
    struct roles r = roles_of(0);
    assert_int_equal(r.role[1], 1);
    assert_int_equal(r.role[2], 1);
    assert_int_equal(r.role[3], 2);
    struct meta_autopilot_status st;
    meta_autopilot_status(nodes[0].m, &st);
    assert_false(st.enabled);
    assert_true(st.configured == ap_on);
    assert_int_equal(st.nactions, 0);
    assert_int_equal(st.nnodes, 0);
}

static void test_off(void **state)
{
    AT_UNUSED(state);
    ap_on = false;
    liveness_calls = 0;
    off_case();
    assert_int_equal(liveness_calls, 0);
}

static void test_no_hook(void **state)
{
    AT_UNUSED(state);
    ap_hook = false;
    off_case();
}

/* (e) no replacement: the standbys are standby-flagged or behind. */
static void test_no_replacement(void **state)
{
    AT_UNUSED(state);
    ap_max_lag = 5;
    form(3);
    node_open(3, true);
    join(0, 3, true); /* flagged */
    node_open(4, true);
    join(0, 4, false);
    run_ms(STABLE + 200);
    /* n4 stops but gossip still says alive: it falls behind */
    node_close(4);
    for (int k = 0; k < 20; k++) {
        char blob[16];
        snprintf(blob, sizeof(blob), "b%d", k);
        write_blob(0, "r", blob);
    }
    node_close(1);
    set_live(1, META_LIVE_DEAD);
    run_ms(2 * DEAD_AFTER + STABLE);
    struct roles r = roles_of(0);
    assert_int_equal(r.role[1], 1);
    assert_int_equal(r.role[3], 2);
    assert_int_equal(r.role[4], 2);
    assert_int_equal(actions(0, "promote", 3) + actions(0, "promote", 4), 0);
    struct meta_autopilot_status st;
    meta_autopilot_status(nodes[0].m, &st);
    for (size_t k = 0; k < st.nnodes; k++) {
        if (strcmp(st.nodes[k].name, "n4") == 0)
            assert_false(st.nodes[k].caught_up);
    }
    write_blob(0, "r", "still"); /* n0 + n2: a majority of 3 */
}

/* A handoff of node i asked of leader l, waited for: its status. */
static int handoff(int l, int i)
{
    struct op o = { 0 };
    int rv = meta_member_handoff(nodes[l].m, nodes[i].name, on_op, &o);
    if (rv != 0)
        return rv;
    run_until(flag_set, &o.done);
    return o.status;
}

/* (f) a voter hands its vote over before it stops (a pod's preStop): a
 * stable standby of its region is promoted, then it is demoted, all
 * while it is alive; a standby's handoff is done at once; with no
 * standby that may vote it stays a voter (AT_EAGAIN); the leader cannot
 * hand itself over (its caller transfers leadership first). */
static void test_handoff(void **state)
{
    AT_UNUSED(state);
    form(3);
    assert_int_equal(handoff(0, 1), AT_EAGAIN); /* no standby at all */
    assert_int_equal(roles_of(0).role[1], 1);
    node_open(3, true);
    join(0, 3, true); /* standby-flagged: may never vote */
    assert_int_equal(handoff(0, 2), AT_EAGAIN);
    node_open(4, true);
    join(0, 4, false);
    assert_int_equal(handoff(0, 1), 0); /* waits for n4 to be stable */
    struct roles r = roles_of(0);
    assert_int_equal(r.role[1], 2);
    assert_int_equal(r.role[4], 1);
    assert_int_equal(r.voters, 3);
    assert_int_equal(actions(0, "promote", 4), 1);
    assert_int_equal(actions(0, "demote", 1), 1);
    assert_int_equal(handoff(0, 1), 0); /* not a voter: done at once */
    assert_int_equal(meta_member_handoff(nodes[0].m, "n0", on_op, NULL),
                     AT_EINVAL);
    assert_int_equal(meta_member_handoff(nodes[0].m, "nope", on_op, NULL),
                     AT_ENOTFOUND);
    assert_int_equal(meta_member_handoff(nodes[1].m, "n2", on_op, NULL),
                     AT_ENOTLEADER);
    write_blob(4, "r", "a");
    run_ms(2 * DEAD_AFTER); /* nothing undoes it */
    assert_int_equal(roles_of(0).voters, 3);
    assert_int_equal(roles_of(0).role[1], 2);
}

/* (h) several pods stop at once (a StatefulSet scaled down): a node that
 * handed its vote over (or had none) is leaving and never takes another
 * one's vote, even from its own region; once it was seen down and is back
 * (a restart), it may again. */
static void test_handoff_never_to_leaving(void **state)
{
    AT_UNUSED(state);
    form(3);
    node_open(3, true);
    join(0, 3, false);
    node_open(4, true);
    join(0, 4, false);
    run_ms(STABLE + 200);
    assert_int_equal(handoff(0, 4), 0); /* a standby: done, leaving */
    assert_int_equal(handoff(0, 1), 0); /* east: n4 (east) would be first */
    struct roles r = roles_of(0);
    assert_int_equal(r.role[3], 1);
    assert_int_equal(r.role[4], 2);
    assert_int_equal(r.role[1], 2);
    assert_int_equal(actions(0, "promote", 4), 0);
    /* n4 restarts: seen dead, then alive and stable again */
    set_live(4, META_LIVE_DEAD);
    run_ms(300);
    set_live(4, META_LIVE_ALIVE);
    run_ms(STABLE + 300);
    assert_int_equal(handoff(0, 3), 0); /* n1 is leaving: n4 takes it */
    r = roles_of(0);
    assert_int_equal(r.role[4], 1);
    assert_int_equal(r.role[3], 2);
    assert_int_equal(r.voters, 3);
}

/* (g) a standby dead for reap_after is removed; a voter never is (it is
 * replaced, demoted, then reaped as a standby). */
static void test_reap(void **state)
{
    AT_UNUSED(state);
    ap_reap_after = REAP_AFTER;
    form(3);
    node_open(3, true);
    join(0, 3, false);
    node_open(4, true);
    join(0, 4, false);
    run_ms(STABLE + 200);
    node_close(4);
    set_live(4, META_LIVE_DEAD);
    uint64_t t0 = uv_now(&loop);
    wait_role(4, -2);
    assert_true(uv_now(&loop) - t0 >= REAP_AFTER - 10);
    assert_int_equal(actions(0, "remove", 4), 1);
    /* voter n2 dies: n3 replaces it, then n2 (now standby) is reaped */
    node_close(2);
    set_live(2, META_LIVE_DEAD);
    wait_role(3, 1);
    wait_role(2, -2);
    struct roles r = roles_of(0);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.voters, 3);
    write_blob(0, "r", "a");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as the daemon: peers close connections */
    at_log_configure(getenv("AT_LOG") != NULL ? getenv("AT_LOG") : "error");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stabilization, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace_dead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_left, setup, teardown),
        cmocka_unit_test_setup_teardown(test_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_replacement, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handoff_never_to_leaving, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
