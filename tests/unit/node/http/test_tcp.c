/* Unit tests of node/http/tcp.c: the TCP transport on its own, on a loop in
 * the test's thread with a blocking socket as the peer. */
#include "common/compat.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "tests/unit/node/http/transport_fixture.h"

struct pair {
    uv_loop_t loop;
    uv_tcp_t listener;
    struct node_http_transport *t; /* the accepted side */
    int fd;                        /* the peer, blocking */
    int port;
};

static int g_writable;
static char g_rbuf[64];
static size_t g_rlen;
static bool g_eof;

static void reset(void)
{
    twrite_reset();
    g_writable = 0;
    g_rlen = 0;
    g_eof = false;
}

static void on_accept(uv_stream_t *l, int status)
{
    struct pair *p = l->data;

    assert_int_equal(status, 0);
    assert_int_equal(node_http__tcp_accept(l, &p->t), 0);
}

static void pair_open(struct pair *p)
{
    struct sockaddr_in a;
    int len = sizeof(a);
    struct timeval tv = { .tv_sec = 10 };

    memset(p, 0, sizeof(*p));
    assert_int_equal(uv_loop_init(&p->loop), 0);
    uv_tcp_init(&p->loop, &p->listener);
    p->listener.data = p;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&p->listener, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&p->listener, 8, on_accept), 0);
    uv_tcp_getsockname(&p->listener, (struct sockaddr *)&a, &len);
    p->port = ntohs(a.sin_port);
    p->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(p->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    while (p->t == NULL)
        uv_run(&p->loop, UV_RUN_ONCE);
}

static void pair_close(struct pair *p)
{
    uv_close((uv_handle_t *)&p->listener, NULL);
    uv_run(&p->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&p->loop), 0);
    close(p->fd);
}

static void on_alloc(struct node_http_transport *t, size_t hint, uv_buf_t *b)
{
    AT_UNUSED(t);
    AT_UNUSED(hint);
    *b = uv_buf_init(g_rbuf + g_rlen, (unsigned)(sizeof(g_rbuf) - g_rlen));
}

static void on_read(struct node_http_transport *t,
                    ssize_t nread,
                    const uv_buf_t *b)
{
    AT_UNUSED(b);
    if (nread > 0)
        g_rlen += (size_t)nread;
    if (nread < 0) {
        g_eof = nread == UV_EOF;
        t->ops->read_stop(t);
    }
}

/* Read exactly n bytes from the peer. */
static void peer_read(int fd, char *buf, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t k = recv(fd, buf + got, n - got, 0);
        assert_true(k > 0);
        got += (size_t)k;
    }
}

/* Writes of several buffers complete in order; input arrives through the
 * read callbacks, EOF included; the peer's address is ip:port. */
static void test_write_order_and_read(void **state)
{
    struct pair p;
    struct wreq w[3] = { { .id = 1 }, { .id = 2 }, { .id = 3 } };
    const char *parts[] = { "one,", "two,", "three" };
    char got[16] = { 0 };
    char peer[64], want[64];
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);

    AT_UNUSED(state);
    reset();
    pair_open(&p);
    for (int i = 0; i < 3; i++) {
        uv_buf_t b[2] = { uv_buf_init((char *)parts[i], 2),
                          uv_buf_init((char *)parts[i] + 2,
                                      (unsigned)strlen(parts[i]) - 2) };
        assert_int_equal(p.t->ops->write(p.t, &w[i].tw, b, 2, on_written), 0);
    }
    while (g_ndone < 3)
        uv_run(&p.loop, UV_RUN_ONCE);
    twrite_expect(3, 0);
    peer_read(p.fd, got, 13);
    assert_string_equal(got, "one,two,three");

    assert_int_equal(p.t->ops->read_start(p.t, on_alloc, on_read), 0);
    assert_int_equal(send(p.fd, "hello", 5, 0), 5);
    shutdown(p.fd, SHUT_WR);
    while (!g_eof)
        uv_run(&p.loop, UV_RUN_ONCE);
    assert_int_equal(g_rlen, 5);
    assert_memory_equal(g_rbuf, "hello", 5);

    getsockname(p.fd, (struct sockaddr *)&a, &alen);
    snprintf(want, sizeof(want), "127.0.0.1:%d", ntohs(a.sin_port));
    p.t->ops->peer(p.t, peer, sizeof(peer));
    assert_string_equal(peer, want);
    p.t->ops->close(p.t, on_closed);
    assert_int_equal(g_closed, 0);
    pair_close(&p);
    assert_int_equal(g_closed, 1);
}

