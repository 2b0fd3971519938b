/* The FSM as a whole: set up and release it, apply one command (decode it
 * and change the state deterministically), swap in a restored snapshot. */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include "raft/fsm.h"

#include "raft/events.h"
#include "raft/gc.h"
#include "raft/nodes.h"
#include "raft/policy.h"
#include "raft/settings.h"
#include "raft/snapshot.h"
#include "raft/token_keys.h"
#include "raft/users.h"

/* see fsm.h */
void meta_fsm_init(struct meta_fsm *f, size_t requests_max)
{
    memset(f, 0, sizeof(*f));
    at_map_init(&f->nodes);
    at_map_init(&f->repos);
    at_map_init(&f->istrs);
    at_dmap_init(&f->manifests, META_MF_KEY);
    at_dmap_init(&f->blobs, META_BLOB_KEY);
    at_map_init(&f->reqs);
    at_map_init(&f->settings);
    at_map_init(&f->users);
    at_map_init(&f->robots);
    f->ring_cap = requests_max > 0 ? requests_max : 1;
    f->ring = at_calloc(f->ring_cap, sizeof(*f->ring));
    meta_bodies_init(&f->bodies);
}

/* see fsm.h */
int meta_fsm_bodies_open(struct meta_fsm *f, const char *dir, char *errmsg)
{
    AT_ASSERT(f->manifests.len == 0 && f->bodies.fd < 0);
    at_free(f->bodies_dir);
    f->bodies_dir = at_strdup(dir);
    return meta_bodies_open(&f->bodies, dir, errmsg);
}

/* see fsm.h */
void meta_fsm_release(struct meta_fsm *f)
{
    const char *k;
    void *v;
    for (size_t i = 0; at_map_next(&f->repos, &i, &k, &v);)
        meta__repo_free(v);
    for (size_t i = 0; at_dmap_next(&f->manifests, &i, &v);)
        meta__mf_free(f, v);
    for (size_t i = 0; at_dmap_next(&f->blobs, &i, &v);)
        meta__blob_free(v);
    meta__nodes_release(f);
    meta_snap_job_free(f->snap_spare);
    at_map_release(&f->repos);
    AT_ASSERT(f->istrs.len == 0);
    at_map_release(&f->istrs);
    at_dmap_release(&f->manifests);
    at_dmap_release(&f->blobs);
    at_map_release(&f->reqs);
    at_free(f->ring);
    at_free(f->sorted_repos);
    at_free(f->gc_removed);
    meta__settings_release(f);
    meta__accounts_release(f);
    meta__token_keys_release(f);
    meta__policy_release(f);
    meta_pushes_free(f->pushes, f->npushes);
    meta__events_release(f);
    meta_bodies_close(&f->bodies);
    at_free(f->bodies_dir);
    memset(f, 0, sizeof(*f));
    f->bodies.fd = -1;
}

/* see meta.h */
const char *meta_result_str(int result)
{
    switch (result) {
    case META_OK:
        return "ok";
    case META_BLOB_UNKNOWN:
        return "blob unknown";
    case META_MANIFEST_UNKNOWN:
        return "manifest unknown";
    case META_TAG_UNKNOWN:
        return "tag unknown";
    case META_NAME_UNKNOWN:
        return "repository unknown";
    case META_BLOB_NOT_LINKED:
        return "blob not linked";
    case META_NODE_CONFLICT:
        return "node name taken by another id";
    case META_NODE_UNKNOWN:
        return "node unknown";
    case META_ACCOUNT_EXISTS:
        return "account exists";
    case META_ACCOUNT_UNKNOWN:
        return "account unknown";
    case META_TAG_CONFLICT:
        return "tag points elsewhere";
    case META_ACCOUNT_LIMIT:
        return "too many accounts";
    case META_INVALID:
        return "invalid command";
    default:
        return "unknown result";
    }
}

static void digest_from(struct at_digest *d, ProtobufCBinaryData b)
{
    AT_ASSERT(b.len == AT_DIGEST_LEN); /* checked by proto_command_unpack */
    memcpy(d->bytes, b.data, AT_DIGEST_LEN);
}

