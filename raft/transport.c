/* atoll's struct raft_uv_transport: raft connections as authenticated HTTP
 * upgrades on the peer port.
 *
 * Happy path (dialer): connect(id, name) resolves the name to the peer
 * host:port (node table, then the peers cache file, through tr->resolve),
 * a host name to an IP address with uv_getaddrinfo (in the thread pool:
 * a slow resolver never blocks the loop; the handshake timeout covers it),
 * opens a TCP connection bound to our own peer IP, writes
 * "POST /_atoll/raft ... Upgrade: atoll-raft/1" with the cluster secret
 * and the peer protocol version (proto/peer.h),
 * reads the answer (at most 4 KiB, within the handshake timeout), expects
 * exactly "HTTP/1.1 101" stating an accepted peer protocol version and no
 * byte after the header, then hands the
 * stream to libraft, which only writes to it and frees it with raft_free.
 * Inbound streams arrive through meta__transport_accept (the node's peer
 * listener did the server side of the handshake).
 *
 * Failure modes: unknown name, refused connection, timeout, a non-101
 * answer, extra bytes: the connect callback gets RAFT_NOCONNECTION (libraft
 * retries after its connect retry delay). Close cancels handshakes in
 * flight (RAFT_CANCELED) and calls its callback once every handle is
 * closed. No handle exists before the first connect or close, so a failed
 * raft_init leaves nothing to close. */
#include "common/compat.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>

#define AT_LOG_COMP "raft"

#include "proto/peer.h"
#include "raft/transport.h"

#define RESPONSE_MAX 4096

struct meta_dial {
    struct at_list link;         /* in tr->dials until answered */
    struct meta_transport *tr;   /* borrowed */
    struct raft_uv_connect *req; /* borrowed; NULL once answered */
    raft_uv_connect_cb cb;
    raft_id id;
    /* raft_malloc'd (a uv_tcp_t, or the dial hook's stream); NULL once
     * closed or handed over */
    uv_stream_t *stream;
    char host[META_ADDRESS_MAX + 1]; /* the peer's host, for the dial hook */
    uv_timer_t timer;
    uv_connect_t conn;
    uv_getaddrinfo_t gai;
    bool resolving; /* gai in flight (holds a ref) */
    unsigned port;  /* of the name being resolved */
    uv_write_t write;
    char *request; /* owned */
    char resp[RESPONSE_MAX];
    size_t resp_len;
    bool written;  /* the request write completed */
    bool answered; /* a complete 101 answer was read */
    unsigned refs; /* timer + tcp (while ours) */
};

static void maybe_closed(struct meta_transport *tr)
{
    if (tr->closing && tr->closing_handles == 0 && tr->close_cb != NULL) {
        raft_uv_transport_close_cb cb = tr->close_cb;
        tr->close_cb = NULL;
        cb(&tr->t);
    }
}

static void dial_unref(struct meta_dial *d)
{
    AT_ASSERT(d->refs > 0);
    if (--d->refs > 0)
        return;
    struct meta_transport *tr = d->tr;
    at_free(d->request);
    at_free(d);
    tr->closing_handles--;
    maybe_closed(tr);
}

static void on_timer_closed(uv_handle_t *h)
{
    dial_unref(h->data);
}

static void on_tcp_closed(uv_handle_t *h)
{
    struct meta_dial *d = h->data;
    raft_free(h);
    dial_unref(d);
}

static void on_close_timer_closed(uv_handle_t *h)
{
    struct meta_transport *tr = h->data;
    tr->closing_handles--;
    maybe_closed(tr);
}

