/* Unit tests of node/http/file.c: file bodies by sendfile(2) over TCP (a
 * slow reader makes it wait for room), by reads and writes over the
 * in-memory transport, growing files and files that end early. */
#include "common/compat.h"

#include "tests/unit/node/http/mem_fixture.h"
#include "tests/unit/node/http/tcp_fixture.h"

static void make_file(size_t size)
{
    char *buf = at_malloc(1 << 20);
    int fd;

    snprintf(g_file_path, sizeof(g_file_path), "/tmp/test_http_%d.bin",
             (int)getpid());
    fd = open(g_file_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    for (size_t off = 0; off < size; off += 1 << 20) {
        for (size_t i = 0; i < (1u << 20); i++) {
            size_t k = off + i;
            buf[i] = (char)(unsigned char)((k * 13) ^ (k >> 9));
        }
        assert_int_equal(write(fd, buf, 1 << 20), 1 << 20);
    }
    close(fd);
    at_free(buf);
    g_file_size = size;
}

static uint64_t get_eagains(void)
{
    return node_http__sendfile_eagains(g_srv);
}

static void cmd_eagains(void *arg)
{
    *(uint64_t *)arg = get_eagains();
}

static void test_send_file_slow_reader(void **state)
{
    struct cli c;
    struct resp r;
    int rcv = 64 * 1024;
    size_t got = 0;
    bool same = true;
    uint64_t eagains = 0;

    AT_UNUSED(state);
    make_file(64u << 20);
    c.fd = -1;
    memset(&c, 0, sizeof(c));
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    {
        struct sockaddr_in a = { .sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)g_port) };
        struct timeval tv = { .tv_sec = 10 };
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        assert_int_equal(connect(c.fd, (struct sockaddr *)&a, sizeof(a)), 0);
    }
    assert_int_equal(send_str(&c, "GET /file HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    usleep(300000); /* the socket buffers fill up: EAGAIN, then poll */
    assert_int_equal(read_head(&c, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, g_file_size);
    while (got < g_file_size) {
        if (c.len == 0) {
            ssize_t n = cli_fill(&c);
            assert_true(n > 0);
            if (got < (4u << 20))
                usleep(1000); /* slow at first */
        }
        size_t k = AT_MIN(c.len, g_file_size - got);
        for (size_t i = 0; i < k; i++) {
            size_t o = got + i;
            if ((unsigned char)c.buf[i] != (unsigned char)((o * 13) ^ (o >> 9)))
                same = false;
        }
        cli_consume(&c, k);
        got += k;
    }
    assert_true(same);
    /* keep-alive still works after sendfile */
    assert_int_equal(send_str(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    expect_resp(&c, 200, "hello");
    run_on_loop(cmd_eagains, &eagains);
    assert_true(eagains > 0);
    /* HEAD of a file: length only */
    assert_int_equal(send_str(&c, "HEAD /file HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_int_equal(read_resp(&c, &r, true), 0);
    assert_int_equal(r.body_len, g_file_size);
    cli_close(&c);
}

/* ---- over the in-memory transport ---- */

#define M_SIZE (200 * 1024)

static struct node_http_req *m_req; /* a streamed response's request */

static void m_handler(void *data, struct node_http_req *r)
{
    const char *path = node_http_req_path(r);
    int fd = open(g_file_path, O_RDONLY | O_CLOEXEC);

    AT_UNUSED(data);
    assert_true(fd >= 0);
    if (strcmp(path, "/stream") == 0) {
        node_http_req_ref(r);
        m_req = r;
        node_http_resp_stream_file(r, fd, M_SIZE, 100 * 1024);
    } else if (strcmp(path, "/short") == 0) {
        node_http_resp_send_file(r, fd, 0, M_SIZE + 1000);
    } else {
        node_http_resp_send_file(r, fd, 1000, M_SIZE - 1000);
    }
}

/* The bytes after the head, checked against the file's pattern. */
static size_t m_body_ok(struct mem_fix *f, uint64_t from)
{
    const char *out = mem_fix_out(f);
    const char *body = strstr(out, "\r\n\r\n");
    size_t n;

    assert_non_null(body);
    body += 4;
    n = f->out.len - (size_t)(body - out);
    for (size_t i = 0; i < n; i++) {
        uint64_t k = from + i;
        assert_int_equal((unsigned char)body[i],
                         (unsigned char)((k * 13) ^ (k >> 9)));
    }
    return n;
}

/* Without sendfile the file goes by writes of at most 64 KiB, each read
 * when the one before it is written (a flush completes the writes that
 * completions queue, so one flush sends it all). */
static void test_mem_file_by_writes(void **state)
{
    struct mem_fix f;

    AT_UNUSED(state);
    make_file(1u << 20);
    mem_fix_start(&f, m_handler, NULL);
    mem_fix_feed(&f, "GET /f HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_non_null(strstr(mem_fix_out(&f), "Content-Length: 203800\r\n"));
    assert_int_equal(m_body_ok(&f, 1000), 0);
    assert_int_equal(f.c->resp, RESP_SENDING);
    assert_int_equal(node_http__conn_flush(f.c), 1 + 4); /* head, 4 pieces */
    assert_int_equal(m_body_ok(&f, 1000), M_SIZE - 1000);
    assert_int_equal(f.c->state, CONN_IDLE);
    assert_int_equal(f.c->resp, RESP_NONE);
    mem_fix_stop(&f);
}

/* A growing file: the body stops at the limit (the response stalls) until
 * the limit rises. */
static void test_mem_stream_limit(void **state)
{
    struct mem_fix f;

    AT_UNUSED(state);
    make_file(1u << 20);
    m_req = NULL;
    mem_fix_start(&f, m_handler, NULL);
    mem_fix_feed(&f, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_non_null(m_req);
    while (node_http__conn_flush(f.c) > 0)
        ;
    assert_int_equal(f.c->resp, RESP_STALLED);
    assert_int_equal(m_body_ok(&f, 0), 100 * 1024);
    node_http_resp_stream_limit(m_req, 150 * 1024);
    assert_int_equal(f.c->resp, RESP_FILE);
    while (node_http__conn_flush(f.c) > 0)
        ;
    assert_int_equal(m_body_ok(&f, 0), 150 * 1024);
    node_http_resp_stream_limit(m_req, M_SIZE);
    while (node_http__conn_flush(f.c) > 0)
        ;
    assert_int_equal(m_body_ok(&f, 0), M_SIZE);
    assert_true(node_http_req_done(m_req));
    node_http_req_unref(m_req);
    assert_int_equal(f.c->state, CONN_IDLE);
    mem_fix_stop(&f);
}

/* A file that ends before its length: what exists goes out, then the
 * connection closes (never padding). */
static void test_mem_file_short(void **state)
{
    struct mem_fix f;

    AT_UNUSED(state);
    make_file(1u << 20);
    assert_int_equal(truncate(g_file_path, M_SIZE), 0);
    mem_fix_start(&f, m_handler, NULL);
    mem_fix_feed(&f, "GET /short HTTP/1.1\r\nHost: x\r\n\r\n");
    while (node_http__conn_flush(f.c) > 0)
        ;
    assert_true(node_http__conn_closed(f.c));
    assert_int_equal(m_body_ok(&f, 0), M_SIZE);
    mem_fix_stop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_file_slow_reader),
        cmocka_unit_test(test_mem_file_by_writes),
        cmocka_unit_test(test_mem_stream_limit),
        cmocka_unit_test(test_mem_file_short),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
