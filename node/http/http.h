/* HTTP/1.1 server on libuv with llhttp: connections, parsing, limits,
 * keep-alive, pipelining, streamed request bodies with backpressure, and
 * responses from memory or from a file with sendfile(2).
 *
 * Model: one request at a time per connection (pipelined requests wait in the
 * read buffer until the previous response is complete). When a request's
 * headers are complete the server calls the handler. The handler either
 * answers at once, or sets body callbacks and/or answers later (after async
 * work) on the loop thread. The request object stays valid until the response
 * is complete and the handler has released every reference it took.
 *
 * If the handler answers before the request body has been read, the server
 * reads and discards up to 1 MiB of remaining body to keep the connection,
 * else closes it after the response. */
#ifndef NODE_HTTP_H
#define NODE_HTTP_H

#include <uv.h>

#include "common/common.h"

#define NODE_HTTP_MAX_URL      8192
#define NODE_HTTP_MAX_HEADERS  100
#define NODE_HTTP_MAX_HDR_SIZE (64 * 1024) /* all header names + values */

enum node_http_method {
    NODE_HTTP_OTHER = 0,
    NODE_HTTP_GET,
    NODE_HTTP_HEAD,
    NODE_HTTP_POST,
    NODE_HTTP_PUT,
    NODE_HTTP_PATCH,
    NODE_HTTP_DELETE,
    NODE_HTTP_OPTIONS,
};

struct node_http_req;
struct node_http_server;

/* Called once per request when its headers are complete. */
typedef void (*node_http_handler)(void *data, struct node_http_req *req);
/* A peer was refused at the TLS layer: peer "ip:port", why in words (no
 * certificate, the verify error, plain HTTP on the TLS port). */
typedef void (*node_http_tls_refused_cb)(void *data,
                                         const char *peer,
                                         const char *why);

/* Body data. Return 0 to continue, NODE_HTTP_PAUSE to stop reading until
 * node_http_req_resume() (the data passed in this call was consumed). */
#define NODE_HTTP_PAUSE 1
typedef int (*node_http_body_cb)(struct node_http_req *req,
                                 const char *p,
                                 size_t n);
/* The whole body has arrived. */
typedef void (*node_http_end_cb)(struct node_http_req *req);
/* The connection failed or closed before the response completed (client
 * disconnect, timeout, malformed body). Called at most once; after it the
 * resp functions are no-ops.
 *
 * Once the handler asked for the body, exactly one of end or abort runs,
 * except when the handler answers before the body has ended: then neither
 * runs afterwards (the rest of the body is dropped or the connection
 * closed), and the handler must release what it kept for the body itself. */
typedef void (*node_http_abort_cb)(struct node_http_req *req);
/* A pushed body's queue is empty again (node_http_resp_push_start). */
typedef void (*node_http_drain_cb)(struct node_http_req *req);

struct node_http_config {
    const char *host;           /* borrowed */
    int port;                   /* 0: pick a free port */
    int backlog;                /* default 511 */
    uint64_t header_timeout_ms; /* time to receive a full header block; 30s */
    uint64_t idle_timeout_ms;   /* keep-alive idle; 60s */
    uint64_t body_timeout_ms;   /* max gap between body reads; 60s */
    uint64_t write_timeout_ms;  /* max time a response makes no progress;60s*/
    uint64_t shutdown_grace_ms; /* in-flight requests get this long; 10s */
    /* HTTPS only when both are set (borrowed; copied): PEM files of the
     * certificate followed by its chain, and of its unencrypted key. */
    const char *tls_cert;
    const char *tls_key;
    uint64_t tls_poll_ms; /* how often the two files are checked; 2s */
    /* Mutual TLS (borrowed; copied): clients must present a certificate
     * that chains to this PEM CA file, else the handshake is refused and
     * tls_refused hears of it; the same files then serve outgoing
     * connections (node_http_dial_tls). */
    const char *tls_ca;
    node_http_tls_refused_cb tls_refused;
    void *tls_refused_data;
};

/* Bind and listen; with tls_cert and tls_key, read them first (an
 * unreadable file, or a key that is not the certificate's, fails the
 * start). Returns 0 or AT_E* with errmsg. */
int node_http_start(struct node_http_server **out,
                    uv_loop_t *loop,
                    const struct node_http_config *cfg,
                    node_http_handler handler,
                    void *data,
                    char *errmsg);
/* Port actually bound (useful with port 0). */
int node_http_port(const struct node_http_server *s);
/* Re-read the TLS certificate and key now (they are also re-read when the
 * files change): new connections use the new ones, open connections keep
 * theirs. Returns 0 (logged at info), AT_EINVAL with errmsg when a file is
 * bad (the current certificate stays; logged at warn) or when s serves
 * plain HTTP. */
