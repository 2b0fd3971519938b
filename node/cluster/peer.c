/* Peer HTTP client: libcurl multi driven by the node's libuv loop.
 *
 * Happy path: node_peer_request builds an easy handle and adds it to the
 * multi; curl asks for socket watches (on_socket: one uv_poll_t per fd) and a
 * timeout (on_timer_set: one uv_timer_t); poll and timer callbacks call
 * curl_multi_socket_action and then drain finished transfers, whose callback
 * runs with the HTTP status and the buffered body.
 *
 * Failure modes: resolve/connect failure -> AT_EIO (nothing sent); any later
 * failure (timeout, reset, malformed answer) -> AT_EUNKNOWN; a body over
 * NODE_PEER_MAX_RESP -> AT_ETOOBIG; node_peer_close -> AT_ESHUTDOWN. Poll
 * handles are closed as soon as curl says REMOVE (curl closes the fd right
 * after), so a reused fd number never meets a stale watcher. */
#include "common/compat.h"

#define AT_LOG_COMP "peer"

#include <ctype.h>
#include <curl/curl.h>

#include "common/common.h"
#include "node/cluster/peer.h"
#include "proto/peer.h"

struct peer_sock {
    uv_poll_t poll;
    struct node_peer *p; /* borrowed */
    curl_socket_t fd;
};

struct node_peer_req {
    struct node_peer *p;     /* borrowed */
    struct at_list link;     /* in p->reqs */
    CURL *easy;              /* owned */
    struct curl_slist *hdrs; /* owned */
    struct at_buf resp;      /* bounded by NODE_PEER_MAX_RESP */
    bool too_big;
    bool paused;               /* on_data asked for a pause */
    int stream_err;            /* on_data aborted with this AT_E* */
    node_peer_data_cb on_data; /* streaming: 200 bodies go here */
    node_peer_cb cb;
    void *data;
    unsigned version; /* the answer's peer protocol version (0: malformed) */
    bool foreign;     /* to another registry: no peer protocol asked */
    char addr[256];   /* the peer's host:port, for logs */
    char errbuf[CURL_ERROR_SIZE];
};

struct node_peer {
    uv_loop_t *loop; /* borrowed */
    CURLM *multi;    /* owned */
    uv_timer_t timer;
    char *auth;          /* owned: "Authorization: Bearer ...", or NULL */
    char *iface;         /* owned: "host!<ip>" or NULL */
    char *tls_ca;        /* owned: PEM files of peer mTLS, or NULL */
    char *tls_cert;      /* owned */
    char *tls_key;       /* owned */
    struct at_list reqs; /* struct node_peer_req in flight */
    int handles;         /* timer + poll handles not yet closed */
    int depth;           /* nesting of our own callbacks into user code */
    bool closing, close_pending, closed_multi;
    void (*close_cb)(void *data);
    void *close_data;
    struct node_peer_warn warns[NODE_PEER_WARN_SLOTS]; /* refused answers */
};

static bool curl_ready;

static void peer_finish_close(struct node_peer *p);

static void peer_handle_closed(struct node_peer *p)
{
    void (*cb)(void *) = NULL;
    void *data = NULL;

    if (--p->handles > 0 || !p->closed_multi)
        return;
    cb = p->close_cb;
    data = p->close_data;
    at_free(p->auth);
    at_free(p->iface);
    at_free(p->tls_ca);
    at_free(p->tls_cert);
    at_free(p->tls_key);
    at_free(p);
    if (cb != NULL)
        cb(data);
}

static void on_sock_closed(uv_handle_t *h)
{
    struct peer_sock *ps = h->data;
    struct node_peer *p = ps->p;

    at_free(ps);
    peer_handle_closed(p);
}

static void on_timer_closed(uv_handle_t *h)
{
    peer_handle_closed(h->data);
}

static void req_free(struct node_peer_req *r)
{
    if (r->easy != NULL) {
        curl_multi_remove_handle(r->p->multi, r->easy);
        curl_easy_cleanup(r->easy);
    }
    curl_slist_free_all(r->hdrs);
    at_buf_release(&r->resp);
    at_free(r);
}

