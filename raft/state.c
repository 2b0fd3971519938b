/* The FSM's in-memory state: repositories, tags, manifests, blobs, request
 * ids, the sorted listings read from it, and the placement reads. */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include "raft/state.h"

/* see state.h */
void meta__repo_free(struct meta_repo *r)
{
    at_free(r->tags.slots);
    at_free(r->tagv);
    at_free(r->tag_names);
    at_dmap_release(&r->blobs);
    at_dmap_release(&r->manifests);
    at_free(r->order);
    at_free(r->name);
    at_free(r);
}

/* see state.h */
void meta__mf_free(struct meta_fsm *f, struct meta_mf *mf)
{
    meta__istr_put(f, mf->pub.media_type);
    meta__istr_put(f, mf->pub.artifact_type);
    if (mf->pub.bytes == NULL)
        meta_bodies_drop(&f->bodies, mf->pub.len);
    at_free(mf);
}

/* see state.h */
int meta__mf_body(const struct meta_fsm *f, const struct meta_mf *mf, void *buf)
{
    if (mf->pub.bytes != NULL) {
        memcpy(buf, mf->pub.bytes, mf->pub.len);
        return 0;
    }
    return meta_bodies_read(&f->bodies, mf->body_off, buf, mf->pub.len);
}

/* An interned string: its references, then its bytes. */
struct meta_istr {
    size_t refs;
    char s[];
};

/* see state.h */
const char *meta__istr_get(struct meta_fsm *f, const char *s)
{
    struct meta_istr *is = at_map_gets(&f->istrs, s);

    if (is == NULL) {
        size_t len = strlen(s);
        is = at_malloc(sizeof(*is) + len + 1);
        is->refs = 0;
        memcpy(is->s, s, len + 1);
        at_map_put(&f->istrs, s, len, is);
    }
    is->refs++;
    return is->s;
}

/* see state.h */
void meta__istr_put(struct meta_fsm *f, const char *s)
{
    struct meta_istr *is;

    if (s == NULL)
        return;
    is = AT_CONTAINER_OF(s, struct meta_istr, s);
    if (--is->refs > 0)
        return;
    at_map_del(&f->istrs, s, strlen(s));
    at_free(is);
}

/* see state.h */
struct meta_mf *meta__mf_new(struct meta_fsm *f,
                             const struct at_digest *d,
                             const void *bytes,
                             size_t len,
                             const char *media_type,
                             const char *artifact_type,
                             const char *annotations_json,
                             const struct at_digest *subject,
                             size_t nblobs,
                             size_t nchildren)
{
    size_t ndig = nblobs + nchildren + (subject != NULL ? 1 : 0);
    uint64_t off = 0;
    /* an empty body stays inline: it costs one byte, and no read */
    bool in_file =
        len > 0 && meta_bodies_put(&f->bodies, bytes, len, &off) == 0;
    size_t inline_len = in_file ? 0 : len + 1;
    /* annotations are read only by the referrers listing, which lists
     * manifests with a subject: the others' are in their body, not here */
    size_t ann_len = subject != NULL && annotations_json != NULL &&
                             annotations_json[0] != '\0'
                         ? strlen(annotations_json) + 1
                         : 0;
    struct meta_mf *mf = at_malloc(
        sizeof(*mf) + ndig * sizeof(struct at_digest) + inline_len + ann_len);
    uint8_t *body = (uint8_t *)(mf->tail + ndig);

    memset(mf, 0, sizeof(*mf));
    mf->pub.digest = *d;
    mf->pub.media_type = meta__istr_get(f, media_type);
    if (artifact_type != NULL && artifact_type[0] != '\0')
        mf->pub.artifact_type = meta__istr_get(f, artifact_type);
    if (ann_len > 0) {
        char *ann = (char *)body + inline_len;
        memcpy(ann, annotations_json, ann_len);
        mf->pub.annotations_json = ann;
    }
    if (subject != NULL) {
        mf->tail[nblobs + nchildren] = *subject;
        mf->pub.subject = &mf->tail[nblobs + nchildren];
    }
    if (in_file) {
        mf->body_off = off;
    } else {
        if (len > 0)
            memcpy(body, bytes, len);
        body[len] = '\0';
        mf->pub.bytes = body;
    }
    mf->pub.len = len;
    mf->nblobs = (uint32_t)nblobs;
    mf->nchildren = (uint32_t)nchildren;
    return mf;
}

