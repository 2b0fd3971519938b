/* Sealed gossip packets (see seal.h): the keyring's HKDF derivation,
 * AES-256-GCM seal and open, and the replay window. */
#include "common/compat.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "gossip/seal.h"

/* Fixed labels of protocol version 1: a new version derives new keys. */
#define HKDF_SALT "atoll gossip v1"
#define HKDF_INFO "atoll gossip v1 aes-256-gcm key and id"

_Static_assert(GOSSIP_SEAL_HEADER_LEN == 17, "packet header layout");
_Static_assert(GOSSIP_SEAL_PACKET_MAX <= 1452, "one datagram on 1500 MTU");

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static uint64_t get_be64(const uint8_t *p)
{
    return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

/* OpenSSL's reason for the last error on this thread, and clear them. */
static const char *ossl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;

    ERR_clear_error();
    return r != NULL ? r : "no detail";
}

/* see seal.h */
int gossip_keyring_init(struct gossip_keyring *r, char *errmsg)
{
    memset(r, 0, sizeof(*r));
    r->primary = -1;
    if (RAND_bytes(r->nonce_prefix, sizeof(r->nonce_prefix)) != 1) {
        at_errmsg_printf(errmsg, "gossip keyring: random nonce prefix: %s",
                         ossl_reason());
        return AT_EIO;
    }
    return 0;
}

/* see seal.h */
void gossip_keyring_release(struct gossip_keyring *r)
{
    explicit_bzero(r, sizeof(*r));
    r->primary = -1;
}

/* HKDF-SHA256(secret) -> 32 key bytes then 4 id bytes: one expansion,
 * so the id reveals nothing of the key. */
static int derive(const void *secret,
                  size_t len,
                  struct gossip_seal_key *k,
                  char *errmsg)
{
    uint8_t okm[GOSSIP_SEAL_KEY_LEN + 4];
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    OSSL_PARAM params[5];
    int rv = 0;

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                                 (char *)"SHA256", 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                                  (void *)secret, len);
    params[2] = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_SALT, (void *)HKDF_SALT, strlen(HKDF_SALT));
    params[3] = OSSL_PARAM_construct_octet_string(
        OSSL_KDF_PARAM_INFO, (void *)HKDF_INFO, strlen(HKDF_INFO));
    params[4] = OSSL_PARAM_construct_end();
    if (ctx == NULL || EVP_KDF_derive(ctx, okm, sizeof(okm), params) != 1) {
        at_errmsg_printf(errmsg, "gossip keyring: hkdf: %s", ossl_reason());
        rv = AT_EIO;
        goto out;
    }
    memcpy(k->key, okm, GOSSIP_SEAL_KEY_LEN);
    k->id = get_be32(okm + GOSSIP_SEAL_KEY_LEN);
out:
    explicit_bzero(okm, sizeof(okm));
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return rv;
}

static int find(const struct gossip_keyring *r, uint32_t id)
{
    for (int i = 0; i < GOSSIP_SEAL_KEYS_MAX; i++)
        if (r->keys[i].used && r->keys[i].id == id)
            return i;
    return -1;
}

/* see seal.h */
int gossip_keyring_add(struct gossip_keyring *r,
                       const void *secret,
                       size_t len,
                       uint32_t *id,
                       char *errmsg)
{
    struct gossip_seal_key k = { 0 };
    int slot = -1;
    int rv;

    if (len < GOSSIP_SEAL_SECRET_MIN) {
        at_errmsg_printf(errmsg,
                         "gossip keyring: secret of %zu bytes (at least %d)",
                         len, GOSSIP_SEAL_SECRET_MIN);
        return AT_EINVAL;
    }
    rv = derive(secret, len, &k, errmsg);
    if (rv != 0)
        goto out;
    if (find(r, k.id) >= 0) {
        /* Equal ids from different secrets: a 2^-32 chance, refused
         * like the same secret twice, since the id must pick one key. */
        at_errmsg_printf(
            errmsg, "gossip keyring: key %08" PRIx32 " already in the ring",
            k.id);
        rv = AT_EEXIST;
        goto out;
    }
    for (int i = 0; i < GOSSIP_SEAL_KEYS_MAX && slot < 0; i++)
        if (!r->keys[i].used)
            slot = i;
    if (slot < 0) {
        at_errmsg_printf(errmsg, "gossip keyring: already %d keys",
                         GOSSIP_SEAL_KEYS_MAX);
        rv = AT_ENOSPC;
        goto out;
    }
    k.used = true;
    r->keys[slot] = k;
    if (r->primary < 0)
        r->primary = slot;
    if (id != NULL)
        *id = k.id;
out:
    explicit_bzero(&k, sizeof(k));
    return rv;
}

