/* Hash table of records keyed by a digest they hold (open addressing,
 * linear probing, tombstones). A slot is one pointer to the record: no key
 * copy, no per-entry allocation (at_map costs a slot of 40 bytes plus a
 * malloc'ed key per entry). For the FSM's big digest-keyed tables. */
#ifndef AT_DMAP_H
#define AT_DMAP_H

#include "common/digest.h"

struct at_dmap {
    void **slots; /* owned; NULL empty, AT_DMAP_TOMB deleted */
    size_t cap;   /* power of two, or 0 */
    size_t len;   /* live entries */
    size_t used;  /* live + tombstones */
    size_t key_off;
    size_t probes;
    /* slots stepped over by inserts (tests, dmap.c) */ /* offset of the
                                                           struct at_digest
                                                           in a record */
};

/* Records keep their key at key_off (offsetof(struct rec, digest)). */
void at_dmap_init(struct at_dmap *m, size_t key_off);
/* Frees the slots, not the records. */
void at_dmap_release(struct at_dmap *m);

/* Room for n records without growing. A table filled by iterating
 * another one (a snapshot restore: records come in the other table's slot
 * order, that is by hash) must be reserved first: inserted in hash order
 * into a smaller table, linear probing builds runs that grow with every
 * insert, and the fill turns quadratic (a 287k-manifest restore spent 3 of
 * its 3.3 s in probes). */
void at_dmap_reserve(struct at_dmap *m, size_t n);

void *at_dmap_get(const struct at_dmap *m, const struct at_digest *d);
/* Insert rec, or replace the record with the same digest: returns the one
 * replaced or NULL. The record's digest must not change while it is in. */
void *at_dmap_put(struct at_dmap *m, void *rec);
/* Remove; returns the removed record or NULL. */
void *at_dmap_del(struct at_dmap *m, const struct at_digest *d);

/* Iterate: for (size_t i = 0; at_dmap_next(m, &i, &rec);) { ... }
 * Do not insert while iterating; deleting the current entry is allowed. */
bool at_dmap_next(const struct at_dmap *m, size_t *iter, void **rec);

/* Bytes the table itself holds (not the records). */
size_t at_dmap_bytes(const struct at_dmap *m);

#endif /* AT_DMAP_H */
