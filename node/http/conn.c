/* HTTP/1.1 server on libuv and llhttp: connections, parsing, responses. */
#include "common/compat.h"

#define AT_LOG_COMP "http"

#include <arpa/inet.h>
#include <fcntl.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <sanitizer/asan_interface.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/common.h"
#include "node/http/http.h"
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

#define INBUF_SIZE     (64 * 1024)
#define DISCARD_MAX    (1024 * 1024)
#define EXT_MIN        (16 * 1024) /* body left before reads go to body_buf */
#define LINGER_MS      2000
#define SENDFILE_BURST (8 * 1024 * 1024)

/* Recycling (see "request objects"): how many freed requests and small
 * write buffers a thread keeps, the largest request buffer kept with its
 * request, and the size of a recycled write buffer. */
#define RECYCLE_MAX  256
#define REQ_BUF_KEEP 4096
#define WRITE_SMALL  2048

enum conn_state {
    CS_IDLE,   /* no byte of the next request yet */
    CS_HEAD,   /* reading a header block */
    CS_ACTIVE, /* a request is being served (or an error response written) */
    CS_LINGER, /* response done, write side shut down, draining input */
    CS_CLOSED, /* uv_close called, waiting for the close callbacks */
};

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

enum body_mode {
    BM_WAIT,    /* handler has not asked for the body: parser paused */
    BM_READ,    /* body delivered to the handler */
    BM_DISCARD, /* response sent early, remaining (small) body dropped */
    BM_STOP,    /* never read further; the connection closes */
};

enum resp_state { RS_NONE, RS_WRITING, RS_SENDFILE, RS_DONE };

enum timer_kind { TK_NONE, TK_IDLE, TK_HEADER, TK_BODY, TK_WRITE, TK_LINGER };

enum write_kind { WK_CONTINUE, WK_RESP, WK_FILE_HDRS, WK_ERROR, WK_UPGRADE };

struct conn_write {
    uv_write_t req;
    struct node_http_conn *conn; /* borrowed */
    struct conn_write *next;     /* mem mode pending list */
    enum write_kind kind;
    size_t len;
    char data[];
};

struct node_http_hdr {
    char *name;  /* owned, lowercase */
    char *value; /* owned */
};

struct node_http_req {
    struct node_http_conn *conn; /* borrowed; NULL once detached */
    int refs;
    enum node_http_method method;
    const char *method_str;     /* static (llhttp) */
    struct at_buf url;          /* path, NUL, query */
    const char *query;          /* points into url, or NULL */
    struct node_http_hdr *hdrs; /* owned array */
    size_t nhdrs, hdrs_cap;
    size_t nlines; /* header lines received, joined or not */
    size_t hdr_bytes;
    struct at_buf cur_name, cur_value;
    bool has_length, chunked, expect_continue;
    uint64_t content_length;
    node_http_body_cb on_body;
    node_http_body_buf_cb body_buf; /* may be NULL */
    node_http_end_cb on_end;
    node_http_abort_cb on_abort;
    void *data;    /* handler's */
    void *context; /* the router's (node_http_req_set_context) */
    bool handler_called, body_requested, paused, aborted;
    bool resp_started, resp_done;
    int status;
    struct at_buf resp_hdrs;
    char peer[64];
    struct node_http_req *next_free; /* in the thread's free list */
};

struct node_http_conn {
    struct node_http_server *srv; /* borrowed */
    struct node_http_conn *prev, *next;
    uv_tcp_t *tcp; /* owned, own allocation so an upgrade can hand it off */
    uv_timer_t timer;
    uv_poll_t poll;
    uv_shutdown_t shutdown;
    int handles; /* open uv handles */
    bool mem;
    struct at_buf *mem_out;                  /* borrowed */
    struct conn_write *mem_head, **mem_tail; /* owned */
    enum conn_state state;
    llhttp_t parser;
    bool in_parser;
    /* llhttp 8.1 accepts chunk data not followed by CRLF (it then reads the
     * excess as the next chunk size): we check the CRLF ourselves. */
    const char *parse_end; /* end of the bytes given to llhttp_execute */
    uint64_t chunk_left;   /* data bytes left in the current chunk */
    int crlf_need;         /* CRLF bytes after chunk data not yet seen */
    bool first_request;
    char *in; /* owned, INBUF_SIZE */
    size_t in_off, in_len;
    char *ext; /* handler memory the pending read goes to (body_buf), or NULL */
    bool reading;
    int err_status;            /* 414/431 decided by a parser callback */
    struct node_http_req *req; /* one reference owned */
    enum body_mode body;
    bool msg_complete;
    enum resp_state resp;
    bool close_after;
    bool sent_continue;
    enum timer_kind timer_kind;
    size_t last_wq;
    int sf_fd;  /* owned, -1 */
    int dup_fd; /* owned, -1 */
    bool poll_init;
    uint64_t sf_off, sf_left;
    uint64_t sf_limit; /* file offset sending stops at until raised */
    bool sf_stalled; /* at sf_limit, waiting for node_http_resp_stream_limit */
    node_http_upgrade_cb up_cb; /* set while a 101 is being written */
    void *up_data;
    char peer[64];
};

struct node_http_server {
    uv_loop_t *loop; /* borrowed */
    uv_tcp_t tcp;
    uv_timer_t grace;
    bool listening;
    bool grace_closing;
    int handles;
    struct node_http_config cfg; /* host not kept */
    node_http_handler handler;
    void *data;
    int port;
    bool stopping;
    struct node_http_conn *conns; /* list of every open or closing conn */
    size_t nconns;
    void (*stop_cb)(void *data);
    void *stop_data;
    uint64_t sendfile_eagain;
};

static llhttp_settings_t parser_settings;
static bool parser_settings_ready;

static void conn_parse(struct node_http_conn *c);
static void conn_close_hard(struct node_http_conn *c);
static void conn_close_graceful(struct node_http_conn *c);
static void conn_timer_update(struct node_http_conn *c, bool progress);
static void conn_update_reading(struct node_http_conn *c);
static void conn_resp_done(struct node_http_conn *c);
static void conn_sendfile(struct node_http_conn *c);
static void conn_upgrade_done(struct node_http_conn *c);
static void srv_maybe_finish(struct node_http_server *s);

/* ---- small helpers ---- */

static void conn_move(struct node_http_conn *c, enum conn_state to)
{
    AT_ASSERT(conn_allowed[c->state] & (1u << to));
    LOG_DEBUG("conn %s: %s -> %s", c->peer, conn_state_names[c->state],
              conn_state_names[to]);
    c->state = to;
}

static const char *status_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

static enum node_http_method map_method(uint8_t m)
{
    switch (m) {
    case HTTP_GET:
        return NODE_HTTP_GET;
    case HTTP_HEAD:
        return NODE_HTTP_HEAD;
    case HTTP_POST:
        return NODE_HTTP_POST;
    case HTTP_PUT:
        return NODE_HTTP_PUT;
    case HTTP_PATCH:
        return NODE_HTTP_PATCH;
    case HTTP_DELETE:
        return NODE_HTTP_DELETE;
    case HTTP_OPTIONS:
        return NODE_HTTP_OPTIONS;
    default:
        return NODE_HTTP_OTHER;
    }
}

