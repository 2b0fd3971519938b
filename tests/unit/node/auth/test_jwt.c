/* Unit tests of node/auth/jwt.c: base64url, keys, ES256 signing, and the
 * refusals of verification (algorithms, keys, signatures, claims,
 * sizes, malformed pieces). Tokens with chosen headers and claims are
 * signed here with the same key through OpenSSL directly. */
#include "common/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "node/auth/jwt.h"

#define NOW 1700000000

static EVP_PKEY *pkey;           /* the test key, as OpenSSL holds it */
static struct node_jwt_key *key; /* the same key, loaded by jwt.c */
static char *pem;
static char errmsg[AT_ERRMSG_SIZE];

static const struct node_jwt_key *find(void *data, const char *kid)
{
    AT_UNUSED(data);
    return strcmp(kid, node_jwt_key_kid(key)) == 0 ? key : NULL;
}

static struct node_jwt_check check(void)
{
    struct node_jwt_check c = { "atoll",           "reg", NOW,
                                NODE_JWT_LEEWAY_S, find,  NULL };
    return c;
}

static int setup(void **state)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *p;
    long n;

    AT_UNUSED(state);
    pkey = EVP_EC_gen("P-256");
    assert_non_null(pkey);
    assert_int_equal(
        PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL), 1);
    n = BIO_get_mem_data(bio, &p);
    pem = at_strndup(p, (size_t)n);
    BIO_free(bio);
    assert_int_equal(node_jwt_key_load(pem, strlen(pem), &key, errmsg), 0);
    return 0;
}

static int teardown(void **state)
{
    AT_UNUSED(state);
    node_jwt_key_free(key);
    EVP_PKEY_free(pkey);
    at_free(pem);
    return 0;
}

static void b64(struct at_buf *b, const char *s)
{
    assert_int_equal(node_jwt_b64url_encode(s, strlen(s), b), 0);
}

/* "<b64 header>.<b64 payload>" then "." and an ES256 signature by k. */
static char *es256(EVP_PKEY *k, const char *header, const char *payload)
{
    struct at_buf b;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t der[80], raw[64];
    size_t n = sizeof(der);
    const uint8_t *p = der;
    ECDSA_SIG *sig;
    const BIGNUM *r, *s;

    at_buf_init(&b, 0);
    b64(&b, header);
    at_buf_puts(&b, ".");
    b64(&b, payload);
    assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k), 1);
    assert_int_equal(
        EVP_DigestSign(md, der, &n, (const uint8_t *)b.data, b.len), 1);
    EVP_MD_CTX_free(md);
    sig = d2i_ECDSA_SIG(NULL, &p, (long)n);
    assert_non_null(sig);
    ECDSA_SIG_get0(sig, &r, &s);
    BN_bn2binpad(r, raw, 32);
    BN_bn2binpad(s, raw + 32, 32);
    ECDSA_SIG_free(sig);
    at_buf_puts(&b, ".");
    node_jwt_b64url_encode(raw, sizeof(raw), &b);
    return at_buf_take(&b, NULL);
}

static char *header_kid(const char *alg)
{
    struct at_buf b;

    at_buf_init(&b, 0);
    at_buf_printf(&b, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", alg,
                  node_jwt_key_kid(key));
    return at_buf_take(&b, NULL);
}

static char *payload_at(int64_t iat, int64_t nbf, int64_t exp, const char *aud)
{
    struct at_buf b;

    at_buf_init(&b, 0);
    at_buf_printf(&b,
                  "{\"iss\":\"atoll\",\"sub\":\"alice\",\"aud\":%s,"
                  "\"exp\":%" PRId64 ",\"nbf\":%" PRId64 ",\"iat\":%" PRId64
                  ",\"jti\":\"j1\",\"access\":[{\"type\":\"repository\","
                  "\"name\":\"foo/bar\",\"actions\":[\"pull\",\"push\"]}]}",
                  aud, exp, nbf, iat);
    return at_buf_take(&b, NULL);
}

static int verify(const char *tok, struct node_jwt_claims *c)
{
    struct node_jwt_check chk = check();
    return node_jwt_verify(tok, strlen(tok), &chk, c, errmsg);
}

