/* ES256 JSON Web Tokens (see jwt.h): base64url, keys, signing and the
 * strict verification of the registry token spec's claims. */
#include "common/compat.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "common/base64.h"
#include "node/auth/jwt.h"
#include "raft/meta.h"

#define COORD_LEN      32  /* a P-256 coordinate, and each of r and s */
#define SIG_LEN        64  /* r || s */
#define HEADER_MAX     512 /* a decoded JOSE header */
#define AUD_LIST_MAX   16  /* entries of an aud array */
#define ACTIONS_MAX    8   /* strings of one access entry's actions */
#define THUMBPRINT_LEN 43  /* base64url of 32 bytes */

struct node_jwt_key {
    EVP_PKEY *pkey; /* owned: private and public */
    char kid[THUMBPRINT_LEN + 1];
    char x[THUMBPRINT_LEN + 1]; /* base64url of the public coordinates */
    char y[THUMBPRINT_LEN + 1];
};

/* OpenSSL's reason for the last error on this thread, and clear them. */
static const char *ossl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

    ERR_clear_error();
    return r != NULL ? r : "no detail";
}

/* ---- base64url ---- */

/* see jwt.h */
int node_jwt_b64url_encode(const void *p, size_t n, struct at_buf *b)
{
    return at_base64_encode(p, n, AT_BASE64_URL, b);
}

/* see jwt.h */
long node_jwt_b64url_decode(const char *s, size_t n, uint8_t *out, size_t size)
{
    return at_base64_decode(s, n, AT_BASE64_URL, out, size);
}

/* Encode n bytes into a fixed string out (room for 4n/3 + 1 chars). */
static void b64url_fixed(const uint8_t *p, size_t n, char *out, size_t size)
{
    struct at_buf b;

    at_buf_init(&b, 0);
    node_jwt_b64url_encode(p, n, &b);
    AT_ASSERT(b.len < size);
    memcpy(out, b.data, b.len + 1);
    at_buf_release(&b);
}

/* ---- keys ---- */

/* Fill the public coordinates and the thumbprint of k->pkey. */
static int key_describe(struct node_jwt_key *k, char *errmsg)
{
    BIGNUM *bx = NULL, *by = NULL;
    uint8_t x[COORD_LEN], y[COORD_LEN], md[32];
    char group[32] = "";
    char json[160];
    unsigned mdlen = 0;
    int rv = AT_EINVAL;

    if (!EVP_PKEY_is_a(k->pkey, "EC") ||
        !EVP_PKEY_get_utf8_string_param(k->pkey, OSSL_PKEY_PARAM_GROUP_NAME,
                                        group, sizeof(group), NULL) ||
        strcmp(group, "prime256v1") != 0) {
        at_errmsg_printf(errmsg, "key: not an EC P-256 key");
        goto out;
    }
    if (!EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_EC_PUB_X, &bx) ||
        !EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &by) ||
        BN_bn2binpad(bx, x, COORD_LEN) != COORD_LEN ||
        BN_bn2binpad(by, y, COORD_LEN) != COORD_LEN) {
        at_errmsg_printf(errmsg, "key: no public point: %s", ossl_reason());
        goto out;
    }
    b64url_fixed(x, COORD_LEN, k->x, sizeof(k->x));
    b64url_fixed(y, COORD_LEN, k->y, sizeof(k->y));
    /* RFC 7638: the required members in lexicographic order, no spaces */
    snprintf(json, sizeof(json),
             "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
             k->x, k->y);
    if (!EVP_Digest(json, strlen(json), md, &mdlen, EVP_sha256(), NULL) ||
        mdlen != sizeof(md)) {
        at_errmsg_printf(errmsg, "key: cannot hash: %s", ossl_reason());
        goto out;
    }
    b64url_fixed(md, sizeof(md), k->kid, sizeof(k->kid));
    rv = 0;
out:
    BN_free(bx);
    BN_free(by);
    return rv;
}

/* see jwt.h */
int node_jwt_key_new(struct node_jwt_key **out, char *errmsg)
{
    struct node_jwt_key *k = at_calloc(1, sizeof(*k));
    int rv;

    k->pkey = EVP_EC_gen("P-256");
    if (k->pkey == NULL) {
        at_errmsg_printf(errmsg, "key: cannot generate: %s", ossl_reason());
        at_free(k);
        return AT_EINVAL;
    }
    rv = key_describe(k, errmsg);
    if (rv != 0) {
        node_jwt_key_free(k);
        return rv;
    }
    *out = k;
    return 0;
}

