/* The pump: a libuv stream for a transport that is not one. libraft and
 * the upload relay want a uv_stream_t; a TLS connection in user space (no
 * kernel TLS here) is a transport. The owner gets one end of a socket pair
 * (AF_UNIX), and the pump moves bytes between the other end and the
 * transport: plaintext on the pair, records on the wire.
 *
 * Life: attached (an upgraded TLS connection) or dialing (TCP connect, then
 * a TLS client handshake; the owner may write at once, its bytes wait in
 * the pair until the handshake is done) -> pumping -> closed. Each way has
 * a bound: while PUMP_HIGH bytes wait to go out on one side, the other side
 * is not read (resumed below PUMP_LOW), so a slow peer or a slow owner
 * holds at most a few MiB here. Ends: the transport's end of input ->
 * what it sent is handed to the pair, then both close (the owner reads the
 * bytes, then EOF: a socket pair keeps what was written); the owner's end
 * (it closed its stream) -> the transport shuts down after its queued
 * writes (close_notify), then both close; an error either way closes both.
 * The pump frees itself once every handle is closed. */
#include "common/compat.h"

#define AT_LOG_COMP "http"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/common.h"
#include "node/http/internal.h"
#include "node/http/transport.h"

#define PUMP_CHUNK (64 * 1024)
#define PUMP_HIGH  (1024 * 1024)
#define PUMP_LOW   (PUMP_HIGH / 2)
/* A dial's TCP connect and TLS handshake together: the owner's own
 * timeout closes its end sooner, but the pump only reads that end once the
 * handshake is done, and a connect to a silent host lasts minutes. */
#define PUMP_DIAL_MS 10000

struct pchunk {
    union {
        uv_write_t uv;              /* to the pair */
        struct node_http_twrite tw; /* to the transport */
    } w;
    struct node_http_pump *p; /* borrowed */
    size_t len;
    char data[PUMP_CHUNK];
};

struct node_http_pump {
    uv_loop_t *loop;               /* borrowed */
    uv_pipe_t pipe;                /* our end of the pair */
    struct node_http_transport *t; /* owned once attached */
    uv_tcp_t *tcp;                 /* owned while dialing */
    void *ssl;                     /* owned while dialing (SSL *) */
    uv_connect_t conn;
    uv_timer_t timer;     /* the dial's deadline */
    size_t to_pipe, to_t; /* bytes written each way, not yet through */
    bool t_ready;         /* t takes writes (its handshake is done) */
    bool pipe_reading, t_reading;
    bool t_end;    /* t's input ended: close once to_pipe is through */
    bool pipe_end; /* the owner's end went: t shuts down, then close */
    bool closing;
    int refs; /* the pipe, the timer, t or the dialing tcp */
    char peer[64];
};

static void pump_update(struct node_http_pump *p);

static void pump_unref(struct node_http_pump *p)
{
    if (--p->refs > 0)
        return;
    node_http__tls_session_free(p->ssl);
    at_free(p);
}

static void on_handle_closed(uv_handle_t *h)
{
    pump_unref(h->data);
}

static void on_t_closed(struct node_http_transport *t)
{
    pump_unref(t->data);
}

static void on_dial_tcp_closed(uv_handle_t *h)
{
    struct node_http_pump *p = h->data;

    at_free(h);
    pump_unref(p);
}

static void pump_close(struct node_http_pump *p)
{
    if (p->closing)
        return;
    p->closing = true;
    uv_close((uv_handle_t *)&p->pipe, on_handle_closed);
    uv_close((uv_handle_t *)&p->timer, on_handle_closed);
    if (p->t != NULL)
        p->t->ops->close(p->t, on_t_closed);
    if (p->tcp != NULL) {
        uv_close((uv_handle_t *)p->tcp, on_dial_tcp_closed);
        p->tcp = NULL;
    }
}

/* ---- transport -> pair ---- */

static void t_alloc(struct node_http_transport *t, size_t hint, uv_buf_t *buf)
{
    struct pchunk *c = at_malloc(sizeof(*c));

    AT_UNUSED(t);
    AT_UNUSED(hint);
    c->len = 0;
    *buf = uv_buf_init(c->data, PUMP_CHUNK);
}

static struct pchunk *chunk_of(const uv_buf_t *buf)
{
    return AT_CONTAINER_OF(buf->base, struct pchunk, data);
}

static void on_pipe_written(uv_write_t *w, int status)
{
    struct pchunk *c = AT_CONTAINER_OF(w, struct pchunk, w.uv);
    struct node_http_pump *p = c->p;

    p->to_pipe -= c->len;
    at_free(c);
    if (p->closing)
        return;
    if (status < 0) {
        LOG_DEBUG("pump %s: to the local end: %s", p->peer,
                  uv_strerror(status));
        pump_close(p);
        return;
    }
    pump_update(p);
}

