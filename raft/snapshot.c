/* Whole-state snapshots of the FSM: encode to one buffer, decode from one.
 *
 * Encoding is two steps so that only the first runs on the loop thread:
 * take a job (a flat copy of the state: a few arrays and one arena of
 * strings and bytes, no per-record allocation), then encode the job
 * (protobuf-c structs borrowing the job, packed into one buffer) anywhere.
 * Decoding fills a fresh FSM and checks every cross reference (a repo's
 * manifest, blob link or tag must exist); meta_fsm_restore (fsm.c) swaps
 * it in only then, so a corrupt snapshot leaves the current state
 * untouched. */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include "raft/snapshot.h"

#include "raft/snapjob.h"

#include "raft/gc.h"
#include "raft/nodes.h"
#include "raft/policy.h"
#include "raft/settings.h"
#include "raft/token_keys.h"
#include "raft/users.h"

/* ---- the job: a flat copy of the state ---- */

static void *vec_push(struct vec *v, size_t size, size_t n)
{
    if (v->len + n > v->cap || v->p == NULL) {
        size_t cap = v->cap ? v->cap : 16;
        AT_ASSERT(n <= SIZE_MAX / 2 / size - v->len);
        while (cap < v->len + n)
            cap *= 2;
        v->p = at_realloc(v->p, cap * size);
        v->cap = cap;
    }
    void *at = (char *)v->p + v->len * size;
    v->len += n;
    return at;
}

static void vec_reserve(struct vec *v, size_t size, size_t n)
{
    if (n > v->cap) {
        v->p = at_realloc(v->p, n * size);
        v->cap = n;
    }
}

static size_t arena_mem(struct meta_snap_job *j, const void *p, size_t n)
{
    size_t off = j->arena.len;
    if (n > 0)
        memcpy(vec_push(&j->arena, 1, n), p, n);
    return off;
}

static size_t arena_str(struct meta_snap_job *j, const char *s)
{
    if (s == NULL)
        return NONE;
    return arena_mem(j, s, strlen(s) + 1);
}

static size_t push_digests(struct meta_snap_job *j,
                           const struct at_digest *d,
                           size_t n)
{
    size_t first = j->digests.len;
    if (n > 0)
        memcpy(vec_push(&j->digests, sizeof(*d), n), d, n * sizeof(*d));
    return first;
}

static void job_setting_add(void *data,
                            const char *key,
                            const char *value,
                            uint64_t index)
{
    struct meta_snap_job *j = data;
    struct job_setting *js = vec_push(&j->settings, sizeof(*js), 1);
    js->key = arena_str(j, key);
    js->value = arena_str(j, value);
    js->index = index;
}

static void job_user_add(void *data, const struct meta_user *u)
{
    struct meta_snap_job *j = data;
    struct job_user *ju = vec_push(&j->users, sizeof(*ju), 1);
    ju->name = arena_str(j, u->name);
    ju->hash = arena_str(j, u->password_hash);
    ju->groups = j->strs.len;
    ju->ngroups = u->ngroups;
    size_t *g = vec_push(&j->strs, sizeof(*g), u->ngroups);
    for (size_t i = 0; i < u->ngroups; i++)
        g[i] = arena_str(j, u->groups[i]);
    ju->admin = u->admin;
    ju->created_ms = u->created_ms;
    ju->index = u->index;
}

static void job_robot_add(void *data, const struct meta_robot *r)
{
    struct meta_snap_job *j = data;
    struct job_robot *jr = vec_push(&j->robots, sizeof(*jr), 1);
    jr->name = arena_str(j, r->name);
    jr->hash = arena_str(j, r->secret_hash);
    jr->perms = j->perms.len;
    jr->nperms = r->nperms;
    struct job_perm *p = vec_push(&j->perms, sizeof(*p), r->nperms);
    for (size_t i = 0; i < r->nperms; i++) {
        p[i].repository = arena_str(j, r->perms[i].repository);
        p[i].actions = r->perms[i].actions;
    }
    jr->expires_ms = r->expires_ms;
    jr->created_ms = r->created_ms;
    jr->index = r->index;
}

static void job_tkey_add(void *data, const struct meta_token_key *k)
{
    struct meta_snap_job *j = data;
    struct job_tkey *jk = vec_push(&j->tkeys, sizeof(*jk), 1);
    jk->kid = arena_str(j, k->kid);
    jk->pem = arena_str(j, k->pem);
    jk->created_ms = k->created_ms;
    jk->index = k->index;
}