/* see peer.h */
bool node_peer_warn_due(struct node_peer_warn *slots,
                        size_t n,
                        const char *peer,
                        uint64_t now_ms,
                        uint64_t *quiet)
{
    struct node_peer_warn *w = &slots[0];

    for (size_t i = 0; i < n; i++) {
        if (strncmp(slots[i].peer, peer, sizeof(slots[i].peer) - 1) == 0 &&
            slots[i].peer[0] != '\0') {
            w = &slots[i];
            break;
        }
        if (slots[i].last_ms < w->last_ms)
            w = &slots[i]; /* the oldest (or a free one) */
    }
    if (strncmp(w->peer, peer, sizeof(w->peer) - 1) != 0 ||
        w->peer[0] == '\0') {
        snprintf(w->peer, sizeof(w->peer), "%s", peer);
        w->last_ms = 0;
        w->quiet = 0;
    }
    if (w->last_ms != 0 && now_ms - w->last_ms < NODE_PEER_WARN_MS) {
        w->quiet++;
        return false;
    }
    *quiet = w->quiet;
    w->quiet = 0;
    w->last_ms = now_ms != 0 ? now_ms : 1;
    return true;
}

/* An answer without a peer protocol version this node accepts: refused
 * before anyone parses it. */
static int version_refused(struct node_peer_req *r)
{
    uint64_t quiet = 0;
    char more[64] = "";

    if (node_peer_warn_due(r->p->warns, NODE_PEER_WARN_SLOTS, r->addr,
                           at_now_ms(), &quiet)) {
        if (quiet > 0)
            snprintf(more, sizeof(more), " (%" PRIu64 " more since)", quiet);
        if (r->version == PROTO_PEER_VERSION_OLD)
            LOG_WARN(
                "peer %s answered in the old peer protocol %u (no %s "
                "header); this node accepts %d..%d: answer refused, "
                "that node must be upgraded%s",
                r->addr, r->version, PROTO_PEER_VERSION_HEADER,
                PROTO_PEER_VERSION_MIN, PROTO_PEER_VERSION_MAX, more);
        else
            LOG_WARN(
                "peer %s answered in peer protocol %u; this node "
                "accepts %d..%d: answer refused%s",
                r->addr, r->version, PROTO_PEER_VERSION_MIN,
                PROTO_PEER_VERSION_MAX, more);
    }
    return AT_EPROTO;
}

/* Deliver the outcome of a finished transfer, then free it. */
static void req_done(struct node_peer_req *r, CURLcode code)
{
    struct node_peer *p = r->p;
    long http = 0;
    curl_off_t sent = 0;
    int status = 0;

    if (r->stream_err != 0) {
        status = r->stream_err;
    } else if (code == CURLE_OK && !proto_peer_version_ok(r->version)) {
        status = version_refused(r);
    } else if (code == CURLE_OK) {
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &http);
    } else if (r->too_big) {
        status = AT_ETOOBIG;
    } else {
        long reqsize = 0;
        curl_easy_getinfo(r->easy, CURLINFO_REQUEST_SIZE, &reqsize);
        sent = reqsize;
        status = sent > 0 ? AT_EUNKNOWN : AT_EIO;
        LOG_DEBUG("peer request %s: %s", sent > 0 ? "failed" : "not sent",
                  r->errbuf[0] != '\0' ? r->errbuf : curl_easy_strerror(code));
    }
    at_list_remove(&r->link);
    if (at_buf_append(&r->resp, "", 1) != 0)
        at_buf_reset(&r->resp);
    p->depth++;
    r->cb(r->data, status, (int)http, status == 0 ? r->resp.data : NULL,
          status == 0 && r->resp.len > 0 ? r->resp.len - 1 : 0);
    p->depth--;
    req_free(r);
}

