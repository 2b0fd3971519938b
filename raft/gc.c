/* Garbage collection in the FSM: candidate blobs and the GcSweep apply. */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include "raft/internal.h"

#define DKEY(d) ((d)->bytes), AT_DIGEST_LEN

#define GC_REMOVED_MAX ((size_t)1 << 20) /* pending local deletions */

static bool gc_eligible(const struct meta_blob *b,
                        uint64_t now_ms,
                        uint64_t grace_ms)
{
    return b->mrefs == 0 && now_ms >= b->stored_ms &&
           now_ms - b->stored_ms >= grace_ms;
}

static int blob_cmp(const void *a, const void *b)
{
    const struct meta_blob *x = *(const struct meta_blob *const *)a;
    const struct meta_blob *y = *(const struct meta_blob *const *)b;
    return memcmp(x->digest.bytes, y->digest.bytes, AT_DIGEST_LEN);
}

/* see internal.h */
void meta_fsm_gc_candidates(struct meta_fsm *f,
                            uint64_t now_ms,
                            uint64_t grace_ms,
                            meta_blob_cb each,
                            void *data)
{
    struct meta_blob **hits = NULL;
    size_t n = 0, cap = 0;
    const char *k;
    void *v;
    for (size_t i = 0; at_map_next(&f->blobs, &i, &k, &v);) {
        struct meta_blob *b = v;
        if (!gc_eligible(b, now_ms, grace_ms))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            hits = at_realloc(hits, cap * sizeof(*hits));
        }
        hits[n++] = b;
    }
    if (n > 1)
        qsort(hits, n, sizeof(*hits), blob_cmp);
    for (size_t i = 0; i < n; i++)
        each(data, &hits[i]->digest, hits[i]->size);
    at_free(hits);
}

/* see internal.h */
void meta__gc_removed_push(struct meta_fsm *f,
                           const struct at_digest *d,
                           uint64_t cutoff_ms)
{
    if (f->ngc_removed >= GC_REMOVED_MAX) {
        LOG_WARN("gc: %zu local deletions pending, dropping one",
                 f->ngc_removed);
        return;
    }
    if (f->ngc_removed == f->gc_removed_cap) {
        f->gc_removed_cap = f->gc_removed_cap ? f->gc_removed_cap * 2 : 64;
        f->gc_removed = at_realloc(f->gc_removed,
                                   f->gc_removed_cap * sizeof(*f->gc_removed));
    }
    f->gc_removed[f->ngc_removed].digest = *d;
    f->gc_removed[f->ngc_removed++].cutoff_ms = cutoff_ms;
}

/* see internal.h */
size_t meta_fsm_gc_take_removed(struct meta_fsm *f,
                                struct meta_gc_removed **out)
{
    size_t n = f->ngc_removed;
    *out = f->gc_removed;
    f->gc_removed = NULL;
    f->ngc_removed = f->gc_removed_cap = 0;
    return n;
}

/* see internal.h */
void meta__gc_recount(struct meta_fsm *f)
{
    const char *k;
    void *v;
    for (size_t i = 0; at_map_next(&f->blobs, &i, &k, &v);)
        ((struct meta_blob *)v)->mrefs = 0;
    for (size_t i = 0; at_map_next(&f->manifests, &i, &k, &v);)
        meta__mf_blob_refs(f, v, 1);
}

/* see internal.h: deterministic; every decision uses the command's fields
 * and the state only */
int meta__gc_sweep(struct meta_fsm *f, uint64_t now_ms, const Atoll__GcSweep *o)
{
    struct at_map doomed; /* raw digest -> struct meta_blob */
    struct at_digest d;
    const char *k;
    void *v;

    at_map_init(&doomed);
    for (size_t i = 0; i < o->n_digests; i++) {
        AT_ASSERT(o->digests[i].len == AT_DIGEST_LEN); /* proto checked */
        memcpy(d.bytes, o->digests[i].data, AT_DIGEST_LEN);
        struct meta_blob *b = at_map_get(&f->blobs, DKEY(&d));
        if (b != NULL && gc_eligible(b, now_ms, o->grace_ms))
            at_map_put(&doomed, DKEY(&d), b);
    }
    if (doomed.len == 0) {
        at_map_release(&doomed);
        return META_OK;
    }
    /* repository links: walk the smaller side of each repository */
    struct meta_repo **empty = NULL;
    size_t nempty = 0;
    for (size_t i = 0; at_map_next(&f->repos, &i, &k, &v);) {
        struct meta_repo *r = v;
        if (r->blobs.len == 0)
            continue;
        if (r->blobs.len <= doomed.len) {
            const char *bk;
            void *bv;
            for (size_t t = 0; at_map_next(&r->blobs, &t, &bk, &bv);) {
                const struct meta_blob *b = bv;
                if (at_map_get(&doomed, DKEY(&b->digest)) != NULL)
                    at_map_del(&r->blobs, DKEY(&b->digest));
            }
        } else {
            const char *bk;
            void *bv;
            for (size_t t = 0; at_map_next(&doomed, &t, &bk, &bv);)
                at_map_del(&r->blobs, DKEY(&((struct meta_blob *)bv)->digest));
        }
        if (r->tags.len == 0 && r->blobs.len == 0 && r->manifests.len == 0) {
            empty = at_realloc(empty, (nempty + 1) * sizeof(*empty));
            empty[nempty++] = r;
        }
    }
    for (size_t i = 0; i < nempty; i++)
        meta__repo_maybe_drop(f, empty[i]);
    at_free(empty);
    /* the records, in command order (the local deletion queue too) */
    for (size_t i = 0; i < o->n_digests; i++) {
        memcpy(d.bytes, o->digests[i].data, AT_DIGEST_LEN);
        struct meta_blob *b = at_map_del(&doomed, DKEY(&d));
        if (b == NULL)
            continue; /* not doomed, or listed twice */
        /* local copies changed after the last store are re-uploads whose
         * BlobStored is still in flight (each node's own BlobStored comes
         * after its copy is in place, stamped by its own clock) */
        uint64_t cutoff = b->stored_ms != 0      ? b->stored_ms
                          : now_ms > o->grace_ms ? now_ms - o->grace_ms
                                                 : 0;
        at_map_del(&f->blobs, DKEY(&d));
        meta__blob_free(b);
        meta__gc_removed_push(f, &d, cutoff);
        f->gc_deleted_total++;
    }
    at_map_release(&doomed);
    return META_OK;
}
