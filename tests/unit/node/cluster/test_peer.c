/* Unit tests of the peer HTTP client (node/cluster/peer.c) against the
 * project's HTTP server: bodies, failures, streams, the peer protocol
 * version on requests and answers, and the warning rate limit. */
#include "common/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "peer_fixture.h"

#define PATTERN_LEN (3 * 1024 * 1024 + 17)

static struct node_http_server *g_srv;
static struct node_peer *g_peer;
static char g_addr[64];
static struct node_http_req *g_slow;
static struct node_http_req *g_grow; /* streaming a growing file */
static struct at_buf g_body;

static int srv_body(struct node_http_req *r, const char *p, size_t n)
{
    AT_UNUSED(r);
    at_buf_append(&g_body, p, n);
    return 0;
}

static void srv_end(struct node_http_req *r)
{
    const char *auth = node_http_req_header(r, "authorization");

    node_http_resp_header(r, "X-Auth", "%s", auth != NULL ? auth : "-");
    node_http_resp_send(r, g_body.data, g_body.len);
}

static void srv_handler(void *data, struct node_http_req *r)
{
    const char *path = node_http_req_path(r);
    const char *v = node_http_req_header(r, PROTO_PEER_VERSION_HEADER);

    AT_UNUSED(data);
    /* a peer listener states its version; /old is a node of the first
     * protocol, /new a newer one, /bad says nonsense */
    if (strcmp(path, "/new") == 0)
        node_http_resp_header(r, PROTO_PEER_VERSION_HEADER, "%d",
                              PROTO_PEER_VERSION_MAX + 1);
    else if (strcmp(path, "/bad") == 0)
        node_http_resp_header(r, PROTO_PEER_VERSION_HEADER, "two");
    else if (strcmp(path, "/old") != 0)
        node_http_resp_header(r, PROTO_PEER_VERSION_HEADER, "%d",
                              PROTO_PEER_VERSION);
    if (strcmp(path, "/version") == 0) {
        node_http_resp_send(r, v != NULL ? v : "-",
                            strlen(v != NULL ? v : "-"));
    } else if (strcmp(path, "/old") == 0 || strcmp(path, "/new") == 0 ||
               strcmp(path, "/bad") == 0) {
        static const char doc[] = "{\"status\":0,\"index\":7}";
        node_http_resp_send(r, doc, sizeof(doc) - 1);
    } else if (strcmp(path, "/echo") == 0) {
        at_buf_reset(&g_body);
        node_http_req_read_body(r, srv_body, srv_end);
    } else if (strcmp(path, "/big") == 0) {
        size_t n = 2 * NODE_PEER_MAX_RESP;
        char *p = at_calloc(1, n);
        node_http_resp_send(r, p, n);
        at_free(p);
    } else if (strcmp(path, "/pattern") == 0) {
        size_t n = PATTERN_LEN;
        char *p = at_malloc(n);
        for (size_t i = 0; i < n; i++)
            p[i] = (char)(i % 251);
        node_http_resp_send(r, p, n);
        at_free(p);
    } else if (strcmp(path, "/grow") == 0) {
        /* node_http_resp_stream_file: a third of the file at first */
        char tmpl[] = "/tmp/atoll-test-grow-XXXXXX";
        int fd = mkstemp(tmpl);
        char *p = at_malloc(PATTERN_LEN);
        assert_true(fd >= 0);
        unlink(tmpl);
        for (size_t i = 0; i < PATTERN_LEN; i++)
            p[i] = (char)(i % 251);
        assert_int_equal(pwrite(fd, p, PATTERN_LEN, 0), PATTERN_LEN);
        at_free(p);
        node_http_req_ref(r);
        g_grow = r;
        node_http_resp_status(r, 200);
        node_http_resp_stream_file(r, fd, PATTERN_LEN, PATTERN_LEN / 3);
    } else if (strcmp(path, "/slow") == 0) {
        node_http_req_ref(r);
        g_slow = r;
    } else {
        node_http_resp_status(r, 404);
        node_http_resp_send(r, "nope", 4);
    }
}

static int setup(void **state)
{
    struct node_http_config cfg;
    char errmsg[AT_ERRMSG_SIZE];

    AT_UNUSED(state);
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&g_loop);
    at_buf_init(&g_body, 0);
    memset(&cfg, 0, sizeof(cfg));
    cfg.host = "127.0.0.1";
    cfg.header_timeout_ms = 5000;
    cfg.idle_timeout_ms = 5000;
    cfg.body_timeout_ms = 5000;
    cfg.write_timeout_ms = 5000;
    cfg.shutdown_grace_ms = 100;
    if (node_http_start(&g_srv, &g_loop, &cfg, srv_handler, NULL, errmsg))
        return -1;
    snprintf(g_addr, sizeof(g_addr), "127.0.0.1:%d", node_http_port(g_srv));
    return node_peer_new(&g_peer, &g_loop, "s3cret", "127.0.0.1", errmsg);
}

