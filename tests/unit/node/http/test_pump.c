/* Peer mutual TLS below the HTTP server: the TLS transport's client mode
 * against its server mode over two in-memory transports (a handshake with
 * client certificates, bytes both ways; a client certificate from another
 * CA and a server of the wrong name refused, with the refusal reported),
 * and the pump that gives an upgraded TLS connection a socket pair end. */
#include "common/compat.h"

#include "node/http/tls_ctx.h"
#include "tests/unit/node/http/tls_fixture.h"

static char g_good[160], g_other[160];

struct side {
    struct node_http_transport *lower; /* mem */
    struct node_http_transport *t;     /* tls */
    struct at_buf out;                 /* the lower transport's output */
    size_t off;                        /* of out, fed to the other side */
    char in[4096];                     /* plaintext read */
    size_t in_len;
    int end;   /* the read end: 0 while open */
    int ready; /* wait_writable: 1 done, < 0 failed */
    char buf[16384];
};

struct rig {
    uv_loop_t loop;
    struct node_http_tls *srv_tls, *cli_tls;
    struct side s, c;
    char refused[512];
};

static struct rig *g_rig;

static void on_refused(void *data, const char *peer, const char *why)
{
    struct rig *r = data;

    snprintf(r->refused + strlen(r->refused),
             sizeof(r->refused) - strlen(r->refused), "[%s] %s;", peer, why);
}

static void side_alloc(struct node_http_transport *t, size_t hint, uv_buf_t *b)
{
    struct side *s = t->data;

    AT_UNUSED(hint);
    *b = uv_buf_init(s->buf, sizeof(s->buf));
}

static void side_read(struct node_http_transport *t,
                      ssize_t n,
                      const uv_buf_t *b)
{
    struct side *s = t->data;

    if (n < 0) {
        s->end = (int)n;
        return;
    }
    if (n > 0 && s->in_len + (size_t)n <= sizeof(s->in)) {
        memcpy(s->in + s->in_len, b->base, (size_t)n);
        s->in_len += (size_t)n;
    }
}

static void side_ready(struct node_http_transport *t, int status)
{
    struct side *s = t->data;

    s->ready = status == 0 ? 1 : status;
}

/* files: dir of a pair (cert.pem, key.pem) */
static void open_tls(struct rig *r,
                     struct node_http_tls **out,
                     const char *dir,
                     const char *ca)
{
    char cert[200], key[200], errmsg[AT_ERRMSG_SIZE];
    struct node_http_tls_files f = { .cert = cert,
                                     .key = key,
                                     .ca = ca,
                                     .refused = on_refused,
                                     .refused_data = r };

    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    assert_int_equal(node_http__tls_open_peer(out, &r->loop, &f, 60000, errmsg),
                     0);
}

/* A server and a client (its files from cli_dir, dialing host). */
static void rig_open(struct rig *r, const char *cli_dir, const char *host)
{
    void *ssl;

    memset(r, 0, sizeof(*r));
    g_rig = r;
    uv_loop_init(&r->loop);
    open_tls(r, &r->srv_tls, g_good, g_ca_path);
    open_tls(r, &r->cli_tls, cli_dir, g_ca_path);
    at_buf_init(&r->s.out, 1 << 20);
    at_buf_init(&r->c.out, 1 << 20);
    r->s.lower = node_http__mem_new(&r->loop, &r->s.out);
    r->c.lower = node_http__mem_new(&r->loop, &r->c.out);
    assert_int_equal(
        node_http__tls_wrap(r->srv_tls, &r->loop, r->s.lower, &r->s.t), 0);
    ssl = node_http__tls_session_new(r->cli_tls, host);
    assert_non_null(ssl);
    assert_int_equal(node_http__tls_connect(ssl, &r->loop, r->c.lower, &r->c.t),
                     0);
    r->s.t->data = &r->s;
    r->c.t->data = &r->c;
    assert_int_equal(r->s.t->ops->read_start(r->s.t, side_alloc, side_read), 0);
    assert_int_equal(r->c.t->ops->read_start(r->c.t, side_alloc, side_read), 0);
    assert_int_equal(r->c.t->ops->wait_writable(r->c.t, side_ready), 0);
}

