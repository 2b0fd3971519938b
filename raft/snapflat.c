/* Flat snapshots ("ATS2"): the bulk of the state (repositories, tags,
 * manifests, blobs) laid out as fixed-size little-endian records and one
 * arena, so that encoding is a few copies and decoding allocates nothing
 * per record beyond the state itself; the rest (request ids, nodes,
 * settings, accounts, keys, policy: small) stays one protobuf message
 * (ATS1 framing) inside.
 *
 * At a million tags, protobuf-c spent 6-8 s encoding and 10+ s decoding
 * (a message and an allocation per tag and per manifest); that was most
 * of a restart and most of the snapshot child's CPU, which competes with
 * the loop for the machine's cores.
 *
 * Layout (every section a multiple of 8 bytes, in this order):
 *   struct flat_head                       magic "ATS2", version, counts
 *   rest      the framed ATS1 protobuf of everything else
 *   repos     nrepos  x struct flat_repo
 *   tags      ntags   x struct flat_tag    a repo's tags: a contiguous run
 *   mfs       nmfs    x struct flat_mf
 *   blobs     nblobs  x struct flat_blob
 *   strs      nstrs   x uint64_t           arena offsets (blob stores)
 *   digests   ndigests x 32 bytes          runs referenced by index
 *   arena     arena bytes, zero-padded to 8: strings (NUL-terminated),
 *             tag names (per repo), manifest bodies
 *
 * Decoding trusts nothing: every count is bounded by the buffer, every
 * index and offset by its section, every string ends in the arena and is
 * at most PROTO_NAME_MAX bytes, every body at most PROTO_MANIFEST_MAX; then
 * the same cross-reference checks as an ATS1 restore (a repo's manifest,
 * blob link or tag must exist; no duplicate). Arbitrary bytes give
 * AT_ECORRUPT or AT_EPROTO, never a crash (tests/fuzz/fuzz_proto.c). */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include "raft/snapjob.h"

#include "raft/gc.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "flat snapshots are written little endian as in memory"
#endif

#define FLAT_MAGIC   "ATS2"
#define FLAT_VERSION 1

struct flat_head {
    char magic[4];
    uint32_t version;
    uint64_t total; /* bytes, this header included */
    uint64_t rest;  /* bytes of the framed protobuf */
    uint64_t nrepos, ntags, nmfs, nblobs, nstrs, ndigests, arena;
    uint64_t reserved[2]; /* 0 */
};

struct flat_repo {
    uint64_t name;             /* arena offset */
    uint64_t tags, ntags;      /* into tags */
    uint64_t names, names_len; /* the repo's tag names in the arena */
    uint64_t blobs, nblobs;    /* into digests */
    uint64_t mfs, nmfs;        /* into digests */
};

struct flat_tag {
    uint32_t name; /* offset in the repo's names */
    uint32_t len;
    uint8_t digest[AT_DIGEST_LEN];
};

#define FLAT_NONE UINT64_MAX /* absent optional string */

struct flat_mf {
    uint8_t digest[AT_DIGEST_LEN];
    uint8_t subject[AT_DIGEST_LEN]; /* zero unless has_subject */
    uint64_t has_subject;
    uint64_t bytes, len;                             /* arena offset, length */
    uint64_t media_type, artifact_type, annotations; /* offsets, or NONE */
    uint64_t blobs, nblobs;                          /* into digests */
    uint64_t children, nchildren;                    /* into digests */
    uint64_t pushed_ms;
};

struct flat_blob {
    uint8_t digest[AT_DIGEST_LEN];
    uint64_t size, stored_ms;
    uint64_t stores, nstores; /* into strs */
};

_Static_assert(sizeof(struct flat_head) == 96, "flat_head layout");
_Static_assert(sizeof(struct flat_repo) == 72, "flat_repo layout");
_Static_assert(sizeof(struct flat_tag) == 40, "flat_tag layout");
_Static_assert(sizeof(struct flat_tag) == sizeof(struct meta_tag),
               "tags are copied as they are kept");
_Static_assert(sizeof(struct flat_mf) == 152, "flat_mf layout");
_Static_assert(sizeof(struct flat_blob) == 64, "flat_blob layout");

