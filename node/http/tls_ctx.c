/* A server's TLS contexts: the certificate chain and key read from PEM
 * files into an OpenSSL context, reloads (on demand, and when a stat poll
 * of the files sees a change), and the probe for kernel TLS.
 *
 * Settings: TLS 1.2 and 1.3 only; OpenSSL's defaults (Debian builds it at
 * security level 2: no keys below 2048-bit RSA, no SHA-1 signatures), its
 * TLS 1.3 suites and groups, except that TLS 1.2 is limited to the
 * forward-secret AEAD suites (ECDHE with AES-GCM or ChaCha20-Poly1305):
 * the default list still has CBC and static-RSA suites, which scanners
 * rate weak; the server's cipher order wins; no renegotiation, no
 * compression; session tickets as OpenSSL makes them; ALPN answers
 * http/1.1 only.
 *
 * The files are watched with a stat poll (uv_fs_poll: stat(2) in libuv's
 * pool every poll interval, comparing inode, size and times) rather than
 * inotify: stat follows symlinks, so the atomic swap of a directory
 * symlink that Kubernetes secret volumes and cert-manager use shows as a
 * new inode, where inotify would have to watch every directory along the
 * symlink chain; it works the same on bind mounts and network file
 * systems; and two stats every few seconds cost nothing. A change reloads
 * after a short settle delay, so that a certificate and key replaced one
 * after the other are read together. */
#include "common/compat.h"

#define AT_LOG_COMP "http"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/common.h"
#include "node/http/tls_ctx.h"

/* A PEM file of a certificate chain or a key is a few KiB. */
#define PEM_MAX ((size_t)1 << 20)
/* After a change is seen, wait this long before reading the files. */
#define SETTLE_MS 500

struct node_http_tls {
    uv_loop_t *loop; /* borrowed */
    char *cert;      /* owned: path */
    char *key;       /* owned: path */
    char *ca;        /* owned: path; NULL: no client certificates */
    SSL_CTX *ctx;    /* owned reference; each connection holds its own */
    SSL_CTX *cctx;   /* owned reference: the client side (with ca) */
    node_http_tls_refused_cb refused;
    void *refused_data;
    uint64_t generation;
    uv_fs_poll_t watch[3]; /* cert, key, ca */
    uv_timer_t settle;
    int handles;
    bool closing;
    void (*close_cb)(void *data);
    void *close_data;
};

/* OpenSSL's reason for the last error on this thread, and clear them. */
static const char *ossl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

    ERR_clear_error();
    return r != NULL ? r : "no detail";
}

/* Never ask for a passphrase: a daemon has no one to ask. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    AT_UNUSED(buf);
    AT_UNUSED(size);
    AT_UNUSED(rwflag);
    AT_UNUSED(u);
    return -1;
}

static int read_pem(const char *what,
                    const char *path,
                    struct at_buf *b,
                    char *errmsg)
{
    FILE *f = fopen(path, "rbe");
    char chunk[4096];
    size_t n;
    int rv = 0;

    if (f == NULL) {
        at_errmsg_printf(errmsg, "%s '%s': cannot open: %s", what, path,
                         strerror(errno));
        return AT_EINVAL;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (at_buf_append(b, chunk, n) != 0) {
            at_errmsg_printf(errmsg, "%s '%s': larger than %zu bytes", what,
                             path, PEM_MAX);
            rv = AT_EINVAL;
            break;
        }
    }
    if (rv == 0 && ferror(f)) {
        at_errmsg_printf(errmsg, "%s '%s': read error: %s", what, path,
                         strerror(errno));
        rv = AT_EINVAL;
    }
    explicit_bzero(chunk, sizeof(chunk));
    fclose(f);
    return rv;
}

/* "subject /CN=x, serial 1A2B, expires Dec  6 03:38:18 2027 GMT" */
static void describe(X509 *x, char *buf, size_t n)
{
    char subject[160] = "?";
    char serial[80] = "?";
    char until[40] = "?";
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
    BIO *mem = BIO_new(BIO_s_mem());

    X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof(subject));
    if (hex != NULL)
        snprintf(serial, sizeof(serial), "%s", hex);
    if (mem != NULL && ASN1_TIME_print(mem, X509_get0_notAfter(x)) == 1) {
        int k = BIO_read(mem, until, (int)sizeof(until) - 1);
        until[k > 0 ? k : 0] = '\0';
    }
    snprintf(buf, n, "subject %s, serial %s, expires %s", subject, serial,
             until);
    BIO_free(mem);
    OPENSSL_free(hex);
    BN_free(bn);
    ERR_clear_error();
}

