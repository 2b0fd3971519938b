/* Request bodies: reading on demand, pause/resume, 100-continue, early answers.
 */
#include "common/compat.h"

#define AT_LOG_COMP "http"

#include "common/common.h"
#include "node/http/internal.h"

/* see internal.h */
bool node_http__req_body_present(const struct node_http_req *r)
{
    return r->chunked || (r->has_length && r->content_length > 0);
}

/* see internal.h */
size_t node_http__body_direct_want(const struct node_http_conn *c)
{
    const struct node_http_req *r = c->req;

    if (c->state != CS_ACTIVE || c->body != BM_READ || r == NULL ||
        r->body_buf == NULL || r->paused || r->aborted || r->chunked ||
        !r->has_length || c->msg_complete || c->in_off != c->in_len)
        return 0;
    if (c->parser.content_length < EXT_MIN ||
        c->parser.content_length > r->content_length)
        return 0;
    return (size_t)AT_MIN(c->parser.content_length, (uint64_t)SIZE_MAX);
}

static void body_start(struct node_http_conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct node_http_req *r = c->req;
    struct conn_write *w;

    if (r->expect_continue && !c->sent_continue &&
        node_http__req_body_present(r) && !r->resp_started) {
        c->sent_continue = true;
        w = node_http__write_new(c, WK_CONTINUE, sizeof(cont) - 1);
        memcpy(w->data, cont, sizeof(cont) - 1);
        node_http__conn_write(c, w);
    }
}

/* see internal.h */
void node_http__body_settle(struct node_http_conn *c)
{
    struct node_http_req *r = c->req;

    if (c->msg_complete)
        return;
    switch (c->body) {
    case BM_WAIT:
        if (!node_http__req_body_present(r)) {
            c->body = BM_DISCARD;
            return;
        }
        if (r->expect_continue) {
            /* No 100 was sent: the client may not send the body at all. */
            c->body = BM_STOP;
            c->close_after = true;
            return;
        }
        break;
    case BM_READ:
        break;
    default:
        return;
    }
    if (!r->chunked && r->has_length &&
        c->parser.content_length <= DISCARD_MAX) {
        c->body = BM_DISCARD;
        r->paused = false;
    } else {
        c->body = BM_STOP;
        c->close_after = true;
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
    if (c->body != BM_WAIT)
        return;
    c->body = BM_READ;
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
    if (r->conn == NULL || r->conn->body != BM_READ)
        return;
    r->paused = true;
    if (!r->conn->in_parser)
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