static int apply_put_manifest(struct meta_fsm *f,
                              const Atoll__PutManifest *o,
                              uint64_t ts)
{
    struct meta_repo *r = meta__repo_get(f, o->repo, false);
    struct at_digest d, cur;
    /* a guarded tag must be where the proposer saw it (checked before
     * anything changes) */
    if (o->tag_guard && o->tag[0] != '\0') {
        bool exists = meta_fsm_tag_resolve(f, o->repo, o->tag, &cur) == 0;
        if (o->tag_expect.len == AT_DIGEST_LEN) {
            digest_from(&d, o->tag_expect);
            if (!exists || !at_digest_equal(&cur, &d))
                return META_TAG_CONFLICT;
        } else if (exists) {
            return META_TAG_CONFLICT;
        }
    }
    /* every referenced blob must be linked here, every child in the repo */
    for (size_t i = 0; i < o->n_blobs; i++) {
        digest_from(&d, o->blobs[i]);
        if (r == NULL || at_dmap_get(&r->blobs, &d) == NULL)
            return META_BLOB_UNKNOWN;
    }
    for (size_t i = 0; i < o->n_manifests; i++) {
        digest_from(&d, o->manifests[i]);
        if (r == NULL || at_dmap_get(&r->manifests, &d) == NULL)
            return META_MANIFEST_UNKNOWN;
    }
    digest_from(&d, o->digest);
    struct meta_mf *mf = at_dmap_get(&f->manifests, &d);
    if (mf == NULL) {
        struct at_digest subject;
        if (o->subject.len == AT_DIGEST_LEN)
            digest_from(&subject, o->subject);
        mf = meta__mf_new(f, &d, o->bytes.data, o->bytes.len, o->media_type,
                          o->artifact_type, o->annotations_json,
                          o->subject.len == AT_DIGEST_LEN ? &subject : NULL,
                          o->n_blobs, o->n_manifests);
        for (size_t i = 0; i < o->n_blobs; i++)
            digest_from(&meta__mf_blobs(mf)[i], o->blobs[i]);
        for (size_t i = 0; i < o->n_manifests; i++)
            digest_from(&meta__mf_children(mf)[i], o->manifests[i]);
        at_dmap_put(&f->manifests, mf);
        meta__mf_blob_refs(f, mf, 1);
    }
    if (ts > mf->pushed_ms) /* GC age: the latest push */
        mf->pushed_ms = ts;
    if (r == NULL)
        r = meta__repo_get(f, o->repo, true);
    meta__repo_link_manifest(f, r, mf);
    if (o->tag[0] != '\0') {
        meta__tag_set(f, r, o->tag, &d);
        meta__push_record(f, o->repo, &d);
    }
    return META_OK;
}

static int apply_blob_stored(struct meta_fsm *f,
                             const Atoll__BlobStored *o,
                             uint64_t ts)
{
    struct at_digest d;
    digest_from(&d, o->digest);
    struct meta_blob *b = meta__blob_get(f, &d, o->size, true);
    if (ts > b->stored_ms) /* GC age: the latest store or mount */
        b->stored_ms = ts;
    meta__blob_add_store(b, o->store);
    struct meta_repo *r = meta__repo_get(f, o->repo, true);
    at_dmap_put(&r->blobs, b);
    return META_OK;
}

static int apply_blob_mount(struct meta_fsm *f,
                            const Atoll__BlobMount *o,
                            uint64_t ts)
{
    struct at_digest d;
    digest_from(&d, o->digest);
    struct meta_repo *from = meta__repo_get(f, o->from_repo, false);
    struct meta_blob *b = from != NULL ? at_dmap_get(&from->blobs, &d) : NULL;
    if (b == NULL)
        return META_BLOB_UNKNOWN;
    if (ts > b->stored_ms)
        b->stored_ms = ts;
    struct meta_repo *r = meta__repo_get(f, o->repo, true);
    at_dmap_put(&r->blobs, b);
    return META_OK;
}

static int apply_blob_unlink(struct meta_fsm *f, const Atoll__BlobUnlink *o)
{
    struct at_digest d;
    digest_from(&d, o->digest);
    struct meta_repo *r = meta__repo_get(f, o->repo, false);
    if (r == NULL)
        return META_BLOB_NOT_LINKED;
    if (at_dmap_del(&r->blobs, &d) == NULL)
        return META_BLOB_NOT_LINKED;
    /* the blob record stays: GC of blob bytes is a later command */
    meta__repo_maybe_drop(f, r);
    return META_OK;
}

