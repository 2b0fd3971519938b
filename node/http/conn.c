/* HTTP connections: state, timers, reading, writes, closing. */
#include "common/compat.h"

#define AT_LOG_COMP "http"

#include <unistd.h>

#include "common/common.h"
#include "node/http/internal.h"

/* Happy path of one connection: accept -> IDLE (waiting for a request) ->
 * HEAD (header bytes arriving; llhttp accumulates URL and headers) -> the
 * handler runs from pcb_headers_complete, the parser stays paused and the
 * socket is not read until the handler asks for the body -> ACTIVE (body
 * delivered through the handler's callbacks, response written) -> once the
 * response is written and the request completely read: IDLE again
 * (keep-alive: pipelined bytes left in the buffer are parsed now) or LINGER
 * (uv_shutdown, drain input for a moment, then uv_close) -> CLOSED.
 *
 * Failure modes: malformed header block -> 400 (414, 431 for our limits)
 * with Connection: close; EOF, socket error, timeout, malformed body while a
 * handler owns the request -> abort callback, then uv_close. llhttp is never
 * re-entered from its own callbacks: they only record state, and the outer
 * loop in conn_parse() decides whether to resume. */

static const char *const conn_state_names[] = { "idle", "head", "active",
                                                "linger", "closed" };

/* Allowed transitions: bit `to` set in allowed[from]. */
static const unsigned conn_allowed[] = {
    [CS_IDLE] = 1u << CS_HEAD | 1u << CS_CLOSED,
    [CS_HEAD] = 1u << CS_ACTIVE | 1u << CS_CLOSED,
    [CS_ACTIVE] = 1u << CS_IDLE | 1u << CS_LINGER | 1u << CS_CLOSED,
    [CS_LINGER] = 1u << CS_CLOSED,
    [CS_CLOSED] = 0,
};

static void conn_close_graceful(struct node_http_conn *c);
static void conn_on_timer(uv_timer_t *t);

