/* Whole-state snapshots of the FSM: encode to one buffer, restore from one.
 *
 * Encoding builds protobuf-c structs that borrow the live state (no copies of
 * manifest bytes), packs them into one buffer, then frees the structs.
 * Restore decodes into a fresh FSM, checks every cross reference (a repo's
 * manifest, blob link or tag must exist), and only then swaps it in, so a
 * corrupt snapshot leaves the current state untouched. */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include "raft/internal.h"

#define DKEY(d) ((d)->bytes), AT_DIGEST_LEN

static ProtobufCBinaryData bin(const struct at_digest *d)
{
    ProtobufCBinaryData b = { AT_DIGEST_LEN, (uint8_t *)d->bytes };
    return b;
}

static void encode_repo(Atoll__SnapRepo *sr, const struct meta_repo *r)
{
    const char *k;
    void *v;
    *sr = (Atoll__SnapRepo)ATOLL__SNAP_REPO__INIT;
    sr->name = r->name;
    sr->tags = at_calloc(r->tags.len + 1, sizeof(*sr->tags));
    for (size_t i = 0; at_map_next(&r->tags, &i, &k, &v);) {
        const struct meta_tag *t = v;
        Atoll__SnapTag *st = at_malloc(sizeof(*st));
        *st = (Atoll__SnapTag)ATOLL__SNAP_TAG__INIT;
        st->name = t->name;
        st->digest = bin(&t->digest);
        sr->tags[sr->n_tags++] = st;
    }
    sr->blobs = at_calloc(r->blobs.len + 1, sizeof(*sr->blobs));
    for (size_t i = 0; at_map_next(&r->blobs, &i, &k, &v);)
        sr->blobs[sr->n_blobs++] = bin(&((struct meta_blob *)v)->digest);
    sr->manifests = at_calloc(r->manifests.len + 1, sizeof(*sr->manifests));
    for (size_t i = 0; at_map_next(&r->manifests, &i, &k, &v);)
        sr->manifests[sr->n_manifests++] =
            bin(&((struct meta_mf *)v)->pub.digest);
}

static void free_repo(Atoll__SnapRepo *sr)
{
    for (size_t i = 0; i < sr->n_tags; i++)
        at_free(sr->tags[i]);
    at_free(sr->tags);
    at_free(sr->blobs);
    at_free(sr->manifests);
}

static ProtobufCBinaryData *bins(const struct at_digest *d, size_t n)
{
    ProtobufCBinaryData *b = at_calloc(n + 1, sizeof(*b));
    for (size_t i = 0; i < n; i++)
        b[i] = bin(&d[i]);
    return b;
}

static void encode_mf(Atoll__SnapManifest *sm, const struct meta_mf *mf)
{
    *sm = (Atoll__SnapManifest)ATOLL__SNAP_MANIFEST__INIT;
    sm->digest = bin(&mf->pub.digest);
    sm->media_type = mf->media_type;
    sm->bytes.data = mf->bytes;
    sm->bytes.len = mf->pub.len;
    sm->n_blobs = mf->nblobs;
    sm->blobs = bins(mf->blobs, mf->nblobs);
    sm->n_manifests = mf->nchildren;
    sm->manifests = bins(mf->children, mf->nchildren);
    if (mf->pub.has_subject)
        sm->subject = bin(&mf->pub.subject);
    if (mf->artifact_type != NULL) {
        sm->artifact_type = mf->artifact_type;
        sm->has_artifact_type = true;
    }
    if (mf->annotations_json != NULL) {
        sm->annotations_json = mf->annotations_json;
        sm->has_annotations = true;
    }
}