/* see snapshot.h */
struct meta_snap_job *meta_snap_job_take(struct meta_fsm *f)
{
    struct meta_snap_job *j = f->snap_spare;
    const char *k;
    void *v;
    f->snap_spare = NULL;
    if (j == NULL)
        j = at_calloc(1, sizeof(*j));
    struct vec *all[] = { &j->arena, &j->repos,    &j->tags,  &j->digests,
                          &j->mfs,   &j->blobs,    &j->strs,  &j->reqs,
                          &j->nodes, &j->settings, &j->users, &j->robots,
                          &j->perms, &j->tkeys };
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        all[i]->len = 0;
    j->body_rv = 0;
    j->applied_index = f->applied_index;
    j->applied_count = f->applied_count;
    j->hash = f->hash;
    size_t names = 0;
    for (size_t i = 0; at_map_next(&f->repos, &i, &k, &v);)
        names += ((const struct meta_repo *)v)->names_len;
    vec_reserve(&j->repos, sizeof(struct job_repo), f->repos.len + 1);
    vec_reserve(&j->tags, sizeof(struct meta_tag), f->ntags + 1);
    vec_reserve(&j->arena, 1, names + 4096);
    for (size_t i = 0; at_map_next(&f->repos, &i, &k, &v);) {
        const struct meta_repo *r = v;
        struct job_repo *jr = vec_push(&j->repos, sizeof(*jr), 1);
        jr->name = arena_str(j, r->name);
        /* the dense tag table and its names: two copies, no per-tag work
         * (name offsets stay relative to the repo's names) */
        jr->tags = j->tags.len;
        jr->ntags = r->ntagv;
        if (r->ntagv > 0)
            memcpy(vec_push(&j->tags, sizeof(*r->tagv), r->ntagv), r->tagv,
                   r->ntagv * sizeof(*r->tagv));
        jr->tag_names = arena_mem(j, r->tag_names, r->names_len);
        jr->names_len = r->names_len;
        jr->blobs = j->digests.len;
        jr->nblobs = r->blobs.len;
        struct at_digest *d = vec_push(&j->digests, sizeof(*d), r->blobs.len);
        for (size_t t = 0; at_dmap_next(&r->blobs, &t, &v);)
            *d++ = ((const struct meta_blob *)v)->digest;
        jr->manifests = j->digests.len;
        jr->nmanifests = r->manifests.len;
        d = vec_push(&j->digests, sizeof(*d), r->manifests.len);
        for (size_t t = 0; at_dmap_next(&r->manifests, &t, &v);)
            *d++ = ((const struct meta_mf *)v)->pub.digest;
    }
    vec_reserve(&j->mfs, sizeof(struct job_mf), f->manifests.len + 1);
    for (size_t i = 0; at_dmap_next(&f->manifests, &i, &v);) {
        const struct meta_mf *mf = v;
        struct job_mf *jm = vec_push(&j->mfs, sizeof(*jm), 1);
        jm->digest = mf->pub.digest;
        /* the body from the heap or the body file (a read error fails
         * the encode, not the take: the loop never waits on it twice) */
        jm->bytes = j->arena.len;
        jm->len = mf->pub.len;
        if (jm->len > 0 &&
            meta__mf_body(f, mf, vec_push(&j->arena, 1, jm->len)) != 0)
            j->body_rv = AT_EIO;
        jm->media_type = arena_str(j, mf->pub.media_type);
        jm->artifact_type = arena_str(j, mf->pub.artifact_type);
        jm->annotations = arena_str(j, mf->pub.annotations_json);
        jm->has_subject = mf->pub.subject != NULL;
        if (jm->has_subject)
            jm->subject = *mf->pub.subject;
        jm->nblobs = mf->nblobs;
        jm->blobs = push_digests(j, meta__mf_blobs(mf), mf->nblobs);
        jm->nchildren = mf->nchildren;
        jm->children = push_digests(j, meta__mf_children(mf), mf->nchildren);
        jm->pushed_ms = mf->pushed_ms;
    }
    vec_reserve(&j->blobs, sizeof(struct job_blob), f->blobs.len + 1);
    for (size_t i = 0; at_dmap_next(&f->blobs, &i, &v);) {
        const struct meta_blob *b = v;
        struct job_blob *jb = vec_push(&j->blobs, sizeof(*jb), 1);
        jb->digest = b->digest;
        jb->size = b->size;
        jb->stored_ms = b->stored_ms;
        jb->stores = j->strs.len;
        jb->nstores = b->nstores;
        size_t *s = vec_push(&j->strs, sizeof(*s), b->nstores);
        for (size_t t = 0; t < b->nstores; t++)
            s[t] = arena_str(j, b->stores[t]);
    }
    /* the bulk ends here: what a flat encoding lays out (snapflat.c) */
    j->bulk_arena = j->arena.len;
    j->bulk_strs = j->strs.len;
    /* the ring in log order: its two contiguous runs */
    size_t first = f->ring_len < f->ring_cap - f->ring_head
                       ? f->ring_len
                       : f->ring_cap - f->ring_head;
    if (first > 0)
        memcpy(vec_push(&j->reqs, sizeof(*f->ring), first),
               &f->ring[f->ring_head], first * sizeof(*f->ring));
    if (f->ring_len > first)
        memcpy(vec_push(&j->reqs, sizeof(*f->ring), f->ring_len - first),
               f->ring, (f->ring_len - first) * sizeof(*f->ring));
    for (size_t i = 0; at_map_next(&f->nodes, &i, &k, &v);) {
        const struct meta_noderec *n = v;
        struct job_node *jn = vec_push(&j->nodes, sizeof(*jn), 1);
        jn->id = n->id;
        jn->name = arena_str(j, n->name);
        jn->peer_address = arena_str(j, n->peer_address);
        jn->api_address = arena_str(j, n->api_address);
        jn->region = arena_str(j, n->region);
        jn->standby = n->standby;
    }
    meta__settings_each(f, job_setting_add, j);
    meta__users_each(f, false, job_user_add, j);
    meta__robots_each(f, false, job_robot_add, j);
    meta__token_keys_each(f, job_tkey_add, j);
    meta__policy_snap_free(j->policy);
    j->policy = meta__policy_snap_take(f);
    return j;
}

