/* Private interface of the raft/ module: the FSM state and its commands. */
#ifndef META_INTERNAL_H
#define META_INTERNAL_H

#include "proto/proto.h"
#include "raft/meta.h"

#define META_REQUESTS_MAX 10000 /* request ids remembered for retries */

struct meta_blob {
    struct at_digest digest;
    uint64_t size;
    char **stores; /* owned array of owned store ids */
    size_t nstores;
    uint64_t stored_ms; /* latest BlobStored/BlobMount timestamp_ms (0: old) */
    size_t mrefs;       /* references from manifests (GC keeps it while > 0) */
};

struct meta_mf {
    struct meta_manifest pub; /* its pointers borrow the fields below */
    uint8_t *bytes;           /* owned */
    char *media_type;         /* owned */
    char *artifact_type;      /* owned, NULL if none */
    char *annotations_json;   /* owned, NULL if none */
    struct at_digest *blobs;  /* owned */
    size_t nblobs;
    struct at_digest *children; /* owned */
    size_t nchildren;
    size_t refs;        /* repositories holding it */
    uint64_t pushed_ms; /* latest PutManifest timestamp_ms (0: old) */
};

/* One tag in a repository's dense tag table. */
struct meta_tag {
    size_t name; /* offset of the NUL-terminated name in tag_names */
    size_t len;  /* strlen of the name */
    struct at_digest digest;
};

