/* atoll cert: makes a cluster CA and node certificates with OpenSSL 3, so
 * that peer mTLS (and HTTPS on the API) needs no outside PKI.
 *
 * Keys are EC P-256 (small, fast handshakes, accepted at every OpenSSL
 * security level); certificates are X.509 v3 signed with SHA-256, serials
 * 128 random bits. A CA is CA:TRUE with keyCertSign and cRLSign; a node
 * certificate is CA:FALSE, digitalSignature, serverAuth and clientAuth
 * (one certificate serves both ends of a peer connection), with the names
 * and IPs the peers dial it by as subjectAltNames. Files are created with
 * O_EXCL unless --force: a key is never replaced by accident; keys are
 * mode 0600, certificates 0644. */
#include "common/compat.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "node/cert.h"

#define SAN_MAX 64

struct cert_args {
    const char *out;
    const char *ca;
    const char *name;
    const char *san[SAN_MAX];
    int nsan;
    uint64_t days;
    bool force;
};

static void ossl_err(const char *what)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

    fprintf(stderr, "atoll cert: %s: %s\n", what, r != NULL ? r : "failed");
    ERR_clear_error();
}

/* Open dir/file for writing with mode; O_EXCL unless force. */
static FILE *open_out(const char *dir,
                      const char *file,
                      mode_t mode,
                      bool force,
                      char *path,
                      size_t pathlen)
{
    int fd;
    FILE *f;

    snprintf(path, pathlen, "%s/%s", dir, file);
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (force ? O_TRUNC : O_EXCL),
              mode);
    if (fd < 0) {
        fprintf(stderr, "atoll cert: '%s': %s%s\n", path, strerror(errno),
                errno == EEXIST ? " (--force replaces it)" : "");
        return NULL;
    }
    /* An existing file keeps its mode through O_TRUNC: set ours. */
    if (fchmod(fd, mode) != 0 || (f = fdopen(fd, "w")) == NULL) {
        fprintf(stderr, "atoll cert: '%s': %s\n", path, strerror(errno));
        close(fd);
        return NULL;
    }
    return f;
}

/* mkdir -p */
static int make_dirs(const char *dir)
{
    char path[4096];
    size_t n = strlen(dir);

    if (n == 0 || n >= sizeof(path))
        return -1;
    memcpy(path, dir, n + 1);
    for (char *p = path + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(path, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static int write_files(const char *dir,
                       const char *base,
                       EVP_PKEY *key,
                       X509 *x,
                       bool force)
{
    char file[300], kpath[4200], cpath[4200];
    FILE *kf, *cf;
    int ok;

    if (make_dirs(dir) != 0) {
        fprintf(stderr, "atoll cert: '%s': %s\n", dir, strerror(errno));
        return 1;
    }
    snprintf(file, sizeof(file), "%s.key", base);
    kf = open_out(dir, file, 0600, force, kpath, sizeof(kpath));
    if (kf == NULL)
        return 1;
    snprintf(file, sizeof(file), "%s.crt", base);
    cf = open_out(dir, file, 0644, force, cpath, sizeof(cpath));
    if (cf == NULL) {
        fclose(kf);
        unlink(kpath);
        return 1;
    }
    ok = PEM_write_PrivateKey(kf, key, NULL, NULL, 0, NULL, NULL) == 1;
    ok = PEM_write_X509(cf, x) == 1 && ok;
    ok = fclose(kf) == 0 && ok;
    ok = fclose(cf) == 0 && ok;
    if (!ok) {
        ossl_err("write");
        unlink(kpath);
        unlink(cpath);
        return 1;
    }
    printf("wrote %s and %s\n", kpath, cpath);
    return 0;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *e;
    int ok;

    X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
    e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (e == NULL)
        return -1;
    ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok == 1 ? 0 : -1;
}

/* A certificate for key named cn, valid days from now (backdated an hour
 * for clocks behind ours); issuer NULL: self-signed. */
static X509 *cert_new(EVP_PKEY *key,
                      const char *cn,
                      uint64_t days,
                      X509 *issuer)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    BIGNUM *bn = BN_new();
    bool ok = x != NULL && name != NULL && bn != NULL;

    ok = ok && X509_set_version(x, X509_VERSION_3) == 1;
    ok = ok && BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
         BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    ok = ok && X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL &&
         X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL) != NULL;
    ok = ok &&
         X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                    (const unsigned char *)cn, -1, -1, 0) == 1;
    ok = ok && X509_set_subject_name(x, name) == 1 &&
         X509_set_issuer_name(
             x, issuer != NULL ? X509_get_subject_name(issuer) : name) == 1;
    ok = ok && X509_set_pubkey(x, key) == 1;
    BN_free(bn);
    X509_NAME_free(name);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

static int cmd_ca(const struct cert_args *a)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x =
        key != NULL ? cert_new(key, "atoll cluster CA", a->days, NULL) : NULL;
    int rv = 1;

    if (x == NULL || add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE") ||
        add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") ||
        add_ext(x, x, NID_subject_key_identifier, "hash") ||
        add_ext(x, x, NID_authority_key_identifier, "keyid:always") ||
        X509_sign(x, key, EVP_sha256()) <= 0) {
        ossl_err("make the CA");
        goto out;
    }
    rv = write_files(a->out, "ca", key, x, a->force);
out:
    X509_free(x);
    EVP_PKEY_free(key);
    return rv;
}

