/* Pushed bodies: the handler hands the body over piece by piece as it gets
 * it (a blob relayed from another node), and the connection writes each
 * piece in order after the head.
 *
 * Life: push_start queues the head and moves the response to RESP_PUSH;
 * every push queues a copy (push.left falls, push.queued rises); every
 * write done lowers push.queued, restarts the write timeout and, once the
 * queue is empty, either completes the response (push.left == 0) or tells
 * the handler it may push more (on_drain). The handler bounds what waits
 * here by pushing only while *unwritten is below its own mark.
 *
 * Failure modes: the connection fails or times out -> it closes, the
 * handler's abort callback runs and later pushes get AT_ESHUTDOWN; a push
 * past len -> AT_ETOOBIG, nothing queued (a body never exceeds its
 * Content-Length); a handler that gives up -> node_http_resp_abort closes
 * the connection: a client sees a short body, never a complete wrong
 * one. */
#include "common/compat.h"

#define AT_LOG_COMP "http"

#include "common/common.h"
#include "node/http/internal.h"

static void push_on_written(struct node_http_twrite *tw, int status)
{
    struct node_http_write *w = AT_CONTAINER_OF(tw, struct node_http_write, tw);
    size_t len = w->len;
    struct node_http_conn *c = node_http__write_done(tw, status);

    if (c == NULL)
        return;
    AT_ASSERT(c->resp == RESP_PUSH && c->push.queued >= len);
    c->push.queued -= len;
    node_http__conn_timer_update(c, true);
    if (c->push.queued > 0)
        return;
    if (c->push.left == 0) {
        node_http__conn_resp_done(c);
        return;
    }
    if (c->push.on_drain != NULL && c->req != NULL)
        c->push.on_drain(c->req);
}

static void push_on_head_written(struct node_http_twrite *tw, int status)
{
    struct node_http_conn *c = node_http__write_done(tw, status);

    if (c != NULL)
        node_http__conn_timer_update(c, true);
}

static void push_on_bodyless_written(struct node_http_twrite *tw, int status)
{
    struct node_http_conn *c = node_http__write_done(tw, status);

    if (c != NULL)
        node_http__conn_resp_done(c);
}

/* see http.h */
void node_http_resp_push_start(struct node_http_req *r,
                               uint64_t len,
                               node_http_drain_cb on_drain)
{
    struct node_http_conn *c = r->conn;
    struct node_http_write *w;
    size_t hl;
    bool body;

    if (c == NULL || r->aborted || r->resp_started)
        return;
    r->resp_started = true;
    node_http__body_settle(c);
    body = r->method != NODE_HTTP_HEAD && len > 0 && r->status != 204 &&
           r->status != 304;
    w = node_http__resp_head(r, len, 0, &hl);
    if (!body) {
        node_http__resp_move(c, RESP_SENDING);
        node_http__conn_write(c, w, push_on_bodyless_written);
    } else {
        r->body_bytes = len;
        c->push.left = len;
        c->push.queued = 0;
        c->push.on_drain = on_drain;
        node_http__resp_move(c, RESP_PUSH);
        node_http__conn_write(c, w, push_on_head_written);
        node_http__conn_timer_update(c, true);
    }
    if (node_http__conn_active(c))
        node_http__parse(c);
}

/* see http.h */
int node_http_resp_push(struct node_http_req *r,
                        const void *p,
                        size_t n,
                        size_t *unwritten)
{
    struct node_http_conn *c = r->conn;
    struct node_http_write *w;

    *unwritten = 0;
    if (c == NULL || r->aborted || c->req != r || c->resp != RESP_PUSH ||
        c->state == CONN_CLOSED)
        return AT_ESHUTDOWN;
    if (n > c->push.left)
        return AT_ETOOBIG;
    if (n > 0) {
        w = node_http__write_new(c, n);
        memcpy(w->data, p, n);
        c->push.left -= n;
        c->push.queued += n;
        node_http__conn_write(c, w, push_on_written);
        if (c->state == CONN_CLOSED)
            return AT_ESHUTDOWN; /* the write could not be queued */
        node_http__conn_timer_update(c, true);
    }
    *unwritten = c->push.queued;
    return 0;
}
