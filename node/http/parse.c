/* Parsing requests with llhttp: callbacks, limits, errors and the answer
 * to a malformed request. The callbacks only record what arrived and move
 * the connection's state; the body's framing checks are the body reader's
 * (framing.c). */
#include "common/compat.h"

#define AT_LOG_COMP "http"

#include "common/common.h"
#include "node/http/internal.h"

static llhttp_settings_t parser_settings;
static bool parser_settings_ready;

static int pcb_message_begin(llhttp_t *p)
{
    struct node_http_conn *c = p->data;

    if (c->req != NULL || c->state != CONN_IDLE)
        return -1; /* NEVER: the parser stays paused while a request runs */
    c->req = node_http__req_new(c);
    c->req->start_ns = uv_hrtime();
    c->reader = &node_http__body_none;
    c->chunk_left = 0;
    c->crlf_need = 0;
    node_http__conn_move(c, CONN_HEAD);
    node_http__conn_timer_update(c, false);
    return 0;
}

static int pcb_url(llhttp_t *p, const char *at, size_t n)
{
    struct node_http_conn *c = p->data;

    if (at_buf_append(&c->req->url, at, n) != 0) {
        c->err_status = 414;
        return -1;
    }
    return 0;
}

static int hdr_account(struct node_http_conn *c, size_t n)
{
    if (n > NODE_HTTP_MAX_HDR_SIZE - c->req->hdr_bytes) {
        c->err_status = 431;
        return -1;
    }
    c->req->hdr_bytes += n;
    return 0;
}

static int pcb_header_field(llhttp_t *p, const char *at, size_t n)
{
    struct node_http_conn *c = p->data;

    if (hdr_account(c, n) != 0)
        return -1;
    at_buf_append(&c->req->cur_name, at, n);
    return 0;
}

static int pcb_header_value(llhttp_t *p, const char *at, size_t n)
{
    struct node_http_conn *c = p->data;

    if (hdr_account(c, n) != 0)
        return -1;
    at_buf_append(&c->req->cur_value, at, n);
    return 0;
}

static int pcb_header_value_complete(llhttp_t *p)
{
    struct node_http_conn *c = p->data;
    struct node_http_req *r = c->req;
    const char *v = r->cur_value.data != NULL ? r->cur_value.data : "";
    char *name;

    if (++r->nlines > NODE_HTTP_MAX_HEADERS) {
        c->err_status = 431;
        return -1;
    }
    name = at_strndup(r->cur_name.data != NULL ? r->cur_name.data : "",
                      r->cur_name.len);
    for (char *q = name; *q != '\0'; q++) {
        if (*q >= 'A' && *q <= 'Z')
            *q = (char)(*q - 'A' + 'a');
    }
    for (size_t i = 0; i < r->nhdrs; i++) {
        if (strcmp(r->hdrs[i].name, name) == 0) {
            char *j = at_asprintf("%s, %.*s", r->hdrs[i].value,
                                  (int)r->cur_value.len, v);
            at_free(r->hdrs[i].value);
            r->hdrs[i].value = j;
            at_free(name);
            goto out;
        }
    }
    if (r->nhdrs == r->hdrs_cap) {
        r->hdrs_cap = r->hdrs_cap != 0 ? r->hdrs_cap * 2 : 16;
        r->hdrs = at_realloc(r->hdrs, r->hdrs_cap * sizeof(*r->hdrs));
    }
    r->hdrs[r->nhdrs].name = name;
    r->hdrs[r->nhdrs].value = at_strndup(v, r->cur_value.len);
    r->nhdrs++;
out:
    at_buf_reset(&r->cur_name);
    at_buf_reset(&r->cur_value);
    return 0;
}

static int pcb_headers_complete(llhttp_t *p)
{
    struct node_http_conn *c = p->data;
    struct node_http_req *r = c->req;
    struct node_http_server *s = c->srv;
    char *q;
    const char *expect;

    r->method = node_http__method_map(p->method);
    r->method_str = llhttp_method_name((llhttp_method_t)p->method);
    if (r->url.data == NULL)
        at_buf_puts(&r->url, "");
    q = memchr(r->url.data, '?', r->url.len);
    if (q != NULL) {
        *q = '\0';
        r->query = q + 1;
    }
    r->chunked = (p->flags & F_CHUNKED) != 0;
    r->has_length = (p->flags & F_CONTENT_LENGTH) != 0;
    r->content_length = r->has_length ? p->content_length : 0;
    expect = node_http_req_header(r, "expect");
    r->expect_continue =
        expect != NULL && strcasecmp(expect, "100-continue") == 0;
    if (r->chunked)
        c->reader = &node_http__body_chunked;
    else if (r->has_length && r->content_length > 0)
        c->reader = &node_http__body_length;
    else
        c->reader = &node_http__body_none;
    if (!llhttp_should_keep_alive(p) || p->upgrade || s->stopping)
        c->flags |= CF_CLOSE_AFTER;
    node_http__conn_move(c, CONN_WAIT);
    r->handler_called = true;
    node_http_req_ref(r);
    s->handler(s->data, r);
    node_http_req_unref(r);
    /* Go on into the body only if the handler asked for it (or answered
     * and it is drained); else stay paused after the headers. */
    if (c->state == CONN_BODY || c->state == CONN_DRAIN)
        return 0;
    return HPE_PAUSED;
}

