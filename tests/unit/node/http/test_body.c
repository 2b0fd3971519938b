/* Unit tests of node/http/body.c: bodies read on demand, into the
 * handler's memory, paused and resumed, 100-continue, early answers. */
#include "common/compat.h"

#include "tests/unit/node/http/mem_fixture.h"
#include "tests/unit/node/http/tcp_fixture.h"

/* A Content-Length body read into the handler's memory: the same bytes
 * arrive, in that memory, and never a byte past the body (the pipelined
 * request after it is served). A chunked body keeps the server's buffer. */
static void test_body_buf(void **state)
{
    struct cli c;
    struct resp r;
    size_t total = 300000;
    size_t cut = total - 1000;
    char *body = at_malloc(total);
    const char *next = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
    char tail[1100];
    char hdr[128];

    AT_UNUSED(state);
    for (size_t i = 0; i < total; i++)
        body[i] = (char)('a' + (i * 13 + i / 7) % 26);
    assert_int_equal(cli_connect(&c, g_port), 0);
    snprintf(hdr, sizeof(hdr),
             "PUT /ext HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
             total);
    assert_int_equal(send_str(&c, hdr), 0);
    /* Pieces with gaps, so that reads happen between them. */
    for (size_t off = 0; off < cut; off += 37000) {
        assert_int_equal(send_all(&c, body + off, AT_MIN(37000, cut - off)), 0);
        usleep(5000);
    }
    usleep(20000);
    /* The last bytes, with the next request right behind them. */
    memcpy(tail, body + cut, total - cut);
    memcpy(tail + total - cut, next, strlen(next));
    assert_int_equal(send_all(&c, tail, total - cut + strlen(next)), 0);
    assert_int_equal(read_resp(&c, &r, false), 0);
    assert_int_equal(r.status, 200);
    assert_true(r.body_len == total);
    assert_memory_equal(r.body, body, total);
    at_free(r.body);
    expect_resp(&c, 200, "hello");
    assert_true(get_locked(&g_ext_hits) > 0);
    assert_true(get_locked(&g_ext_offers) >= get_locked(&g_ext_hits));
    assert_int_equal(get_locked(&g_ext_bad), 0);

    /* Chunked: no offer. */
    pthread_mutex_lock(&g_mu);
    g_ext_offers = g_ext_hits = 0;
    pthread_mutex_unlock(&g_mu);
    assert_int_equal(send_str(&c,
                              "PUT /ext HTTP/1.1\r\nHost: x\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n"),
                     0);
    usleep(20000);
    snprintf(hdr, sizeof(hdr), "%x\r\n", 30000);
    assert_int_equal(send_str(&c, hdr), 0);
    assert_int_equal(send_all(&c, body, 30000), 0);
    assert_int_equal(send_str(&c, "\r\n0\r\n\r\n"), 0);
    assert_int_equal(read_resp(&c, &r, false), 0);
    assert_true(r.body_len == 30000);
    assert_memory_equal(r.body, body, 30000);
    at_free(r.body);
    assert_int_equal(get_locked(&g_ext_offers), 0);
    at_free(body);
    cli_close(&c);
}

static void test_pause_resume_big(void **state)
{
    struct cli c;
    struct resp r;
    size_t total = 32u << 20, chunk = 1 << 16;
    char *buf = at_malloc(chunk);
    uint64_t sum = 0;
    char hdr[128], want[96];

    AT_UNUSED(state);
    for (size_t i = 0; i < total; i++) {
        unsigned char b = (unsigned char)((i * 7) ^ (i >> 11));
        sum = sum * 31 + b;
    }
    assert_int_equal(cli_connect(&c, g_port), 0);
    snprintf(hdr, sizeof(hdr),
             "PUT /big HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
             total);
    assert_int_equal(send_str(&c, hdr), 0);
    for (size_t off = 0; off < total; off += chunk) {
        for (size_t i = 0; i < chunk; i++) {
            size_t k = off + i;
            buf[i] = (char)(unsigned char)((k * 7) ^ (k >> 11));
        }
        assert_int_equal(send_all(&c, buf, chunk), 0);
    }
    assert_int_equal(read_resp(&c, &r, false), 0);
    snprintf(want, sizeof(want), "n=%zu sum=%" PRIu64, total, sum);
    assert_string_equal(r.body, want);
    at_free(r.body);
    at_free(buf);
    assert_int_equal(get_locked(&g_pause_violation), 0);
    /* One pause per MiB delivered; a piece (up to the 64 KiB read buffer)
     * can overshoot each MiB, so at least 32 MiB / (1 MiB + 64 KiB). */
    assert_true(get_locked(&g_pauses) >= 30);
    cli_close(&c);
}