/* see state.h */
void meta__blob_free(struct meta_blob *b)
{
    for (size_t i = 0; i < b->nstores; i++)
        at_free(b->stores[i]);
    at_free(b->stores);
    at_free(b);
}

/* see state.h */
struct meta_repo *meta__repo_get(struct meta_fsm *f,
                                 const char *name,
                                 bool create)
{
    struct meta_repo *r = at_map_gets(&f->repos, name);
    if (r != NULL || !create)
        return r;
    r = at_calloc(1, sizeof(*r));
    r->name = at_strdup(name);
    at_dmap_init(&r->blobs, META_BLOB_KEY);
    at_dmap_init(&r->manifests, META_MF_KEY);
    at_map_put(&f->repos, name, strlen(name), r);
    r->sorted_ok = true; /* no tag: in order (a restore clears it) */
    return r;
}

/* First position whose name is strictly after last, in a sorted array of
 * n items whose names name_at() gives. */
static size_t upper_bound(void *const *arr,
                          size_t n,
                          const char *last,
                          const char *(*name_at)(const void *))
{
    if (last == NULL)
        return 0;
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(name_at(arr[mid]), last) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static const char *repo_name(const void *p)
{
    return ((const struct meta_repo *)p)->name;
}

/* r got its first manifest, or lost its last: keep the catalog in order
 * (nothing to do until it is first sorted). */
static void catalog_enter(struct meta_fsm *f, struct meta_repo *r)
{
    if (!f->sorted_repos_ok)
        return;
    if (f->nsorted_repos == f->sorted_repos_cap) {
        f->sorted_repos_cap =
            f->sorted_repos_cap ? f->sorted_repos_cap * 2 : 16;
        f->sorted_repos = at_realloc(
            f->sorted_repos, f->sorted_repos_cap * sizeof(*f->sorted_repos));
    }
    /* not in the catalog yet: after every name before its own */
    size_t pos = upper_bound((void *const *)f->sorted_repos, f->nsorted_repos,
                             r->name, repo_name);
    memmove(&f->sorted_repos[pos + 1], &f->sorted_repos[pos],
            (f->nsorted_repos - pos) * sizeof(*f->sorted_repos));
    f->sorted_repos[pos] = r;
    f->nsorted_repos++;
}

static void catalog_leave(struct meta_fsm *f, struct meta_repo *r)
{
    if (!f->sorted_repos_ok)
        return;
    /* in the catalog: just before the first name after its own */
    size_t pos = upper_bound((void *const *)f->sorted_repos, f->nsorted_repos,
                             r->name, repo_name) -
                 1;
    AT_ASSERT(pos < f->nsorted_repos && f->sorted_repos[pos] == r);
    memmove(&f->sorted_repos[pos], &f->sorted_repos[pos + 1],
            (f->nsorted_repos - pos - 1) * sizeof(*f->sorted_repos));
    f->nsorted_repos--;
}

/* see state.h: a repository exists while it has a link, manifest or tag */
void meta__repo_maybe_drop(struct meta_fsm *f, struct meta_repo *r)
{
    if (r->tags.len != 0 || r->blobs.len != 0 || r->manifests.len != 0)
        return;
    at_map_del(&f->repos, r->name, strlen(r->name));
    meta__repo_free(r); /* not in the catalog: it holds no manifest */
}

/* see state.h */
void meta__repo_link_manifest(struct meta_fsm *f,
                              struct meta_repo *r,
                              struct meta_mf *mf)
{
    if (at_dmap_get(&r->manifests, &mf->pub.digest) != NULL)
        return;
    at_dmap_put(&r->manifests, mf);
    mf->refs++;
    if (r->manifests.len == 1)
        catalog_enter(f, r);
}

/* see state.h: also frees the manifest when no repository holds it */
void meta__repo_unlink_manifest(struct meta_fsm *f,
                                struct meta_repo *r,
                                struct meta_mf *mf)
{
    if (at_dmap_del(&r->manifests, &mf->pub.digest) == NULL)
        return;
    if (r->manifests.len == 0)
        catalog_leave(f, r);
    AT_ASSERT(mf->refs > 0);
    if (--mf->refs == 0) {
        meta__mf_blob_refs(f, mf, -1);
        at_dmap_del(&f->manifests, &mf->pub.digest);
        meta__mf_free(f, mf);
    }
}

/* ---- the tag index ---- */

#define TIDX_TOMB UINT64_MAX

static uint32_t tidx_hash(const char *tag, size_t len)
{
    return (uint32_t)(at_hash_bytes(tag, len) >> 32);
}

/* The slot holding tag, or NULL. */
static uint64_t *tidx_find(const struct meta_repo *r,
                           const char *tag,
                           size_t len)
{
    const struct meta_tag_index *x = &r->tags;
    uint32_t h = tidx_hash(tag, len);
    size_t mask;

    if (x->cap == 0)
        return NULL;
    mask = x->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        uint64_t s = x->slots[i];
        if (s == 0)
            return NULL;
        if (s != TIDX_TOMB && (uint32_t)(s >> 32) == h) {
            const struct meta_tag *t = &r->tagv[(uint32_t)s - 1];
            if (t->len == len && memcmp(r->tag_names + t->name, tag, len) == 0)
                return &x->slots[i];
        }
    }
}

