/* Private to node/http: a server's TLS contexts (certificate and key read
 * from PEM files, re-read on demand and when the files change) for the TLS
 * transport (tls.c, declared in transport.h).
 *
 * Each reload builds a new OpenSSL context and makes it current; a
 * connection holds a reference to the context it started with, so the old
 * one lives until its last connection has gone. A reload that fails keeps
 * the current context. */
#ifndef NODE_HTTP_TLS_CTX_H
#define NODE_HTTP_TLS_CTX_H

#include <uv.h>

#include "common/common.h"
#include "node/http/http.h"

struct node_http_tls;

/* The files of a peer listener's mutual TLS. */
struct node_http_tls_files {
    const char *cert; /* borrowed; PEM certificate + chain */
    const char *key;  /* borrowed; PEM key */
    const char *ca;   /* borrowed; PEM CA(s) clients must chain to, or NULL */
    node_http_tls_refused_cb refused; /* NULL: refusals log at debug */
    void *refused_data;
};

/* Read cert (PEM: the certificate, then its chain) and key (PEM, not
 * encrypted) into a first context, and watch both files: stat(2) every
 * poll_ms in libuv's pool, following symlinks, so an atomic swap of a
 * directory symlink (as Kubernetes secret volumes and cert-manager do) is
 * seen; a change reloads after a short settle delay. Returns 0 with *out,
 * or AT_EINVAL with errmsg naming the file and what is wrong with it. */
int node_http__tls_open(struct node_http_tls **out,
                        uv_loop_t *loop,
                        const char *cert,
                        const char *key,
                        uint64_t poll_ms,
                        char *errmsg);
/* Like node_http__tls_open, for mutual TLS when f->ca is set: the server
 * context then requires a client certificate chaining to f->ca (and
 * refuses the handshake without one), a client context (same certificate,
 * servers verified against f->ca) is made beside it, and the three files
 * are watched and reloaded together. */
int node_http__tls_open_peer(struct node_http_tls **out,
                             uv_loop_t *loop,
                             const struct node_http_tls_files *f,
                             uint64_t poll_ms,
                             char *errmsg);
/* Tell the refused callback of ssl_ctx (an SSL_CTX * from this file) that
 * peer was refused for why; false when it has none. */
bool node_http__tls_refused(void *ssl_ctx, const char *peer, const char *why);
/* Re-read both files now. Returns 0 (the new context is current, logged at
 * info) or AT_EINVAL with errmsg (the current context stays, logged once at
 * warn). */
int node_http__tls_reload(struct node_http_tls *tls, char *errmsg);
/* Stop watching and drop the current context (connections keep theirs);
 * cb(data) runs once the handles are closed and tls is freed. */
void node_http__tls_close(struct node_http_tls *tls,
                          void (*cb)(void *data),
                          void *data);
/* The current OpenSSL context (SSL_CTX *), borrowed: for tls.c, which
 * takes its own reference through SSL_new. */
void *node_http__tls_ctx(const struct node_http_tls *tls);
/* The current client context (SSL_CTX *, borrowed), NULL without a CA. */
void *node_http__tls_client_ctx(const struct node_http_tls *tls);
/* How many contexts were loaded (1 after open; tests). */
uint64_t node_http__tls_generation(const struct node_http_tls *tls);

/* Whether the kernel can take over TLS record encryption (kTLS): a loopback
 * handshake with the context's certificate, OpenSSL asked for kTLS, and
 * whether its socket BIO reports kTLS for sending. why says what decided
 * (the kernel's ULP list when it is missing). Blocking; runs once at
 * start. */
bool node_http__tls_ktls_probe(struct node_http_tls *tls,
                               char *why,
                               size_t whylen);

#endif /* NODE_HTTP_TLS_CTX_H */
