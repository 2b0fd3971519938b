/* The FSM's in-memory state (state.c): repositories, tags, manifests,
 * blobs, request ids, the node table's rows and the local queues, with the
 * helpers that change them and the reads that list them. */
#ifndef META_STATE_H
#define META_STATE_H

#include "raft/bodies.h"
#include "raft/meta.h"

struct meta_fsm;

struct meta_blob {
    struct at_digest digest;
    uint64_t size;
    char **stores; /* owned array of owned store ids */
    size_t nstores;
    uint64_t stored_ms; /* latest BlobStored/BlobMount timestamp_ms (0: old) */
    size_t mrefs;       /* references from manifests (GC keeps it while > 0) */
};

/* A manifest record, in one allocation with its digests (and its bytes
 * when the FSM has no body file). */
struct meta_mf {
    /* media_type and artifact_type (NULL if none) are interned in the FSM
     * (meta__istr_get); annotations_json is in this allocation, and only
     * for a manifest with a subject (the referrers listing's), else NULL;
     * bytes is NULL when the body is in the FSM's body file at body_off
     * (bodies.h), else it points at the body below (NUL after len bytes) */
    struct meta_manifest pub;
    uint64_t body_off;
    uint32_t nblobs, nchildren; /* digests at tail (meta__mf_blobs, ...) */
    uint32_t refs;              /* repositories holding it */
    uint64_t pushed_ms;         /* latest PutManifest timestamp_ms (0: old) */
    struct at_digest tail[];    /* blobs, children, subject, the bytes, then
                                   the annotations */
};

/* mf's blob digests (nblobs), then its child digests (nchildren): in its
 * allocation, no pointer to them stored (16 bytes a record). */
static inline struct at_digest *meta__mf_blobs(const struct meta_mf *mf)
{
    return (struct at_digest *)mf->tail;
}

static inline struct at_digest *meta__mf_children(const struct meta_mf *mf)
{
    return (struct at_digest *)mf->tail + mf->nblobs;
}

/* A manifest record not in any table (refs 0): its blob and child digests
 * are to be filled in (meta__mf_blobs, meta__mf_children); bytes (len)
 * go to f's body file (on the heap without one, or when the write fails),
 * media_type and artifact_type (NULL or "": none) are copied, and so are
 * annotations_json (NULL or "": none) when subject is not NULL (the
 * referrers listing's); subject may be NULL. */
struct meta_mf *meta__mf_new(struct meta_fsm *f,
                             const struct at_digest *d,
                             const void *bytes,
                             size_t len,
                             const char *media_type,
                             const char *artifact_type,
                             const char *annotations_json,
                             const struct at_digest *subject,
                             size_t nblobs,
                             size_t nchildren);

/* One tag in a repository's dense tag table. */
struct meta_tag {
    uint32_t name; /* offset of the NUL-terminated name in tag_names */
    uint32_t len;  /* strlen of the name (PROTO_NAME_MAX at most) */
    struct at_digest digest;
};

/* A repository's tag index: open addressing over 8-byte slots, each the
 * name's 32-bit hash and the tag's index + 1 in tagv (the name itself is
 * read from tag_names): no key copy, no allocation per tag. */
struct meta_tag_index {
    uint64_t *slots; /* owned; 0 empty, UINT64_MAX deleted */
    size_t cap;      /* power of two, or 0 */
    size_t len;      /* tags */
    size_t used;     /* tags + tombstones */
};

struct meta_repo {
    char *name; /* owned */
    /* Tags live in two flat arrays so that a snapshot copies them with two
     * memcpy calls: tagv (dense, unordered; a delete moves the last tag
     * into the hole) and tag_names (names, NUL-terminated; deleted names
     * stay as holes until the arena is compacted). */
    struct meta_tag_index tags; /* tag -> index into tagv */
    struct meta_tag *tagv;      /* owned */
    size_t ntagv, tagv_cap;
    char *tag_names; /* owned */
    size_t names_len, names_cap, names_dead;
    struct at_dmap blobs;     /* digest -> struct meta_blob (borrowed) */
    struct at_dmap manifests; /* digest -> struct meta_mf (one ref) */
    /* The tags in name order: indexes into tagv (ntagv of them while
     * sorted_ok). A write moves the tail of this array by one (a binary
     * search, then a memmove of 4 bytes per later tag), never re-sorts it;
     * a snapshot restore leaves it to be sorted once, at the first list. A
     * page of a listing is a binary search and the page itself. */
    uint32_t *order; /* owned */
    size_t order_cap;
    bool sorted_ok;
};

