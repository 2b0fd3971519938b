/* The connection core: states and their moves, the one timer, reading,
 * writes, closing, over a transport. It calls the layer above it (HTTP/1
 * parsing, in parse.c and body.c) only through the server's struct
 * node_http_conn_ops: to start a connection, for memory to read into, with
 * the bytes read, and once a closed connection is freed. */
#include "common/compat.h"

#define AT_LOG_COMP "http"

#include <unistd.h>

#include "common/common.h"
#include "node/http/internal.h"

/* Happy path of one connection: accept -> IDLE (waiting for a request) ->
 * HEAD (header bytes arriving; llhttp accumulates URL and headers) -> the
 * handler runs from the headers-complete callback: WAIT, the parser stays
 * paused and the transport is not read until the handler asks for the body
 * -> BODY (body delivered through the handler's callbacks) -> COMPLETE.
 * The response side moves on its own: NONE -> SENDING (-> FILE for a file
 * body) -> DONE. Once both are done: IDLE again (keep-alive: pipelined bytes
 * left in the buffer are parsed now) or LINGER (shut the write side down,
 * drain input for a moment, then close) -> CLOSED.
 *
 * An early answer (before the body ended) drains a small rest (DRAIN) or
 * stops reading and closes after the response (STOP).
 *
 * Failure modes: malformed header block -> 400 (414, 431 for our limits)
 * with Connection: close; EOF, transport error, timeout, malformed body
 * while a handler owns the request -> abort callback, then close. llhttp is
 * never re-entered from its own callbacks: they only record state, and the
 * outer loop in node_http__parse() (parse.c) decides whether to resume. */

static const char *const conn_state_names[] = {
    [CONN_IDLE] = "idle",     [CONN_HEAD] = "head",
    [CONN_WAIT] = "wait",     [CONN_BODY] = "body",
    [CONN_DRAIN] = "drain",   [CONN_COMPLETE] = "complete",
    [CONN_STOP] = "stop",     [CONN_LINGER] = "linger",
    [CONN_CLOSED] = "closed",
};

#define TO(s) (1u << (s))

/* Allowed transitions: bit `to` set in allowed[from]. */
static const unsigned conn_allowed[] = {
    [CONN_IDLE] = TO(CONN_HEAD) | TO(CONN_STOP) | TO(CONN_CLOSED),
    [CONN_HEAD] = TO(CONN_WAIT) | TO(CONN_STOP) | TO(CONN_CLOSED),
    [CONN_WAIT] =
        TO(CONN_BODY) | TO(CONN_DRAIN) | TO(CONN_STOP) | TO(CONN_CLOSED),
    [CONN_BODY] =
        TO(CONN_DRAIN) | TO(CONN_COMPLETE) | TO(CONN_STOP) | TO(CONN_CLOSED),
    [CONN_DRAIN] =
        TO(CONN_COMPLETE) | TO(CONN_STOP) | TO(CONN_LINGER) | TO(CONN_CLOSED),
    [CONN_COMPLETE] =
        TO(CONN_IDLE) | TO(CONN_STOP) | TO(CONN_LINGER) | TO(CONN_CLOSED),
    [CONN_STOP] = TO(CONN_LINGER) | TO(CONN_CLOSED),
    [CONN_LINGER] = TO(CONN_CLOSED),
    [CONN_CLOSED] = 0,
};

static const char *const resp_state_names[] = {
    [RESP_NONE] = "none",       [RESP_SENDING] = "sending",
    [RESP_FILE] = "file",       [RESP_STALLED] = "stalled",
    [RESP_UPGRADE] = "upgrade", [RESP_PUSH] = "push",
    [RESP_DONE] = "done",
};

static const unsigned resp_allowed[] = {
    [RESP_NONE] = TO(RESP_SENDING) | TO(RESP_UPGRADE) | TO(RESP_PUSH),
    [RESP_SENDING] = TO(RESP_FILE) | TO(RESP_DONE),
    [RESP_FILE] = TO(RESP_STALLED) | TO(RESP_DONE),
    [RESP_STALLED] = TO(RESP_FILE),
    [RESP_UPGRADE] = TO(RESP_DONE),
    [RESP_PUSH] = TO(RESP_DONE),
    [RESP_DONE] = TO(RESP_NONE),
};

static void conn_on_timer(uv_timer_t *t);

/* see internal.h */
void node_http__conn_move(struct node_http_conn *c, enum conn_state to)
{
    AT_ASSERT(conn_allowed[c->state] & TO(to));
    LOG_DEBUG("conn %s: %s -> %s", c->peer, conn_state_names[c->state],
              conn_state_names[to]);
    c->state = to;
}

