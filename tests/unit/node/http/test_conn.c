/* Unit tests of node/http/conn.c: keep-alive, pipelining, timeouts, aborts
 * and closing, over TCP and over the in-memory transport. */
#include "common/compat.h"

#include "tests/unit/node/http/mem_fixture.h"
#include "tests/unit/node/http/tcp_fixture.h"

static void test_get_keepalive_pipelined(void **state)
{
    struct cli c;
    struct resp r;

    AT_UNUSED(state);
    assert_int_equal(cli_connect(&c, g_port), 0);
    assert_int_equal(send_str(&c,
                              "GET /hello?a=1&b=%2F HTTP/1.1\r\n"
                              "Host: x\r\nAccept: a/b\r\nAccept: c/d\r\n"
                              "\r\n"),
                     0);
    assert_int_equal(read_resp(&c, &r, false), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello");
    assert_false(r.close);
    assert_non_null(strstr(r.head, "X-Query: a=1&b=%2F\r\n"));
    assert_non_null(strstr(r.head, "X-Accept: a/b, c/d\r\n"));
    at_free(r.body);
    /* two pipelined requests in one write, answered in order */
    assert_int_equal(send_str(&c,
                              "GET /nothere HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"),
                     0);
    assert_int_equal(read_resp(&c, &r, false), 0);
    assert_int_equal(r.status, 404);
    at_free(r.body);
    expect_resp(&c, 200, "hello");
    /* Connection: close is honoured */
    assert_int_equal(send_str(&c,
                              "GET /hello HTTP/1.1\r\nHost: x\r\n"
                              "Connection: close\r\n\r\n"),
                     0);
    assert_int_equal(read_resp(&c, &r, false), 0);
    expect_closed(&c, &r);
}

static void test_head(void **state)
{
    struct cli c;
    struct resp r;

    AT_UNUSED(state);
    assert_int_equal(cli_connect(&c, g_port), 0);
    assert_int_equal(send_str(&c,
                              "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"),
                     0);
    assert_int_equal(read_resp(&c, &r, true), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 5);
    assert_non_null(strstr(r.head, "X-Method: HEAD"));
    /* the next bytes are the second response, not a body */
    expect_resp(&c, 200, "hello");
    cli_close(&c);
}

static void test_abort_mid_body(void **state)
{
    struct cli c;
    int before = get_locked(&g_aborted);

    AT_UNUSED(state);
    assert_int_equal(cli_connect(&c, g_port), 0);
    assert_int_equal(send_str(&c,
                              "PUT /abort HTTP/1.1\r\nHost: x\r\n"
                              "Content-Length: 1000\r\n\r\nabc"),
                     0);
    usleep(50000);
    cli_close(&c);
    for (int i = 0; i < 200 && get_locked(&g_aborted) == before; i++)
        usleep(10000);
    assert_int_equal(get_locked(&g_aborted), before + 1);
}

static void test_header_timeout(void **state)
{
    struct cli c;
    struct timeval t0, t1;

    AT_UNUSED(state);
    assert_int_equal(cli_connect(&c, g_port), 0);
    gettimeofday(&t0, NULL);
    assert_int_equal(send_str(&c, "GET /hello HTTP/1.1\r\nHo"), 0);
    assert_true(cli_closed(&c));
    gettimeofday(&t1, NULL);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_usec - t0.tv_usec) / 1000;
    assert_true(ms >= 300 && ms < 3000);
    cli_close(&c);
}

static void test_async_keepalive(void **state)
{
    struct cli c;
    struct resp r;

    AT_UNUSED(state);
    assert_int_equal(cli_connect(&c, g_port), 0);
    assert_int_equal(send_str(&c,
                              "GET /async HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"),
                     0);
    assert_true(wait_ptr(&g_async_req));
    usleep(50000);
    run_on_loop(cmd_async_respond, NULL);
    assert_int_equal(read_resp(&c, &r, false), 0);
    assert_string_equal(r.body, "late");
    assert_false(r.close);
    at_free(r.body);
    expect_resp(&c, 200, "hello");
    cli_close(&c);
}

/* ---- over the in-memory transport ---- */

static struct node_http_req *m_held; /* a request the handler keeps */

static void m_handler(void *data, struct node_http_req *r)
{
    const char *path = node_http_req_path(r);

    AT_UNUSED(data);
    if (strcmp(path, "/hold") == 0) {
        node_http_req_ref(r);
        node_http_req_on_abort(r, mem_on_abort);
        m_held = r;
    } else if (strcmp(path, "/body") == 0) {
        node_http_req_on_abort(r, mem_on_abort);
        node_http_req_read_body(r, mem_on_body, mem_on_end);
    } else {
        node_http_resp_send(r, path + 1, strlen(path + 1));
    }
}

static void m_reset(void)
{
    m_held = NULL;
    mem_seen_reset();
}

/* A pipelined request is answered only once the response before it is
 * written, so responses leave in order. */