static void cmd_expect_read(void *arg)
{
    AT_UNUSED(arg);
    echo_start(g_expect_req);
    node_http_req_unref(g_expect_req);
    g_expect_req = NULL;
}

static void test_expect_continue(void **state)
{
    struct cli c;
    struct resp r;
    char tmp[64];
    ssize_t n;
    struct timeval tv = { .tv_usec = 200000 };

    AT_UNUSED(state);
    assert_int_equal(cli_connect(&c, g_port), 0);
    assert_int_equal(send_str(&c,
                              "PUT /expect HTTP/1.1\r\nHost: x\r\n"
                              "Expect: 100-Continue\r\n"
                              "Content-Length: 4\r\n\r\n"),
                     0);
    assert_true(wait_ptr(&g_expect_req));
    /* nothing (no 100) before the handler asks for the body */
    setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    n = recv(c.fd, tmp, sizeof(tmp), 0);
    assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    tv.tv_sec = 10;
    tv.tv_usec = 0;
    setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    run_on_loop(cmd_expect_read, NULL);
    assert_int_equal(read_resp(&c, &r, false), 0);
    assert_int_equal(r.status, 100);
    assert_int_equal(send_str(&c, "data"), 0);
    expect_resp(&c, 200, "data");
    /* Expect and an early answer: no 100, and the connection closes */
    assert_int_equal(send_str(&c,
                              "PUT /early HTTP/1.1\r\nHost: x\r\n"
                              "Expect: 100-continue\r\n"
                              "Content-Length: 100000000\r\n\r\n"),
                     0);
    assert_int_equal(read_resp(&c, &r, false), 0);
    assert_int_equal(r.status, 413);
    expect_closed(&c, &r);
}

static void test_early_response(void **state)
{
    struct cli c;
    struct resp r;
    char *big;
    size_t bn = 4u << 20;

    AT_UNUSED(state);
    /* small body: drained, connection kept */
    assert_int_equal(cli_connect(&c, g_port), 0);
    assert_int_equal(send_str(&c,
                              "PUT /early HTTP/1.1\r\nHost: x\r\n"
                              "Content-Length: 10\r\n\r\n0123456789"
                              "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"),
                     0);
    assert_int_equal(read_resp(&c, &r, false), 0);
    assert_int_equal(r.status, 413);
    assert_false(r.close);
    at_free(r.body);
    expect_resp(&c, 200, "hello");
    cli_close(&c);
    /* large body: Connection: close, the response still arrives whole */
    assert_int_equal(cli_connect(&c, g_port), 0);
    big = at_calloc(1, bn);
    assert_int_equal(send_str(&c,
                              "PUT /early HTTP/1.1\r\nHost: x\r\n"
                              "Content-Length: 4194304\r\n\r\n"),
                     0);
    send_all(&c, big, 256 * 1024);
    assert_int_equal(read_resp(&c, &r, false), 0);
    assert_int_equal(r.status, 413);
    assert_true(r.close);
    assert_string_equal(r.body, "no");
    at_free(r.body);
    at_free(big);
    cli_close(&c);
}

/* ---- over the in-memory transport ---- */