static void on_closed(void *data)
{
    *(bool *)data = true;
}

static int teardown(void **state)
{
    bool stopped = false, closed = false;

    AT_UNUSED(state);
    if (g_peer != NULL)
        node_peer_close(g_peer, on_closed, &closed);
    else
        closed = true;
    node_http_stop(g_srv, on_closed, &stopped);
    while (!stopped || !closed)
        uv_run(&g_loop, UV_RUN_ONCE);
    uv_run(&g_loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&g_loop), 0);
    at_buf_release(&g_body);
    return 0;
}

static void test_post_echo(void **state)
{
    struct result res = { 0 };
    char big[100000];

    AT_UNUSED(state);
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 26);
    assert_int_equal(node_peer_request(g_peer, "POST", g_addr, "/echo",
                                       "application/octet-stream", big,
                                       sizeof(big), 5000, on_result, &res),
                     0);
    assert_false(res.done);
    run_until(&res.done);
    expect_result(&res, 0, 200);
    assert_int_equal(res.len, sizeof(big));
    assert_memory_equal(res.body, big, sizeof(big));
    at_free(res.body);

    memset(&res, 0, sizeof(res));
    assert_int_equal(node_peer_request(g_peer, "GET", g_addr, "/missing", NULL,
                                       NULL, 0, 5000, on_result, &res),
                     0);
    run_until(&res.done);
    expect_result(&res, 0, 404);
    assert_string_equal(res.body, "nope");
    at_free(res.body);
}

static void test_bad_args(void **state)
{
    struct result res = { 0 };

    AT_UNUSED(state);
    assert_int_equal(node_peer_request(g_peer, "GET", "nohost", "/x", NULL,
                                       NULL, 0, 1000, on_result, &res),
                     AT_EINVAL);
    assert_int_equal(node_peer_request(g_peer, "GET", "a@b:1", "/x", NULL, NULL,
                                       0, 1000, on_result, &res),
                     AT_EINVAL);
    assert_int_equal(node_peer_request(g_peer, "GET", g_addr, "x y", NULL, NULL,
                                       0, 1000, on_result, &res),
                     AT_EINVAL);
    assert_false(res.done);
}

static void test_too_big(void **state)
{
    struct result res = { 0 };

    AT_UNUSED(state);
    assert_int_equal(node_peer_request(g_peer, "GET", g_addr, "/big", NULL,
                                       NULL, 0, 5000, on_result, &res),
                     0);
    run_until(&res.done);
    assert_int_equal(res.status, AT_ETOOBIG);
}

static void test_not_sent(void **state)
{
    struct result res = { 0 };
    char addr[64];
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    AT_UNUSED(state);
    /* A port that was just free: nobody listens there. */
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", ntohs(a.sin_port));
    assert_int_equal(node_peer_request(g_peer, "POST", addr, "/echo", NULL, "x",
                                       1, 5000, on_result, &res),
                     0);
    run_until(&res.done);
    assert_int_equal(res.status, AT_EIO);
}

static void test_sent_no_answer(void **state)
{
    struct result res = { 0 };

    AT_UNUSED(state);
    g_slow = NULL;
    assert_int_equal(node_peer_request(g_peer, "POST", g_addr, "/slow", NULL,
                                       "x", 1, 300, on_result, &res),
                     0);
    run_until(&res.done);
    assert_int_equal(res.status, AT_EUNKNOWN);
    assert_non_null(g_slow);
    node_http_req_unref(g_slow);
    g_slow = NULL;
}

static void test_close_in_flight(void **state)
{
    struct result res = { 0 };
    bool closed = false;

    AT_UNUSED(state);
    assert_int_equal(node_peer_request(g_peer, "POST", g_addr, "/slow", NULL,
                                       "x", 1, 5000, on_result, &res),
                     0);
    for (int i = 0; i < 1000 && g_slow == NULL; i++)
        uv_run(&g_loop, UV_RUN_ONCE);
    assert_non_null(g_slow);
    node_peer_close(g_peer, on_closed, &closed);
    g_peer = NULL;
    assert_true(res.done);
    assert_int_equal(res.status, AT_ESHUTDOWN);
    run_until(&closed);
    node_http_req_unref(g_slow);
    g_slow = NULL;
}

/* ---- the peer protocol version ---- */

