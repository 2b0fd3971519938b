/* The byte stream under an HTTP connection: TCP, in-memory for tests and
 * fuzzing, TLS over either. The connection calls only these operations.
 *
 * A transport follows libuv's rules: callbacks never run from inside the
 * call that arms them, a write's callback runs exactly once (UV_ECANCELED
 * when the transport closes first), and writes complete in the order they
 * were queued. A transport may do I/O of its own that the connection never
 * sees (a TLS handshake, its records): the connection only learns when the
 * bytes of each of its writes are through, and gets plaintext through its
 * read callbacks. */
#ifndef NODE_HTTP_TRANSPORT_H
#define NODE_HTTP_TRANSPORT_H

#include <sys/types.h>
#include <uv.h>

#include "common/common.h"

struct node_http_transport;
struct node_http_twrite;

/* Memory for the next read: like uv_alloc_cb, buf->len may be 0 (no room). */
typedef void (*node_http_alloc_cb)(struct node_http_transport *t,
                                   size_t hint,
                                   uv_buf_t *buf);
/* Like uv_read_cb: nread > 0 bytes at buf->base, 0 nothing, < 0 UV_EOF or
 * an error (after which nothing more is read). */
typedef void (*node_http_read_cb)(struct node_http_transport *t,
                                  ssize_t nread,
                                  const uv_buf_t *buf);
/* A queued write completed: 0, or a negative UV error. */
typedef void (*node_http_twrite_cb)(struct node_http_twrite *w, int status);
/* A shutdown or a wait for room completed: 0, or a negative UV error. */
typedef void (*node_http_tstatus_cb)(struct node_http_transport *t, int status);
/* The transport is closed: its memory goes right after this returns. */
typedef void (*node_http_tclose_cb)(struct node_http_transport *t);

/* One write request. The caller embeds it (and keeps the bytes alive) until
 * cb runs; the union is the transport's bookkeeping. */
struct node_http_twrite {
    struct node_http_transport *t; /* borrowed; set by write */
    node_http_twrite_cb cb;        /* set by write */
    union {
        uv_write_t uv;       /* tcp: the libuv request */
        struct at_list link; /* mem: pending until flushed */
        struct {
            struct at_list link; /* waiting for its records to be written */
            uint64_t seq;        /* the last record chunk holding its bytes */
        } tls;
    } u;
};

struct node_http_transport_ops {
    const char *name;
    /* Deliver input through alloc_cb/read_cb until read_stop. Returns 0 or
     * a negative UV error. Starting twice is harmless. */
    int (*read_start)(struct node_http_transport *t,
                      node_http_alloc_cb alloc_cb,
                      node_http_read_cb read_cb);
    void (*read_stop)(struct node_http_transport *t);
    /* Queue bufs (the array is copied, the bytes are not). Returns 0 (cb
     * runs later) or a negative UV error (cb never runs). */
    int (*write)(struct node_http_transport *t,
                 struct node_http_twrite *w,
                 const uv_buf_t *bufs,
                 unsigned nbufs,
                 node_http_twrite_cb cb);
    /* Bytes queued and not yet written: progress shows as it shrinking. */
    size_t (*write_queue_size)(const struct node_http_transport *t);
    /* Optional (NULL: the connection reads the file and writes the bytes).
     * Send up to len bytes of fd from off straight to the peer, without
     * blocking; only with no write queued. Returns bytes sent (> 0), 0 when
     * the file has no byte at off, UV_EAGAIN when the peer cannot take more
     * now (then wait_writable), or another negative UV error. TCP sends
     * with sendfile(2); TLS reads a large piece and encrypts it into its
     * own bounded queue ("sent" then means queued there). */
    ssize_t (*sendfile)(struct node_http_transport *t,
                        int fd,
                        uint64_t off,
                        size_t len);
    /* With sendfile: cb runs once when the peer can take more bytes. */
    int (*wait_writable)(struct node_http_transport *t,
                         node_http_tstatus_cb cb);
    /* Finish the write side once the queued writes are through; cb runs
     * then. Returns 0 or a negative UV error (cb never runs). */
    int (*shutdown)(struct node_http_transport *t, node_http_tstatus_cb cb);
    /* Close: queued writes complete with UV_ECANCELED, then cb runs, then
     * the transport is freed. Called once; nothing else after it. */
    void (*close)(struct node_http_transport *t, node_http_tclose_cb cb);
    /* The peer's address for logs ("ip:port", "[ip6]:port", "mem"). */
    void (*peer)(const struct node_http_transport *t, char *buf, size_t n);
    /* Hand the socket to a new owner (protocol upgrade): a malloc'ed
     * uv_tcp_t (TCP) or the end of a socket pair whose other end a pump
     * joins to the transport (TLS), not reading, data NULL; or NULL when
     * this transport cannot.
     * Needs no write queued and reading stopped. On success the transport
     * is gone: it frees itself (close is not called, no callback runs). */
    uv_stream_t *(*detach)(struct node_http_transport *t);
};