static bool req_body_present(const struct node_http_req *r)
{
    return r->chunked || (r->has_length && r->content_length > 0);
}

/* ---- request objects ----
 *
 * With many connections, the requests of one loop iteration are all alive at
 * once (a request goes when its response write completes, in a later
 * iteration): more objects of each size than malloc's per-thread cache holds.
 * malloc then goes through its bins, whose cost grows with the heap's
 * fragmentation: a follower that had applied a long log served the same GET
 * 20% slower than a fresh single node. So a thread keeps freed requests, with
 * their buffers, and small write buffers on free lists (bounded). Under ASan a
 * kept object is poisoned until it is reused. */

static _Thread_local struct node_http_req *req_free_list;
static _Thread_local unsigned req_free_count;
static _Thread_local struct conn_write *write_free_list;
static _Thread_local unsigned write_free_count;
/* servers of this thread not yet freed: objects are kept only while there
 * is one, and the last one to go frees them (so nothing is kept at exit) */
static _Thread_local unsigned recycle_servers;

static void buf_keep(struct at_buf *b)
{
    if (b->cap > REQ_BUF_KEEP) {
        at_buf_release(b);
        return;
    }
    at_buf_reset(b);
    if (b->data != NULL)
        ASAN_POISON_MEMORY_REGION(b->data, b->cap);
}

static void buf_reuse(struct at_buf *b)
{
    if (b->data != NULL)
        ASAN_UNPOISON_MEMORY_REGION(b->data, b->cap);
}

/* Free a request and everything it owns (kept buffers unpoisoned first). */
static void req_destroy(struct node_http_req *r)
{
    if (r->hdrs != NULL)
        ASAN_UNPOISON_MEMORY_REGION(r->hdrs, r->hdrs_cap * sizeof(*r->hdrs));
    buf_reuse(&r->url);
    buf_reuse(&r->cur_name);
    buf_reuse(&r->cur_value);
    buf_reuse(&r->resp_hdrs);
    at_free(r->hdrs);
    at_buf_release(&r->url);
    at_buf_release(&r->cur_name);
    at_buf_release(&r->cur_value);
    at_buf_release(&r->resp_hdrs);
    at_free(r);
}

/* The thread's last server is gone: free what the thread kept. */
static void recycle_drain(void)
{
    while (req_free_list != NULL) {
        struct node_http_req *r = req_free_list;

        ASAN_UNPOISON_MEMORY_REGION(r, sizeof(*r));
        req_free_list = r->next_free;
        req_destroy(r);
    }
    while (write_free_list != NULL) {
        struct conn_write *w = write_free_list;

        ASAN_UNPOISON_MEMORY_REGION(w, WRITE_SMALL);
        write_free_list = w->next;
        at_free(w);
    }
    req_free_count = write_free_count = 0;
}

static struct node_http_req *req_new(struct node_http_conn *c)
{
    struct node_http_req *r = req_free_list;

    if (r != NULL) {
        struct node_http_req keep;

        ASAN_UNPOISON_MEMORY_REGION(r, sizeof(*r));
        req_free_list = r->next_free;
        req_free_count--;
        keep = *r;
        memset(r, 0, sizeof(*r));
        r->url = keep.url;
        r->cur_name = keep.cur_name;
        r->cur_value = keep.cur_value;
        r->resp_hdrs = keep.resp_hdrs;
        r->hdrs = keep.hdrs;
        r->hdrs_cap = keep.hdrs_cap;
        buf_reuse(&r->url);
        buf_reuse(&r->cur_name);
        buf_reuse(&r->cur_value);
        buf_reuse(&r->resp_hdrs);
        if (r->hdrs != NULL)
            ASAN_UNPOISON_MEMORY_REGION(r->hdrs,
                                        r->hdrs_cap * sizeof(*r->hdrs));
    } else {
        r = at_calloc(1, sizeof(*r));
        at_buf_init(&r->url, NODE_HTTP_MAX_URL);
        at_buf_init(&r->cur_name, 0);
        at_buf_init(&r->cur_value, 0);
        at_buf_init(&r->resp_hdrs, 0);
    }
    r->conn = c;
    r->refs = 1;
    r->status = 200;
    r->method_str = "";
    snprintf(r->peer, sizeof(r->peer), "%s", c->peer);
    return r;
}

static void req_free(struct node_http_req *r)
{
    for (size_t i = 0; i < r->nhdrs; i++) {
        at_free(r->hdrs[i].name);
        at_free(r->hdrs[i].value);
    }
    r->nhdrs = 0;
    if (req_free_count >= RECYCLE_MAX || recycle_servers == 0) {
        req_destroy(r);
        return;
    }
    if (r->hdrs_cap * sizeof(*r->hdrs) > REQ_BUF_KEEP) {
        at_free(r->hdrs);
        r->hdrs = NULL;
        r->hdrs_cap = 0;
    } else if (r->hdrs != NULL) {
        ASAN_POISON_MEMORY_REGION(r->hdrs, r->hdrs_cap * sizeof(*r->hdrs));
    }
    buf_keep(&r->url);
    buf_keep(&r->cur_name);
    buf_keep(&r->cur_value);
    buf_keep(&r->resp_hdrs);
    r->next_free = req_free_list;
    req_free_list = r;
    req_free_count++;
    ASAN_POISON_MEMORY_REGION(r, sizeof(*r));
}

/* The connection lets go of its request (response complete or connection
 * gone). */
static void conn_detach_req(struct node_http_conn *c)
{
    struct node_http_req *r = c->req;

    if (r == NULL)
        return;
    c->req = NULL;
    r->conn = NULL;
    node_http_req_unref(r);
}

/* Connection failed before the response completed: tell the handler once. */
static void conn_abort_req(struct node_http_conn *c)
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
    conn_detach_req(c);
}

/* ---- output ---- */

static struct conn_write *write_new(struct node_http_conn *c,
                                    enum write_kind kind,
                                    size_t len)
{
    struct conn_write *w;
    bool small = len <= WRITE_SMALL - sizeof(*w);

    if (small && write_free_list != NULL) {
        w = write_free_list;
        ASAN_UNPOISON_MEMORY_REGION(w, WRITE_SMALL);
        write_free_list = w->next;
        write_free_count--;
    } else {
        w = at_malloc(small ? WRITE_SMALL : sizeof(*w) + len);
    }
    w->conn = c;
    w->next = NULL;
    w->kind = kind;
    w->len = len;
    return w;
}

static void write_free(struct conn_write *w)
{
    if (w->len > WRITE_SMALL - sizeof(*w) || write_free_count >= RECYCLE_MAX ||
        recycle_servers == 0) {
        at_free(w);
        return;
    }
    w->next = write_free_list;
    write_free_list = w;
    write_free_count++;
    ASAN_POISON_MEMORY_REGION(w, WRITE_SMALL);
}