/* "DNS:a,IP:1.2.3.4" from the SANs (or the name); false on a bad one. */
static bool san_list(const struct cert_args *a, struct at_buf *b)
{
    const char *one[1] = { a->name };
    const char *const *san = a->nsan > 0 ? a->san : one;
    int n = a->nsan > 0 ? a->nsan : 1;

    for (int i = 0; i < n; i++) {
        unsigned char ip[16];
        bool is_ip = inet_pton(AF_INET, san[i], ip) == 1 ||
                     inet_pton(AF_INET6, san[i], ip) == 1;
        size_t len = strlen(san[i]);

        for (size_t k = 0; !is_ip && k < len; k++) {
            char c = san[i][k];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                  (c == '*' && k == 0)))
                len = 0;
        }
        if (len == 0 || len > 253) {
            fprintf(stderr,
                    "atoll cert: '%s' is neither a DNS name nor an IP "
                    "address\n",
                    san[i]);
            return false;
        }
        if (at_buf_printf(b, "%s%s:%s", i > 0 ? "," : "", is_ip ? "IP" : "DNS",
                          san[i]) != 0)
            return false;
    }
    return true;
}

static EVP_PKEY *read_key(const char *path)
{
    FILE *f = fopen(path, "re");
    EVP_PKEY *k = f != NULL ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;

    if (f == NULL)
        fprintf(stderr, "atoll cert: '%s': %s\n", path, strerror(errno));
    else if (k == NULL)
        ossl_err(path);
    if (f != NULL)
        fclose(f);
    return k;
}

static X509 *read_cert(const char *path)
{
    FILE *f = fopen(path, "re");
    X509 *x = f != NULL ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;

    if (f == NULL)
        fprintf(stderr, "atoll cert: '%s': %s\n", path, strerror(errno));
    else if (x == NULL)
        ossl_err(path);
    if (f != NULL)
        fclose(f);
    return x;
}

static int cmd_node(const struct cert_args *a)
{
    char path[4200];
    EVP_PKEY *cakey = NULL, *key = NULL;
    X509 *ca = NULL, *x = NULL;
    struct at_buf san;
    int rv = 1;

    at_buf_init(&san, 64 * 1024);
    if (!san_list(a, &san))
        goto out;
    snprintf(path, sizeof(path), "%s/ca.key", a->ca);
    cakey = read_key(path);
    snprintf(path, sizeof(path), "%s/ca.crt", a->ca);
    ca = cakey != NULL ? read_cert(path) : NULL;
    if (ca == NULL)
        goto out;
    if (X509_check_private_key(ca, cakey) != 1) {
        fprintf(stderr, "atoll cert: '%s/ca.key' is not the key of '%s'\n",
                a->ca, path);
        goto out;
    }
    key = EVP_EC_gen("P-256");
    x = key != NULL ? cert_new(key, a->name, a->days, ca) : NULL;
    if (x == NULL ||
        add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE") ||
        add_ext(x, ca, NID_key_usage, "critical,digitalSignature") ||
        add_ext(x, ca, NID_ext_key_usage, "serverAuth,clientAuth") ||
        add_ext(x, ca, NID_subject_key_identifier, "hash") ||
        add_ext(x, ca, NID_authority_key_identifier, "keyid:always") ||
        add_ext(x, ca, NID_subject_alt_name, (const char *)san.data) ||
        X509_sign(x, cakey, EVP_sha256()) <= 0) {
        ossl_err("make the node certificate");
        goto out;
    }
    rv = write_files(a->out, a->name, key, x, a->force);
out:
    X509_free(x);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(cakey);
    at_buf_release(&san);
    return rv;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: atoll cert ca --out DIR [--days N] [--force]\n"
            "       atoll cert node --ca DIR --name NAME [--san DNS-or-IP]... "
            "--out DIR\n"
            "                       [--days N] [--force]\n");
    return 2;
}

/* see cert.h */
int node_cert_cli(int argc, char **argv)
{
    struct cert_args a;
    bool ca;

    memset(&a, 0, sizeof(a));
    if (argc < 1 || (strcmp(argv[0], "ca") != 0 && strcmp(argv[0], "node")))
        return usage();
    ca = strcmp(argv[0], "ca") == 0;
    a.days = ca ? 3650 : 365;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(argv[i], "--force") == 0) {
            a.force = true;
            continue;
        }
        if (v == NULL)
            return usage();
        if (strcmp(argv[i], "--out") == 0)
            a.out = v;
        else if (strcmp(argv[i], "--ca") == 0 && !ca)
            a.ca = v;
        else if (strcmp(argv[i], "--name") == 0 && !ca)
            a.name = v;
        else if (strcmp(argv[i], "--san") == 0 && !ca && a.nsan < SAN_MAX)
            a.san[a.nsan++] = v;
        else if (strcmp(argv[i], "--days") != 0 ||
                 at_parse_u64(v, strlen(v), &a.days) != 0 || a.days == 0 ||
                 a.days > 36500)
            return usage();
        i++;
    }
    if (a.out == NULL || (!ca && (a.ca == NULL || a.name == NULL)))
        return usage();
    if (!ca && (a.name[0] == '\0' || strchr(a.name, '/') != NULL ||
                a.name[0] == '.')) {
        fprintf(stderr, "atoll cert: bad --name '%s'\n", a.name);
        return 2;
    }
    return ca ? cmd_ca(&a) : cmd_node(&a);
}
