/* Unit tests of the HTTP server: a real listener driven by blocking sockets. */
#include "common/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/common.h"
#include "node/http/http.h"
#include "node/http/internal.h"

/* ---- loop thread and command queue ---- */

static uv_loop_t g_loop;
static uv_async_t g_async;
static uv_timer_t g_resume_timer;
static pthread_t g_thread;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static void (*g_cmd)(void *);
static void *g_cmd_arg;
static bool g_cmd_done;
static struct node_http_server *g_srv;
static int g_port;

/* Shared state written on the loop thread, read by the test under g_mu. */
static int g_aborted;
static int g_pause_violation;
static int g_pauses;
static bool g_paused_now;
static struct node_http_req *g_big_req;
static struct node_http_req *g_async_req;
static struct node_http_req *g_expect_req;
static int g_stopped;
static char g_file_path[256];
static uint64_t g_file_size;

static void on_async(uv_async_t *a)
{
    AT_UNUSED(a);
    pthread_mutex_lock(&g_mu);
    if (g_cmd != NULL) {
        void (*fn)(void *) = g_cmd;
        void *arg = g_cmd_arg;
        g_cmd = NULL;
        pthread_mutex_unlock(&g_mu);
        fn(arg);
        pthread_mutex_lock(&g_mu);
        g_cmd_done = true;
        pthread_cond_broadcast(&g_cv);
    }
    pthread_mutex_unlock(&g_mu);
}

/* Run fn(arg) on the loop thread and wait for it. */
static void run_on_loop(void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&g_mu);
    g_cmd = fn;
    g_cmd_arg = arg;
    g_cmd_done = false;
    uv_async_send(&g_async);
    while (!g_cmd_done)
        pthread_cond_wait(&g_cv, &g_mu);
    pthread_mutex_unlock(&g_mu);
}

static int get_locked(const int *p)
{
    int v;

    pthread_mutex_lock(&g_mu);
    v = *p;
    pthread_mutex_unlock(&g_mu);
    return v;
}

static bool wait_ptr(struct node_http_req **p)
{
    for (int i = 0; i < 500; i++) {
        bool set;
        pthread_mutex_lock(&g_mu);
        set = *p != NULL;
        pthread_mutex_unlock(&g_mu);
        if (set)
            return true;
        usleep(10000);
    }
    return false;
}