/* Never ask for a passphrase: keys are stored unencrypted. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    AT_UNUSED(buf);
    AT_UNUSED(size);
    AT_UNUSED(rwflag);
    AT_UNUSED(u);
    return -1;
}

/* see jwt.h */
int node_jwt_key_load(const char *pem,
                      size_t len,
                      struct node_jwt_key **out,
                      char *errmsg)
{
    struct node_jwt_key *k;
    BIO *bio;
    int rv;

    if (len == 0 || len > NODE_JWT_PEM_MAX) {
        at_errmsg_printf(errmsg, "key: PEM of %zu bytes (1 to %d)", len,
                         NODE_JWT_PEM_MAX);
        return AT_EINVAL;
    }
    bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL) {
        at_errmsg_printf(errmsg, "key: %s", ossl_reason());
        return AT_ENOMEM;
    }
    k = at_calloc(1, sizeof(*k));
    k->pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
    BIO_free(bio);
    if (k->pkey == NULL) {
        at_errmsg_printf(errmsg, "key: unreadable PEM: %s", ossl_reason());
        at_free(k);
        return AT_EINVAL;
    }
    rv = key_describe(k, errmsg);
    if (rv != 0) {
        node_jwt_key_free(k);
        return rv;
    }
    *out = k;
    return 0;
}

/* see jwt.h */
int node_jwt_key_pem(const struct node_jwt_key *k, char **out, char *errmsg)
{
    BIO *bio = BIO_new(BIO_s_secmem());
    char *p = NULL;
    long n;

    if (bio == NULL ||
        !PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL, NULL)) {
        at_errmsg_printf(errmsg, "key: cannot write PEM: %s", ossl_reason());
        BIO_free(bio);
        return AT_ENOMEM;
    }
    n = BIO_get_mem_data(bio, &p);
    AT_ASSERT(n > 0 && n < NODE_JWT_PEM_MAX);
    *out = at_malloc((size_t)n + 1);
    memcpy(*out, p, (size_t)n);
    (*out)[n] = '\0';
    BIO_free(bio); /* a secure-heap BIO: cleared on free */
    return 0;
}

/* see jwt.h */
const char *node_jwt_key_kid(const struct node_jwt_key *k)
{
    return k->kid;
}

/* see jwt.h */
void node_jwt_key_jwk(const struct node_jwt_key *k, struct at_buf *b)
{
    at_buf_printf(b,
                  "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\",\"use\":"
                  "\"sig\",\"alg\":\"ES256\",\"x\":\"%s\",\"y\":\"%s\"}",
                  k->kid, k->x, k->y);
}

/* see jwt.h */
void node_jwt_key_free(struct node_jwt_key *k)
{
    if (k == NULL)
        return;
    EVP_PKEY_free(k->pkey);
    at_free(k);
}

/* ---- signing ---- */

static const char *const action_names[] = { "pull", "push", "delete", "*" };
static const unsigned action_bits[] = { NODE_JWT_PULL, NODE_JWT_PUSH,
                                        NODE_JWT_DELETE, NODE_JWT_ANY };

static json_t *access_json(const struct node_jwt_claims *c)
{
    json_t *list = json_array();

    for (size_t i = 0; i < c->naccess; i++) {
        const struct node_jwt_access *a = &c->access[i];
        json_t *acts = json_array();
        for (size_t k = 0; k < AT_ARRAY_SIZE(action_names); k++) {
            if (a->actions & action_bits[k])
                json_array_append_new(acts, json_string(action_names[k]));
        }
        json_array_append_new(
            list, json_pack("{s:s, s:s, s:o}", "type", a->type, "name", a->name,
                            "actions", acts));
    }
    return list;
}

/* The payload of c as compact JSON (owned: free()), or NULL. */
static char *claims_dump(const char *iss,
                         const char *aud,
                         const struct node_jwt_claims *c)
{
    json_t *doc = json_pack(
        "{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:o}", "iss", iss, "sub", c->sub,
        "aud", aud, "exp", (json_int_t)c->exp, "nbf", (json_int_t)c->nbf, "iat",
        (json_int_t)c->iat, "jti", c->jti, "access", access_json(c));
    char *s = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;

    json_decref(doc);
    return s;
}

/* A DER ECDSA signature as the 64 bytes r || s of JWS. */
static bool der_to_raw(const uint8_t *der, size_t n, uint8_t raw[SIG_LEN])
{
    const uint8_t *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)n);
    const BIGNUM *r, *s;
    bool ok;

    if (sig == NULL)
        return false;
    ECDSA_SIG_get0(sig, &r, &s);
    ok = BN_bn2binpad(r, raw, COORD_LEN) == COORD_LEN &&
         BN_bn2binpad(s, raw + COORD_LEN, COORD_LEN) == COORD_LEN;
    ECDSA_SIG_free(sig);
    return ok;
}