static void peer_drain(struct node_peer *p)
{
    CURLMsg *msg;
    int left;

    p->depth++;
    while (!p->closing && (msg = curl_multi_info_read(p->multi, &left))) {
        struct node_peer_req *r = NULL;
        CURLcode code;

        if (msg->msg != CURLMSG_DONE)
            continue;
        code = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        if (r != NULL)
            req_done(r, code);
    }
    p->depth--;
    if (p->depth == 0 && p->close_pending) {
        p->close_pending = false;
        peer_finish_close(p);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct peer_sock *ps = h->data;
    struct node_peer *p = ps->p;
    int flags = 0;
    int running;

    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    if (p->closing)
        return;
    curl_multi_socket_action(p->multi, ps->fd, flags, &running);
    peer_drain(p);
}

static void on_timeout(uv_timer_t *t)
{
    struct node_peer *p = t->data;
    int running;

    if (p->closing)
        return;
    curl_multi_socket_action(p->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    peer_drain(p);
}

static int on_socket(CURL *e,
                     curl_socket_t s,
                     int what,
                     void *userp,
                     void *socketp)
{
    struct node_peer *p = userp;
    struct peer_sock *ps = socketp;
    int events = 0;
    int rv;

    AT_UNUSED(e);
    if (what == CURL_POLL_REMOVE) {
        if (ps != NULL) {
            curl_multi_assign(p->multi, s, NULL);
            uv_poll_stop(&ps->poll);
            uv_close((uv_handle_t *)&ps->poll, on_sock_closed);
        }
        return 0;
    }
    if (ps == NULL) {
        ps = at_calloc(1, sizeof(*ps));
        ps->p = p;
        ps->fd = s;
        rv = uv_poll_init_socket(p->loop, &ps->poll, s);
        if (rv != 0) {
            LOG_WARN("peer poll on fd %d: %s", (int)s, uv_strerror(rv));
            at_free(ps);
            return -1;
        }
        ps->poll.data = ps;
        p->handles++;
        curl_multi_assign(p->multi, s, ps);
    }
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    rv = uv_poll_start(&ps->poll, events, on_poll);
    if (rv != 0) {
        LOG_WARN("peer poll start on fd %d: %s", (int)s, uv_strerror(rv));
        return -1;
    }
    return 0;
}

static int on_timer_set(CURLM *m, long ms, void *userp)
{
    struct node_peer *p = userp;

    AT_UNUSED(m);
    if (ms < 0)
        uv_timer_stop(&p->timer);
    else
        uv_timer_start(&p->timer, on_timeout, (uint64_t)ms, 0);
    return 0;
}

/* Every answer states its peer protocol version; a status line starts the
 * headers of a new answer (after an interim one), which states its own. */
static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct node_peer_req *r = userdata;
    size_t n = size * nmemb;
    unsigned v;

    if (r->foreign)
        return n;
    if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0)
        r->version = PROTO_PEER_VERSION_OLD;
    else if (proto_peer_version_line(ptr, n, &v))
        r->version = v;
    return n;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct node_peer_req *r = userdata;
    size_t n = size * nmemb;
    long http = 0;
    int rv;

    if (!proto_peer_version_ok(r->version)) {
        /* never buffered nor streamed: req_done refuses the answer */
        if (r->stream_err == 0)
            r->stream_err = version_refused(r);
        return 0;
    }
    if (r->on_data != NULL &&
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &http) == CURLE_OK &&
        http == 200) {
        if (r->stream_err != 0)
            return 0;
        r->p->depth++;
        rv = r->on_data(r->data, ptr, n);
        r->p->depth--;
        if (rv == NODE_PEER_PAUSE) {
            r->paused = true;
            return CURL_WRITEFUNC_PAUSE;
        }
        if (rv < 0) {
            r->stream_err = rv;
            return 0;
        }
        return n;
    }

    if (r->resp.len + n > NODE_PEER_MAX_RESP ||
        at_buf_append(&r->resp, ptr, n) != 0) {
        r->too_big = true;
        return 0;
    }
    return n;
}

/* see peer.h */
void node_peer_set_tls(struct node_peer *p,
                       const char *ca,
                       const char *cert,
                       const char *key)
{
    at_free(p->tls_ca);
    at_free(p->tls_cert);
    at_free(p->tls_key);
    p->tls_ca = at_strdup(ca);
    p->tls_cert = at_strdup(cert);
    p->tls_key = at_strdup(key);
}

