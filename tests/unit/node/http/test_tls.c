/* Unit tests of node/http/tls.c and tls_ctx.c: HTTPS through the TLS
 * transport over real loopback sockets (an OpenSSL client on blocking
 * sockets, the server on its loop thread), with certificates made at test
 * time: exchanges, large and file bodies, a reader that stops, closes
 * during the handshake, bad files, reloads and the file watch, the answers
 * to the wrong protocol on either port, and random first flights through
 * the in-memory transport. */
#include "common/compat.h"

#include "node/http/tls_ctx.h"
#include "tests/unit/node/http/tls_fixture.h"

#define FILE_BYTES (24u * 1024 * 1024)
#define HELD_MAX   (2u * 1024 * 1024) /* tls.c: TLS_HIGH + one piece */

static struct node_http_server *g_plain; /* the same, without TLS */
static int g_plain_port;
static char g_cert[160], g_key[160];
static char g_link[128]; /* g_tmp/current -> g_tmp/gN */

/* Put g_tmp/gN (a pair made with make_pair) in place by an atomic swap of
 * the directory symlink, as Kubernetes secret volumes do. */
static void swap_to(int n)
{
    char tmp[160], target[32];

    snprintf(target, sizeof(target), "g%d", n);
    snprintf(tmp, sizeof(tmp), "%s/next", g_tmp);
    unlink(tmp);
    assert_int_equal(symlink(target, tmp), 0);
    assert_int_equal(rename(tmp, g_link), 0);
}

static void make_gen(int n, long serial, bool wrong_key)
{
    char dir[128];

    snprintf(dir, sizeof(dir), "%s/g%d", g_tmp, n);
    make_pair(dir, serial, wrong_key, false);
}

static uint8_t file_byte(uint64_t i)
{
    return (uint8_t)((i * 2654435761u) >> 13);
}

static void make_file(void)
{
    uint8_t *p = at_malloc(FILE_BYTES);

    for (uint64_t i = 0; i < FILE_BYTES; i++)
        p[i] = file_byte(i);
    snprintf(g_file_path, sizeof(g_file_path), "%s/file", g_tmp);
    write_file(g_file_path, p, FILE_BYTES);
    g_file_size = FILE_BYTES;
    at_free(p);
}

static void cmd_start_both(void *arg)
{
    struct node_http_config cfg = { .host = "127.0.0.1",
                                    .header_timeout_ms = 500,
                                    .idle_timeout_ms = 5000,
                                    .body_timeout_ms = 3000,
                                    .write_timeout_ms = 10000,
                                    .shutdown_grace_ms = 3000,
                                    .tls_cert = g_cert,
                                    .tls_key = g_key,
                                    .tls_poll_ms = 100 };
    char errmsg[AT_ERRMSG_SIZE];

    AT_UNUSED(arg);
    if (node_http_start(&g_srv, &g_loop, &cfg, handler, NULL, errmsg) != 0) {
        fprintf(stderr, "start: %s\n", errmsg);
        g_srv = NULL;
        return;
    }
    cfg.tls_cert = cfg.tls_key = NULL;
    if (node_http_start(&g_plain, &g_loop, &cfg, handler, NULL, errmsg) != 0)
        g_plain = NULL;
}

static int setup(void **state)
{
    AT_UNUSED(state);
    at_log_configure(getenv("AT_LOG") != NULL ? getenv("AT_LOG") : "error");
    make_ca();
    make_gen(1, 101, false);
    snprintf(g_link, sizeof(g_link), "%s/current", g_tmp);
    assert_int_equal(symlink("g1", g_link), 0);
    snprintf(g_cert, sizeof(g_cert), "%s/cert.pem", g_link);
    snprintf(g_key, sizeof(g_key), "%s/key.pem", g_link);
    make_file();
    uv_loop_init(&g_loop);
    uv_async_init(&g_loop, &g_async, on_async);
    uv_timer_init(&g_loop, &g_resume_timer);
    pthread_create(&g_thread, NULL, loop_main, NULL);
    run_on_loop(cmd_start_both, NULL);
    if (g_srv == NULL || g_plain == NULL)
        return -1;
    g_port = node_http_port(g_srv);
    g_plain_port = node_http_port(g_plain);
    return 0;
}

