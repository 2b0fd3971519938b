/* Upload proxy: streams an upload request to the owner node's peer listener
 * and relays its answer (see proxy.h).
 *
 * Life of one relay (struct proxy): resolve -> bind + connect (connect
 * timeout) -> write the request head -> ask the client for its body and
 * stream it (pausing the client above the high-water mark, resuming below
 * the low-water mark) -> parse the owner's answer -> answer the client ->
 * close. The struct is freed when every handle and write it started is done
 * (`refs`); the client request is referenced until then. */
#define AT_LOG_COMP "proxy"
#include "common/compat.h"

#include <strings.h>

#include <llhttp.h>

#include "node/cluster/peer_api.h"
#include "node/cluster/proxy.h"
#include "node/reply/reply.h"
#include "proto/peer.h"

struct proxy {
    struct node_api *api;      /* borrowed */
    struct node_http_req *req; /* one reference, until the last put */
    char *addr;                /* owned: owner "host:port" */
    int refs;                  /* handles, requests and writes in flight */
    uv_timer_t timer;          /* connect, then idle timeout */
    uv_tcp_t tcp;
    bool tcp_init;
    /* the connection to the owner: &tcp, or with peer mutual TLS the
     * local end of node_http_dial_tls (owned, freed when closed) */
    uv_stream_t *stream;
    char host[256]; /* the owner's host, which its certificate must name */
    uv_connect_t conn;
    uv_getaddrinfo_t gai;
    bool gai_pending;
    bool connected;
    bool closing;
    bool replied;
    bool body_open; /* the client's body is being read */
    bool chunked;   /* the body goes out chunk-encoded */
    bool head;      /* HEAD request: the answer has no body */
    bool paused;    /* the client is paused by us */
    /* A write to the owner failed: the owner may have answered early and
     * closed (e.g. 409 or 416 before reading the body). The rest of the body
     * is dropped and the read side decides: the answer, or a failure. */
    bool write_failed;
    size_t queued; /* body bytes written but not yet completed */
    /* the owner's answer */
    llhttp_t parser;
    bool resp_done;
    int status;
    struct at_buf hdrs;  /* "name\0value\0" pairs, bounded */
    struct at_buf field; /* current header name */
    struct at_buf value; /* current header value */
    struct at_buf body;  /* bounded by NODE_PROXY_MAX_BODY */
    size_t head_bytes;
};

struct pwrite {
    uv_write_t w;
    struct proxy *p;
    size_t body_len; /* body bytes in this write (not framing) */
    char data[];
};

static llhttp_settings_t resp_settings;
static bool resp_settings_init;

static void proxy_put(struct proxy *p)
{
    if (--p->refs > 0)
        return;
    node_http_req_set_data(p->req, NULL);
    node_http_req_unref(p->req);
    at_buf_release(&p->hdrs);
    at_buf_release(&p->field);
    at_buf_release(&p->value);
    at_buf_release(&p->body);
    free(p->addr);
    free(p);
}

static void on_handle_closed(uv_handle_t *h)
{
    proxy_put(h->data);
}

static void on_pipe_closed(uv_handle_t *h)
{
    struct proxy *p = h->data;

    at_free(h);
    proxy_put(p);
}

/* Close everything (idempotent); the struct goes once all is done. */
static void proxy_close(struct proxy *p)
{
    if (p->closing)
        return;
    p->closing = true;
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, on_handle_closed);
    if (p->tcp_init)
        uv_close((uv_handle_t *)p->stream, p->stream == (uv_stream_t *)&p->tcp
                                               ? on_handle_closed
                                               : on_pipe_closed);
    if (p->gai_pending)
        uv_cancel((uv_req_t *)&p->gai);
}

/* The client's body callbacks stop once we answered (http.h). */
static void proxy_reply_done(struct proxy *p)
{
    p->replied = true;
    p->body_open = false;
    p->paused = false;
}

/* Answer with an error (once) and close. unreachable: the owner was never
 * reached, the client should restart the upload. */