static int apply_delete_manifest(struct meta_fsm *f,
                                 const Atoll__DeleteManifest *o)
{
    struct at_digest d;
    digest_from(&d, o->digest);
    struct meta_repo *r = meta__repo_get(f, o->repo, false);
    struct meta_mf *mf = r != NULL ? at_dmap_get(&r->manifests, &d) : NULL;
    if (mf == NULL)
        return META_MANIFEST_UNKNOWN;
    /* backwards: a delete moves the last tag (already seen) into the hole;
     * the name is copied first as a delete may compact the name arena */
    for (size_t i = r->ntagv; i-- > 0;) {
        if (i < r->ntagv && at_digest_equal(&r->tagv[i].digest, &d)) {
            char *name = at_strdup(meta__tag_name(r, i));
            meta__tag_del(f, r, name);
            at_free(name);
        }
    }
    meta__repo_unlink_manifest(f, r, mf);
    meta__repo_maybe_drop(f, r);
    return META_OK;
}

static int apply_delete_tag(struct meta_fsm *f, const Atoll__DeleteTag *o)
{
    struct meta_repo *r = meta__repo_get(f, o->repo, false);
    if (r == NULL || !meta__tag_del(f, r, o->tag))
        return META_TAG_UNKNOWN;
    meta__repo_maybe_drop(f, r);
    return META_OK;
}

/* see fsm.h */
int meta_fsm_apply(struct meta_fsm *f,
                   uint64_t index,
                   const void *buf,
                   size_t len,
                   int *result)
{
    uint64_t pair[2] = { f->hash, at_hash_bytes(buf, len) };
    f->hash = at_hash_bytes(pair, sizeof(pair));
    f->applied_count++;
    if (index > f->applied_index)
        f->applied_index = index;

    char errmsg[AT_ERRMSG_SIZE] = "";
    Atoll__Command *c = NULL;
    int rv = proto_command_unpack(buf, len, &c, errmsg);
    if (rv != 0) {
        LOG_WARN("index %" PRIu64 ": invalid command ignored: %s", index,
                 errmsg);
        *result = META_INVALID;
        return 0;
    }
    struct meta_req *dup =
        c->request_id[0] != '\0' ? at_map_gets(&f->reqs, c->request_id) : NULL;
    if (dup != NULL) {
        *result = dup->result;
        proto_command_free(c);
        return 0;
    }
    int res;
    meta__events_before(f, c);
    switch (c->op_case) {
    case ATOLL__COMMAND__OP_PUT_MANIFEST:
        res = apply_put_manifest(f, c->put_manifest, c->timestamp_ms);
        break;
    case ATOLL__COMMAND__OP_BLOB_STORED:
        res = apply_blob_stored(f, c->blob_stored, c->timestamp_ms);
        break;
    case ATOLL__COMMAND__OP_BLOB_MOUNT:
        res = apply_blob_mount(f, c->blob_mount, c->timestamp_ms);
        break;
    case ATOLL__COMMAND__OP_BLOB_UNLINK:
        res = apply_blob_unlink(f, c->blob_unlink);
        break;
    case ATOLL__COMMAND__OP_DELETE_MANIFEST:
        res = apply_delete_manifest(f, c->delete_manifest);
        break;
    case ATOLL__COMMAND__OP_DELETE_TAG:
        res = apply_delete_tag(f, c->delete_tag);
        break;
    case ATOLL__COMMAND__OP_NODE_UPSERT:
        res = meta__node_upsert(f, c->node_upsert);
        break;
    case ATOLL__COMMAND__OP_SET_SETTING:
        res = meta__setting_set(f, index, c->set_setting->key,
                                c->set_setting->value,
                                strlen(c->set_setting->value));
        break;
    case ATOLL__COMMAND__OP_NODE_REMOVE:
        res = meta__node_remove(f, c->node_remove->id);
        break;
    case ATOLL__COMMAND__OP_GC_SWEEP:
        res = meta__gc_sweep(f, c->timestamp_ms, c->gc_sweep);
        break;
    case ATOLL__COMMAND__OP_USER_PUT:
        res = meta__user_put(f, index, c->user_put);
        break;
    case ATOLL__COMMAND__OP_USER_REMOVE:
        res = meta__user_remove(f, c->user_remove->name);
        break;
    case ATOLL__COMMAND__OP_ROBOT_PUT:
        res = meta__robot_put(f, index, c->robot_put);
        break;
    case ATOLL__COMMAND__OP_ROBOT_REMOVE:
        res = meta__robot_remove(f, c->robot_remove->name);
        break;
    case ATOLL__COMMAND__OP_TOKEN_KEY_PUT:
        res = meta__token_key_put(f, index, c->token_key_put);
        break;
    case ATOLL__COMMAND__OP_POLICY_SET:
        res = meta__policy_set(f, index, c->policy_set);
        break;
    default:
        res = META_INVALID; /* unpack rejects unknown ops already */
        break;
    }
    meta__events_after(f, index, c, res);
    meta__req_remember(f, c->request_id, res, index);
    proto_command_free(c);
    *result = res;
    return 0;
}

