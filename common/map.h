/* Hash map from byte-string keys to pointers (open addressing). */
#ifndef AT_MAP_H
#define AT_MAP_H

struct at_map_slot {
    char *key; /* owned copy, NUL-terminated; NULL = empty */
    size_t klen;
    uint64_t hash;
    void *value; /* borrowed */
    bool tomb;
};

struct at_map {
    struct at_map_slot *slots; /* owned */
    size_t cap;                /* power of two, or 0 */
    size_t len;                /* live entries */
    size_t used;               /* live + tombstones */
};

void at_map_init(struct at_map *m);
/* Frees the keys and slots, not the values. */
void at_map_release(struct at_map *m);

/* Room for n entries without growing; fill a map from another map's
 * iteration only after this (see at_dmap_reserve: linear probing turns
 * quadratic when entries come in hash order into a smaller table). */
void at_map_reserve(struct at_map *m, size_t n);

void *at_map_get(const struct at_map *m, const void *key, size_t klen);
/* Insert or replace; returns the previous value or NULL. Copies the key. */
void *at_map_put(struct at_map *m, const void *key, size_t klen, void *value);
/* Remove; returns the removed value or NULL. */
void *at_map_del(struct at_map *m, const void *key, size_t klen);

static inline void *at_map_gets(const struct at_map *m, const char *key)
{
    return at_map_get(m, key, strlen(key));
}

/* Iterate: for (size_t i = 0; at_map_next(m, &i, &k, &v);) { ... }
 * Do not insert while iterating; deleting the current entry is allowed. */
bool at_map_next(const struct at_map *m,
                 size_t *iter,
                 const char **key,
                 void **value);

/* 64-bit FNV-1a style hash with a final mix, exposed for tests. */
uint64_t at_hash_bytes(const void *p, size_t n);

/* The open-addressing tables' sizes (map.c, dmap.c): the smallest power
 * of two (16 at least) holding n entries at a load of 3/4 at most; and the
 * size a full table of cap slots with len live entries rehashes into. */
size_t at_table_cap(size_t n, size_t slot_size);
size_t at_table_grown(size_t cap, size_t len);

#endif /* AT_MAP_H */