struct node_http_transport {
    const struct node_http_transport_ops *ops; /* static */
    void *data;                                /* the user's (the connection) */
};

/* ---- tcp.c ---- */

/* Accept a connection on listener into a new TCP transport (*out, owned
 * by the caller until closed). Returns 0 or a negative UV error. */
int node_http__tcp_accept(uv_stream_t *listener,
                          struct node_http_transport **out);

/* ---- mem.c: a transport without a socket, for tests and fuzzing ---- */

/* Output is appended to *out (borrowed) as it is written; each write
 * completes only at node_http__mem_flush. The loop closes it. */
struct node_http_transport *node_http__mem_new(uv_loop_t *loop,
                                               struct at_buf *out);
/* Hand p[0..n) to the reader in one read, as far as it has room: returns
 * the bytes taken (0 when it is not reading or closed). */
size_t node_http__mem_feed(struct node_http_transport *t,
                           const char *p,
                           size_t n);
/* Complete the queued writes in order (and then a pending shutdown);
 * returns how many writes completed. Writes queued by their callbacks
 * complete in the same call. */
int node_http__mem_flush(struct node_http_transport *t);
/* The peer closed its side: the reader gets UV_EOF at once, reading or not
 * (a socket would tell when reading resumes; tests want it now). */
void node_http__mem_eof(struct node_http_transport *t);
/* True for a transport made by node_http__mem_new. */
bool node_http__is_mem(const struct node_http_transport *t);

/* ---- tls.c: TLS over another transport (tls_ctx.h: its contexts) ---- */

struct node_http_tls;

/* A TLS server transport over lower (ownership passes, also on failure),
 * using tls's current context: new connections take the newest context,
 * each keeps the one it started with. Returns 0 with *out, or a negative
 * UV error (lower is closed then). */
int node_http__tls_wrap(struct node_http_tls *tls,
                        uv_loop_t *loop,
                        struct node_http_transport *lower,
                        struct node_http_transport **out);
/* A TLS client session for host (a DNS name: checked against the
 * certificate's names, and sent as SNI; or an IP address) with tls's
 * client context (SSL *): the caller owns it until node_http__tls_connect
 * takes it, else frees it with node_http__tls_session_free. NULL when tls
 * has no client context (no CA). */
void *node_http__tls_session_new(struct node_http_tls *tls, const char *host);
void node_http__tls_session_free(void *ssl);
/* A TLS client transport for ssl (taken) over lower (a connected
 * transport, taken, also on failure): the handshake starts at once; writes
 * are refused until wait_writable reports it done; a failed handshake
 * shows as the end of input. Returns 0 with *out or a negative UV error. */
int node_http__tls_connect(void *ssl,
                           uv_loop_t *loop,
                           struct node_http_transport *lower,
                           struct node_http_transport **out);

/* ---- pump.c: a uv_stream_t for a transport that is not one ---- */

struct node_http_pump;

/* A socket pair: *end (an at_malloc'd uv_pipe_t, not reading, data NULL)
 * for an owner that wants a libuv stream; the pump carries bytes between
 * the other end and t (taken; NULL: node_http__pump_attach gives it later)
 * with bounded queues each way. Either side's end or error closes both;
 * peer names it in logs. Returns 0 or a negative UV error (t is then not
 * taken). */
int node_http__pump_new(uv_loop_t *loop,
                        struct node_http_transport *t,
                        const char *peer,
                        uv_stream_t **end);

/* ---- tcp.c ---- */

/* A TCP transport for tcp (connected, at_malloc'd: taken). */
int node_http__tcp_adopt(uv_tcp_t *tcp, struct node_http_transport **out);

/* Test seams: bytes the transport holds for the peer (encrypted, not yet
 * through the lower transport), and the
 * negotiated protocol version ("TLSv1.3"), or "" before the handshake. */
size_t node_http__tls_held(const struct node_http_transport *t);
const char *node_http__tls_version(const struct node_http_transport *t);

#endif /* NODE_HTTP_TRANSPORT_H */
