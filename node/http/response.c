/* Responses: status line, headers, bodies from memory or a file, upgrades. */
#include "common/compat.h"

#define AT_LOG_COMP "http"

#include <unistd.h>

#include "common/common.h"
#include "node/http/internal.h"

static bool resp_usable(const struct node_http_req *r)
{
    return r->conn != NULL && !r->aborted && !r->resp_started;
}

/* see http.h */
void node_http_resp_status(struct node_http_req *r, int status)
{
    if (!resp_usable(r))
        return;
    if (status < 100 || status > 999)
        status = 500;
    r->status = status;
}

static bool hdr_name_ok(const char *n)
{
    static const char tchar[] = "!#$%&'*+-.^_`|~";

    if (*n == '\0')
        return false;
    for (; *n != '\0'; n++) {
        unsigned char ch = (unsigned char)*n;
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
              (ch >= 'A' && ch <= 'Z') || strchr(tchar, ch) != NULL))
            return false;
    }
    return true;
}

/* see http.h: the value is formatted straight into the header block, then
 * checked (and taken back when refused) */
void node_http_resp_header(struct node_http_req *r,
                           const char *name,
                           const char *fmt,
                           ...)
{
    struct at_buf *h = &r->resp_hdrs;
    size_t mark, vstart;
    const char *v;
    va_list ap;
    int rv;

    if (!resp_usable(r))
        return;
    if (!hdr_name_ok(name)) {
        LOG_WARN("response header name '%s' rejected", name);
        return;
    }
    if (strcasecmp(name, "content-length") == 0)
        return; /* the server computes it */
    mark = h->len;
    at_buf_puts(h, name);
    at_buf_puts(h, ": ");
    vstart = h->len;
    va_start(ap, fmt);
    rv = at_buf_vprintf(h, fmt, ap);
    va_end(ap);
    v = h->data + vstart;
    if (rv != 0) {
        LOG_WARN("response header '%s': %s", name, at_strerror(rv));
    } else if (strpbrk(v, "\r\n") != NULL) {
        LOG_WARN("response header '%s': value with CR/LF rejected", name);
    } else if (strcasecmp(name, "connection") == 0) {
        if (strcasecmp(v, "close") == 0)
            r->conn->flags |= CF_CLOSE_AFTER;
    } else {
        at_buf_puts(h, "\r\n");
        return;
    }
    h->len = mark;
    h->data[mark] = '\0';
}

/* see http.h */
void node_http_resp_close(struct node_http_req *r)
{
    if (!resp_usable(r))
        return;
    r->conn->flags |= CF_CLOSE_AFTER;
}

/* An Upgrade token: printable, no spaces, no header injection. */
static bool proto_ok(const char *p)
{
    if (*p == '\0')
        return false;
    for (; *p != '\0'; p++)
        if (*p <= ' ' || *p >= 127)
            return false;
    return true;
}

static void resp_on_upgrade_written(struct node_http_twrite *tw, int status);

/* see http.h */
void node_http_req_upgrade(struct node_http_req *r,
                           const char *protocol,
                           node_http_upgrade_cb cb,
                           void *data)
{
    struct node_http_conn *c = r->conn;
    struct node_http_write *w;
    struct at_buf b;

    if (!resp_usable(r) || c->state != CONN_WAIT || c->reader->present ||
        !proto_ok(protocol)) {
        cb(data, NULL);
        return;
    }
    r->resp_started = true;
    node_http__conn_move(c, CONN_STOP);
    c->flags |= CF_CLOSE_AFTER;
    c->up_cb = cb;
    c->up_data = data;
    at_buf_init(&b, 0);
    at_buf_printf(&b,
                  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: %s\r\n"
                  "Connection: Upgrade\r\n",
                  protocol);
    if (r->resp_hdrs.len > 0)
        at_buf_append(&b, r->resp_hdrs.data, r->resp_hdrs.len);
    at_buf_puts(&b, "\r\n");
    w = node_http__write_new(c, b.len);
    memcpy(w->data, b.data, b.len);
    at_buf_release(&b);
    node_http__resp_move(c, RESP_UPGRADE);
    node_http__conn_write(c, w, resp_on_upgrade_written);
    node_http__conn_timer_update(c, false);
}

/* The 101 is written: hand the socket over, unless the client already sent
 * bytes past the request (they would belong to the new protocol but sit in
 * our buffer) or the transport cannot let go of it. */
static void resp_on_upgrade_written(struct node_http_twrite *tw, int status)
{
    struct node_http_conn *c = node_http__write_done(tw, status);
    node_http_upgrade_cb cb;
    void *data;
    uv_stream_t *stream;

    if (c == NULL)
        return;
    cb = c->up_cb;
    data = c->up_data;
    if (c->in_len > c->in_off || (c->flags & CF_READING)) {
        LOG_INFO("upgrade from %s: unexpected bytes after the request",
                 c->peer);
        node_http__conn_close(c);
        return;
    }
    stream = c->t->ops->detach(c->t);
    if (stream == NULL) {
        LOG_INFO("upgrade from %s: a %s connection cannot be handed over",
                 c->peer, c->t->ops->name);
        node_http__conn_close(c);
        return;
    }
    c->t = NULL;
    c->handles--;
    c->up_cb = NULL;
    node_http__resp_move(c, RESP_DONE);
    if (c->req != NULL)
        c->req->resp_done = true;
    node_http__conn_report(c, true);
    node_http__conn_detach_req(c);
    node_http__conn_close(c);
    cb(data, stream);
}