static int alpn_select(SSL *ssl,
                       const unsigned char **out,
                       unsigned char *outlen,
                       const unsigned char *in,
                       unsigned int inlen,
                       void *arg)
{
    static const unsigned char ours[] = "\x08http/1.1";
    unsigned char *sel = NULL;
    unsigned char sellen = 0;

    AT_UNUSED(ssl);
    AT_UNUSED(arg);
    /* A client that offers only h2 still gets HTTP/1.1 without ALPN, as
     * it would from a server that knows no ALPN. */
    if (SSL_select_next_proto(&sel, &sellen, ours, sizeof(ours) - 1, in,
                              inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = sel;
    *outlen = sellen;
    return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *ctx_new(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* AES-128-GCM first (then OpenSSL's other TLS 1.3 suites): as strong
     * as any client needs, and 10 AES rounds instead of 14 on every byte
     * of a blob pull */
    if (SSL_CTX_set_cipher_list(ctx,
                                "ECDHE+AES128GCM:ECDHE+AESGCM:"
                                "ECDHE+CHACHA20") != 1 ||
        SSL_CTX_set_ciphersuites(ctx,
                                 "TLS_AES_128_GCM_SHA256:"
                                 "TLS_AES_256_GCM_SHA384:"
                                 "TLS_CHACHA20_POLY1305_SHA256") != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_NO_COMPRESSION);
    /* No SSL_MODE_RELEASE_BUFFERS: giving the record buffers back after
     * each record costs two allocations per request (4% of the TLS work of
     * a small GET under callgrind) to save ~34 KiB per open connection. */
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    return ctx;
}

/* The chain after the first certificate: until the PEM data ends. */
static int read_chain(BIO *bio,
                      STACK_OF(X509) * chain,
                      const char *cert,
                      char *errmsg)
{
    for (;;) {
        X509 *x = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
        unsigned long e;

        if (x != NULL) {
            if (sk_X509_push(chain, x) <= 0) {
                X509_free(x);
                at_errmsg_printf(errmsg, "tls_cert '%s': out of memory", cert);
                return AT_ENOMEM;
            }
            continue;
        }
        e = ERR_peek_last_error();
        if (ERR_GET_LIB(e) == ERR_LIB_PEM &&
            ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
            ERR_clear_error();
            return 0;
        }
        at_errmsg_printf(errmsg, "tls_cert '%s': chain certificate %d: %s",
                         cert, sk_X509_num(chain) + 1, ossl_reason());
        return AT_EINVAL;
    }
}

/* The peer side of mutual TLS: the server context asks every client for a
 * certificate that chains to ca (the file only, never the system store) and
 * refuses the handshake without one; *cout is a client context with the
 * same certificate, verifying servers against ca. */
static int ctx_mutual(SSL_CTX *ctx,
                      X509 *leaf,
                      EVP_PKEY *pkey,
                      STACK_OF(X509) * chain,
                      const char *ca,
                      SSL_CTX **cout,
                      char *errmsg)
{
    static const unsigned char sid[] = "atoll-peer";
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca);
    SSL_CTX *c = NULL;

    if (names == NULL || SSL_CTX_load_verify_file(ctx, ca) != 1) {
        sk_X509_NAME_pop_free(names, X509_NAME_free);
        at_errmsg_printf(errmsg, "peer_tls_ca '%s': no PEM certificate: %s", ca,
                         ossl_reason());
        return AT_EINVAL;
    }
    SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       NULL);
    /* Sessions resumed with a verified client must stay in this context. */
    SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
    c = SSL_CTX_new(TLS_client_method());
    if (c == NULL || SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(c, "ECDHE+AESGCM:ECDHE+CHACHA20") != 1 ||
        SSL_CTX_use_cert_and_key(c, leaf, pkey, chain, 1) != 1 ||
        SSL_CTX_load_verify_file(c, ca) != 1) {
        SSL_CTX_free(c);
        at_errmsg_printf(errmsg, "peer tls: client context: %s", ossl_reason());
        return AT_EINVAL;
    }
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    *cout = c;
    return 0;
}

/* Read both files into a new context (and with ca, the client context
 * into *cout). Returns 0 with *out and desc, or AT_EINVAL with errmsg. */
static int ctx_load(const char *cert,
                    const char *key,
                    const char *ca,
                    SSL_CTX **out,
                    SSL_CTX **cout,
                    char *desc,
                    size_t desclen,
                    char *errmsg)
{
    struct at_buf cb, kb;
    BIO *bio = NULL;
    X509 *leaf = NULL;
    STACK_OF(X509) *chain = sk_X509_new_null();
    EVP_PKEY *pkey = NULL;
    SSL_CTX *ctx = NULL;
    int rv = AT_EINVAL;

    at_buf_init(&cb, PEM_MAX);
    at_buf_init(&kb, PEM_MAX);
    ERR_clear_error();
    if (chain == NULL || read_pem("tls_cert", cert, &cb, errmsg) != 0 ||
        read_pem("tls_key", key, &kb, errmsg) != 0)
        goto out;
    bio = BIO_new_mem_buf(cb.data != NULL ? cb.data : "", (int)cb.len);
    leaf = bio != NULL ? PEM_read_bio_X509_AUX(bio, NULL, no_passphrase, NULL)
                       : NULL;
    if (leaf == NULL) {
        at_errmsg_printf(errmsg, "tls_cert '%s': no PEM certificate: %s", cert,
                         ossl_reason());
        goto out;
    }
    rv = read_chain(bio, chain, cert, errmsg);
    if (rv != 0)
        goto out;
    rv = AT_EINVAL;
    BIO_free(bio);
    bio = BIO_new_mem_buf(kb.data != NULL ? kb.data : "", (int)kb.len);
    pkey = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL)
                       : NULL;
    if (pkey == NULL) {
        at_errmsg_printf(errmsg,
                         "tls_key '%s': no PEM private key (encrypted keys "
                         "are not supported): %s",
                         key, ossl_reason());
        goto out;
    }
    if (X509_check_private_key(leaf, pkey) != 1) {
        ERR_clear_error();
        at_errmsg_printf(errmsg,
                         "tls_key '%s' is not the key of the certificate in "
                         "tls_cert '%s'",
                         key, cert);
        goto out;
    }
    ctx = ctx_new();
    if (ctx == NULL) {
        at_errmsg_printf(errmsg, "tls: new context: %s", ossl_reason());
        goto out;
    }
    /* Refuses what the security level refuses (a small key, a weak
     * signature). */
    if (SSL_CTX_use_cert_and_key(ctx, leaf, pkey, chain, 1) != 1) {
        at_errmsg_printf(errmsg, "tls_cert '%s': %s", cert, ossl_reason());
        goto out;
    }
    if (ca != NULL) {
        rv = ctx_mutual(ctx, leaf, pkey, chain, ca, cout, errmsg);
        if (rv != 0)
            goto out;
        rv = AT_EINVAL;
    }
    describe(leaf, desc, desclen);
    if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0)
        LOG_WARN("tls: the certificate in '%s' has expired (%s)", cert, desc);
    *out = ctx;
    ctx = NULL;
    rv = 0;
out:
    SSL_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    X509_free(leaf);
    sk_X509_pop_free(chain, X509_free);
    BIO_free(bio);
    if (kb.data != NULL)
        explicit_bzero(kb.data, kb.len);
    at_buf_release(&kb);
    at_buf_release(&cb);
    ERR_clear_error();
    return rv;
}