/* see internal.h */
int meta_fsm_snapshot(const struct meta_fsm *f,
                      proto_alloc_fn alloc,
                      void **out,
                      size_t *len,
                      char *errmsg)
{
    Atoll__Snapshot s = ATOLL__SNAPSHOT__INIT;
    const char *k;
    void *v;
    s.version = PROTO_SNAPSHOT_VERSION;
    s.applied_index = f->applied_index;
    s.applied_count = f->applied_count;
    s.hash = f->hash;

    Atoll__SnapRepo *repos = at_calloc(f->repos.len + 1, sizeof(*repos));
    s.repos = at_calloc(f->repos.len + 1, sizeof(*s.repos));
    for (size_t i = 0; at_map_next(&f->repos, &i, &k, &v);) {
        encode_repo(&repos[s.n_repos], v);
        s.repos[s.n_repos] = &repos[s.n_repos];
        s.n_repos++;
    }
    Atoll__SnapManifest *mfs = at_calloc(f->manifests.len + 1, sizeof(*mfs));
    s.manifests = at_calloc(f->manifests.len + 1, sizeof(*s.manifests));
    for (size_t i = 0; at_map_next(&f->manifests, &i, &k, &v);) {
        encode_mf(&mfs[s.n_manifests], v);
        s.manifests[s.n_manifests] = &mfs[s.n_manifests];
        s.n_manifests++;
    }
    Atoll__SnapBlob *blobs = at_calloc(f->blobs.len + 1, sizeof(*blobs));
    s.blobs = at_calloc(f->blobs.len + 1, sizeof(*s.blobs));
    for (size_t i = 0; at_map_next(&f->blobs, &i, &k, &v);) {
        const struct meta_blob *b = v;
        Atoll__SnapBlob *sb = &blobs[s.n_blobs];
        *sb = (Atoll__SnapBlob)ATOLL__SNAP_BLOB__INIT;
        sb->digest = bin(&b->digest);
        sb->size = b->size;
        sb->n_stores = b->nstores;
        sb->stores = b->stores;
        s.blobs[s.n_blobs++] = sb;
    }
    Atoll__SnapRequest *reqs = at_calloc(f->ring_len + 1, sizeof(*reqs));
    s.requests = at_calloc(f->ring_len + 1, sizeof(*s.requests));
    for (size_t i = 0; i < f->ring_len; i++) {
        const struct meta_req *q = f->ring[(f->ring_head + i) % f->ring_cap];
        Atoll__SnapRequest *sq = &reqs[i];
        *sq = (Atoll__SnapRequest)ATOLL__SNAP_REQUEST__INIT;
        sq->id = q->id;
        sq->result = q->result;
        sq->index = q->index;
        s.requests[s.n_requests++] = sq;
    }

    s.nodes = meta__nodes_encode(f, &s.n_nodes);

    int rv = proto_snapshot_pack(&s, alloc, out, len, errmsg);

    meta__nodes_encode_free(s.nodes, s.n_nodes);
    for (size_t i = 0; i < s.n_repos; i++)
        free_repo(&repos[i]);
    for (size_t i = 0; i < s.n_manifests; i++) {
        at_free(mfs[i].blobs);
        at_free(mfs[i].manifests);
    }
    at_free(repos);
    at_free(s.repos);
    at_free(mfs);
    at_free(s.manifests);
    at_free(blobs);
    at_free(s.blobs);
    at_free(reqs);
    at_free(s.requests);
    return rv;
}

static void digest_from(struct at_digest *d, ProtobufCBinaryData b)
{
    AT_ASSERT(b.len == AT_DIGEST_LEN); /* checked by proto_snapshot_unpack */
    memcpy(d->bytes, b.data, AT_DIGEST_LEN);
}

