/* The in-memory transport: a connection without a socket, for tests and
 * fuzzing. The test feeds input and completes writes by hand; output is
 * appended to a buffer as it is written. Closing goes through the loop like
 * a socket's (a handle's close callback), so the connection's code runs in
 * the same order as over TCP. It has no sendfile: file bodies come through
 * ordinary writes. */
#include "common/compat.h"

#define AT_LOG_COMP "http"

#include "common/common.h"
#include "node/http/transport.h"

struct mem {
    struct node_http_transport base;
    uv_idle_t closer;     /* never started: its close is the async step */
    struct at_buf *out;   /* borrowed */
    struct at_list queue; /* node_http_twrite.u.link, oldest first */
    node_http_alloc_cb alloc_cb;
    node_http_read_cb read_cb;
    node_http_tstatus_cb shutdown_cb;
    node_http_tclose_cb close_cb;
    bool reading, shut, closing;
};

static const struct node_http_transport_ops mem_ops;

static struct mem *mem_of(struct node_http_transport *t)
{
    AT_ASSERT(t->ops == &mem_ops);
    return AT_CONTAINER_OF(t, struct mem, base);
}

static int mem_read_start(struct node_http_transport *base,
                          node_http_alloc_cb alloc_cb,
                          node_http_read_cb read_cb)
{
    struct mem *m = mem_of(base);

    m->alloc_cb = alloc_cb;
    m->read_cb = read_cb;
    m->reading = true;
    return 0;
}

static void mem_read_stop(struct node_http_transport *base)
{
    mem_of(base)->reading = false;
}

static int mem_write(struct node_http_transport *base,
                     struct node_http_twrite *w,
                     const uv_buf_t *bufs,
                     unsigned nbufs,
                     node_http_twrite_cb cb)
{
    struct mem *m = mem_of(base);

    if (m->shut || m->closing)
        return UV_EPIPE;
    for (unsigned i = 0; i < nbufs; i++) {
        if (at_buf_append(m->out, bufs[i].base, bufs[i].len) != 0)
            at_buf_reset(m->out); /* a test's bound: keep the newest */
    }
    w->t = base;
    w->cb = cb;
    at_list_push_back(&m->queue, &w->u.link);
    return 0;
}

static size_t mem_write_queue_size(const struct node_http_transport *base)
{
    AT_UNUSED(base);
    return 0; /* written at once: nothing to show progress with */
}

static int mem_shutdown(struct node_http_transport *base,
                        node_http_tstatus_cb cb)
{
    struct mem *m = mem_of(base);

    if (m->shut || m->closing)
        return UV_ENOTCONN;
    m->shut = true;
    m->shutdown_cb = cb;
    return 0;
}

static void mem_on_close(uv_handle_t *h)
{
    struct mem *m = h->data;
    struct at_list *e;

    while ((e = at_list_pop_front(&m->queue)) != NULL) {
        struct node_http_twrite *w =
            AT_LIST_ENTRY(e, struct node_http_twrite, u.link);
        w->cb(w, UV_ECANCELED);
    }
    if (m->close_cb != NULL)
        m->close_cb(&m->base);
    at_free(m);
}

static void mem_close(struct node_http_transport *base, node_http_tclose_cb cb)
{
    struct mem *m = mem_of(base);

    AT_ASSERT(!m->closing);
    m->closing = true;
    m->reading = false;
    m->shutdown_cb = NULL;
    m->close_cb = cb;
    uv_close((uv_handle_t *)&m->closer, mem_on_close);
}

static void mem_peer(const struct node_http_transport *base,
                     char *buf,
                     size_t n)
{
    AT_UNUSED(base);
    snprintf(buf, n, "mem");
}

static uv_stream_t *mem_detach(struct node_http_transport *base)
{
    AT_UNUSED(base);
    return NULL; /* no socket to hand over */
}

static const struct node_http_transport_ops mem_ops = {
    .name = "mem",
    .read_start = mem_read_start,
    .read_stop = mem_read_stop,
    .write = mem_write,
    .write_queue_size = mem_write_queue_size,
    .sendfile = NULL,
    .wait_writable = NULL,
    .shutdown = mem_shutdown,
    .close = mem_close,
    .peer = mem_peer,
    .detach = mem_detach,
};

/* see transport.h */
struct node_http_transport *node_http__mem_new(uv_loop_t *loop,
                                               struct at_buf *out)
{
    struct mem *m = at_calloc(1, sizeof(*m));

    m->base.ops = &mem_ops;
    m->out = out;
    at_list_init(&m->queue);
    uv_idle_init(loop, &m->closer);
    m->closer.data = m;
    return &m->base;
}

/* see transport.h */
bool node_http__is_mem(const struct node_http_transport *t)
{
    return t->ops == &mem_ops;
}

/* see transport.h */
size_t node_http__mem_feed(struct node_http_transport *t,
                           const char *p,
                           size_t n)
{
    struct mem *m = mem_of(t);
    uv_buf_t buf = uv_buf_init(NULL, 0);
    size_t k;

    if (!m->reading || m->closing || n == 0)
        return 0;
    m->alloc_cb(t, n, &buf);
    k = AT_MIN(n, (size_t)buf.len);
    if (k == 0)
        return 0;
    memcpy(buf.base, p, k);
    m->read_cb(t, (ssize_t)k, &buf);
    return k;
}

/* see transport.h */
int node_http__mem_flush(struct node_http_transport *t)
{
    struct mem *m = mem_of(t);
    struct at_list *e;
    int n = 0;

    while (!m->closing && (e = at_list_pop_front(&m->queue)) != NULL) {
        struct node_http_twrite *w =
            AT_LIST_ENTRY(e, struct node_http_twrite, u.link);
        w->cb(w, 0);
        n++;
    }
    if (!m->closing && m->shutdown_cb != NULL) {
        node_http_tstatus_cb cb = m->shutdown_cb;

        m->shutdown_cb = NULL;
        cb(t, 0);
    }
    return n;
}

/* see transport.h */
void node_http__mem_eof(struct node_http_transport *t)
{
    struct mem *m = mem_of(t);
    uv_buf_t buf = uv_buf_init(NULL, 0);

    if (m->closing || m->read_cb == NULL)
        return;
    m->reading = false;
    m->read_cb(t, UV_EOF, &buf);
}