/* see snapshot.h */
void meta_snap_job_free(struct meta_snap_job *j)
{
    if (j == NULL)
        return;
    struct vec *all[] = { &j->arena, &j->repos,    &j->tags,  &j->digests,
                          &j->mfs,   &j->blobs,    &j->strs,  &j->reqs,
                          &j->nodes, &j->settings, &j->users, &j->robots,
                          &j->perms, &j->tkeys };
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        at_free(all[i]->p);
    meta__policy_snap_free(j->policy);
    at_free(j);
}

/* see snapshot.h */
size_t meta_snap_job_size(const struct meta_snap_job *j)
{
    return j->arena.cap + j->repos.cap * sizeof(struct job_repo) +
           j->tags.cap * sizeof(struct meta_tag) +
           j->digests.cap * sizeof(struct at_digest) +
           j->mfs.cap * sizeof(struct job_mf) +
           j->blobs.cap * sizeof(struct job_blob) +
           j->strs.cap * sizeof(size_t) +
           j->reqs.cap * sizeof(struct meta_req) +
           j->nodes.cap * sizeof(struct job_node) +
           j->settings.cap * sizeof(struct job_setting) +
           j->users.cap * sizeof(struct job_user) +
           j->robots.cap * sizeof(struct job_robot) +
           j->perms.cap * sizeof(struct job_perm) +
           j->tkeys.cap * sizeof(struct job_tkey);
}

/* see snapshot.h */
void meta_snap_job_recycle(struct meta_fsm *f, struct meta_snap_job *j)
{
    if (j == NULL)
        return;
    if (f->snap_spare != NULL || meta_snap_job_size(j) > META_SNAP_SPARE_MAX) {
        meta_snap_job_free(j);
        return;
    }
    f->snap_spare = j;
}

/* ---- encoding a job ---- */

static ProtobufCBinaryData bin(const struct at_digest *d)
{
    ProtobufCBinaryData b = { AT_DIGEST_LEN, (uint8_t *)d->bytes };
    return b;
}

static ProtobufCBinaryData *bins(const struct at_digest *d, size_t n)
{
    ProtobufCBinaryData *b = at_calloc(n + 1, sizeof(*b));
    for (size_t i = 0; i < n; i++)
        b[i] = bin(&d[i]);
    return b;
}

/* The protobuf-c structs of one encoding. They borrow the job's arena and
 * digests and are freed once packed. */
