/* Digest parsing/formatting and sha256 through OpenSSL's EVP interface. */
#include "common/compat.h"

#include <pthread.h>

#include <openssl/evp.h>

#include "common/alloc.h"
#include "common/check.h"
#include "common/digest.h"
#include "common/err.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* OCI image-spec descriptor.md: digest ::= algorithm ":" encoded, with
 * algorithm ::= [a-z0-9]+ ([+._-] [a-z0-9]+)* and encoded ::= [a-zA-Z0-9=_-]+.
 * sha256 encoded must be 64 lowercase hex characters. */
static bool well_formed(const char *s, size_t len)
{
    const char *colon = memchr(s, ':', len);
    size_t alen;
    bool need_alnum = true;

    if (colon == NULL || colon == s || colon == s + len - 1)
        return false;
    alen = (size_t)(colon - s);
    for (size_t i = 0; i < alen; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (alnum) {
            need_alnum = false;
        } else if ((c == '+' || c == '.' || c == '_' || c == '-') &&
                   !need_alnum) {
            need_alnum = true;
        } else {
            return false;
        }
    }
    if (need_alnum)
        return false;
    for (size_t i = alen + 1; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '=' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* see digest.h */
int at_digest_parse(const char *s, size_t len, struct at_digest *out)
{
    if (len > 7 && memcmp(s, "sha256:", 7) == 0) {
        if (len != 7 + AT_DIGEST_HEX_LEN)
            return AT_EINVAL;
        for (size_t i = 0; i < AT_DIGEST_LEN; i++) {
            int hi = hexval(s[7 + 2 * i]);
            int lo = hexval(s[7 + 2 * i + 1]);
            if (hi < 0 || lo < 0)
                return AT_EINVAL;
            out->bytes[i] = (uint8_t)(hi << 4 | lo);
        }
        return 0;
    }
    if (len > 7 && memcmp(s, "sha512:", 7) == 0) {
        /* sha512 encoded must be 128 lowercase hex characters. */
        if (len != 7 + 128)
            return AT_EINVAL;
        for (size_t i = 7; i < len; i++) {
            if (hexval(s[i]) < 0)
                return AT_EINVAL;
        }
        return AT_EUNSUPPORTED;
    }
    return well_formed(s, len) ? AT_EUNSUPPORTED : AT_EINVAL;
}

/* see digest.h */
char *at_digest_hex(const struct at_digest *d, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < AT_DIGEST_LEN; i++) {
        out[2 * i] = hex[d->bytes[i] >> 4];
        out[2 * i + 1] = hex[d->bytes[i] & 15];
    }
    out[AT_DIGEST_HEX_LEN] = '\0';
    return out;
}

/* see digest.h */
char *at_digest_format(const struct at_digest *d, char *out)
{
    memcpy(out, "sha256:", 7);
    at_digest_hex(d, out + 7);
    return out;
}

/* see digest.h */
bool at_digest_equal(const struct at_digest *a, const struct at_digest *b)
{
    return memcmp(a->bytes, b->bytes, AT_DIGEST_LEN) == 0;
}

/* SHA-256 fetched from the provider once: with OpenSSL 3, EVP_sha256() in
 * every EVP_DigestInit_ex means a fetch (a lock and a lookup) per hash,
 * which costs more than hashing a password. Kept for the process. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    AT_ASSERT(sha256_md != NULL);
}

static const EVP_MD *sha256(void)
{
    pthread_once(&sha256_once, sha256_fetch);
    return sha256_md;
}

/* see digest.h */
void at_digest_of(const void *p, size_t n, struct at_digest *out)
{
    unsigned int len = 0;
    int ok = EVP_Digest(p, n, out->bytes, &len, sha256(), NULL);
    AT_ASSERT(ok == 1 && len == AT_DIGEST_LEN);
}

/* see digest.h */
void at_sha256_init(struct at_sha256 *h)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        fprintf(stderr, "fatal: out of memory (EVP_MD_CTX_new)\n");
        abort();
    }
    AT_ASSERT(EVP_DigestInit_ex(ctx, sha256(), NULL) == 1);
    h->ctx = ctx;
}

/* see digest.h */
void at_sha256_copy(struct at_sha256 *dst, const struct at_sha256 *src)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        fprintf(stderr, "fatal: out of memory (EVP_MD_CTX_new)\n");
        abort();
    }
    PRE(src->ctx != NULL);
    AT_ASSERT(EVP_MD_CTX_copy_ex(ctx, src->ctx) == 1);
    dst->ctx = ctx;
}

/* see digest.h */
void at_sha256_update(struct at_sha256 *h, const void *p, size_t n)
{
    PRE(h->ctx != NULL);
    if (n > 0)
        AT_ASSERT(EVP_DigestUpdate(h->ctx, p, n) == 1);
}

/* see digest.h */
void at_sha256_final(struct at_sha256 *h, struct at_digest *out)
{
    unsigned int len = 0;
    PRE(h->ctx != NULL);
    AT_ASSERT(EVP_DigestFinal_ex(h->ctx, out->bytes, &len) == 1);
    AT_ASSERT(len == AT_DIGEST_LEN);
    at_sha256_release(h);
}

/* see digest.h */
void at_sha256_release(struct at_sha256 *h)
{
    if (h->ctx != NULL)
        EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
}