static void on_write_done(struct node_http_conn *c,
                          struct conn_write *w,
                          int status)
{
    enum write_kind kind = w->kind;

    write_free(w);
    if (c->state == CS_CLOSED || c->state == CS_LINGER)
        return;
    if (kind == WK_UPGRADE && status == 0) {
        conn_upgrade_done(c);
        return;
    }
    if (status < 0) {
        LOG_DEBUG("write to %s: %s", c->peer, uv_strerror(status));
        conn_close_hard(c);
        return;
    }
    switch (kind) {
    case WK_CONTINUE:
        return;
    case WK_ERROR:
        conn_detach_req(c);
        conn_close_graceful(c);
        return;
    case WK_FILE_HDRS:
        c->resp = RS_SENDFILE;
        conn_timer_update(c, true);
        conn_sendfile(c);
        return;
    case WK_RESP:
        conn_resp_done(c);
        return;
    case WK_UPGRADE:
        return;
    }
}

static void conn_on_uv_write(uv_write_t *req, int status)
{
    struct conn_write *w = AT_CONTAINER_OF(req, struct conn_write, req);

    on_write_done(w->conn, w, status);
}

/* Queue w (ownership passes). Errors surface in the completion. */
static void conn_write(struct node_http_conn *c, struct conn_write *w)
{
    uv_buf_t b;
    int rv;

    if (c->mem) {
        if (at_buf_append(c->mem_out, w->data, w->len) != 0)
            at_buf_reset(c->mem_out);
        *c->mem_tail = w;
        c->mem_tail = &w->next;
        return;
    }
    b = uv_buf_init(w->data, (unsigned)w->len);
    rv = uv_write(&w->req, (uv_stream_t *)c->tcp, &b, 1, conn_on_uv_write);
    if (rv != 0) {
        LOG_DEBUG("write to %s: %s", c->peer, uv_strerror(rv));
        write_free(w);
        conn_close_hard(c);
        return;
    }
    c->last_wq = uv_stream_get_write_queue_size((uv_stream_t *)c->tcp);
}

static void conn_send_error(struct node_http_conn *c,
                            int status,
                            const char *msg)
{
    struct at_buf body, out;
    struct conn_write *w;

    at_buf_init(&body, 0);
    at_buf_init(&out, 0);
    at_buf_puts(&body, "{\"errors\":[{\"code\":\"BAD_REQUEST\",\"message\":");
    at_buf_json_str(&body, msg, strlen(msg));
    at_buf_puts(&body, "}]}");
    at_buf_printf(&out,
                  "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                  "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                  status, status_reason(status), body.len);
    at_buf_append(&out, body.data, body.len);
    w = write_new(c, WK_ERROR, out.len);
    memcpy(w->data, out.data, out.len);
    at_buf_release(&body);
    at_buf_release(&out);
    c->resp = RS_WRITING;
    c->body = BM_STOP;
    c->close_after = true;
    conn_write(c, w);
}

/* ---- timers and reading ---- */

static bool conn_can_parse(const struct node_http_conn *c)
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
    return conn_can_parse(c) && c->in_off == c->in_len;
}

static void conn_update_reading(struct node_http_conn *c);

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
        if (conn_can_parse(c))
            return TK_BODY;
        return TK_NONE;
    case CS_LINGER:
        return TK_LINGER;
    default:
        return TK_NONE;
    }
}

static void conn_on_timer(uv_timer_t *t);

/* Arm the one timer for what the connection waits on now. Progress restarts
 * body and write timeouts; header and idle deadlines are fixed. */
static void conn_timer_update(struct node_http_conn *c, bool progress)
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
        if (!c->mem && c->resp == RS_WRITING) {
            q = uv_stream_get_write_queue_size((uv_stream_t *)c->tcp);
            if (q < c->last_wq) {
                c->last_wq = q;
                conn_timer_update(c, true);
                return;
            }
        }
        LOG_DEBUG("conn %s: write timeout", c->peer);
        break;
    case TK_LINGER:
        break;
    }
    conn_close_hard(c);
}

/* Where the next read of a Content-Length body may go straight into the
 * handler's memory: nothing buffered, the parser inside the body, enough of
 * it left to be worth it. Returns the most bytes that are all body. */
static size_t conn_ext_want(const struct node_http_conn *c)
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

static void conn_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct node_http_conn *c = h->data;
    size_t want = conn_ext_want(c);

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
    conn_close_hard(c);
}

static void conn_on_data(struct node_http_conn *c, size_t n)
{
    c->in_len += n;
    if (c->state == CS_ACTIVE)
        conn_timer_update(c, true);
    conn_parse(c);
}

static void conn_parse_error(struct node_http_conn *c, llhttp_errno_t err);

/* n body bytes were read into the handler's memory at p (conn_ext_want: all
 * of them body, nothing buffered before them). One parser run over them
 * hands the handler its own memory; whatever the parser leaves (it stopped
 * early) moves to the input buffer and is parsed from there as usual. */
static void conn_on_ext_data(struct node_http_conn *c, const char *p, size_t n)
{
    llhttp_errno_t err;
    size_t used = n;

    conn_timer_update(c, true);
    if (llhttp_get_errno(&c->parser) == HPE_PAUSED)
        llhttp_resume(&c->parser);
    c->parse_end = p + n;
    c->in_parser = true;
    err = llhttp_execute(&c->parser, p, n);
    c->in_parser = false;
    if (err == HPE_PAUSED)
        used = (size_t)(llhttp_get_error_pos(&c->parser) - p);
    else if (err != HPE_OK) {
        conn_parse_error(c, err);
        conn_update_reading(c);
        return;
    }
    if (used < n && c->state != CS_CLOSED) {
        /* Not expected: the read was capped at the body's end, and the
         * parser's pauses come after a whole span. */
        if (n - used > INBUF_SIZE) {
            LOG_ERROR("conn %s: %zu body bytes left unparsed", c->peer,
                      n - used);
            conn_close_hard(c);
            return;
        }
        if (c->in == NULL)
            c->in = at_malloc(INBUF_SIZE);
        memcpy(c->in, p + used, n - used);
        c->in_off = 0;
        c->in_len = n - used;
    }
    conn_parse(c);
}

static void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct node_http_conn *c = s->data;

    AT_UNUSED(buf);
    if (c->state == CS_CLOSED)
        return;
    if (c->state == CS_LINGER) {
        c->in_off = c->in_len = 0;
        if (nread < 0)
            conn_close_hard(c);
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
        conn_on_ext_data(c, buf->base, (size_t)nread);
        return;
    }
    conn_on_data(c, (size_t)nread);
}