static void ctx_refused_set(SSL_CTX *ctx, const struct node_http_tls *tls);

/* see tls_ctx.h */
int node_http__tls_reload(struct node_http_tls *tls, char *errmsg)
{
    SSL_CTX *ctx, *cctx = NULL;
    char desc[320];
    int rv;

    rv = ctx_load(tls->cert, tls->key, tls->ca, &ctx, &cctx, desc, sizeof(desc),
                  errmsg);
    if (rv != 0) {
        LOG_WARN("tls: reload failed, keeping the current certificate: %s",
                 errmsg);
        return rv;
    }
    ctx_refused_set(ctx, tls);
    if (cctx != NULL)
        ctx_refused_set(cctx, tls);
    SSL_CTX_free(tls->ctx);
    SSL_CTX_free(tls->cctx);
    tls->ctx = ctx;
    tls->cctx = cctx;
    tls->generation++;
    LOG_INFO("tls: reloaded '%s' (%s)", tls->cert, desc);
    return 0;
}

static void tls_on_settle(uv_timer_t *h)
{
    struct node_http_tls *tls = h->data;
    char errmsg[AT_ERRMSG_SIZE];

    if (!tls->closing)
        node_http__tls_reload(tls, errmsg);
}

static void tls_on_change(uv_fs_poll_t *h,
                          int status,
                          const uv_stat_t *prev,
                          const uv_stat_t *curr)
{
    struct node_http_tls *tls = h->data;

    AT_UNUSED(prev);
    AT_UNUSED(curr);
    if (tls->closing)
        return;
    LOG_DEBUG("tls: '%s' changed%s%s",
              h == &tls->watch[0]   ? tls->cert
              : h == &tls->watch[1] ? tls->key
                                    : tls->ca,
              status < 0 ? ": " : "", status < 0 ? uv_strerror(status) : "");
    uv_timer_start(&tls->settle, tls_on_settle, SETTLE_MS, 0);
}