static int pcb_chunk_header(llhttp_t *p)
{
    struct node_http_conn *c = p->data;

    c->chunk_left = p->content_length;
    return 0;
}

static int pcb_body(llhttp_t *p, const char *at, size_t n)
{
    struct node_http_conn *c = p->data;
    struct node_http_req *r = c->req;
    int rv = 0;

    if (!node_http__conn_active(c) || r == NULL)
        return HPE_PAUSED;
    /* Resuming with no new bytes flushes an empty span: not body data. */
    if (n == 0)
        return 0;
    if (!c->reader->check_span(c, at, n))
        return HPE_USER;
    if (c->state == CONN_DRAIN)
        return 0;
    if (c->state != CONN_BODY)
        return HPE_PAUSED;
    if (r->on_body != NULL)
        rv = r->on_body(r, at, n);
    /* The handler may have answered (DRAIN, STOP) or closed meanwhile. */
    if (c->state == CONN_DRAIN)
        return 0;
    if (c->state != CONN_BODY)
        return HPE_PAUSED;
    if (rv == NODE_HTTP_PAUSE)
        r->paused = true;
    return r->paused ? HPE_PAUSED : 0;
}

static int pcb_message_complete(llhttp_t *p)
{
    struct node_http_conn *c = p->data;
    struct node_http_req *r = c->req;
    bool deliver = c->state == CONN_BODY;

    /* NEVER otherwise: llhttp runs only while the body is read or dropped */
    if ((c->state != CONN_BODY && c->state != CONN_DRAIN) || r == NULL)
        return HPE_PAUSED;
    node_http__conn_move(c, CONN_COMPLETE);
    if (deliver && r->on_end != NULL && !r->aborted)
        r->on_end(r);
    if (c->state == CONN_COMPLETE && c->resp == RESP_DONE)
        node_http__conn_request_finish(c);
    /* Pipelining: the next request waits until this response is done. */
    return HPE_PAUSED;
}

static void error_on_written(struct node_http_twrite *tw, int status)
{
    struct node_http_conn *c = node_http__write_done(tw, status);

    if (c == NULL)
        return;
    node_http__conn_detach_req(c);
    node_http__conn_close_graceful(c);
}