static void conn_update_reading(struct node_http_conn *c)
{
    bool want;
    int rv;

    if (c->mem || c->state == CS_CLOSED)
        return;
    want = conn_wants_input(c);
    if (want && !c->reading) {
        rv = uv_read_start((uv_stream_t *)c->tcp, conn_on_alloc, conn_on_read);
        if (rv != 0) {
            LOG_DEBUG("read start %s: %s", c->peer, uv_strerror(rv));
            conn_close_hard(c);
            return;
        }
        c->reading = true;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)c->tcp);
        c->reading = false;
    }
}

/* ---- closing ---- */

static void conn_free(struct node_http_conn *c)
{
    struct node_http_server *s = c->srv;

    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    s->nconns--;
    at_free(c->in);
    at_free(c);
    srv_maybe_finish(s);
}

static void conn_on_close(uv_handle_t *h)
{
    struct node_http_conn *c = h->data;

    if (--c->handles == 0)
        conn_free(c);
}

static void conn_on_tcp_close(uv_handle_t *h)
{
    struct node_http_conn *c = h->data;

    at_free(h);
    c->tcp = NULL;
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

static void conn_close_hard(struct node_http_conn *c)
{
    struct conn_write *w;

    if (c->state == CS_CLOSED)
        return;
    conn_abort_req(c);
    conn_move(c, CS_CLOSED);
    c->reading = false;
    if (c->sf_fd >= 0) {
        close(c->sf_fd);
        c->sf_fd = -1;
    }
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, conn_on_close);
    if (c->poll_init)
        uv_close((uv_handle_t *)&c->poll, conn_on_close);
    if (c->dup_fd >= 0) {
        close(c->dup_fd);
        c->dup_fd = -1;
    }
    if (!c->mem && c->tcp != NULL) {
        uv_close((uv_handle_t *)c->tcp, conn_on_tcp_close);
    } else if (c->mem) {
        while ((w = c->mem_head) != NULL) {
            c->mem_head = w->next;
            write_free(w);
        }
        c->mem_tail = &c->mem_head;
    }
    conn_upgrade_fail(c);
}

static void conn_on_shutdown(uv_shutdown_t *req, int status)
{
    struct node_http_conn *c = req->data;

    if (c->state != CS_LINGER)
        return;
    if (status < 0)
        conn_close_hard(c);
}

/* After a complete response with Connection: close. uv_close would cancel
 * queued writes, so shut the write side down first, then drain input for a
 * moment so that unread request bytes do not turn the close into a reset that
 * destroys the response at the client. */
static void conn_close_graceful(struct node_http_conn *c)
{
    int rv;

    if (c->state == CS_CLOSED || c->state == CS_LINGER)
        return;
    conn_detach_req(c);
    if (c->mem) {
        conn_close_hard(c);
        return;
    }
    conn_move(c, CS_LINGER);
    c->shutdown.data = c;
    rv = uv_shutdown(&c->shutdown, (uv_stream_t *)c->tcp, conn_on_shutdown);
    if (rv != 0) {
        conn_close_hard(c);
        return;
    }
    conn_update_reading(c);
    conn_timer_update(c, false);
}

/* ---- request completion ---- */

/* Response written and request fully read: next request or close. */
static void conn_request_finish(struct node_http_conn *c)
{
    conn_detach_req(c);
    if (c->close_after || c->srv->stopping) {
        conn_close_graceful(c);
        return;
    }
    conn_move(c, CS_IDLE);
    c->first_request = false;
    c->msg_complete = false;
    c->resp = RS_NONE;
    c->body = BM_WAIT;
    c->sent_continue = false;
    c->err_status = 0;
    conn_timer_update(c, false);
}

static void conn_resp_done(struct node_http_conn *c)
{
    c->resp = RS_DONE;
    if (c->req != NULL)
        c->req->resp_done = true;
    if (c->close_after || c->srv->stopping) {
        conn_detach_req(c);
        conn_close_graceful(c);
        return;
    }
    if (c->msg_complete)
        conn_request_finish(c);
    conn_parse(c);
}

/* ---- sendfile ---- */

static void conn_on_poll(uv_poll_t *h, int status, int events)
{
    struct node_http_conn *c = h->data;

    AT_UNUSED(events);
    if (c->state != CS_ACTIVE || c->resp != RS_SENDFILE)
        return;
    uv_poll_stop(&c->poll);
    if (status < 0) {
        LOG_DEBUG("poll %s: %s", c->peer, uv_strerror(status));
        conn_close_hard(c);
        return;
    }
    conn_sendfile(c);
}

static int conn_wait_writable(struct node_http_conn *c, int sock)
{
    int rv;

    if (!c->poll_init) {
        c->dup_fd = fcntl(sock, F_DUPFD_CLOEXEC, 0);
        if (c->dup_fd < 0)
            return -errno;
        rv = uv_poll_init(c->srv->loop, &c->poll, c->dup_fd);
        if (rv != 0) {
            close(c->dup_fd);
            c->dup_fd = -1;
            return rv;
        }
        c->poll.data = c;
        c->poll_init = true;
        c->handles++;
    }
    return uv_poll_start(&c->poll, UV_WRITABLE, conn_on_poll);
}

static void conn_sendfile_mem(struct node_http_conn *c)
{
    char tmp[16384];

    while (c->sf_left > 0) {
        uint64_t avail = c->sf_limit > c->sf_off ? c->sf_limit - c->sf_off : 0;
        ssize_t n;

        if (avail == 0) {
            c->sf_stalled = true;
            return;
        }
        n = pread(c->sf_fd, tmp,
                  (size_t)AT_MIN(sizeof(tmp), AT_MIN(c->sf_left, avail)),
                  (off_t)c->sf_off);
        if (n <= 0) {
            conn_close_hard(c);
            return;
        }
        at_buf_append(c->mem_out, tmp, (size_t)n);
        c->sf_off += (uint64_t)n;
        c->sf_left -= (uint64_t)n;
    }
    close(c->sf_fd);
    c->sf_fd = -1;
    conn_resp_done(c);
}

/* Zero-copy from the file to the non-blocking socket on the loop thread; a
 * burst limit keeps one fast download from starving other connections. */