/* Move what each lower transport wrote to the other, until quiet. */
static void rig_settle(struct rig *r)
{
    for (int i = 0; i < 50; i++) {
        uv_run(&r->loop, UV_RUN_NOWAIT);
        node_http__mem_flush(r->s.lower);
        node_http__mem_flush(r->c.lower);
        if (r->s.off < r->s.out.len)
            r->s.off += node_http__mem_feed(
                r->c.lower, r->s.out.data + r->s.off, r->s.out.len - r->s.off);
        if (r->c.off < r->c.out.len)
            r->c.off += node_http__mem_feed(
                r->s.lower, r->c.out.data + r->c.off, r->c.out.len - r->c.off);
    }
}

static void on_closed(struct node_http_transport *t)
{
    AT_UNUSED(t);
}

static void rig_close(struct rig *r)
{
    if (r->s.t != NULL)
        r->s.t->ops->close(r->s.t, on_closed);
    if (r->c.t != NULL)
        r->c.t->ops->close(r->c.t, on_closed);
    node_http__tls_close(r->srv_tls, NULL, NULL);
    node_http__tls_close(r->cli_tls, NULL, NULL);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&r->loop), 0);
    at_buf_release(&r->s.out);
    at_buf_release(&r->c.out);
}

static void on_write(struct node_http_twrite *w, int status)
{
    AT_UNUSED(w);
    assert_int_equal(status, 0);
}

static void test_mutual_handshake(void **state)
{
    struct rig r;
    struct node_http_twrite w1, w2;
    uv_buf_t b1 = uv_buf_init((char *)"ping", 4);
    uv_buf_t b2 = uv_buf_init((char *)"pong!", 5);

    AT_UNUSED(state);
    rig_open(&r, g_good, "127.0.0.1");
    /* Before the handshake is done the client refuses writes. */
    assert_int_equal(r.c.t->ops->write(r.c.t, &w1, &b1, 1, on_write), UV_EPIPE);
    rig_settle(&r);
    assert_int_equal(r.c.ready, 1);
    assert_string_equal(node_http__tls_version(r.c.t), "TLSv1.3");
    assert_string_equal(node_http__tls_version(r.s.t), "TLSv1.3");
    assert_int_equal(r.c.t->ops->write(r.c.t, &w1, &b1, 1, on_write), 0);
    assert_int_equal(r.s.t->ops->write(r.s.t, &w2, &b2, 1, on_write), 0);
    rig_settle(&r);
    assert_int_equal(r.s.in_len, 4);
    assert_memory_equal(r.s.in, "ping", 4);
    assert_int_equal(r.c.in_len, 5);
    assert_memory_equal(r.c.in, "pong!", 5);
    assert_string_equal(r.refused, "");
    rig_close(&r);
}

static void test_other_ca_refused(void **state)
{
    struct rig r;

    AT_UNUSED(state);
    /* The client trusts the cluster CA but its own certificate comes from
     * another one: the server refuses it at the handshake. */
    rig_open(&r, g_other, "localhost");
    rig_settle(&r);
    /* With TLS 1.3 the client is done before the server has checked its
     * certificate: it learns of the refusal from the alert. */
    assert_int_not_equal(r.s.end, 0);
    assert_int_not_equal(r.c.end, 0);
    /* The server's refusal (both test CAs have one name: the chain is
     * built to the cluster CA, whose signature does not match). */
    assert_non_null(strstr(r.refused, "[mem] tls handshake: certificate"));
    rig_close(&r);
}

static void test_wrong_host_refused(void **state)
{
    struct rig r;

    AT_UNUSED(state);
    /* The server's certificate names localhost and 127.0.0.1 only. */
    rig_open(&r, g_good, "10.9.8.7");
    rig_settle(&r);
    assert_int_not_equal(r.c.end, 0);
    assert_int_not_equal(r.c.ready, 1);
    assert_non_null(strstr(r.refused, "dialing it"));
    rig_close(&r);
}