/* A token with this header and these claims, signed with the test key. */
static int verify_crafted(const char *header, const char *payload)
{
    struct node_jwt_claims c;
    char *tok = es256(pkey, header, payload);
    int rv = verify(tok, &c);
    at_free(tok);
    return rv;
}

static int verify_claims(const char *payload)
{
    char *h = header_kid("ES256");
    int rv = verify_crafted(h, payload);
    at_free(h);
    return rv;
}

static void test_b64url(void **state)
{
    static const struct {
        const char *raw, *enc;
    } v[] = { { "", "" },        { "f", "Zg" },        { "fo", "Zm8" },
              { "foo", "Zm9v" }, { "foob", "Zm9vYg" }, { "\xfb\xff", "-_8" } };
    uint8_t out[16];
    struct at_buf b;
    AT_UNUSED(state);

    for (size_t i = 0; i < AT_ARRAY_SIZE(v); i++) {
        at_buf_init(&b, 0);
        b64(&b, v[i].raw);
        assert_string_equal(b.data != NULL ? b.data : "", v[i].enc);
        at_buf_release(&b);
        assert_int_equal(node_jwt_b64url_decode(v[i].enc, strlen(v[i].enc), out,
                                                sizeof(out)),
                         strlen(v[i].raw));
        assert_memory_equal(out, v[i].raw, strlen(v[i].raw));
    }
    /* padding, the standard alphabet, leftover bits, impossible lengths,
     * too small a buffer */
    static const char *bad[] = { "Zg==", "+/8", "Zh", "Zm9", "Z", "Zm9vY" };
    for (size_t i = 0; i < AT_ARRAY_SIZE(bad); i++)
        assert_int_equal(
            node_jwt_b64url_decode(bad[i], strlen(bad[i]), out, sizeof(out)),
            -1);
    assert_int_equal(node_jwt_b64url_decode("Zm9vYg", 6, out, 3), -1);
}

static void test_keys(void **state)
{
    struct node_jwt_key *k2 = NULL, *k3 = NULL;
    char *p = NULL;
    struct at_buf b;
    AT_UNUSED(state);

    /* the kid is a 43-char thumbprint, stable through PEM */
    assert_int_equal(strlen(node_jwt_key_kid(key)), 43);
    assert_int_equal(node_jwt_key_new(&k2, errmsg), 0);
    assert_string_not_equal(node_jwt_key_kid(k2), node_jwt_key_kid(key));
    assert_int_equal(node_jwt_key_pem(k2, &p, errmsg), 0);
    assert_non_null(strstr(p, "-----BEGIN PRIVATE KEY-----"));
    assert_int_equal(node_jwt_key_load(p, strlen(p), &k3, errmsg), 0);
    assert_string_equal(node_jwt_key_kid(k2), node_jwt_key_kid(k3));
    /* the JWK is public only */
    at_buf_init(&b, 0);
    node_jwt_key_jwk(k3, &b);
    assert_non_null(strstr(b.data, "\"kty\":\"EC\""));
    assert_non_null(strstr(b.data, node_jwt_key_kid(k3)));
    assert_null(strstr(b.data, "\"d\""));
    at_buf_release(&b);
    at_free(p);
    node_jwt_key_free(k2);
    node_jwt_key_free(k3);

    /* not P-256, not PEM, too big */
    EVP_PKEY *rsa = EVP_RSA_gen(2048);
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, rsa, NULL, NULL, 0, NULL, NULL);
    long n = BIO_get_mem_data(bio, &p);
    assert_int_equal(node_jwt_key_load(p, (size_t)n, &k2, errmsg), AT_EINVAL);
    BIO_free(bio);
    EVP_PKEY_free(rsa);
    EVP_PKEY *p384 = EVP_EC_gen("P-384");
    bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, p384, NULL, NULL, 0, NULL, NULL);
    n = BIO_get_mem_data(bio, &p);
    assert_int_equal(node_jwt_key_load(p, (size_t)n, &k2, errmsg), AT_EINVAL);
    BIO_free(bio);
    EVP_PKEY_free(p384);
    assert_int_equal(node_jwt_key_load("junk", 4, &k2, errmsg), AT_EINVAL);
    assert_int_equal(node_jwt_key_load(pem, NODE_JWT_PEM_MAX + 1, &k2, errmsg),
                     AT_EINVAL);
    assert_int_equal(node_jwt_key_load(pem, 0, &k2, errmsg), AT_EINVAL);
}