int node_http_reload_tls(struct node_http_server *s, char *errmsg);
/* Open a connection to sa over mutual TLS with s's certificate (s was
 * started with tls_ca), from bind (NULL: any address), verifying the
 * server's certificate against the CA and for host (a DNS name or an IP
 * address). Returns 0 with *out, or a negative UV error. *out is the
 * local end of a socket pair (an at_malloc'd uv_pipe_t, not reading, data
 * NULL; the owner closes it with uv_close and frees it in the close
 * callback): the bytes written to it travel encrypted, and a failure of
 * the connection or the handshake shows as EOF on it. Its owner may write
 * at once: the bytes wait in the socket pair until the handshake is done.
 * The connection lives until either side closes, also after s stops. */
int node_http_dial_tls(struct node_http_server *s,
                       const struct sockaddr *sa,
                       const struct sockaddr *bind,
                       const char *host,
                       uv_stream_t **out);
/* What the server knows of a request once it is over. */
struct node_http_done {
    int status;      /* of the answer that went out; 0: none did */
    uint64_t bytes;  /* body bytes sent (of a file body: as far as it
                        went; of another body: all or, aborted, 0) */
    uint64_t micros; /* from the request's first byte to now */
    bool complete;   /* the response was written completely */
};
/* Called once per request the handler was given, when its response is
 * completely written or when the connection failed before that (client
 * gone, timeout, shutdown). r is borrowed for the call, and still has its
 * path, query, headers, user and context; the callback must not answer
 * or keep it. For access logs: the server takes no view on what to log. */
typedef void (*node_http_done_cb)(void *data,
                                  const struct node_http_req *r,
                                  const struct node_http_done *done);
/* Install cb (NULL: none) for the requests of s from now on. */
void node_http_on_done(struct node_http_server *s,
                       node_http_done_cb cb,
                       void *data);

/* Stop accepting; let in-flight requests finish (up to shutdown_grace_ms),
 * then close everything and call cb. Idle keep-alive connections are closed
 * at once. */
void node_http_stop(struct node_http_server *s,
                    void (*cb)(void *data),
                    void *data);

/* ---- request ---- */
enum node_http_method node_http_req_method(const struct node_http_req *r);
const char *node_http_req_method_str(const struct node_http_req *r);
/* Path, percent-decoding NOT applied, without the query. Never NULL. */
const char *node_http_req_path(const struct node_http_req *r);
/* Raw query string after '?', or NULL. */
const char *node_http_req_query(const struct node_http_req *r);
/* Header value by case-insensitive name; repeated headers are joined with
 * ", ". NULL if absent. */
const char *node_http_req_header(const struct node_http_req *r,
                                 const char *name);
/* Content-Length if present (has_length), chunked if Transfer-Encoding:
 * chunked. Neither: no body. */
bool node_http_req_has_body(const struct node_http_req *r);
bool node_http_req_has_length(const struct node_http_req *r);
uint64_t node_http_req_content_length(const struct node_http_req *r);
bool node_http_req_chunked(const struct node_http_req *r);
/* Peer address "ip:port" for logs. */
const char *node_http_req_peer(const struct node_http_req *r);
/* Who the request acts for, once the layer that checks credentials knows
 * (for the access log): name is copied, cut at NODE_HTTP_USER_MAX - 1
 * bytes; NULL clears it. node_http_req_user returns NULL until set. */
#define NODE_HTTP_USER_MAX 96
void node_http_req_set_user(struct node_http_req *r, const char *name);
const char *node_http_req_user(const struct node_http_req *r);

/* Consume the body: set before returning from the handler (or later, as long
 * as no body byte has been requested yet; reading starts when both are set
 * and, with Expect: 100-continue, the server then sends 100 Continue). */
void node_http_req_read_body(struct node_http_req *r,
                             node_http_body_cb on_body,
                             node_http_end_cb on_end);
void node_http_req_on_abort(struct node_http_req *r, node_http_abort_cb cb);
/* Optional, for a body with a Content-Length: memory the next body bytes may
 * be read into, so that they reach on_body without a copy. Asked on the loop
 * thread before a socket read, when nothing is buffered and more than a few
 * KiB of body are left: give up to `want` bytes (all of them body) at *p,
 * *n > 0, and return true; or return false to use the connection's buffer.
 * The bytes read then come to on_body with p pointing at that memory (a read
 * may bring fewer, or none). The memory must stay valid until then. */
typedef bool (*node_http_body_buf_cb)(struct node_http_req *req,
                                      size_t want,
                                      char **p,
                                      size_t *n);
void node_http_req_body_buf(struct node_http_req *r, node_http_body_buf_cb cb);
void node_http_req_pause(struct node_http_req *r);
void node_http_req_resume(struct node_http_req *r);

