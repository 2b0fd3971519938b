/* Content digests ("sha256:<64 hex>") and streaming sha256. */
#ifndef AT_DIGEST_H
#define AT_DIGEST_H

#define AT_DIGEST_LEN     32 /* raw sha256 bytes */
#define AT_DIGEST_HEX_LEN 64
/* "sha256:" + 64 hex + NUL */
#define AT_DIGEST_STR_SIZE 72

struct at_digest {
    uint8_t bytes[AT_DIGEST_LEN];
};

/* Parse "sha256:<64 lowercase hex>". Returns 0, AT_EINVAL when the string is
 * not a well-formed digest (OCI: DIGEST_INVALID), or AT_EUNSUPPORTED for a
 * well-formed digest of another algorithm (e.g. sha512:...). */
int at_digest_parse(const char *s, size_t len, struct at_digest *out);

/* Write "sha256:<hex>" into out (AT_DIGEST_STR_SIZE bytes). Returns out. */
char *at_digest_format(const struct at_digest *d, char *out);

/* Write the 64 hex characters (plus NUL) into out (65 bytes). */
char *at_digest_hex(const struct at_digest *d, char *out);

bool at_digest_equal(const struct at_digest *a, const struct at_digest *b);

/* One-shot sha256 of a buffer. */
void at_digest_of(const void *p, size_t n, struct at_digest *out);

/* Streaming sha256. The context is heap-backed: _init allocates, _final or
 * _release frees. Not thread-safe per context; one thread at a time. */
struct at_sha256 {
    void *ctx; /* owned: EVP_MD_CTX */
};
void at_sha256_init(struct at_sha256 *h);
void at_sha256_update(struct at_sha256 *h, const void *p, size_t n);
void at_sha256_final(struct at_sha256 *h, struct at_digest *out);
void at_sha256_release(struct at_sha256 *h);
/* dst (not initialized, or released) becomes a copy of src's state: a
 * prefix hashed once (an HMAC key's pad) serves many messages. */
void at_sha256_copy(struct at_sha256 *dst, const struct at_sha256 *src);

#endif /* AT_DIGEST_H */
