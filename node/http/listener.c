/* The HTTP server: listening, accepting (over TLS when configured),
 * stopping with a grace period; it gives its connections the layer above
 * them (HTTP/1). */
#include "common/compat.h"

#define AT_LOG_COMP "http"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "common/common.h"
#include "node/http/internal.h"
#include "node/http/tls_ctx.h"

#define TLS_POLL_MS 2000

static void srv_on_connection(uv_stream_t *ls, int status)
{
    struct node_http_server *s = ls->data;
    struct node_http_transport *t;
    int rv;

    if (status < 0) {
        LOG_WARN("accept: %s", uv_strerror(status));
        return;
    }
    if (s->stopping)
        return;
    rv = node_http__tcp_accept(ls, &t);
    if (rv == 0 && s->tls != NULL)
        rv = node_http__tls_wrap(s->tls, s->loop, t, &t);
    if (rv != 0) {
        LOG_DEBUG("accept: %s", uv_strerror(rv));
        return;
    }
    node_http__conn_new(s, t);
}

static void srv_gone(struct node_http_server *s)
{
    if (--s->handles == 0) {
        void (*cb)(void *) = s->stop_cb;
        void *data = s->stop_data;

        at_free(s);
        node_http__recycle_release();
        if (cb != NULL)
            cb(data);
    }
}

static void srv_on_close(uv_handle_t *h)
{
    srv_gone(h->data);
}

static void srv_on_tls_closed(void *data)
{
    srv_gone(data);
}

/* Stop reading and watching the TLS files (connections keep their
 * contexts). */
static void srv_close_tls(struct node_http_server *s)
{
    if (s->tls == NULL)
        return;
    s->handles++;
    node_http__tls_close(s->tls, srv_on_tls_closed, s);
    s->tls = NULL;
}

static void srv_log_ktls(struct node_http_server *s)
{
    char why[160];

    if (node_http__tls_ktls_probe(s->tls, why, sizeof(why)))
        LOG_INFO(
            "tls: kernel TLS is available (%s), not used: records are "
            "encrypted in user space",
            why);
    else
        LOG_INFO(
            "tls: no kernel TLS: %s; file bodies are read, encrypted "
            "and written in user space",
            why);
}

/* The certificate and key, when cfg has them. */
static int srv_open_tls(struct node_http_server *s,
                        const struct node_http_config *cfg,
                        char *errmsg)
{
    if (cfg->tls_cert == NULL && cfg->tls_key == NULL)
        return 0;
    if (cfg->tls_cert == NULL || cfg->tls_key == NULL) {
        at_errmsg_printf(errmsg, "tls needs both a certificate and a key");
        return AT_EINVAL;
    }
    struct node_http_tls_files f = {
        .cert = cfg->tls_cert,
        .key = cfg->tls_key,
        .ca = cfg->tls_ca,
        .refused = cfg->tls_refused,
        .refused_data = cfg->tls_refused_data,
    };

    return node_http__tls_open_peer(
        &s->tls, s->loop, &f,
        cfg->tls_poll_ms != 0 ? cfg->tls_poll_ms : TLS_POLL_MS, errmsg);
}

/* A connection of a stopping server went: finish the stop when it was the
 * last. */
static void srv_maybe_finish(struct node_http_server *s)
{
    if (!s->stopping || s->nconns != 0 || s->grace_closing)
        return;
    s->grace_closing = true;
    uv_timer_stop(&s->grace);
    uv_close((uv_handle_t *)&s->grace, srv_on_close);
}

/* What the server's connections call above themselves: HTTP/1 reads their
 * requests, and the server counts them out. */
static const struct node_http_conn_ops srv_conn_ops = {
    .start = node_http__parser_init,
    .read_buf = node_http__body_read_buf,
    .input_direct = node_http__parse_direct,
    .input = node_http__parse,
    .freed = srv_maybe_finish,
};

static void srv_on_grace(uv_timer_t *t)
{
    struct node_http_server *s = t->data;
    struct at_list *e, *next;

    AT_LIST_FOREACH_SAFE (e, next, &s->conns) {
        struct node_http_conn *c =
            AT_LIST_ENTRY(e, struct node_http_conn, link);

        if (c->state != CONN_CLOSED) {
            LOG_DEBUG("conn %s: closed at shutdown", c->peer);
            node_http__conn_close(c);
        }
    }
}

static void srv_init(struct node_http_server *s,
                     uv_loop_t *loop,
                     const struct node_http_config *cfg,
                     node_http_handler handler,
                     void *data)
{
    node_http__recycle_hold();
    s->loop = loop;
    s->cfg = *cfg;
    s->cfg.host = NULL;
    s->cfg.tls_cert = NULL;
    s->cfg.tls_ca = NULL;
    s->cfg.tls_key = NULL;
    if (s->cfg.backlog <= 0)
        s->cfg.backlog = 511;
    if (s->cfg.header_timeout_ms == 0)
        s->cfg.header_timeout_ms = 30000;
    if (s->cfg.idle_timeout_ms == 0)
        s->cfg.idle_timeout_ms = 60000;
    if (s->cfg.body_timeout_ms == 0)
        s->cfg.body_timeout_ms = 60000;
    if (s->cfg.write_timeout_ms == 0)
        s->cfg.write_timeout_ms = 60000;
    if (s->cfg.shutdown_grace_ms == 0)
        s->cfg.shutdown_grace_ms = 10000;
    s->conn_ops = &srv_conn_ops;
    s->handler = handler;
    s->data = data;
    at_list_init(&s->conns);
    uv_timer_init(loop, &s->grace);
    s->grace.data = s;
    s->handles = 1;
}

