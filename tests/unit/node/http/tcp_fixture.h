/* Shared by the HTTP unit tests over TCP: a server on a loop thread, a
 * handler with one path per feature, and a blocking socket client. Each
 * test binary includes it once. */
#ifndef TESTS_NODE_HTTP_TCP_FIXTURE_H
#define TESTS_NODE_HTTP_TCP_FIXTURE_H

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

/* Not every test binary uses every helper. */
#define FIX_UNUSED __attribute__((unused))

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

static FIX_UNUSED void on_async(uv_async_t *a)
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
static FIX_UNUSED void run_on_loop(void (*fn)(void *), void *arg)
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

static FIX_UNUSED int get_locked(const int *p)
{
    int v;

    pthread_mutex_lock(&g_mu);
    v = *p;
    pthread_mutex_unlock(&g_mu);
    return v;
}

static FIX_UNUSED bool wait_ptr(struct node_http_req **p)
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

static FIX_UNUSED void *loop_main(void *arg)
{
    AT_UNUSED(arg);
    uv_run(&g_loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ---- the test handler (loop thread) ---- */

struct echo {
    struct at_buf body;
};

static FIX_UNUSED int echo_body(struct node_http_req *r,
                                const char *p,
                                size_t n)
{
    struct echo *e = node_http_req_data(r);

    at_buf_append(&e->body, p, n);
    return 0;
}

static FIX_UNUSED void echo_end(struct node_http_req *r)
{
    struct echo *e = node_http_req_data(r);

    node_http_resp_header(r, "Content-Type", "text/plain");
    node_http_resp_send(r, e->body.data, e->body.len);
    at_buf_release(&e->body);
    at_free(e);
    node_http_req_set_data(r, NULL);
}

static FIX_UNUSED void echo_abort(struct node_http_req *r)
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

static FIX_UNUSED void echo_start(struct node_http_req *r)
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

static FIX_UNUSED bool ext_buf(struct node_http_req *r,
                               size_t want,
                               char **p,
                               size_t *n)
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

static FIX_UNUSED int ext_body(struct node_http_req *r, const char *p, size_t n)
{
    pthread_mutex_lock(&g_mu);
    if (p >= g_ext_mem && p < g_ext_mem + sizeof(g_ext_mem))
        g_ext_hits++;
    g_ext_left -= n;
    pthread_mutex_unlock(&g_mu);
    return echo_body(r, p, n);
}

static FIX_UNUSED void ext_start(struct node_http_req *r)
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

static FIX_UNUSED void big_resume(uv_timer_t *t)
{
    AT_UNUSED(t);
    pthread_mutex_lock(&g_mu);
    g_paused_now = false;
    pthread_mutex_unlock(&g_mu);
    if (g_big_req != NULL)
        node_http_req_resume(g_big_req);
}

static FIX_UNUSED int big_body(struct node_http_req *r, const char *p, size_t n)
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

static FIX_UNUSED void big_end(struct node_http_req *r)
{
    char msg[96];

    snprintf(msg, sizeof(msg), "n=%" PRIu64 " sum=%" PRIu64, g_big.n,
             g_big.sum);
    node_http_resp_send(r, msg, strlen(msg));
    g_big_req = NULL;
    node_http_req_unref(r);
}

static FIX_UNUSED void count_abort(struct node_http_req *r)
{
    AT_UNUSED(r);
    pthread_mutex_lock(&g_mu);
    g_aborted++;
    pthread_mutex_unlock(&g_mu);
}

static FIX_UNUSED int drop_body(struct node_http_req *r,
                                const char *p,
                                size_t n)
{
    AT_UNUSED(r);
    AT_UNUSED(p);
    AT_UNUSED(n);
    return 0;
}

/* ---- upgrade: the detached stream writes a greeting and closes ---- */

static int g_up_ok;
static int g_up_fail;

static FIX_UNUSED void up_closed(uv_handle_t *h)
{
    at_free(h);
}

static FIX_UNUSED void up_written(uv_write_t *w, int status)
{
    AT_UNUSED(status);
    uv_close((uv_handle_t *)w->handle, up_closed);
    at_free(w);
}

static FIX_UNUSED void on_upgraded(void *data, uv_stream_t *stream)
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

static FIX_UNUSED void handler(void *data, struct node_http_req *r)
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

static FIX_UNUSED void cmd_async_respond(void *arg)
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
    /* Optional, set after cli_connect: a layer over fd (test_tls: TLS),
     * with recv(2)/send(2)'s results and errno; NULL: the socket. */
    ssize_t (*recv_fn)(struct cli *c, void *p, size_t n);
    ssize_t (*send_fn)(struct cli *c, const void *p, size_t n);
    void *data; /* the layer's */
};

struct resp {
    int status;
    char head[8192];
    char *body; /* owned */
    size_t body_len;
    bool close;
};

static FIX_UNUSED int cli_connect(struct cli *c, int port)
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

static FIX_UNUSED int send_all(struct cli *c, const void *p, size_t n)
{
    const char *s = p;

    while (n > 0) {
        ssize_t w = c->send_fn != NULL ? c->send_fn(c, s, n)
                                       : send(c->fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

static FIX_UNUSED int send_str(struct cli *c, const char *s)
{
    return send_all(c, s, strlen(s));
}

/* Read more into c->buf; returns bytes read, 0 on EOF, -1 on error. */
static FIX_UNUSED ssize_t cli_fill(struct cli *c)
{
    ssize_t n;

    if (c->len == sizeof(c->buf))
        return -1;
    do {
        if (c->recv_fn != NULL)
            n = c->recv_fn(c, c->buf + c->len, sizeof(c->buf) - c->len);
        else
            n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    } while (n < 0 && errno == EINTR);
    if (n > 0)
        c->len += (size_t)n;
    return n;
}

static FIX_UNUSED void cli_consume(struct cli *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

/* Status line and headers of the next response; body bytes stay in c. */
static FIX_UNUSED int read_head(struct cli *c, struct resp *r)
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

static FIX_UNUSED int read_resp(struct cli *c, struct resp *r, bool head_req)
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
static FIX_UNUSED bool cli_closed(struct cli *c)
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

static FIX_UNUSED void cli_close(struct cli *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* Read the next response on c: status, and body as a string. */
static FIX_UNUSED void expect_resp(struct cli *c, int status, const char *body)
{
    struct resp r;

    assert_int_equal(read_resp(c, &r, false), 0);
    assert_int_equal(r.status, status);
    assert_string_equal(r.body, body);
    at_free(r.body);
}

/* r, the last response read on c, said Connection: close and the server
 * closed: frees r's body and closes c. */
static FIX_UNUSED void expect_closed(struct cli *c, struct resp *r)
{
    assert_true(r->close);
    at_free(r->body);
    assert_true(cli_closed(c));
    cli_close(c);
}

/* ---- fixture ---- */

static FIX_UNUSED void cmd_start(void *arg)
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

static FIX_UNUSED void on_stopped(void *data)
{
    AT_UNUSED(data);
    pthread_mutex_lock(&g_mu);
    g_stopped++;
    pthread_mutex_unlock(&g_mu);
}

static FIX_UNUSED void on_final_stop(void *data)
{
    AT_UNUSED(data);
    uv_close((uv_handle_t *)&g_async, NULL);
    uv_close((uv_handle_t *)&g_resume_timer, NULL);
}

static FIX_UNUSED void cmd_final_stop(void *arg)
{
    AT_UNUSED(arg);
    node_http_stop(g_srv, on_final_stop, NULL);
}

static FIX_UNUSED int group_setup(void **state)
{
    AT_UNUSED(state);
    at_log_configure(getenv("AT_LOG") != NULL ? getenv("AT_LOG") : "error");
    uv_loop_init(&g_loop);
    uv_async_init(&g_loop, &g_async, on_async);
    uv_timer_init(&g_loop, &g_resume_timer);
    pthread_create(&g_thread, NULL, loop_main, NULL);
    /* Started on the loop thread, as the daemon does: requests are
     * recycled per thread while a server runs on it. */
    run_on_loop(cmd_start, &g_srv);
    if (g_srv == NULL)
        return -1;
    g_port = node_http_port(g_srv);
    return 0;
}

static FIX_UNUSED int group_teardown(void **state)
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

#endif /* TESTS_NODE_HTTP_TCP_FIXTURE_H */