static void proxy_fail(struct proxy *p, bool unreachable, const char *why)
{
    if (!p->replied && !node_http_req_done(p->req)) {
        LOG_WARN("upload proxy %s %s to %s: %s",
                 node_http_req_method_str(p->req), node_http_req_path(p->req),
                 p->addr, why);
        if (unreachable) {
            node_reply_error(p->req, 404, "BLOB_UPLOAD_UNKNOWN",
                             "the node owning this upload is unreachable (%s); "
                             "restart the upload",
                             why);
        } else {
            node_http_resp_close(p->req);
            node_reply_error(p->req, 502, "UNAVAILABLE",
                             "the node owning this upload failed: %s", why);
        }
    }
    proxy_reply_done(p);
    proxy_close(p);
}

static void timer_restart(struct proxy *p, uint64_t ms);

static void on_timer(uv_timer_t *t)
{
    struct proxy *p = t->data;

    if (!p->connected)
        proxy_fail(p, true, "connect timed out");
    else
        proxy_fail(p, false, "no progress (timeout)");
}

static void timer_restart(struct proxy *p, uint64_t ms)
{
    if (!p->closing)
        uv_timer_start(&p->timer, on_timer, ms, 0);
}

/* ---- the owner's answer ---- */

static struct proxy *parser_proxy(llhttp_t *h)
{
    return h->data;
}

static int rcb_field(llhttp_t *h, const char *at, size_t n)
{
    struct proxy *p = parser_proxy(h);

    p->head_bytes += n;
    if (p->head_bytes > NODE_PROXY_MAX_HEAD)
        return -1;
    return at_buf_append(&p->field, at, n) == 0 ? 0 : -1;
}

static int rcb_value(llhttp_t *h, const char *at, size_t n)
{
    struct proxy *p = parser_proxy(h);

    p->head_bytes += n;
    if (p->head_bytes > NODE_PROXY_MAX_HEAD)
        return -1;
    return at_buf_append(&p->value, at, n) == 0 ? 0 : -1;
}

/* Response headers that reach the client: the upload protocol's and ours. */
static bool relayed_header(const char *name)
{
    static const char *names[] = {
        "location",
        "range",
        "docker-upload-uuid",
        "docker-content-digest",
        "oci-chunk-min-length",
        "content-type",
        "docker-distribution-api-version",
        "retry-after",
    };

    /* the peer protocol is between nodes, not the client's business */
    if (strcasecmp(name, PROTO_PEER_VERSION_HEADER) == 0)
        return false;
    if (strncasecmp(name, "x-atoll-", 8) == 0)
        return true;
    for (size_t i = 0; i < AT_ARRAY_SIZE(names); i++)
        if (strcasecmp(name, names[i]) == 0)
            return true;
    return false;
}

static int rcb_value_complete(llhttp_t *h)
{
    struct proxy *p = parser_proxy(h);
    int rv = 0;

    if (at_buf_append(&p->field, "", 1) != 0 ||
        at_buf_append(&p->value, "", 1) != 0)
        return -1;
    if (relayed_header(p->field.data)) {
        rv |= at_buf_append(&p->hdrs, p->field.data, p->field.len);
        rv |= at_buf_append(&p->hdrs, p->value.data, p->value.len);
    }
    at_buf_reset(&p->field);
    at_buf_reset(&p->value);
    return rv == 0 ? 0 : -1;
}

static int rcb_headers_complete(llhttp_t *h)
{
    struct proxy *p = parser_proxy(h);

    p->status = h->status_code;
    /* 1 = no body (a HEAD answer carries Content-Length only) */
    return p->head ? 1 : 0;
}

static int rcb_body(llhttp_t *h, const char *at, size_t n)
{
    struct proxy *p = parser_proxy(h);

    if (p->body.len + n > NODE_PROXY_MAX_BODY)
        return -1;
    return at_buf_append(&p->body, at, n) == 0 ? 0 : -1;
}