/* see internal.h */
struct node_http_write *node_http__resp_head(struct node_http_req *r,
                                             uint64_t clen,
                                             size_t extra,
                                             size_t *head_len)
{
    struct node_http_conn *c = r->conn;
    char line[80], tail[80];
    size_t nl, nt = 0, hl;
    struct node_http_write *w;

    nl = (size_t)snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", r->status,
                          node_http__status_reason(r->status));
    AT_ASSERT(nl < sizeof(line));
    if (r->status != 204 && r->status != 304 && r->status >= 200)
        nt = (size_t)snprintf(tail, sizeof(tail),
                              "Content-Length: %" PRIu64 "\r\n", clen);
    if ((c->flags & CF_CLOSE_AFTER) || c->srv->stopping)
        nt += (size_t)snprintf(tail + nt, sizeof(tail) - nt,
                               "Connection: close\r\n");
    nt += (size_t)snprintf(tail + nt, sizeof(tail) - nt, "\r\n");
    AT_ASSERT(nt < sizeof(tail));
    hl = nl + r->resp_hdrs.len + nt;
    w = node_http__write_new(c, hl + extra);
    memcpy(w->data, line, nl);
    if (r->resp_hdrs.len > 0)
        memcpy(w->data + nl, r->resp_hdrs.data, r->resp_hdrs.len);
    memcpy(w->data + nl + r->resp_hdrs.len, tail, nt);
    *head_len = hl;
    return w;
}

static void resp_on_written(struct node_http_twrite *tw, int status)
{
    struct node_http_conn *c = node_http__write_done(tw, status);

    if (c != NULL)
        node_http__conn_resp_done(c);
}

/* The head of a file response is written: now its body. */
static void resp_on_head_written(struct node_http_twrite *tw, int status)
{
    struct node_http_conn *c = node_http__write_done(tw, status);

    if (c == NULL)
        return;
    node_http__resp_move(c, RESP_FILE);
    node_http__conn_timer_update(c, true);
    node_http__file_send(c);
}

/* see http.h */
void node_http_resp_send(struct node_http_req *r, const void *p, size_t n)
{
    struct node_http_conn *c = r->conn;
    struct node_http_write *w;
    size_t hl, bn;

    if (!resp_usable(r))
        return;
    r->resp_started = true;
    node_http__body_settle(c);
    if (r->status == 204 || r->status == 304)
        n = 0;
    bn = r->method == NODE_HTTP_HEAD ? 0 : n;
    r->body_bytes = bn;
    w = node_http__resp_head(r, n, bn, &hl);
    if (bn > 0)
        memcpy(w->data + hl, p, bn);
    node_http__resp_move(c, RESP_SENDING);
    node_http__conn_write(c, w, resp_on_written);
    if (node_http__conn_active(c))
        node_http__parse(c);
}

static void resp_file(struct node_http_req *r,
                      int fd,
                      uint64_t offset,
                      uint64_t len,
                      uint64_t limit)
{
    struct node_http_conn *c = r->conn;
    struct node_http_write *w;
    size_t hl;
    bool body;

    if (!resp_usable(r)) {
        close(fd);
        return;
    }
    r->resp_started = true;
    node_http__body_settle(c);
    body = r->method != NODE_HTTP_HEAD && len > 0 && r->status != 204 &&
           r->status != 304;
    w = node_http__resp_head(r, len, 0, &hl);
    if (body) {
        r->file_body = true;
        r->body_bytes = len;
        c->file.fd = fd;
        c->file.off = offset;
        c->file.left = len;
        c->file.limit = limit;
    } else {
        close(fd);
    }
    node_http__resp_move(c, RESP_SENDING);
    node_http__conn_write(c, w, body ? resp_on_head_written : resp_on_written);
    if (node_http__conn_active(c))
        node_http__parse(c);
}

/* see http.h */
void node_http_resp_send_file(struct node_http_req *r,
                              int fd,
                              uint64_t offset,
                              uint64_t len)
{
    resp_file(r, fd, offset, len, UINT64_MAX);
}

/* see http.h */
void node_http_resp_stream_file(struct node_http_req *r,
                                int fd,
                                uint64_t len,
                                uint64_t limit)
{
    resp_file(r, fd, 0, len, limit);
}

/* see http.h */
void node_http_resp_stream_limit(struct node_http_req *r, uint64_t limit)
{
    struct node_http_conn *c = r->conn;

    if (c == NULL || r->aborted || c->req != r || c->state == CONN_CLOSED ||
        limit <= c->file.limit)
        return;
    c->file.limit = limit;
    if (c->resp == RESP_STALLED) {
        node_http__resp_move(c, RESP_FILE);
        node_http__file_send(c);
    }
}

/* see http.h */
void node_http_resp_abort(struct node_http_req *r)
{
    if (r->conn == NULL || r->aborted || r->resp_done)
        return;
    node_http__conn_close(r->conn);
}