struct enc {
    Atoll__Snapshot s;
    ProtobufCBinaryData *digs; /* every digest of the job */
    Atoll__SnapRepo *repos;
    Atoll__SnapTag *tags;
    Atoll__SnapTag **tagp;
    Atoll__SnapManifest *mfs;
    Atoll__SnapBlob *blobs;
    char **stores;
    Atoll__SnapRequest *reqs;
    Atoll__NodeUpsert *nodes;
    Atoll__SnapSetting *sets;
    Atoll__SnapUser *susers;
    Atoll__UserPut *users;
    Atoll__SnapRobot *srobots;
    Atoll__RobotPut *robots;
    Atoll__RobotPermission *perms;
    Atoll__RobotPermission **permp;
    Atoll__SnapTokenKey *stkeys;
    Atoll__TokenKeyPut *tkeys;
};

static void enc_repos(struct enc *e, const struct meta_snap_job *j)
{
    Atoll__Snapshot *s = &e->s;
    size_t nrepos = j->repos.len;
    Atoll__SnapRepo *repos = e->repos = at_calloc(nrepos + 1, sizeof(*repos));
    Atoll__SnapTag *tags = e->tags = at_calloc(j->tags.len + 1, sizeof(*tags));
    Atoll__SnapTag **tagp = e->tagp = at_calloc(j->tags.len + 1, sizeof(*tagp));
    ProtobufCBinaryData *digs = e->digs;
    s->repos = at_calloc(nrepos + 1, sizeof(*s->repos));
    for (size_t i = 0; i < nrepos; i++) {
        const struct job_repo *jr = VEC_AT(&j->repos, struct job_repo, i);
        Atoll__SnapRepo *sr = &repos[i];
        *sr = (Atoll__SnapRepo)ATOLL__SNAP_REPO__INIT;
        sr->name = STR(jr->name);
        for (size_t t = jr->tags; t < jr->tags + jr->ntags; t++) {
            const struct meta_tag *jt = VEC_AT(&j->tags, struct meta_tag, t);
            tags[t] = (Atoll__SnapTag)ATOLL__SNAP_TAG__INIT;
            tags[t].name = STR(jr->tag_names + jt->name);
            tags[t].digest = bin(&jt->digest);
            tagp[t] = &tags[t];
        }
        sr->n_tags = jr->ntags;
        sr->tags = tagp + jr->tags;
        sr->n_blobs = jr->nblobs;
        sr->blobs = digs + jr->blobs;
        sr->n_manifests = jr->nmanifests;
        sr->manifests = digs + jr->manifests;
        s->repos[s->n_repos++] = sr;
    }
}

static void enc_manifests(struct enc *e, const struct meta_snap_job *j)
{
    Atoll__Snapshot *s = &e->s;
    ProtobufCBinaryData *digs = e->digs;
    size_t nmfs = j->mfs.len;
    Atoll__SnapManifest *mfs = e->mfs = at_calloc(nmfs + 1, sizeof(*mfs));
    s->manifests = at_calloc(nmfs + 1, sizeof(*s->manifests));
    for (size_t i = 0; i < nmfs; i++) {
        const struct job_mf *jm = VEC_AT(&j->mfs, struct job_mf, i);
        Atoll__SnapManifest *sm = &mfs[i];
        *sm = (Atoll__SnapManifest)ATOLL__SNAP_MANIFEST__INIT;
        sm->digest = bin(&jm->digest);
        sm->media_type = STR(jm->media_type);
        sm->bytes.data = (uint8_t *)STR(jm->bytes);
        sm->bytes.len = jm->len;
        sm->n_blobs = jm->nblobs;
        sm->blobs = digs + jm->blobs;
        sm->n_manifests = jm->nchildren;
        sm->manifests = digs + jm->children;
        sm->pushed_ms = jm->pushed_ms;
        if (jm->has_subject)
            sm->subject = bin(&jm->subject);
        if (jm->artifact_type != NONE) {
            sm->artifact_type = STR(jm->artifact_type);
            sm->has_artifact_type = true;
        }
        if (jm->annotations != NONE) {
            sm->annotations_json = STR(jm->annotations);
            sm->has_annotations = true;
        }
        s->manifests[s->n_manifests++] = sm;
    }
}