static bool claims_fit(const char *iss,
                       const char *aud,
                       const struct node_jwt_claims *c)
{
    if (strlen(iss) > NODE_JWT_STR_MAX || strlen(aud) > NODE_JWT_STR_MAX ||
        c->naccess > NODE_JWT_ACCESS_MAX ||
        strnlen(c->sub, sizeof(c->sub)) > NODE_JWT_SUB_MAX ||
        strnlen(c->jti, sizeof(c->jti)) > NODE_JWT_JTI_MAX)
        return false;
    for (size_t i = 0; i < c->naccess; i++) {
        if (strnlen(c->access[i].name, sizeof(c->access[i].name)) >
                NODE_JWT_NAME_MAX ||
            strnlen(c->access[i].type, sizeof(c->access[i].type)) >
                NODE_JWT_TYPE_MAX)
            return false;
    }
    return true;
}

/* see jwt.h */
int node_jwt_sign(const struct node_jwt_key *k,
                  const char *iss,
                  const char *aud,
                  const struct node_jwt_claims *c,
                  struct at_buf *b,
                  char *errmsg)
{
    struct at_buf in;
    char header[128];
    uint8_t der[80], raw[SIG_LEN];
    size_t derlen = sizeof(der);
    EVP_MD_CTX *md = NULL;
    char *payload = NULL;
    int rv = AT_EINVAL;

    at_buf_init(&in, NODE_JWT_MAX);
    if (!claims_fit(iss, aud, c)) {
        at_errmsg_printf(errmsg, "token: a claim is over its bound");
        goto out;
    }
    snprintf(header, sizeof(header),
             "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", k->kid);
    payload = claims_dump(iss, aud, c);
    if (payload == NULL) {
        at_errmsg_printf(errmsg, "token: cannot encode the claims");
        goto out;
    }
    if (node_jwt_b64url_encode(header, strlen(header), &in) != 0 ||
        at_buf_puts(&in, ".") != 0 ||
        node_jwt_b64url_encode(payload, strlen(payload), &in) != 0) {
        at_errmsg_printf(errmsg, "token: over %d bytes", NODE_JWT_MAX);
        rv = AT_ETOOBIG;
        goto out;
    }
    md = EVP_MD_CTX_new();
    if (md == NULL ||
        EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k->pkey) != 1 ||
        EVP_DigestSign(md, der, &derlen, (const uint8_t *)in.data, in.len) !=
            1 ||
        !der_to_raw(der, derlen, raw)) {
        at_errmsg_printf(errmsg, "token: cannot sign: %s", ossl_reason());
        goto out;
    }
    if (at_buf_puts(&in, ".") != 0 ||
        node_jwt_b64url_encode(raw, sizeof(raw), &in) != 0) {
        at_errmsg_printf(errmsg, "token: over %d bytes", NODE_JWT_MAX);
        rv = AT_ETOOBIG;
        goto out;
    }
    rv = at_buf_append(b, in.data, in.len);
out:
    EVP_MD_CTX_free(md);
    free(payload);
    at_buf_release(&in);
    return rv;
}

/* ---- verification ---- */

/* r || s as the DER ECDSA signature OpenSSL verifies. Returns the DER
 * length, or 0. */
static size_t raw_to_der(const uint8_t raw[SIG_LEN], uint8_t *der, size_t size)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, COORD_LEN, NULL);
    BIGNUM *s = BN_bin2bn(raw + COORD_LEN, COORD_LEN, NULL);
    uint8_t *p = der;
    int n = 0;

    if (sig == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(sig, r, s)) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(sig);
        return 0;
    }
    if (i2d_ECDSA_SIG(sig, NULL) <= (int)size)
        n = i2d_ECDSA_SIG(sig, &p);
    ECDSA_SIG_free(sig); /* frees r and s */
    return n > 0 ? (size_t)n : 0;
}

static bool sig_ok(const struct node_jwt_key *k,
                   const char *signed_part,
                   size_t n,
                   const uint8_t raw[SIG_LEN])
{
    uint8_t der[80];
    size_t derlen = raw_to_der(raw, der, sizeof(der));
    EVP_MD_CTX *md;
    bool ok;

    if (derlen == 0) {
        ERR_clear_error();
        return false;
    }
    md = EVP_MD_CTX_new();
    ok =
        md != NULL &&
        EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
        EVP_DigestVerify(md, der, derlen, (const uint8_t *)signed_part, n) == 1;
    EVP_MD_CTX_free(md);
    ERR_clear_error();
    return ok;
}