static void fill_claims(struct node_jwt_claims *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->sub, sizeof(c->sub), "alice");
    snprintf(c->jti, sizeof(c->jti), "abc");
    c->iat = c->nbf = NOW - 5;
    c->exp = NOW + 300;
    c->naccess = 2;
    snprintf(c->access[0].type, sizeof(c->access[0].type), "repository");
    snprintf(c->access[0].name, sizeof(c->access[0].name), "foo/bar");
    c->access[0].actions = NODE_JWT_PULL | NODE_JWT_PUSH;
    snprintf(c->access[1].type, sizeof(c->access[1].type), "registry");
    snprintf(c->access[1].name, sizeof(c->access[1].name), "catalog");
    c->access[1].actions = NODE_JWT_ANY;
}

static void test_good(void **state)
{
    struct node_jwt_claims in, out;
    struct at_buf b;
    AT_UNUSED(state);

    fill_claims(&in);
    at_buf_init(&b, 0);
    assert_int_equal(node_jwt_sign(key, "atoll", "reg", &in, &b, errmsg), 0);
    assert_int_equal(verify(b.data, &out), 0);
    assert_string_equal(out.kid, node_jwt_key_kid(key));
    assert_string_equal(out.sub, "alice");
    assert_string_equal(out.jti, "abc");
    assert_int_equal(out.exp, NOW + 300);
    assert_int_equal(out.naccess, 2);
    assert_string_equal(out.access[0].name, "foo/bar");
    assert_int_equal(out.access[0].actions, NODE_JWT_PULL | NODE_JWT_PUSH);
    assert_string_equal(out.access[1].type, "registry");
    assert_int_equal(out.access[1].actions, NODE_JWT_ANY);

    /* each signature is fresh (ECDSA), each verifies */
    struct at_buf b2;
    at_buf_init(&b2, 0);
    assert_int_equal(node_jwt_sign(key, "atoll", "reg", &in, &b2, errmsg), 0);
    assert_string_not_equal(b.data, b2.data);
    assert_int_equal(verify(b2.data, &out), 0);
    at_buf_release(&b2);

    /* a scopeless token (docker login) */
    in.naccess = 0;
    in.sub[0] = '\0';
    at_buf_reset(&b);
    assert_int_equal(node_jwt_sign(key, "atoll", "reg", &in, &b, errmsg), 0);
    assert_int_equal(verify(b.data, &out), 0);
    assert_int_equal(out.naccess, 0);
    assert_string_equal(out.sub, "");
    at_buf_release(&b);

    /* crafted: aud as an array, no typ, no access */
    struct at_buf hb;
    at_buf_init(&hb, 0);
    at_buf_printf(&hb, "{\"kid\":\"%s\",\"alg\":\"ES256\"}",
                  node_jwt_key_kid(key));
    assert_int_equal(
        verify_crafted(hb.data,
                       "{\"iss\":\"atoll\",\"sub\":\"\",\"aud\":"
                       "[\"x\",\"reg\"],\"exp\":1700000100,\"nbf\":"
                       "1700000000,\"iat\":1700000000}"),
        0);
    at_buf_release(&hb);
}