static void *loop_main(void *arg)
{
    AT_UNUSED(arg);
    uv_run(&g_loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ---- the test handler (loop thread) ---- */

struct echo {
    struct at_buf body;
};

static int echo_body(struct node_http_req *r, const char *p, size_t n)
{
    struct echo *e = node_http_req_data(r);

    at_buf_append(&e->body, p, n);
    return 0;
}

static void echo_end(struct node_http_req *r)
{
    struct echo *e = node_http_req_data(r);

    node_http_resp_header(r, "Content-Type", "text/plain");
    node_http_resp_send(r, e->body.data, e->body.len);
    at_buf_release(&e->body);
    at_free(e);
    node_http_req_set_data(r, NULL);
}

static void echo_abort(struct node_http_req *r)
{
    struct echo *e = node_http_req_data(r);

    pthread_mutex_lock(&g_mu);
    g_aborted++;
    pthread_mutex_unlock(&g_mu);
    if (e != NULL) {
        at_buf_release(&e->body);
        at_free(e);
        node_http_req_set_data(r, NULL);
    }
}

static void echo_start(struct node_http_req *r)
{
    struct echo *e = at_calloc(1, sizeof(*e));

    at_buf_init(&e->body, 0);
    node_http_req_set_data(r, e);
    node_http_req_on_abort(r, echo_abort);
    node_http_req_read_body(r, echo_body, echo_end);
}

/* /ext: an echo whose body reads go to handler memory (body_buf). */
static char g_ext_mem[20000];
static int g_ext_hits;   /* on_body calls with bytes in g_ext_mem */
static int g_ext_offers; /* body_buf calls */
static int g_ext_bad;    /* want of 0, or more than the body has left */
static uint64_t g_ext_left;

static bool ext_buf(struct node_http_req *r, size_t want, char **p, size_t *n)
{
    AT_UNUSED(r);
    pthread_mutex_lock(&g_mu);
    g_ext_offers++;
    if (want == 0 || want > g_ext_left)
        g_ext_bad++;
    pthread_mutex_unlock(&g_mu);
    *p = g_ext_mem + 7; /* any place in the handler's memory */
    *n = AT_MIN(want, sizeof(g_ext_mem) - 7);
    return true;
}

static int ext_body(struct node_http_req *r, const char *p, size_t n)
{
    pthread_mutex_lock(&g_mu);
    if (p >= g_ext_mem && p < g_ext_mem + sizeof(g_ext_mem))
        g_ext_hits++;
    g_ext_left -= n;
    pthread_mutex_unlock(&g_mu);
    return echo_body(r, p, n);
}

static void ext_start(struct node_http_req *r)
{
    struct echo *e = at_calloc(1, sizeof(*e));

    at_buf_init(&e->body, 0);
    node_http_req_set_data(r, e);
    node_http_req_on_abort(r, echo_abort);
    pthread_mutex_lock(&g_mu);
    g_ext_left = node_http_req_content_length(r);
    pthread_mutex_unlock(&g_mu);
    node_http_req_body_buf(r, ext_buf);
    node_http_req_read_body(r, ext_body, echo_end);
}

struct bigsum {
    uint64_t n, since_pause, sum;
};
static struct bigsum g_big;

static void big_resume(uv_timer_t *t)
{
    AT_UNUSED(t);
    pthread_mutex_lock(&g_mu);
    g_paused_now = false;
    pthread_mutex_unlock(&g_mu);
    if (g_big_req != NULL)
        node_http_req_resume(g_big_req);
}

static int big_body(struct node_http_req *r, const char *p, size_t n)
{
    AT_UNUSED(r);
    pthread_mutex_lock(&g_mu);
    if (g_paused_now)
        g_pause_violation++;
    pthread_mutex_unlock(&g_mu);
    for (size_t i = 0; i < n; i++)
        g_big.sum = g_big.sum * 31 + (unsigned char)p[i];
    g_big.n += n;
    g_big.since_pause += n;
    if (g_big.since_pause >= 1024 * 1024) {
        g_big.since_pause = 0;
        pthread_mutex_lock(&g_mu);
        g_pauses++;
        g_paused_now = true;
        pthread_mutex_unlock(&g_mu);
        uv_timer_start(&g_resume_timer, big_resume, 1, 0);
        return NODE_HTTP_PAUSE;
    }
    return 0;
}

static void big_end(struct node_http_req *r)
{
    char msg[96];

    snprintf(msg, sizeof(msg), "n=%" PRIu64 " sum=%" PRIu64, g_big.n,
             g_big.sum);
    node_http_resp_send(r, msg, strlen(msg));
    g_big_req = NULL;
    node_http_req_unref(r);
}

static void count_abort(struct node_http_req *r)
{
    AT_UNUSED(r);
    pthread_mutex_lock(&g_mu);
    g_aborted++;
    pthread_mutex_unlock(&g_mu);
}

static int drop_body(struct node_http_req *r, const char *p, size_t n)
{
    AT_UNUSED(r);
    AT_UNUSED(p);
    AT_UNUSED(n);
    return 0;
}

/* ---- upgrade: the detached stream writes a greeting and closes ---- */

static int g_up_ok;
static int g_up_fail;

static void up_closed(uv_handle_t *h)
{
    at_free(h);
}

static void up_written(uv_write_t *w, int status)
{
    AT_UNUSED(status);
    uv_close((uv_handle_t *)w->handle, up_closed);
    at_free(w);
}

static void on_upgraded(void *data, uv_stream_t *stream)
{
    static char greeting[] = "upgraded!";
    uv_write_t *w;
    uv_buf_t b = uv_buf_init(greeting, sizeof(greeting) - 1);

    AT_UNUSED(data);
    pthread_mutex_lock(&g_mu);
    if (stream == NULL)
        g_up_fail++;
    else
        g_up_ok++;
    pthread_mutex_unlock(&g_mu);
    if (stream == NULL)
        return;
    assert_null(stream->data);
    w = at_malloc(sizeof(*w));
    if (uv_write(w, stream, &b, 1, up_written) != 0) {
        at_free(w);
        uv_close((uv_handle_t *)stream, up_closed);
    }
}

static void handler(void *data, struct node_http_req *r)
{
    const char *path = node_http_req_path(r);

    AT_UNUSED(data);
    if (strcmp(path, "/hello") == 0) {
        const char *q = node_http_req_query(r);
        const char *acc = node_http_req_header(r, "accept");
        node_http_resp_header(r, "X-Query", "%s", q != NULL ? q : "-");
        node_http_resp_header(r, "X-Accept", "%s", acc != NULL ? acc : "-");
        node_http_resp_header(r, "X-Method", "%s", node_http_req_method_str(r));
        node_http_resp_send(r, "hello", 5);
    } else if (strcmp(path, "/echo") == 0) {
        echo_start(r);
    } else if (strcmp(path, "/ext") == 0) {
        ext_start(r);
    } else if (strcmp(path, "/upgrade") == 0) {
        node_http_resp_header(r, "X-Up", "1");
        node_http_req_upgrade(r, "test/1", on_upgraded, NULL);
    } else if (strcmp(path, "/big") == 0) {
        memset(&g_big, 0, sizeof(g_big));
        node_http_req_ref(r);
        g_big_req = r;
        node_http_req_read_body(r, big_body, big_end);
    } else if (strcmp(path, "/early") == 0) {
        node_http_resp_status(r, 413);
        node_http_resp_send(r, "no", 2);
    } else if (strcmp(path, "/expect") == 0 || strcmp(path, "/async") == 0) {
        node_http_req_ref(r);
        node_http_req_on_abort(r, count_abort);
        pthread_mutex_lock(&g_mu);
        if (path[1] == 'e')
            g_expect_req = r;
        else
            g_async_req = r;
        pthread_mutex_unlock(&g_mu);
    } else if (strcmp(path, "/file") == 0) {
        int fd = open(g_file_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            node_http_resp_status(r, 500);
            node_http_resp_send(r, NULL, 0);
            return;
        }
        node_http_resp_send_file(r, fd, 0, g_file_size);
    } else if (strcmp(path, "/abort") == 0) {
        node_http_req_on_abort(r, count_abort);
        node_http_req_read_body(r, drop_body, NULL);
    } else {
        node_http_resp_status(r, 404);
        node_http_resp_send(r, "{}", 2);
    }
}

static void cmd_expect_read(void *arg)
{
    AT_UNUSED(arg);
    echo_start(g_expect_req);
    node_http_req_unref(g_expect_req);
    g_expect_req = NULL;
}

static void cmd_async_respond(void *arg)
{
    struct node_http_req *r = g_async_req;

    AT_UNUSED(arg);
    g_async_req = NULL;
    if (r == NULL)
        return;
    node_http_resp_send(r, "late", 4);
    node_http_req_unref(r);
}

/* ---- client side ---- */

struct cli {
    int fd;
    char buf[1 << 16];
    size_t len;
};

struct resp {
    int status;
    char head[8192];
    char *body; /* owned */
    size_t body_len;
    bool close;
};

static int cli_connect(struct cli *c, int port)
{
    struct sockaddr_in a;
    struct timeval tv = { .tv_sec = 10 };

    memset(c, 0, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return connect(c->fd, (struct sockaddr *)&a, sizeof(a));
}

static int send_all(struct cli *c, const void *p, size_t n)
{
    const char *s = p;

    while (n > 0) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

static int send_str(struct cli *c, const char *s)
{
    return send_all(c, s, strlen(s));
}

/* Read more into c->buf; returns bytes read, 0 on EOF, -1 on error. */
static ssize_t cli_fill(struct cli *c)
{
    ssize_t n;

    if (c->len == sizeof(c->buf))
        return -1;
    do {
        n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    } while (n < 0 && errno == EINTR);
    if (n > 0)
        c->len += (size_t)n;
    return n;
}

static void cli_consume(struct cli *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Status line and headers of the next response; body bytes stay in c. */
static int read_head(struct cli *c, struct resp *r)
{
    char *end;
    const char *cl;

    memset(r, 0, sizeof(*r));
    for (;;) {
        end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (end != NULL)
            break;
        if (cli_fill(c) <= 0)
            return -1;
    }
    size_t hl = (size_t)(end - c->buf) + 4;
    if (hl >= sizeof(r->head))
        return -1;
    memcpy(r->head, c->buf, hl);
    r->head[hl] = '\0';
    cli_consume(c, hl);
    if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1)
        return -1;
    cl = strcasestr(r->head, "\r\nContent-Length: ");
    r->body_len = cl != NULL ? strtoull(cl + 18, NULL, 10) : 0;
    r->close = strcasestr(r->head, "\r\nConnection: close") != NULL;
    return 0;
}

static int read_resp(struct cli *c, struct resp *r, bool head_req)
{
    if (read_head(c, r) != 0)
        return -1;
    if (head_req || r->status == 100)
        return 0;
    r->body = at_malloc(r->body_len + 1);
    size_t got = 0;
    while (got < r->body_len) {
        if (c->len == 0 && cli_fill(c) <= 0) {
            at_free(r->body);
            r->body = NULL;
            return -1;
        }
        size_t k = AT_MIN(c->len, r->body_len - got);
        memcpy(r->body + got, c->buf, k);
        cli_consume(c, k);
        got += k;
    }
    r->body[r->body_len] = '\0';
    return 0;
}

/* True when the server closed the connection (EOF or reset) in time. */
static bool cli_closed(struct cli *c)
{
    for (;;) {
        ssize_t n = cli_fill(c);
        if (n == 0)
            return true;
        if (n < 0)
            return errno == ECONNRESET;
        c->len = 0;
    }
}

static void cli_close(struct cli *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* ---- fixture ---- */

static void cmd_start(void *arg)
{
    struct node_http_config cfg = { .host = "127.0.0.1",
                                    .port = 0,
                                    .header_timeout_ms = 500,
                                    .idle_timeout_ms = 2000,
                                    .body_timeout_ms = 3000,
                                    .write_timeout_ms = 10000,
                                    .shutdown_grace_ms = 3000 };
    char errmsg[AT_ERRMSG_SIZE];
    struct node_http_server **out = arg;

    if (node_http_start(out, &g_loop, &cfg, handler, NULL, errmsg) != 0)
        *out = NULL;
}

static void on_stopped(void *data)
{
    AT_UNUSED(data);
    pthread_mutex_lock(&g_mu);
    g_stopped++;
    pthread_mutex_unlock(&g_mu);
}

static void on_final_stop(void *data)
{
    AT_UNUSED(data);
    uv_close((uv_handle_t *)&g_async, NULL);
    uv_close((uv_handle_t *)&g_resume_timer, NULL);
}

static void cmd_final_stop(void *arg)
{
    AT_UNUSED(arg);
    node_http_stop(g_srv, on_final_stop, NULL);
}

static int group_setup(void **state)
{
    AT_UNUSED(state);
    at_log_configure(getenv("AT_LOG") != NULL ? getenv("AT_LOG") : "error");
    uv_loop_init(&g_loop);
    uv_async_init(&g_loop, &g_async, on_async);
    uv_timer_init(&g_loop, &g_resume_timer);
    cmd_start(&g_srv);
    if (g_srv == NULL)
        return -1;
    g_port = node_http_port(g_srv);
    pthread_create(&g_thread, NULL, loop_main, NULL);
    return 0;
}

static int group_teardown(void **state)
{
    AT_UNUSED(state);
    run_on_loop(cmd_final_stop, NULL);
    pthread_join(g_thread, NULL);
    if (uv_loop_close(&g_loop) != 0)
        return -1;
    if (g_file_path[0] != '\0')
        unlink(g_file_path);
    return 0;
}

/* ---- tests ---- */

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
    assert_int_equal(read_resp(&c, &r, false), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello");
    at_free(r.body);
    /* Connection: close is honoured */
    assert_int_equal(send_str(&c,
                              "GET /hello HTTP/1.1\r\nHost: x\r\n"
                              "Connection: close\r\n\r\n"),
                     0);
    assert_int_equal(read_resp(&c, &r, false), 0);
    assert_true(r.close);
    at_free(r.body);
    assert_true(cli_closed(&c));
    cli_close(&c);
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
    assert_int_equal(read_resp(&c, &r, false), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello");
    at_free(r.body);
    cli_close(&c);
}

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
    assert_int_equal(read_resp(&c, &r, false), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello world");
    at_free(r.body);
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
    assert_int_equal(read_resp(&c, &r, false), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello");
    at_free(r.body);
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
    assert_int_equal(read_resp(&c, &r, false), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "data");
    at_free(r.body);
    /* Expect and an early answer: no 100, and the connection closes */
    assert_int_equal(send_str(&c,
                              "PUT /early HTTP/1.1\r\nHost: x\r\n"
                              "Expect: 100-continue\r\n"
                              "Content-Length: 100000000\r\n\r\n"),
                     0);
    assert_int_equal(read_resp(&c, &r, false), 0);
    assert_int_equal(r.status, 413);
    assert_true(r.close);
    at_free(r.body);
    assert_true(cli_closed(&c));
    cli_close(&c);
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
    assert_int_equal(read_resp(&c, &r, false), 0);
    assert_string_equal(r.body, "hello");
    at_free(r.body);
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
    assert_int_equal(read_resp(&c, &r, false), 0);
    assert_string_equal(r.body, "hello");
    at_free(r.body);
    run_on_loop(cmd_eagains, &eagains);
    assert_true(eagains > 0);
    /* HEAD of a file: length only */
    assert_int_equal(send_str(&c, "HEAD /file HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_int_equal(read_resp(&c, &r, true), 0);
    assert_int_equal(r.body_len, g_file_size);
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
    assert_true(r.close);
    assert_non_null(strstr(r.body, "\"code\":\"BAD_REQUEST\""));
    at_free(r.body);
    assert_true(cli_closed(&c));
    cli_close(&c);
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
    expect_error((const char *)hello, sizeof(hello), 400);
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
    assert_int_equal(read_resp(&c, &r, false), 0);
    assert_string_equal(r.body, "hello");
    at_free(r.body);
    cli_close(&c);
}

static void cmd_stop2(void *arg)
{
    node_http_stop(arg, on_stopped, NULL);
}

static void test_stop_waits(void **state)
{
    struct node_http_server *s2 = NULL;
    struct cli c, idle;
    struct resp r;
    int port;

    AT_UNUSED(state);
    run_on_loop(cmd_start, &s2);
    assert_non_null(s2);
    port = node_http_port(s2);
    assert_int_equal(cli_connect(&idle, port), 0);
    assert_int_equal(cli_connect(&c, port), 0);
    assert_int_equal(send_str(&c, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_true(wait_ptr(&g_async_req));
    run_on_loop(cmd_stop2, s2);
    assert_true(cli_closed(&idle)); /* idle connections close at once */
    usleep(100000);
    assert_int_equal(get_locked(&g_stopped), 0);
    run_on_loop(cmd_async_respond, NULL);
    assert_int_equal(read_resp(&c, &r, false), 0);
    assert_string_equal(r.body, "late");
    assert_true(r.close);
    at_free(r.body);
    for (int i = 0; i < 300 && get_locked(&g_stopped) == 0; i++)
        usleep(10000);
    assert_int_equal(get_locked(&g_stopped), 1);
    cli_close(&c);
    cli_close(&idle);
}

static void test_parse_range(void **state)
{
    static const struct {
        const char *v;
        uint64_t size;
        int rv;
        uint64_t s, e;
    } t[] = {
        { "bytes=0-0", 10, 0, 0, 0 },
        { "bytes=0-9", 10, 0, 0, 9 },
        { "bytes=2-", 10, 0, 2, 9 },
        { "bytes=2-100", 10, 0, 2, 9 },
        { "bytes=-3", 10, 0, 7, 9 },
        { "bytes=-30", 10, 0, 0, 9 },
        { "BYTES=1-2", 10, 0, 1, 2 },
        { "bytes=10-", 10, AT_ERANGE, 0, 0 },
        { "bytes=10-20", 10, AT_ERANGE, 0, 0 },
        { "bytes=-0", 10, AT_ERANGE, 0, 0 },
        { "bytes=0-", 0, AT_ERANGE, 0, 0 },
        { "bytes=-5", 0, AT_ERANGE, 0, 0 },
        { "bytes=5-2", 10, AT_EINVAL, 0, 0 },
        { "bytes=1-2,4-5", 10, AT_EINVAL, 0, 0 },
        { "bytes=a-b", 10, AT_EINVAL, 0, 0 },
        { "bytes=+1-2", 10, AT_EINVAL, 0, 0 },
        { "bytes=1 -2", 10, AT_EINVAL, 0, 0 },
        { "bytes=-", 10, AT_EINVAL, 0, 0 },
        { "bytes=", 10, AT_EINVAL, 0, 0 },
        { "items=1-2", 10, AT_EINVAL, 0, 0 },
        { "bytes=99999999999999999999-", 10, AT_EINVAL, 0, 0 },
        { "bytes=0-18446744073709551615", 10, 0, 0, 9 },
        { "bytes=0-18446744073709551616", 10, AT_EINVAL, 0, 0 },
    };

    AT_UNUSED(state);
    for (size_t i = 0; i < AT_ARRAY_SIZE(t); i++) {
        uint64_t s = 99, e = 99;
        int rv = node_http_parse_range(t[i].v, t[i].size, &s, &e);
        if (rv != t[i].rv)
            fail_msg("range '%s' size %" PRIu64 ": rv %d, want %d", t[i].v,
                     t[i].size, rv, t[i].rv);
        if (rv == 0 && (s != t[i].s || e != t[i].e))
            fail_msg("range '%s': %" PRIu64 "-%" PRIu64, t[i].v, s, e);
    }
}

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_range),
        cmocka_unit_test(test_get_keepalive_pipelined),
        cmocka_unit_test(test_head),
        cmocka_unit_test(test_body_length_and_chunked),
        cmocka_unit_test(test_body_buf),
        cmocka_unit_test(test_pause_resume_big),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_early_response),
        cmocka_unit_test(test_send_file_slow_reader),
        cmocka_unit_test(test_limits_and_garbage),
        cmocka_unit_test(test_abort_mid_body),
        cmocka_unit_test(test_header_timeout),
        cmocka_unit_test(test_async_keepalive),
        cmocka_unit_test(test_upgrade),
        cmocka_unit_test(test_stop_waits),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