/* One remembered request, stored inline in the ring (one flat array, so a
 * snapshot copies the ring with at most two memcpy calls). */
struct meta_req {
    char id[META_REQUEST_ID_MAX + 1];
    int result;
    uint64_t index;
};

/* One row of the node table. */
struct meta_noderec {
    uint64_t id;
    char *name;         /* owned */
    char *peer_address; /* owned, "" if unknown */
    char *api_address;  /* owned, "" if unknown */
    char *region;       /* owned, "" if none */
    bool standby;
};

struct policy_rec;

/* Where the digest-keyed tables (at_dmap) find a record's key. */
#define META_MF_KEY   offsetof(struct meta_mf, pub.digest)
#define META_BLOB_KEY offsetof(struct meta_blob, digest)

struct meta_fsm {
    struct at_map nodes; /* raw id (8 bytes) -> struct meta_noderec (owned) */
    uint64_t nodes_version; /* bumped on every change of nodes (local) */
    struct at_map repos;    /* name -> struct meta_repo (owned) */
    /* media and artifact types, interned: a handful of strings shared by
     * millions of manifests (meta__istr_get) */
    struct at_map istrs;      /* string -> struct meta_istr (owned) */
    struct at_dmap manifests; /* digest -> struct meta_mf (owned) */
    /* Local, not in snapshots: the manifests' bytes (bodies.h), in a file
     * opened in bodies_dir (owned, NULL: bodies stay on the heap) */
    struct meta_bodies bodies;
    char *bodies_dir;
    struct at_dmap blobs; /* digest -> struct meta_blob (owned) */
    /* the catalog: repositories holding a manifest, by name; kept in
     * order as repositories enter and leave it (sorted once after a
     * restore, at the first list) */
    struct meta_repo **sorted_repos; /* owned array, borrowed repos */
    size_t nsorted_repos, sorted_repos_cap;
    bool sorted_repos_ok;
    struct at_map reqs;    /* request id -> struct meta_req (in ring) */
    struct meta_req *ring; /* owned FIFO of ring_cap entries */
    size_t ring_cap, ring_head, ring_len;
    uint64_t ntags;
    uint64_t applied_index; /* log index of the last applied command */
    uint64_t applied_count; /* commands applied (dups and invalid included) */
    uint64_t hash;          /* running hash of applied command bytes */
    /* owned: the last snapshot job, kept so the next one reuses memory
     * that is already mapped (fresh pages cost more than the copy) */
    struct meta_snap_job *snap_spare;
    /* Local, not in snapshots: digests whose blob records a GcSweep (or a
     * snapshot install) removed; the node deletes its copies and drains
     * this with meta_fsm_gc_take_removed. */
    struct meta_gc_removed *gc_removed; /* owned */
    size_t ngc_removed, gc_removed_cap;
    uint64_t gc_deleted_total; /* blob records removed by GcSweep here */
    uint64_t gc_mf_deleted;    /* manifests removed by GcSweep here */
    bool gc_scan_wanted;       /* a snapshot was installed (restore) */
    struct at_map settings;    /* key -> struct meta_setting (settings.c) */
    struct at_map users;       /* name -> user record (owned, users.c) */
    struct at_map robots;      /* name -> robot record (owned, users.c) */
    /* token signing keys, oldest first (owned, token_keys.c) */
    struct meta_tkey *tkeys;
    size_t ntkeys;
    struct policy_rec *policy; /* owned (policy.c); NULL: none set */
    /* Local, not in snapshots: tagged PutManifests applied while
     * pushes_record is set (the placement prefetcher drains them). */
    struct meta_push *pushes; /* owned */
    size_t npushes, pushes_cap;
    bool pushes_record;
    uint64_t pushes_dropped;
    /* Local, not in snapshots: changes for the event stream (events.c);
     * NULL while not recording */
    struct meta_eventq *events;
};

/* Helpers for apply, GC and restore. */
struct meta_repo *meta__repo_get(struct meta_fsm *f,
                                 const char *name,
                                 bool create);
void meta__repo_maybe_drop(struct meta_fsm *f, struct meta_repo *r);
/* Link mf into r (a no-op when it is there); r enters the catalog with its
 * first manifest. */