/* Who hears of refused peers, attached to a context so that it lives as
 * long as the connections that use the context. */
struct refused {
    node_http_tls_refused_cb cb;
    void *data;
};

static int refused_index = -1;
static pthread_once_t refused_once = PTHREAD_ONCE_INIT;

static void refused_free(void *parent,
                         void *ptr,
                         CRYPTO_EX_DATA *ad,
                         int idx,
                         long argl,
                         void *argp)
{
    AT_UNUSED(parent);
    AT_UNUSED(ad);
    AT_UNUSED(idx);
    AT_UNUSED(argl);
    AT_UNUSED(argp);
    at_free(ptr);
}

static void refused_init(void)
{
    refused_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, refused_free);
}

static void ctx_refused_set(SSL_CTX *ctx, const struct node_http_tls *tls)
{
    struct refused *r;

    if (tls->refused == NULL)
        return;
    pthread_once(&refused_once, refused_init);
    r = at_malloc(sizeof(*r));
    r->cb = tls->refused;
    r->data = tls->refused_data;
    if (refused_index < 0 || SSL_CTX_set_ex_data(ctx, refused_index, r) != 1)
        at_free(r);
}

/* see tls_ctx.h */
bool node_http__tls_refused(void *ssl_ctx, const char *peer, const char *why)
{
    struct refused *r =
        refused_index >= 0 ? SSL_CTX_get_ex_data(ssl_ctx, refused_index) : NULL;

    if (r == NULL)
        return false;
    r->cb(r->data, peer, why);
    return true;
}