/* see peer.h */
int node_peer_new(struct node_peer **out,
                  uv_loop_t *loop,
                  const char *secret,
                  const char *bind_ip,
                  char *errmsg)
{
    struct node_peer *p;

    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            at_errmsg_printf(errmsg, "curl_global_init failed");
            return AT_EIO;
        }
        curl_ready = true;
    }
    p = at_calloc(1, sizeof(*p));
    p->loop = loop;
    at_list_init(&p->reqs);
    p->multi = curl_multi_init();
    if (p->multi == NULL) {
        at_free(p);
        at_errmsg_printf(errmsg, "curl_multi_init failed");
        return AT_ENOMEM;
    }
    if (secret != NULL && secret[0] != '\0')
        p->auth = at_asprintf("Authorization: Bearer %s", secret);
    if (bind_ip != NULL && bind_ip[0] != '\0' &&
        strcmp(bind_ip, "0.0.0.0") != 0 && strcmp(bind_ip, "::") != 0)
        p->iface = at_asprintf("host!%s", bind_ip);
    curl_multi_setopt(p->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(p->multi, CURLMOPT_SOCKETDATA, p);
    curl_multi_setopt(p->multi, CURLMOPT_TIMERFUNCTION, on_timer_set);
    curl_multi_setopt(p->multi, CURLMOPT_TIMERDATA, p);
    uv_timer_init(loop, &p->timer);
    p->timer.data = p;
    p->handles = 1;
    *out = p;
    return 0;
}

/* "host:port" with a sane host (no URL syntax smuggled in). */
static bool addr_ok(const char *addr)
{
    const char *colon = strrchr(addr, ':');
    uint64_t port;

    if (colon == NULL || colon == addr || strlen(addr) > 255)
        return false;
    for (const char *c = addr; c < colon; c++)
        if (!(isalnum((unsigned char)*c) || *c == '.' || *c == '-' ||
              *c == '[' || *c == ']' || *c == ':' || *c == '_'))
            return false;
    return at_parse_u64(colon + 1, strlen(colon + 1), &port) == 0 && port > 0 &&
           port <= 65535;
}

static bool path_ok(const char *path)
{
    if (path[0] != '/')
        return false;
    for (; *path != '\0'; path++)
        if ((unsigned char)*path <= ' ' || *path == 127)
            return false;
    return true;
}

/* A request of p not yet started: the easy handle with what every
 * request sets (callbacks, timeouts, no proxy, no decoding). */