static uint64_t pad8(uint64_t n)
{
    return (n + 7) & ~(uint64_t)7;
}

/* ---- encoding ---- */

/* see snapjob.h */
int meta__snap_flat_encode(const struct meta_snap_job *j,
                           proto_alloc_fn alloc,
                           void **out,
                           size_t *len,
                           char *errmsg)
{
    void *rest = NULL;
    size_t rest_len = 0;
    *out = NULL;
    *len = 0;
    if (j->body_rv != 0) {
        at_errmsg_printf(errmsg, "snapshot: cannot read a manifest body");
        return j->body_rv;
    }
    int rv = meta__snap_pb_encode(j, false, NULL, &rest, &rest_len, errmsg);
    if (rv != 0)
        return rv;
    struct flat_head h;
    memset(&h, 0, sizeof(h));
    memcpy(h.magic, FLAT_MAGIC, 4);
    h.version = FLAT_VERSION;
    h.rest = pad8(rest_len);
    h.nrepos = j->repos.len;
    h.ntags = j->tags.len;
    h.nmfs = j->mfs.len;
    h.nblobs = j->blobs.len;
    h.nstrs = j->strs.len;
    h.ndigests = j->digests.len;
    h.arena = j->arena.len;
    uint64_t total = sizeof(h) + h.rest + h.nrepos * sizeof(struct flat_repo) +
                     h.ntags * sizeof(struct flat_tag) +
                     h.nmfs * sizeof(struct flat_mf) +
                     h.nblobs * sizeof(struct flat_blob) + h.nstrs * 8 +
                     h.ndigests * AT_DIGEST_LEN + pad8(h.arena);
    if (total > PROTO_SNAPSHOT_MAX) {
        free(rest);
        at_errmsg_printf(errmsg,
                         "snapshot of %" PRIu64 " bytes over the limit (%u)",
                         total, PROTO_SNAPSHOT_MAX);
        return AT_ETOOBIG;
    }
    h.total = total;
    uint8_t *buf = alloc != NULL ? alloc(total) : malloc(total);
    if (buf == NULL) {
        free(rest);
        at_errmsg_printf(errmsg, "snapshot: no memory for %" PRIu64 " bytes",
                         total);
        return AT_ENOMEM;
    }
    uint8_t *p = buf;
    memcpy(p, &h, sizeof(h));
    p += sizeof(h);
    memcpy(p, rest, rest_len);
    memset(p + rest_len, 0, h.rest - rest_len);
    p += h.rest;
    free(rest);
    for (size_t i = 0; i < h.nrepos; i++) {
        const struct job_repo *jr = VEC_AT(&j->repos, struct job_repo, i);
        struct flat_repo r = {
            .name = jr->name,
            .tags = jr->tags,
            .ntags = jr->ntags,
            .names = jr->tag_names,
            .names_len = jr->names_len,
            .blobs = jr->blobs,
            .nblobs = jr->nblobs,
            .mfs = jr->manifests,
            .nmfs = jr->nmanifests,
        };
        memcpy(p, &r, sizeof(r));
        p += sizeof(r);
    }
    /* tags: as the FSM keeps them (struct meta_tag has no padding) */
    if (h.ntags > 0)
        memcpy(p, j->tags.p, h.ntags * sizeof(struct flat_tag));
    p += h.ntags * sizeof(struct flat_tag);
    for (size_t i = 0; i < h.nmfs; i++) {
        const struct job_mf *jm = VEC_AT(&j->mfs, struct job_mf, i);
        struct flat_mf m;
        memset(&m, 0, sizeof(m));
        memcpy(m.digest, jm->digest.bytes, AT_DIGEST_LEN);
        if (jm->has_subject) {
            m.has_subject = 1;
            memcpy(m.subject, jm->subject.bytes, AT_DIGEST_LEN);
        }
        m.bytes = jm->bytes;
        m.len = jm->len;
        m.media_type = jm->media_type;
        m.artifact_type =
            jm->artifact_type == NONE ? FLAT_NONE : jm->artifact_type;
        m.annotations = jm->annotations == NONE ? FLAT_NONE : jm->annotations;
        m.blobs = jm->blobs;
        m.nblobs = jm->nblobs;
        m.children = jm->children;
        m.nchildren = jm->nchildren;
        m.pushed_ms = jm->pushed_ms;
        memcpy(p, &m, sizeof(m));
        p += sizeof(m);
    }
    for (size_t i = 0; i < h.nblobs; i++) {
        const struct job_blob *jb = VEC_AT(&j->blobs, struct job_blob, i);
        struct flat_blob b;
        memset(&b, 0, sizeof(b));
        memcpy(b.digest, jb->digest.bytes, AT_DIGEST_LEN);
        b.size = jb->size;
        b.stored_ms = jb->stored_ms;
        b.stores = jb->stores;
        b.nstores = jb->nstores;
        memcpy(p, &b, sizeof(b));
        p += sizeof(b);
    }
    for (size_t i = 0; i < h.nstrs; i++) {
        uint64_t off = ((const size_t *)j->strs.p)[i];
        memcpy(p, &off, 8);
        p += 8;
    }
    if (h.ndigests > 0)
        memcpy(p, j->digests.p, h.ndigests * AT_DIGEST_LEN);
    p += h.ndigests * AT_DIGEST_LEN;
    if (h.arena > 0)
        memcpy(p, j->arena.p, h.arena);
    memset(p + h.arena, 0, pad8(h.arena) - h.arena);
    p += pad8(h.arena);
    AT_ASSERT((uint64_t)(p - buf) == total);
    *out = buf;
    *len = total;
    return 0;
}