/* Answer libraft once: status 0 hands the stream over. */
static void dial_finish(struct meta_dial *d, int status)
{
    if (d->req == NULL)
        return;
    at_list_remove(&d->link);
    struct raft_uv_connect *req = d->req;
    d->req = NULL;
    uv_timer_stop(&d->timer);
    uv_close((uv_handle_t *)&d->timer, on_timer_closed);
    if (d->resolving)
        uv_cancel((uv_req_t *)&d->gai); /* best effort; the cb still runs */
    uv_stream_t *stream = NULL;
    if (d->stream != NULL) {
        if (status == 0) {
            uv_read_stop((uv_stream_t *)d->stream);
            stream = (uv_stream_t *)d->stream;
            stream->data = NULL;
            d->stream = NULL;
            d->refs--; /* never 0 here: the timer holds one */
        } else {
            uv_close((uv_handle_t *)d->stream, on_tcp_closed);
            d->stream = NULL;
        }
    }
    d->cb(req, stream, status);
}

static void dial_fail(struct meta_dial *d, const char *what)
{
    LOG_DEBUG("raft connect to %llu: %s", (unsigned long long)d->id, what);
    dial_finish(d, RAFT_NOCONNECTION);
}

static void maybe_done(struct meta_dial *d)
{
    if (d->written && d->answered)
        dial_finish(d, 0);
}

static void on_timeout(uv_timer_t *t)
{
    dial_fail(t->data, "handshake timed out");
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct meta_dial *d = h->data;
    AT_UNUSED(suggested);
    /* one spare byte: reading past RESPONSE_MAX is an error, detected */
    buf->base = d->resp + d->resp_len;
    buf->len = sizeof(d->resp) - d->resp_len;
}

/* The header lines of an answer (resp, len bytes, after its status
 * line), one per call: the line after prev (NULL: the first) with its
 * length in *n, or NULL at the end. */
static const char *next_line(const char *resp,
                             size_t len,
                             const char *prev,
                             size_t *n)
{
    const char *end = resp + len;
    const char *p = memchr(prev != NULL ? prev : resp, '\n',
                           (size_t)(end - (prev != NULL ? prev : resp)));
    if (p == NULL || ++p >= end)
        return NULL;
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    *n = eol != NULL ? (size_t)(eol - p) : (size_t)(end - p);
    return p;
}

/* The peer protocol version an upgrade answer states (its header lines,
 * NUL-terminated in resp): PROTO_PEER_VERSION_OLD without the header. */
static unsigned answer_version(const char *resp, size_t len)
{
    const char *p = NULL;
    size_t n;
    unsigned v;

    while ((p = next_line(resp, len, p, &n)) != NULL)
        if (proto_peer_version_line(p, n, &v))
            return v;
    return PROTO_PEER_VERSION_OLD;
}

/* Does the answer say "X-Atoll-Raft-Snapshot: fetch" (name in any case,
 * the value exactly)? */
static bool answer_fetches(const char *resp, size_t len)
{
    static const char name[] = PROTO_PEER_SNAPSHOT_HEADER ":";
    const char *p = NULL;
    size_t n;

    while ((p = next_line(resp, len, p, &n)) != NULL) {
        if (n <= sizeof(name) - 1 ||
            strncasecmp(p, name, sizeof(name) - 1) != 0)
            continue;
        const char *v = p + sizeof(name) - 1;
        const char *ve = p + n;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == '\r' || ve[-1] == ' '))
            ve--;
        return (size_t)(ve - v) == strlen(PROTO_PEER_SNAPSHOT_FETCH) &&
               memcmp(v, PROTO_PEER_SNAPSHOT_FETCH, (size_t)(ve - v)) == 0;
    }
    return false;
}

static void peer_note(struct meta_transport *tr, raft_id id, bool fetches)
{
    for (unsigned i = 0; i < tr->n_peers; i++) {
        if (tr->peers[i].id == id) {
            tr->peers[i].fetches = fetches;
            return;
        }
    }
    unsigned i = tr->n_peers < META_TRANSPORT_PEERS_MAX
                     ? tr->n_peers++
                     : tr->next_peer++ % META_TRANSPORT_PEERS_MAX;
    tr->peers[i] = (struct meta_transport_peer){ id, fetches };
}