static void enc_blobs(struct enc *e, const struct meta_snap_job *j)
{
    Atoll__Snapshot *s = &e->s;
    size_t nblobs = j->blobs.len;
    Atoll__SnapBlob *blobs = e->blobs = at_calloc(nblobs + 1, sizeof(*blobs));
    char **stores = e->stores;
    s->blobs = at_calloc(nblobs + 1, sizeof(*s->blobs));
    for (size_t i = 0; i < nblobs; i++) {
        const struct job_blob *jb = VEC_AT(&j->blobs, struct job_blob, i);
        Atoll__SnapBlob *sb = &blobs[i];
        *sb = (Atoll__SnapBlob)ATOLL__SNAP_BLOB__INIT;
        sb->digest = bin(&jb->digest);
        sb->size = jb->size;
        sb->stored_ms = jb->stored_ms;
        sb->n_stores = jb->nstores;
        sb->stores = stores + jb->stores;
        s->blobs[s->n_blobs++] = sb;
    }
}

static void enc_requests(struct enc *e, const struct meta_snap_job *j)
{
    Atoll__Snapshot *s = &e->s;
    size_t nreqs = j->reqs.len;
    Atoll__SnapRequest *reqs = e->reqs = at_calloc(nreqs + 1, sizeof(*reqs));
    s->requests = at_calloc(nreqs + 1, sizeof(*s->requests));
    for (size_t i = 0; i < nreqs; i++) {
        const struct meta_req *jq = VEC_AT(&j->reqs, struct meta_req, i);
        Atoll__SnapRequest *sq = &reqs[i];
        *sq = (Atoll__SnapRequest)ATOLL__SNAP_REQUEST__INIT;
        sq->id = (char *)jq->id;
        sq->result = jq->result;
        sq->index = jq->index;
        s->requests[s->n_requests++] = sq;
    }
}

static void enc_nodes(struct enc *e, const struct meta_snap_job *j)
{
    Atoll__Snapshot *s = &e->s;
    size_t nnodes = j->nodes.len;
    Atoll__NodeUpsert *nodes = e->nodes = at_calloc(nnodes + 1, sizeof(*nodes));
    s->nodes = at_calloc(nnodes + 1, sizeof(*s->nodes));
    for (size_t i = 0; i < nnodes; i++) {
        const struct job_node *jn = VEC_AT(&j->nodes, struct job_node, i);
        Atoll__NodeUpsert *o = &nodes[i];
        *o = (Atoll__NodeUpsert)ATOLL__NODE_UPSERT__INIT;
        o->id = jn->id;
        o->name = STR(jn->name);
        o->peer_address = STR(jn->peer_address);
        o->api_address = STR(jn->api_address);
        o->region = STR(jn->region);
        o->standby = jn->standby;
        s->nodes[s->n_nodes++] = o;
    }
}

static void enc_settings(struct enc *e, const struct meta_snap_job *j)
{
    Atoll__Snapshot *s = &e->s;
    size_t nsettings = j->settings.len;
    Atoll__SnapSetting *sets = e->sets =
        at_calloc(nsettings + 1, sizeof(*sets));
    s->settings = at_calloc(nsettings + 1, sizeof(*s->settings));
    for (size_t i = 0; i < nsettings; i++) {
        const struct job_setting *js =
            VEC_AT(&j->settings, struct job_setting, i);
        Atoll__SnapSetting *o = &sets[i];
        *o = (Atoll__SnapSetting)ATOLL__SNAP_SETTING__INIT;
        o->key = STR(js->key);
        o->value = STR(js->value);
        o->index = js->index;
        s->settings[s->n_settings++] = o;
    }
}
static void enc_users(struct enc *e, const struct meta_snap_job *j)
{
    Atoll__Snapshot *s = &e->s;
    size_t n = j->users.len;
    Atoll__SnapUser *su = e->susers = at_calloc(n + 1, sizeof(*su));
    Atoll__UserPut *u = e->users = at_calloc(n + 1, sizeof(*u));
    s->users = at_calloc(n + 1, sizeof(*s->users));
    for (size_t i = 0; i < n; i++) {
        const struct job_user *ju = VEC_AT(&j->users, struct job_user, i);
        u[i] = (Atoll__UserPut)ATOLL__USER_PUT__INIT;
        u[i].name = STR(ju->name);
        u[i].password_hash = STR(ju->hash);
        u[i].n_groups = ju->ngroups;
        u[i].groups = e->stores + ju->groups;
        u[i].admin = ju->admin;
        u[i].created_ms = ju->created_ms;
        su[i] = (Atoll__SnapUser)ATOLL__SNAP_USER__INIT;
        su[i].user = &u[i];
        su[i].index = ju->index;
        s->users[s->n_users++] = &su[i];
    }
}