static int rcb_message_complete(llhttp_t *h)
{
    struct proxy *p = parser_proxy(h);

    if (p->status < 200) {
        /* an interim answer (we never send Expect): wait for the real one */
        at_buf_reset(&p->hdrs);
        at_buf_reset(&p->body);
        return 0;
    }
    p->resp_done = true;
    return HPE_PAUSED;
}

static void settings_init(void)
{
    if (resp_settings_init)
        return;
    llhttp_settings_init(&resp_settings);
    resp_settings.on_header_field = rcb_field;
    resp_settings.on_header_value = rcb_value;
    resp_settings.on_header_value_complete = rcb_value_complete;
    resp_settings.on_headers_complete = rcb_headers_complete;
    resp_settings.on_body = rcb_body;
    resp_settings.on_message_complete = rcb_message_complete;
    resp_settings_init = true;
}

/* The owner answered: the same status, the relayed headers, the body. */
static void relay_answer(struct proxy *p)
{
    struct node_http_req *req = p->req;
    const char *h = p->hdrs.data;
    const char *end = h + p->hdrs.len;

    if (p->replied || node_http_req_done(req)) {
        proxy_reply_done(p);
        return;
    }
    node_http_resp_status(req, p->status);
    while (h != NULL && h < end) {
        const char *v = h + strlen(h) + 1;
        node_http_resp_header(req, h, "%s", v);
        h = v + strlen(v) + 1;
    }
    if (p->body_open) {
        /* The owner answered before the whole body went out (an error):
         * the client's connection cannot be reused. */
        node_http_resp_close(req);
    }
    proxy_reply_done(p);
    node_http_resp_send(req, p->head ? NULL : p->body.data,
                        p->head ? 0 : p->body.len);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char rbuf[64 * 1024]; /* the loop is single-threaded */

    AT_UNUSED(h);
    AT_UNUSED(suggested);
    buf->base = rbuf;
    buf->len = sizeof(rbuf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct proxy *p = s->data;
    llhttp_errno_t err;

    if (p->closing)
        return;
    if (n < 0) {
        if (n == UV_EOF) {
            err = llhttp_finish(&p->parser);
            if (err == HPE_OK && p->resp_done) {
                relay_answer(p);
                proxy_close(p);
                return;
            }
            proxy_fail(p, false, "connection closed before a full answer");
        } else {
            proxy_fail(p, false, uv_strerror((int)n));
        }
        return;
    }
    if (n == 0)
        return;
    timer_restart(p, NODE_PROXY_IDLE_MS);
    err = llhttp_execute(&p->parser, buf->base, (size_t)n);
    if (p->resp_done) {
        relay_answer(p);
        proxy_close(p);
        return;
    }
    if (err != HPE_OK)
        proxy_fail(p, false, "malformed or oversized answer");
}

/* ---- the request ---- */

static void write_failed(struct proxy *p, int err)
{
    if (p->write_failed || p->closing)
        return;
    LOG_DEBUG("upload proxy to %s: write failed: %s", p->addr,
              uv_strerror(err));
    p->write_failed = true;
    timer_restart(p, NODE_PROXY_CONNECT_MS);
    if (p->paused && p->body_open) {
        p->paused = false;
        node_http_req_resume(p->req); /* the rest of the body is dropped */
    }
}

static void on_write(uv_write_t *w, int status)
{
    struct pwrite *pw = AT_CONTAINER_OF(w, struct pwrite, w);
    struct proxy *p = pw->p;

    p->queued -= pw->body_len;
    free(pw);
    if (status < 0) {
        if (status != UV_ECANCELED)
            write_failed(p, status);
    } else if (!p->closing && !p->write_failed) {
        timer_restart(p, NODE_PROXY_IDLE_MS);
        if (p->paused && p->queued <= NODE_PROXY_LOW_WATER && p->body_open) {
            p->paused = false;
            node_http_req_resume(p->req); /* may run on_body right here */
        }
    }
    proxy_put(p);
}

/* Queue len bytes (body_len of them body) on the owner socket. */
static int send_bytes(struct proxy *p,
                      const char *pre,
                      size_t pre_len,
                      const char *data,
                      size_t len,
                      const char *post,
                      size_t post_len)
{
    struct pwrite *pw = at_malloc(sizeof(*pw) + pre_len + len + post_len);
    uv_buf_t b;
    int rv;

    pw->p = p;
    pw->body_len = len;
    if (pre_len > 0)
        memcpy(pw->data, pre, pre_len);
    if (len > 0)
        memcpy(pw->data + pre_len, data, len);
    if (post_len > 0)
        memcpy(pw->data + pre_len + len, post, post_len);
    b = uv_buf_init(pw->data, (unsigned)(pre_len + len + post_len));
    rv = uv_write(&pw->w, p->stream, &b, 1, on_write);
    if (rv != 0) {
        free(pw);
        return rv;
    }
    p->refs++;
    p->queued += len;
    return 0;
}

static int on_body(struct node_http_req *req, const char *data, size_t n)
{
    struct proxy *p = node_http_req_data(req);
    char pre[32];
    int pre_len = 0;
    int rv;

    if (p == NULL || p->closing || !p->body_open || p->write_failed || n == 0)
        return 0;
    timer_restart(p, NODE_PROXY_IDLE_MS);
    if (p->chunked)
        pre_len = snprintf(pre, sizeof(pre), "%zx\r\n", n);
    rv = send_bytes(p, pre, (size_t)pre_len, data, n, p->chunked ? "\r\n" : "",
                    p->chunked ? 2 : 0);
    if (rv != 0) {
        write_failed(p, rv);
        return 0;
    }
    if (p->queued > NODE_PROXY_HIGH_WATER) {
        p->paused = true;
        return NODE_HTTP_PAUSE;
    }
    return 0;
}

static void on_end(struct node_http_req *req)
{
    struct proxy *p = node_http_req_data(req);
    int rv;

    if (p == NULL || p->closing || !p->body_open)
        return;
    p->body_open = false;
    if (p->chunked && !p->write_failed) {
        rv = send_bytes(p, "0\r\n\r\n", 5, NULL, 0, NULL, 0);
        if (rv != 0)
            write_failed(p, rv);
    }
}

static void on_abort(struct node_http_req *req)
{
    struct proxy *p = node_http_req_data(req);

    if (p == NULL)
        return;
    /* The client is gone: dropping the owner connection makes the owner see
     * the same disconnect (a partial body is never committed). */
    proxy_reply_done(p);
    proxy_close(p);
}

/* Request headers that go to the owner (besides framing and auth). */
static const char *fwd_headers[] = {
    "Content-Type",       "Content-Range",     "Range",
    "X-Atoll-Request-Id", "X-Atoll-Min-Index", "User-Agent",
};

/* The request head; false when a header is over its bound. */
static bool build_head(struct proxy *p, struct at_buf *b)
{
    struct node_http_req *req = p->req;
    const char *q = node_http_req_query(req);
    const char *secret = p->api->cfg->cluster_secret;

    at_buf_printf(b, "%s %s%s%s HTTP/1.1\r\nHost: %s\r\n",
                  node_http_req_method_str(req), node_http_req_path(req),
                  q != NULL ? "?" : "", q != NULL ? q : "", p->addr);
    at_buf_printf(b, "Authorization: Bearer %s\r\n", secret);
    at_buf_puts(b, "X-Atoll-Proxied: 1\r\nConnection: close\r\n");
    at_buf_printf(b, "%s: %d\r\n", PROTO_PEER_VERSION_HEADER,
                  PROTO_PEER_VERSION);
    for (size_t i = 0; i < AT_ARRAY_SIZE(fwd_headers); i++) {
        const char *v = node_http_req_header(req, fwd_headers[i]);
        if (v == NULL)
            continue;
        if (strlen(v) > NODE_PROXY_MAX_HDR_VAL)
            return false;
        at_buf_printf(b, "%s: %s\r\n", fwd_headers[i], v);
    }
    if (node_http_req_has_length(req))
        at_buf_printf(b, "Content-Length: %" PRIu64 "\r\n",
                      node_http_req_content_length(req));
    else if (node_http_req_chunked(req))
        at_buf_puts(b, "Transfer-Encoding: chunked\r\n");
    at_buf_puts(b, "\r\n");
    return true;
}

static void on_connect(uv_connect_t *c, int status)
{
    struct proxy *p = c->data;
    struct at_buf head;
    int rv;

    if (p->closing) {
        proxy_put(p);
        return;
    }
    if (status < 0) {
        proxy_fail(p, true, uv_strerror(status));
        proxy_put(p);
        return;
    }
    p->connected = true;
    timer_restart(p, NODE_PROXY_IDLE_MS);
    if (p->stream == (uv_stream_t *)&p->tcp)
        uv_tcp_nodelay(&p->tcp, 1);
    at_buf_init(&head, 0);
    if (!build_head(p, &head)) {
        at_buf_release(&head);
        node_reply_error(p->req, 400, "BLOB_UPLOAD_INVALID",
                         "a request header is too long");
        proxy_reply_done(p);
        proxy_close(p);
        proxy_put(p);
        return;
    }
    rv = send_bytes(p, head.data, head.len, NULL, 0, NULL, 0);
    at_buf_release(&head);
    if (rv == 0)
        rv = uv_read_start(p->stream, on_alloc, on_read);
    if (rv != 0) {
        proxy_fail(p, true, uv_strerror(rv));
        proxy_put(p);
        return;
    }
    if (node_http_req_has_body(p->req)) {
        p->body_open = true;
        node_http_req_read_body(p->req, on_body, on_end);
    }
    proxy_put(p);
}

/* This node's peer IP (like node/cluster/peer.c) in ss, when it is a
 * specific address of the same family as the target; else false. */
static bool local_addr(struct proxy *p,
                       const struct sockaddr *target,
                       struct sockaddr_storage *ss)
{
    const char *listen = p->api->cfg->peer_listen;
    const char *colon = listen != NULL ? strrchr(listen, ':') : NULL;
    char ip[64];
    size_t n;

    if (colon == NULL)
        return false;
    n = (size_t)(colon - listen);
    if (n >= 2 && listen[0] == '[' && listen[n - 1] == ']') {
        listen++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof(ip))
        return false;
    memcpy(ip, listen, n);
    ip[n] = '\0';
    if (strcmp(ip, "0.0.0.0") == 0 || strcmp(ip, "::") == 0)
        return false;
    if (target->sa_family == AF_INET &&
        uv_ip4_addr(ip, 0, (struct sockaddr_in *)ss) == 0)
        return true;
    if (target->sa_family == AF_INET6 &&
        uv_ip6_addr(ip, 0, (struct sockaddr_in6 *)ss) == 0)
        return true;
    return false;
}

/* Peer mutual TLS: the owner through a TLS connection's local end. It
 * counts as connected at once: the request waits in the socket pair until
 * the handshake is done, and a failed one reads as the owner closing. */
static void connect_tls(struct proxy *p, const struct sockaddr *sa)
{
    struct sockaddr_storage bs;
    bool bound = local_addr(p, sa, &bs);
    uv_stream_t *s = NULL;
    int rv = node_http_dial_tls(p->api->peer_api->tls_server, sa,
                                bound ? (const struct sockaddr *)&bs : NULL,
                                p->host, &s);

    if (rv != 0) {
        proxy_fail(p, true, uv_strerror(rv));
        return;
    }
    s->data = p;
    p->stream = s;
    p->tcp_init = true;
    p->refs += 2; /* the handle, and the connect callback's */
    p->conn.data = p;
    on_connect(&p->conn, 0);
}

static void connect_to(struct proxy *p, const struct sockaddr *sa)
{
    struct sockaddr_storage bs;
    int rv;

    if (p->api->peer_api != NULL && p->api->peer_api->tls_server != NULL) {
        connect_tls(p, sa);
        return;
    }
    rv = uv_tcp_init(p->api->loop, &p->tcp);
    if (rv != 0) {
        proxy_fail(p, true, uv_strerror(rv));
        return;
    }
    p->tcp.data = p;
    p->stream = (uv_stream_t *)&p->tcp;
    p->tcp_init = true;
    p->refs++;
    if (local_addr(p, sa, &bs))
        rv = uv_tcp_bind(&p->tcp, (const struct sockaddr *)&bs, 0);
    if (rv == 0) {
        p->conn.data = p;
        rv = uv_tcp_connect(&p->conn, &p->tcp, sa, on_connect);
    }
    if (rv != 0) {
        proxy_fail(p, true, uv_strerror(rv));
        return;
    }
    p->refs++;
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
    struct proxy *p = g->data;

    p->gai_pending = false;
    if (!p->closing) {
        if (status < 0 || res == NULL)
            proxy_fail(p, true,
                       status < 0 ? uv_strerror(status) : "no address");
        else
            connect_to(p, res->ai_addr);
    }
    uv_freeaddrinfo(res);
    proxy_put(p);
}

/* Split "host:port" / "[v6]:port". */
static bool split_addr(const char *addr, char *host, size_t hmax, int *port)
{
    const char *colon = strrchr(addr, ':');
    size_t n;
    uint64_t v;

    if (colon == NULL || colon == addr)
        return false;
    if (at_parse_u64(colon + 1, strlen(colon + 1), &v) != 0 || v == 0 ||
        v > 65535)
        return false;
    n = (size_t)(colon - addr);
    if (addr[0] == '[') {
        if (n < 3 || addr[n - 1] != ']')
            return false;
        addr++;
        n -= 2;
    }
    if (n >= hmax)
        return false;
    memcpy(host, addr, n);
    host[n] = '\0';
    *port = (int)v;
    return true;
}

/* see proxy.h */
void node_proxy_upload(struct node_api *api,
                       struct node_http_req *req,
                       const char *owner_addr)
{
    struct proxy *p;
    struct sockaddr_storage ss;
    struct addrinfo hints;
    char host[256];
    char port_str[16];
    int port = 0;
    int rv;

    settings_init();
    p = at_calloc(1, sizeof(*p));
    p->api = api;
    p->req = req;
    p->addr = at_strdup(owner_addr);
    p->refs = 2; /* the timer handle + this function */
    p->chunked = !node_http_req_has_length(req) && node_http_req_chunked(req);
    p->head = node_http_req_method(req) == NODE_HTTP_HEAD;
    at_buf_init(&p->hdrs, NODE_PROXY_MAX_HEAD);
    at_buf_init(&p->field, NODE_PROXY_MAX_HEAD);
    at_buf_init(&p->value, NODE_PROXY_MAX_HEAD);
    at_buf_init(&p->body, NODE_PROXY_MAX_BODY);
    llhttp_init(&p->parser, HTTP_RESPONSE, &resp_settings);
    p->parser.data = p;
    node_http_req_ref(req);
    node_http_req_set_data(req, p);
    node_http_req_on_abort(req, on_abort);
    uv_timer_init(api->loop, &p->timer);
    p->timer.data = p;
    timer_restart(p, NODE_PROXY_CONNECT_MS);

    if (api->cfg == NULL || api->cfg->cluster_secret == NULL ||
        api->cfg->cluster_secret[0] == '\0') {
        proxy_fail(p, true, "no cluster secret");
    } else if (!split_addr(owner_addr, host, sizeof(host), &port)) {
        proxy_fail(p, true, "invalid peer address");
    } else if (snprintf(p->host, sizeof(p->host), "%s", host) < 0) {
        proxy_fail(p, true, "invalid peer address");
    } else if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) == 0 ||
               uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) == 0) {
        connect_to(p, (const struct sockaddr *)&ss);
    } else {
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        snprintf(port_str, sizeof(port_str), "%d", port);
        p->gai.data = p;
        rv = uv_getaddrinfo(api->loop, &p->gai, on_resolved, host, port_str,
                            &hints);
        if (rv != 0) {
            proxy_fail(p, true, uv_strerror(rv));
        } else {
            p->gai_pending = true;
            p->refs++;
        }
    }
    proxy_put(p);
}
