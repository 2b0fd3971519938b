/* The cache of verified credentials: a push is dozens of requests, and a
 * bcrypt per request would pin a core. An entry is found by the name and
 * an HMAC-SHA256 of the password under a key drawn at start, so neither
 * the password nor anything a dictionary attack could use without that
 * key is kept. It remembers the version of the account it was verified
 * against: a changed or removed account no longer matches. Entries live
 * at most the TTL; the oldest go first when the cache is full (one list
 * in insertion order, which is also expiry order). */
#include "common/compat.h"

#include <sys/random.h>

#include "node/auth/internal.h"

#define HMAC_BLOCK 64 /* sha256 block size */

struct entry {
    struct at_list link; /* in the cache's list, oldest first */
    struct node_auth_key key;
    struct node_auth_identity id;
    uint64_t version;
    uint64_t born; /* loop ms */
};

struct node_auth_cache {
    uint8_t hmac_key[HMAC_BLOCK];
    /* sha256 states with the key's inner and outer pads absorbed: an
     * HMAC per request (every request of a cached login) starts from a
     * copy of them */
    struct at_sha256 inner, outer;
    uint64_t ttl_ms;
    struct at_map map;   /* key bytes -> struct entry (owned) */
    struct at_list list; /* struct entry, oldest first */
};

/* The inner and outer states of the cache's HMAC key (RFC 2104). */
static void hmac_pads(struct node_auth_cache *c)
{
    uint8_t pad[HMAC_BLOCK];

    for (size_t i = 0; i < HMAC_BLOCK; i++)
        pad[i] = c->hmac_key[i] ^ 0x36;
    at_sha256_init(&c->inner);
    at_sha256_update(&c->inner, pad, sizeof(pad));
    for (size_t i = 0; i < HMAC_BLOCK; i++)
        pad[i] = c->hmac_key[i] ^ 0x5c;
    at_sha256_init(&c->outer);
    at_sha256_update(&c->outer, pad, sizeof(pad));
    explicit_bzero(pad, sizeof(pad));
}

/* see internal.h */
struct node_auth_cache *node_auth__cache_new(uint64_t ttl_ms)
{
    struct node_auth_cache *c = at_calloc(1, sizeof(*c));
    size_t got = 0;

    while (got < AT_DIGEST_LEN) {
        ssize_t n = getrandom(c->hmac_key + got, AT_DIGEST_LEN - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        AT_ASSERT(n > 0); /* getrandom on Linux >= 3.17 does not fail */
        got += (size_t)n;
    }
    hmac_pads(c);
    c->ttl_ms = ttl_ms;
    at_map_init(&c->map);
    at_list_init(&c->list);
    return c;
}

static void entry_drop(struct node_auth_cache *c, struct entry *e)
{
    at_map_del(&c->map, e->key.bytes, e->key.len);
    at_list_remove(&e->link);
    explicit_bzero(e, sizeof(*e));
    at_free(e);
}

/* see internal.h */
void node_auth__cache_free(struct node_auth_cache *c)
{
    struct at_list *l;

    if (c == NULL)
        return;
    while ((l = at_list_pop_front(&c->list)) != NULL) {
        struct entry *e = AT_LIST_ENTRY(l, struct entry, link);
        explicit_bzero(e, sizeof(*e));
        at_free(e);
    }
    at_map_release(&c->map);
    at_sha256_release(&c->inner);
    at_sha256_release(&c->outer);
    explicit_bzero(c, sizeof(*c));
    at_free(c);
}

/* HMAC-SHA256 (RFC 2104) of msg under the cache's key. */
static void hmac(const struct node_auth_cache *c,
                 const char *msg,
                 struct at_digest *out)
{
    struct at_digest inner;
    struct at_sha256 h;

    at_sha256_copy(&h, &c->inner);
    at_sha256_update(&h, msg, strlen(msg));
    at_sha256_final(&h, &inner);
    at_sha256_copy(&h, &c->outer);
    at_sha256_update(&h, inner.bytes, sizeof(inner.bytes));
    at_sha256_final(&h, out);
    explicit_bzero(&inner, sizeof(inner));
}

/* see internal.h */
void node_auth__cache_key(const struct node_auth_cache *c,
                          const char *name,
                          const char *password,
                          struct node_auth_key *k)
{
    size_t n = strlen(name);
    struct at_digest d;

    AT_ASSERT(n < NODE_AUTH_NAME_SIZE);
    memcpy(k->bytes, name, n + 1);
    hmac(c, password, &d);
    memcpy(k->bytes + n + 1, d.bytes, AT_DIGEST_LEN);
    k->len = n + 1 + AT_DIGEST_LEN;
}

static bool expired(const struct node_auth_cache *c,
                    const struct entry *e,
                    uint64_t now)
{
    return now - e->born >= c->ttl_ms;
}

/* see internal.h */
const struct node_auth_identity *node_auth__cache_get(
    struct node_auth_cache *c,
    const struct node_auth_key *k,
    enum node_auth_kind kind,
    uint64_t version,
    uint64_t now)
{
    struct entry *e = at_map_get(&c->map, k->bytes, k->len);

    if (e == NULL)
        return NULL;
    if (expired(c, e, now) || e->id.kind != kind || e->version != version) {
        entry_drop(c, e);
        return NULL;
    }
    return &e->id;
}

/* see internal.h */
void node_auth__cache_put(struct node_auth_cache *c,
                          const struct node_auth_key *k,
                          const struct node_auth_identity *id,
                          uint64_t version,
                          uint64_t now)
{
    struct entry *e = at_map_get(&c->map, k->bytes, k->len);
    struct at_list *first;

    if (c->ttl_ms == 0)
        return;
    if (e != NULL)
        entry_drop(c, e);
    /* the oldest first: expired ones, then one more when full */
    while ((first = at_list_first(&c->list)) != NULL) {
        struct entry *old = AT_LIST_ENTRY(first, struct entry, link);
        if (!expired(c, old, now) && c->map.len < NODE_AUTH_CACHE_MAX)
            break;
        entry_drop(c, old);
    }
    e = at_calloc(1, sizeof(*e));
    e->key = *k;
    e->id = *id;
    e->version = version;
    e->born = now;
    at_map_put(&c->map, e->key.bytes, e->key.len, e);
    at_list_push_back(&c->list, &e->link);
}

/* see internal.h */
size_t node_auth__cache_len(const struct node_auth_cache *c)
{
    return c->map.len;
}