/* A string member of at most max bytes, no NUL, copied into out; absent
 * is allowed when optional. */
static bool take_str(json_t *obj,
                     const char *key,
                     bool optional,
                     char *out,
                     size_t max)
{
    json_t *v = json_object_get(obj, key);
    size_t n;

    if (v == NULL) {
        out[0] = '\0';
        return optional;
    }
    n = json_string_length(v);
    if (!json_is_string(v) || n > max || strlen(json_string_value(v)) != n)
        return false;
    memcpy(out, json_string_value(v), n + 1);
    return true;
}

/* A key id as the replicated key set keeps them: [A-Za-z0-9_-]{1,64}. */
static bool kid_ok(const char *kid)
{
    return meta_token_kid_ok(kid);
}

/* The JOSE header: alg ES256 exactly, typ JWT if present, no crit, a
 * well-formed kid into out->kid. */
static int header_check(const uint8_t *p,
                        size_t n,
                        struct node_jwt_claims *out,
                        char *errmsg)
{
    json_t *h = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, NULL);
    char s[NODE_JWT_KID_MAX + 1];
    int rv = AT_EINVAL;

    if (!json_is_object(h)) {
        at_errmsg_printf(errmsg, "token: header is no JSON object");
        goto out;
    }
    if (!take_str(h, "alg", false, s, sizeof(s) - 1) ||
        strcmp(s, "ES256") != 0) {
        at_errmsg_printf(errmsg, "token: algorithm is not ES256");
        goto out;
    }
    if (!take_str(h, "typ", true, s, sizeof(s) - 1) ||
        (s[0] != '\0' && strcmp(s, "JWT") != 0)) {
        at_errmsg_printf(errmsg, "token: typ is not JWT");
        goto out;
    }
    if (json_object_get(h, "crit") != NULL) {
        at_errmsg_printf(errmsg, "token: critical header extensions");
        goto out;
    }
    if (!take_str(h, "kid", false, out->kid, NODE_JWT_KID_MAX) ||
        !kid_ok(out->kid)) {
        at_errmsg_printf(errmsg, "token: missing or malformed kid");
        goto out;
    }
    rv = 0;
out:
    json_decref(h);
    return rv;
}

/* A NumericDate we issue: a non-negative integer (no fraction). */
static bool take_time(json_t *obj, const char *key, int64_t *out)
{
    json_t *v = json_object_get(obj, key);

    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (int64_t)json_integer_value(v);
    return true;
}

static bool aud_has(json_t *aud, const char *want)
{
    json_t *v;
    size_t i;

    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0 &&
               json_string_length(aud) == strlen(want);
    if (!json_is_array(aud) || json_array_size(aud) > AUD_LIST_MAX)
        return false;
    json_array_foreach(aud, i, v)
    {
        if (!json_is_string(v))
            return false;
    }
    json_array_foreach(aud, i, v)
    {
        if (strcmp(json_string_value(v), want) == 0 &&
            json_string_length(v) == strlen(want))
            return true;
    }
    return false;
}

/* Printable ASCII without spaces: what names and types we issue hold. */
static bool printable(const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s <= ' ' || *s > '~')
            return false;
    }
    return true;
}

static bool take_access_one(json_t *e, struct node_jwt_access *a)
{
    json_t *acts = json_object_get(e, "actions");
    json_t *v;
    size_t i;

    if (!json_is_object(e) ||
        !take_str(e, "type", false, a->type, NODE_JWT_TYPE_MAX) ||
        !take_str(e, "name", false, a->name, NODE_JWT_NAME_MAX) ||
        a->type[0] == '\0' || a->name[0] == '\0' || !printable(a->type) ||
        !printable(a->name))
        return false;
    if (!json_is_array(acts) || json_array_size(acts) > ACTIONS_MAX)
        return false;
    a->actions = 0;
    json_array_foreach(acts, i, v)
    {
        if (!json_is_string(v))
            return false;
        for (size_t k = 0; k < AT_ARRAY_SIZE(action_names); k++) {
            if (strcmp(json_string_value(v), action_names[k]) == 0)
                a->actions |= action_bits[k];
        }
    }
    return true;
}