/* ---- decoding ---- */

/* see snapjob.h */
bool meta__snap_is_flat(const void *buf, size_t len)
{
    return len >= 4 && memcmp(buf, FLAT_MAGIC, 4) == 0;
}

/* A checked view of the sections. */
struct flat {
    struct flat_head h;
    const uint8_t *repos, *tags, *mfs, *blobs, *strs, *digests;
    const char *arena;
};

/* n records of size bytes fit in the `left` bytes that remain. */
static bool fits(uint64_t n, uint64_t size, uint64_t *left)
{
    if (n > *left / size)
        return false;
    *left -= n * size;
    return true;
}

/* A NUL-terminated string at arena offset off, at most PROTO_NAME_MAX
 * bytes; NULL when it is not one. */
static const char *arena_str(const struct flat *fl, uint64_t off)
{
    if (off >= fl->h.arena)
        return NULL;
    const char *s = fl->arena + off;
    size_t room = fl->h.arena - off;
    const char *nul = memchr(
        s, '\0', room < PROTO_NAME_MAX + 1 ? room : (size_t)PROTO_NAME_MAX + 1);
    return nul != NULL ? s : NULL;
}

/* A run [first, first + n) of digests within the section. */
static bool digest_run(const struct flat *fl, uint64_t first, uint64_t n)
{
    return first <= fl->h.ndigests && n <= fl->h.ndigests - first;
}

static void digest_at(const struct flat *fl, uint64_t i, struct at_digest *d)
{
    memcpy(d->bytes, fl->digests + i * AT_DIGEST_LEN, AT_DIGEST_LEN);
}