/* Handler-owned pointer. */
void node_http_req_set_data(struct node_http_req *r, void *data);
void *node_http_req_data(const struct node_http_req *r);
/* The context of the layer that routes requests (the reply context of
 * node/reply/reply.h), NULL until set; separate from the handler's data so
 * that a router and the handler it calls each keep their own pointer. */
void node_http_req_set_context(struct node_http_req *r, void *context);
void *node_http_req_context(const struct node_http_req *r);

/* Keep the request alive across async work; every ref needs an unref. */
void node_http_req_ref(struct node_http_req *r);
void node_http_req_unref(struct node_http_req *r);
/* True once the connection failed or the response completed. */
bool node_http_req_done(const struct node_http_req *r);

/* ---- response ----
 * Set status and headers, then finish with exactly one of send/send_file/
 * start. Content-Length is added by the server. For HEAD, the body is
 * omitted but Content-Length reflects it. */
void node_http_resp_status(struct node_http_req *r, int status);
void node_http_resp_header(struct node_http_req *r,
                           const char *name,
                           const char *fmt,
                           ...) AT_PRINTF(3, 4);
/* Complete response with a body copied from p (may be NULL when n == 0). */
void node_http_resp_send(struct node_http_req *r, const void *p, size_t n);
/* Complete response whose body is [offset, offset+len) of fd, sent with
 * sendfile(2) from the loop thread. Takes ownership of fd (closed when done).
 */
void node_http_resp_send_file(struct node_http_req *r,
                              int fd,
                              uint64_t offset,
                              uint64_t len);
/* Like send_file from offset 0, for a file still being written: only the
 * bytes before file offset limit are sent until node_http_resp_stream_limit
 * raises it (the response's write timeout runs meanwhile). */
void node_http_resp_stream_file(struct node_http_req *r,
                                int fd,
                                uint64_t len,
                                uint64_t limit);
void node_http_resp_stream_limit(struct node_http_req *r, uint64_t limit);
/* A body of len bytes that the handler hands over as it gets them (a relay
 * from another node): push_start writes the head (Content-Length: len);
 * each node_http_resp_push copies n bytes out and sets *unwritten to the
 * pushed bytes not written yet, so that the handler stops above a mark of
 * its own; on_drain (may be NULL) runs whenever that count falls to 0 with
 * bytes still to push. The response completes once all len bytes are
 * written. Push returns 0, AT_ETOOBIG for bytes past len (nothing queued),
 * AT_ESHUTDOWN once the response is gone or has no body (HEAD, 204, 304,
 * len 0: the head alone completes it). The write timeout runs meanwhile,
 * restarted by each push and each write done: a handler that pushes
 * nothing for that long has the connection closed (its abort callback
 * runs). To stop early, node_http_resp_abort: never a short body. */
void node_http_resp_push_start(struct node_http_req *r,
                               uint64_t len,
                               node_http_drain_cb on_drain);
int node_http_resp_push(struct node_http_req *r,
                        const void *p,
                        size_t n,
                        size_t *unwritten);
/* Close the connection at once, whatever was sent: the client sees a
 * truncated response. The abort callback runs (clear it first if unwanted).
 * No-op once the response is complete. */
void node_http_resp_abort(struct node_http_req *r);
/* Close the connection after this response (set before send). */
void node_http_resp_close(struct node_http_req *r);

/* Protocol upgrade (HTTP/1.1 101). Writes "101 Switching Protocols" with
 * Upgrade: <protocol>, Connection: Upgrade and any headers set with
 * node_http_resp_header, waits until it is written, then detaches the socket
 * from the server and calls cb(data, stream) with it: the caller owns the
 * stream from then on (a malloc'ed uv_tcp_t, not reading, data == NULL;
 * close it with uv_close and free it in the close callback). cb runs exactly
 * once. The request must have no body: if it has one (or was already
 * answered), cb(data, NULL) runs at once and the caller must still answer.
 * If the upgrade fails later (the client sent bytes past the request, the
 * connection failed), cb(data, NULL) runs and the connection is closed. */
typedef void (*node_http_upgrade_cb)(void *data, uv_stream_t *stream);
void node_http_req_upgrade(struct node_http_req *r,
                           const char *protocol,
                           node_http_upgrade_cb cb,
                           void *data);

/* Parse a Range header value against a resource of `size` bytes. Supports a
 * single "bytes=a-b", "bytes=a-", "bytes=-n". Returns 0 with [*start,*end]
 * inclusive, AT_ERANGE when unsatisfiable (416), AT_EINVAL when malformed or
 * multi-range (ignore the header: serve 200). */
int node_http_parse_range(const char *value,
                          uint64_t size,
                          uint64_t *start,
                          uint64_t *end);

#endif /* NODE_HTTP_H */