void meta__repo_link_manifest(struct meta_fsm *f,
                              struct meta_repo *r,
                              struct meta_mf *mf);
void meta__repo_unlink_manifest(struct meta_fsm *f,
                                struct meta_repo *r,
                                struct meta_mf *mf);
static inline const char *meta__tag_name(const struct meta_repo *r, size_t i)
{
    return r->tag_names + r->tagv[i].name;
}
void meta__tag_set(struct meta_fsm *f,
                   struct meta_repo *r,
                   const char *tag,
                   const struct at_digest *d);
bool meta__tag_del(struct meta_fsm *f, struct meta_repo *r, const char *tag);
bool meta__tag_exists(const struct meta_repo *r, const char *tag);
/* Add delta (+1/-1) to the mrefs of every blob record mf references. */
void meta__mf_blob_refs(struct meta_fsm *f,
                        const struct meta_mf *mf,
                        int delta);
void meta__mf_free(struct meta_fsm *f, struct meta_mf *mf);
/* Copy mf's len bytes into buf (from the heap or the body file): 0, or
 * AT_EIO when the file cannot be read. */
int meta__mf_body(const struct meta_fsm *f,
                  const struct meta_mf *mf,
                  void *buf);
/* s interned in f (one more reference), and its release. */
const char *meta__istr_get(struct meta_fsm *f, const char *s);
void meta__istr_put(struct meta_fsm *f, const char *s);
struct meta_blob *meta__blob_get(struct meta_fsm *f,
                                 const struct at_digest *d,
                                 uint64_t size,
                                 bool create);
void meta__blob_add_store(struct meta_blob *b, const char *store);
void meta__blob_free(struct meta_blob *b);
void meta__req_remember(struct meta_fsm *f,
                        const char *id,
                        int result,
                        uint64_t index);

/* Free a repository and what it owns (not the records it links). */
void meta__repo_free(struct meta_repo *r);

/* Reads (see the meta_* counterparts in meta.h). */
bool meta_fsm_repo_exists(struct meta_fsm *f, const char *repo);
int meta_fsm_tag_resolve(struct meta_fsm *f,
                         const char *repo,
                         const char *tag,
                         struct at_digest *out);
const struct meta_manifest *meta_fsm_manifest_find(struct meta_fsm *f,
                                                   const char *repo,
                                                   const struct at_digest *d);
bool meta_fsm_blob_linked(struct meta_fsm *f,
                          const char *repo,
                          const struct at_digest *d,
                          uint64_t *size);
/* A repository that links d and that ok() accepts (the first found, in
 * no particular order), or NULL; ok() is asked of at most
 * META_BLOB_SOURCE_ASKS repositories. The name lives until the next
 * apply. */
#define META_BLOB_SOURCE_ASKS 1024
const char *meta_fsm_blob_source(struct meta_fsm *f,
                                 const struct at_digest *d,
                                 bool (*ok)(void *data, const char *repo),
                                 void *data);
bool meta_fsm_blob_known(struct meta_fsm *f,
                         const struct at_digest *d,
                         uint64_t *size);
int meta_fsm_tags_list(struct meta_fsm *f,
                       const char *repo,
                       const char *last,
                       size_t limit,
                       meta_name_cb each,
                       void *data,
                       bool *more);
/* Does a manifest of repo reference blob d (config, layer, or any blob
 * it names)? *by (may be NULL): the first such manifest. Scans the repo's
 * manifests (a blob delete's check, not a hot path). */
bool meta_fsm_blob_used(struct meta_fsm *f,
                        const char *repo,
                        const struct at_digest *d,
                        struct at_digest *by);
void meta_fsm_catalog_list(struct meta_fsm *f,
                           const char *last,
                           size_t limit,
                           meta_name_cb each,
                           void *data,
                           bool *more);
void meta_fsm_referrers(struct meta_fsm *f,
                        const char *repo,
                        const struct at_digest *subject,
                        meta_manifest_cb each,
                        void *data);

/* Placement (the node's prefetcher): is blob d recorded in store? */
bool meta__blob_held_by(struct meta_fsm *f,
                        const struct at_digest *d,
                        const char *store);
void meta__manifest_blobs(struct meta_fsm *f,
                          const char *repo,
                          const struct at_digest *d,
                          void (*each)(void *data,
                                       const struct at_digest *blob,
                                       uint64_t size),
                          void *data);

#endif /* META_STATE_H */