static int flat_view(struct flat *fl, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    if (len < sizeof(fl->h))
        return AT_ECORRUPT;
    memcpy(&fl->h, buf, sizeof(fl->h));
    const struct flat_head *h = &fl->h;
    if (memcmp(h->magic, FLAT_MAGIC, 4) != 0 || h->total != len ||
        len > PROTO_SNAPSHOT_MAX || h->reserved[0] != 0 || h->reserved[1] != 0)
        return AT_ECORRUPT;
    if (h->version != FLAT_VERSION)
        return AT_EPROTO;
    uint64_t left = len - sizeof(*h);
    const uint8_t *at = p + sizeof(*h);
    if (h->rest % 8 != 0 || !fits(h->rest, 1, &left))
        return AT_ECORRUPT;
    at += h->rest;
    fl->repos = at;
    if (!fits(h->nrepos, sizeof(struct flat_repo), &left))
        return AT_ECORRUPT;
    fl->tags = fl->repos + h->nrepos * sizeof(struct flat_repo);
    if (!fits(h->ntags, sizeof(struct flat_tag), &left))
        return AT_ECORRUPT;
    fl->mfs = fl->tags + h->ntags * sizeof(struct flat_tag);
    if (!fits(h->nmfs, sizeof(struct flat_mf), &left))
        return AT_ECORRUPT;
    fl->blobs = fl->mfs + h->nmfs * sizeof(struct flat_mf);
    if (!fits(h->nblobs, sizeof(struct flat_blob), &left))
        return AT_ECORRUPT;
    fl->strs = fl->blobs + h->nblobs * sizeof(struct flat_blob);
    if (!fits(h->nstrs, 8, &left))
        return AT_ECORRUPT;
    fl->digests = fl->strs + h->nstrs * 8;
    if (!fits(h->ndigests, AT_DIGEST_LEN, &left))
        return AT_ECORRUPT;
    fl->arena = (const char *)(fl->digests + h->ndigests * AT_DIGEST_LEN);
    if (h->arena > left || pad8(h->arena) != left)
        return AT_ECORRUPT;
    return 0;
}

static int load_blobs(struct meta_fsm *f, const struct flat *fl)
{
    struct at_digest d;
    for (uint64_t i = 0; i < fl->h.nblobs; i++) {
        struct flat_blob fb;
        memcpy(&fb, fl->blobs + i * sizeof(fb), sizeof(fb));
        memcpy(d.bytes, fb.digest, AT_DIGEST_LEN);
        if (fb.stores > fl->h.nstrs || fb.nstores > fl->h.nstrs - fb.stores)
            return AT_EPROTO;
        if (meta__blob_get(f, &d, 0, false) != NULL)
            return AT_ECORRUPT;
        struct meta_blob *b = meta__blob_get(f, &d, fb.size, true);
        b->stored_ms = fb.stored_ms;
        for (uint64_t s = 0; s < fb.nstores; s++) {
            uint64_t off;
            memcpy(&off, fl->strs + (fb.stores + s) * 8, 8);
            const char *store = arena_str(fl, off);
            if (store == NULL)
                return AT_EPROTO;
            meta__blob_add_store(b, store);
        }
    }
    return 0;
}

static int load_manifests(struct meta_fsm *f, const struct flat *fl)
{
    struct at_digest d, subject;
    for (uint64_t i = 0; i < fl->h.nmfs; i++) {
        struct flat_mf m;
        memcpy(&m, fl->mfs + i * sizeof(m), sizeof(m));
        memcpy(d.bytes, m.digest, AT_DIGEST_LEN);
        memcpy(subject.bytes, m.subject, AT_DIGEST_LEN);
        const char *media_type = arena_str(fl, m.media_type);
        const char *artifact_type = m.artifact_type == FLAT_NONE
                                        ? NULL
                                        : arena_str(fl, m.artifact_type);
        const char *annotations =
            m.annotations == FLAT_NONE ? NULL : arena_str(fl, m.annotations);
        if (media_type == NULL ||
            (m.artifact_type != FLAT_NONE && artifact_type == NULL) ||
            (m.annotations != FLAT_NONE && annotations == NULL) ||
            m.has_subject > 1 || m.len > PROTO_MANIFEST_MAX ||
            m.bytes > fl->h.arena || m.len > fl->h.arena - m.bytes ||
            !digest_run(fl, m.blobs, m.nblobs) ||
            !digest_run(fl, m.children, m.nchildren))
            return AT_EPROTO;
        if (at_dmap_get(&f->manifests, &d) != NULL)
            return AT_ECORRUPT;
        struct meta_mf *mf = meta__mf_new(
            f, &d, fl->arena + m.bytes, m.len, media_type, artifact_type,
            annotations, m.has_subject ? &subject : NULL, m.nblobs,
            m.nchildren);
        mf->pushed_ms = m.pushed_ms;
        for (uint64_t k = 0; k < m.nblobs; k++)
            digest_at(fl, m.blobs + k, &mf->blobs[k]);
        for (uint64_t k = 0; k < m.nchildren; k++)
            digest_at(fl, m.children + k, &mf->children[k]);
        at_dmap_put(&f->manifests, mf);
    }
    return 0;
}