/* see fsm.h */
int meta_fsm_restore(struct meta_fsm *f,
                     const void *buf,
                     size_t len,
                     char *errmsg)
{
    return meta_fsm_restore_checked(f, buf, len, NULL, NULL, errmsg);
}

/* see fsm.h */
int meta_fsm_restore_checked(struct meta_fsm *f,
                             const void *buf,
                             size_t len,
                             int (*check)(void *data, char *errmsg),
                             void *data,
                             char *errmsg)
{
    struct meta_fsm fresh;
    meta_fsm_init(&fresh, f->ring_cap);
    /* a new body file, filled as the snapshot is decoded (in one batch);
     * the old one goes with the old state. Without one, or when writing
     * it failed (a full disk), the bodies stay on the heap. */
    int rv;
    if (f->bodies_dir != NULL) {
        char emsg[AT_ERRMSG_SIZE];
        if (meta_fsm_bodies_open(&fresh, f->bodies_dir, emsg) != 0)
            LOG_WARN("%s: keeping manifest bodies in memory", emsg);
        meta_bodies_batch(&fresh.bodies);
        rv = meta__snap_decode(&fresh, buf, len, errmsg);
        if (meta_bodies_batch_end(&fresh.bodies) != 0 && rv == 0) {
            LOG_WARN(
                "manifest bodies in '%s' could not be written: keeping "
                "them in memory",
                f->bodies_dir);
            meta_fsm_release(&fresh);
            meta_fsm_init(&fresh, f->ring_cap);
            fresh.bodies_dir = at_strdup(f->bodies_dir); /* next time */
            rv = meta__snap_decode(&fresh, buf, len, errmsg);
        }
    } else {
        rv = meta__snap_decode(&fresh, buf, len, errmsg);
    }
    if (rv == 0 && check != NULL)
        rv = check(data, errmsg);
    if (rv != 0) {
        meta_fsm_release(&fresh);
        return rv;
    }
    /* blob records the new state lacks were swept by a GcSweep this node
     * missed: its local copies go too; pending removals carry over */
    void *v;
    for (size_t i = 0; i < f->ngc_removed; i++)
        meta__gc_removed_push(&fresh, &f->gc_removed[i].digest,
                              f->gc_removed[i].cutoff_ms);
    for (size_t i = 0; at_dmap_next(&f->blobs, &i, &v);) {
        const struct meta_blob *b = v;
        if (at_dmap_get(&fresh.blobs, &b->digest) == NULL)
            meta__gc_removed_push(&fresh, &b->digest, b->stored_ms);
    }
    fresh.gc_deleted_total = f->gc_deleted_total;
    fresh.gc_mf_deleted = f->gc_mf_deleted;
    fresh.gc_scan_wanted = true;
    /* local: the prefetcher's switch and its pending pushes carry over */
    fresh.pushes_record = f->pushes_record;
    fresh.pushes = f->pushes;
    fresh.npushes = f->npushes;
    fresh.pushes_cap = f->pushes_cap;
    f->pushes = NULL;
    f->npushes = f->pushes_cap = 0;
    fresh.events = f->events;
    f->events = NULL;
    meta_fsm_release(f);
    *f = fresh;
    return 0;
}