static void test_signature(void **state)
{
    struct node_jwt_claims in, out;
    struct at_buf b;
    AT_UNUSED(state);

    fill_claims(&in);
    at_buf_init(&b, 0);
    assert_int_equal(node_jwt_sign(key, "atoll", "reg", &in, &b, errmsg), 0);
    /* a flipped bit in the signature, in the claims */
    char *t = at_strdup(b.data);
    t[strlen(t) - 5] = t[strlen(t) - 5] == 'A' ? 'B' : 'A';
    assert_int_equal(verify(t, &out), AT_EINVAL);
    at_free(t);
    t = at_strdup(b.data);
    char *p = strchr(t, '.') + 3;
    *p = *p == 'A' ? 'B' : 'A';
    assert_int_equal(verify(t, &out), AT_EINVAL);
    at_free(t);
    /* signed by another key under our kid */
    EVP_PKEY *other = EVP_EC_gen("P-256");
    char *h = header_kid("ES256");
    char *pl = payload_at(NOW, NOW, NOW + 60, "\"reg\"");
    t = es256(other, h, pl);
    assert_int_equal(verify(t, &out), AT_EINVAL);
    assert_non_null(strstr(errmsg, "signature"));
    at_free(t);
    /* the same, signed by our key, verifies */
    assert_int_equal(verify_crafted(h, pl), 0);
    EVP_PKEY_free(other);
    /* a DER signature, or 65 bytes, instead of r||s */
    t = at_strdup(b.data);
    *strrchr(t, '.') = '\0';
    struct at_buf d;
    at_buf_init(&d, 0);
    at_buf_printf(&d, "%s.", t);
    uint8_t junk[72];
    memset(junk, 0x30, sizeof(junk));
    node_jwt_b64url_encode(junk, sizeof(junk), &d);
    assert_int_equal(verify(d.data, &out), AT_EINVAL);
    at_buf_reset(&d);
    at_buf_printf(&d, "%s.", t);
    node_jwt_b64url_encode(junk, 65, &d);
    assert_int_equal(verify(d.data, &out), AT_EINVAL);
    /* all-zero r and s */
    at_buf_reset(&d);
    at_buf_printf(&d, "%s.", t);
    memset(junk, 0, sizeof(junk));
    node_jwt_b64url_encode(junk, 64, &d);
    assert_int_equal(verify(d.data, &out), AT_EINVAL);
    at_buf_release(&d);
    at_free(t);
    at_free(h);
    at_free(pl);
    at_buf_release(&b);
}

static void test_algorithms(void **state)
{
    struct node_jwt_claims out;
    struct at_buf b;
    char *pl = payload_at(NOW, NOW, NOW + 60, "\"reg\"");
    AT_UNUSED(state);

    /* alg none, with and without a signature part */
    char *h = header_kid("none");
    at_buf_init(&b, 0);
    b64(&b, h);
    at_buf_puts(&b, ".");
    b64(&b, pl);
    at_buf_puts(&b, ".");
    assert_int_equal(verify(b.data, &out), AT_EINVAL);
    at_buf_puts(&b, "AAAA");
    assert_int_equal(verify(b.data, &out), AT_EINVAL);
    at_free(h);

    /* HS256 keyed with the public key (the classic confusion) */
    h = header_kid("HS256");
    at_buf_reset(&b);
    b64(&b, h);
    at_buf_puts(&b, ".");
    b64(&b, pl);
    uint8_t mac[32];
    unsigned maclen = 0;
    BIO *bio = BIO_new(BIO_s_mem());
    char *pub;
    PEM_write_bio_PUBKEY(bio, pkey);
    long n = BIO_get_mem_data(bio, &pub);
    HMAC(EVP_sha256(), pub, (int)n, (const uint8_t *)b.data, b.len, mac,
         &maclen);
    BIO_free(bio);
    at_buf_puts(&b, ".");
    node_jwt_b64url_encode(mac, maclen, &b);
    assert_int_equal(verify(b.data, &out), AT_EINVAL);
    assert_non_null(strstr(errmsg, "ES256"));
    at_free(h);

    /* RS256 by an RSA key under our kid */
    EVP_PKEY *rsa = EVP_RSA_gen(2048);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint8_t sig[256];
    size_t slen = sizeof(sig);
    h = header_kid("RS256");
    at_buf_reset(&b);
    b64(&b, h);
    at_buf_puts(&b, ".");
    b64(&b, pl);
    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, rsa);
    EVP_DigestSign(md, sig, &slen, (const uint8_t *)b.data, b.len);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(rsa);
    at_buf_puts(&b, ".");
    node_jwt_b64url_encode(sig, slen, &b);
    assert_int_equal(verify(b.data, &out), AT_EINVAL);
    at_free(h);

    /* ES256 spelled otherwise, ES384, alg missing or not a string, typ
     * other than JWT, crit, a kid of the wrong shape */
    static const char *const hdr[] = {
        "{\"alg\":\"es256\",\"kid\":\"KID\"}",
        "{\"alg\":\"ES384\",\"kid\":\"KID\"}",
        "{\"kid\":\"KID\"}",
        "{\"alg\":[\"ES256\"],\"kid\":\"KID\"}",
        "{\"alg\":\"ES256\",\"typ\":\"JOSE\",\"kid\":\"KID\"}",
        "{\"alg\":\"ES256\",\"typ\":1,\"kid\":\"KID\"}",
        "{\"alg\":\"ES256\",\"crit\":[\"exp\"],\"kid\":\"KID\"}",
        "{\"alg\":\"ES256\",\"alg\":\"ES256\",\"kid\":\"KID\"}",
        "{\"alg\":\"ES256\",\"kid\":\"KID/../x\"}",
        "{\"alg\":\"ES256\",\"kid\":1}",
        "{\"alg\":\"ES256\"}",
        "[\"ES256\",\"KID\"]",
    };
    for (size_t i = 0; i < AT_ARRAY_SIZE(hdr); i++) {
        const char *at = strstr(hdr[i], "KID");
        at_buf_reset(&b);
        if (at != NULL) {
            at_buf_append(&b, hdr[i], (size_t)(at - hdr[i]));
            at_buf_puts(&b, node_jwt_key_kid(key));
            at_buf_puts(&b, at + 3);
        } else {
            at_buf_puts(&b, hdr[i]);
        }
        assert_int_equal(verify_crafted(b.data, pl), AT_EINVAL);
    }
    at_buf_release(&b);
    at_free(pl);
}

