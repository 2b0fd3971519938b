/* Request bodies: the readers per framing (none, Content-Length, chunked),
 * reading on demand with pause/resume, 100-continue, and what happens to an
 * unread body when the handler answers early. */
#include "common/compat.h"

#define AT_LOG_COMP "http"

#include "common/common.h"
#include "node/http/internal.h"

/* ---- readers ---- */

static size_t no_direct(const struct node_http_conn *c)
{
    AT_UNUSED(c);
    return 0;
}

static bool input_ok(struct node_http_conn *c, const char *p, size_t n)
{
    AT_UNUSED(c);
    AT_UNUSED(p);
    AT_UNUSED(n);
    return true;
}

static bool drain_nothing(const struct node_http_conn *c)
{
    AT_UNUSED(c);
    return true; /* no body: nothing to drain, the connection stays */
}

const struct node_http_body_reader node_http__body_none = {
    .name = "none",
    .present = false,
    .direct_want = no_direct,
    .check_input = input_ok,
    .check_span = input_ok,
    .drainable = drain_nothing,
};

/* The next read may go straight into the handler's memory once enough of
 * the body is left to be worth it; never more than the body has left, so a
 * pipelined request behind it stays in the connection's buffer. */
static size_t length_direct(const struct node_http_conn *c)
{
    const struct node_http_req *r = c->req;

    if (c->parser.content_length < EXT_MIN ||
        c->parser.content_length > r->content_length)
        return 0;
    return (size_t)AT_MIN(c->parser.content_length, (uint64_t)SIZE_MAX);
}

static bool length_drainable(const struct node_http_conn *c)
{
    return c->parser.content_length <= DISCARD_MAX;
}

const struct node_http_body_reader node_http__body_length = {
    .name = "length",
    .present = true,
    .direct_want = length_direct,
    .check_input = input_ok,
    .check_span = input_ok,
    .drainable = length_drainable,
};

/* The CRLF that ends a chunk's data, as far as it has arrived; the rest is
 * checked when more input comes (chunked_input). */
static bool chunked_span(struct node_http_conn *c, const char *at, size_t n)
{
    static const char crlf[] = "\r\n";
    const char *after = at + n;
    size_t avail, k;

    c->chunk_left = n < c->chunk_left ? c->chunk_left - n : 0;
    if (c->chunk_left > 0)
        return true;
    avail = (size_t)(c->parse_end - after);
    k = avail < 2 ? avail : 2;
    if (memcmp(after, crlf, k) != 0) {
        llhttp_set_error_reason(&c->parser, "chunk data not followed by CRLF");
        return false;
    }
    c->crlf_need = (int)(2 - k);
    return true;
}

static bool chunked_input(struct node_http_conn *c, const char *p, size_t n)
{
    const char *want = c->crlf_need == 2 ? "\r\n" : "\n";
    size_t k = n < (size_t)c->crlf_need ? n : (size_t)c->crlf_need;

    if (c->crlf_need == 0)
        return true;
    if (memcmp(p, want, k) != 0)
        return false;
    c->crlf_need -= (int)k;
    return true;
}

static bool never_drain(const struct node_http_conn *c)
{
    AT_UNUSED(c);
    return false; /* no bound on what is left: close instead */
}

const struct node_http_body_reader node_http__body_chunked = {
    .name = "chunked",
    .present = true,
    .direct_want = no_direct, /* chunk framing lies between the bytes */
    .check_input = chunked_input,
    .check_span = chunked_span,
    .drainable = never_drain,
};

/* see internal.h */
size_t node_http__body_direct_want(const struct node_http_conn *c)
{
    const struct node_http_req *r = c->req;

    if (c->state != CONN_BODY || r == NULL || r->body_buf == NULL ||
        r->paused || r->aborted || c->in_off != c->in_len)
        return 0;
    return c->reader->direct_want(c);
}

/* ---- on demand ---- */

static void body_on_continue_written(struct node_http_twrite *tw, int status)
{
    node_http__write_done(tw, status);
}

/* The handler asked for the body: a client that sent Expect: 100-continue
 * waits for this before it sends the body. */
static void body_start(struct node_http_conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct node_http_req *r = c->req;
    struct node_http_write *w;

    if (r->expect_continue && !(c->flags & CF_CONTINUE_SENT) &&
        c->reader->present && !r->resp_started) {
        c->flags |= CF_CONTINUE_SENT;
        w = node_http__write_new(c, sizeof(cont) - 1);
        memcpy(w->data, cont, sizeof(cont) - 1);
        node_http__conn_write(c, w, body_on_continue_written);
    }
}

/* see internal.h */
void node_http__body_settle(struct node_http_conn *c)
{
    struct node_http_req *r = c->req;

    switch (c->state) {
    case CONN_WAIT:
        if (!c->reader->present) {
            node_http__conn_move(c, CONN_DRAIN);
            return;
        }
        if (r->expect_continue) {
            /* No 100 was sent: the client may not send the body at all. */
            node_http__conn_move(c, CONN_STOP);
            c->flags |= CF_CLOSE_AFTER;
            return;
        }
        break;
    case CONN_BODY:
        break;
    default:
        return; /* read already, or already settled */
    }
    if (c->reader->drainable(c)) {
        node_http__conn_move(c, CONN_DRAIN);
        r->paused = false;
    } else {
        node_http__conn_move(c, CONN_STOP);
        c->flags |= CF_CLOSE_AFTER;
    }
}

/* see http.h */
void node_http_req_read_body(struct node_http_req *r,
                             node_http_body_cb on_body,
                             node_http_end_cb on_end)
{
    struct node_http_conn *c = r->conn;

    if (c == NULL || r->aborted || r->body_requested || r->resp_started)
        return;
    r->body_requested = true;
    r->on_body = on_body;
    r->on_end = on_end;
    if (c->state != CONN_WAIT)
        return;
    node_http__conn_move(c, CONN_BODY);
    body_start(c);
    node_http__parse(c);
}

/* see http.h */
void node_http_req_body_buf(struct node_http_req *r, node_http_body_buf_cb cb)
{
    r->body_buf = cb;
}

/* see http.h */
void node_http_req_on_abort(struct node_http_req *r, node_http_abort_cb cb)
{
    r->on_abort = cb;
}

/* see http.h */
void node_http_req_pause(struct node_http_req *r)
{
    if (r->conn == NULL || r->conn->state != CONN_BODY)
        return;
    r->paused = true;
    if (!(r->conn->flags & CF_IN_PARSER))
        node_http__conn_update_reading(r->conn);
}

/* see http.h */
void node_http_req_resume(struct node_http_req *r)
{
    if (!r->paused)
        return;
    r->paused = false;
    if (r->conn != NULL)
        node_http__parse(r->conn);
}