static struct node_peer_req *req_new(struct node_peer *p,
                                     const char *addr,
                                     uint64_t timeout_ms,
                                     node_peer_data_cb on_data,
                                     node_peer_cb cb,
                                     void *data)
{
    struct node_peer_req *r = at_calloc(1, sizeof(*r));

    r->p = p;
    at_list_init(&r->link);
    r->cb = cb;
    r->on_data = on_data;
    r->data = data;
    r->version = PROTO_PEER_VERSION_OLD;
    snprintf(r->addr, sizeof(r->addr), "%s", addr);
    at_buf_init(&r->resp, NODE_PEER_MAX_RESP + 1);
    r->easy = curl_easy_init();
    if (r->easy == NULL) {
        req_free(r);
        return NULL;
    }
    curl_easy_setopt(r->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(r->easy, CURLOPT_PRIVATE, r);
    curl_easy_setopt(r->easy, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(r->easy, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(r->easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(r->easy, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(r->easy, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(r->easy, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)AT_MIN(timeout_ms, 3000));
    curl_easy_setopt(r->easy, CURLOPT_NOPROXY, "*");
    /* blob bytes are never decoded */
    curl_easy_setopt(r->easy, CURLOPT_ACCEPT_ENCODING, NULL);
    if (p->iface != NULL)
        curl_easy_setopt(r->easy, CURLOPT_INTERFACE, p->iface);
    /* blob downloads: bigger reads, fewer write callbacks (the default is
     * 16 KiB; 512 KiB is the largest every libcurl 7.x accepts) */
    if (on_data != NULL)
        curl_easy_setopt(r->easy, CURLOPT_BUFFERSIZE, 512L * 1024);
    return r;
}

/* Hand r (headers set) to the multi. */
static int req_add(struct node_peer_req *r, struct node_peer_req **out)
{
    struct node_peer *p = r->p;
    CURLMcode mc;

    curl_easy_setopt(r->easy, CURLOPT_HTTPHEADER, r->hdrs);
    mc = curl_multi_add_handle(p->multi, r->easy);
    if (mc != CURLM_OK) {
        LOG_WARN("peer request to %s: %s", r->addr, curl_multi_strerror(mc));
        curl_easy_cleanup(r->easy);
        r->easy = NULL;
        req_free(r);
        return AT_ENOMEM;
    }
    at_list_push_front(&p->reqs, &r->link);
    if (out != NULL)
        *out = r;
    return 0;
}

static int peer_start(struct node_peer *p,
                      const char *method,
                      const char *addr,
                      const char *path,
                      const char *content_type,
                      const void *body,
                      size_t len,
                      uint64_t timeout_ms,
                      node_peer_data_cb on_data,
                      node_peer_cb cb,
                      void *data,
                      struct node_peer_req **out)
{
    struct node_peer_req *r;
    char *url;
    char *ct = NULL;
    char vh[64];

    if (p->closing)
        return AT_ESHUTDOWN;
    if (addr == NULL || !addr_ok(addr) || !path_ok(path))
        return AT_EINVAL;
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        return AT_EINVAL;
    r = req_new(p, addr, timeout_ms, on_data, cb, data);
    if (r == NULL)
        return AT_ENOMEM;
    url = at_asprintf("%s://%s%s", p->tls_ca != NULL ? "https" : "http", addr,
                      path);
    curl_easy_setopt(r->easy, CURLOPT_URL, url);
    at_free(url);
    if (p->tls_ca != NULL) {
        /* Mutual TLS: the cluster CA only (not the system store), the
         * peer's certificate checked for the host or IP dialed. */
        curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "https");
        curl_easy_setopt(r->easy, CURLOPT_SSLVERSION,
                         (long)CURL_SSLVERSION_TLSv1_2);
        curl_easy_setopt(r->easy, CURLOPT_CAINFO, p->tls_ca);
        curl_easy_setopt(r->easy, CURLOPT_CAPATH, NULL);
        curl_easy_setopt(r->easy, CURLOPT_SSLCERT, p->tls_cert);
        curl_easy_setopt(r->easy, CURLOPT_SSLKEY, p->tls_key);
        curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYHOST, 2L);
    } else {
        curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http");
    }
    if (p->auth != NULL)
        r->hdrs = curl_slist_append(r->hdrs, p->auth);
    r->hdrs = curl_slist_append(r->hdrs, "Expect:");
    snprintf(vh, sizeof(vh), "%s: %d", PROTO_PEER_VERSION_HEADER,
             PROTO_PEER_VERSION);
    r->hdrs = curl_slist_append(r->hdrs, vh);
    if (content_type != NULL) {
        ct = at_asprintf("Content-Type: %s", content_type);
        r->hdrs = curl_slist_append(r->hdrs, ct);
        at_free(ct);
    }
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(r->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(r->easy, CURLOPT_COPYPOSTFIELDS,
                         len > 0 ? (const char *)body : "");
    } else {
        curl_easy_setopt(r->easy, CURLOPT_HTTPGET, 1L);
    }
    return req_add(r, out);
}

/* see peer.h */
int node_peer_request(struct node_peer *p,
                      const char *method,
                      const char *addr,
                      const char *path,
                      const char *content_type,
                      const void *body,
                      size_t len,
                      uint64_t timeout_ms,
                      node_peer_cb cb,
                      void *data)
{
    return peer_start(p, method, addr, path, content_type, body, len,
                      timeout_ms, NULL, cb, data, NULL);
}

/* see peer.h */
int node_peer_stream(struct node_peer *p,
                     const char *addr,
                     const char *path,
                     uint64_t timeout_ms,
                     node_peer_data_cb on_data,
                     node_peer_cb done,
                     void *data,
                     struct node_peer_req **out)
{
    if (on_data == NULL)
        return AT_EINVAL;
    return peer_start(p, "GET", addr, path, NULL, NULL, 0, timeout_ms, on_data,
                      done, data, out);
}

/* see peer.h */
int node_peer_stream_url(struct node_peer *p,
                         const struct node_peer_url *u,
                         uint64_t timeout_ms,
                         node_peer_data_cb on_data,
                         node_peer_cb done,
                         void *data,
                         struct node_peer_req **out)
{
    struct node_peer_req *r;
    char host[256];
    const char *h;
    size_t n;

    if (p->closing)
        return AT_ESHUTDOWN;
    if (on_data == NULL || u->url == NULL ||
        (strncmp(u->url, "http://", 7) != 0 &&
         strncmp(u->url, "https://", 8) != 0))
        return AT_EINVAL;
    for (const char *c = u->url; *c != '\0'; c++)
        if ((unsigned char)*c <= ' ' || *c == 127)
            return AT_EINVAL;
    /* the host part, for logs and warnings */
    h = strstr(u->url, "://") + 3;
    n = strcspn(h, "/");
    snprintf(host, sizeof(host), "%.*s", (int)AT_MIN(n, sizeof(host) - 1), h);
    r = req_new(p, host, timeout_ms, on_data, done, data);
    if (r == NULL)
        return AT_ENOMEM;
    r->foreign = true;
    r->version = PROTO_PEER_VERSION; /* none is asked of another registry */
    /* not the peer network: the system's route and its proxy settings
     * (https_proxy, no_proxy), as regclient.c's requests have */
    curl_easy_setopt(r->easy, CURLOPT_INTERFACE, NULL);
    curl_easy_setopt(r->easy, CURLOPT_NOPROXY, NULL);
    curl_easy_setopt(r->easy, CURLOPT_URL, u->url);
    curl_easy_setopt(r->easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(r->easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    /* a registry may send blobs from elsewhere (a CDN); libcurl sends the
     * Authorization header given here to the first host only */
    curl_easy_setopt(r->easy, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(r->easy, CURLOPT_MAXREDIRS, 5L);
    if (u->ca_file != NULL)
        curl_easy_setopt(r->easy, CURLOPT_CAINFO, u->ca_file);
    curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYPEER, u->tls_verify ? 1L : 0L);
    curl_easy_setopt(r->easy, CURLOPT_SSL_VERIFYHOST, u->tls_verify ? 2L : 0L);
    if (u->auth != NULL)
        r->hdrs = curl_slist_append(r->hdrs, u->auth);
    curl_easy_setopt(r->easy, CURLOPT_HTTPGET, 1L);
    return req_add(r, out);
}

/* see peer.h */
void node_peer_resume(struct node_peer_req *r)
{
    struct node_peer *p = r->p;

    if (!r->paused || p->closing)
        return;
    r->paused = false;
    /* The write callback may run inside curl_easy_pause (and pause again). */
    p->depth++;
    curl_easy_pause(r->easy, CURLPAUSE_CONT);
    p->depth--;
    if (p->depth == 0 && p->close_pending) {
        p->close_pending = false;
        peer_finish_close(p);
    }
}

static void peer_finish_close(struct node_peer *p)
{
    struct at_list *e;

    while ((e = at_list_pop_front(&p->reqs)) != NULL) {
        struct node_peer_req *r = AT_LIST_ENTRY(e, struct node_peer_req, link);
        r->cb(r->data, AT_ESHUTDOWN, 0, NULL, 0);
        req_free(r);
    }
    curl_multi_cleanup(p->multi);
    p->multi = NULL;
    p->closed_multi = true;
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, on_timer_closed);
}

/* see peer.h */
void node_peer_close(struct node_peer *p, void (*cb)(void *data), void *data)
{
    if (p->closing)
        return;
    p->closing = true;
    p->close_cb = cb;
    p->close_data = data;
    if (p->depth > 0) {
        p->close_pending = true;
        return;
    }
    peer_finish_close(p);
}