/* ---- the pump: the server side handed over as a socket pair end ---- */

static char g_pipe_in[64];
static size_t g_pipe_len;
static bool g_pipe_eof;

static void pipe_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    static char buf[4096];

    AT_UNUSED(h);
    AT_UNUSED(hint);
    *b = uv_buf_init(buf, sizeof(buf));
}

static void pipe_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    AT_UNUSED(s);
    if (n < 0) {
        g_pipe_eof = true;
        return;
    }
    if (n > 0 && g_pipe_len + (size_t)n <= sizeof(g_pipe_in)) {
        memcpy(g_pipe_in + g_pipe_len, b->base, (size_t)n);
        g_pipe_len += (size_t)n;
    }
}

static void on_pipe_written(uv_write_t *w, int status)
{
    AT_UNUSED(w);
    assert_int_equal(status, 0);
}

static void on_end_closed(uv_handle_t *h)
{
    at_free(h);
}

static void test_pump_detach(void **state)
{
    struct rig r;
    struct node_http_twrite w;
    uv_write_t pw;
    uv_buf_t b = uv_buf_init((char *)"to the owner", 12);
    uv_buf_t pb = uv_buf_init((char *)"from it", 7);
    uv_stream_t *end;

    AT_UNUSED(state);
    rig_open(&r, g_good, "localhost");
    rig_settle(&r);
    assert_int_equal(r.c.ready, 1);
    /* As an upgrade does: reading stopped, nothing queued, then detach. */
    r.s.t->ops->read_stop(r.s.t);
    end = r.s.t->ops->detach(r.s.t);
    assert_non_null(end);
    r.s.t = NULL; /* the pump has it */
    g_pipe_len = 0;
    g_pipe_eof = false;
    assert_int_equal(uv_read_start(end, pipe_alloc, pipe_read), 0);
    assert_int_equal(r.c.t->ops->write(r.c.t, &w, &b, 1, on_write), 0);
    assert_int_equal(uv_write(&pw, end, &pb, 1, on_pipe_written), 0);
    for (int i = 0; i < 20 && (g_pipe_len < 12 || r.c.in_len < 7); i++) {
        rig_settle(&r);
        uv_run(&r.loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(g_pipe_len, 12);
    assert_memory_equal(g_pipe_in, "to the owner", 12);
    assert_int_equal(r.c.in_len, 7);
    assert_memory_equal(r.c.in, "from it", 7);
    /* The peer's end reaches the owner as EOF. */
    r.c.t->ops->close(r.c.t, on_closed);
    r.c.t = NULL;
    node_http__mem_eof(r.s.lower);
    for (int i = 0; i < 20 && !g_pipe_eof; i++)
        uv_run(&r.loop, UV_RUN_NOWAIT);
    assert_true(g_pipe_eof);
    uv_close((uv_handle_t *)end, on_end_closed);
    rig_close(&r);
}

static int setup(void **state)
{
    EVP_PKEY *ca_key = NULL;
    X509 *ca = NULL;

    AT_UNUSED(state);
    at_log_configure(getenv("AT_LOG") != NULL ? getenv("AT_LOG") : "error");
    make_ca();
    snprintf(g_good, sizeof(g_good), "%s/good", g_tmp);
    make_pair(g_good, 101, false, false);
    /* A pair from another CA: swap the fixture's CA for a moment. */
    ca_key = g_ca_key;
    ca = g_ca;
    g_ca_key = make_key();
    g_ca = make_cert(g_ca_key, 7, false);
    snprintf(g_other, sizeof(g_other), "%s/other", g_tmp);
    make_pair(g_other, 102, false, false);
    X509_free(g_ca);
    EVP_PKEY_free(g_ca_key);
    g_ca_key = ca_key;
    g_ca = ca;
    return 0;
}

static int teardown(void **state)
{
    AT_UNUSED(state);
    free_ca();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mutual_handshake),
        cmocka_unit_test(test_other_ca_refused),
        cmocka_unit_test(test_wrong_host_refused),
        cmocka_unit_test(test_pump_detach),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, setup, teardown);
}