/* see transport.h */
bool meta__transport_fetches(const struct meta_transport *tr, raft_id id)
{
    for (unsigned i = 0; i < tr->n_peers; i++)
        if (tr->peers[i].id == id)
            return tr->peers[i].fetches;
    return false;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct meta_dial *d = s->data;
    AT_UNUSED(buf);
    if (d->req == NULL || nread == 0)
        return;
    if (nread < 0) {
        dial_fail(d,
                  nread == UV_EOF ? "closed by peer" : uv_strerror((int)nread));
        return;
    }
    if (d->answered) {
        dial_fail(d, "bytes after the upgrade answer");
        return;
    }
    d->resp_len += (size_t)nread;
    const char *end = NULL;
    for (size_t i = 0; i + 4 <= d->resp_len; i++) {
        if (memcmp(d->resp + i, "\r\n\r\n", 4) == 0) {
            end = d->resp + i + 4;
            break;
        }
    }
    if (end == NULL) {
        if (d->resp_len >= sizeof(d->resp))
            dial_fail(d, "upgrade answer over 4 KiB");
        return;
    }
    if ((size_t)(end - d->resp) != d->resp_len) {
        dial_fail(d, "bytes after the upgrade answer");
        return;
    }
    static const char ok[] = "HTTP/1.1 101 ";
    if (d->resp_len < sizeof(ok) - 1 ||
        memcmp(d->resp, ok, sizeof(ok) - 1) != 0) {
        char line[64];
        size_t n = 0;
        while (n < sizeof(line) - 1 && n < d->resp_len && d->resp[n] != '\r' &&
               d->resp[n] >= ' ' && d->resp[n] <= '~') {
            line[n] = d->resp[n];
            n++;
        }
        line[n] = '\0';
        LOG_WARN("raft connect to %llu refused: '%s'",
                 (unsigned long long)d->id, line);
        dial_finish(d, RAFT_NOCONNECTION);
        return;
    }
    unsigned v = answer_version(d->resp, d->resp_len);
    if (!proto_peer_version_ok(v)) {
        /* A node of another peer protocol would accept the stream but
         * could not dial back: refuse it here as it refuses us there. */
        LOG_WARN(
            "raft connect to %llu refused: it speaks peer protocol %u, "
            "this node %u (upgrade the older one)",
            (unsigned long long)d->id, v, PROTO_PEER_VERSION);
        dial_finish(d, RAFT_NOCONNECTION);
        return;
    }
    peer_note(d->tr, d->id, answer_fetches(d->resp, d->resp_len));
    d->answered = true;
    maybe_done(d);
}

static void on_written(uv_write_t *w, int status)
{
    struct meta_dial *d = w->data;
    if (d->req == NULL)
        return;
    if (status != 0) {
        dial_fail(d, uv_strerror(status));
        return;
    }
    d->written = true;
    maybe_done(d);
}

static int dial_begin(struct meta_dial *d);

/* A peer that vanished without a reset (partitioned, blackholed) leaves a
 * raft connection "established" with data unacknowledged: TCP retries
 * with backoff for minutes (tcp_retries2), libraft keeps writing into it,
 * and a node back from a long partition would wait for the next
 * retransmission, up to 2 minutes, to hear from the leader. Unacked for
 * this long, the kernel fails the connection (SYNs included) and libraft
 * dials again. */
#define RAFT_TCP_USER_TIMEOUT_MS 10000

static void tcp_user_timeout(uv_tcp_t *tcp)
{
    uv_os_fd_t fd;
    unsigned ms = RAFT_TCP_USER_TIMEOUT_MS;

    if (uv_fileno((uv_handle_t *)tcp, &fd) == 0 &&
        setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms)) != 0)
        LOG_DEBUG("TCP_USER_TIMEOUT: %s", strerror(errno));
}