static void conn_sendfile(struct node_http_conn *c)
{
    uv_os_fd_t sock;
    uint64_t burst = 0;
    int rv;

    if (c->mem) {
        conn_sendfile_mem(c);
        return;
    }
    if (uv_fileno((uv_handle_t *)c->tcp, &sock) != 0) {
        conn_close_hard(c);
        return;
    }
    while (c->sf_left > 0) {
        off_t off = (off_t)c->sf_off;
        uint64_t avail = c->sf_limit > c->sf_off ? c->sf_limit - c->sf_off : 0;
        size_t chunk =
            (size_t)AT_MIN(AT_MIN(c->sf_left, avail), SENDFILE_BURST - burst);
        ssize_t n;

        if (chunk == 0) {
            /* A growing file: wait for node_http_resp_stream_limit. */
            c->sf_stalled = true;
            return;
        }
        n = sendfile(sock, c->sf_fd, &off, chunk);

        if (n > 0) {
            c->sf_off += (uint64_t)n;
            c->sf_left -= (uint64_t)n;
            burst += (uint64_t)n;
            conn_timer_update(c, true);
            if (burst >= SENDFILE_BURST && c->sf_left > 0)
                goto wait;
            continue;
        }
        if (n == 0) {
            /* The file shrank: never pad, the client sees a short body. */
            LOG_WARN("sendfile to %s: file ended %" PRIu64 " bytes early",
                     c->peer, c->sf_left);
            conn_close_hard(c);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c->srv->sendfile_eagain++;
            goto wait;
        }
        LOG_DEBUG("sendfile to %s: %s", c->peer, strerror(errno));
        conn_close_hard(c);
        return;
    }
    close(c->sf_fd);
    c->sf_fd = -1;
    conn_resp_done(c);
    return;

wait:
    rv = conn_wait_writable(c, sock);
    if (rv != 0) {
        LOG_DEBUG("poll %s: %s", c->peer, uv_strerror(rv));
        conn_close_hard(c);
    }
}

/* ---- parser callbacks ---- */

static int pcb_message_begin(llhttp_t *p)
{
    struct node_http_conn *c = p->data;

    if (c->req != NULL || c->state != CS_IDLE)
        return -1; /* NEVER: the parser stays paused while a request runs */
    c->req = req_new(c);
    c->chunk_left = 0;
    c->crlf_need = 0;
    conn_move(c, CS_HEAD);
    conn_timer_update(c, false);
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

static void conn_start_body(struct node_http_conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct node_http_req *r = c->req;
    struct conn_write *w;

    if (r->expect_continue && !c->sent_continue && req_body_present(r) &&
        !r->resp_started) {
        c->sent_continue = true;
        w = write_new(c, WK_CONTINUE, sizeof(cont) - 1);
        memcpy(w->data, cont, sizeof(cont) - 1);
        conn_write(c, w);
    }
}

static int pcb_headers_complete(llhttp_t *p)
{
    struct node_http_conn *c = p->data;
    struct node_http_req *r = c->req;
    struct node_http_server *s = c->srv;
    char *q;
    const char *expect;

    r->method = map_method(p->method);
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
    if (!llhttp_should_keep_alive(p) || p->upgrade || s->stopping)
        c->close_after = true;
    conn_move(c, CS_ACTIVE);
    r->handler_called = true;
    node_http_req_ref(r);
    s->handler(s->data, r);
    node_http_req_unref(r);
    if (c->state != CS_ACTIVE)
        return HPE_PAUSED;
    if (c->body == BM_READ || c->body == BM_DISCARD)
        return 0;
    return HPE_PAUSED;
}

static int pcb_chunk_header(llhttp_t *p)
{
    struct node_http_conn *c = p->data;

    c->chunk_left = p->content_length;
    return 0;
}

/* Check that the bytes following a chunk's data are CRLF, as far as they
 * have arrived; the rest is checked when more input comes (conn_parse). */
static bool chunk_crlf_ok(struct node_http_conn *c, const char *after)
{
    static const char crlf[] = "\r\n";
    size_t avail = (size_t)(c->parse_end - after);
    size_t n = avail < 2 ? avail : 2;

    if (memcmp(after, crlf, n) != 0)
        return false;
    c->crlf_need = (int)(2 - n);
    return true;
}

static int pcb_body(llhttp_t *p, const char *at, size_t n)
{
    struct node_http_conn *c = p->data;
    struct node_http_req *r = c->req;
    int rv = 0;

    if (c->state != CS_ACTIVE || r == NULL)
        return HPE_PAUSED;
    /* Resuming with no new bytes flushes an empty span: not body data. */
    if (n == 0)
        return 0;
    if (r->chunked) {
        c->chunk_left = n < c->chunk_left ? c->chunk_left - n : 0;
        if (c->chunk_left == 0 && !chunk_crlf_ok(c, at + n)) {
            llhttp_set_error_reason(p, "chunk data not followed by CRLF");
            return HPE_USER;
        }
    }
    if (c->body == BM_DISCARD)
        return 0;
    if (c->body != BM_READ)
        return HPE_PAUSED;
    if (r->on_body != NULL)
        rv = r->on_body(r, at, n);
    if (c->state != CS_ACTIVE)
        return HPE_PAUSED;
    if (c->body == BM_DISCARD)
        return 0;
    if (c->body != BM_READ)
        return HPE_PAUSED;
    if (rv == NODE_HTTP_PAUSE)
        r->paused = true;
    return r->paused ? HPE_PAUSED : 0;
}

static int pcb_message_complete(llhttp_t *p)
{
    struct node_http_conn *c = p->data;
    struct node_http_req *r = c->req;

    if (c->state != CS_ACTIVE || r == NULL)
        return HPE_PAUSED;
    c->msg_complete = true;
    if (c->body == BM_READ && r->on_end != NULL && !r->aborted)
        r->on_end(r);
    if (c->state == CS_ACTIVE && c->resp == RS_DONE)
        conn_request_finish(c);
    /* Pipelining: the next request waits until this response is done. */
    return HPE_PAUSED;
}

static void conn_parse_error(struct node_http_conn *c, llhttp_errno_t err)
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
    if (c->state == CS_IDLE || c->state == CS_HEAD) {
        LOG_INFO("malformed request from %s: %s", c->peer, reason);
        if (c->state == CS_IDLE)
            conn_move(c, CS_HEAD);
        conn_move(c, CS_ACTIVE);
        conn_detach_req(c);
        conn_send_error(c, status, reason);
        return;
    }
    if (c->state == CS_ACTIVE && c->resp == RS_NONE) {
        /* A malformed body (bad chunk size, ...) before any answer: the
         * handler learns through its abort callback, the client gets a 400
         * and the connection closes. */
        LOG_INFO("malformed body from %s: %s", c->peer, reason);
        conn_abort_req(c);
        conn_send_error(c, 400, reason);
        return;
    }
    LOG_DEBUG("malformed body from %s: %s", c->peer, reason);
    conn_close_hard(c);
}

/* The only caller of llhttp_execute. Parses buffered input for as long as
 * the connection may consume it, resuming after each pause once allowed. */