static void t_read(struct node_http_transport *t,
                   ssize_t nread,
                   const uv_buf_t *buf)
{
    struct node_http_pump *p = t->data;
    struct pchunk *c = buf->base != NULL ? chunk_of(buf) : NULL;
    uv_buf_t b;
    int rv;

    if (nread <= 0 || p->closing) {
        at_free(c);
        if (nread < 0 && !p->closing) {
            p->t_reading = false;
            p->t_end = true;
            if (nread != UV_EOF)
                LOG_DEBUG("pump %s: %s", p->peer, uv_strerror((int)nread));
            pump_update(p);
        }
        return;
    }
    c->p = p;
    c->len = (size_t)nread;
    b = uv_buf_init(c->data, (unsigned)nread);
    rv = uv_write(&c->w.uv, (uv_stream_t *)&p->pipe, &b, 1, on_pipe_written);
    if (rv != 0) {
        at_free(c);
        pump_close(p);
        return;
    }
    p->to_pipe += (size_t)nread;
    pump_update(p);
}

/* ---- pair -> transport ---- */

static void pipe_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    AT_UNUSED(h);
    AT_UNUSED(hint);
    t_alloc(NULL, 0, buf);
}

static void on_t_written(struct node_http_twrite *w, int status)
{
    struct pchunk *c = AT_CONTAINER_OF(w, struct pchunk, w.tw);
    struct node_http_pump *p = c->p;

    p->to_t -= c->len;
    at_free(c);
    if (p->closing)
        return;
    if (status < 0) {
        LOG_DEBUG("pump %s: to the peer: %s", p->peer, uv_strerror(status));
        pump_close(p);
        return;
    }
    pump_update(p);
}

static void on_t_shut(struct node_http_transport *t, int status)
{
    AT_UNUSED(status);
    pump_close(t->data);
}

static void pipe_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct node_http_pump *p = s->data;
    struct pchunk *c = buf->base != NULL ? chunk_of(buf) : NULL;
    uv_buf_t b;
    int rv;

    if (nread <= 0 || p->closing) {
        at_free(c);
        if (nread < 0 && !p->closing) {
            /* The owner closed its stream: nothing more comes from it. */
            uv_read_stop(s);
            p->pipe_reading = false;
            p->pipe_end = true;
            if (p->t == NULL || !p->t_ready ||
                p->t->ops->shutdown(p->t, on_t_shut) != 0)
                pump_close(p);
        }
        return;
    }
    c->p = p;
    c->len = (size_t)nread;
    b = uv_buf_init(c->data, (unsigned)nread);
    rv = p->t->ops->write(p->t, &c->w.tw, &b, 1, on_t_written);
    if (rv != 0) {
        at_free(c);
        pump_close(p);
        return;
    }
    p->to_t += (size_t)nread;
    pump_update(p);
}

/* Read each side while the other side's queue has room. */
static void pump_update(struct node_http_pump *p)
{
    bool want_t, want_pipe;

    if (p->closing)
        return;
    if (p->t_end && p->to_pipe == 0) {
        pump_close(p);
        return;
    }
    if (p->t == NULL)
        return;
    want_t = !p->t_end &&
             (p->t_reading ? p->to_pipe < PUMP_HIGH : p->to_pipe < PUMP_LOW);
    want_pipe = p->t_ready && !p->pipe_end &&
                (p->pipe_reading ? p->to_t < PUMP_HIGH : p->to_t < PUMP_LOW);
    if (want_t != p->t_reading) {
        if (want_t && p->t->ops->read_start(p->t, t_alloc, t_read) != 0) {
            pump_close(p);
            return;
        }
        if (!want_t)
            p->t->ops->read_stop(p->t);
        p->t_reading = want_t;
    }
    if (want_pipe != p->pipe_reading) {
        if (want_pipe && uv_read_start((uv_stream_t *)&p->pipe, pipe_alloc,
                                       pipe_read) != 0) {
            pump_close(p);
            return;
        }
        if (!want_pipe)
            uv_read_stop((uv_stream_t *)&p->pipe);
        p->pipe_reading = want_pipe;
    }
}

static void on_t_ready(struct node_http_transport *t, int status)
{
    struct node_http_pump *p = t->data;

    if (p->closing)
        return;
    if (status < 0) {
        pump_close(p);
        return;
    }
    p->t_ready = true;
    uv_timer_stop(&p->timer);
    pump_update(p);
}

static void pump_attach(struct node_http_pump *p, struct node_http_transport *t)
{
    p->t = t;
    t->data = p;
    p->refs++;
    /* TLS: ready once its handshake is done; the input read meanwhile
     * drives the handshake. */
    if (t->ops->wait_writable == NULL ||
        t->ops->wait_writable(t, on_t_ready) != 0)
        p->t_ready = true;
    pump_update(p);
}

static void on_end_closed(uv_handle_t *h)
{
    at_free(h);
}