static void on_connected(uv_connect_t *c, int status)
{
    struct meta_dial *d = c->data;
    if (d->req == NULL)
        return;
    if (status != 0) {
        dial_fail(d, uv_strerror(status));
        return;
    }
    /* Raft messages are written in several pieces (header, entries): with
     * Nagle on, the later pieces wait for the peer's delayed ACK (~40 ms
     * per message). */
    uv_tcp_nodelay((uv_tcp_t *)d->stream, 1);
    int rv = dial_begin(d);
    if (rv != 0)
        dial_fail(d, uv_strerror(rv));
}

/* Write the upgrade request and read the answer. */
static int dial_begin(struct meta_dial *d)
{
    uv_buf_t b = uv_buf_init(d->request, (unsigned)strlen(d->request));
    d->write.data = d;
    int rv = uv_write(&d->write, d->stream, &b, 1, on_written);
    if (rv == 0)
        rv = uv_read_start(d->stream, on_alloc, on_read);
    return rv;
}

/* see transport.h: "host:port" or "[v6]:port" into host and port */
int meta__split_hostport(const char *addr,
                         char *host,
                         size_t size,
                         unsigned *port)
{
    const char *colon = strrchr(addr, ':');
    const char *h = addr;
    size_t hlen;
    if (colon == NULL || colon[1] == '\0')
        return AT_EINVAL;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL || close + 1 != colon)
            return AT_EINVAL;
        h = addr + 1;
        hlen = (size_t)(close - h);
    } else {
        hlen = (size_t)(colon - addr);
    }
    uint64_t p;
    if (hlen == 0 || hlen >= size ||
        at_parse_u64(colon + 1, strlen(colon + 1), &p) != 0 || p == 0 ||
        p > 65535)
        return AT_EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (unsigned)p;
    return 0;
}

/* Numeric addresses only (names go through uv_getaddrinfo). */
static int sockaddr_of(const char *host,
                       unsigned port,
                       struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return AT_ENOTFOUND;
}

/* Our own peer IP as a source address of ss's family (port 0) into bs;
 * false when there is none. */
static bool bind_addr(const struct meta_transport *tr,
                      const struct sockaddr_storage *ss,
                      struct sockaddr_storage *bs)
{
    if (tr->bind_ip[0] == '\0' || sockaddr_of(tr->bind_ip, 1, bs) != 0 ||
        bs->ss_family != ss->ss_family)
        return false;
    if (bs->ss_family == AF_INET)
        ((struct sockaddr_in *)bs)->sin_port = 0;
    else
        ((struct sockaddr_in6 *)bs)->sin6_port = 0;
    return true;
}

/* The dial hook's stream (peer TLS): the upgrade goes through it at once,
 * its bytes wait there until the connection and handshake are done. */
static int dial_hooked(struct meta_dial *d, const struct sockaddr_storage *ss)
{
    struct meta_transport *tr = d->tr;
    struct sockaddr_storage bs;
    bool bound = bind_addr(tr, ss, &bs);
    uv_stream_t *stream = NULL;
    int rv =
        tr->dial(tr->dial_data, (const struct sockaddr *)ss,
                 bound ? (const struct sockaddr *)&bs : NULL, d->host, &stream);

    if (rv != 0) {
        LOG_DEBUG("raft connect to %llu: %s", (unsigned long long)d->id,
                  uv_strerror(rv));
        return AT_EIO;
    }
    d->stream = stream;
    d->stream->data = d;
    d->refs++;
    rv = dial_begin(d);
    if (rv != 0) {
        LOG_DEBUG("raft connect to %llu: %s", (unsigned long long)d->id,
                  uv_strerror(rv));
        return AT_EIO;
    }
    return 0;
}

