/* Unit tests of node/http/parse.c: limits, malformed requests, bodies
 * framed by length or chunks, over TCP and over the in-memory transport. */
#include "common/compat.h"

#include "tests/unit/node/http/mem_fixture.h"
#include "tests/unit/node/http/tcp_fixture.h"

static void test_body_length_and_chunked(void **state)
{
    struct cli c;
    struct resp r;

    AT_UNUSED(state);
    assert_int_equal(cli_connect(&c, g_port), 0);
    assert_int_equal(send_str(&c,
                              "PUT /echo HTTP/1.1\r\nHost: x\r\n"
                              "Content-Length: 11\r\n\r\nhello"),
                     0);
    usleep(20000);
    assert_int_equal(send_str(&c, " world"), 0);
    expect_resp(&c, 200, "hello world");
    assert_int_equal(send_str(&c,
                              "PATCH /echo HTTP/1.1\r\nHost: x\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n"
                              "5;ext=1\r\nabcde\r\n3\r\nfg"),
                     0);
    usleep(20000);
    assert_int_equal(send_str(&c, "h\r\n0\r\nTrailer: x\r\n\r\n"), 0);
    assert_int_equal(read_resp(&c, &r, false), 0);
    assert_string_equal(r.body, "abcdefgh");
    at_free(r.body);
    /* empty body with Content-Length: 0 */
    assert_int_equal(send_str(&c,
                              "POST /echo HTTP/1.1\r\nHost: x\r\n"
                              "Content-Length: 0\r\n\r\n"),
                     0);
    assert_int_equal(read_resp(&c, &r, false), 0);
    assert_int_equal(r.body_len, 0);
    at_free(r.body);
    cli_close(&c);
}

static void expect_error(const char *req, size_t len, int status)
{
    struct cli c;
    struct resp r;

    assert_int_equal(cli_connect(&c, g_port), 0);
    send_all(&c, req, len);
    assert_int_equal(read_resp(&c, &r, false), 0);
    assert_int_equal(r.status, status);
    assert_non_null(strstr(r.body, "\"code\":\"BAD_REQUEST\""));
    expect_closed(&c, &r);
}

static void test_limits_and_garbage(void **state)
{
    struct at_buf b;
    static const unsigned char hello[] = { 0x16, 0x03, 0x01, 0x00, 0xa5, 0x01,
                                           0x00, 0x00, 0xa1, 0x03, 0x03, 0x5e };

    AT_UNUSED(state);
    at_buf_init(&b, 0);
    at_buf_puts(&b, "GET /");
    for (int i = 0; i < NODE_HTTP_MAX_URL; i++)
        at_buf_puts(&b, "a");
    at_buf_puts(&b, " HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_error(b.data, b.len, 414);
    at_buf_reset(&b);
    at_buf_puts(&b, "GET /hello HTTP/1.1\r\n");
    for (int i = 0; i <= NODE_HTTP_MAX_HEADERS; i++)
        at_buf_printf(&b, "X-H%d: v\r\n", i);
    at_buf_puts(&b, "\r\n");
    expect_error(b.data, b.len, 431);
    at_buf_reset(&b);
    at_buf_puts(&b, "GET /hello HTTP/1.1\r\nX-Big: ");
    for (int i = 0; i < NODE_HTTP_MAX_HDR_SIZE; i++)
        at_buf_puts(&b, "v");
    at_buf_puts(&b, "\r\n\r\n");
    expect_error(b.data, b.len, 431);
    at_buf_release(&b);
    expect_error("\x01\x02garbage\r\n\r\n", 13, 400);
    {
        const char *cl = "GET / HTTP/1.1\r\nContent-Length : 3\r\n\r\nabc";
        const char *te =
            "GET / HTTP/1.1\r\nContent-Length: 3\r\n"
            "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        expect_error(cl, strlen(cl), 400);
        expect_error(te, strlen(te), 400);
    }
    {
        /* A TLS hello on this plain port: a plain answer saying so. */
        struct cli c;
        struct resp r;

        assert_int_equal(cli_connect(&c, g_port), 0);
        send_all(&c, hello, sizeof(hello));
        assert_int_equal(read_resp(&c, &r, false), 0);
        assert_int_equal(r.status, 400);
        assert_string_equal(r.body, "this port speaks plain HTTP\n");
        expect_closed(&c, &r);
    }
}

/* ---- over the in-memory transport ---- */

static void m_handler(void *data, struct node_http_req *r)
{
    AT_UNUSED(data);
    mem_seen_reset();
    node_http_req_on_abort(r, mem_on_abort);
    node_http_req_read_body(r, mem_on_body, mem_on_end);
}

/* llhttp 8.1 would take chunk data without its CRLF: the chunked reader
 * refuses it, whether the bad byte comes with the data or later. */
static void test_mem_chunk_crlf(void **state)
{
    static const char *const bad[][2] = {
        { "3\r\nabcX\r\n0\r\n\r\n", NULL },
        { "3\r\nabc", "X\r\n0\r\n\r\n" },
        { "3\r\nabc\r", "X\n0\r\n\r\n" },
    };

    AT_UNUSED(state);
    for (size_t i = 0; i < AT_ARRAY_SIZE(bad); i++) {
        struct mem_fix f;

        mem_fix_start(&f, m_handler, NULL);
        mem_fix_feed(&f,
                     "PUT /c HTTP/1.1\r\nHost: x\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n");
        assert_ptr_equal(f.c->reader, &node_http__body_chunked);
        mem_fix_feed(&f, bad[i][0]);
        if (bad[i][1] != NULL)
            mem_fix_feed(&f, bad[i][1]);
        assert_int_equal(mem_seen.aborts, 1);
        assert_non_null(strstr(mem_fix_out(&f), "HTTP/1.1 400 Bad Request"));
        assert_int_equal(f.c->state, CONN_STOP);
        node_http__conn_flush(f.c);
        assert_int_equal(f.c->state, CONN_LINGER);
        mem_fix_stop(&f);
    }
}

/* A well-formed chunked body fed one byte at a time. */
static void test_mem_chunked_bytewise(void **state)
{
    static const char req[] =
        "PUT /c HTTP/1.1\r\nHost: x\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
        "3\r\nabc\r\n10;x=y\r\n0123456789abcdef\r\n"
        "0\r\nTrailer: t\r\n\r\n";
    struct mem_fix f;

    AT_UNUSED(state);
    mem_fix_start(&f, m_handler, NULL);
    for (size_t i = 0; i < sizeof(req) - 1; i++)
        assert_int_equal(node_http__conn_feed(f.c, req + i, 1), 1);
    assert_non_null(strstr(mem_fix_out(&f), "X-Bytes: 19\r\n"));
    assert_int_equal(mem_seen.aborts, 0);
    assert_int_equal(f.c->state, CONN_COMPLETE);
    node_http__conn_flush(f.c);
    assert_int_equal(f.c->state, CONN_IDLE);
    assert_ptr_equal(f.c->reader, &node_http__body_none);
    mem_fix_stop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body_length_and_chunked),
        cmocka_unit_test(test_limits_and_garbage),
        cmocka_unit_test(test_mem_chunk_crlf),
        cmocka_unit_test(test_mem_chunked_bytewise),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