static void test_version_sent(void **state)
{
    struct result res = { 0 };
    char want[16];

    AT_UNUSED(state);
    assert_int_equal(node_peer_request(g_peer, "GET", g_addr, "/version", NULL,
                                       NULL, 0, 5000, on_result, &res),
                     0);
    run_until(&res.done);
    assert_int_equal(res.status, 0);
    snprintf(want, sizeof(want), "%d", PROTO_PEER_VERSION);
    assert_string_equal(res.body, want);
    at_free(res.body);
}

static void test_answer_version_refused(void **state)
{
    static const char *paths[] = { "/old", "/new", "/bad" };
    struct result res;

    AT_UNUSED(state);
    for (size_t i = 0; i < AT_ARRAY_SIZE(paths); i++) {
        memset(&res, 0, sizeof(res));
        assert_int_equal(node_peer_request(g_peer, "POST", g_addr, paths[i],
                                           NULL, "x", 1, 5000, on_result, &res),
                         0);
        run_until(&res.done);
        /* never handed on to be parsed */
        assert_int_equal(res.status, AT_EPROTO);
        assert_null(res.body);
    }
}

static int never_data(void *data, const char *p, size_t n)
{
    AT_UNUSED(data);
    AT_UNUSED(p);
    AT_UNUSED(n);
    fail_msg("data of an answer in another peer protocol");
    return 0;
}

static void test_stream_version_refused(void **state)
{
    struct result res = { 0 };

    AT_UNUSED(state);
    assert_int_equal(node_peer_stream(g_peer, g_addr, "/old", 5000, never_data,
                                      on_result, &res, NULL),
                     0);
    run_until(&res.done);
    assert_int_equal(res.status, AT_EPROTO);
}

static void test_warn_rate_limit(void **state)
{
    struct node_peer_warn w[3];
    uint64_t quiet = 99;

    AT_UNUSED(state);
    memset(w, 0, sizeof(w));
    assert_true(node_peer_warn_due(w, 3, "10.0.0.1", 1000, &quiet));
    assert_int_equal(quiet, 0);
    /* the same peer within the window: counted, not logged */
    assert_false(node_peer_warn_due(w, 3, "10.0.0.1", 2000, &quiet));
    assert_false(node_peer_warn_due(w, 3, "10.0.0.1", 3000, &quiet));
    /* others have their own line */
    assert_true(node_peer_warn_due(w, 3, "10.0.0.2", 3000, &quiet));
    assert_true(node_peer_warn_due(w, 3, "10.0.0.3", 3000, &quiet));
    /* after the window: one line, with the count of the quiet ones */
    assert_true(
        node_peer_warn_due(w, 3, "10.0.0.1", 1000 + NODE_PEER_WARN_MS, &quiet));
    assert_int_equal(quiet, 2);
    assert_false(
        node_peer_warn_due(w, 3, "10.0.0.1", 2000 + NODE_PEER_WARN_MS, &quiet));
    /* a fourth peer takes the oldest slot (10.0.0.2) */
    assert_true(node_peer_warn_due(w, 3, "10.0.0.4", 5000, &quiet));
    assert_false(node_peer_warn_due(w, 3, "10.0.0.3", 5000, &quiet));
    assert_true(node_peer_warn_due(w, 3, "10.0.0.2", 5000, &quiet));
    /* a flood from one peer stays one line per window */
    unsigned lines = 0;
    for (uint64_t t = 0; t < 10 * NODE_PEER_WARN_MS; t += 100)
        lines += node_peer_warn_due(w, 3, "10.0.0.9", 100000 + t, &quiet);
    assert_int_equal(lines, 10);
}

/* ---- streaming downloads ---- */

struct stream {
    struct result res;
    struct node_peer_req *pr;
    uv_timer_t timer;
    uint64_t got;
    unsigned calls, pauses, resumes;
    bool bad_byte, paused;
    int abort_with; /* on_data returns this on its second call */
};

static void stream_resume(uv_timer_t *t)
{
    struct stream *st = t->data;

    st->resumes++;
    st->paused = false;
    node_peer_resume(st->pr); /* on_data may run (and pause) in here */
}

static int stream_data(void *data, const char *p, size_t n)
{
    struct stream *st = data;

    st->calls++;
    if (st->abort_with != 0 && st->calls == 2)
        return st->abort_with;
    assert_false(st->paused); /* never called while paused */
    /* pause every third delivery: these bytes must come again */
    if (st->calls % 3 == 0) {
        st->pauses++;
        st->paused = true;
        uv_timer_start(&st->timer, stream_resume, 1, 0);
        return NODE_PEER_PAUSE;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] != (st->got + i) % 251)
            st->bad_byte = true;
    st->got += n;
    return 0;
}

static void stream_timer_closed(uv_handle_t *h)
{
    AT_UNUSED(h);
}

/* A streamed GET of path into st (cleared first), whose on_data fails with
 * abort_with on its second call unless 0; returns once it ended. */