/* see tls_ctx.h */
int node_http__tls_open_peer(struct node_http_tls **out,
                             uv_loop_t *loop,
                             const struct node_http_tls_files *f,
                             uint64_t poll_ms,
                             char *errmsg)
{
    struct node_http_tls *tls;
    SSL_CTX *ctx, *cctx = NULL;
    char desc[320];
    int rv;

    rv = ctx_load(f->cert, f->key, f->ca, &ctx, &cctx, desc, sizeof(desc),
                  errmsg);
    if (rv != 0)
        return rv;
    tls = at_calloc(1, sizeof(*tls));
    tls->loop = loop;
    tls->cert = at_strdup(f->cert);
    tls->key = at_strdup(f->key);
    tls->ca = f->ca != NULL ? at_strdup(f->ca) : NULL;
    tls->refused = f->refused;
    tls->refused_data = f->refused_data;
    ctx_refused_set(ctx, tls);
    if (cctx != NULL)
        ctx_refused_set(cctx, tls);
    tls->ctx = ctx;
    tls->cctx = cctx;
    tls->generation = 1;
    uv_timer_init(loop, &tls->settle);
    tls->settle.data = tls;
    tls->handles = 1;
    for (int i = 0; i < (f->ca != NULL ? 3 : 2); i++) {
        const char *path = i == 0 ? f->cert : i == 1 ? f->key : f->ca;

        uv_fs_poll_init(loop, &tls->watch[i]);
        tls->watch[i].data = tls;
        tls->handles++;
        rv = uv_fs_poll_start(&tls->watch[i], tls_on_change, path,
                              (unsigned)AT_MIN(poll_ms, UINT_MAX));
        if (rv != 0)
            LOG_WARN("tls: cannot watch '%s' (%s): reload it with SIGHUP", path,
                     uv_strerror(rv));
    }
    if (f->ca != NULL)
        LOG_INFO("tls: peers speak mutual TLS with '%s' (%s), CA '%s'", f->cert,
                 desc, f->ca);
    else
        LOG_INFO("tls: serving HTTPS with '%s' (%s)", f->cert, desc);
    *out = tls;
    return 0;
}

/* see tls_ctx.h */
int node_http__tls_open(struct node_http_tls **out,
                        uv_loop_t *loop,
                        const char *cert,
                        const char *key,
                        uint64_t poll_ms,
                        char *errmsg)
{
    struct node_http_tls_files f;

    memset(&f, 0, sizeof(f));
    f.cert = cert;
    f.key = key;
    return node_http__tls_open_peer(out, loop, &f, poll_ms, errmsg);
}

static void tls_on_handle_close(uv_handle_t *h)
{
    struct node_http_tls *tls = h->data;
    void (*cb)(void *) = tls->close_cb;
    void *data = tls->close_data;

    if (--tls->handles > 0)
        return;
    at_free(tls->cert);
    at_free(tls->key);
    at_free(tls->ca);
    at_free(tls);
    if (cb != NULL)
        cb(data);
}

/* see tls_ctx.h */
void node_http__tls_close(struct node_http_tls *tls,
                          void (*cb)(void *data),
                          void *data)
{
    AT_ASSERT(!tls->closing);
    tls->closing = true;
    tls->close_cb = cb;
    tls->close_data = data;
    SSL_CTX_free(tls->ctx);
    SSL_CTX_free(tls->cctx);
    tls->ctx = tls->cctx = NULL;
    uv_close((uv_handle_t *)&tls->settle, tls_on_handle_close);
    for (int i = 0; i < (tls->ca != NULL ? 3 : 2); i++)
        uv_close((uv_handle_t *)&tls->watch[i], tls_on_handle_close);
}

/* see tls_ctx.h */
void *node_http__tls_ctx(const struct node_http_tls *tls)
{
    return tls->ctx;
}

/* see tls_ctx.h */
void *node_http__tls_client_ctx(const struct node_http_tls *tls)
{
    return tls->cctx;
}

