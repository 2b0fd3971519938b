/* Peer HTTP client: node-to-node requests (libcurl multi on the node's loop).
 *
 * Every request goes to "host:port" of another node's peer listener, carries
 * Authorization: Bearer <cluster secret> and the peer protocol version
 * (proto/peer.h), has a total timeout and a bounded response
 * (NODE_PEER_MAX_RESP). An answer that does not state a peer protocol
 * version this node accepts is refused (AT_EPROTO, and a rate-limited WARN
 * naming the peer): it is never handed on to be parsed. Transport failures
 * say whether the request left this node: AT_EIO when it was never sent
 * (resolve or connect failed), AT_EUNKNOWN when it was sent but no complete
 * answer came back (timeout, reset): the peer may have acted on it. */
#ifndef NODE_PEER_H
#define NODE_PEER_H

#include <uv.h>

#include "common/common.h"

/* The largest answer buffered: a gossip push-pull's GossipState of the
 * largest member table (GOSSIP_STATE_BYTES_MAX, 8 MiB) with room to
 * spare; the others are far smaller. Grown as bytes arrive, not up
 * front. */
#define NODE_PEER_MAX_RESP (9 * 1024 * 1024)

struct node_peer;

/* status: 0 (an HTTP answer: http_status, body of len bytes, NUL
 * terminated, borrowed for the call), AT_EIO (not sent), AT_EUNKNOWN (sent,
 * no answer), AT_ETOOBIG (answer over NODE_PEER_MAX_RESP), AT_EPROTO (an
 * answer in a peer protocol version this node does not accept: the peer
 * refused the request or speaks another protocol), AT_ESHUTDOWN (client
 * closed first). */
typedef void (*node_peer_cb)(void *data,
                             int status,
                             int http_status,
                             const char *body,
                             size_t len);

/* A client on loop. secret (may be NULL: no Authorization header) and
 * bind_ip (outgoing source address; NULL, "" or "0.0.0.0": any) are copied.
 * Returns 0 or AT_E* with errmsg. */
int node_peer_new(struct node_peer **out,
                  uv_loop_t *loop,
                  const char *secret,
                  const char *bind_ip,
                  char *errmsg);

/* Speak https to peers from now on, with mutual TLS: ca (PEM: the cluster
 * CA, the only one trusted), this node's cert and key (copied). Each new
 * connection reads the files, so a rotated certificate is used without a
 * restart. */
void node_peer_set_tls(struct node_peer *p,
                       const char *ca,
                       const char *cert,
                       const char *key);

/* Start a request: method "GET" or "POST", addr "host:port", path starting
 * with '/', body copied (may be NULL with len 0), content_type may be NULL.
 * timeout_ms bounds the whole exchange. Returns 0 and then cb runs exactly
 * once on the loop (never from inside this call), or AT_EINVAL (bad address
 * or path) / AT_ESHUTDOWN and cb never runs. */
int node_peer_request(struct node_peer *p,
                      const char *method,
                      const char *addr,
                      const char *path,
                      const char *content_type,
                      const void *body,
                      size_t len,
                      uint64_t timeout_ms,
                      node_peer_cb cb,
                      void *data);

/* ---- streaming downloads ----
 * A GET whose 200 body goes to on_data in pieces instead of a buffer (other
 * statuses are buffered as usual, bounded by NODE_PEER_MAX_RESP, and reach
 * done with their body). on_data returns 0 (consumed), NODE_PEER_PAUSE
 * (NOT consumed: the same bytes come again after node_peer_resume) or a
 * negative AT_E* to abort the transfer (done then gets that code). done runs
 * exactly once as for node_peer_request, with an empty body for a streamed
 * 200.
 * The transfer may be resumed from any loop callback; on_data may run inside
 * node_peer_resume, so callers keep their state re-entrant. *out (may be
 * NULL) is valid until done runs. */
#define NODE_PEER_PAUSE 1
typedef int (*node_peer_data_cb)(void *data, const char *p, size_t n);
struct node_peer_req;
int node_peer_stream(struct node_peer *p,
                     const char *addr,
                     const char *path,
                     uint64_t timeout_ms,
                     node_peer_data_cb on_data,
                     node_peer_cb done,
                     void *data,
                     struct node_peer_req **out);
/* The same from another registry (a pull-through cache's upstream): a GET
 * of url ("http://" or "https://"), without the cluster secret, this
 * node's peer TLS or the peer protocol (none is asked of the answer).
 * auth (an "Authorization: ..." line, or NULL) goes to url's host only:
 * redirects (a registry's CDN) are followed, up to 5, without it. ca_file
 * (NULL: the system's CAs) and tls_verify are the remote's settings.
 * Everything is copied. */
struct node_peer_url {
    const char *url;
    const char *auth;
    const char *ca_file;
    bool tls_verify;
};
int node_peer_stream_url(struct node_peer *p,
                         const struct node_peer_url *u,
                         uint64_t timeout_ms,
                         node_peer_data_cb on_data,
                         node_peer_cb done,
                         void *data,
                         struct node_peer_req **out);
/* Resume a transfer paused by on_data (no-op when not paused). */
void node_peer_resume(struct node_peer_req *r);

/* ---- rate-limited warnings about peers ----
 * One line per peer per NODE_PEER_WARN_MS, so that a peer repeating a
 * refused request cannot fill the log; the table holds the last
 * NODE_PEER_WARN_SLOTS peers (the oldest entry is reused). Zeroed = empty. */
#define NODE_PEER_WARN_SLOTS 16
#define NODE_PEER_WARN_MS    60000
struct node_peer_warn {
    char peer[64];    /* address, truncated; "" = free slot */
    uint64_t last_ms; /* when its last line was written */
    uint64_t quiet;   /* refusals since then that were not logged */
};

/* True when a line about peer is due at now_ms: then *quiet gets the
 * number of refusals not logged since its last line. Else the refusal is
 * counted and false returned. */
bool node_peer_warn_due(struct node_peer_warn *slots,
                        size_t n,
                        const char *peer,
                        uint64_t now_ms,
                        uint64_t *quiet);

/* Abort every request in flight (their cb runs with AT_ESHUTDOWN), release
 * everything, then call cb (may be NULL) once the loop has closed the
 * client's handles. */
void node_peer_close(struct node_peer *p, void (*cb)(void *data), void *data);

#endif /* NODE_PEER_H */
