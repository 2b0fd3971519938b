/* Unit tests of the node's gossip runtime on a real loop over loopback
 * UDP: two members find each other through a join list (one entry not
 * answering), liveness and the member list follow, the push-pull server
 * side refuses garbage and answers a valid state, and a leave shows as
 * left. No peer client: push-pull over TCP is the integration tests'. */
#include "common/compat.h"

#include <setjmp.h>

#include <cmocka.h>

#include "gossip/wire.h"
#include "node/cluster/gossip.h"

#define SECRET "0123456789abcdef-unit-secret"

static int udp_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int port;

    assert_true(fd >= 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

struct member {
    struct node_gossip *g;
    char addr[64];
    int port;
    unsigned events, stopped;
};

static void on_event(void *data,
                     enum gossip_event ev,
                     const struct gossip_member_info *m)
{
    struct member *mb = data;

    AT_UNUSED(ev);
    AT_UNUSED(m);
    mb->events++;
}

static void start(struct member *mb,
                  uv_loop_t *loop,
                  const char *name,
                  const char *join)
{
    struct node_gossip_config c;
    char errmsg[AT_ERRMSG_SIZE];

    mb->port = udp_port();
    snprintf(mb->addr, sizeof(mb->addr), "127.0.0.1:%d", mb->port);
    memset(&c, 0, sizeof(c));
    c.name = name;
    c.bind_host = "127.0.0.1";
    c.port = mb->port;
    c.advertise = mb->addr;
    c.secret = SECRET;
    c.keyring_file = "";
    c.join = join;
    snprintf(c.meta.role, sizeof(c.meta.role), "voter");
    snprintf(c.meta.version, sizeof(c.meta.version), "test");
    c.probe_interval_ms = 100;
    c.probe_timeout_ms = 50;
    c.gossip_interval_ms = 20;
    c.suspicion_mult = 4;
    c.retransmit_mult = 4;
    c.push_pull_interval_ms = 0;
    c.event = on_event;
    c.data = mb;
    assert_int_equal(node_gossip_start(&mb->g, loop, &c, errmsg), 0);
}

struct wait {
    struct member *of;
    const char *name;
    enum meta_liveness want;
    bool done;
};

static void on_check(uv_timer_t *t)
{
    struct wait *w = t->data;

    if (node_gossip_liveness(w->of->g, w->name, NULL) == w->want) {
        w->done = true;
        uv_stop(t->loop);
    }
}

/* Run the loop until of sees name in state want, at most ms. */
static bool wait_state(uv_loop_t *loop,
                       struct member *of,
                       const char *name,
                       enum meta_liveness want,
                       unsigned ms)
{
    struct wait w = { of, name, want, false };
    uv_timer_t check;
    uint64_t deadline = uv_now(loop) + ms;

    uv_timer_init(loop, &check);
    check.data = &w;
    uv_timer_start(&check, on_check, 10, 10);
    while (!w.done && uv_now(loop) < deadline)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&check, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return w.done;
}

static void on_stopped(void *data)
{
    ((struct member *)data)->stopped++;
}

static void count_each(void *data, const struct gossip_member_info *m)
{
    AT_UNUSED(m);
    (*(unsigned *)data)++;
}

static void test_join_and_leave(void **state)
{
    uv_loop_t loop;
    struct member a = { 0 }, b = { 0 }, c = { 0 };
    char join[160];
    struct node_gossip_stats st;
    unsigned n = 0;

    AT_UNUSED(state);
    uv_loop_init(&loop);
    start(&a, &loop, "a", "");
    /* the first entry answers nothing: the second one does */
    snprintf(join, sizeof(join), "127.0.0.1:%d,%s", udp_port(), a.addr);
    start(&b, &loop, "b", join);
    assert_true(wait_state(&loop, &b, "a", META_LIVE_ALIVE, 5000));
    assert_true(wait_state(&loop, &a, "b", META_LIVE_ALIVE, 5000));
    assert_int_equal(node_gossip_liveness(a.g, "nobody", NULL),
                     META_LIVE_UNKNOWN);
    assert_int_equal(node_gossip_liveness(NULL, "a", NULL), META_LIVE_UNKNOWN);
    node_gossip_each(a.g, count_each, &n);
    assert_int_equal(n, 2);
    assert_true(a.events > 0);
    node_gossip_stats_get(a.g, &st);
    assert_true(st.sent > 0 && st.received > 0);
    assert_int_equal(st.alive, 2);

    start(&c, &loop, "c", a.addr);
    assert_true(wait_state(&loop, &a, "c", META_LIVE_ALIVE, 5000));

    /* a plain graceful stop: "left" in the table, but a restart to come,
     * so every decision sees it as dead (autopilot never removes it) */
    node_gossip_stop(b.g, true, 2000, on_stopped, &b);
    assert_true(wait_state(&loop, &a, "b", META_LIVE_DEAD, 3000));
    node_gossip_stats_get(a.g, &st);
    assert_int_equal(st.left, 1);
    while (b.stopped == 0)
        uv_run(&loop, UV_RUN_ONCE);
    /* leaving for good (leave_on_terminate): left */
    node_gossip_depart(c.g);
    node_gossip_stop(c.g, true, 2000, on_stopped, &c);
    assert_true(wait_state(&loop, &a, "c", META_LIVE_LEFT, 5000));
    while (c.stopped == 0)
        uv_run(&loop, UV_RUN_ONCE);
    node_gossip_stop(a.g, false, 0, on_stopped, &a);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(a.stopped, 1);
    assert_int_equal(b.stopped, 1);
    assert_int_equal(c.stopped, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_push_pull_server(void **state)
{
    uv_loop_t loop;
    struct member a = { 0 };
    struct gossip_update u;
    struct gossip_update *back = NULL;
    uint8_t *body = NULL, *out = NULL;
    size_t len = 0, outlen = 0, n = 0;
    char from[GOSSIP_NAME_MAX];

    AT_UNUSED(state);
    uv_loop_init(&loop);
    start(&a, &loop, "a", "");
    assert_int_equal(node_gossip_push_pull(a.g, "junk", 4, &out, &outlen),
                     AT_EPROTO);
    assert_null(out);
    memset(&u, 0, sizeof(u));
    u.kind = GOSSIP_UPDATE_ALIVE;
    u.incarnation = 1;
    snprintf(u.name, sizeof(u.name), "z");
    snprintf(u.addr, sizeof(u.addr), "127.0.0.1:9");
    assert_int_equal(gossip_wire_state_encode("z", &u, 1, &body, &len), 0);
    assert_int_equal(node_gossip_push_pull(a.g, body, len, &out, &outlen), 0);
    assert_int_equal(gossip_wire_state_decode(out, outlen, from, &back, &n), 0);
    assert_string_equal(from, "a");
    assert_int_equal(n, 2); /* a and the z it just learned */
    assert_int_equal(node_gossip_liveness(a.g, "z", NULL), META_LIVE_ALIVE);
    free(back);
    free(body);
    free(out);
    node_gossip_stop(a.g, false, 0, on_stopped, &a);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(a.stopped, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Seal a message from "zz" with a ring of our own, clock at now_ms. */
static size_t seal_from(struct gossip_keyring *r,
                        uint64_t now_ms,
                        uint8_t *out,
                        size_t size)
{
    struct gossip_msg m;
    char errmsg[AT_ERRMSG_SIZE];
    size_t len = 0;

    if (gossip_keyring_count(r) == 0) {
        assert_int_equal(gossip_keyring_init(r, errmsg), 0);
        assert_int_equal(
            gossip_keyring_add(r, SECRET, strlen(SECRET), NULL, errmsg), 0);
    }
    memset(&m, 0, sizeof(m));
    m.type = GOSSIP_MSG_UPDATES;
    snprintf(m.from, sizeof(m.from), "zz");
    assert_int_equal(gossip_wire_seal(r, now_ms, &m, out, size, &len, NULL), 0);
    return len;
}

struct stat_wait {
    struct member *of;
    uint64_t want_replay, want_stale, want_received;
    bool done;
};

static void on_stat_check(uv_timer_t *t)
{
    struct stat_wait *w = t->data;
    struct node_gossip_stats st;

    node_gossip_stats_get(w->of->g, &st);
    if (st.drop_replay >= w->want_replay && st.drop_stale >= w->want_stale &&
        st.received >= w->want_received) {
        w->done = true;
        uv_stop(t->loop);
    }
}

static void test_replay_and_stale(void **state)
{
    uv_loop_t loop;
    struct member a = { 0 };
    struct gossip_keyring r1, r2;
    uint8_t p1[GOSSIP_SEAL_PACKET_MAX], p2[GOSSIP_SEAL_PACKET_MAX];
    size_t n1, n2;
    struct sockaddr_in to;
    struct stat_wait w = { &a, 1, 1, 3, false };
    struct node_gossip_stats st;
    uv_timer_t check;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);

    AT_UNUSED(state);
    memset(&r1, 0, sizeof(r1));
    memset(&r2, 0, sizeof(r2));
    uv_loop_init(&loop);
    start(&a, &loop, "a", "");
    n1 = seal_from(&r1, at_wall_ms(), p1, sizeof(p1));
    /* a fresh sender whose clock is 11 minutes behind ours */
    n2 = seal_from(&r2, at_wall_ms() - 11 * 60 * 1000, p2, sizeof(p2));
    memset(&to, 0, sizeof(to));
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons((uint16_t)a.port);
    assert_true(fd >= 0);
    assert_int_equal(sendto(fd, p1, n1, 0, (struct sockaddr *)&to, sizeof(to)),
                     (ssize_t)n1);
    assert_int_equal(sendto(fd, p1, n1, 0, (struct sockaddr *)&to, sizeof(to)),
                     (ssize_t)n1);
    assert_int_equal(sendto(fd, p2, n2, 0, (struct sockaddr *)&to, sizeof(to)),
                     (ssize_t)n2);
    close(fd);
    uv_timer_init(&loop, &check);
    check.data = &w;
    uv_timer_start(&check, on_stat_check, 10, 10);
    for (uint64_t end = uv_now(&loop) + 5000; !w.done && uv_now(&loop) < end;)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&check, NULL);
    assert_true(w.done);
    node_gossip_stats_get(a.g, &st);
    assert_int_equal(st.drop_replay, 1);
    assert_int_equal(st.drop_stale, 1);
    assert_int_equal(st.drop_auth + st.drop_decode, 0);
    gossip_keyring_release(&r1);
    gossip_keyring_release(&r2);
    node_gossip_stop(a.g, false, 0, on_stopped, &a);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_refused(void **state)
{
    uv_loop_t loop;
    struct node_gossip *g = NULL;
    struct node_gossip_config c;
    char errmsg[AT_ERRMSG_SIZE];

    AT_UNUSED(state);
    uv_loop_init(&loop);
    memset(&c, 0, sizeof(c));
    c.name = "a";
    c.bind_host = "127.0.0.1";
    c.port = udp_port();
    c.advertise = "127.0.0.1:1";
    c.secret = "short";
    c.probe_interval_ms = 100;
    c.probe_timeout_ms = 50;
    assert_int_equal(node_gossip_start(&g, &loop, &c, errmsg), AT_EINVAL);
    c.secret = SECRET;
    c.keyring_file = "/nonexistent/keyring";
    assert_int_equal(node_gossip_start(&g, &loop, &c, errmsg), AT_EINVAL);
    assert_non_null(strstr(errmsg, "keyring"));
    assert_null(strstr(errmsg, SECRET));
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_and_leave),
        cmocka_unit_test(test_push_pull_server),
        cmocka_unit_test(test_replay_and_stale),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
