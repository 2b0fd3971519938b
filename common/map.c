/* Open-addressing hash map with linear probing and tombstones. */
#include "common/compat.h"

#include "common/alloc.h"
#include "common/check.h"
#include "common/map.h"

/* see map.h */
uint64_t at_hash_bytes(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

/* see map.h */
void at_map_init(struct at_map *m)
{
    m->slots = NULL;
    m->cap = 0;
    m->len = 0;
    m->used = 0;
}

/* see map.h */
void at_map_release(struct at_map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
    at_map_init(m);
}

static struct at_map_slot *find(const struct at_map *m,
                                const void *key,
                                size_t klen,
                                uint64_t h)
{
    size_t mask;
    size_t i;

    if (m->cap == 0)
        return NULL;
    mask = m->cap - 1;
    for (i = (size_t)h & mask;; i = (i + 1) & mask) {
        struct at_map_slot *s = &m->slots[i];
        if (s->key == NULL && !s->tomb)
            return NULL;
        if (s->key != NULL && s->hash == h && s->klen == klen &&
            memcmp(s->key, key, klen) == 0)
            return s;
    }
}

/* see map.h */
size_t at_table_cap(size_t n, size_t slot_size)
{
    size_t cap = 16;

    while (n / 3 * 4 + n % 3 * 2 > cap) { /* n <= 3/4 of cap */
        AT_ASSERT(cap <= SIZE_MAX / 2 / slot_size);
        cap *= 2;
    }
    return cap;
}

/* see map.h */
size_t at_table_grown(size_t cap, size_t len)
{
    if (cap == 0)
        return 16;
    /* the same size (tombstones dropped) when live entries are few */
    return len * 2 >= cap ? cap * 2 : cap;
}

static void rehash(struct at_map *m, size_t cap)
{
    struct at_map_slot *old = m->slots;
    size_t oldcap = m->cap;

    m->slots = at_calloc(cap, sizeof(*m->slots));
    m->cap = cap;
    m->used = m->len;
    for (size_t i = 0; i < oldcap; i++) {
        struct at_map_slot *s = &old[i];
        size_t j;
        if (s->key == NULL)
            continue;
        for (j = (size_t)s->hash & (cap - 1); m->slots[j].key != NULL;
             j = (j + 1) & (cap - 1)) {
        }
        m->slots[j] = *s;
        m->slots[j].tomb = false;
    }
    free(old);
}

static void grow(struct at_map *m)
{
    rehash(m, at_table_grown(m->cap, m->len));
}

/* see map.h */
void at_map_reserve(struct at_map *m, size_t n)
{
    size_t cap = at_table_cap(n, sizeof(*m->slots));
    if (cap > m->cap)
        rehash(m, cap);
}

/* see map.h */
void *at_map_get(const struct at_map *m, const void *key, size_t klen)
{
    struct at_map_slot *s = find(m, key, klen, at_hash_bytes(key, klen));
    return s != NULL ? s->value : NULL;
}

/* see map.h */
void *at_map_put(struct at_map *m, const void *key, size_t klen, void *value)
{
    uint64_t h = at_hash_bytes(key, klen);
    struct at_map_slot *s = find(m, key, klen, h);
    size_t mask;
    size_t i;

    if (s != NULL) {
        void *old = s->value;
        s->value = value;
        return old;
    }
    if ((m->used + 1) * 4 > m->cap * 3)
        grow(m);
    mask = m->cap - 1;
    for (i = (size_t)h & mask; m->slots[i].key != NULL; i = (i + 1) & mask) {
    }
    s = &m->slots[i];
    if (!s->tomb)
        m->used++;
    s->key = at_strndup(key, klen);
    s->klen = klen;
    s->hash = h;
    s->value = value;
    s->tomb = false;
    m->len++;
    return NULL;
}

/* see map.h */
void *at_map_del(struct at_map *m, const void *key, size_t klen)
{
    struct at_map_slot *s = find(m, key, klen, at_hash_bytes(key, klen));
    void *old;

    if (s == NULL)
        return NULL;
    old = s->value;
    free(s->key);
    s->key = NULL;
    s->value = NULL;
    s->tomb = true;
    m->len--;
    return old;
}

/* see map.h */
bool at_map_next(const struct at_map *m,
                 size_t *iter,
                 const char **key,
                 void **value)
{
    while (*iter < m->cap) {
        struct at_map_slot *s = &m->slots[(*iter)++];
        if (s->key != NULL) {
            if (key != NULL)
                *key = s->key;
            if (value != NULL)
                *value = s->value;
            return true;
        }
    }
    return false;
}