/* see seal.h */
int gossip_keyring_set_primary(struct gossip_keyring *r, uint32_t id)
{
    int i = find(r, id);

    if (i < 0)
        return AT_ENOTFOUND;
    r->primary = i;
    return 0;
}

/* see seal.h */
int gossip_keyring_remove(struct gossip_keyring *r, uint32_t id)
{
    int i = find(r, id);

    if (i < 0)
        return AT_ENOTFOUND;
    if (i == r->primary)
        return AT_EBUSY;
    explicit_bzero(&r->keys[i], sizeof(r->keys[i]));
    return 0;
}

/* see seal.h */
size_t gossip_keyring_count(const struct gossip_keyring *r)
{
    size_t n = 0;

    for (int i = 0; i < GOSSIP_SEAL_KEYS_MAX; i++)
        n += r->keys[i].used ? 1 : 0;
    return n;
}

/* The next nonce: the prefix, then the counter; a wrapped counter draws
 * a new prefix so that no (prefix, counter) pair is used twice. */
static int next_nonce(struct gossip_keyring *r, uint8_t *nonce)
{
    if (r->nonce_count == UINT32_MAX) {
        if (RAND_bytes(r->nonce_prefix, sizeof(r->nonce_prefix)) != 1) {
            ERR_clear_error();
            return AT_EIO;
        }
        r->nonce_count = 0;
    }
    memcpy(nonce, r->nonce_prefix, sizeof(r->nonce_prefix));
    put_be32(nonce + sizeof(r->nonce_prefix), r->nonce_count++);
    return 0;
}

/* AES-256-GCM over in (n bytes) into out with aad; tag written (seal) or
 * checked (open). Returns 0, AT_EPROTO (tag mismatch) or AT_EIO. */
static int gcm(bool seal,
               const uint8_t *key,
               const uint8_t *aad,
               size_t aadlen,
               const uint8_t *in,
               size_t n,
               uint8_t *out,
               uint8_t *tag)
{
    const uint8_t *nonce = aad + 5;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int outl = 0;
    int rv = AT_EIO;

    if (c == NULL ||
        EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL, seal) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, GOSSIP_SEAL_NONCE_LEN,
                            NULL) != 1 ||
        EVP_CipherInit_ex(c, NULL, NULL, key, nonce, seal) != 1 ||
        EVP_CipherUpdate(c, NULL, &outl, aad, (int)aadlen) != 1 ||
        EVP_CipherUpdate(c, out, &outl, in, (int)n) != 1)
        goto out;
    if (!seal && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG,
                                     GOSSIP_SEAL_TAG_LEN, tag) != 1)
        goto out;
    if (EVP_CipherFinal_ex(c, out + outl, &outl) != 1) {
        rv = seal ? AT_EIO : AT_EPROTO;
        goto out;
    }
    if (seal && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG,
                                    GOSSIP_SEAL_TAG_LEN, tag) != 1)
        goto out;
    rv = 0;
out:
    ERR_clear_error();
    EVP_CIPHER_CTX_free(c);
    return rv;
}

/* see seal.h */
int gossip_seal(struct gossip_keyring *r,
                uint64_t now_ms,
                const void *plain,
                size_t len,
                uint8_t *out,
                size_t outsize,
                size_t *outlen)
{
    uint8_t buf[GOSSIP_SEAL_SEQ_LEN + GOSSIP_SEAL_PLAIN_MAX];
    const struct gossip_seal_key *k;
    uint64_t seq;
    int rv;

    if (len > GOSSIP_SEAL_PLAIN_MAX || outsize < len + GOSSIP_SEAL_OVERHEAD)
        return AT_ETOOBIG;
    if (r->primary < 0)
        return AT_EINVAL;
    k = &r->keys[r->primary];
    out[0] = GOSSIP_SEAL_VERSION;
    put_be32(out + 1, k->id);
    rv = next_nonce(r, out + 5);
    if (rv != 0)
        return rv;
    seq = AT_MAX(r->last_seq + 1, now_ms);
    put_be64(buf, seq);
    if (len > 0)
        memcpy(buf + GOSSIP_SEAL_SEQ_LEN, plain, len);
    rv = gcm(true, k->key, out, GOSSIP_SEAL_HEADER_LEN, buf,
             GOSSIP_SEAL_SEQ_LEN + len, out + GOSSIP_SEAL_HEADER_LEN,
             out + GOSSIP_SEAL_HEADER_LEN + GOSSIP_SEAL_SEQ_LEN + len);
    explicit_bzero(buf, GOSSIP_SEAL_SEQ_LEN + len);
    if (rv != 0)
        return rv;
    r->last_seq = seq;
    r->stats.sealed++;
    *outlen = len + GOSSIP_SEAL_OVERHEAD;
    return 0;
}

