/* Garbage collection in the FSM: candidate blobs and untagged manifests,
 * and the GcSweep apply. */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include "raft/gc.h"

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

/* see gc.h */
void meta_fsm_gc_candidates(struct meta_fsm *f,
                            uint64_t now_ms,
                            uint64_t grace_ms,
                            meta_blob_cb each,
                            void *data)
{
    struct meta_blob **hits = NULL;
    size_t n = 0, cap = 0;
    void *v;
    for (size_t i = 0; at_dmap_next(&f->blobs, &i, &v);) {
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

/* see gc.h */
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

/* see gc.h */
size_t meta_fsm_gc_take_removed(struct meta_fsm *f,
                                struct meta_gc_removed **out)
{
    size_t n = f->ngc_removed;
    *out = f->gc_removed;
    f->gc_removed = NULL;
    f->ngc_removed = f->gc_removed_cap = 0;
    return n;
}

/* see gc.h */
void meta__gc_recount(struct meta_fsm *f)
{
    void *v;
    for (size_t i = 0; at_dmap_next(&f->blobs, &i, &v);)
        ((struct meta_blob *)v)->mrefs = 0;
    for (size_t i = 0; at_dmap_next(&f->manifests, &i, &v);)
        meta__mf_blob_refs(f, v, 1);
}

/* ---- untagged manifests ----
 * In one repository, a manifest is kept by a tag pointing at it, by an
 * index listing it, by a manifest naming it as subject (the "keep" counts
 * below, raw digest -> count cast to a pointer), and, when it is itself a
 * referrer, by its subject still being in the repository. */

#define GC_ROUNDS_MAX 16 /* candidate rounds (nesting depth) per repo */

static void keep_add(struct at_map *keep, const struct at_digest *d, int delta)
{
    uintptr_t n = (uintptr_t)at_map_get(keep, DKEY(d));
    if (delta > 0)
        n++;
    else if (n > 0)
        n--;
    if (n == 0)
        at_map_del(keep, DKEY(d));
    else
        at_map_put(keep, DKEY(d), (void *)n);
}

/* What mf keeps in its repository: its children and its subject. */
static void keep_of(struct at_map *keep, const struct meta_mf *mf, int delta)
{
    for (size_t i = 0; i < mf->nchildren; i++)
        keep_add(keep, &meta__mf_children(mf)[i], delta);
    if (mf->pub.subject != NULL)
        keep_add(keep, mf->pub.subject, delta);
}

static void keep_build(struct at_map *keep, const struct meta_repo *r)
{
    void *v;
    at_map_init(keep);
    for (size_t i = 0; i < r->ntagv; i++)
        keep_add(keep, &r->tagv[i].digest, 1);
    for (size_t i = 0; at_dmap_next(&r->manifests, &i, &v);)
        keep_of(keep, v, 1);
}

/* gone: manifests already counted out of r (candidate rounds), or NULL */
static bool mf_collectable(const struct meta_repo *r,
                           const struct meta_mf *mf,
                           const struct at_map *keep,
                           const struct at_map *gone,
                           uint64_t now_ms,
                           uint64_t grace_ms)
{
    if (at_map_get(keep, DKEY(&mf->pub.digest)) != NULL)
        return false;
    if (mf->pub.subject != NULL &&
        at_dmap_get(&r->manifests, mf->pub.subject) != NULL &&
        (gone == NULL || at_map_get(gone, DKEY(mf->pub.subject)) == NULL))
        return false; /* a referrer of a live subject */
    return now_ms >= mf->pushed_ms && now_ms - mf->pushed_ms >= grace_ms;
}

static int mf_cmp(const void *a, const void *b)
{
    const struct meta_mf *x = *(const struct meta_mf *const *)a;
    const struct meta_mf *y = *(const struct meta_mf *const *)b;
    return memcmp(x->pub.digest.bytes, y->pub.digest.bytes, AT_DIGEST_LEN);
}

static int repo_cmp(const void *a, const void *b)
{
    const struct meta_repo *x = *(const struct meta_repo *const *)a;
    const struct meta_repo *y = *(const struct meta_repo *const *)b;
    return strcmp(x->name, y->name);
}

/* The candidates of one repository, round by round; returns how many were
 * passed to each (at most max). */
static size_t repo_mf_candidates(struct meta_repo *r,
                                 uint64_t now_ms,
                                 uint64_t grace_ms,
                                 size_t max,
                                 meta_gc_manifest_cb each,
                                 void *data)
{
    struct at_map keep, gone;
    struct meta_mf **hits = at_calloc(r->manifests.len + 1, sizeof(*hits));
    size_t total = 0;
    void *v;
    keep_build(&keep, r);
    at_map_init(&gone);
    for (unsigned round = 0; round < GC_ROUNDS_MAX && total < max; round++) {
        size_t n = 0;
        for (size_t i = 0; at_dmap_next(&r->manifests, &i, &v);) {
            struct meta_mf *mf = v;
            if (at_map_get(&gone, DKEY(&mf->pub.digest)) == NULL &&
                mf_collectable(r, mf, &keep, &gone, now_ms, grace_ms))
                hits[n++] = mf;
        }
        if (n == 0)
            break;
        if (n > 1)
            qsort(hits, n, sizeof(*hits), mf_cmp);
        for (size_t i = 0; i < n && total < max; i++, total++) {
            at_map_put(&gone, DKEY(&hits[i]->pub.digest), hits[i]);
            keep_of(&keep, hits[i], -1);
            each(data, r->name, &hits[i]->pub.digest);
        }
    }
    at_map_release(&gone);
    at_map_release(&keep);
    at_free(hits);
    return total;
}

/* see gc.h */
void meta_fsm_gc_manifest_candidates(struct meta_fsm *f,
                                     uint64_t now_ms,
                                     uint64_t grace_ms,
                                     size_t max,
                                     meta_gc_manifest_cb each,
                                     void *data)
{
    struct meta_repo **repos = at_calloc(f->repos.len + 1, sizeof(*repos));
    size_t n = 0, total = 0;
    const char *k;
    void *v;
    for (size_t i = 0; at_map_next(&f->repos, &i, &k, &v);) {
        struct meta_repo *r = v;
        if (r->manifests.len > 0)
            repos[n++] = r;
    }
    if (n > 1)
        qsort(repos, n, sizeof(*repos), repo_cmp);
    for (size_t i = 0; i < n && total < max; i++)
        total += repo_mf_candidates(repos[i], now_ms, grace_ms, max - total,
                                    each, data);
    at_free(repos);
}

/* The manifest part of a GcSweep, in command order: each one is decided on
 * the state left by the ones before it. */
static void gc_sweep_manifests(struct meta_fsm *f,
                               uint64_t now_ms,
                               const Atoll__GcSweep *o)
{
    struct at_map keeps; /* repo name -> struct at_map (owned) */
    struct at_digest d;
    const char *k;
    void *v;
    at_map_init(&keeps);
    for (size_t i = 0; i < o->n_manifests; i++) {
        const Atoll__SweepManifest *sm = o->manifests[i];
        struct meta_repo *r = meta__repo_get(f, sm->repo, false);
        AT_ASSERT(sm->digest.len == AT_DIGEST_LEN); /* proto checked */
        memcpy(d.bytes, sm->digest.data, AT_DIGEST_LEN);
        struct meta_mf *mf = r != NULL ? at_dmap_get(&r->manifests, &d) : NULL;
        if (mf == NULL)
            continue;
        struct at_map *keep = at_map_gets(&keeps, sm->repo);
        if (keep == NULL) {
            keep = at_malloc(sizeof(*keep));
            keep_build(keep, r);
            at_map_put(&keeps, sm->repo, strlen(sm->repo), keep);
        }
        if (!mf_collectable(r, mf, keep, NULL, now_ms, o->grace_ms))
            continue;
        keep_of(keep, mf, -1);
        meta__repo_unlink_manifest(f, r, mf); /* may free mf */
        meta__repo_maybe_drop(f, r);          /* may free r */
        f->gc_mf_deleted++;
    }
    for (size_t i = 0; at_map_next(&keeps, &i, &k, &v);) {
        at_map_release(v);
        at_free(v);
    }
    at_map_release(&keeps);
}

/* see gc.h: deterministic; every decision uses the command's fields
 * and the state only */
int meta__gc_sweep(struct meta_fsm *f, uint64_t now_ms, const Atoll__GcSweep *o)
{
    struct at_map doomed; /* raw digest -> struct meta_blob */
    struct at_digest d;
    const char *k;
    void *v;

    if (o->n_manifests > 0)
        gc_sweep_manifests(f, now_ms, o);

    at_map_init(&doomed);
    for (size_t i = 0; i < o->n_digests; i++) {
        AT_ASSERT(o->digests[i].len == AT_DIGEST_LEN); /* proto checked */
        memcpy(d.bytes, o->digests[i].data, AT_DIGEST_LEN);
        struct meta_blob *b = at_dmap_get(&f->blobs, &d);
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
            void *bv;
            for (size_t t = 0; at_dmap_next(&r->blobs, &t, &bv);) {
                const struct meta_blob *b = bv;
                if (at_map_get(&doomed, DKEY(&b->digest)) != NULL)
                    at_dmap_del(&r->blobs, &b->digest);
            }
        } else {
            const char *bk;
            void *bv;
            for (size_t t = 0; at_map_next(&doomed, &t, &bk, &bv);)
                at_dmap_del(&r->blobs, &((struct meta_blob *)bv)->digest);
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
        at_dmap_del(&f->blobs, &d);
        meta__blob_free(b);
        meta__gc_removed_push(f, &d, cutoff);
        f->gc_deleted_total++;
    }
    at_map_release(&doomed);
    return META_OK;
}