static void enc_robots(struct enc *e, const struct meta_snap_job *j)
{
    Atoll__Snapshot *s = &e->s;
    size_t n = j->robots.len, np = j->perms.len;
    Atoll__SnapRobot *sr = e->srobots = at_calloc(n + 1, sizeof(*sr));
    Atoll__RobotPut *r = e->robots = at_calloc(n + 1, sizeof(*r));
    Atoll__RobotPermission *p = e->perms = at_calloc(np + 1, sizeof(*p));
    Atoll__RobotPermission **pp = e->permp = at_calloc(np + 1, sizeof(*pp));
    for (size_t i = 0; i < np; i++) {
        const struct job_perm *jp = VEC_AT(&j->perms, struct job_perm, i);
        p[i] = (Atoll__RobotPermission)ATOLL__ROBOT_PERMISSION__INIT;
        p[i].repository = STR(jp->repository);
        p[i].actions = jp->actions;
        pp[i] = &p[i];
    }
    s->robots = at_calloc(n + 1, sizeof(*s->robots));
    for (size_t i = 0; i < n; i++) {
        const struct job_robot *jr = VEC_AT(&j->robots, struct job_robot, i);
        r[i] = (Atoll__RobotPut)ATOLL__ROBOT_PUT__INIT;
        r[i].name = STR(jr->name);
        r[i].secret_hash = STR(jr->hash);
        r[i].expires_ms = jr->expires_ms;
        r[i].n_permissions = jr->nperms;
        r[i].permissions = pp + jr->perms;
        r[i].created_ms = jr->created_ms;
        sr[i] = (Atoll__SnapRobot)ATOLL__SNAP_ROBOT__INIT;
        sr[i].robot = &r[i];
        sr[i].index = jr->index;
        s->robots[s->n_robots++] = &sr[i];
    }
}

static void enc_token_keys(struct enc *e, const struct meta_snap_job *j)
{
    Atoll__Snapshot *s = &e->s;
    size_t n = j->tkeys.len;
    Atoll__SnapTokenKey *sk = e->stkeys = at_calloc(n + 1, sizeof(*sk));
    Atoll__TokenKeyPut *k = e->tkeys = at_calloc(n + 1, sizeof(*k));
    s->token_keys = at_calloc(n + 1, sizeof(*s->token_keys));
    for (size_t i = 0; i < n; i++) {
        const struct job_tkey *jk = VEC_AT(&j->tkeys, struct job_tkey, i);
        k[i] = (Atoll__TokenKeyPut)ATOLL__TOKEN_KEY_PUT__INIT;
        k[i].kid = STR(jk->kid);
        k[i].private_key_pem = STR(jk->pem);
        k[i].created_ms = jk->created_ms;
        sk[i] = (Atoll__SnapTokenKey)ATOLL__SNAP_TOKEN_KEY__INIT;
        sk[i].key = &k[i];
        sk[i].index = jk->index;
        s->token_keys[s->n_token_keys++] = &sk[i];
    }
}
#undef STR

static void enc_release(struct enc *e)
{
    Atoll__Snapshot *s = &e->s;
    at_free(e->stkeys);
    at_free(e->tkeys);
    at_free(s->token_keys);
    at_free(e->susers);
    at_free(e->users);
    at_free(s->users);
    at_free(e->srobots);
    at_free(e->robots);
    at_free(e->perms);
    at_free(e->permp);
    at_free(s->robots);
    at_free(e->sets);
    at_free(s->settings);
    at_free(e->nodes);
    at_free(s->nodes);
    at_free(e->reqs);
    at_free(s->requests);
    at_free(e->blobs);
    at_free(e->stores);
    at_free(s->blobs);
    at_free(e->mfs);
    at_free(s->manifests);
    at_free(e->repos);
    at_free(e->tags);
    at_free(e->tagp);
    at_free(e->digs);
    at_free(s->repos);
}

