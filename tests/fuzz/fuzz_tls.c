/* libFuzzer target: arbitrary bytes as the first flight of a client to the
 * TLS transport, over the in-memory transport, under a real connection. */
#include "common/compat.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include "common/common.h"
#include "node/http/http.h"
#include "node/http/internal.h"
#include "node/http/tls_ctx.h"

/* Input: byte 0 picks the size of the pieces the rest is fed in (1 to
 * 256 bytes, or all at once), then the peer closes. Whatever the bytes
 * (a hello, plain HTTP, garbage), the connection must end cleanly, having
 * written at most an alert or a 400. */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uv_loop_t g_loop;
static struct node_http_server *g_srv;
static struct node_http_tls *g_tls;
static struct at_buf g_out;

static void handler(void *data, struct node_http_req *r)
{
    AT_UNUSED(data);
    node_http_resp_send(r, "ok", 2);
}

/* A self-signed P-256 certificate and its key, in files under /tmp. */
static void make_pair(char *cert, char *key)
{
    char dir[] = "/tmp/atoll-fuzz-tls-XXXXXX";
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    FILE *f;

    AT_ASSERT(mkdtemp(dir) != NULL && k != NULL && x != NULL);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"fuzz", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    AT_ASSERT(X509_sign(x, k, EVP_sha256()) > 0);
    snprintf(cert, 64, "%s/cert.pem", dir);
    snprintf(key, 64, "%s/key.pem", dir);
    f = fopen(cert, "w");
    AT_ASSERT(f != NULL && PEM_write_X509(f, x) == 1);
    fclose(f);
    f = fopen(key, "w");
    AT_ASSERT(f != NULL &&
              PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(k);
}

static void setup(void)
{
    struct node_http_config cfg = { .header_timeout_ms = 1000 };
    char cert[64], key[64], errmsg[AT_ERRMSG_SIZE];

    at_log_configure("off");
    uv_loop_init(&g_loop);
    g_srv = node_http__server_new_mem(&g_loop, &cfg, handler, NULL);
    make_pair(cert, key);
    AT_ASSERT(
        node_http__tls_open(&g_tls, &g_loop, cert, key, 3600000, errmsg) == 0);
    /* The context is loaded: the files (and their dir) are not needed any
     * more. */
    unlink(cert);
    unlink(key);
    *strrchr(cert, '/') = '\0';
    rmdir(cert);
    at_buf_init(&g_out, 1 << 20);
}

static void settle(struct node_http_transport *lower)
{
    for (int i = 0; i < 16 && g_srv->nconns > 0; i++) {
        uv_run(&g_loop, UV_RUN_NOWAIT);
        if (g_srv->nconns > 0)
            node_http__mem_flush(lower);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct node_http_transport *lower, *t;
    size_t piece, off = 1;

    if (g_srv == NULL)
        setup();
    if (size == 0)
        return 0;
    piece = data[0] == 0 ? size : data[0];
    lower = node_http__mem_new(&g_loop, &g_out);
    AT_ASSERT(node_http__tls_wrap(g_tls, &g_loop, lower, &t) == 0);
    node_http__conn_new(g_srv, t);
    while (off < size && g_srv->nconns > 0) {
        size_t k = node_http__mem_feed(lower, (const char *)data + off,
                                       AT_MIN(piece, size - off));

        if (k == 0)
            break; /* not reading (a failed handshake): never read */
        off += k;
        settle(lower);
    }
    if (g_srv->nconns > 0) {
        node_http__mem_eof(lower);
        settle(lower);
    }
    AT_ASSERT(g_srv->nconns == 0);
    at_buf_reset(&g_out);
    return 0;
}