struct meta_repo {
    char *name; /* owned */
    /* Tags live in two flat arrays so that a snapshot copies them with two
     * memcpy calls: tagv (dense, unordered; a delete moves the last tag
     * into the hole) and tag_names (names, NUL-terminated; deleted names
     * stay as holes until the arena is compacted). */
    struct at_map tags;    /* tag -> index + 1 into tagv, cast to a pointer */
    struct meta_tag *tagv; /* owned */
    size_t ntagv, tagv_cap;
    char *tag_names; /* owned */
    size_t names_len, names_cap, names_dead;
    struct at_map blobs;     /* raw digest -> struct meta_blob (borrowed) */
    struct at_map manifests; /* raw digest -> struct meta_mf (one ref) */
    /* Sorted tag names, packed: listing 10,000 tags walks one contiguous
     * buffer instead of chasing a pointer per tag. Built lazily. */
    char *sorted_names;   /* owned: names, each NUL-terminated */
    uint32_t *sorted_off; /* owned: offset of each name */
    size_t nsorted;
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

struct meta_fsm {
    struct at_map nodes; /* raw id (8 bytes) -> struct meta_noderec (owned) */
    uint64_t nodes_version;  /* bumped on every change of nodes (local) */
    struct at_map repos;     /* name -> struct meta_repo (owned) */
    struct at_map manifests; /* raw digest -> struct meta_mf (owned) */
    struct at_map blobs;     /* raw digest -> struct meta_blob (owned) */
    struct meta_repo **sorted_repos; /* owned array, borrowed repos */
    size_t nsorted_repos;
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
    /* Local, not in snapshots: tagged PutManifests applied while
     * pushes_record is set (the placement prefetcher drains them). */
    struct meta_push *pushes; /* owned */
    size_t npushes, pushes_cap;
    bool pushes_record;
    uint64_t pushes_dropped;
};

void meta_fsm_init(struct meta_fsm *f, size_t requests_max);
void meta_fsm_release(struct meta_fsm *f);

/* Apply one packed command at log index. Deterministic; business failures
 * and undecodable commands go to *result (META_INVALID), never the return
 * value, which is always 0. */
int meta_fsm_apply(struct meta_fsm *f,
                   uint64_t index,
                   const void *buf,
                   size_t len,
                   int *result);

/* A consistent copy of the whole state, taken on the loop thread and
 * encoded later (possibly on another thread) while applies continue. It
 * shares nothing with the FSM: every string and byte lives in one arena. */
struct meta_snap_job;
/* Copy the state (cheap: flat arrays and one arena, no encoding). Reuses
 * f->snap_spare when there is one. */
struct meta_snap_job *meta_snap_job_take(struct meta_fsm *f);
/* Hand a job back once encoded: kept as f->snap_spare unless big. */
void meta_snap_job_recycle(struct meta_fsm *f, struct meta_snap_job *j);
/* Bytes the job holds; a job above META_SNAP_SPARE_MAX is not kept. */
#define META_SNAP_SPARE_MAX ((size_t)64 << 20)
size_t meta_snap_job_size(const struct meta_snap_job *j);
/* Encode the copy into one buffer from alloc (caller owns). Touches only
 * the job, so it may run on any thread. */
int meta_snap_job_encode(const struct meta_snap_job *j,
                         proto_alloc_fn alloc,
                         void **out,
                         size_t *len,
                         char *errmsg);
void meta_snap_job_free(struct meta_snap_job *j);

/* Encode the whole state into one buffer from alloc (caller owns). */
int meta_fsm_snapshot(const struct meta_fsm *f,
                      proto_alloc_fn alloc,
                      void **out,
                      size_t *len,
                      char *errmsg);
/* Replace the state with a decoded snapshot; on error f is unchanged.
 * Returns 0, AT_ECORRUPT, AT_EPROTO or AT_ETOOBIG. */
int meta_fsm_restore(struct meta_fsm *f,
                     const void *buf,
                     size_t len,
                     char *errmsg);

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

/* Garbage collection (gc.c). Blobs no manifest references whose
 * stored_ms is at least grace_ms before now_ms, in digest order. */
void meta_fsm_gc_candidates(struct meta_fsm *f,
                            uint64_t now_ms,
                            uint64_t grace_ms,
                            meta_blob_cb each,
                            void *data);
/* Untagged manifests collectable by policy (see GcSweep in atoll.proto),
 * at most max of them, ordered so that an index comes before the children
 * it frees (in rounds), then by repository and digest. */
void meta_fsm_gc_manifest_candidates(struct meta_fsm *f,
                                     uint64_t now_ms,
                                     uint64_t grace_ms,
                                     size_t max,
                                     meta_gc_manifest_cb each,
                                     void *data);
/* Apply a GcSweep (timestamp now_ms); returns an enum meta_result. */
int meta__gc_sweep(struct meta_fsm *f,
                   uint64_t now_ms,
                   const Atoll__GcSweep *o);
/* Move the pending removed digests to *out (caller frees); the count. */
size_t meta_fsm_gc_take_removed(struct meta_fsm *f,
                                struct meta_gc_removed **out);
/* Queue a removed digest for local deletion (bounded: drops beyond 1M). */
void meta__gc_removed_push(struct meta_fsm *f,
                           const struct at_digest *d,
                           uint64_t cutoff_ms);
/* Recount every blob's mrefs from the manifests (after a restore). */
void meta__gc_recount(struct meta_fsm *f);

/* Internal state helpers (state.c), used by fsm.c and snapshot.c. */
struct meta_repo *meta__repo_get(struct meta_fsm *f,
                                 const char *name,
                                 bool create);
void meta__repo_maybe_drop(struct meta_fsm *f, struct meta_repo *r);
void meta__repo_link_manifest(struct meta_repo *r, struct meta_mf *mf);
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
void meta__mf_publish(struct meta_mf *mf);
/* Add delta (+1/-1) to the mrefs of every blob record mf references. */
void meta__mf_blob_refs(struct meta_fsm *f,
                        const struct meta_mf *mf,
                        int delta);
void meta__mf_free(struct meta_mf *mf);
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

/* Node table (nodes.c). */
void meta__nodes_release(struct meta_fsm *f);
struct meta_noderec *meta__node_find(const struct meta_fsm *f, uint64_t id);
struct meta_noderec *meta__node_by_name(const struct meta_fsm *f,
                                        const char *name);
/* Does n hold what u would write? */
bool meta__node_equal(const struct meta_noderec *n,
                      const struct meta_node_upsert *u);
/* Apply helpers: return an enum meta_result. */
int meta__node_upsert(struct meta_fsm *f, const Atoll__NodeUpsert *o);
int meta__node_remove(struct meta_fsm *f, uint64_t id);

/* Cluster settings (settings.c). */
#define META_SETTING_KEY_MAX   64
#define META_SETTING_VALUE_MAX (64 * 1024)
#define META_PUSHES_MAX        10000 /* queued tagged pushes, then dropped */
bool meta__setting_key_ok(const char *key);
/* Apply a SetSetting (empty value: remove); an enum meta_result. */
int meta__setting_set(struct meta_fsm *f,
                      uint64_t index,
                      const char *key,
                      const char *value,
                      size_t len);
const char *meta__setting_get(struct meta_fsm *f,
                              const char *key,
                              uint64_t *index);
void meta__settings_each(struct meta_fsm *f,
                         void (*each)(void *data,
                                      const char *key,
                                      const char *value,
                                      uint64_t index),
                         void *data);
void meta__settings_release(struct meta_fsm *f);
/* Queue a tagged push when f->pushes_record (bounded). */
void meta__push_record(struct meta_fsm *f,
                       const char *repo,
                       const struct at_digest *manifest);
size_t meta__pushes_take(struct meta_fsm *f, struct meta_push **out);
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
/* Command builders (command.c): pack a command into a buffer from alloc.
 * Its request_id must be NULL ("": no deduplication) or valid (see
 * meta__request_id_ok). PutManifest, BlobStored and BlobMount carry
 * meta__cmd_clock() as timestamp_ms (tests replace it), BlobStored carries
 * store. Returns 0, AT_EINVAL or AT_ETOOBIG with errmsg filled. */
extern uint64_t (*meta__cmd_clock)(void);
bool meta__request_id_ok(const char *id);
int meta__cmd_pack(const struct meta_cmd *c,
                   const char *store,
                   proto_alloc_fn alloc,
                   void **out,
                   size_t *len,
                   char *errmsg);

#endif /* META_INTERNAL_H */

/* ---- libraft glue (glue.c, transport.c) ---- */
#include <raft.h>
#include <raft/uv.h>

/* The struct raft_fsm handed to libraft, bound to one meta_fsm. */
struct meta_fsm_glue {
    struct raft_fsm iface; /* iface.data points back here */
    struct meta_fsm *fsm;  /* borrowed */
    struct raft *raft;     /* borrowed; set before raft_start */
    /* Snapshot in flight (version-3 FSM): taken on the loop by snapshot,
     * encoded in the pool by snapshot_async, recycled by snapshot_finalize. */
    struct meta_snap_job *job; /* owned; finalize recycles it (fsm spare) */
    bool job_inflight;         /* loop only: snapshot called, not finalized */
    uint64_t job_t0;           /* uv_hrtime() when snapshot was called */
    double job_loop_ms;        /* loop-thread time of the copy */
    double job_loop_cpu_ms;    /* the same in thread CPU time */
    double job_pool_ms;        /* pool time of the encode */
    size_t job_len;            /* encoded bytes */
    uint64_t job_applies;      /* applies while the job was in flight */
    /* optional: called after every apply (tests record the hash chain) */
    void (*applied)(void *data, const struct meta_fsm *f);
    void *data;
};
void meta__glue_init(struct meta_fsm_glue *g, struct meta_fsm *fsm);

/* atoll's raft transport (transport.c): raft connections are HTTP
 * upgrades on the peer port, authenticated with the cluster secret. */
struct meta_dial;
struct meta_transport {
    struct raft_uv_transport t; /* t.impl points back here */
    uv_loop_t *loop;            /* borrowed */
    raft_id id;
    char address[256];      /* our name (raft address) */
    char bind_ip[64];       /* outgoing source IP, "" for any */
    char peer_address[256]; /* ours, sent as X-Atoll-Peer-Address */
    const char *secret;     /* borrowed; cluster secret, never logged */
    unsigned handshake_timeout_ms;
    /* name -> "host:port" of its peer listener; 0 or AT_ENOTFOUND */
    int (*resolve)(void *data, const char *name, char *out, size_t size);
    void *resolve_data;
    raft_uv_accept_cb accept_cb; /* set by listen */
    struct at_list dials;        /* struct meta_dial: handshakes in flight */
    raft_uv_transport_close_cb close_cb;
    unsigned closing_handles; /* dials not yet freed + the close timer */
    bool closing;
    uv_timer_t close_timer; /* only initialized by close */
};
void meta__transport_init(struct meta_transport *tr, uv_loop_t *loop);
/* Hand an inbound raft stream to libraft (or close it when not listening). */
void meta__transport_accept(struct meta_transport *tr,
                            uint64_t id,
                            const char *address,
                            uv_stream_t *stream);
/* "host:port" / "[v6]:port" -> host (NUL-terminated, < size) and port. */
int meta__split_hostport(const char *addr,
                         char *host,
                         size_t size,
                         unsigned *port);

#define META_ADDRESS_MAX 255