/* see seal.h */
int gossip_open(struct gossip_keyring *r,
                const uint8_t *packet,
                size_t len,
                uint8_t *out,
                size_t outsize,
                size_t *outlen,
                uint64_t *seq)
{
    uint8_t buf[GOSSIP_SEAL_SEQ_LEN + GOSSIP_SEAL_PLAIN_MAX];
    uint8_t tag[GOSSIP_SEAL_TAG_LEN];
    size_t n; /* ciphertext bytes: sequence number and payload */
    int i;
    int rv;

    if (len < GOSSIP_SEAL_OVERHEAD) {
        r->stats.drop_short++;
        return AT_EPROTO;
    }
    if (len > GOSSIP_SEAL_PACKET_MAX) {
        r->stats.drop_oversize++;
        return AT_EPROTO;
    }
    if (packet[0] != GOSSIP_SEAL_VERSION) {
        r->stats.drop_version++;
        return AT_EPROTO;
    }
    i = find(r, get_be32(packet + 1));
    if (i < 0) {
        r->stats.drop_unknown_key++;
        return AT_EPROTO;
    }
    n = len - GOSSIP_SEAL_HEADER_LEN - GOSSIP_SEAL_TAG_LEN;
    if (outsize < n - GOSSIP_SEAL_SEQ_LEN)
        return AT_ETOOBIG;
    memcpy(tag, packet + len - GOSSIP_SEAL_TAG_LEN, sizeof(tag));
    rv = gcm(false, r->keys[i].key, packet, GOSSIP_SEAL_HEADER_LEN,
             packet + GOSSIP_SEAL_HEADER_LEN, n, buf, tag);
    if (rv == 0) {
        /* Only authenticated bytes reach the caller. */
        memcpy(out, buf + GOSSIP_SEAL_SEQ_LEN, n - GOSSIP_SEAL_SEQ_LEN);
        *outlen = n - GOSSIP_SEAL_SEQ_LEN;
        if (seq != NULL)
            *seq = get_be64(buf);
        r->stats.opened++;
    } else {
        r->stats.drop_auth++;
        rv = AT_EPROTO;
    }
    explicit_bzero(buf, n);
    return rv;
}

/* ---- replay window ---- */

static bool bit(const struct gossip_replay *w, uint64_t seq)
{
    uint64_t b = seq % GOSSIP_REPLAY_WINDOW;
    return (w->seen[b / 64] >> (b % 64)) & 1;
}

static void set_bit(struct gossip_replay *w, uint64_t seq, bool on)
{
    uint64_t b = seq % GOSSIP_REPLAY_WINDOW;
    uint64_t m = (uint64_t)1 << (b % 64);

    w->seen[b / 64] = on ? w->seen[b / 64] | m : w->seen[b / 64] & ~m;
}

/* see seal.h */
int gossip_replay_check(struct gossip_replay *w, uint64_t seq)
{
    if (seq == 0)
        return AT_EPROTO;
    if (seq > w->top) {
        /* Slide: the slots of the numbers now inside the window, which
         * last held numbers a whole window older, start unseen. */
        if (seq - w->top >= GOSSIP_REPLAY_WINDOW)
            memset(w->seen, 0, sizeof(w->seen));
        else
            for (uint64_t s = w->top + 1; s < seq; s++)
                set_bit(w, s, false);
        set_bit(w, seq, true);
        w->top = seq;
        return 0;
    }
    if (w->top - seq >= GOSSIP_REPLAY_WINDOW || bit(w, seq))
        return AT_EPROTO;
    set_bit(w, seq, true);
    return 0;
}