/* see internal.h */
void node_http__resp_move(struct node_http_conn *c, enum resp_state to)
{
    AT_ASSERT(resp_allowed[c->resp] & TO(to));
    /* Traced only off the path every response takes (SENDING, DONE, NONE):
     * each trace costs a level lookup, on the hottest path there is. */
    if (to == RESP_FILE || to == RESP_STALLED || to == RESP_UPGRADE ||
        to == RESP_PUSH)
        LOG_DEBUG("conn %s: response %s -> %s", c->peer,
                  resp_state_names[c->resp], resp_state_names[to]);
    c->resp = to;
}

/* see internal.h */
void node_http__conn_detach_req(struct node_http_conn *c)
{
    struct node_http_req *r = c->req;

    if (r == NULL)
        return;
    c->req = NULL;
    r->conn = NULL;
    node_http_req_unref(r);
}

/* see internal.h */
void node_http__conn_report(struct node_http_conn *c, bool complete)
{
    struct node_http_server *s = c->srv;
    struct node_http_req *r = c->req;
    struct node_http_done d;

    if (r == NULL || s->done_cb == NULL || !r->handler_called || r->reported)
        return;
    r->reported = true;
    d.status = r->resp_started ? r->status : 0;
    d.bytes = complete ? r->body_bytes : 0;
    if (r->file_body && c->file.left <= r->body_bytes)
        d.bytes = r->body_bytes - c->file.left;
    if (c->resp == RESP_PUSH && c->push.left + c->push.queued <= r->body_bytes)
        d.bytes = r->body_bytes - c->push.left - c->push.queued;
    d.micros = (uv_hrtime() - r->start_ns) / 1000;
    d.complete = complete;
    s->done_cb(s->done_data, r, &d);
}

/* see internal.h */
void node_http__conn_abort_req(struct node_http_conn *c)
{
    struct node_http_req *r = c->req;

    if (r == NULL)
        return;
    node_http__conn_report(c, false);
    if (r->handler_called && !r->resp_done && !r->aborted) {
        r->aborted = true;
        if (r->on_abort != NULL)
            r->on_abort(r);
    }
    r->aborted = true;
    node_http__conn_detach_req(c);
}

/* ---- writes ---- */

/* see internal.h */
void node_http__conn_write(struct node_http_conn *c,
                           struct node_http_write *w,
                           node_http_twrite_cb cb)
{
    uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
    int rv = c->t->ops->write(c->t, &w->tw, &b, 1, cb);

    if (rv != 0) {
        LOG_DEBUG("write to %s: %s", c->peer, uv_strerror(rv));
        node_http__write_free(w);
        node_http__conn_close(c);
        return;
    }
    c->last_wq = c->t->ops->write_queue_size(c->t);
}

/* see internal.h */
struct node_http_conn *node_http__write_done(struct node_http_twrite *tw,
                                             int status)
{
    struct node_http_write *w = AT_CONTAINER_OF(tw, struct node_http_write, tw);
    struct node_http_conn *c = w->conn;

    node_http__write_free(w);
    if (c->state == CONN_CLOSED || c->state == CONN_LINGER)
        return NULL;
    if (status < 0) {
        LOG_DEBUG("write to %s: %s", c->peer, uv_strerror(status));
        node_http__conn_close(c);
        return NULL;
    }
    return c;
}

/* ---- timers and reading ---- */

/* see internal.h */
bool node_http__conn_can_parse(const struct node_http_conn *c)
{
    switch (c->state) {
    case CONN_IDLE:
    case CONN_HEAD:
        return true;
    case CONN_BODY:
        return c->req != NULL && !c->req->paused;
    case CONN_DRAIN:
        return c->req != NULL;
    default:
        return false;
    }
}

static bool conn_wants_input(const struct node_http_conn *c)
{
    if (c->state == CONN_LINGER)
        return true;
    return node_http__conn_can_parse(c) && c->in_off == c->in_len;
}

static bool resp_writing(const struct node_http_conn *c)
{
    return c->resp != RESP_NONE && c->resp != RESP_DONE;
}

static enum conn_deadline conn_deadline_want(const struct node_http_conn *c)
{
    switch (c->state) {
    case CONN_IDLE:
        return (c->flags & CF_FIRST_REQUEST) ? DL_HEADER : DL_IDLE;
    case CONN_HEAD:
        return DL_HEADER;
    case CONN_LINGER:
        return DL_LINGER;
    case CONN_CLOSED:
        return DL_NONE;
    default:
        if (resp_writing(c))
            return DL_WRITE;
        if (node_http__conn_can_parse(c))
            return DL_BODY;
        return DL_NONE;
    }
}

