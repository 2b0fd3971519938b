/* Digest-keyed hash table of record pointers. See dmap.h.
 *
 * The hash is the digest's first 8 bytes, mixed: a sha256 is uniform, and
 * nobody can choose a digest's prefix (that would be a preimage), so no
 * second hash pass over the 32 bytes is needed. A probe compares the key
 * through the record pointer. Load stays at or below 3/4 (live plus
 * tombstones); a table mostly of tombstones is rehashed at the same size. */
#include "common/compat.h"

#include "common/alloc.h"
#include "common/check.h"
#include "common/dmap.h"
#include "common/map.h"

#define TOMB ((void *)&tomb_mark)
static const char tomb_mark;

static uint64_t dhash(const struct at_digest *d)
{
    uint64_t h;

    memcpy(&h, d->bytes, sizeof(h));
    h ^= h >> 31;
    h *= 0x7fb5d329728ea185ull;
    h ^= h >> 27;
    return h;
}

static const struct at_digest *key_of(const struct at_dmap *m, const void *r)
{
    return (const struct at_digest *)((const char *)r + m->key_off);
}

/* see dmap.h */
void at_dmap_init(struct at_dmap *m, size_t key_off)
{
    m->slots = NULL;
    m->cap = 0;
    m->len = 0;
    m->used = 0;
    m->key_off = key_off;
    m->probes = 0;
}

/* see dmap.h */
void at_dmap_release(struct at_dmap *m)
{
    free(m->slots);
    at_dmap_init(m, m->key_off);
}

static void **find(const struct at_dmap *m, const struct at_digest *d)
{
    size_t mask;

    if (m->cap == 0)
        return NULL;
    mask = m->cap - 1;
    for (size_t i = (size_t)dhash(d) & mask;; i = (i + 1) & mask) {
        void *s = m->slots[i];
        if (s == NULL)
            return NULL;
        if (s != TOMB &&
            memcmp(key_of(m, s)->bytes, d->bytes, AT_DIGEST_LEN) == 0)
            return &m->slots[i];
    }
}

static void rehash(struct at_dmap *m, size_t cap)
{
    void **old = m->slots;
    size_t oldcap = m->cap;

    m->slots = at_calloc(cap, sizeof(*m->slots));
    m->cap = cap;
    m->used = m->len;
    for (size_t i = 0; i < oldcap; i++) {
        void *s = old[i];
        size_t j;
        if (s == NULL || s == TOMB)
            continue;
        for (j = (size_t)dhash(key_of(m, s)) & (cap - 1); m->slots[j] != NULL;
             j = (j + 1) & (cap - 1)) {
        }
        m->slots[j] = s;
    }
    free(old);
}

static void grow(struct at_dmap *m)
{
    rehash(m, at_table_grown(m->cap, m->len));
}

/* see dmap.h */
void at_dmap_reserve(struct at_dmap *m, size_t n)
{
    size_t cap = at_table_cap(n, sizeof(*m->slots));
    if (cap > m->cap)
        rehash(m, cap);
}

/* see dmap.h */
void *at_dmap_get(const struct at_dmap *m, const struct at_digest *d)
{
    void **s = find(m, d);
    return s != NULL ? *s : NULL;
}

/* see dmap.h */
void *at_dmap_put(struct at_dmap *m, void *rec)
{
    const struct at_digest *d = key_of(m, rec);
    void **s = find(m, d);
    size_t mask;
    size_t i;

    if (s != NULL) {
        void *old = *s;
        *s = rec;
        return old;
    }
    if ((m->used + 1) * 4 > m->cap * 3)
        grow(m);
    mask = m->cap - 1;
    for (i = (size_t)dhash(d) & mask;
         m->slots[i] != NULL && m->slots[i] != TOMB; i = (i + 1) & mask) {
        m->probes++;
    }
    if (m->slots[i] == NULL)
        m->used++;
    m->slots[i] = rec;
    m->len++;
    return NULL;
}

/* see dmap.h */
void *at_dmap_del(struct at_dmap *m, const struct at_digest *d)
{
    void **s = find(m, d);
    void *old;

    if (s == NULL)
        return NULL;
    old = *s;
    *s = TOMB;
    m->len--;
    return old;
}

/* see dmap.h */
bool at_dmap_next(const struct at_dmap *m, size_t *iter, void **rec)
{
    while (*iter < m->cap) {
        void *s = m->slots[(*iter)++];
        if (s != NULL && s != TOMB) {
            if (rec != NULL)
                *rec = s;
            return true;
        }
    }
    return false;
}

/* see dmap.h */
size_t at_dmap_bytes(const struct at_dmap *m)
{
    return m->cap * sizeof(*m->slots);
}
