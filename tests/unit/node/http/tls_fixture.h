/* Shared by the TLS unit tests: certificates made at test time with the
 * OpenSSL API (a CA and leaves it signs, P-256 keys, written as PEM into a
 * temporary directory: no key material is committed), and a TLS client
 * layer for the TCP fixture's blocking client (struct cli). */
#ifndef TESTS_NODE_HTTP_TLS_FIXTURE_H
#define TESTS_NODE_HTTP_TLS_FIXTURE_H

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include "tests/unit/node/http/tcp_fixture.h"

static char g_tmp[64]; /* the temporary directory */
static EVP_PKEY *g_ca_key;
static X509 *g_ca;
static char g_ca_path[128];

static FIX_UNUSED void add_ext(X509 *x, X509 *issuer, int nid, const char *v)
{
    X509V3_CTX ctx;
    X509_EXTENSION *e;

    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    e = X509V3_EXT_conf_nid(NULL, &ctx, nid, v);
    assert_non_null(e);
    X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
}

/* A certificate for key: the CA's own (issuer NULL), or a leaf for
 * localhost and 127.0.0.1 signed by the CA. */
static FIX_UNUSED X509 *make_cert(EVP_PKEY *key, long serial, bool leaf)
{
    X509 *x = X509_new();
    X509_NAME *n;

    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
    X509_set_pubkey(x, key);
    n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(
        n, "CN", MBSTRING_ASC,
        (const unsigned char *)(leaf ? "localhost" : "atoll test CA"), -1, -1,
        0);
    X509_set_issuer_name(x, leaf ? X509_get_subject_name(g_ca) : n);
    if (leaf) {
        add_ext(x, g_ca, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1");
        assert_true(X509_sign(x, g_ca_key, EVP_sha256()) > 0);
    } else {
        add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
        assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    }
    return x;
}

static FIX_UNUSED EVP_PKEY *make_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");

    assert_non_null(k);
    return k;
}

static FIX_UNUSED void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* dir/cert.pem (a leaf of serial, then the CA: a chain) and dir/key.pem
 * (the leaf's key, or another key with wrong_key; encrypted with
 * encrypted). Creates dir. */
static FIX_UNUSED void make_pair(const char *dir,
                                 long serial,
                                 bool wrong_key,
                                 bool encrypted)
{
    char path[256];
    EVP_PKEY *key = make_key();
    X509 *x = make_cert(key, serial, true);
    FILE *f;

    mkdir(dir, 0700);
    snprintf(path, sizeof(path), "%s/cert.pem", dir);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_true(PEM_write_X509(f, x) == 1);
    assert_true(PEM_write_X509(f, g_ca) == 1);
    fclose(f);
    if (wrong_key) {
        EVP_PKEY_free(key);
        key = make_key();
    }
    snprintf(path, sizeof(path), "%s/key.pem", dir);
    f = fopen(path, "wb");
    assert_non_null(f);
    if (encrypted)
        assert_true(PEM_write_PrivateKey(f, key, EVP_aes_128_cbc(),
                                         (unsigned char *)"pw", 2, NULL,
                                         NULL) == 1);
    else
        assert_true(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) ==
                    1);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
}

/* The CA in g_tmp/ca.pem; g_tmp is created. */
static FIX_UNUSED void make_ca(void)
{
    FILE *f;

    snprintf(g_tmp, sizeof(g_tmp), "/tmp/atoll-tls-XXXXXX");
    assert_non_null(mkdtemp(g_tmp));
    g_ca_key = make_key();
    g_ca = make_cert(g_ca_key, 1, false);
    snprintf(g_ca_path, sizeof(g_ca_path), "%s/ca.pem", g_tmp);
    f = fopen(g_ca_path, "wb");
    assert_non_null(f);
    assert_true(PEM_write_X509(f, g_ca) == 1);
    fclose(f);
}

static FIX_UNUSED void free_ca(void)
{
    char cmd[128];

    X509_free(g_ca);
    EVP_PKEY_free(g_ca_key);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", g_tmp);
}

/* ---- the client's TLS layer ---- */

static FIX_UNUSED ssize_t tls_cli_result(struct cli *c, int n)
{
    SSL *ssl = c->data;
    int e;

    if (n > 0)
        return n;
    e = SSL_get_error(ssl, n);
    ERR_clear_error();
    if (e == SSL_ERROR_ZERO_RETURN ||
        (e == SSL_ERROR_SYSCALL && n == 0 && errno == 0))
        return 0;
    if (e == SSL_ERROR_SYSCALL && errno != 0)
        return -1;
    errno = e == SSL_ERROR_SSL ? EPROTO : ECONNRESET;
    return -1;
}

static FIX_UNUSED ssize_t tls_cli_recv(struct cli *c, void *p, size_t n)
{
    errno = 0;
    ERR_clear_error();
    return tls_cli_result(c, SSL_read(c->data, p, (int)n));
}

static FIX_UNUSED ssize_t tls_cli_send(struct cli *c, const void *p, size_t n)
{
    errno = 0;
    ERR_clear_error();
    return tls_cli_result(c, SSL_write(c->data, p, (int)n));
}

/* Connect c to port and handshake, trusting the test CA, checking the
 * name localhost, offering h2 and http/1.1. Returns 0, or -1 when the
 * handshake failed (c is closed then). */
static FIX_UNUSED int tls_connect(struct cli *c, int port)
{
    static const unsigned char alpn[] = "\x02h2\x08http/1.1";
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl;

    assert_non_null(ctx);
    assert_int_equal(cli_connect(c, port), 0);
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, g_ca_path, NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    ssl = SSL_new(ctx);
    SSL_CTX_free(ctx); /* ssl keeps its reference */
    SSL_set1_host(ssl, "localhost");
    SSL_set_alpn_protos(ssl, alpn, sizeof(alpn) - 1);
    SSL_set_fd(ssl, c->fd);
    if (SSL_connect(ssl) != 1) {
        ERR_clear_error();
        SSL_free(ssl);
        cli_close(c);
        return -1;
    }
    c->data = ssl;
    c->recv_fn = tls_cli_recv;
    c->send_fn = tls_cli_send;
    return 0;
}

static FIX_UNUSED void tls_close(struct cli *c)
{
    SSL_free(c->data);
    c->data = NULL;
    cli_close(c);
}

/* The serial number of the server's certificate on c. */
static FIX_UNUSED long tls_serial(struct cli *c)
{
    X509 *x = SSL_get1_peer_certificate(c->data);
    long serial;

    assert_non_null(x);
    serial = ASN1_INTEGER_get(X509_get0_serialNumber(x));
    X509_free(x);
    return serial;
}

#endif /* TESTS_NODE_HTTP_TLS_FIXTURE_H */