static void test_times(void **state)
{
    AT_UNUSED(state);
    struct {
        int64_t iat, nbf, exp;
        int rv;
    } v[] = {
        { NOW, NOW, NOW + 60, 0 },
        { NOW - 100, NOW - 100, NOW - 10, 0 },         /* within leeway */
        { NOW - 100, NOW - 100, NOW - 31, AT_EINVAL }, /* expired */
        { NOW + 20, NOW + 20, NOW + 80, 0 },           /* skew */
        { NOW, NOW + 31, NOW + 80, AT_EINVAL },        /* not yet valid */
        { NOW + 31, NOW, NOW + 80, AT_EINVAL },        /* issued ahead */
        { NOW, NOW, NOW - 1000, AT_EINVAL },           /* ends first */
    };
    for (size_t i = 0; i < AT_ARRAY_SIZE(v); i++) {
        char *pl = payload_at(v[i].iat, v[i].nbf, v[i].exp, "\"reg\"");
        assert_int_equal(verify_claims(pl), v[i].rv);
        at_free(pl);
    }
}

static void test_claims(void **state)
{
    AT_UNUSED(state);
    char *pl = payload_at(NOW, NOW, NOW + 60, "\"other\"");
    assert_int_equal(verify_claims(pl), AT_EINVAL); /* wrong aud */
    at_free(pl);
    pl = payload_at(NOW, NOW, NOW + 60, "[\"a\",\"b\"]");
    assert_int_equal(verify_claims(pl), AT_EINVAL);
    at_free(pl);
    pl = payload_at(NOW, NOW, NOW + 60, "[\"a\",\"reg\"]");
    assert_int_equal(verify_claims(pl), 0);
    at_free(pl);
    pl = payload_at(NOW, NOW, NOW + 60, "[\"reg\",1]");
    assert_int_equal(verify_claims(pl), AT_EINVAL);
    at_free(pl);

#define BASE "\"sub\":\"a\",\"aud\":\"reg\",\"nbf\":1700000000,"
    static const char *const bad[] = {
        /* wrong iss, iss missing or not a string */
        "{\"iss\":\"evil\"," BASE "\"iat\":1700000000,\"exp\":1700000060}",
        "{" BASE "\"iat\":1700000000,\"exp\":1700000060}",
        "{\"iss\":[\"atoll\"]," BASE "\"iat\":1700000000,\"exp\":1700000060}",
        /* duplicate claims: the later could win elsewhere */
        "{\"iss\":\"atoll\",\"iss\":\"atoll\"," BASE
        "\"iat\":1700000000,\"exp\":1700000060}",
        "{\"iss\":\"atoll\"," BASE
        "\"iat\":1700000000,\"exp\":1700000060,\"exp\":1800000000}",
        /* times as strings, reals, negative, missing */
        "{\"iss\":\"atoll\"," BASE "\"iat\":1700000000,\"exp\":\"1700000060\"}",
        "{\"iss\":\"atoll\"," BASE "\"iat\":1700000000,\"exp\":1700000060.5}",
        "{\"iss\":\"atoll\"," BASE "\"iat\":-1,\"exp\":1700000060}",
        "{\"iss\":\"atoll\"," BASE "\"exp\":1700000060}",
        /* sub missing or a number; aud missing */
        "{\"iss\":\"atoll\",\"aud\":\"reg\",\"nbf\":1700000000,"
        "\"iat\":1700000000,\"exp\":1700000060}",
        "{\"iss\":\"atoll\",\"sub\":7,\"aud\":\"reg\",\"nbf\":1700000000,"
        "\"iat\":1700000000,\"exp\":1700000060}",
        "{\"iss\":\"atoll\",\"sub\":\"a\",\"nbf\":1700000000,"
        "\"iat\":1700000000,\"exp\":1700000060}",
        /* access: not a list, an entry not an object, actions not a list
         * of strings, a name with a space, an empty name, type missing */
        "{\"iss\":\"atoll\"," BASE
        "\"iat\":1700000000,\"exp\":1700000060,\"access\":{}}",
        "{\"iss\":\"atoll\"," BASE
        "\"iat\":1700000000,\"exp\":1700000060,\"access\":[1]}",
        "{\"iss\":\"atoll\"," BASE
        "\"iat\":1700000000,\"exp\":1700000060,\"access\":[{\"type\":"
        "\"repository\",\"name\":\"a\",\"actions\":\"pull\"}]}",
        "{\"iss\":\"atoll\"," BASE
        "\"iat\":1700000000,\"exp\":1700000060,\"access\":[{\"type\":"
        "\"repository\",\"name\":\"a\",\"actions\":[1]}]}",
        "{\"iss\":\"atoll\"," BASE
        "\"iat\":1700000000,\"exp\":1700000060,\"access\":[{\"type\":"
        "\"repository\",\"name\":\"a b\",\"actions\":[]}]}",
        "{\"iss\":\"atoll\"," BASE
        "\"iat\":1700000000,\"exp\":1700000060,\"access\":[{\"type\":"
        "\"repository\",\"name\":\"\",\"actions\":[]}]}",
        "{\"iss\":\"atoll\"," BASE
        "\"iat\":1700000000,\"exp\":1700000060,\"access\":[{"
        "\"name\":\"a\",\"actions\":[]}]}",
        /* not JSON, not an object, a NUL inside a string */
        "{\"iss\":\"atoll\"",
        "[]",
        "{\"iss\":\"atoll\\u0000x\"," BASE
        "\"iat\":1700000000,\"exp\":1700000060}",
    };
#undef BASE
    for (size_t i = 0; i < AT_ARRAY_SIZE(bad); i++)
        assert_int_equal(verify_claims(bad[i]), AT_EINVAL);
    /* unknown actions are ignored, unknown claims too */
    assert_int_equal(
        verify_claims("{\"iss\":\"atoll\",\"sub\":\"a\",\"aud\":\"reg\","
                      "\"nbf\":1700000000,\"iat\":1700000000,\"exp\":"
                      "1700000060,\"x\":{},\"access\":[{\"type\":"
                      "\"repository\",\"name\":\"a\",\"actions\":[\"fly\","
                      "\"pull\"]}]}"),
        0);
}