static void conn_parse(struct node_http_conn *c)
{
    static const char empty[1];
    llhttp_errno_t err;

    if (c->in_parser || c->state == CS_CLOSED)
        return;
    while (conn_can_parse(c)) {
        bool paused = llhttp_get_errno(&c->parser) == HPE_PAUSED;
        const char *start = c->in != NULL ? c->in + c->in_off : empty;
        size_t len = c->in_len - c->in_off;

        if (!paused && len == 0)
            break;
        if (c->crlf_need > 0 && len > 0) {
            const char *want = c->crlf_need == 2 ? "\r\n" : "\n";
            size_t n = len < (size_t)c->crlf_need ? len : (size_t)c->crlf_need;
            if (memcmp(start, want, n) != 0) {
                conn_parse_error(c, HPE_INVALID_CHUNK_SIZE);
                break;
            }
            c->crlf_need -= (int)n;
        }
        if (paused)
            llhttp_resume(&c->parser);
        c->parse_end = start + len;
        c->in_parser = true;
        err = llhttp_execute(&c->parser, start, len);
        c->in_parser = false;
        if (err == HPE_OK) {
            c->in_off = c->in_len;
            break;
        }
        if (err == HPE_PAUSED) {
            c->in_off += (size_t)(llhttp_get_error_pos(&c->parser) - start);
            continue;
        }
        if (err == HPE_PAUSED_UPGRADE && c->state == CS_ACTIVE) {
            /* No protocol upgrades: what follows is not HTTP. */
            c->in_off = c->in_len;
            c->body = BM_STOP;
            c->close_after = true;
            if (c->resp == RS_DONE)
                conn_request_finish(c);
            break;
        }
        conn_parse_error(c, err);
        break;
    }
    if (c->in_off == c->in_len)
        c->in_off = c->in_len = 0;
    conn_update_reading(c);
    conn_timer_update(c, false);
}

/* ---- connections ---- */

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

static struct node_http_conn *conn_new(struct node_http_server *s)
{
    struct node_http_conn *c = at_calloc(1, sizeof(*c));

    c->srv = s;
    c->sf_fd = -1;
    c->dup_fd = -1;
    c->state = CS_IDLE;
    c->first_request = true;
    c->mem_tail = &c->mem_head;
    llhttp_init(&c->parser, HTTP_REQUEST, &parser_settings);
    c->parser.data = c;
    uv_timer_init(s->loop, &c->timer);
    c->timer.data = c;
    c->handles = 1;
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    snprintf(c->peer, sizeof(c->peer), "mem");
    return c;
}

static void conn_set_peer(struct node_http_conn *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (uv_tcp_getpeername(c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        uv_ip4_name(a, ip, sizeof(ip));
        port = ntohs(a->sin_port);
        snprintf(c->peer, sizeof(c->peer), "%s:%d", ip, port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        uv_ip6_name(a, ip, sizeof(ip));
        port = ntohs(a->sin6_port);
        snprintf(c->peer, sizeof(c->peer), "[%s]:%d", ip, port);
    }
}

static void srv_on_connection(uv_stream_t *ls, int status)
{
    struct node_http_server *s = ls->data;
    struct node_http_conn *c;
    int rv;

    if (status < 0) {
        LOG_WARN("accept: %s", uv_strerror(status));
        return;
    }
    if (s->stopping)
        return;
    c = conn_new(s);
    c->tcp = at_malloc(sizeof(*c->tcp));
    uv_tcp_init(s->loop, c->tcp);
    c->tcp->data = c;
    c->handles++;
    rv = uv_accept(ls, (uv_stream_t *)c->tcp);
    if (rv != 0) {
        LOG_DEBUG("accept: %s", uv_strerror(rv));
        conn_close_hard(c);
        return;
    }
    uv_tcp_nodelay(c->tcp, 1);
    conn_set_peer(c);
    conn_timer_update(c, false);
    conn_update_reading(c);
}

/* ---- server ---- */

static void srv_on_close(uv_handle_t *h)
{
    struct node_http_server *s = h->data;

    if (--s->handles == 0) {
        void (*cb)(void *) = s->stop_cb;
        void *data = s->stop_data;

        at_free(s);
        if (--recycle_servers == 0)
            recycle_drain();
        if (cb != NULL)
            cb(data);
    }
}

static void srv_maybe_finish(struct node_http_server *s)
{
    if (!s->stopping || s->nconns != 0 || s->grace_closing)
        return;
    s->grace_closing = true;
    uv_timer_stop(&s->grace);
    uv_close((uv_handle_t *)&s->grace, srv_on_close);
}

static void srv_on_grace(uv_timer_t *t)
{
    struct node_http_server *s = t->data;
    struct node_http_conn *c, *next;

    for (c = s->conns; c != NULL; c = next) {
        next = c->next;
        if (c->state != CS_CLOSED) {
            LOG_DEBUG("conn %s: closed at shutdown", c->peer);
            conn_close_hard(c);
        }
    }
}

static void srv_init(struct node_http_server *s,
                     uv_loop_t *loop,
                     const struct node_http_config *cfg,
                     node_http_handler handler,
                     void *data)
{
    parser_settings_init();
    recycle_servers++;
    s->loop = loop;
    s->cfg = *cfg;
    s->cfg.host = NULL;
    if (s->cfg.backlog <= 0)
        s->cfg.backlog = 511;
    if (s->cfg.header_timeout_ms == 0)
        s->cfg.header_timeout_ms = 30000;
    if (s->cfg.idle_timeout_ms == 0)
        s->cfg.idle_timeout_ms = 60000;
    if (s->cfg.body_timeout_ms == 0)
        s->cfg.body_timeout_ms = 60000;
    if (s->cfg.write_timeout_ms == 0)
        s->cfg.write_timeout_ms = 60000;
    if (s->cfg.shutdown_grace_ms == 0)
        s->cfg.shutdown_grace_ms = 10000;
    s->handler = handler;
    s->data = data;
    uv_timer_init(loop, &s->grace);
    s->grace.data = s;
    s->handles = 1;
}

/* see http.h */
int node_http_start(struct node_http_server **out,
                    uv_loop_t *loop,
                    const struct node_http_config *cfg,
                    node_http_handler handler,
                    void *data,
                    char *errmsg)
{
    struct node_http_server *s;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    const char *host = cfg->host != NULL ? cfg->host : "127.0.0.1";
    int rv;

    if (cfg->port < 0 || cfg->port > 65535) {
        at_errmsg_printf(errmsg, "listen port %d: out of range", cfg->port);
        return AT_EINVAL;
    }
    if (strchr(host, ':') != NULL)
        rv = uv_ip6_addr(host, cfg->port, (struct sockaddr_in6 *)&ss);
    else
        rv = uv_ip4_addr(host, cfg->port, (struct sockaddr_in *)&ss);
    if (rv != 0) {
        at_errmsg_printf(errmsg, "listen address '%s': %s", host,
                         uv_strerror(rv));
        return AT_EINVAL;
    }
    s = at_calloc(1, sizeof(*s));
    srv_init(s, loop, cfg, handler, data);
    uv_tcp_init(loop, &s->tcp);
    s->tcp.data = s;
    s->handles++;
    s->listening = true;
    rv = uv_tcp_bind(&s->tcp, (struct sockaddr *)&ss, 0);
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&s->tcp, s->cfg.backlog,
                       srv_on_connection);
    if (rv == 0)
        rv = uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&ss, &len);
    if (rv != 0) {
        at_errmsg_printf(errmsg, "listen on '%s' port %d: %s", host, cfg->port,
                         uv_strerror(rv));
        /* The handles close on the next loop turn; s is freed then. */
        s->stopping = true;
        s->grace_closing = true;
        uv_close((uv_handle_t *)&s->tcp, srv_on_close);
        uv_close((uv_handle_t *)&s->grace, srv_on_close);
        return at_err_from_errno(rv);
    }
    s->port = ss.ss_family == AF_INET6
                  ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                  : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    *out = s;
    return 0;
}

