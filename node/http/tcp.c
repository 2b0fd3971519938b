/* The TCP transport: a libuv stream, plus sendfile(2) and a writability poll
 * for file bodies.
 *
 * sendfile writes past libuv's write queue, so the connection uses it only
 * with nothing queued. When the socket is full, a uv_poll_t waits for room:
 * on a dup() of the socket, because one epoll set cannot hold the same fd
 * twice and libuv already watches the socket itself. Closing closes the
 * stream (libuv fails queued writes with UV_ECANCELED first) and the poll;
 * the close callback runs when both are gone. */
#include "common/compat.h"

#define AT_LOG_COMP "http"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/common.h"
#include "node/http/transport.h"

struct tcp {
    struct node_http_transport base;
    uv_tcp_t *tcp; /* owned, own allocation so that detach can hand it out */
    uv_poll_t poll;
    int dup_fd; /* owned, -1 */
    bool poll_init, reading, closing;
    int handles; /* open uv handles */
    uv_shutdown_t shutdown;
    node_http_alloc_cb alloc_cb;
    node_http_read_cb read_cb;
    node_http_tstatus_cb shutdown_cb;
    node_http_tstatus_cb writable_cb;
    node_http_tclose_cb close_cb;
};

static struct tcp *tcp_of(struct node_http_transport *t)
{
    return AT_CONTAINER_OF(t, struct tcp, base);
}

static void tcp_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct tcp *t = h->data;

    t->alloc_cb(&t->base, hint, buf);
}

static void tcp_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct tcp *t = s->data;

    if (nread < 0) {
        /* libuv stopped reading */
        t->reading = false;
    }
    t->read_cb(&t->base, nread, buf);
}

static int tcp_read_start(struct node_http_transport *base,
                          node_http_alloc_cb alloc_cb,
                          node_http_read_cb read_cb)
{
    struct tcp *t = tcp_of(base);
    int rv;

    t->alloc_cb = alloc_cb;
    t->read_cb = read_cb;
    if (t->reading)
        return 0;
    rv = uv_read_start((uv_stream_t *)t->tcp, tcp_on_alloc, tcp_on_read);
    if (rv == 0)
        t->reading = true;
    return rv;
}

static void tcp_read_stop(struct node_http_transport *base)
{
    struct tcp *t = tcp_of(base);

    if (!t->reading)
        return;
    uv_read_stop((uv_stream_t *)t->tcp);
    t->reading = false;
}

static void tcp_on_write(uv_write_t *req, int status)
{
    struct node_http_twrite *w =
        AT_CONTAINER_OF(req, struct node_http_twrite, u.uv);

    w->cb(w, status);
}

static int tcp_write(struct node_http_transport *base,
                     struct node_http_twrite *w,
                     const uv_buf_t *bufs,
                     unsigned nbufs,
                     node_http_twrite_cb cb)
{
    struct tcp *t = tcp_of(base);

    w->t = base;
    w->cb = cb;
    return uv_write(&w->u.uv, (uv_stream_t *)t->tcp, bufs, nbufs, tcp_on_write);
}

static size_t tcp_write_queue_size(const struct node_http_transport *base)
{
    const struct tcp *t = AT_CONTAINER_OF(base, const struct tcp, base);

    return uv_stream_get_write_queue_size((const uv_stream_t *)t->tcp);
}

static ssize_t tcp_sendfile(struct node_http_transport *base,
                            int fd,
                            uint64_t off,
                            size_t len)
{
    struct tcp *t = tcp_of(base);
    uv_os_fd_t sock;
    off_t o = (off_t)off;
    ssize_t n;

    if (uv_fileno((uv_handle_t *)t->tcp, &sock) != 0)
        return UV_EBADF;
    do {
        n = sendfile(sock, fd, &o, len);
    } while (n < 0 && errno == EINTR);
    if (n >= 0)
        return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return UV_EAGAIN;
    return -errno;
}

static void tcp_on_poll(uv_poll_t *h, int status, int events)
{
    struct tcp *t = h->data;
    node_http_tstatus_cb cb = t->writable_cb;

    AT_UNUSED(events);
    uv_poll_stop(&t->poll);
    t->writable_cb = NULL;
    if (cb != NULL && !t->closing)
        cb(&t->base, status);
}

static int tcp_wait_writable(struct node_http_transport *base,
                             node_http_tstatus_cb cb)
{
    struct tcp *t = tcp_of(base);
    uv_os_fd_t sock;
    int rv;

    if (!t->poll_init) {
        rv = uv_fileno((uv_handle_t *)t->tcp, &sock);
        if (rv != 0)
            return rv;
        t->dup_fd = fcntl(sock, F_DUPFD_CLOEXEC, 0);
        if (t->dup_fd < 0)
            return -errno;
        rv = uv_poll_init(t->tcp->loop, &t->poll, t->dup_fd);
        if (rv != 0) {
            close(t->dup_fd);
            t->dup_fd = -1;
            return rv;
        }
        t->poll.data = t;
        t->poll_init = true;
        t->handles++;
    }
    rv = uv_poll_start(&t->poll, UV_WRITABLE, tcp_on_poll);
    if (rv == 0)
        t->writable_cb = cb;
    return rv;
}