/* Open the TCP connection to ss, bound to our own peer IP. */
static int dial_connect(struct meta_dial *d, const struct sockaddr_storage *ss)
{
    struct meta_transport *tr = d->tr;
    struct sockaddr_storage bs;
    uv_tcp_t *tcp;
    if (tr->dial != NULL)
        return dial_hooked(d, ss);
    tcp = raft_malloc(sizeof(*tcp));
    if (tcp == NULL)
        return AT_ENOMEM;
    uv_tcp_init_ex(tr->loop, tcp, ss->ss_family);
    tcp_user_timeout(tcp);
    d->stream = (uv_stream_t *)tcp;
    d->stream->data = d;
    d->refs++;
    int rv = 0;
    if (bind_addr(tr, ss, &bs))
        rv = uv_tcp_bind(tcp, (struct sockaddr *)&bs, 0);
    d->conn.data = d;
    if (rv == 0)
        rv = uv_tcp_connect(&d->conn, tcp, (const struct sockaddr *)ss,
                            on_connected);
    if (rv != 0) {
        LOG_DEBUG("raft connect to %llu: %s", (unsigned long long)d->id,
                  uv_strerror(rv));
        return AT_EIO;
    }
    return 0;
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
    struct meta_dial *d = g->data;
    struct sockaddr_storage ss;
    d->resolving = false;
    if (d->req != NULL) { /* else canceled or timed out meanwhile */
        /* the first address of our bound family (a v4 peer IP cannot dial
         * ::1), else the first one */
        struct sockaddr_storage bs;
        struct addrinfo *a = res;
        if (status == 0 && d->tr->bind_ip[0] != '\0' &&
            sockaddr_of(d->tr->bind_ip, 1, &bs) == 0) {
            for (struct addrinfo *i = res; i != NULL; i = i->ai_next) {
                if (i->ai_family == bs.ss_family) {
                    a = i;
                    break;
                }
            }
        }
        memset(&ss, 0, sizeof(ss));
        if (status != 0 || a == NULL || a->ai_addrlen > sizeof(ss) ||
            (a->ai_family != AF_INET && a->ai_family != AF_INET6)) {
            dial_fail(d, status != 0 ? uv_strerror(status)
                                     : "name resolved to no address");
        } else {
            memcpy(&ss, a->ai_addr, a->ai_addrlen);
            if (ss.ss_family == AF_INET)
                ((struct sockaddr_in *)&ss)->sin_port =
                    htons((uint16_t)d->port);
            else
                ((struct sockaddr_in6 *)&ss)->sin6_port =
                    htons((uint16_t)d->port);
            if (dial_connect(d, &ss) != 0)
                dial_fail(d, "connect failed");
        }
    }
    uv_freeaddrinfo(res);
    dial_unref(d);
}

static int tr_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    struct meta_transport *tr = t->impl;
    tr->id = id;
    snprintf(tr->address, sizeof(tr->address), "%s", address);
    return 0;
}

static int tr_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    struct meta_transport *tr = t->impl;
    tr->accept_cb = cb;
    return 0;
}

static int dial_start(struct meta_dial *d, const char *name)
{
    struct meta_transport *tr = d->tr;
    char peer[META_ADDRESS_MAX + 1];
    char host[META_ADDRESS_MAX + 1];
    unsigned port;
    struct sockaddr_storage ss;
    if (tr->resolve == NULL ||
        tr->resolve(tr->resolve_data, name, peer, sizeof(peer)) != 0)
        snprintf(peer, sizeof(peer), "%s", name); /* maybe host:port */
    if (meta__split_hostport(peer, host, sizeof(host), &port) != 0) {
        LOG_DEBUG("raft connect to %llu '%s': address unknown",
                  (unsigned long long)d->id, name);
        return AT_ENOTFOUND;
    }
    snprintf(d->host, sizeof(d->host), "%s", host);
    d->request = at_asprintf(
        "POST %s HTTP/1.1\r\nHost: %s\r\n"
        "Upgrade: " PROTO_PEER_RAFT_UPGRADE
        "\r\nConnection: Upgrade\r\n"
        "%s: %d\r\n"
        "Authorization: Bearer %s\r\nX-Atoll-Raft-Id: %llu\r\n"
        "X-Atoll-Raft-Address: %s\r\n%s%s%s"
        "Content-Length: 0\r\n\r\n",
        proto_peer_path(PROTO_PEER_RAFT), peer, PROTO_PEER_VERSION_HEADER,
        PROTO_PEER_VERSION, tr->secret != NULL ? tr->secret : "",
        (unsigned long long)tr->id, tr->address,
        tr->peer_address[0] != '\0' ? "X-Atoll-Peer-Address: " : "",
        tr->peer_address, tr->peer_address[0] != '\0' ? "\r\n" : "");
    if (sockaddr_of(host, port, &ss) == 0)
        return dial_connect(d, &ss);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    d->port = port;
    d->gai.data = d;
    int rv = uv_getaddrinfo(tr->loop, &d->gai, on_resolved, host, NULL, &hints);
    if (rv != 0) {
        LOG_DEBUG("raft connect to %llu '%s': %s", (unsigned long long)d->id,
                  peer, uv_strerror(rv));
        return AT_ENOTFOUND;
    }
    d->resolving = true;
    d->refs++;
    return 0;
}