/* see http.h */
int node_http_port(const struct node_http_server *s)
{
    return s->port;
}

/* see http.h */
void node_http_stop(struct node_http_server *s,
                    void (*cb)(void *data),
                    void *data)
{
    struct node_http_conn *c, *next;

    if (s->stopping)
        return;
    s->stopping = true;
    s->stop_cb = cb;
    s->stop_data = data;
    if (s->listening) {
        s->listening = false;
        uv_close((uv_handle_t *)&s->tcp, srv_on_close);
    }
    for (c = s->conns; c != NULL; c = next) {
        next = c->next;
        if (c->state == CS_IDLE)
            conn_close_hard(c);
        else if (c->state == CS_HEAD || c->state == CS_ACTIVE)
            c->close_after = true;
    }
    uv_timer_start(&s->grace, srv_on_grace, s->cfg.shutdown_grace_ms, 0);
    srv_maybe_finish(s);
}

/* ---- request accessors ---- */

/* see http.h */
enum node_http_method node_http_req_method(const struct node_http_req *r)
{
    return r->method;
}

/* see http.h */
const char *node_http_req_method_str(const struct node_http_req *r)
{
    return r->method_str;
}

/* see http.h */
const char *node_http_req_path(const struct node_http_req *r)
{
    return r->url.data != NULL ? r->url.data : "";
}

/* see http.h */
const char *node_http_req_query(const struct node_http_req *r)
{
    return r->query;
}

/* see http.h */
const char *node_http_req_header(const struct node_http_req *r,
                                 const char *name)
{
    for (size_t i = 0; i < r->nhdrs; i++) {
        if (strcasecmp(r->hdrs[i].name, name) == 0)
            return r->hdrs[i].value;
    }
    return NULL;
}

/* see http.h */
bool node_http_req_has_body(const struct node_http_req *r)
{
    return req_body_present(r);
}

/* see http.h */
bool node_http_req_has_length(const struct node_http_req *r)
{
    return r->has_length;
}

/* see http.h */
uint64_t node_http_req_content_length(const struct node_http_req *r)
{
    return r->content_length;
}

/* see http.h */
bool node_http_req_chunked(const struct node_http_req *r)
{
    return r->chunked;
}

/* see http.h */
const char *node_http_req_peer(const struct node_http_req *r)
{
    return r->peer;
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
    conn_start_body(c);
    conn_parse(c);
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
        conn_update_reading(r->conn);
}

/* see http.h */
void node_http_req_resume(struct node_http_req *r)
{
    if (!r->paused)
        return;
    r->paused = false;
    if (r->conn != NULL)
        conn_parse(r->conn);
}

/* see http.h */
void node_http_req_set_data(struct node_http_req *r, void *data)
{
    r->data = data;
}

/* see http.h */
void node_http_req_set_context(struct node_http_req *r, void *context)
{
    r->context = context;
}

/* see http.h */
void *node_http_req_context(const struct node_http_req *r)
{
    return r->context;
}

/* see http.h */
void *node_http_req_data(const struct node_http_req *r)
{
    return r->data;
}

/* see http.h */
void node_http_req_ref(struct node_http_req *r)
{
    r->refs++;
}

/* see http.h */
void node_http_req_unref(struct node_http_req *r)
{
    AT_ASSERT(r->refs > 0);
    if (--r->refs == 0)
        req_free(r);
}

/* see http.h */
bool node_http_req_done(const struct node_http_req *r)
{
    return r->aborted || r->resp_done || r->conn == NULL;
}

/* ---- responses ---- */

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
            r->conn->close_after = true;
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
    r->conn->close_after = true;
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

/* see http.h */
void node_http_req_upgrade(struct node_http_req *r,
                           const char *protocol,
                           node_http_upgrade_cb cb,
                           void *data)
{
    struct node_http_conn *c = r->conn;
    struct conn_write *w;
    struct at_buf b;

    if (!resp_usable(r) || c->state != CS_ACTIVE || c->body != BM_WAIT ||
        req_body_present(r) || !proto_ok(protocol)) {
        cb(data, NULL);
        return;
    }
    r->resp_started = true;
    c->body = BM_STOP;
    c->close_after = true;
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
    w = write_new(c, WK_UPGRADE, b.len);
    memcpy(w->data, b.data, b.len);
    at_buf_release(&b);
    c->resp = RS_WRITING;
    conn_write(c, w);
    conn_timer_update(c, false);
}

/* The 101 is written: hand the socket over, unless the client already sent
 * bytes past the request (they would belong to the new protocol but sit in
 * our buffer). */
static void conn_upgrade_done(struct node_http_conn *c)
{
    node_http_upgrade_cb cb = c->up_cb;
    void *data = c->up_data;
    uv_tcp_t *tcp = c->tcp;

    if (c->mem || tcp == NULL || c->in_len > c->in_off || c->reading) {
        LOG_INFO("upgrade from %s: unexpected bytes after the request",
                 c->peer);
        conn_close_hard(c);
        return;
    }
    c->up_cb = NULL;
    if (c->req != NULL)
        c->req->resp_done = true;
    conn_detach_req(c);
    uv_read_stop((uv_stream_t *)tcp);
    tcp->data = NULL;
    c->tcp = NULL;
    c->handles--;
    conn_close_hard(c);
    cb(data, (uv_stream_t *)tcp);
}

/* The handler answers before the body was read: decide whether to drain a
 * small remaining body (keep-alive) or stop reading and close. */