/* The pair, p->pipe opened on one end, *end on the other. */
static int pump_alloc(uv_loop_t *loop,
                      const char *peer,
                      struct node_http_pump **out,
                      uv_stream_t **end)
{
    uv_os_sock_t fds[2];
    struct node_http_pump *p;
    uv_pipe_t *e;
    int rv;

    rv = uv_socketpair(SOCK_STREAM, 0, fds, 0, 0);
    if (rv != 0)
        return rv;
    p = at_calloc(1, sizeof(*p));
    e = at_malloc(sizeof(*e));
    p->loop = loop;
    snprintf(p->peer, sizeof(p->peer), "%s", peer);
    uv_pipe_init(loop, &p->pipe, 0);
    uv_pipe_init(loop, e, 0);
    p->pipe.data = p;
    e->data = NULL;
    uv_timer_init(loop, &p->timer);
    p->timer.data = p;
    p->refs = 2;
    /* uv_pipe_open makes both ends non-blocking. */
    if (uv_pipe_open(&p->pipe, fds[0]) != 0 || uv_pipe_open(e, fds[1]) != 0) {
        close(fds[0]);
        close(fds[1]);
        /* Never opened: the handles close at once. */
        p->closing = true;
        uv_close((uv_handle_t *)&p->pipe, on_handle_closed);
        uv_close((uv_handle_t *)&p->timer, on_handle_closed);
        uv_close((uv_handle_t *)e, on_end_closed);
        return UV_EIO;
    }
    *out = p;
    *end = (uv_stream_t *)e;
    return 0;
}

/* see transport.h */
int node_http__pump_new(uv_loop_t *loop,
                        struct node_http_transport *t,
                        const char *peer,
                        uv_stream_t **end)
{
    struct node_http_pump *p;
    int rv = pump_alloc(loop, peer, &p, end);

    if (rv != 0)
        return rv;
    pump_attach(p, t);
    return 0;
}

/* ---- dialing ---- */

static void on_dial_timeout(uv_timer_t *h)
{
    struct node_http_pump *p = h->data;

    LOG_DEBUG("pump %s: no TLS connection after %d ms", p->peer, PUMP_DIAL_MS);
    pump_close(p);
}

static void on_dial_connected(uv_connect_t *req, int status)
{
    struct node_http_pump *p = req->data;
    struct node_http_transport *tcp, *t;
    void *ssl;

    if (p->closing)
        return; /* the owner went first; the tcp handle closes */
    if (status < 0) {
        LOG_DEBUG("pump %s: connect: %s", p->peer, uv_strerror(status));
        pump_close(p);
        return;
    }
    node_http__tcp_adopt(p->tcp, &tcp);
    p->tcp = NULL;
    p->refs--; /* the transport's ref replaces the tcp's (attach) */
    ssl = p->ssl;
    p->ssl = NULL;
    if (node_http__tls_connect(ssl, p->loop, tcp, &t) != 0) {
        pump_close(p);
        return;
    }
    pump_attach(p, t);
}

/* see http.h */
int node_http_dial_tls(struct node_http_server *s,
                       const struct sockaddr *sa,
                       const struct sockaddr *bind,
                       const char *host,
                       uv_stream_t **out)
{
    struct node_http_pump *p;
    char peer[64] = "?";
    void *ssl;
    int rv;

    if (s == NULL || s->tls == NULL)
        return UV_EINVAL;
    ssl = node_http__tls_session_new(s->tls, host);
    if (ssl == NULL)
        return UV_EINVAL;
    if (sa->sa_family == AF_INET6) {
        char ip[INET6_ADDRSTRLEN] = "?";
        uv_ip6_name((const struct sockaddr_in6 *)sa, ip, sizeof(ip));
        snprintf(peer, sizeof(peer), "[%s]:%d", ip,
                 ntohs(((const struct sockaddr_in6 *)sa)->sin6_port));
    } else if (sa->sa_family == AF_INET) {
        char ip[INET_ADDRSTRLEN] = "?";
        uv_ip4_name((const struct sockaddr_in *)sa, ip, sizeof(ip));
        snprintf(peer, sizeof(peer), "%s:%d", ip,
                 ntohs(((const struct sockaddr_in *)sa)->sin_port));
    }
    rv = pump_alloc(s->loop, peer, &p, out);
    if (rv != 0) {
        node_http__tls_session_free(ssl);
        return rv;
    }
    p->ssl = ssl;
    p->tcp = at_malloc(sizeof(*p->tcp));
    uv_tcp_init_ex(s->loop, p->tcp, sa->sa_family);
    {
        /* as raft/transport.c's dials: fail a connection whose data stays
         * unacknowledged this long (a partitioned peer) instead of
         * retransmitting for minutes, so that raft dials again */
        uv_os_fd_t fd;
        unsigned ms = 10000;
        if (uv_fileno((uv_handle_t *)p->tcp, &fd) == 0)
            (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms,
                             sizeof(ms));
    }
    p->tcp->data = p;
    p->refs++;
    p->conn.data = p;
    uv_timer_start(&p->timer, on_dial_timeout, PUMP_DIAL_MS, 0);
    rv = bind != NULL ? uv_tcp_bind(p->tcp, bind, 0) : 0;
    if (rv == 0)
        rv = uv_tcp_connect(&p->conn, p->tcp, sa, on_dial_connected);
    if (rv != 0) {
        /* The owner reads EOF at once; its stream is still its own. */
        LOG_DEBUG("pump %s: connect: %s", peer, uv_strerror(rv));
        pump_close(p);
    }
    return 0;
}