/* see snapjob.h */
int meta__snap_pb_encode(const struct meta_snap_job *j,
                         bool bulk,
                         proto_alloc_fn alloc,
                         void **out,
                         size_t *len,
                         char *errmsg)
{
    struct enc e;
    if (j->body_rv != 0) {
        at_errmsg_printf(errmsg, "snapshot: cannot read a manifest body");
        return j->body_rv;
    }
    memset(&e, 0, sizeof(e));
    e.s = (Atoll__Snapshot)ATOLL__SNAPSHOT__INIT;
    e.s.version = PROTO_SNAPSHOT_VERSION;
    e.s.applied_index = j->applied_index;
    e.s.applied_count = j->applied_count;
    e.s.hash = j->hash;
    e.digs = bins(j->digests.p, j->digests.len);
    /* every string list (blob stores, user groups) points into strs */
    e.stores = at_calloc(j->strs.len + 1, sizeof(*e.stores));
    for (size_t i = 0; i < j->strs.len; i++)
        e.stores[i] = (char *)j->arena.p + ((const size_t *)j->strs.p)[i];
    if (bulk) {
        enc_repos(&e, j);
        enc_manifests(&e, j);
        enc_blobs(&e, j);
    }
    enc_requests(&e, j);
    enc_nodes(&e, j);
    enc_settings(&e, j);
    enc_users(&e, j);
    enc_robots(&e, j);
    enc_token_keys(&e, j);
    if (j->policy != NULL)
        e.s.policy = meta__policy_snap_msg(j->policy);
    int rv = proto_snapshot_pack(&e.s, alloc, out, len, errmsg);
    enc_release(&e);
    return rv;
}

/* see snapshot.h */
int meta_snap_job_encode(const struct meta_snap_job *j,
                         proto_alloc_fn alloc,
                         void **out,
                         size_t *len,
                         char *errmsg)
{
    return meta__snap_flat_encode(j, alloc, out, len, errmsg);
}

/* see snapshot.h */
int meta_fsm_snapshot(const struct meta_fsm *f,
                      proto_alloc_fn alloc,
                      void **out,
                      size_t *len,
                      char *errmsg)
{
    return meta__snap_flat_direct(f, alloc, out, len, errmsg);
}

/* see snapjob.h */
int meta__snap_rest_encode(const struct meta_fsm *f,
                           void **out,
                           size_t *len,
                           char *errmsg)
{
    /* a private copy without the bulk: f stays const, no spare is used */
    struct meta_fsm shallow = *f;
    shallow.snap_spare = NULL;
    shallow.ntags = 0;
    at_map_init(&shallow.repos);
    at_dmap_init(&shallow.manifests, META_MF_KEY);
    at_dmap_init(&shallow.blobs, META_BLOB_KEY);
    struct meta_snap_job *j = meta_snap_job_take(&shallow);
    int rv = meta__snap_pb_encode(j, false, NULL, out, len, errmsg);
    meta_snap_job_free(j);
    return rv;
}

static void digest_from(struct at_digest *d, ProtobufCBinaryData b)
{
    AT_ASSERT(b.len == AT_DIGEST_LEN); /* checked by proto_snapshot_unpack */
    memcpy(d->bytes, b.data, AT_DIGEST_LEN);
}

/* The repositories, manifests and blobs of an ATS1 snapshot (snapflat.c
 * loads those of an ATS2 one). */