static void resp_settle_body(struct node_http_conn *c)
{
    struct node_http_req *r = c->req;

    if (c->msg_complete)
        return;
    switch (c->body) {
    case BM_WAIT:
        if (!req_body_present(r)) {
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

/* Status line and headers for a body of clen bytes, plus room for `extra`
 * bytes after them in the same allocation. */
static struct conn_write *resp_head(struct node_http_req *r,
                                    enum write_kind kind,
                                    uint64_t clen,
                                    size_t extra,
                                    size_t *head_len)
{
    struct node_http_conn *c = r->conn;
    char line[80], tail[80];
    size_t nl, nt = 0, hl;
    struct conn_write *w;

    nl = (size_t)snprintf(line, sizeof(line), "HTTP/1.1 %d %s\r\n", r->status,
                          status_reason(r->status));
    AT_ASSERT(nl < sizeof(line));
    if (r->status != 204 && r->status != 304 && r->status >= 200)
        nt = (size_t)snprintf(tail, sizeof(tail),
                              "Content-Length: %" PRIu64 "\r\n", clen);
    if (c->close_after || c->srv->stopping)
        nt += (size_t)snprintf(tail + nt, sizeof(tail) - nt,
                               "Connection: close\r\n");
    nt += (size_t)snprintf(tail + nt, sizeof(tail) - nt, "\r\n");
    AT_ASSERT(nt < sizeof(tail));
    hl = nl + r->resp_hdrs.len + nt;
    w = write_new(c, kind, hl + extra);
    memcpy(w->data, line, nl);
    if (r->resp_hdrs.len > 0)
        memcpy(w->data + nl, r->resp_hdrs.data, r->resp_hdrs.len);
    memcpy(w->data + nl + r->resp_hdrs.len, tail, nt);
    *head_len = hl;
    return w;
}

/* see http.h */
void node_http_resp_send(struct node_http_req *r, const void *p, size_t n)
{
    struct node_http_conn *c = r->conn;
    struct conn_write *w;
    size_t hl, bn;

    if (!resp_usable(r))
        return;
    r->resp_started = true;
    resp_settle_body(c);
    if (r->status == 204 || r->status == 304)
        n = 0;
    bn = r->method == NODE_HTTP_HEAD ? 0 : n;
    w = resp_head(r, WK_RESP, n, bn, &hl);
    if (bn > 0)
        memcpy(w->data + hl, p, bn);
    c->resp = RS_WRITING;
    conn_write(c, w);
    if (c->state == CS_ACTIVE)
        conn_parse(c);
}

static void resp_file(struct node_http_req *r,
                      int fd,
                      uint64_t offset,
                      uint64_t len,
                      uint64_t limit)
{
    struct node_http_conn *c = r->conn;
    struct conn_write *w;
    size_t hl;
    bool body;

    if (!resp_usable(r)) {
        close(fd);
        return;
    }
    r->resp_started = true;
    resp_settle_body(c);
    body = r->method != NODE_HTTP_HEAD && len > 0 && r->status != 204 &&
           r->status != 304;
    w = resp_head(r, body ? WK_FILE_HDRS : WK_RESP, len, 0, &hl);
    if (body) {
        c->sf_fd = fd;
        c->sf_off = offset;
        c->sf_left = len;
        c->sf_limit = limit;
        c->sf_stalled = false;
    } else {
        close(fd);
    }
    c->resp = RS_WRITING;
    conn_write(c, w);
    if (c->state == CS_ACTIVE)
        conn_parse(c);
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

    if (c == NULL || r->aborted || c->req != r || c->state == CS_CLOSED ||
        limit <= c->sf_limit)
        return;
    c->sf_limit = limit;
    if (c->resp == RS_SENDFILE && c->sf_stalled) {
        c->sf_stalled = false;
        conn_sendfile(c);
    }
}

/* see http.h */
void node_http_resp_abort(struct node_http_req *r)
{
    if (r->conn == NULL || r->aborted || r->resp_done)
        return;
    conn_close_hard(r->conn);
}

/* ---- Range ---- */

static int parse_digits(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;

    if (n == 0)
        return AT_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return AT_EINVAL;
        if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
            return AT_EINVAL;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/* see http.h */
int node_http_parse_range(const char *value,
                          uint64_t size,
                          uint64_t *start,
                          uint64_t *end)
{
    const char *spec, *dash;
    size_t len;
    uint64_t a, b;

    if (value == NULL || strncasecmp(value, "bytes=", 6) != 0)
        return AT_EINVAL;
    spec = value + 6;
    len = strlen(spec);
    /* Optional whitespace around the single range-spec. */
    while (len > 0 && (*spec == ' ' || *spec == '\t')) {
        spec++;
        len--;
    }
    while (len > 0 && (spec[len - 1] == ' ' || spec[len - 1] == '\t'))
        len--;
    if (memchr(spec, ',', len) != NULL)
        return AT_EINVAL; /* several ranges: serve the whole resource */
    dash = memchr(spec, '-', len);
    if (dash == NULL)
        return AT_EINVAL;
    if (dash == spec) {
        /* suffix-range: the last b bytes */
        if (parse_digits(dash + 1, len - 1, &b) != 0)
            return AT_EINVAL;
        if (b == 0 || size == 0)
            return AT_ERANGE;
        *start = b >= size ? 0 : size - b;
        *end = size - 1;
        return 0;
    }
    if (parse_digits(spec, (size_t)(dash - spec), &a) != 0)
        return AT_EINVAL;
    if ((size_t)(dash - spec) + 1 == len) {
        b = UINT64_MAX;
    } else {
        if (parse_digits(dash + 1, len - (size_t)(dash - spec) - 1, &b) != 0)
            return AT_EINVAL;
        if (a > b)
            return AT_EINVAL;
    }
    if (a >= size)
        return AT_ERANGE;
    *start = a;
    *end = b >= size ? size - 1 : b;
    return 0;
}

/* ---- test seams ---- */

/* see http_internal.h */
struct node_http_server *node_http__server_new_mem(
    uv_loop_t *loop,
    const struct node_http_config *cfg,
    node_http_handler handler,
    void *data)
{
    struct node_http_server *s = at_calloc(1, sizeof(*s));

    srv_init(s, loop, cfg, handler, data);
    return s;
}

/* see http_internal.h */
struct node_http_conn *node_http__conn_new_mem(struct node_http_server *s,
                                               struct at_buf *out)
{
    struct node_http_conn *c = conn_new(s);

    c->mem = true;
    c->mem_out = out;
    conn_timer_update(c, false);
    return c;
}

/* see http_internal.h */
size_t node_http__conn_feed(struct node_http_conn *c, const char *p, size_t n)
{
    size_t room;

    if (c->state == CS_CLOSED || c->state == CS_LINGER ||
        !conn_wants_input(c) || n == 0)
        return 0;
    if (c->in == NULL)
        c->in = at_malloc(INBUF_SIZE);
    if (c->in_off == c->in_len)
        c->in_off = c->in_len = 0;
    room = INBUF_SIZE - c->in_len;
    n = AT_MIN(n, room);
    memcpy(c->in + c->in_len, p, n);
    conn_on_data(c, n);
    return n;
}

/* see http_internal.h */
int node_http__conn_flush(struct node_http_conn *c)
{
    struct conn_write *w;
    int n = 0;

    while (c->state != CS_CLOSED && (w = c->mem_head) != NULL) {
        c->mem_head = w->next;
        if (c->mem_head == NULL)
            c->mem_tail = &c->mem_head;
        on_write_done(c, w, 0);
        n++;
    }
    return n;
}

/* see http_internal.h */
void node_http__conn_eof(struct node_http_conn *c)
{
    if (c->state != CS_CLOSED)
        conn_on_eof(c);
}

/* see http_internal.h */
bool node_http__conn_closed(const struct node_http_conn *c)
{
    return c->state == CS_CLOSED;
}

/* see http_internal.h */
void node_http__conn_close(struct node_http_conn *c)
{
    conn_close_hard(c);
}

/* see http_internal.h */
uint64_t node_http__sendfile_eagains(const struct node_http_server *s)
{
    return s->sendfile_eagain;
}