static int restore_into(struct meta_fsm *f,
                        const Atoll__Snapshot *s,
                        char *errmsg)
{
    struct at_digest d;
    f->applied_index = s->applied_index;
    f->applied_count = s->applied_count;
    f->hash = s->hash;
    for (size_t i = 0; i < s->n_blobs; i++) {
        const Atoll__SnapBlob *sb = s->blobs[i];
        digest_from(&d, sb->digest);
        if (meta__blob_get(f, &d, 0, false) != NULL)
            goto dup;
        struct meta_blob *b = meta__blob_get(f, &d, sb->size, true);
        for (size_t j = 0; j < sb->n_stores; j++)
            meta__blob_add_store(b, sb->stores[j]);
    }
    for (size_t i = 0; i < s->n_manifests; i++) {
        const Atoll__SnapManifest *sm = s->manifests[i];
        digest_from(&d, sm->digest);
        if (at_map_get(&f->manifests, DKEY(&d)) != NULL)
            goto dup;
        struct meta_mf *mf = at_calloc(1, sizeof(*mf));
        mf->pub.digest = d;
        mf->pub.len = sm->bytes.len;
        mf->bytes = at_memdup(sm->bytes.len ? sm->bytes.data : (void *)"",
                              sm->bytes.len ? sm->bytes.len : 1);
        mf->media_type = at_strdup(sm->media_type);
        if (sm->has_artifact_type)
            mf->artifact_type = at_strdup(sm->artifact_type);
        if (sm->has_annotations)
            mf->annotations_json = at_strdup(sm->annotations_json);
        if (sm->subject.len != 0) {
            mf->pub.has_subject = true;
            digest_from(&mf->pub.subject, sm->subject);
        }
        mf->nblobs = sm->n_blobs;
        mf->blobs = at_calloc(sm->n_blobs + 1, sizeof(*mf->blobs));
        for (size_t j = 0; j < sm->n_blobs; j++)
            digest_from(&mf->blobs[j], sm->blobs[j]);
        mf->nchildren = sm->n_manifests;
        mf->children = at_calloc(sm->n_manifests + 1, sizeof(*mf->children));
        for (size_t j = 0; j < sm->n_manifests; j++)
            digest_from(&mf->children[j], sm->manifests[j]);
        meta__mf_publish(mf);
        at_map_put(&f->manifests, DKEY(&d), mf);
    }
    for (size_t i = 0; i < s->n_repos; i++) {
        const Atoll__SnapRepo *sr = s->repos[i];
        if (meta__repo_get(f, sr->name, false) != NULL)
            goto dup;
        struct meta_repo *r = meta__repo_get(f, sr->name, true);
        for (size_t j = 0; j < sr->n_blobs; j++) {
            digest_from(&d, sr->blobs[j]);
            struct meta_blob *b = meta__blob_get(f, &d, 0, false);
            if (b == NULL)
                goto dangling;
            at_map_put(&r->blobs, DKEY(&d), b);
        }
        for (size_t j = 0; j < sr->n_manifests; j++) {
            digest_from(&d, sr->manifests[j]);
            struct meta_mf *mf = at_map_get(&f->manifests, DKEY(&d));
            if (mf == NULL)
                goto dangling;
            meta__repo_link_manifest(r, mf);
        }
        for (size_t j = 0; j < sr->n_tags; j++) {
            const Atoll__SnapTag *st = sr->tags[j];
            digest_from(&d, st->digest);
            if (at_map_get(&r->manifests, DKEY(&d)) == NULL)
                goto dangling;
            if (at_map_gets(&r->tags, st->name) != NULL)
                goto dup;
            meta__tag_set(f, r, st->name, &d);
        }
        if (r->tags.len == 0 && r->blobs.len == 0 && r->manifests.len == 0)
            goto dangling;
    }
    /* manifests no repository holds are dropped (never written that way) */
    const char *k;
    void *v;
    for (size_t i = 0; at_map_next(&f->manifests, &i, &k, &v);) {
        struct meta_mf *mf = v;
        if (mf->refs == 0) {
            at_map_del(&f->manifests, DKEY(&mf->pub.digest));
            meta__mf_free(mf);
        }
    }
    for (size_t i = 0; i < s->n_requests; i++) {
        const Atoll__SnapRequest *q = s->requests[i];
        meta__req_remember(f, q->id, q->result, q->index);
    }
    for (size_t i = 0; i < s->n_nodes; i++) {
        const Atoll__NodeUpsert *sn = s->nodes[i];
        if (meta__node_find(f, sn->id) != NULL ||
            meta__node_upsert(f, sn) != META_OK)
            goto dup;
    }
    return 0;
dup:
    at_errmsg_printf(errmsg, "snapshot: duplicate record");
    return AT_ECORRUPT;
dangling:
    at_errmsg_printf(errmsg, "snapshot: dangling reference");
    return AT_ECORRUPT;
}

/* see internal.h */
int meta_fsm_restore(struct meta_fsm *f,
                     const void *buf,
                     size_t len,
                     char *errmsg)
{
    Atoll__Snapshot *s = NULL;
    int rv = proto_snapshot_unpack(buf, len, &s, errmsg);
    if (rv != 0)
        return rv;
    struct meta_fsm fresh;
    meta_fsm_init(&fresh, f->ring_cap);
    rv = restore_into(&fresh, s, errmsg);
    proto_snapshot_free(s);
    if (rv != 0) {
        meta_fsm_release(&fresh);
        return rv;
    }
    meta_fsm_release(f);
    *f = fresh;
    return 0;
}