static void test_limits(void **state)
{
    struct node_jwt_claims in, out;
    struct at_buf b;
    AT_UNUSED(state);

    /* too many access entries: refused when signing and when read */
    fill_claims(&in);
    in.naccess = NODE_JWT_ACCESS_MAX + 1;
    at_buf_init(&b, 0);
    assert_int_equal(node_jwt_sign(key, "atoll", "reg", &in, &b, errmsg),
                     AT_EINVAL);
    at_buf_puts(&b,
                "{\"iss\":\"atoll\",\"sub\":\"a\",\"aud\":\"reg\",\"nbf\":"
                "1700000000,\"iat\":1700000000,\"exp\":1700000060,"
                "\"access\":[");
    for (int i = 0; i <= NODE_JWT_ACCESS_MAX; i++)
        at_buf_printf(&b,
                      "%s{\"type\":\"repository\",\"name\":\"r%d\","
                      "\"actions\":[\"pull\"]}",
                      i > 0 ? "," : "", i);
    at_buf_puts(&b, "]}");
    assert_int_equal(verify_claims(b.data), AT_EINVAL);
    /* a name over NODE_JWT_NAME_MAX */
    at_buf_reset(&b);
    at_buf_puts(&b,
                "{\"iss\":\"atoll\",\"sub\":\"a\",\"aud\":\"reg\",\"nbf\":"
                "1700000000,\"iat\":1700000000,\"exp\":1700000060,"
                "\"access\":[{\"type\":\"repository\",\"name\":\"");
    for (int i = 0; i <= NODE_JWT_NAME_MAX; i++)
        at_buf_puts(&b, "a");
    at_buf_puts(&b, "\",\"actions\":[]}]}");
    assert_int_equal(verify_claims(b.data), AT_EINVAL);

    /* a whole token over 8 KiB, and a huge one */
    at_buf_reset(&b);
    for (int i = 0; i < 9000; i++)
        at_buf_puts(&b, "A");
    b.data[100] = '.';
    b.data[200] = '.';
    assert_int_equal(verify(b.data, &out), AT_ETOOBIG);
    at_buf_release(&b);

    /* truncated at every length: refused, never a crash */
    fill_claims(&in);
    at_buf_init(&b, 0);
    assert_int_equal(node_jwt_sign(key, "atoll", "reg", &in, &b, errmsg), 0);
    struct node_jwt_check chk = check();
    for (size_t n = 0; n < b.len; n++)
        assert_int_not_equal(node_jwt_verify(b.data, n, &chk, &out, errmsg), 0);
    assert_int_equal(node_jwt_verify(b.data, b.len, &chk, &out, errmsg), 0);
    at_buf_release(&b);
}