/* Closing with writes queued that the peer does not read: they complete
 * with UV_ECANCELED, in order, before the close callback. */
static void test_close_with_pending_writes(void **state)
{
    struct pair p;
    struct wreq w[2] = { { .id = 1 }, { .id = 2 } };
    size_t big = 64u << 20;
    char *data = at_calloc(1, big);
    uv_buf_t b[2] = { uv_buf_init(data, (unsigned)big), uv_buf_init(data, 10) };

    AT_UNUSED(state);
    reset();
    pair_open(&p);
    assert_int_equal(p.t->ops->write(p.t, &w[0].tw, &b[0], 1, on_written), 0);
    assert_int_equal(p.t->ops->write(p.t, &w[1].tw, &b[1], 1, on_written), 0);
    uv_run(&p.loop, UV_RUN_NOWAIT);
    assert_int_equal(g_ndone, 0);
    assert_true(p.t->ops->write_queue_size(p.t) > 0);
    p.t->ops->close(p.t, on_closed);
    pair_close(&p);
    twrite_expect(2, UV_ECANCELED);
    assert_int_equal(g_closed, 1);
    assert_int_equal(g_closed_after, 2);
    at_free(data);
}

static void on_writable(struct node_http_transport *t, int status)
{
    AT_UNUSED(t);
    assert_int_equal(status, 0);
    g_writable++;
}

static void on_stream_closed(uv_handle_t *h)
{
    at_free(h);
}

/* sendfile until the peer's buffers are full (UV_EAGAIN), wait for room
 * while the peer reads, go on to the end; then hand the socket over. */
static void test_sendfile_wait_detach(void **state)
{
    struct pair p;
    char path[64];
    size_t size = 32u << 20, off = 0, got = 0;
    char *buf = at_malloc(1 << 20);
    int fd, eagains = 0;
    uv_stream_t *s;

    AT_UNUSED(state);
    reset();
    snprintf(path, sizeof(path), "/tmp/test_tcp_%d.bin", (int)getpid());
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    for (size_t i = 0; i < (1u << 20); i++)
        buf[i] = (char)(i * 7);
    for (size_t k = 0; k < size; k += 1u << 20)
        assert_int_equal(write(fd, buf, 1u << 20), 1 << 20);
    pair_open(&p);
    while (off < size) {
        ssize_t n = p.t->ops->sendfile(p.t, fd, off, size - off);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        assert_int_equal(n, UV_EAGAIN);
        eagains++;
        g_writable = 0;
        assert_int_equal(p.t->ops->wait_writable(p.t, on_writable), 0);
        while (g_writable == 0) {
            ssize_t k = recv(p.fd, buf, 1 << 20, MSG_DONTWAIT);
            if (k > 0) {
                for (ssize_t i = 0; i < k; i++)
                    assert_int_equal(buf[i], (char)((got + (size_t)i) * 7));
                got += (size_t)k;
            }
            uv_run(&p.loop, UV_RUN_NOWAIT);
        }
    }
    assert_true(eagains > 0);
    assert_int_equal(p.t->ops->sendfile(p.t, fd, size, 100), 0); /* EOF */
    while (got < size) {
        size_t k = AT_MIN(size - got, (size_t)1 << 20);
        peer_read(p.fd, buf, k);
        got += k;
    }
    /* Detached: the stream is the caller's; the transport (and its poll)
     * goes without a callback. */
    s = p.t->ops->detach(p.t);
    assert_non_null(s);
    assert_null(s->data);
    uv_close((uv_handle_t *)s, on_stream_closed);
    pair_close(&p);
    assert_int_equal(g_closed, 0);
    close(fd);
    unlink(path);
    at_free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_order_and_read),
        cmocka_unit_test(test_close_with_pending_writes),
        cmocka_unit_test(test_sendfile_wait_detach),
    };

    signal(SIGPIPE, SIG_IGN);
    at_log_configure("error");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