static void tidx_place(struct meta_tag_index *x, uint64_t s)
{
    size_t mask = x->cap - 1;
    size_t i = (size_t)(s >> 32) & mask;

    while (x->slots[i] != 0 && x->slots[i] != TIDX_TOMB)
        i = (i + 1) & mask;
    if (x->slots[i] == 0)
        x->used++;
    x->slots[i] = s;
}

/* Add a tag not in the index, at index i of tagv. */
static void tidx_add(struct meta_repo *r, const char *tag, size_t len, size_t i)
{
    struct meta_tag_index *x = &r->tags;

    if ((x->used + 1) * 4 > x->cap * 3) {
        uint64_t *old = x->slots;
        size_t oldcap = x->cap;
        size_t cap = oldcap == 0 ? 16 : oldcap;
        if (x->len * 2 >= cap)
            cap *= 2; /* else: rehash in place of tombstones */
        x->slots = at_calloc(cap, sizeof(*x->slots));
        x->cap = cap;
        x->used = 0;
        for (size_t k = 0; k < oldcap; k++)
            if (old[k] != 0 && old[k] != TIDX_TOMB)
                tidx_place(x, old[k]);
        at_free(old);
    }
    tidx_place(x, (uint64_t)tidx_hash(tag, len) << 32 | (uint64_t)(i + 1));
    x->len++;
}

/* Index of tag in r->tagv, or SIZE_MAX. */
static size_t tag_index(const struct meta_repo *r, const char *tag)
{
    uint64_t *s = tidx_find(r, tag, strlen(tag));
    return s != NULL ? (size_t)(uint32_t)*s - 1 : SIZE_MAX;
}

/* see state.h */
bool meta__tag_exists(const struct meta_repo *r, const char *tag)
{
    return tag_index(r, tag) != SIZE_MAX;
}

/* Drop the holes of deleted names once they are half the arena. */
static void names_maybe_compact(struct meta_repo *r)
{
    if (r->names_dead < 4096 || r->names_dead < r->names_len / 2)
        return;
    char *names = at_malloc(r->names_len - r->names_dead + 1);
    size_t pos = 0;
    for (size_t i = 0; i < r->ntagv; i++) {
        struct meta_tag *t = &r->tagv[i];
        memcpy(names + pos, r->tag_names + t->name, t->len + 1);
        t->name = (uint32_t)pos;
        pos += t->len + 1;
    }
    at_free(r->tag_names);
    r->tag_names = names;
    r->names_len = pos;
    r->names_cap = pos + 1;
    r->names_dead = 0;
}