/* see tls_ctx.h */
uint64_t node_http__tls_generation(const struct node_http_tls *tls)
{
    return tls->generation;
}

/* ---- kernel TLS probe ---- */

/* A connected loopback TCP pair, both ends non-blocking. */
static int probe_pair(int fds[2])
{
    struct sockaddr_in a;
    socklen_t alen = sizeof(a);
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rv = -1;

    fds[0] = fds[1] = -1;
    if (l < 0)
        return -1;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(l, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(l, 1) != 0 ||
        getsockname(l, (struct sockaddr *)&a, &alen) != 0)
        goto out;
    fds[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fds[0] < 0 || connect(fds[0], (struct sockaddr *)&a, sizeof(a)) != 0)
        goto out;
    fds[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
    if (fds[1] < 0)
        goto out;
    for (int i = 0; i < 2; i++)
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
    rv = 0;
out:
    close(l);
    return rv;
}

/* 1 done, 0 not yet, -1 failed. */
static int probe_step(SSL *s)
{
    int rv = SSL_do_handshake(s);
    int e;

    if (rv == 1)
        return 1;
    e = SSL_get_error(s, rv);
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

/* Why the kernel would not do it: the ULPs it offers. */
static void probe_ulp(char *why, size_t whylen)
{
    char list[128] = "";
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "re");

    if (f != NULL) {
        if (fgets(list, sizeof(list), f) == NULL)
            list[0] = '\0';
        fclose(f);
    }
    list[strcspn(list, "\n")] = '\0';
    if (strstr(list, "tls") == NULL)
        snprintf(why, whylen,
                 "the kernel has no tls ULP (tcp_available_ulp: %s)",
                 list[0] != '\0' ? list : "empty");
    else
        snprintf(why, whylen, "OpenSSL did not turn it on for this cipher");
}

/* see tls_ctx.h */
bool node_http__tls_ktls_probe(struct node_http_tls *tls,
                               char *why,
                               size_t whylen)
{
#ifdef OPENSSL_NO_KTLS
    AT_UNUSED(tls);
    snprintf(why, whylen, "OpenSSL is built without kTLS");
    return false;
#else
    int fds[2];
    SSL_CTX *cctx = NULL;
    SSL *c = NULL, *s = NULL;
    int a = 0, b = 0;
    bool yes = false;

    snprintf(why, whylen, "the probe handshake failed");
    if (probe_pair(fds) != 0) {
        snprintf(why, whylen, "loopback connection: %s", strerror(errno));
        goto out;
    }
    cctx = SSL_CTX_new(TLS_client_method());
    c = cctx != NULL ? SSL_new(cctx) : NULL;
    s = SSL_new(tls->ctx);
    if (c == NULL || s == NULL || SSL_set_fd(c, fds[0]) != 1 ||
        SSL_set_fd(s, fds[1]) != 1)
        goto out;
    SSL_set_options(s, SSL_OP_ENABLE_KTLS);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    for (int i = 0; i < 200 && (a != 1 || b != 1); i++) {
        struct pollfd p[2] = { { .fd = fds[0], .events = POLLIN },
                               { .fd = fds[1], .events = POLLIN } };

        if (a != 1)
            a = probe_step(c);
        if (b != 1)
            b = probe_step(s);
        if (a < 0 || b < 0)
            break;
        if (a != 1 || b != 1)
            poll(p, 2, 10);
    }
    if (a != 1 || b != 1)
        goto out;
    yes = BIO_get_ktls_send(SSL_get_wbio(s)) != 0;
    if (yes)
        snprintf(why, whylen, "BIO_get_ktls_send is on for %s %s",
                 SSL_get_version(s), SSL_get_cipher_name(s));
    else
        probe_ulp(why, whylen);
out:
    SSL_free(s);
    SSL_free(c);
    SSL_CTX_free(cctx);
    for (int i = 0; i < 2; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
    }
    ERR_clear_error();
    return yes;
#endif
}