static int restore_bulk(struct meta_fsm *f,
                        const Atoll__Snapshot *s,
                        char *errmsg)
{
    struct at_digest d;
    /* records come in the writer's table order: reserve (dmap.h) */
    at_dmap_reserve(&f->blobs, s->n_blobs);
    at_dmap_reserve(&f->manifests, s->n_manifests);
    at_map_reserve(&f->repos, s->n_repos);
    for (size_t i = 0; i < s->n_blobs; i++) {
        const Atoll__SnapBlob *sb = s->blobs[i];
        digest_from(&d, sb->digest);
        if (meta__blob_get(f, &d, 0, false) != NULL)
            goto dup;
        struct meta_blob *b = meta__blob_get(f, &d, sb->size, true);
        b->stored_ms = sb->stored_ms; /* 0 in old snapshots: old enough */
        for (size_t j = 0; j < sb->n_stores; j++)
            meta__blob_add_store(b, sb->stores[j]);
    }
    for (size_t i = 0; i < s->n_manifests; i++) {
        const Atoll__SnapManifest *sm = s->manifests[i];
        digest_from(&d, sm->digest);
        if (at_dmap_get(&f->manifests, &d) != NULL)
            goto dup;
        struct at_digest subject;
        if (sm->subject.len != 0)
            digest_from(&subject, sm->subject);
        struct meta_mf *mf =
            meta__mf_new(f, &d, sm->bytes.data, sm->bytes.len, sm->media_type,
                         sm->has_artifact_type ? sm->artifact_type : NULL,
                         sm->has_annotations ? sm->annotations_json : NULL,
                         sm->subject.len != 0 ? &subject : NULL, sm->n_blobs,
                         sm->n_manifests);
        mf->pushed_ms = sm->pushed_ms; /* 0 in old snapshots: old enough */
        for (size_t j = 0; j < sm->n_blobs; j++)
            digest_from(&meta__mf_blobs(mf)[j], sm->blobs[j]);
        for (size_t j = 0; j < sm->n_manifests; j++)
            digest_from(&meta__mf_children(mf)[j], sm->manifests[j]);
        at_dmap_put(&f->manifests, mf);
    }
    for (size_t i = 0; i < s->n_repos; i++) {
        const Atoll__SnapRepo *sr = s->repos[i];
        if (meta__repo_get(f, sr->name, false) != NULL)
            goto dup;
        struct meta_repo *r = meta__repo_get(f, sr->name, true);
        r->sorted_ok = false; /* sorted once, at the first list */
        at_dmap_reserve(&r->blobs, sr->n_blobs);
        at_dmap_reserve(&r->manifests, sr->n_manifests);
        for (size_t j = 0; j < sr->n_blobs; j++) {
            digest_from(&d, sr->blobs[j]);
            struct meta_blob *b = meta__blob_get(f, &d, 0, false);
            if (b == NULL)
                goto dangling;
            at_dmap_put(&r->blobs, b);
        }
        for (size_t j = 0; j < sr->n_manifests; j++) {
            digest_from(&d, sr->manifests[j]);
            struct meta_mf *mf = at_dmap_get(&f->manifests, &d);
            if (mf == NULL)
                goto dangling;
            meta__repo_link_manifest(f, r, mf);
        }
        for (size_t j = 0; j < sr->n_tags; j++) {
            const Atoll__SnapTag *st = sr->tags[j];
            digest_from(&d, st->digest);
            if (at_dmap_get(&r->manifests, &d) == NULL)
                goto dangling;
            if (meta__tag_exists(r, st->name))
                goto dup;
            meta__tag_set(f, r, st->name, &d);
        }
        if (r->tags.len == 0 && r->blobs.len == 0 && r->manifests.len == 0)
            goto dangling;
    }
    return 0;
dup:
    at_errmsg_printf(errmsg, "snapshot: duplicate record");
    return AT_ECORRUPT;
dangling:
    at_errmsg_printf(errmsg, "snapshot: dangling reference");
    return AT_ECORRUPT;
}

/* Everything else, once the bulk is in f (from either format). */
static int restore_rest(struct meta_fsm *f,
                        const Atoll__Snapshot *s,
                        char *errmsg)
{
    f->applied_index = s->applied_index;
    f->applied_count = s->applied_count;
    f->hash = s->hash;
    /* manifests no repository holds are dropped (never written that way) */
    void *v;
    for (size_t i = 0; at_dmap_next(&f->manifests, &i, &v);) {
        struct meta_mf *mf = v;
        if (mf->refs == 0) {
            at_dmap_del(&f->manifests, &mf->pub.digest);
            meta__mf_free(f, mf);
        }
    }
    meta__gc_recount(f);
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
    for (size_t i = 0; i < s->n_settings; i++) {
        const Atoll__SnapSetting *ss = s->settings[i];
        if (ss->key == NULL || ss->value == NULL ||
            meta__setting_get(f, ss->key, NULL) != NULL ||
            meta__setting_set(f, ss->index, ss->key, ss->value,
                              strlen(ss->value)) != META_OK)
            goto dup;
    }
    int rv = meta__accounts_restore(f, s, errmsg);
    if (rv == 0)
        rv = meta__token_keys_restore(f, s, errmsg);
    return rv != 0 ? rv : meta__policy_restore(f, s, errmsg);
dup:
    at_errmsg_printf(errmsg, "snapshot: duplicate record");
    return AT_ECORRUPT;
}

/* see snapshot.h */
int meta__snap_decode(struct meta_fsm *fresh,
                      const void *buf,
                      size_t len,
                      char *errmsg)
{
    Atoll__Snapshot *s = NULL;
    int rv;
    if (meta__snap_is_flat(buf, len)) {
        /* ATS2: the bulk from its flat sections, the rest from the
         * protobuf inside */
        rv = meta__snap_flat_load(fresh, buf, len, &s, errmsg);
    } else {
        rv = proto_snapshot_unpack(buf, len, &s, errmsg);
        if (rv == 0)
            rv = restore_bulk(fresh, s, errmsg);
    }
    if (rv == 0)
        rv = restore_rest(fresh, s, errmsg);
    proto_snapshot_free(s);
    return rv;
}