/* Answer a request that cannot be served and close. */
static void send_answer(struct node_http_conn *c,
                        int status,
                        const char *type,
                        const struct at_buf *body)
{
    struct at_buf out;
    struct node_http_write *w;

    at_buf_init(&out, 0);
    at_buf_printf(&out,
                  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                  "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                  status, node_http__status_reason(status), type, body->len);
    at_buf_append(&out, body->data, body->len);
    w = node_http__write_new(c, out.len);
    memcpy(w->data, out.data, out.len);
    at_buf_release(&out);
    if (c->state != CONN_STOP)
        node_http__conn_move(c, CONN_STOP);
    node_http__resp_move(c, RESP_SENDING);
    c->flags |= CF_CLOSE_AFTER;
    node_http__conn_write(c, w, error_on_written);
}

/* Answer a malformed request with a JSON error and close. */
static void send_error(struct node_http_conn *c, int status, const char *msg)
{
    struct at_buf body;

    at_buf_init(&body, 0);
    at_buf_puts(&body, "{\"errors\":[{\"code\":\"BAD_REQUEST\",\"message\":");
    at_buf_json_str(&body, msg, strlen(msg));
    at_buf_puts(&body, "}]}");
    send_answer(c, status, "application/json", &body);
    at_buf_release(&body);
}

/* A TLS handshake record (0x16, then version 3.x) where the first request
 * should start: a client speaking HTTPS to this plain HTTP port. */
static bool is_tls_hello(const struct node_http_conn *c)
{
    return (c->flags & CF_FIRST_REQUEST) &&
           (c->state == CONN_IDLE || c->state == CONN_HEAD) && c->in != NULL &&
           c->in_len >= 1 && (unsigned char)c->in[0] == 0x16 &&
           (c->in_len < 2 || (unsigned char)c->in[1] == 0x03);
}

static void parse_error(struct node_http_conn *c, llhttp_errno_t err)
{
    const char *reason = llhttp_get_error_reason(&c->parser);
    int status = 400;

    if (reason == NULL)
        reason = llhttp_errno_name(err);
    if (c->err_status != 0) {
        status = c->err_status;
        reason = status == 414 ? "request target too long"
                               : "request header fields too large";
    }
    if (is_tls_hello(c)) {
        /* A plain answer the client shows (Go: "server gave HTTP response
         * to HTTPS client"); not worth more than a debug line, as clients
         * with TLS verification off try HTTPS first on every request. */
        struct at_buf body;

        LOG_DEBUG("conn %s: TLS hello on a plain HTTP port: answered 400",
                  c->peer);
        node_http__conn_detach_req(c);
        at_buf_init(&body, 0);
        at_buf_puts(&body, "this port speaks plain HTTP\n");
        send_answer(c, 400, "text/plain", &body);
        at_buf_release(&body);
        return;
    }
    if (c->state == CONN_IDLE || c->state == CONN_HEAD) {
        LOG_INFO("malformed request from %s: %s", c->peer, reason);
        node_http__conn_detach_req(c);
        send_error(c, status, reason);
        return;
    }
    if (node_http__conn_active(c) && c->resp == RESP_NONE) {
        /* A malformed body (bad chunk size, ...) before any answer: the
         * handler learns through its abort callback, the client gets a 400
         * and the connection closes. */
        LOG_INFO("malformed body from %s: %s", c->peer, reason);
        node_http__conn_abort_req(c);
        send_error(c, 400, reason);
        return;
    }
    LOG_DEBUG("malformed body from %s: %s", c->peer, reason);
    node_http__conn_close(c);
}

/* see internal.h */
void node_http__parse_direct(struct node_http_conn *c, const char *p, size_t n)
{
    llhttp_errno_t err;
    size_t used = n;

    node_http__conn_timer_update(c, true);
    if (llhttp_get_errno(&c->parser) == HPE_PAUSED)
        llhttp_resume(&c->parser);
    c->parse_end = p + n;
    c->flags |= CF_IN_PARSER;
    err = llhttp_execute(&c->parser, p, n);
    c->flags &= ~CF_IN_PARSER;
    if (err == HPE_PAUSED)
        used = (size_t)(llhttp_get_error_pos(&c->parser) - p);
    else if (err != HPE_OK) {
        parse_error(c, err);
        node_http__conn_update_reading(c);
        return;
    }
    if (used < n && c->state != CONN_CLOSED) {
        /* Not expected: the read was capped at the body's end, and the
         * parser's pauses come after a whole span. */
        if (n - used > INBUF_SIZE) {
            LOG_ERROR("conn %s: %zu body bytes left unparsed", c->peer,
                      n - used);
            node_http__conn_close(c);
            return;
        }
        if (c->in == NULL)
            c->in = at_malloc(INBUF_SIZE);
        memcpy(c->in, p + used, n - used);
        c->in_off = 0;
        c->in_len = n - used;
    }
    node_http__parse(c);
}

/* see internal.h */
void node_http__parse(struct node_http_conn *c)
{
    static const char empty[1];
    llhttp_errno_t err;

    if ((c->flags & CF_IN_PARSER) || c->state == CONN_CLOSED)
        return;
    while (node_http__conn_can_parse(c)) {
        bool paused = llhttp_get_errno(&c->parser) == HPE_PAUSED;
        const char *start = c->in != NULL ? c->in + c->in_off : empty;
        size_t len = c->in_len - c->in_off;

        if (!paused && len == 0)
            break;
        if (len > 0 && !c->reader->check_input(c, start, len)) {
            parse_error(c, HPE_INVALID_CHUNK_SIZE);
            break;
        }
        if (paused)
            llhttp_resume(&c->parser);
        c->parse_end = start + len;
        c->flags |= CF_IN_PARSER;
        err = llhttp_execute(&c->parser, start, len);
        c->flags &= ~CF_IN_PARSER;
        if (err == HPE_OK) {
            c->in_off = c->in_len;
            break;
        }
        if (err == HPE_PAUSED) {
            c->in_off += (size_t)(llhttp_get_error_pos(&c->parser) - start);
            continue;
        }
        if (err == HPE_PAUSED_UPGRADE && node_http__conn_active(c)) {
            /* No protocol upgrades: what follows is not HTTP. */
            c->in_off = c->in_len;
            if (c->state != CONN_STOP)
                node_http__conn_move(c, CONN_STOP);
            c->flags |= CF_CLOSE_AFTER;
            if (c->resp == RESP_DONE)
                node_http__conn_request_finish(c);
            break;
        }
        parse_error(c, err);
        break;
    }
    if (c->in_off == c->in_len)
        c->in_off = c->in_len = 0;
    node_http__conn_update_reading(c);
    node_http__conn_timer_update(c, false);
}

static void parser_settings_init(void)
{
    if (parser_settings_ready)
        return;
    llhttp_settings_init(&parser_settings);
    parser_settings.on_message_begin = pcb_message_begin;
    parser_settings.on_url = pcb_url;
    parser_settings.on_header_field = pcb_header_field;
    parser_settings.on_header_value = pcb_header_value;
    parser_settings.on_header_value_complete = pcb_header_value_complete;
    parser_settings.on_headers_complete = pcb_headers_complete;
    parser_settings.on_body = pcb_body;
    parser_settings.on_chunk_header = pcb_chunk_header;
    parser_settings.on_message_complete = pcb_message_complete;
    parser_settings_ready = true;
}

/* see internal.h */
void node_http__parser_init(struct node_http_conn *c)
{
    parser_settings_init();
    llhttp_init(&c->parser, HTTP_REQUEST, &parser_settings);
    c->parser.data = c;
}