static void on_plain_stopped(void *data)
{
    AT_UNUSED(data);
    node_http_stop(g_srv, on_final_stop, NULL);
}

static void cmd_stop_both(void *arg)
{
    AT_UNUSED(arg);
    node_http_stop(g_plain, on_plain_stopped, NULL);
}

static int teardown(void **state)
{
    AT_UNUSED(state);
    run_on_loop(cmd_stop_both, NULL);
    pthread_join(g_thread, NULL);
    if (uv_loop_close(&g_loop) != 0)
        return -1;
    g_file_path[0] = '\0';
    free_ca();
    return 0;
}

/* ---- on the loop thread ---- */

struct probe {
    size_t held;  /* the most any TLS connection holds */
    size_t conns; /* open connections of the TLS server */
    uint64_t generation;
};

static void cmd_probe(void *arg)
{
    struct probe *p = arg;
    struct at_list *e;

    memset(p, 0, sizeof(*p));
    AT_LIST_FOREACH (e, &g_srv->conns) {
        struct node_http_conn *c =
            AT_LIST_ENTRY(e, struct node_http_conn, link);

        if (c->t != NULL && c->state != CONN_CLOSED)
            p->held = AT_MAX(p->held, node_http__tls_held(c->t));
    }
    p->conns = g_srv->nconns;
    p->generation = node_http__tls_generation(g_srv->tls);
}

static struct probe probe(void)
{
    struct probe p;

    run_on_loop(cmd_probe, &p);
    return p;
}

struct reload {
    int rv;
    char errmsg[AT_ERRMSG_SIZE];
};

static void cmd_reload(void *arg)
{
    struct reload *r = arg;

    r->rv = node_http_reload_tls(g_srv, r->errmsg);
}

/* ---- tests ---- */