/* see internal.h */
void node_http__conn_move(struct node_http_conn *c, enum conn_state to)
{
    AT_ASSERT(conn_allowed[c->state] & (1u << to));
    LOG_DEBUG("conn %s: %s -> %s", c->peer, conn_state_names[c->state],
              conn_state_names[to]);
    c->state = to;
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
void node_http__conn_abort_req(struct node_http_conn *c)
{
    struct node_http_req *r = c->req;

    if (r == NULL)
        return;
    if (r->handler_called && !r->resp_done && !r->aborted) {
        r->aborted = true;
        if (r->on_abort != NULL)
            r->on_abort(r);
    }
    r->aborted = true;
    node_http__conn_detach_req(c);
}

static void conn_on_write(struct node_http_twrite *tw, int status)
{
    struct conn_write *w = AT_CONTAINER_OF(tw, struct conn_write, tw);
    struct node_http_conn *c = w->conn;
    enum write_kind kind = w->kind;

    node_http__write_free(w);
    if (c->state == CS_CLOSED || c->state == CS_LINGER)
        return;
    if (kind == WK_UPGRADE && status == 0) {
        node_http__upgrade_done(c);
        return;
    }
    if (status < 0) {
        LOG_DEBUG("write to %s: %s", c->peer, uv_strerror(status));
        node_http__conn_close(c);
        return;
    }
    switch (kind) {
    case WK_CONTINUE:
        return;
    case WK_ERROR:
        node_http__conn_detach_req(c);
        conn_close_graceful(c);
        return;
    case WK_FILE_HDRS:
        c->resp = RS_SENDFILE;
        node_http__conn_timer_update(c, true);
        node_http__file_send(c);
        return;
    case WK_FILE_CHUNK:
        node_http__conn_timer_update(c, true);
        node_http__file_send(c);
        return;
    case WK_RESP:
        node_http__conn_resp_done(c);
        return;
    case WK_UPGRADE:
        return;
    }
}

/* see internal.h */
void node_http__conn_write(struct node_http_conn *c, struct conn_write *w)
{
    uv_buf_t b = uv_buf_init(w->data, (unsigned)w->len);
    int rv = c->t->ops->write(c->t, &w->tw, &b, 1, conn_on_write);

    if (rv != 0) {
        LOG_DEBUG("write to %s: %s", c->peer, uv_strerror(rv));
        node_http__write_free(w);
        node_http__conn_close(c);
        return;
    }
    c->last_wq = c->t->ops->write_queue_size(c->t);
}

/* ---- timers and reading ---- */

/* see internal.h */
bool node_http__conn_can_parse(const struct node_http_conn *c)
{
    switch (c->state) {
    case CS_IDLE:
    case CS_HEAD:
        return true;
    case CS_ACTIVE:
        if (c->msg_complete || c->req == NULL)
            return false;
        if (c->body == BM_DISCARD)
            return true;
        if (c->body == BM_READ)
            return !c->req->paused;
        return false;
    default:
        return false;
    }
}

static bool conn_wants_input(const struct node_http_conn *c)
{
    if (c->state == CS_LINGER)
        return true;
    return node_http__conn_can_parse(c) && c->in_off == c->in_len;
}

static enum timer_kind conn_timer_want(const struct node_http_conn *c)
{
    switch (c->state) {
    case CS_IDLE:
        return c->first_request ? TK_HEADER : TK_IDLE;
    case CS_HEAD:
        return TK_HEADER;
    case CS_ACTIVE:
        if (c->resp == RS_WRITING || c->resp == RS_SENDFILE)
            return TK_WRITE;
        if (node_http__conn_can_parse(c))
            return TK_BODY;
        return TK_NONE;
    case CS_LINGER:
        return TK_LINGER;
    default:
        return TK_NONE;
    }
}

/* see internal.h */
void node_http__conn_timer_update(struct node_http_conn *c, bool progress)
{
    enum timer_kind want = conn_timer_want(c);
    const struct node_http_config *cfg = &c->srv->cfg;
    uint64_t ms = 0;

    if (c->state == CS_CLOSED)
        return;
    if (want == c->timer_kind &&
        !(progress && (want == TK_BODY || want == TK_WRITE)))
        return;
    c->timer_kind = want;
    switch (want) {
    case TK_NONE:
        uv_timer_stop(&c->timer);
        return;
    case TK_IDLE:
        ms = cfg->idle_timeout_ms;
        break;
    case TK_HEADER:
        ms = cfg->header_timeout_ms;
        break;
    case TK_BODY:
        ms = cfg->body_timeout_ms;
        break;
    case TK_WRITE:
        ms = cfg->write_timeout_ms;
        break;
    case TK_LINGER:
        ms = AT_MIN(LINGER_MS, cfg->write_timeout_ms);
        break;
    }
    uv_timer_start(&c->timer, conn_on_timer, ms, 0);
}

static void conn_on_timer(uv_timer_t *t)
{
    struct node_http_conn *c = t->data;
    size_t q;

    switch (c->timer_kind) {
    case TK_NONE:
        return;
    case TK_IDLE:
    case TK_HEADER:
        LOG_DEBUG("conn %s: %s timeout", c->peer,
                  c->timer_kind == TK_IDLE ? "idle" : "header");
        break;
    case TK_BODY:
        LOG_DEBUG("conn %s: body timeout", c->peer);
        break;
    case TK_WRITE:
        if (c->resp == RS_WRITING) {
            q = c->t->ops->write_queue_size(c->t);
            if (q < c->last_wq) {
                c->last_wq = q;
                node_http__conn_timer_update(c, true);
                return;
            }
        }
        LOG_DEBUG("conn %s: write timeout", c->peer);
        break;
    case TK_LINGER:
        break;
    }
    node_http__conn_close(c);
}

static void conn_on_alloc(struct node_http_transport *t,
                          size_t hint,
                          uv_buf_t *buf)
{
    struct node_http_conn *c = t->data;
    size_t want = node_http__body_direct_want(c);

    AT_UNUSED(hint);
    c->ext = NULL;
    if (want > 0) {
        char *p = NULL;
        size_t n = 0;
        if (c->req->body_buf(c->req, want, &p, &n) && p != NULL && n > 0) {
            c->ext = p;
            *buf = uv_buf_init(p, (unsigned)AT_MIN(AT_MIN(n, want), UINT_MAX));
            return;
        }
    }
    if (c->in == NULL)
        c->in = at_malloc(INBUF_SIZE);
    if (c->in_off == c->in_len || c->state == CS_LINGER)
        c->in_off = c->in_len = 0;
    *buf = uv_buf_init(c->in + c->in_len, (unsigned)(INBUF_SIZE - c->in_len));
}

static void conn_on_eof(struct node_http_conn *c)
{
    /* A request the handler owns and has not answered is aborted; idle and
     * half-read connections are simply closed. */
    node_http__conn_close(c);
}

static void conn_on_data(struct node_http_conn *c, size_t n)
{
    c->in_len += n;
    if (c->state == CS_ACTIVE)
        node_http__conn_timer_update(c, true);
    node_http__parse(c);
}

static void conn_on_read(struct node_http_transport *t,
                         ssize_t nread,
                         const uv_buf_t *buf)
{
    struct node_http_conn *c = t->data;

    if (c->state == CS_CLOSED)
        return;
    if (c->state == CS_LINGER) {
        c->in_off = c->in_len = 0;
        if (nread < 0)
            node_http__conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread != UV_EOF)
            LOG_DEBUG("read from %s: %s", c->peer, uv_strerror((int)nread));
        conn_on_eof(c);
        return;
    }
    if (c->ext != NULL && buf->base == c->ext) {
        c->ext = NULL;
        node_http__parse_direct(c, buf->base, (size_t)nread);
        return;
    }
    conn_on_data(c, (size_t)nread);
}