/* see internal.h */
void node_http__conn_timer_update(struct node_http_conn *c, bool progress)
{
    enum conn_deadline want = conn_deadline_want(c);
    const struct node_http_config *cfg = &c->srv->cfg;
    uint64_t ms = 0;

    if (c->state == CONN_CLOSED)
        return;
    if (want == c->deadline &&
        !(progress && (want == DL_BODY || want == DL_WRITE)))
        return;
    c->deadline = want;
    switch (want) {
    case DL_NONE:
        uv_timer_stop(&c->timer);
        return;
    case DL_IDLE:
        ms = cfg->idle_timeout_ms;
        break;
    case DL_HEADER:
        ms = cfg->header_timeout_ms;
        break;
    case DL_BODY:
        ms = cfg->body_timeout_ms;
        break;
    case DL_WRITE:
        ms = cfg->write_timeout_ms;
        break;
    case DL_LINGER:
        ms = AT_MIN(LINGER_MS, cfg->write_timeout_ms);
        break;
    }
    uv_timer_start(&c->timer, conn_on_timer, ms, 0);
}

static void conn_on_timer(uv_timer_t *t)
{
    struct node_http_conn *c = t->data;
    size_t q;

    switch (c->deadline) {
    case DL_NONE:
        return;
    case DL_IDLE:
    case DL_HEADER:
        LOG_DEBUG("conn %s: %s timeout", c->peer,
                  c->deadline == DL_IDLE ? "idle" : "header");
        break;
    case DL_BODY:
        LOG_DEBUG("conn %s: body timeout", c->peer);
        break;
    case DL_WRITE:
        /* A large write shows its progress as a shrinking queue. */
        if (c->resp == RESP_SENDING || c->resp == RESP_UPGRADE) {
            q = c->t->ops->write_queue_size(c->t);
            if (q < c->last_wq) {
                c->last_wq = q;
                node_http__conn_timer_update(c, true);
                return;
            }
        }
        LOG_DEBUG("conn %s: write timeout", c->peer);
        break;
    case DL_LINGER:
        break;
    }
    node_http__conn_close(c);
}

static void conn_on_alloc(struct node_http_transport *t,
                          size_t hint,
                          uv_buf_t *buf)
{
    struct node_http_conn *c = t->data;

    AT_UNUSED(hint);
    c->ext = NULL;
    if (c->srv->conn_ops->read_buf(c, buf)) {
        c->ext = buf->base;
        return;
    }
    if (c->in == NULL)
        c->in = at_malloc(INBUF_SIZE);
    if (c->in_off == c->in_len || c->state == CONN_LINGER)
        c->in_off = c->in_len = 0;
    *buf = uv_buf_init(c->in + c->in_len, (unsigned)(INBUF_SIZE - c->in_len));
}

static void conn_on_read(struct node_http_transport *t,
                         ssize_t nread,
                         const uv_buf_t *buf)
{
    struct node_http_conn *c = t->data;

    if (c->state == CONN_CLOSED)
        return;
    if (c->state == CONN_LINGER) {
        c->in_off = c->in_len = 0;
        if (nread < 0)
            node_http__conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    if (nread < 0) {
        /* A request the handler owns and has not answered is aborted; idle
         * and half-read connections are simply closed. */
        if (nread != UV_EOF)
            LOG_DEBUG("read from %s: %s", c->peer, uv_strerror((int)nread));
        node_http__conn_close(c);
        return;
    }
    if (c->ext != NULL && buf->base == c->ext) {
        c->ext = NULL;
        c->srv->conn_ops->input_direct(c, buf->base, (size_t)nread);
        return;
    }
    c->in_len += (size_t)nread;
    if (node_http__conn_active(c))
        node_http__conn_timer_update(c, true);
    c->srv->conn_ops->input(c);
}

/* see internal.h */
void node_http__conn_update_reading(struct node_http_conn *c)
{
    bool want;
    int rv;

    if (c->state == CONN_CLOSED)
        return;
    want = conn_wants_input(c);
    if (want && !(c->flags & CF_READING)) {
        rv = c->t->ops->read_start(c->t, conn_on_alloc, conn_on_read);
        if (rv != 0) {
            LOG_DEBUG("read start %s: %s", c->peer, uv_strerror(rv));
            node_http__conn_close(c);
            return;
        }
        c->flags |= CF_READING;
    } else if (!want && (c->flags & CF_READING)) {
        c->t->ops->read_stop(c->t);
        c->flags &= ~CF_READING;
    }
}

/* ---- closing ---- */

static void conn_free(struct node_http_conn *c)
{
    struct node_http_server *s = c->srv;

    at_list_remove(&c->link);
    s->nconns--;
    at_free(c->in);
    at_free(c);
    s->conn_ops->freed(s);
}

static void conn_on_timer_close(uv_handle_t *h)
{
    struct node_http_conn *c = h->data;

    if (--c->handles == 0)
        conn_free(c);
}

static void conn_on_transport_close(struct node_http_transport *t)
{
    struct node_http_conn *c = t->data;

    c->t = NULL;
    if (--c->handles == 0)
        conn_free(c);
}

/* An upgrade that cannot complete: the handler learns with a NULL stream. */
static void conn_upgrade_fail(struct node_http_conn *c)
{
    node_http_upgrade_cb cb = c->up_cb;

    if (cb == NULL)
        return;
    c->up_cb = NULL;
    cb(c->up_data, NULL);
}

/* see internal.h */
void node_http__conn_close(struct node_http_conn *c)
{
    if (c->state == CONN_CLOSED)
        return;
    node_http__conn_abort_req(c);
    node_http__conn_move(c, CONN_CLOSED);
    c->flags &= ~CF_READING;
    if (c->file.fd >= 0) {
        close(c->file.fd);
        c->file.fd = -1;
    }
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, conn_on_timer_close);
    if (c->t != NULL)
        c->t->ops->close(c->t, conn_on_transport_close);
    conn_upgrade_fail(c);
}