static void stream_run(struct stream *st, const char *path, int abort_with)
{
    memset(st, 0, sizeof(*st));
    st->abort_with = abort_with;
    uv_timer_init(&g_loop, &st->timer);
    st->timer.data = st;
    assert_int_equal(node_peer_stream(g_peer, g_addr, path, 10000, stream_data,
                                      on_result, &st->res, &st->pr),
                     0);
    /* on_result's data is the struct's first member */
    run_until(&st->res.done);
    uv_timer_stop(&st->timer);
    uv_close((uv_handle_t *)&st->timer, stream_timer_closed);
    uv_run(&g_loop, UV_RUN_NOWAIT);
}

static void test_stream_pause_resume(void **state)
{
    struct stream st;

    AT_UNUSED(state);
    stream_run(&st, "/pattern", 0);
    expect_result(&st.res, 0, 200);
    assert_int_equal(st.res.len, 0);
    assert_int_equal(st.got, PATTERN_LEN);
    assert_false(st.bad_byte);
    assert_true(st.pauses > 0);
    assert_int_equal(st.resumes, st.pauses);
    at_free(st.res.body);
}

static void test_stream_not_200(void **state)
{
    struct stream st;

    AT_UNUSED(state);
    stream_run(&st, "/missing", 0);
    expect_result(&st.res, 0, 404);
    assert_string_equal(st.res.body, "nope");
    assert_int_equal(st.calls, 0);
    at_free(st.res.body);
}

static void test_stream_abort(void **state)
{
    struct stream st;

    AT_UNUSED(state);
    stream_run(&st, "/pattern", AT_EDIGEST);
    assert_int_equal(st.res.status, AT_EDIGEST);
    assert_int_equal(st.calls, 2);
    at_free(st.res.body);
    assert_int_equal(node_peer_stream(g_peer, g_addr, "/x", 1000, NULL,
                                      on_result, &st.res, NULL),
                     AT_EINVAL);
}

struct grow {
    struct result res;
    uint64_t got;
    bool bad_byte;
};

static int grow_data(void *data, const char *p, size_t n)
{
    struct grow *g = data;

    for (size_t i = 0; i < n; i++)
        if (p[i] != (char)((g->got + i) % 251))
            g->bad_byte = true;
    g->got += n;
    return 0;
}

static void grow_start(struct grow *g)
{
    memset(g, 0, sizeof(*g));
    g_grow = NULL;
    assert_int_equal(node_peer_stream(g_peer, g_addr, "/grow", 10000, grow_data,
                                      on_result, g, NULL),
                     0);
    for (int i = 0; i < 100000 && g->got < PATTERN_LEN / 3; i++)
        uv_run(&g_loop, UV_RUN_ONCE);
    /* a few more turns: nothing past the limit comes */
    for (int i = 0; i < 50; i++)
        uv_run(&g_loop, UV_RUN_NOWAIT);
    assert_non_null(g_grow);
    assert_int_equal(g->got, PATTERN_LEN / 3);
    assert_false(g->res.done);
}

static void test_stream_file_limit(void **state)
{
    struct grow g;

    AT_UNUSED(state);
    grow_start(&g);
    node_http_resp_stream_limit(g_grow, PATTERN_LEN / 2);
    node_http_resp_stream_limit(g_grow, 10); /* never lowers */
    node_http_resp_stream_limit(g_grow, PATTERN_LEN);
    run_until(&g.res.done);
    expect_result(&g.res, 0, 200);
    assert_int_equal(g.got, PATTERN_LEN);
    assert_false(g.bad_byte);
    node_http_resp_abort(g_grow); /* complete: a no-op */
    node_http_req_unref(g_grow);
    at_free(g.res.body);

    /* aborted mid-body: the client never sees a complete response */
    grow_start(&g);
    node_http_resp_abort(g_grow);
    run_until(&g.res.done);
    assert_int_not_equal(g.res.status, 0);
    assert_true(g.got < PATTERN_LEN);
    node_http_resp_stream_limit(g_grow, PATTERN_LEN); /* gone: a no-op */
    node_http_req_unref(g_grow);
    at_free(g.res.body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_post_echo),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_not_sent),
        cmocka_unit_test(test_sent_no_answer),
        /* before test_close_in_flight, which closes the client */
        cmocka_unit_test(test_stream_pause_resume),
        cmocka_unit_test(test_stream_not_200),
        cmocka_unit_test(test_stream_abort),
        cmocka_unit_test(test_stream_file_limit),
        cmocka_unit_test(test_version_sent),
        cmocka_unit_test(test_answer_version_refused),
        cmocka_unit_test(test_stream_version_refused),
        cmocka_unit_test(test_warn_rate_limit),
        cmocka_unit_test(test_close_in_flight),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