/* see internal.h */
void node_http__conn_update_reading(struct node_http_conn *c)
{
    bool want;
    int rv;

    if (c->state == CS_CLOSED)
        return;
    want = conn_wants_input(c);
    if (want && !c->reading) {
        rv = c->t->ops->read_start(c->t, conn_on_alloc, conn_on_read);
        if (rv != 0) {
            LOG_DEBUG("read start %s: %s", c->peer, uv_strerror(rv));
            node_http__conn_close(c);
            return;
        }
        c->reading = true;
    } else if (!want && c->reading) {
        c->t->ops->read_stop(c->t);
        c->reading = false;
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
    node_http__server_maybe_finish(s);
}

static void conn_on_close(uv_handle_t *h)
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

/* see internal.h */
void node_http__conn_close(struct node_http_conn *c)
{
    if (c->state == CS_CLOSED)
        return;
    node_http__conn_abort_req(c);
    node_http__conn_move(c, CS_CLOSED);
    c->reading = false;
    if (c->sf_fd >= 0) {
        close(c->sf_fd);
        c->sf_fd = -1;
    }
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, conn_on_close);
    if (c->t != NULL)
        c->t->ops->close(c->t, conn_on_transport_close);
    node_http__upgrade_fail(c);
}

static void conn_on_shutdown(struct node_http_transport *t, int status)
{
    struct node_http_conn *c = t->data;

    if (c->state != CS_LINGER)
        return;
    if (status < 0)
        node_http__conn_close(c);
}

static void conn_close_graceful(struct node_http_conn *c)
{
    int rv;

    if (c->state == CS_CLOSED || c->state == CS_LINGER)
        return;
    node_http__conn_detach_req(c);
    node_http__conn_move(c, CS_LINGER);
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
    if (c->close_after || c->srv->stopping) {
        conn_close_graceful(c);
        return;
    }
    node_http__conn_move(c, CS_IDLE);
    c->first_request = false;
    c->msg_complete = false;
    c->resp = RS_NONE;
    c->body = BM_WAIT;
    c->sent_continue = false;
    c->err_status = 0;
    node_http__conn_timer_update(c, false);
}

/* see internal.h */
void node_http__conn_resp_done(struct node_http_conn *c)
{
    c->resp = RS_DONE;
    if (c->req != NULL)
        c->req->resp_done = true;
    if (c->close_after || c->srv->stopping) {
        node_http__conn_detach_req(c);
        conn_close_graceful(c);
        return;
    }
    if (c->msg_complete)
        node_http__conn_request_finish(c);
    node_http__parse(c);
}

/* see internal.h */
struct node_http_conn *node_http__conn_new(struct node_http_server *s,
                                           struct node_http_transport *t)
{
    struct node_http_conn *c = at_calloc(1, sizeof(*c));

    c->srv = s;
    c->t = t;
    t->data = c;
    c->sf_fd = -1;
    c->state = CS_IDLE;
    c->first_request = true;
    node_http__parser_init(c);
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

/* see internal.h */
struct node_http_conn *node_http__conn_new_mem(struct node_http_server *s,
                                               struct at_buf *out)
{
    return node_http__conn_new(s, node_http__mem_new(s->loop, out));
}

/* see internal.h */
size_t node_http__conn_feed(struct node_http_conn *c, const char *p, size_t n)
{
    if (c->state == CS_CLOSED)
        return 0;
    return node_http__mem_feed(c->t, p, n);
}

/* see internal.h */
int node_http__conn_flush(struct node_http_conn *c)
{
    if (c->state == CS_CLOSED)
        return 0;
    return node_http__mem_flush(c->t);
}

/* see internal.h */
void node_http__conn_eof(struct node_http_conn *c)
{
    if (c->state != CS_CLOSED)
        node_http__mem_eof(c->t);
}

/* see internal.h */
bool node_http__conn_closed(const struct node_http_conn *c)
{
    return c->state == CS_CLOSED;
}