static void get_hello(struct cli *c)
{
    assert_int_equal(send_str(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    expect_resp(c, 200, "hello");
}

/* A handshake with the CA's trust and the host name, ALPN http/1.1 (the
 * client also offers h2), keep-alive requests, and a 3 MiB body each way
 * (the answer is one write: one large chunk of records). */
static void test_exchange(void **state)
{
    struct cli c;
    const unsigned char *alpn;
    unsigned alpn_len;
    size_t n = 3u * 1024 * 1024;
    char *body = at_malloc(n);
    char head[128];
    struct resp r;

    AT_UNUSED(state);
    assert_int_equal(tls_connect(&c, g_port), 0);
    SSL_get0_alpn_selected(c.data, &alpn, &alpn_len);
    assert_int_equal(alpn_len, 8);
    assert_memory_equal(alpn, "http/1.1", 8);
    assert_int_equal(tls_serial(&c), 101);
    get_hello(&c);
    get_hello(&c);
    for (size_t i = 0; i < n; i++)
        body[i] = (char)file_byte(i + 7);
    snprintf(head, sizeof(head),
             "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
             n);
    assert_int_equal(send_str(&c, head), 0);
    assert_int_equal(send_all(&c, body, n), 0);
    assert_int_equal(read_resp(&c, &r, false), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, n);
    assert_memory_equal(r.body, body, n);
    at_free(r.body);
    get_hello(&c);
    tls_close(&c);
    at_free(body);
}

static void expect_file(struct cli *c)
{
    struct resp r;

    assert_int_equal(read_resp(c, &r, false), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, FILE_BYTES);
    for (uint64_t i = 0; i < FILE_BYTES; i++) {
        if ((uint8_t)r.body[i] != file_byte(i))
            fail_msg("file body differs at byte %" PRIu64, i);
    }
    at_free(r.body);
}

/* A file body (the transport's sendfile: read, encrypt, write) arrives
 * intact, twice on one connection. */
static void test_file_body(void **state)
{
    struct cli c;

    AT_UNUSED(state);
    assert_int_equal(tls_connect(&c, g_port), 0);
    assert_int_equal(send_str(&c, "GET /file HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    expect_file(&c);
    assert_int_equal(send_str(&c, "GET /file HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    expect_file(&c);
    tls_close(&c);
}

/* A client that stops reading a large file body: what the server holds
 * for it stays bounded (the socket buffers fill, then the transport stops
 * encrypting); once it reads again, every byte arrives. */
static void test_stalled_reader(void **state)
{
    struct cli c;
    int small = 64 * 1024;
    size_t most = 0, last = 0;

    AT_UNUSED(state);
    assert_int_equal(tls_connect(&c, g_port), 0);
    setsockopt(c.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    assert_int_equal(send_str(&c, "GET /file HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    for (int i = 0; i < 15; i++) {
        usleep(100 * 1000);
        last = probe().held;
        most = AT_MAX(most, last);
    }
    assert_true(last > 0); /* it did stall, with records waiting */
    assert_true(most <= HELD_MAX);
    expect_file(&c);
    tls_close(&c);
}

static bool wait_conns(size_t n)
{
    for (int i = 0; i < 300; i++) {
        if (probe().conns == n)
            return true;
        usleep(10 * 1000);
    }
    return false;
}

/* A client that goes away in the middle of its hello, and one that never
 * sends one (the header timeout ends the handshake). */
static void test_close_in_handshake(void **state)
{
    struct cli c;
    uint64_t t0;

    AT_UNUSED(state);
    assert_true(wait_conns(0));
    assert_int_equal(cli_connect(&c, g_port), 0);
    assert_int_equal(send_all(&c, "\x16\x03\x01\x00\xc8\x01\x00", 7), 0);
    cli_close(&c);
    assert_true(wait_conns(0));

    assert_int_equal(cli_connect(&c, g_port), 0);
    t0 = uv_hrtime();
    assert_true(cli_closed(&c));
    assert_true(uv_hrtime() - t0 < 5000000000ull);
    cli_close(&c);
    assert_true(wait_conns(0));
}

/* Plain HTTP on the TLS port: a plain 400 saying so, then the close. */
static void test_plain_on_tls_port(void **state)
{
    struct cli c;
    struct resp r;

    AT_UNUSED(state);
    assert_int_equal(cli_connect(&c, g_port), 0);
    assert_int_equal(send_str(&c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_int_equal(read_resp(&c, &r, false), 0);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, "this port speaks HTTPS\n");
    expect_closed(&c, &r);
}

/* A client hello as an OpenSSL client sends it first. */
static size_t client_hello(char *buf, size_t cap)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = SSL_new(ctx);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    int n;

    SSL_set_bio(ssl, rb, wb);
    SSL_set_connect_state(ssl);
    assert_true(SSL_do_handshake(ssl) <= 0);
    n = BIO_read(wb, buf, (int)cap);
    assert_true(n > 0);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return (size_t)n;
}

/* A TLS hello on the plain port: the handshake fails on a plain 400. */
static void test_tls_on_plain_port(void **state)
{
    struct cli c;
    char hello[2048];
    size_t n = client_hello(hello, sizeof(hello));
    struct resp r;

    AT_UNUSED(state);
    assert_int_equal(tls_connect(&c, g_plain_port), -1);
    assert_int_equal(cli_connect(&c, g_plain_port), 0);
    assert_int_equal(send_all(&c, hello, n), 0);
    assert_int_equal(read_resp(&c, &r, false), 0);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, "this port speaks plain HTTP\n");
    expect_closed(&c, &r);
}

static void expect_open_fails(const char *cert,
                              const char *key,
                              const char *want)
{
    uv_loop_t loop;
    struct node_http_tls *tls = NULL;
    char errmsg[AT_ERRMSG_SIZE] = "";

    uv_loop_init(&loop);
    assert_int_equal(node_http__tls_open(&tls, &loop, cert, key, 1000, errmsg),
                     AT_EINVAL);
    assert_null(tls);
    if (strstr(errmsg, want) == NULL)
        fail_msg("errmsg '%s' lacks '%s'", errmsg, want);
    assert_int_equal(uv_loop_close(&loop), 0);
}

struct half {
    int rv;
    char errmsg[AT_ERRMSG_SIZE];
};

/* A start with a certificate and no key. */
static void cmd_start_half(void *arg)
{
    struct half *h = arg;
    struct node_http_config cfg = { .host = "127.0.0.1", .tls_cert = g_cert };
    struct node_http_server *s = NULL;

    h->rv = node_http_start(&s, &g_loop, &cfg, handler, NULL, h->errmsg);
}

/* Files that cannot serve are refused at start, each with a message
 * naming the file and the trouble. */
static void test_bad_files(void **state)
{
    char dir[128], cert[160], key[160], junk[160];
    struct half h;

    AT_UNUSED(state);
    snprintf(dir, sizeof(dir), "%s/bad", g_tmp);
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    snprintf(junk, sizeof(junk), "%s/junk.pem", g_tmp);
    write_file(junk, "not a certificate\n", 18);
    expect_open_fails("/nonexistent/cert.pem", g_key, "cannot open");
    expect_open_fails(g_cert, "/nonexistent/key.pem", "cannot open");
    expect_open_fails(junk, g_key, "no PEM certificate");
    expect_open_fails(g_cert, junk, "no PEM private key");
    make_pair(dir, 7, true, false);
    expect_open_fails(cert, key, "is not the key of the certificate");
    make_pair(dir, 8, false, true);
    expect_open_fails(cert, key, "encrypted keys are not supported");
    run_on_loop(cmd_start_half, &h);
    assert_int_equal(h.rv, AT_EINVAL);
    assert_non_null(strstr(h.errmsg, "both a certificate and a key"));
}

/* A reload swaps the context for new connections while an open one keeps
 * its own; a bad pair is refused and the current one stays; the next
 * change of the files is taken by the watch without a call. */
static void test_reload(void **state)
{
    struct cli a, b;
    struct reload r;
    uint64_t gen = probe().generation;
    long serial = 0;

    AT_UNUSED(state);
    assert_int_equal(tls_connect(&a, g_port), 0);
    assert_int_equal(tls_serial(&a), 101);
    get_hello(&a);
    make_gen(2, 102, false);
    swap_to(2);
    run_on_loop(cmd_reload, &r);
    assert_int_equal(r.rv, 0);
    assert_true(probe().generation > gen);
    assert_int_equal(tls_connect(&b, g_port), 0);
    assert_int_equal(tls_serial(&b), 102);
    get_hello(&a); /* the old connection, on the old context */
    get_hello(&b);
    tls_close(&b);

    make_gen(3, 103, true);
    swap_to(3);
    run_on_loop(cmd_reload, &r);
    assert_int_equal(r.rv, AT_EINVAL);
    assert_non_null(strstr(r.errmsg, "is not the key"));
    assert_int_equal(tls_connect(&b, g_port), 0);
    assert_int_equal(tls_serial(&b), 102);
    tls_close(&b);

    make_gen(4, 104, false);
    swap_to(4);
    for (int i = 0; i < 100 && serial != 104; i++) {
        usleep(50 * 1000);
        assert_int_equal(tls_connect(&b, g_port), 0);
        serial = tls_serial(&b);
        tls_close(&b);
    }
    assert_int_equal(serial, 104);
    get_hello(&a);
    tls_close(&a);
}

/* ---- in memory: TLS over the in-memory transport ---- */

struct memrig {
    uv_loop_t loop;
    struct node_http_server *srv;
    struct node_http_tls *tls;
    struct at_buf out;
};

static void memrig_open(struct memrig *m)
{
    struct node_http_config cfg = { .header_timeout_ms = 1000 };
    char errmsg[AT_ERRMSG_SIZE];

    uv_loop_init(&m->loop);
    m->srv = node_http__server_new_mem(&m->loop, &cfg, handler, NULL);
    assert_int_equal(
        node_http__tls_open(&m->tls, &m->loop, g_cert, g_key, 60000, errmsg),
        0);
    at_buf_init(&m->out, 1 << 20);
}

static void memrig_close(struct memrig *m)
{
    node_http_stop(m->srv, NULL, NULL);
    node_http__tls_close(m->tls, NULL, NULL);
    uv_run(&m->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&m->loop), 0);
    at_buf_release(&m->out);
}

/* A connection over TLS over the in-memory transport; *lower is the
 * in-memory transport, to feed and flush. */
static struct node_http_conn *memrig_conn(struct memrig *m,
                                          struct node_http_transport **lower)
{
    struct node_http_transport *t;

    *lower = node_http__mem_new(&m->loop, &m->out);
    assert_int_equal(node_http__tls_wrap(m->tls, &m->loop, *lower, &t), 0);
    return node_http__conn_new(m->srv, t);
}

/* Run the loop and flush writes until nothing moves. */
static void memrig_settle(struct memrig *m, struct node_http_transport *lower)
{
    for (int i = 0; i < 20; i++) {
        uv_run(&m->loop, UV_RUN_NOWAIT);
        if (m->srv->nconns == 0)
            return;
        node_http__mem_flush(lower);
    }
}

/* Shuttle bytes between an OpenSSL client on memory BIOs and the server
 * until the client's handshake is done and a whole answer came. */
static void test_mem_exchange(void **state)
{
    struct memrig m;
    struct node_http_transport *lower;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = SSL_new(ctx);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    char buf[16384], got[4096] = "";
    size_t gotn = 0;
    bool sent = false;

    AT_UNUSED(state);
    memrig_open(&m);
    memrig_conn(&m, &lower);
    SSL_set_bio(ssl, rb, wb);
    SSL_set_connect_state(ssl);
    for (int i = 0; i < 50 && strstr(got, "hello") == NULL; i++) {
        int n;

        if (SSL_is_init_finished(ssl) && !sent) {
            const char *req = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
            assert_true(SSL_write(ssl, req, (int)strlen(req)) > 0);
            sent = true;
        } else if (!SSL_is_init_finished(ssl)) {
            SSL_do_handshake(ssl);
        } else {
            n = SSL_read(ssl, got + gotn, (int)(sizeof(got) - 1 - gotn));
            if (n > 0)
                gotn += (size_t)n;
            got[gotn] = '\0';
        }
        while ((n = BIO_read(wb, buf, sizeof(buf))) > 0)
            assert_int_equal(node_http__mem_feed(lower, buf, (size_t)n), n);
        memrig_settle(&m, lower);
        if (m.out.len > 0) {
            BIO_write(rb, m.out.data, (int)m.out.len);
            at_buf_reset(&m.out);
        }
        ERR_clear_error();
    }
    assert_non_null(strstr(got, "HTTP/1.1 200 OK"));
    assert_non_null(strstr(got, "\r\n\r\nhello"));
    node_http__mem_eof(lower);
    memrig_settle(&m, lower);
    assert_int_equal(m.srv->nconns, 0);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    memrig_close(&m);
}

/* A first flight of random bytes, or a real hello cut short, mutated or
 * followed by garbage: the connection ends cleanly (no crash, no leak
 * under ASan), answering at most an alert or a 400. */
static void test_random_first_flights(void **state)
{
    struct memrig m;
    char hello[2048], in[4096];
    size_t hn = client_hello(hello, sizeof(hello));
    unsigned seed = 12345;

    AT_UNUSED(state);
    memrig_open(&m);
    for (int i = 0; i < 400; i++) {
        struct node_http_transport *lower;
        size_t n = (size_t)(rand_r(&seed) % (int)sizeof(in)) + 1;
        int kind = i % 4;

        for (size_t k = 0; k < n; k++)
            in[k] = (char)rand_r(&seed);
        if (kind == 1) {
            in[0] = 0x16;
            in[1] = 0x03;
        } else if (kind >= 2) {
            size_t keep = kind == 2 ? hn : (size_t)rand_r(&seed) % hn + 1;
            memcpy(in, hello, keep);
            for (int f = 0; kind == 2 && f < 3; f++)
                in[5 + rand_r(&seed) % (int)(hn - 5)] ^= (char)(1 + f);
            n = kind == 2 ? hn : keep + n % 64;
        }
        memrig_conn(&m, &lower);
        node_http__mem_feed(lower, in, n);
        memrig_settle(&m, lower);
        if (m.srv->nconns != 0) {
            node_http__mem_eof(lower);
            memrig_settle(&m, lower);
        }
        assert_int_equal(m.srv->nconns, 0);
        at_buf_reset(&m.out);
    }
    memrig_close(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exchange),
        cmocka_unit_test(test_file_body),
        cmocka_unit_test(test_stalled_reader),
        cmocka_unit_test(test_close_in_handshake),
        cmocka_unit_test(test_plain_on_tls_port),
        cmocka_unit_test(test_tls_on_plain_port),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_mem_exchange),
        cmocka_unit_test(test_random_first_flights),
        cmocka_unit_test(test_reload),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, setup, teardown);
}