static void tcp_on_shutdown(uv_shutdown_t *req, int status)
{
    struct tcp *t = req->data;
    node_http_tstatus_cb cb = t->shutdown_cb;

    t->shutdown_cb = NULL;
    if (cb != NULL && !t->closing)
        cb(&t->base, status);
}

static int tcp_shutdown(struct node_http_transport *base,
                        node_http_tstatus_cb cb)
{
    struct tcp *t = tcp_of(base);
    int rv;

    t->shutdown.data = t;
    rv = uv_shutdown(&t->shutdown, (uv_stream_t *)t->tcp, tcp_on_shutdown);
    if (rv == 0)
        t->shutdown_cb = cb;
    return rv;
}

/* The last handle is closed: the transport goes (after telling its owner,
 * unless it was detached). */
static void tcp_on_close(uv_handle_t *h)
{
    struct tcp *t = h->data;
    node_http_tclose_cb cb = t->close_cb;

    if (h != (uv_handle_t *)&t->poll) {
        at_free(h);
        t->tcp = NULL;
    }
    if (--t->handles > 0)
        return;
    if (cb != NULL)
        cb(&t->base);
    at_free(t);
}

static void tcp_close_poll(struct tcp *t)
{
    if (t->poll_init) {
        uv_close((uv_handle_t *)&t->poll, tcp_on_close);
        t->poll_init = false;
    }
    if (t->dup_fd >= 0) {
        close(t->dup_fd);
        t->dup_fd = -1;
    }
}

static void tcp_close(struct node_http_transport *base, node_http_tclose_cb cb)
{
    struct tcp *t = tcp_of(base);

    AT_ASSERT(!t->closing);
    t->closing = true;
    t->reading = false;
    t->close_cb = cb;
    tcp_close_poll(t);
    uv_close((uv_handle_t *)t->tcp, tcp_on_close);
}

static void tcp_peer(const struct node_http_transport *base,
                     char *buf,
                     size_t n)
{
    const struct tcp *t = AT_CONTAINER_OF(base, const struct tcp, base);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "?";

    snprintf(buf, n, "?");
    if (uv_tcp_getpeername(t->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, sizeof(ip));
        snprintf(buf, n, "%s:%d", ip, ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, ip, sizeof(ip));
        snprintf(buf, n, "[%s]:%d", ip, ntohs(a->sin6_port));
    }
}

static uv_stream_t *tcp_detach(struct node_http_transport *base)
{
    struct tcp *t = tcp_of(base);
    uv_tcp_t *tcp = t->tcp;

    AT_ASSERT(!t->closing && !t->reading);
    AT_ASSERT(uv_stream_get_write_queue_size((uv_stream_t *)tcp) == 0);
    t->tcp = NULL;
    t->handles--;
    tcp->data = NULL;
    /* What is left (a poll from an earlier file body) closes without
     * telling anyone; with nothing left the transport goes now. */
    t->closing = true;
    t->close_cb = NULL;
    if (t->handles == 0) {
        at_free(t);
        return (uv_stream_t *)tcp;
    }
    tcp_close_poll(t);
    return (uv_stream_t *)tcp;
}

static const struct node_http_transport_ops tcp_ops = {
    .name = "tcp",
    .read_start = tcp_read_start,
    .read_stop = tcp_read_stop,
    .write = tcp_write,
    .write_queue_size = tcp_write_queue_size,
    .sendfile = tcp_sendfile,
    .wait_writable = tcp_wait_writable,
    .shutdown = tcp_shutdown,
    .close = tcp_close,
    .peer = tcp_peer,
    .detach = tcp_detach,
};

static void tcp_on_accept_fail(uv_handle_t *h)
{
    struct tcp *t = h->data;

    at_free(h);
    at_free(t);
}

/* see transport.h */
int node_http__tcp_accept(uv_stream_t *listener,
                          struct node_http_transport **out)
{
    struct tcp *t = at_calloc(1, sizeof(*t));
    int rv;

    t->base.ops = &tcp_ops;
    t->dup_fd = -1;
    t->tcp = at_malloc(sizeof(*t->tcp));
    uv_tcp_init(listener->loop, t->tcp);
    t->tcp->data = t;
    t->handles = 1;
    rv = uv_accept(listener, (uv_stream_t *)t->tcp);
    if (rv != 0) {
        uv_close((uv_handle_t *)t->tcp, tcp_on_accept_fail);
        return rv;
    }
    uv_tcp_nodelay(t->tcp, 1);
    *out = &t->base;
    return 0;
}

/* see transport.h */
int node_http__tcp_adopt(uv_tcp_t *tcp, struct node_http_transport **out)
{
    struct tcp *t = at_calloc(1, sizeof(*t));

    t->base.ops = &tcp_ops;
    t->dup_fd = -1;
    t->tcp = tcp;
    t->tcp->data = t;
    t->handles = 1;
    uv_tcp_nodelay(t->tcp, 1);
    *out = &t->base;
    return 0;
}