static void conn_on_shutdown(struct node_http_transport *t, int status)
{
    struct node_http_conn *c = t->data;

    if (c->state != CONN_LINGER)
        return;
    if (status < 0)
        node_http__conn_close(c);
}

/* see internal.h */
void node_http__conn_close_graceful(struct node_http_conn *c)
{
    int rv;

    if (c->state == CONN_CLOSED || c->state == CONN_LINGER)
        return;
    node_http__conn_detach_req(c);
    node_http__conn_move(c, CONN_LINGER);
    rv = c->t->ops->shutdown(c->t, conn_on_shutdown);
    if (rv != 0) {
        node_http__conn_close(c);
        return;
    }
    node_http__conn_update_reading(c);
    node_http__conn_timer_update(c, false);
}

/* ---- request completion ---- */

/* see internal.h */
void node_http__conn_request_finish(struct node_http_conn *c)
{
    node_http__conn_detach_req(c);
    if ((c->flags & CF_CLOSE_AFTER) || c->srv->stopping) {
        node_http__conn_close_graceful(c);
        return;
    }
    node_http__conn_move(c, CONN_IDLE);
    node_http__resp_move(c, RESP_NONE);
    c->flags &= ~(CF_FIRST_REQUEST | CF_CONTINUE_SENT);
    c->reader = &node_http__body_none;
    c->err_status = 0;
    node_http__conn_timer_update(c, false);
}

/* see internal.h */
void node_http__conn_resp_done(struct node_http_conn *c)
{
    node_http__resp_move(c, RESP_DONE);
    if (c->req != NULL)
        c->req->resp_done = true;
    node_http__conn_report(c, true);
    if ((c->flags & CF_CLOSE_AFTER) || c->srv->stopping) {
        node_http__conn_close_graceful(c);
        return;
    }
    if (c->state == CONN_COMPLETE)
        node_http__conn_request_finish(c);
    c->srv->conn_ops->input(c); /* a pipelined request may wait */
}

/* see internal.h */
struct node_http_conn *node_http__conn_new(struct node_http_server *s,
                                           struct node_http_transport *t)
{
    struct node_http_conn *c = at_calloc(1, sizeof(*c));

    c->srv = s;
    c->t = t;
    t->data = c;
    c->file.fd = -1;
    c->state = CONN_IDLE;
    c->resp = RESP_NONE;
    c->deadline = DL_NONE;
    c->flags = CF_FIRST_REQUEST;
    c->reader = &node_http__body_none;
    s->conn_ops->start(c);
    uv_timer_init(s->loop, &c->timer);
    c->timer.data = c;
    c->handles = 2;
    at_list_push_back(&s->conns, &c->link);
    s->nconns++;
    t->ops->peer(t, c->peer, sizeof(c->peer));
    node_http__conn_timer_update(c, false);
    node_http__conn_update_reading(c);
    return c;
}

/* ---- test seams ---- */

/* see internal.h */
struct node_http_conn *node_http__conn_new_mem(struct node_http_server *s,
                                               struct at_buf *out)
{
    return node_http__conn_new(s, node_http__mem_new(s->loop, out));
}

/* see internal.h */
size_t node_http__conn_feed(struct node_http_conn *c, const char *p, size_t n)
{
    if (c->state == CONN_CLOSED)
        return 0;
    return node_http__mem_feed(c->t, p, n);
}

/* see internal.h */
int node_http__conn_flush(struct node_http_conn *c)
{
    if (c->state == CONN_CLOSED)
        return 0;
    return node_http__mem_flush(c->t);
}

/* see internal.h */
void node_http__conn_eof(struct node_http_conn *c)
{
    if (c->state != CONN_CLOSED)
        node_http__mem_eof(c->t);
}

/* see internal.h */
bool node_http__conn_closed(const struct node_http_conn *c)
{
    return c->state == CONN_CLOSED;
}