/* First position in r->order whose tag name is >= name. */
static size_t order_lower(const struct meta_repo *r, const char *name)
{
    size_t lo = 0, hi = r->ntagv;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(meta__tag_name(r, r->order[mid]), name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The tag just appended at tagv[ntagv - 1] takes its place in order. */
static void order_insert(struct meta_repo *r)
{
    size_t i = r->ntagv - 1;
    if (!r->sorted_ok)
        return;
    if (r->ntagv > r->order_cap) {
        r->order_cap = r->order_cap ? r->order_cap * 2 : 16;
        r->order = at_realloc(r->order, r->order_cap * sizeof(*r->order));
    }
    r->ntagv--; /* search the others */
    size_t pos = order_lower(r, meta__tag_name(r, i));
    r->ntagv++;
    memmove(&r->order[pos + 1], &r->order[pos], (i - pos) * sizeof(*r->order));
    r->order[pos] = (uint32_t)i;
}

/* Where tag index i sits in order. */
static size_t order_find(const struct meta_repo *r, size_t i)
{
    size_t pos = order_lower(r, meta__tag_name(r, i));
    AT_ASSERT(pos < r->ntagv && r->order[pos] == i);
    return pos;
}

/* see state.h */
void meta__tag_set(struct meta_fsm *f,
                   struct meta_repo *r,
                   const char *tag,
                   const struct at_digest *d)
{
    size_t i = tag_index(r, tag);
    if (i != SIZE_MAX) {
        r->tagv[i].digest = *d;
        return;
    }
    size_t len = strlen(tag);
    /* 32-bit offsets: ~30M tags of 128 bytes in one repository, more
     * than any node's memory holds */
    AT_ASSERT(r->names_len + len + 1 < UINT32_MAX);
    if (r->names_len + len + 1 > r->names_cap) {
        size_t cap = r->names_cap ? r->names_cap * 2 : 256;
        while (cap < r->names_len + len + 1)
            cap *= 2;
        r->tag_names = at_realloc(r->tag_names, cap);
        r->names_cap = cap;
    }
    if (r->ntagv == r->tagv_cap) {
        r->tagv_cap = r->tagv_cap ? r->tagv_cap * 2 : 16;
        r->tagv = at_realloc(r->tagv, r->tagv_cap * sizeof(*r->tagv));
    }
    struct meta_tag *t = &r->tagv[r->ntagv];
    t->name = (uint32_t)r->names_len;
    t->len = (uint32_t)len;
    t->digest = *d;
    memcpy(r->tag_names + r->names_len, tag, len + 1);
    r->names_len += len + 1;
    tidx_add(r, tag, len, r->ntagv);
    r->ntagv++;
    order_insert(r);
    f->ntags++;
}

/* see state.h */
bool meta__tag_del(struct meta_fsm *f, struct meta_repo *r, const char *tag)
{
    size_t i = tag_index(r, tag);
    if (i == SIZE_MAX)
        return false;
    *tidx_find(r, tag, strlen(tag)) = TIDX_TOMB;
    r->tags.len--;
    r->names_dead += r->tagv[i].len + 1;
    size_t last = r->ntagv - 1;
    if (r->sorted_ok) {
        /* out of order; the last tag's entry follows it into the hole */
        size_t pos = order_find(r, i);
        size_t lpos = i != last ? order_find(r, last) : SIZE_MAX;
        if (lpos != SIZE_MAX)
            r->order[lpos] = (uint32_t)i;
        memmove(&r->order[pos], &r->order[pos + 1],
                (last - pos) * sizeof(*r->order));
    }
    if (i != last) {
        /* the last tag moves into the hole: its slot follows */
        uint64_t *s = tidx_find(r, meta__tag_name(r, last), r->tagv[last].len);
        *s = (*s & ~(uint64_t)UINT32_MAX) | (uint64_t)(i + 1);
        r->tagv[i] = r->tagv[last];
    }
    r->ntagv--;
    f->ntags--;
    names_maybe_compact(r);
    return true;
}

/* see state.h */
void meta__mf_blob_refs(struct meta_fsm *f, const struct meta_mf *mf, int delta)
{
    for (size_t i = 0; i < mf->nblobs; i++) {
        struct meta_blob *b = at_dmap_get(&f->blobs, &meta__mf_blobs(mf)[i]);
        if (b == NULL)
            continue;
        if (delta > 0)
            b->mrefs++;
        else if (b->mrefs > 0)
            b->mrefs--;
    }
}

/* see state.h */
struct meta_blob *meta__blob_get(struct meta_fsm *f,
                                 const struct at_digest *d,
                                 uint64_t size,
                                 bool create)
{
    struct meta_blob *b = at_dmap_get(&f->blobs, d);
    if (b != NULL || !create)
        return b;
    b = at_calloc(1, sizeof(*b));
    b->digest = *d;
    b->size = size;
    at_dmap_put(&f->blobs, b);
    return b;
}

/* see state.h */
void meta__blob_add_store(struct meta_blob *b, const char *store)
{
    if (store == NULL || store[0] == '\0')
        return;
    for (size_t i = 0; i < b->nstores; i++) {
        if (strcmp(b->stores[i], store) == 0)
            return;
    }
    b->stores = at_realloc(b->stores, (b->nstores + 1) * sizeof(*b->stores));
    b->stores[b->nstores++] = at_strdup(store);
}

/* see state.h: FIFO-bounded; the oldest id is forgotten first */
void meta__req_remember(struct meta_fsm *f,
                        const char *id,
                        int result,
                        uint64_t index)
{
    size_t len = id != NULL ? strlen(id) : 0;
    /* longer ids never pass command validation: nothing to remember */
    if (len == 0 || len > META_REQUEST_ID_MAX ||
        at_map_get(&f->reqs, id, len) != NULL)
        return;
    if (f->ring_len == f->ring_cap) {
        struct meta_req *old = &f->ring[f->ring_head];
        at_map_del(&f->reqs, old->id, strlen(old->id));
        f->ring_head = (f->ring_head + 1) % f->ring_cap;
        f->ring_len--;
    }
    struct meta_req *q = &f->ring[(f->ring_head + f->ring_len) % f->ring_cap];
    memcpy(q->id, id, len + 1);
    q->result = result;
    q->index = index;
    f->ring_len++;
    at_map_put(&f->reqs, id, len, q);
}

/* ---- reads ---- */

/* see state.h */
bool meta_fsm_repo_exists(struct meta_fsm *f, const char *repo)
{
    return meta__repo_get(f, repo, false) != NULL;
}

/* see state.h */
int meta_fsm_tag_resolve(struct meta_fsm *f,
                         const char *repo,
                         const char *tag,
                         struct at_digest *out)
{
    struct meta_repo *r = meta__repo_get(f, repo, false);
    size_t i = r != NULL ? tag_index(r, tag) : SIZE_MAX;
    if (i == SIZE_MAX)
        return AT_ENOTFOUND;
    *out = r->tagv[i].digest;
    return 0;
}

/* see state.h */
const struct meta_manifest *meta_fsm_manifest_find(struct meta_fsm *f,
                                                   const char *repo,
                                                   const struct at_digest *d)
{
    struct meta_repo *r = meta__repo_get(f, repo, false);
    struct meta_mf *mf = r != NULL ? at_dmap_get(&r->manifests, d) : NULL;
    return mf != NULL ? &mf->pub : NULL;
}

/* see state.h */
bool meta_fsm_blob_linked(struct meta_fsm *f,
                          const char *repo,
                          const struct at_digest *d,
                          uint64_t *size)
{
    struct meta_repo *r = meta__repo_get(f, repo, false);
    struct meta_blob *b = r != NULL ? at_dmap_get(&r->blobs, d) : NULL;
    if (b != NULL && size != NULL)
        *size = b->size;
    return b != NULL;
}

/* see state.h */
bool meta_fsm_blob_used(struct meta_fsm *f,
                        const char *repo,
                        const struct at_digest *d,
                        struct at_digest *by)
{
    struct meta_repo *r = meta__repo_get(f, repo, false);
    void *v;
    if (r == NULL)
        return false;
    for (size_t i = 0; at_dmap_next(&r->manifests, &i, &v);) {
        const struct meta_mf *mf = v;
        for (size_t j = 0; j < mf->nblobs; j++) {
            if (at_digest_equal(&meta__mf_blobs(mf)[j], d)) {
                if (by != NULL)
                    *by = mf->pub.digest;
                return true;
            }
        }
    }
    return false;
}

/* see state.h */
const char *meta_fsm_blob_source(struct meta_fsm *f,
                                 const struct at_digest *d,
                                 bool (*ok)(void *data, const char *repo),
                                 void *data)
{
    const char *k;
    void *v;
    size_t asked = 0;
    if (meta__blob_get(f, d, 0, false) == NULL)
        return NULL; /* in no repository: no walk */
    for (size_t i = 0; at_map_next(&f->repos, &i, &k, &v);) {
        struct meta_repo *r = v;
        if (at_dmap_get(&r->blobs, d) == NULL)
            continue;
        if (ok(data, r->name))
            return r->name;
        if (++asked == META_BLOB_SOURCE_ASKS)
            break;
    }
    return NULL;
}

/* see state.h */
bool meta_fsm_blob_known(struct meta_fsm *f,
                         const struct at_digest *d,
                         uint64_t *size)
{
    struct meta_blob *b = meta__blob_get(f, d, 0, false);
    if (b == NULL || b->nstores == 0)
        return false;
    if (size != NULL)
        *size = b->size;
    return true;
}

static int repo_cmp(const void *a, const void *b)
{
    const struct meta_repo *x = *(const struct meta_repo *const *)a;
    const struct meta_repo *y = *(const struct meta_repo *const *)b;
    return strcmp(x->name, y->name);
}

static int order_cmp(const void *a, const void *b, void *repo)
{
    const struct meta_repo *r = repo;
    return strcmp(meta__tag_name(r, *(const uint32_t *)a),
                  meta__tag_name(r, *(const uint32_t *)b));
}

/* Sort r's tags once (after a restore); writes keep them in order. */
static void repo_sort_tags(struct meta_repo *r)
{
    if (r->sorted_ok)
        return;
    if (r->ntagv > r->order_cap) {
        r->order_cap = r->ntagv;
        r->order = at_realloc(r->order, r->order_cap * sizeof(*r->order));
    }
    for (size_t i = 0; i < r->ntagv; i++)
        r->order[i] = (uint32_t)i;
    qsort_r(r->order, r->ntagv, sizeof(*r->order), order_cmp, r);
    r->sorted_ok = true;
}

static void fsm_sort_repos(struct meta_fsm *f)
{
    if (f->sorted_repos_ok)
        return;
    f->sorted_repos_cap = f->repos.len + 1;
    f->sorted_repos = at_realloc(
        f->sorted_repos, f->sorted_repos_cap * sizeof(*f->sorted_repos));
    f->nsorted_repos = 0;
    const char *k;
    void *v;
    for (size_t i = 0; at_map_next(&f->repos, &i, &k, &v);) {
        /* the catalog names repositories with a manifest: blobs alone
         * (a push under way, or all manifests deleted) are not listed */
        if (((struct meta_repo *)v)->manifests.len > 0)
            f->sorted_repos[f->nsorted_repos++] = v;
    }
    qsort(f->sorted_repos, f->nsorted_repos, sizeof(*f->sorted_repos),
          repo_cmp);
    f->sorted_repos_ok = true;
}

/* see state.h */
int meta_fsm_tags_list(struct meta_fsm *f,
                       const char *repo,
                       const char *last,
                       size_t limit,
                       meta_name_cb each,
                       void *data,
                       bool *more)
{
    struct meta_repo *r = meta__repo_get(f, repo, false);
    if (more != NULL)
        *more = false;
    if (r == NULL)
        return AT_ENOTFOUND;
    repo_sort_tags(r);
    size_t n = r->ntagv, i = 0;
    if (last != NULL) {
        size_t hi = n;
        while (i < hi) {
            size_t mid = i + (hi - i) / 2;
            if (strcmp(meta__tag_name(r, r->order[mid]), last) <= 0)
                i = mid + 1;
            else
                hi = mid;
        }
    }
    size_t end = limit < n - i ? i + limit : n;
    for (; i < end; i++)
        each(data, meta__tag_name(r, r->order[i]));
    if (more != NULL)
        *more = end < n;
    return 0;
}

/* see state.h */
void meta_fsm_catalog_list(struct meta_fsm *f,
                           const char *last,
                           size_t limit,
                           meta_name_cb each,
                           void *data,
                           bool *more)
{
    fsm_sort_repos(f);
    size_t n = f->nsorted_repos;
    size_t i = upper_bound((void *const *)f->sorted_repos, n, last, repo_name);
    size_t end = limit < n - i ? i + limit : n;
    for (; i < end; i++)
        each(data, f->sorted_repos[i]->name);
    if (more != NULL)
        *more = end < n;
}

static int mf_cmp(const void *a, const void *b)
{
    const struct meta_mf *x = *(const struct meta_mf *const *)a;
    const struct meta_mf *y = *(const struct meta_mf *const *)b;
    return memcmp(x->pub.digest.bytes, y->pub.digest.bytes, AT_DIGEST_LEN);
}

/* see state.h. NEEDSWORK: scans the repo's manifests; index by subject
 * if repositories with many thousands of manifests show up. */
void meta_fsm_referrers(struct meta_fsm *f,
                        const char *repo,
                        const struct at_digest *subject,
                        meta_manifest_cb each,
                        void *data)
{
    struct meta_repo *r = meta__repo_get(f, repo, false);
    if (r == NULL)
        return;
    struct meta_mf **hits = NULL;
    size_t n = 0;
    void *v;
    for (size_t i = 0; at_dmap_next(&r->manifests, &i, &v);) {
        struct meta_mf *mf = v;
        if (mf->pub.subject != NULL &&
            at_digest_equal(mf->pub.subject, subject)) {
            hits = at_realloc(hits, (n + 1) * sizeof(*hits));
            hits[n++] = mf;
        }
    }
    if (n > 1)
        qsort(hits, n, sizeof(*hits), mf_cmp);
    for (size_t i = 0; i < n; i++)
        each(data, &hits[i]->pub);
    at_free(hits);
}

/* ---- placement ---- */

/* see state.h */
void meta__manifest_blobs(struct meta_fsm *f,
                          const char *repo,
                          const struct at_digest *d,
                          void (*each)(void *data,
                                       const struct at_digest *blob,
                                       uint64_t size),
                          void *data)
{
    struct meta_repo *r = meta__repo_get(f, repo, false);
    struct meta_mf *mf = r != NULL ? at_dmap_get(&r->manifests, d) : NULL;
    if (mf == NULL)
        return;
    for (size_t i = 0; i < mf->nblobs; i++) {
        struct meta_blob *b = at_dmap_get(&f->blobs, &meta__mf_blobs(mf)[i]);
        if (b != NULL)
            each(data, &b->digest, b->size);
    }
    /* an index: its children's blobs (children are never indexes here
     * deeper than one level in practice; deeper ones are left to lazy
     * fetch) */
    for (size_t c = 0; c < mf->nchildren; c++) {
        struct meta_mf *ch =
            at_dmap_get(&r->manifests, &meta__mf_children(mf)[c]);
        for (size_t i = 0; ch != NULL && i < ch->nblobs; i++) {
            struct meta_blob *b =
                at_dmap_get(&f->blobs, &meta__mf_blobs(ch)[i]);
            if (b != NULL)
                each(data, &b->digest, b->size);
        }
    }
}

/* see state.h */
bool meta__blob_held_by(struct meta_fsm *f,
                        const struct at_digest *d,
                        const char *store)
{
    struct meta_blob *b = at_dmap_get(&f->blobs, d);
    for (size_t i = 0; b != NULL && i < b->nstores; i++) {
        if (strcmp(b->stores[i], store) == 0)
            return true;
    }
    return false;
}