static void test_mem_pipelined_in_order(void **state)
{
    static const char two[] =
        "GET /first HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /second HTTP/1.1\r\nHost: x\r\n\r\n";
    struct mem_fix f;
    const char *out;

    AT_UNUSED(state);
    m_reset();
    mem_fix_start(&f, m_handler, NULL);
    assert_int_equal(mem_fix_feed(&f, two), strlen(two));
    assert_int_equal(mem_fix_count(&f, "HTTP/1.1 200 OK"), 1);
    assert_null(strstr(mem_fix_out(&f), "second"));
    assert_int_equal(node_http__conn_flush(f.c), 2);
    out = mem_fix_out(&f);
    assert_int_equal(mem_fix_count(&f, "HTTP/1.1 200 OK"), 2);
    assert_true(strstr(out, "first") < strstr(out, "second"));
    assert_int_equal(f.c->state, CONN_IDLE);
    assert_int_equal(f.c->resp, RESP_NONE);
    mem_fix_stop(&f);
}

/* The request side and the response side move on their own. */
static void test_mem_states(void **state)
{
    struct mem_fix f;

    AT_UNUSED(state);
    m_reset();
    mem_fix_start(&f, m_handler, NULL);
    assert_int_equal(f.c->state, CONN_IDLE);
    assert_true(f.c->flags & CF_FIRST_REQUEST);
    mem_fix_feed(&f, "PUT /body HTTP/1.1\r\nHost: x\r\n");
    assert_int_equal(f.c->state, CONN_HEAD);
    mem_fix_feed(&f, "Content-Length: 6\r\n\r\nabc");
    assert_int_equal(f.c->state, CONN_BODY);
    assert_ptr_equal(f.c->reader, &node_http__body_length);
    assert_int_equal(f.c->resp, RESP_NONE);
    mem_fix_feed(&f, "def");
    assert_int_equal(mem_seen.ends, 1);
    assert_int_equal(f.c->state, CONN_COMPLETE);
    assert_int_equal(f.c->resp, RESP_SENDING);
    assert_int_equal(node_http__conn_flush(f.c), 1);
    assert_int_equal(f.c->state, CONN_IDLE);
    assert_int_equal(f.c->resp, RESP_NONE);
    assert_false(f.c->flags & CF_FIRST_REQUEST);
    assert_int_equal(mem_seen.aborts, 0);
    mem_fix_stop(&f);
}

/* Closing with a response still queued: the write is cancelled, the
 * handler hears of it, and the loop frees the connection. */
static void test_mem_close_with_pending_write(void **state)
{
    struct mem_fix f;
    struct node_http_req *r;

    AT_UNUSED(state);
    m_reset();
    mem_fix_start(&f, m_handler, NULL);
    mem_fix_feed(&f, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_non_null(m_held);
    r = m_held;
    node_http_resp_send(r, "held", 4);
    assert_int_equal(mem_fix_count(&f, "held"), 1);
    assert_false(node_http_req_done(r));
    node_http__conn_close(f.c);
    assert_true(node_http__conn_closed(f.c));
    assert_true(node_http_req_done(r));
    /* answered, but the response never got through: abort */
    assert_int_equal(mem_seen.aborts, 1);
    assert_int_equal(node_http__conn_flush(f.c), 0);
    node_http_req_unref(r);
    mem_fix_stop(&f);
}

/* EOF while the handler holds an unanswered request: abort, once. */
static void test_mem_eof_aborts(void **state)
{
    struct mem_fix f;

    AT_UNUSED(state);
    m_reset();
    mem_fix_start(&f, m_handler, NULL);
    mem_fix_feed(&f, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_non_null(m_held);
    assert_int_equal(f.c->state, CONN_WAIT);
    node_http__conn_eof(f.c);
    assert_true(node_http__conn_closed(f.c));
    assert_int_equal(mem_seen.aborts, 1);
    assert_true(node_http_req_done(m_held));
    node_http_resp_send(m_held, "late", 4); /* a no-op now */
    assert_null(strstr(mem_fix_out(&f), "late"));
    node_http_req_unref(m_held);
    mem_fix_stop(&f);
}

/* After a closing response the connection shuts its write side down and
 * drains input until the peer closes, as over a socket. */
static void test_mem_linger(void **state)
{
    struct mem_fix f;

    AT_UNUSED(state);
    m_reset();
    mem_fix_start(&f, m_handler, NULL);
    mem_fix_feed(&f,
                 "GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                 "\r\n");
    assert_non_null(strstr(mem_fix_out(&f), "Connection: close\r\n"));
    assert_int_equal(node_http__conn_flush(f.c), 1);
    assert_int_equal(f.c->state, CONN_LINGER);
    assert_false(node_http__conn_closed(f.c));
    /* dropped, not parsed */
    assert_int_equal(mem_fix_feed(&f, "GET /more HTTP/1.1\r\n\r\n"),
                     strlen("GET /more HTTP/1.1\r\n\r\n"));
    assert_null(strstr(mem_fix_out(&f), "more"));
    node_http__conn_eof(f.c);
    assert_true(node_http__conn_closed(f.c));
    mem_fix_stop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_keepalive_pipelined),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_abort_mid_body),
        cmocka_unit_test(test_header_timeout),
        cmocka_unit_test(test_async_keepalive),
        cmocka_unit_test(test_mem_pipelined_in_order),
        cmocka_unit_test(test_mem_states),
        cmocka_unit_test(test_mem_close_with_pending_write),
        cmocka_unit_test(test_mem_eof_aborts),
        cmocka_unit_test(test_mem_linger),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
