/* Request bodies as the handler reads them: on demand, with pause/resume
 * and 100-continue, and what happens to an unread body when the handler
 * answers early. The framing of a body is its reader's (framing.c). */
#include "common/compat.h"

#define AT_LOG_COMP "http"

#include "common/common.h"
#include "node/http/internal.h"

/* ---- into the handler's memory ---- */

/* The memory the handler offers for up to the rest of the body. Not
 * inlined: the test before it runs on every read, and stays a few
 * instructions without this function's stack frame. */
__attribute__((noinline)) static bool body_offer(struct node_http_conn *c,
                                                 uv_buf_t *buf)
{
    struct node_http_req *r = c->req;
    size_t want = c->reader->direct_want(c);
    char *p = NULL;
    size_t n = 0;

    if (want == 0 || !r->body_buf(r, want, &p, &n) || p == NULL || n == 0)
        return false;
    *buf = uv_buf_init(p, (unsigned)AT_MIN(AT_MIN(n, want), UINT_MAX));
    return true;
}

/* see internal.h */
bool node_http__body_read_buf(struct node_http_conn *c, uv_buf_t *buf)
{
    const struct node_http_req *r = c->req;

    if (c->state != CONN_BODY || r == NULL || r->body_buf == NULL ||
        r->paused || r->aborted || c->in_off != c->in_len)
        return false;
    return body_offer(c, buf);
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
