/* Unit tests of node/http/response.c: headers, bodies, HEAD, upgrades,
 * over TCP and over the in-memory transport. */
#include "common/compat.h"

#include "tests/unit/node/http/mem_fixture.h"
#include "tests/unit/node/http/tcp_fixture.h"

static void test_upgrade(void **state)
{
    static const char req[] =
        "POST /upgrade HTTP/1.1\r\nHost: x\r\nUpgrade: test/1\r\n"
        "Connection: Upgrade\r\nContent-Length: 0\r\n\r\n";
    struct cli c;
    struct resp r;

    AT_UNUSED(state);
    /* Happy path: 101, then the new owner of the socket speaks. */
    assert_int_equal(cli_connect(&c, g_port), 0);
    assert_int_equal(send_str(&c, req), 0);
    assert_int_equal(read_head(&c, &r), 0);
    assert_int_equal(r.status, 101);
    assert_non_null(strcasestr(r.head, "\r\nUpgrade: test/1\r\n"));
    assert_non_null(strcasestr(r.head, "\r\nConnection: Upgrade\r\n"));
    assert_non_null(strcasestr(r.head, "\r\nX-Up: 1\r\n"));
    while (c.len < 9)
        assert_true(cli_fill(&c) > 0);
    assert_memory_equal(c.buf, "upgraded!", 9);
    cli_consume(&c, 9);
    assert_true(cli_closed(&c));
    cli_close(&c);
    assert_int_equal(get_locked(&g_up_ok), 1);

    /* Bytes after the request: the upgrade fails and the socket closes. */
    assert_int_equal(cli_connect(&c, g_port), 0);
    {
        char both[sizeof(req) + 4];
        snprintf(both, sizeof(both), "%sXYZ", req);
        assert_int_equal(send_str(&c, both), 0);
    }
    assert_true(cli_closed(&c));
    cli_close(&c);
    for (int i = 0; i < 200 && get_locked(&g_up_fail) == 0; i++)
        usleep(10000);
    assert_int_equal(get_locked(&g_up_fail), 1);
    assert_int_equal(get_locked(&g_up_ok), 1);

    /* A body is refused: the handler is told at once. */
    assert_int_equal(cli_connect(&c, g_port), 0);
    assert_int_equal(send_str(&c,
                              "POST /upgrade HTTP/1.1\r\nHost: x\r\n"
                              "Content-Length: 2\r\n\r\nab"),
                     0);
    for (int i = 0; i < 200 && get_locked(&g_up_fail) == 1; i++)
        usleep(10000);
    assert_int_equal(get_locked(&g_up_fail), 2);
    cli_close(&c);
}

/* ---- over the in-memory transport ---- */

static int m_up_null;

static void m_upgraded(void *data, uv_stream_t *stream)
{
    AT_UNUSED(data);
    assert_null(stream);
    m_up_null++;
}

static void m_handler(void *data, struct node_http_req *r)
{
    const char *path = node_http_req_path(r);

    AT_UNUSED(data);
    if (strcmp(path, "/up") == 0) {
        node_http_req_upgrade(r, "test/1", m_upgraded, NULL);
        if (node_http_req_has_body(r)) {
            node_http_resp_status(r, 400);
            node_http_resp_send(r, NULL, 0);
        }
        return;
    }
    if (strcmp(path, "/empty") == 0) {
        node_http_resp_status(r, 204);
        node_http_resp_send(r, "ignored", 7);
        return;
    }
    node_http_resp_header(r, "X-Good", "%d", 1);
    node_http_resp_header(r, "X-Bad", "a\r\nInjected: 1");
    node_http_resp_header(r, "Bad Name", "x");
    node_http_resp_header(r, "Content-Length", "999");
    node_http_resp_header(r, "Connection", "close");
    node_http_resp_status(r, 202);
    node_http_resp_send(r, "body", 4);
    node_http_resp_header(r, "X-Late", "1"); /* after the answer: ignored */
}

static void test_mem_headers(void **state)
{
    struct mem_fix f;
    const char *out;

    AT_UNUSED(state);
    mem_fix_start(&f, m_handler, NULL);
    mem_fix_feed(&f, "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n");
    out = mem_fix_out(&f);
    assert_non_null(strstr(out, "HTTP/1.1 202 Accepted\r\n"));
    assert_non_null(strstr(out, "X-Good: 1\r\n"));
    assert_null(strstr(out, "Injected"));
    assert_null(strstr(out, "Bad Name"));
    assert_null(strstr(out, "999"));
    assert_null(strstr(out, "X-Late"));
    assert_non_null(strstr(out, "Content-Length: 4\r\n"));
    assert_non_null(strstr(out, "Connection: close\r\n"));
    assert_null(strstr(out, "body")); /* HEAD: no body */
    mem_fix_stop(&f);

    mem_fix_start(&f, m_handler, NULL);
    mem_fix_feed(&f, "GET /empty HTTP/1.1\r\nHost: x\r\n\r\n");
    out = mem_fix_out(&f);
    assert_non_null(strstr(out, "HTTP/1.1 204 No Content\r\n"));
    assert_null(strstr(out, "Content-Length"));
    assert_null(strstr(out, "ignored"));
    mem_fix_stop(&f);
}

/* The in-memory transport has no socket to hand over: the 101 goes out,
 * then the handler learns with a NULL stream and the connection closes. */
static void test_mem_upgrade_refused(void **state)
{
    struct mem_fix f;

    AT_UNUSED(state);
    m_up_null = 0;
    mem_fix_start(&f, m_handler, NULL);
    mem_fix_feed(&f,
                 "GET /up HTTP/1.1\r\nHost: x\r\nUpgrade: test/1\r\n"
                 "Connection: Upgrade\r\n\r\n");
    assert_non_null(strstr(mem_fix_out(&f), "101 Switching Protocols"));
    assert_int_equal(f.c->resp, RESP_UPGRADE);
    assert_int_equal(m_up_null, 0);
    assert_int_equal(node_http__conn_flush(f.c), 1);
    assert_int_equal(m_up_null, 1);
    assert_true(node_http__conn_closed(f.c));
    mem_fix_stop(&f);

    /* with a body: refused at once, the handler answers */
    mem_fix_start(&f, m_handler, NULL);
    mem_fix_feed(&f, "POST /up HTTP/1.1\r\nContent-Length: 2\r\n\r\nab");
    assert_int_equal(m_up_null, 2);
    assert_non_null(strstr(mem_fix_out(&f), "HTTP/1.1 400 Bad Request"));
    mem_fix_stop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_upgrade),
        cmocka_unit_test(test_mem_headers),
        cmocka_unit_test(test_mem_upgrade_refused),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
