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
 * at most PROTO_NAME_MAX bytes (annotations: PROTO_COMMAND_MAX), every
 * body at most PROTO_MANIFEST_MAX; then
 * the same cross-reference checks as an ATS1 restore (a repo's manifest,
 * blob link or tag must exist; no duplicate). Arbitrary bytes give
 * AT_ECORRUPT or AT_EPROTO, never a crash (tests/fuzz/fuzz_proto.c). */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include "raft/snapjob.h"

#include "raft/snapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

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

/* The whole encoding's size, from the header's counts. */
static uint64_t head_total(const struct flat_head *h)
{
    return sizeof(*h) + h->rest + h->nrepos * sizeof(struct flat_repo) +
           h->ntags * sizeof(struct flat_tag) +
           h->nmfs * sizeof(struct flat_mf) +
           h->nblobs * sizeof(struct flat_blob) + h->nstrs * 8 +
           h->ndigests * AT_DIGEST_LEN + pad8(h->arena);
}

/* A job's manifest as its flat record. */
static struct flat_mf job_flat_mf(const struct job_mf *jm)
{
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
    m.artifact_type = jm->artifact_type == NONE ? FLAT_NONE : jm->artifact_type;
    m.annotations = jm->annotations == NONE ? FLAT_NONE : jm->annotations;
    m.blobs = jm->blobs;
    m.nblobs = jm->nblobs;
    m.children = jm->children;
    m.nchildren = jm->nchildren;
    m.pushed_ms = jm->pushed_ms;
    return m;
}

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
    h.nstrs = j->bulk_strs;
    h.ndigests = j->digests.len;
    h.arena = j->bulk_arena;
    uint64_t total = head_total(&h);
    if (total > META_SNAP_FLAT_MAX || total > SIZE_MAX) {
        free(rest);
        at_errmsg_printf(errmsg,
                         "snapshot of %" PRIu64
                         " bytes over the limit (%" PRIu64 ")",
                         total, META_SNAP_FLAT_MAX);
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
        struct flat_mf m = job_flat_mf(VEC_AT(&j->mfs, struct job_mf, i));
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

/* A NUL-terminated string at arena offset off, at most max bytes; NULL
 * when it is not one. Names, types and store ids: PROTO_NAME_MAX;
 * annotations: anything a command can carry. */
static const char *arena_str_max(const struct flat *fl,
                                 uint64_t off,
                                 size_t max)
{
    if (off >= fl->h.arena)
        return NULL;
    const char *s = fl->arena + off;
    size_t room = fl->h.arena - off;
    const char *nul = memchr(s, '\0', room < max + 1 ? room : max + 1);
    return nul != NULL ? s : NULL;
}

static const char *arena_str(const struct flat *fl, uint64_t off)
{
    return arena_str_max(fl, off, PROTO_NAME_MAX);
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
        len > META_SNAP_FLAT_MAX || h->reserved[0] != 0 || h->reserved[1] != 0)
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
    /* records come in the writer's table order: reserve (dmap.h) */
    at_dmap_reserve(&f->blobs, (size_t)fl->h.nblobs);
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
    at_dmap_reserve(&f->manifests, (size_t)fl->h.nmfs);
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
            m.annotations == FLAT_NONE
                ? NULL
                : arena_str_max(fl, m.annotations, PROTO_COMMAND_MAX);
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
            digest_at(fl, m.blobs + k, &meta__mf_blobs(mf)[k]);
        for (uint64_t k = 0; k < m.nchildren; k++)
            digest_at(fl, m.children + k, &meta__mf_children(mf)[k]);
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
    r->sorted_ok = false; /* sorted once, at the first list */
    at_dmap_reserve(&r->blobs, (size_t)fr->nblobs);
    at_dmap_reserve(&r->manifests, (size_t)fr->nmfs);
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
        meta__repo_link_manifest(f, r, mf);
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
    at_map_reserve(&f->repos, (size_t)fl.h.nrepos);
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

/* ---- encoding the state itself, in one pass (no job) ----
 *
 * A forked child (snapfork.c) sees the state frozen, so it needs no copy:
 * it plans the sizes, announces them, then writes each section straight
 * from the FSM into its pipe through a small buffer. The offsets a record
 * holds are handed out in the order the arena and the digest section are
 * written, so the bytes are those of meta__snap_flat_encode over a job of
 * the same state. */

struct meta_flat_plan {
    struct flat_head h;
    void *rest; /* malloc'ed */
    size_t rest_len;
};

/* see snapjob.h */
int meta__snap_flat_plan(const struct meta_fsm *f,
                         struct meta_flat_plan **out,
                         uint64_t *len,
                         char *errmsg)
{
    const char *k;
    void *v;
    *out = NULL;
    *len = 0;
    struct meta_flat_plan *pl = at_calloc(1, sizeof(*pl));
    int rv = meta__snap_rest_encode(f, &pl->rest, &pl->rest_len, errmsg);
    if (rv != 0) {
        at_free(pl);
        return rv;
    }
    struct flat_head *h = &pl->h;
    memcpy(h->magic, FLAT_MAGIC, 4);
    h->version = FLAT_VERSION;
    h->rest = pad8(pl->rest_len);
    h->nrepos = f->repos.len;
    h->nmfs = f->manifests.len;
    h->nblobs = f->blobs.len;
    for (size_t i = 0; at_map_next(&f->repos, &i, &k, &v);) {
        const struct meta_repo *r = v;
        h->ntags += r->ntagv;
        h->ndigests += r->blobs.len + r->manifests.len;
        h->arena += strlen(r->name) + 1 + r->names_len;
    }
    for (size_t i = 0; at_dmap_next(&f->manifests, &i, &v);) {
        const struct meta_mf *mf = v;
        h->ndigests += mf->nblobs + mf->nchildren;
        h->arena += mf->pub.len + strlen(mf->pub.media_type) + 1;
        if (mf->pub.artifact_type != NULL)
            h->arena += strlen(mf->pub.artifact_type) + 1;
        if (mf->pub.annotations_json != NULL)
            h->arena += strlen(mf->pub.annotations_json) + 1;
    }
    for (size_t i = 0; at_dmap_next(&f->blobs, &i, &v);) {
        const struct meta_blob *b = v;
        h->nstrs += b->nstores;
        for (size_t t = 0; t < b->nstores; t++)
            h->arena += strlen(b->stores[t]) + 1;
    }
    h->total = head_total(h);
    if (h->total > META_SNAP_FLAT_MAX || h->total > SIZE_MAX) {
        at_errmsg_printf(errmsg,
                         "snapshot of %" PRIu64
                         " bytes over the limit (%" PRIu64 ")",
                         h->total, META_SNAP_FLAT_MAX);
        meta__snap_flat_plan_free(pl);
        return AT_ETOOBIG;
    }
    *out = pl;
    *len = h->total;
    return 0;
}

/* see snapjob.h */
void meta__snap_flat_plan_free(struct meta_flat_plan *pl)
{
    if (pl == NULL)
        return;
    free(pl->rest);
    at_free(pl);
}

/* Where the bytes go: memory (mem) or a descriptor (through buf). */
struct sink {
    uint8_t *mem; /* memory: the whole encoding's room */
    int fd;       /* else: written through buf */
    uint8_t *buf;
    size_t n, size;
    uint64_t at; /* bytes put so far */
    int rv;      /* first error */
    /* manifest bodies: a map of the body file (may be NULL), a scratch
     * buffer for those read with pread */
    const uint8_t *bodies;
    uint64_t bodies_len;
    uint8_t *scratch;
    struct meta_snaphash *hash; /* fd: what is written is hashed (or NULL) */
    /* fd: bytes written, and the writeback windows (sink_writeback) */
    uint64_t off, wb_prev, wb_start;
    bool wb_off; /* not a file (a pipe): no writeback to start */
};

/* Into a file, the writeback of every SINK_WRITEBACK_STEP bytes starts
 * as they are written, and the window before waits for its own: a
 * snapshot's dirty pages never pile up for one flush at the end (with
 * gigabytes of RAM the kernel left them all dirty, and the sync of
 * 800 MB at 1M tags queued the raft log's own syncs behind it: a stall
 * of every write and of the reads that wait for them). The final fsync
 * is still the pool's (snapfile.c); this is only its pacing. */
#define SINK_WRITEBACK_STEP ((uint64_t)8 << 20)

static _Atomic unsigned long writebacks;

/* see snapjob.h */
unsigned long meta__snap_flat_writebacks(void)
{
    return writebacks;
}

static void sink_writeback(struct sink *k)
{
    if (k->wb_off || k->off - k->wb_start < SINK_WRITEBACK_STEP)
        return;
    if (k->wb_start > k->wb_prev)
        (void)sync_file_range(
            k->fd, (off_t)k->wb_prev, (off_t)(k->wb_start - k->wb_prev),
            SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                SYNC_FILE_RANGE_WAIT_AFTER);
    if (sync_file_range(k->fd, (off_t)k->wb_start,
                        (off_t)(k->off - k->wb_start),
                        SYNC_FILE_RANGE_WRITE) != 0)
        k->wb_off = true; /* ESPIPE: a pipe */
    else
        writebacks++;
    k->wb_prev = k->wb_start;
    k->wb_start = k->off;
}

static void sink_flush(struct sink *k)
{
    size_t done = 0;
    if (k->hash != NULL && k->rv == 0)
        meta__snaphash_update(k->hash, k->buf, k->n);
    while (k->rv == 0 && done < k->n) {
        ssize_t w = write(k->fd, k->buf + done, k->n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            k->rv = AT_EIO;
        else
            done += (size_t)w;
    }
    k->off += done;
    k->n = 0;
    sink_writeback(k);
}

static void put(struct sink *k, const void *p, size_t n)
{
    const uint8_t *c = p;
    if (k->mem != NULL) {
        if (n > 0)
            memcpy(k->mem + k->at, p, n);
        k->at += n;
        return;
    }
    k->at += n;
    while (n > 0 && k->rv == 0) {
        size_t room = k->size - k->n;
        size_t m = n < room ? n : room;
        memcpy(k->buf + k->n, c, m);
        k->n += m;
        c += m;
        n -= m;
        if (k->n == k->size)
            sink_flush(k);
    }
}

static void put_str(struct sink *k, const char *s)
{
    put(k, s, strlen(s) + 1);
}

static void put_zeros(struct sink *k, size_t n)
{
    static const uint8_t zeros[8];
    AT_ASSERT(n <= sizeof(zeros));
    put(k, zeros, n);
}

static void put_body(struct sink *k,
                     const struct meta_fsm *f,
                     const struct meta_mf *mf)
{
    size_t len = mf->pub.len;
    if (mf->pub.bytes != NULL) {
        put(k, mf->pub.bytes, len);
    } else if (k->bodies != NULL && mf->body_off <= k->bodies_len &&
               len <= k->bodies_len - mf->body_off) {
        put(k, k->bodies + mf->body_off, len);
    } else {
        if (k->scratch == NULL)
            k->scratch = at_malloc(PROTO_MANIFEST_MAX);
        if (len > PROTO_MANIFEST_MAX || meta__mf_body(f, mf, k->scratch) != 0) {
            k->rv = AT_EIO;
            return;
        }
        put(k, k->scratch, len);
    }
}

static void put_digests(struct sink *k, const struct at_digest *d, size_t n)
{
    if (n > 0)
        put(k, d, n * AT_DIGEST_LEN);
}

static void put_dmap_keys(struct sink *k, const struct at_dmap *m)
{
    void *v;
    for (size_t t = 0; at_dmap_next(m, &t, &v);)
        put(k, (const char *)v + m->key_off, AT_DIGEST_LEN);
}

static int write_all_sections(struct sink *k,
                              const struct meta_fsm *f,
                              const struct meta_flat_plan *pl)
{
    const struct flat_head *h = &pl->h;
    const char *key;
    void *v;
    uint64_t a = 0, t = 0, d = 0, s = 0; /* arena, tags, digests, strs */

    put(k, h, sizeof(*h));
    put(k, pl->rest, pl->rest_len);
    put_zeros(k, h->rest - pl->rest_len);
    for (size_t i = 0; at_map_next(&f->repos, &i, &key, &v);) {
        const struct meta_repo *r = v;
        struct flat_repo fr = { .name = a, .tags = t, .ntags = r->ntagv };
        a += strlen(r->name) + 1;
        t += r->ntagv;
        fr.names = a;
        fr.names_len = r->names_len;
        a += r->names_len;
        fr.blobs = d;
        fr.nblobs = r->blobs.len;
        d += r->blobs.len;
        fr.mfs = d;
        fr.nmfs = r->manifests.len;
        d += r->manifests.len;
        put(k, &fr, sizeof(fr));
    }
    for (size_t i = 0; at_map_next(&f->repos, &i, &key, &v);) {
        const struct meta_repo *r = v;
        if (r->ntagv > 0)
            put(k, r->tagv, r->ntagv * sizeof(struct flat_tag));
    }
    for (size_t i = 0; at_dmap_next(&f->manifests, &i, &v);) {
        const struct meta_mf *mf = v;
        struct flat_mf m;
        memset(&m, 0, sizeof(m));
        memcpy(m.digest, mf->pub.digest.bytes, AT_DIGEST_LEN);
        if (mf->pub.subject != NULL) {
            m.has_subject = 1;
            memcpy(m.subject, mf->pub.subject->bytes, AT_DIGEST_LEN);
        }
        m.bytes = a;
        m.len = mf->pub.len;
        a += mf->pub.len;
        m.media_type = a;
        a += strlen(mf->pub.media_type) + 1;
        m.artifact_type = FLAT_NONE;
        if (mf->pub.artifact_type != NULL) {
            m.artifact_type = a;
            a += strlen(mf->pub.artifact_type) + 1;
        }
        m.annotations = FLAT_NONE;
        if (mf->pub.annotations_json != NULL) {
            m.annotations = a;
            a += strlen(mf->pub.annotations_json) + 1;
        }
        m.blobs = d;
        m.nblobs = mf->nblobs;
        d += mf->nblobs;
        m.children = d;
        m.nchildren = mf->nchildren;
        d += mf->nchildren;
        m.pushed_ms = mf->pushed_ms;
        put(k, &m, sizeof(m));
    }
    for (size_t i = 0; at_dmap_next(&f->blobs, &i, &v);) {
        const struct meta_blob *b = v;
        struct flat_blob fb;
        memset(&fb, 0, sizeof(fb));
        memcpy(fb.digest, b->digest.bytes, AT_DIGEST_LEN);
        fb.size = b->size;
        fb.stored_ms = b->stored_ms;
        fb.stores = s;
        fb.nstores = b->nstores;
        s += b->nstores;
        put(k, &fb, sizeof(fb));
    }
    for (size_t i = 0; at_dmap_next(&f->blobs, &i, &v);) {
        const struct meta_blob *b = v;
        for (size_t x = 0; x < b->nstores; x++) {
            put(k, &a, 8);
            a += strlen(b->stores[x]) + 1;
        }
    }
    for (size_t i = 0; at_map_next(&f->repos, &i, &key, &v);) {
        const struct meta_repo *r = v;
        put_dmap_keys(k, &r->blobs);
        put_dmap_keys(k, &r->manifests);
    }
    for (size_t i = 0; at_dmap_next(&f->manifests, &i, &v);) {
        const struct meta_mf *mf = v;
        put_digests(k, meta__mf_blobs(mf), mf->nblobs);
        put_digests(k, meta__mf_children(mf), mf->nchildren);
    }
    for (size_t i = 0; at_map_next(&f->repos, &i, &key, &v);) {
        const struct meta_repo *r = v;
        put_str(k, r->name);
        put(k, r->tag_names, r->names_len);
    }
    for (size_t i = 0; k->rv == 0 && at_dmap_next(&f->manifests, &i, &v);) {
        const struct meta_mf *mf = v;
        put_body(k, f, mf);
        put_str(k, mf->pub.media_type);
        if (mf->pub.artifact_type != NULL)
            put_str(k, mf->pub.artifact_type);
        if (mf->pub.annotations_json != NULL)
            put_str(k, mf->pub.annotations_json);
    }
    for (size_t i = 0; at_dmap_next(&f->blobs, &i, &v);) {
        const struct meta_blob *b = v;
        for (size_t x = 0; x < b->nstores; x++)
            put_str(k, b->stores[x]);
    }
    put_zeros(k, pad8(h->arena) - h->arena);
    /* the plan and the pass must agree, or the state changed under us */
    AT_ASSERT(k->rv != 0 ||
              (a == h->arena && t == h->ntags && d == h->ndigests &&
               s == h->nstrs && k->at == h->total));
    return k->rv;
}

/* see snapjob.h */
int meta__snap_flat_write_fd(const struct meta_fsm *f,
                             const struct meta_flat_plan *pl,
                             int fd,
                             const void *bodies,
                             uint64_t bodies_len,
                             uint64_t *hash)
{
    struct sink k;
    struct meta_snaphash h;
    memset(&k, 0, sizeof(k));
    if (hash != NULL) {
        meta__snaphash_init(&h);
        k.hash = &h;
    }
    k.fd = fd;
    k.size = (size_t)1 << 20;
    k.buf = at_malloc(k.size);
    k.bodies = bodies;
    k.bodies_len = bodies_len;
    int rv = write_all_sections(&k, f, pl);
    if (rv == 0)
        sink_flush(&k);
    rv = k.rv;
    if (hash != NULL && rv == 0)
        *hash = meta__snaphash_final(&h);
    at_free(k.buf);
    at_free(k.scratch);
    return rv;
}

/* see snapjob.h */
int meta__snap_flat_direct(const struct meta_fsm *f,
                           proto_alloc_fn alloc,
                           void **out,
                           size_t *len,
                           char *errmsg)
{
    struct meta_flat_plan *pl;
    uint64_t total;
    *out = NULL;
    *len = 0;
    int rv = meta__snap_flat_plan(f, &pl, &total, errmsg);
    if (rv != 0)
        return rv;
    uint8_t *mem = alloc != NULL ? alloc(total) : malloc(total);
    if (mem == NULL) {
        meta__snap_flat_plan_free(pl);
        at_errmsg_printf(errmsg, "snapshot: no memory for %" PRIu64 " bytes",
                         total);
        return AT_ENOMEM;
    }
    struct sink k;
    memset(&k, 0, sizeof(k));
    k.mem = mem;
    rv = write_all_sections(&k, f, pl);
    at_free(k.scratch);
    meta__snap_flat_plan_free(pl);
    if (rv != 0) {
        at_errmsg_printf(errmsg, "snapshot: cannot read a manifest body");
        free(mem); /* alloc: malloc-compatible (snapjob.h) */
        return rv;
    }
    *out = mem;
    *len = total;
    return 0;
}
