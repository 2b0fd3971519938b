/* What the files of node/auth/ share: bcrypt (bcrypt.c), the credentials
 * cache (cache.c) and reading the htpasswd file (htpasswd.c). */
#ifndef NODE_AUTH_INTERNAL_H
#define NODE_AUTH_INTERNAL_H

#include "node/auth/auth.h"

#define NODE_AUTH_HASH_SIZE 128 /* room for a bcrypt string and its NUL */

/* ---- bcrypt.c: blocking, for the pool ---- */

/* Hash secret with a fresh "$2b$" salt at cost into out (size bytes).
 * 0, or AT_EINVAL (bad cost, libxcrypt failure). */
int node_auth__bcrypt_hash(const char *secret,
                           unsigned cost,
                           char *out,
                           size_t size);
/* Does secret match hash (any crypt(3) method libxcrypt knows)? */
bool node_auth__bcrypt_check(const char *secret, const char *hash);
/* a equals b, in time that depends on a's length only. */
bool node_auth__equal(const char *a, const char *b);

/* ---- cache.c: verified credentials ----
 * Keyed by the name and an HMAC-SHA256 of the password under a key drawn
 * at start (the password itself is never kept), each entry with the
 * version of the account it was verified against, bounded in count and
 * age. */
#define NODE_AUTH_CACHE_MAX 4096
#define NODE_AUTH_KEY_SIZE  (NODE_AUTH_NAME_SIZE + AT_DIGEST_LEN)

struct node_auth_cache;
/* A key: the name, a NUL, the HMAC of the password (klen bytes). */
struct node_auth_key {
    uint8_t bytes[NODE_AUTH_KEY_SIZE];
    size_t len;
};
struct node_auth_cache *node_auth__cache_new(uint64_t ttl_ms);
void node_auth__cache_free(struct node_auth_cache *c);
void node_auth__cache_key(const struct node_auth_cache *c,
                          const char *name,
                          const char *password,
                          struct node_auth_key *k);
/* The entry for k if it is younger than the TTL at now (loop ms) and was
 * verified against version of kind; else NULL (a stale entry is
 * dropped). */
const struct node_auth_identity *node_auth__cache_get(
    struct node_auth_cache *c,
    const struct node_auth_key *k,
    enum node_auth_kind kind,
    uint64_t version,
    uint64_t now);
void node_auth__cache_put(struct node_auth_cache *c,
                          const struct node_auth_key *k,
                          const struct node_auth_identity *id,
                          uint64_t version,
                          uint64_t now);
size_t node_auth__cache_len(const struct node_auth_cache *c);

/* ---- htpasswd.c ---- */

/* Read and parse file (errmsg names it, and the line). */
int node_auth__htpasswd_load(const char *file,
                             struct node_auth_htpasswd **out,
                             char *errmsg);
/* Each name of h, sorted. */
void node_auth__htpasswd_each(const struct node_auth_htpasswd *h,
                              void (*each)(void *data, const char *name),
                              void *data);

#endif /* NODE_AUTH_INTERNAL_H */