static void test_malformed(void **state)
{
    struct node_jwt_claims out;
    char *pl = payload_at(NOW, NOW, NOW + 60, "\"reg\"");
    char *h = header_kid("ES256");
    char *good = es256(pkey, h, pl);
    struct at_buf b;
    AT_UNUSED(state);

    static const char *const shapes[] = {
        "", ".", "..", "...", "a.b", "a.b.c.d", ".b.c", "abc",
    };
    for (size_t i = 0; i < AT_ARRAY_SIZE(shapes); i++)
        assert_int_equal(verify(shapes[i], &out), AT_EINVAL);
    /* padding or the standard alphabet in any part */
    at_buf_init(&b, 0);
    at_buf_printf(&b, "%s=", good);
    assert_int_equal(verify(b.data, &out), AT_EINVAL);
    at_buf_reset(&b);
    at_buf_puts(&b, good);
    b.data[3] = '+';
    assert_int_equal(verify(b.data, &out), AT_EINVAL);
    at_buf_reset(&b);
    at_buf_puts(&b, good);
    *strchr(b.data, '.') = '\0';
    at_buf_printf(&b, "x.%s", strchr(good, '.') + 1);
    assert_int_equal(verify(b.data, &out), AT_EINVAL);
    /* the header not JSON: valid base64url of junk */
    at_buf_reset(&b);
    b64(&b, "{\"alg\":");
    at_buf_printf(&b, "%s", strchr(good, '.'));
    assert_int_equal(verify(b.data, &out), AT_EINVAL);
    /* the payload not JSON under a good signature */
    assert_int_equal(verify_crafted(h, "{\"iss\":"), AT_EINVAL);
    assert_int_equal(verify_crafted(h, ""), AT_EINVAL);
    /* an unknown kid */
    at_buf_reset(&b);
    at_buf_printf(&b, "{\"alg\":\"ES256\",\"kid\":\"nokey\"}");
    assert_int_equal(verify_crafted(b.data, pl), AT_ENOTFOUND);
    at_buf_release(&b);
    at_free(good);
    at_free(h);
    at_free(pl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url),     cmocka_unit_test(test_keys),
        cmocka_unit_test(test_good),       cmocka_unit_test(test_signature),
        cmocka_unit_test(test_algorithms), cmocka_unit_test(test_times),
        cmocka_unit_test(test_claims),     cmocka_unit_test(test_limits),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