static int tr_connect(struct raft_uv_transport *t,
                      struct raft_uv_connect *req,
                      raft_id id,
                      const char *address,
                      raft_uv_connect_cb cb)
{
    struct meta_transport *tr = t->impl;
    if (tr->closing)
        return RAFT_CANCELED;
    struct meta_dial *d = at_calloc(1, sizeof(*d));
    d->tr = tr;
    d->req = req;
    d->cb = cb;
    d->id = id;
    d->refs = 1; /* the timer */
    tr->closing_handles++;
    uv_timer_init(tr->loop, &d->timer);
    d->timer.data = d;
    at_list_push_front(&tr->dials, &d->link);
    if (dial_start(d, address) != 0) {
        /* fail on the next iteration, as libraft expects a callback */
        uv_timer_start(&d->timer, on_timeout, 0, 0);
        if (d->stream != NULL) {
            uv_close((uv_handle_t *)d->stream, on_tcp_closed);
            d->stream = NULL;
        }
        return 0;
    }
    uv_timer_start(&d->timer, on_timeout, tr->handshake_timeout_ms, 0);
    return 0;
}

static void tr_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct meta_transport *tr = t->impl;
    AT_ASSERT(!tr->closing);
    tr->closing = true;
    tr->close_cb = cb;
    tr->accept_cb = NULL;
    struct at_list *e;
    while ((e = at_list_first(&tr->dials)) != NULL)
        dial_finish(AT_LIST_ENTRY(e, struct meta_dial, link), RAFT_CANCELED);
    /* one handle of our own, so the callback always runs asynchronously */
    uv_timer_init(tr->loop, &tr->close_timer);
    tr->close_timer.data = tr;
    tr->closing_handles++;
    uv_close((uv_handle_t *)&tr->close_timer, on_close_timer_closed);
}

static void on_refused_closed(uv_handle_t *h)
{
    raft_free(h);
}

/* see transport.h */
void meta__transport_accept(struct meta_transport *tr,
                            uint64_t id,
                            const char *address,
                            uv_stream_t *stream)
{
    if (tr->closing || tr->accept_cb == NULL || id == 0 || address == NULL ||
        address[0] == '\0') {
        uv_close((uv_handle_t *)stream, on_refused_closed);
        return;
    }
    tr->accept_cb(&tr->t, id, address, stream);
}

/* see transport.h */
void meta__transport_init(struct meta_transport *tr, uv_loop_t *loop)
{
    memset(tr, 0, sizeof(*tr));
    tr->loop = loop;
    at_list_init(&tr->dials);
    tr->handshake_timeout_ms = 2000;
    tr->t.impl = tr;
    tr->t.init = tr_init;
    tr->t.listen = tr_listen;
    tr->t.connect = tr_connect;
    tr->t.close = tr_close;
}