/* see http.h */
int node_http_start(struct node_http_server **out,
                    uv_loop_t *loop,
                    const struct node_http_config *cfg,
                    node_http_handler handler,
                    void *data,
                    char *errmsg)
{
    struct node_http_server *s;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    const char *host = cfg->host != NULL ? cfg->host : "127.0.0.1";
    int rv;

    if (cfg->port < 0 || cfg->port > 65535) {
        at_errmsg_printf(errmsg, "listen port %d: out of range", cfg->port);
        return AT_EINVAL;
    }
    if (strchr(host, ':') != NULL)
        rv = uv_ip6_addr(host, cfg->port, (struct sockaddr_in6 *)&ss);
    else
        rv = uv_ip4_addr(host, cfg->port, (struct sockaddr_in *)&ss);
    if (rv != 0) {
        at_errmsg_printf(errmsg, "listen address '%s': %s", host,
                         uv_strerror(rv));
        return AT_EINVAL;
    }
    s = at_calloc(1, sizeof(*s));
    srv_init(s, loop, cfg, handler, data);
    rv = srv_open_tls(s, cfg, errmsg);
    if (rv != 0) {
        s->stopping = true;
        s->grace_closing = true;
        uv_close((uv_handle_t *)&s->grace, srv_on_close);
        return rv;
    }
    uv_tcp_init(loop, &s->tcp);
    s->tcp.data = s;
    s->handles++;
    s->listening = true;
    rv = uv_tcp_bind(&s->tcp, (struct sockaddr *)&ss, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&s->tcp, s->cfg.backlog,
                       srv_on_connection);
    if (rv == 0)
        rv = uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&ss, &len);
    if (rv != 0) {
        at_errmsg_printf(errmsg, "listen on '%s' port %d: %s", host, cfg->port,
                         uv_strerror(rv));
        /* The handles close on the next loop turn; s is freed then. */
        s->stopping = true;
        s->grace_closing = true;
        uv_close((uv_handle_t *)&s->tcp, srv_on_close);
        uv_close((uv_handle_t *)&s->grace, srv_on_close);
        srv_close_tls(s);
        return at_err_from_errno(rv);
    }
    /* The probe's client has no certificate for a mutual TLS listener;
     * peer traffic is records in user space either way. */
    if (s->tls != NULL && cfg->tls_ca == NULL)
        srv_log_ktls(s);
    s->port = ss.ss_family == AF_INET6
                  ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                  : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    *out = s;
    return 0;
}

/* see http.h */
void node_http_on_done(struct node_http_server *s,
                       node_http_done_cb cb,
                       void *data)
{
    s->done_cb = cb;
    s->done_data = data;
}

/* see http.h */
int node_http_port(const struct node_http_server *s)
{
    return s->port;
}

/* see http.h */
int node_http_reload_tls(struct node_http_server *s, char *errmsg)
{
    if (s->tls == NULL) {
        at_errmsg_printf(errmsg, "this listener serves plain HTTP");
        return AT_EINVAL;
    }
    return node_http__tls_reload(s->tls, errmsg);
}

/* see http.h */
void node_http_stop(struct node_http_server *s,
                    void (*cb)(void *data),
                    void *data)
{
    struct at_list *e, *next;

    if (s->stopping)
        return;
    s->stopping = true;
    s->stop_cb = cb;
    s->stop_data = data;
    if (s->listening) {
        s->listening = false;
        uv_close((uv_handle_t *)&s->tcp, srv_on_close);
    }
    srv_close_tls(s);
    AT_LIST_FOREACH_SAFE (e, next, &s->conns) {
        struct node_http_conn *c =
            AT_LIST_ENTRY(e, struct node_http_conn, link);

        if (c->state == CONN_IDLE)
            node_http__conn_close(c);
        else if (c->state == CONN_HEAD || node_http__conn_active(c))
            c->flags |= CF_CLOSE_AFTER;
    }
    uv_timer_start(&s->grace, srv_on_grace, s->cfg.shutdown_grace_ms, 0);
    srv_maybe_finish(s);
}

/* ---- test seams ---- */

/* see internal.h */
struct node_http_server *node_http__server_new_mem(
    uv_loop_t *loop,
    const struct node_http_config *cfg,
    node_http_handler handler,
    void *data)
{
    struct node_http_server *s = at_calloc(1, sizeof(*s));

    srv_init(s, loop, cfg, handler, data);
    return s;
}

/* see internal.h */
uint64_t node_http__sendfile_eagains(const struct node_http_server *s)
{
    return s->sendfile_eagain;
}