static void m_handler(void *data, struct node_http_req *r)
{
    const char *path = node_http_req_path(r);

    AT_UNUSED(data);
    mem_seen_reset();
    if (strcmp(path, "/direct") == 0) {
        node_http_req_body_buf(r, mem_on_buf);
        node_http_req_read_body(r, mem_on_body, mem_on_end);
    } else if (strcmp(path, "/read-and-answer") == 0) {
        node_http_req_read_body(r, mem_on_body, NULL);
        node_http_resp_send(r, "now", 3);
    } else {
        node_http_resp_send(r, "early", 5); /* the body is not read */
    }
}

/* Over a transport without a socket too, body reads go straight to the
 * handler's memory, and never past the body. */
static void test_mem_body_buf(void **state)
{
    struct mem_fix f;
    struct at_buf req;

    AT_UNUSED(state);
    mem_fix_start(&f, m_handler, NULL);
    at_buf_init(&req, 0);
    at_buf_puts(&req, "PUT /direct HTTP/1.1\r\nContent-Length: 40000\r\n\r\n");
    mem_fix_feed(&f, req.data);
    at_buf_reset(&req);
    for (int i = 0; i < 40000; i++)
        at_buf_puts(&req, "b");
    at_buf_puts(&req, "GET /next HTTP/1.1\r\n\r\n");
    assert_int_equal(mem_fix_feed(&f, req.data), req.len);
    at_buf_release(&req);
    assert_non_null(strstr(mem_fix_out(&f), "X-Bytes: 40000\r\n"));
    assert_true(mem_seen.direct > 0 &&
                mem_seen.direct <= 40000 - EXT_MIN + sizeof(mem_seen.mem));
    node_http__conn_flush(f.c);
    assert_int_equal(mem_fix_count(&f, "early"), 1); /* /next answered */
    mem_fix_stop(&f);
}

/* A request without a body whose handler asked for it and answered at
 * once: nothing to drain, the connection stays. */
static void test_mem_answer_without_body(void **state)
{
    struct mem_fix f;

    AT_UNUSED(state);
    mem_fix_start(&f, m_handler, NULL);
    mem_fix_feed(&f, "GET /read-and-answer HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_null(strstr(mem_fix_out(&f), "Connection: close"));
    assert_int_equal(f.c->state, CONN_COMPLETE);
    node_http__conn_flush(f.c);
    assert_int_equal(f.c->state, CONN_IDLE);
    mem_fix_stop(&f);
}

/* An early answer drains a small Content-Length body and keeps the
 * connection; a chunked body has no bound, so the connection closes. */
static void test_mem_early_answer(void **state)
{
    struct mem_fix f;

    AT_UNUSED(state);
    mem_fix_start(&f, m_handler, NULL);
    mem_fix_feed(&f, "PUT /early HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123");
    assert_int_equal(f.c->state, CONN_DRAIN);
    assert_null(strstr(mem_fix_out(&f), "Connection: close"));
    node_http__conn_flush(f.c);
    mem_fix_feed(&f, "456789GET /again HTTP/1.1\r\n\r\n");
    assert_int_equal(mem_fix_count(&f, "early"), 2);
    node_http__conn_flush(f.c);
    assert_int_equal(f.c->state, CONN_IDLE);
    mem_fix_stop(&f);

    mem_fix_start(&f, m_handler, NULL);
    mem_fix_feed(&f,
                 "PUT /early HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_int_equal(f.c->state, CONN_STOP);
    assert_non_null(strstr(mem_fix_out(&f), "Connection: close\r\n"));
    node_http__conn_flush(f.c);
    assert_int_equal(f.c->state, CONN_LINGER);
    mem_fix_stop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body_buf),
        cmocka_unit_test(test_pause_resume_big),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_early_response),
        cmocka_unit_test(test_mem_body_buf),
        cmocka_unit_test(test_mem_answer_without_body),
        cmocka_unit_test(test_mem_early_answer),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