static int load_repo(struct meta_fsm *f,
                     const struct flat *fl,
                     const struct flat_repo *fr)
{
    struct at_digest d;
    const char *name = arena_str(fl, fr->name);
    if (name == NULL || fr->tags > fl->h.ntags ||
        fr->ntags > fl->h.ntags - fr->tags || fr->names > fl->h.arena ||
        fr->names_len > fl->h.arena - fr->names ||
        !digest_run(fl, fr->blobs, fr->nblobs) ||
        !digest_run(fl, fr->mfs, fr->nmfs))
        return AT_EPROTO;
    if (meta__repo_get(f, name, false) != NULL)
        return AT_ECORRUPT;
    struct meta_repo *r = meta__repo_get(f, name, true);
    for (uint64_t k = 0; k < fr->nblobs; k++) {
        digest_at(fl, fr->blobs + k, &d);
        struct meta_blob *b = meta__blob_get(f, &d, 0, false);
        if (b == NULL)
            return AT_ECORRUPT;
        at_dmap_put(&r->blobs, b);
    }
    for (uint64_t k = 0; k < fr->nmfs; k++) {
        digest_at(fl, fr->mfs + k, &d);
        struct meta_mf *mf = at_dmap_get(&f->manifests, &d);
        if (mf == NULL)
            return AT_ECORRUPT;
        meta__repo_link_manifest(r, mf);
    }
    const char *names = fl->arena + fr->names;
    for (uint64_t k = 0; k < fr->ntags; k++) {
        struct flat_tag t;
        memcpy(&t, fl->tags + (fr->tags + k) * sizeof(t), sizeof(t));
        /* the name: inside the repo's names, exactly len bytes, then NUL */
        if (t.len > PROTO_NAME_MAX || t.name > fr->names_len ||
            t.len >= fr->names_len - t.name || names[t.name + t.len] != '\0' ||
            memchr(names + t.name, '\0', t.len) != NULL)
            return AT_EPROTO;
        memcpy(d.bytes, t.digest, AT_DIGEST_LEN);
        if (at_dmap_get(&r->manifests, &d) == NULL)
            return AT_ECORRUPT;
        if (meta__tag_exists(r, names + t.name))
            return AT_ECORRUPT;
        meta__tag_set(f, r, names + t.name, &d);
    }
    if (r->tags.len == 0 && r->blobs.len == 0 && r->manifests.len == 0)
        return AT_ECORRUPT;
    return 0;
}

/* see snapjob.h */
int meta__snap_flat_load(struct meta_fsm *f,
                         const void *buf,
                         size_t len,
                         Atoll__Snapshot **rest,
                         char *errmsg)
{
    struct flat fl;
    *rest = NULL;
    int rv = flat_view(&fl, buf, len);
    if (rv != 0) {
        at_errmsg_printf(errmsg, "snapshot: malformed flat layout");
        return rv;
    }
    /* the protobuf part: framed with its own length inside h.rest */
    rv = proto_snapshot_unpack((const uint8_t *)buf + sizeof(fl.h),
                               (size_t)fl.h.rest, rest, errmsg);
    if (rv != 0)
        return rv;
    if ((*rest)->n_repos != 0 || (*rest)->n_manifests != 0 ||
        (*rest)->n_blobs != 0) {
        at_errmsg_printf(errmsg, "snapshot: bulk records in the rest");
        return AT_EPROTO;
    }
    rv = load_blobs(f, &fl);
    if (rv == 0)
        rv = load_manifests(f, &fl);
    for (uint64_t i = 0; rv == 0 && i < fl.h.nrepos; i++) {
        struct flat_repo fr;
        memcpy(&fr, fl.repos + i * sizeof(fr), sizeof(fr));
        rv = load_repo(f, &fl, &fr);
    }
    if (rv == AT_EPROTO)
        at_errmsg_printf(errmsg, "snapshot: malformed flat record");
    else if (rv != 0)
        at_errmsg_printf(errmsg, "snapshot: duplicate or dangling record");
    return rv;
}