static bool take_access(json_t *doc, struct node_jwt_claims *out)
{
    json_t *list = json_object_get(doc, "access");
    json_t *e;
    size_t i;

    out->naccess = 0;
    if (list == NULL)
        return true;
    if (!json_is_array(list) || json_array_size(list) > NODE_JWT_ACCESS_MAX)
        return false;
    json_array_foreach(list, i, e)
    {
        if (!take_access_one(e, &out->access[out->naccess++]))
            return false;
    }
    return true;
}

/* Is the token within its time window at now, give or take leeway? */
static const char *times_check(const struct node_jwt_claims *c,
                               const struct node_jwt_check *chk)
{
    int64_t now = chk->now_s, leeway = chk->leeway_s;

    if (c->exp < c->nbf || c->exp < c->iat)
        return "token: ends before it begins";
    if (now - leeway >= c->exp)
        return "token: expired";
    if (c->nbf > now + leeway)
        return "token: not yet valid";
    if (c->iat > now + leeway)
        return "token: issued in the future";
    return NULL;
}

/* see jwt.h */
int node_jwt_claims_parse(const char *json,
                          size_t len,
                          const struct node_jwt_check *chk,
                          struct node_jwt_claims *out,
                          char *errmsg)
{
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
    char iss[NODE_JWT_STR_MAX + 1];
    const char *why = NULL;

    if (!json_is_object(doc))
        why = "token: claims are no JSON object";
    else if (!take_str(doc, "iss", false, iss, NODE_JWT_STR_MAX) ||
             strcmp(iss, chk->issuer) != 0)
        why = "token: wrong issuer";
    else if (!aud_has(json_object_get(doc, "aud"), chk->audience))
        why = "token: not for this service";
    else if (!take_time(doc, "exp", &out->exp) ||
             !take_time(doc, "nbf", &out->nbf) ||
             !take_time(doc, "iat", &out->iat))
        why = "token: exp, nbf and iat must be integers";
    else if ((why = times_check(out, chk)) != NULL)
        ;
    else if (!take_str(doc, "sub", false, out->sub, NODE_JWT_SUB_MAX) ||
             !take_str(doc, "jti", true, out->jti, NODE_JWT_JTI_MAX))
        why = "token: malformed sub or jti";
    else if (!take_access(doc, out))
        why = "token: malformed access";
    json_decref(doc);
    if (why != NULL) {
        at_errmsg_printf(errmsg, "%s", why);
        return AT_EINVAL;
    }
    return 0;
}

/* see jwt.h */
int node_jwt_verify(const char *token,
                    size_t len,
                    const struct node_jwt_check *chk,
                    struct node_jwt_claims *out,
                    char *errmsg)
{
    const char *dot1, *dot2;
    const struct node_jwt_key *k;
    uint8_t header[HEADER_MAX], sig[SIG_LEN + 1], *payload;
    long n;
    int rv;

    if (len > NODE_JWT_MAX) {
        at_errmsg_printf(errmsg, "token: over %d bytes", NODE_JWT_MAX);
        return AT_ETOOBIG;
    }
    dot1 = memchr(token, '.', len);
    dot2 = dot1 != NULL
               ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token))
               : NULL;
    if (dot1 == NULL || dot2 == NULL || dot1 == token ||
        memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL) {
        at_errmsg_printf(errmsg, "token: not three dot-separated parts");
        return AT_EINVAL;
    }
    n = node_jwt_b64url_decode(token, (size_t)(dot1 - token), header,
                               sizeof(header));
    if (n < 0) {
        at_errmsg_printf(errmsg, "token: header is no base64url (or big)");
        return AT_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    rv = header_check(header, (size_t)n, out, errmsg);
    if (rv != 0)
        return rv;
    k = chk->find(chk->data, out->kid);
    if (k == NULL) {
        at_errmsg_printf(errmsg, "token: unknown key id");
        return AT_ENOTFOUND;
    }
    n = node_jwt_b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - token), sig,
                               sizeof(sig));
    if (n != SIG_LEN ||
        !sig_ok(k, token, (size_t)(dot2 - token), (const uint8_t *)sig)) {
        at_errmsg_printf(errmsg, "token: bad signature");
        return AT_EINVAL;
    }
    payload = at_malloc(NODE_JWT_MAX);
    n = node_jwt_b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), payload,
                               NODE_JWT_MAX);
    if (n < 0) {
        at_errmsg_printf(errmsg, "token: claims are no base64url");
        rv = AT_EINVAL;
    } else {
        rv = node_jwt_claims_parse((const char *)payload, (size_t)n, chk, out,
                                   errmsg);
    }
    at_free(payload);
    return rv;
}
