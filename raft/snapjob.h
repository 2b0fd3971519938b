/* The snapshot job's layout (snapshot.c takes it, snapshot.c and
 * snapflat.c encode it): a flat copy of the state in a few arrays and one
 * arena of strings and bytes. Internal to the snapshot files. */
#ifndef META_SNAPJOB_H
#define META_SNAPJOB_H

#include "proto/proto.h"
#include "raft/state.h"

#define NONE SIZE_MAX /* absent optional string */

struct job_repo {
    size_t name;                  /* arena offset */
    size_t tags, ntags;           /* into job tags */
    size_t tag_names, names_len;  /* the repo's tag names: arena offset */
    size_t blobs, nblobs;         /* into job digests */
    size_t manifests, nmanifests; /* into job digests */
};

struct job_mf {
    struct at_digest digest;
    size_t bytes, len;                             /* arena offset, length */
    size_t media_type, artifact_type, annotations; /* offsets or NONE */
    bool has_subject;
    struct at_digest subject;
    size_t blobs, nblobs;       /* into job digests */
    size_t children, nchildren; /* into job digests */
    uint64_t pushed_ms;
};

struct job_blob {
    struct at_digest digest;
    uint64_t size;
    uint64_t stored_ms;
    size_t stores, nstores; /* into job strs (arena offsets) */
};

struct job_node {
    uint64_t id;
    size_t name, peer_address, api_address, region; /* arena offsets */
    bool standby;
};

struct job_setting {
    size_t key, value; /* arena offsets */
    uint64_t index;
};

struct job_user {
    size_t name, hash;      /* arena offsets */
    size_t groups, ngroups; /* into job strs (arena offsets) */
    bool admin;
    uint64_t created_ms, index;
};

struct job_perm {
    size_t repository; /* arena offset */
    unsigned actions;
};

struct job_robot {
    size_t name, hash;    /* arena offsets */
    size_t perms, nperms; /* into job perms */
    uint64_t expires_ms, created_ms, index;
};

struct job_tkey {
    size_t kid, pem; /* arena offsets */
    uint64_t created_ms, index;
};

/* A growable array of fixed-size items. */
struct vec {
    void *p; /* owned */
    size_t len, cap;
};

struct meta_snap_job {
    uint64_t applied_index, applied_count, hash;
    struct vec arena; /* chars: every string (NUL-terminated) and byte */
    struct vec repos, tags, digests, mfs, blobs, strs, reqs, nodes, settings;
    struct vec users, robots, perms, tkeys;
    struct meta_policy_snap *policy; /* owned; NULL: none set */
    int body_rv; /* AT_EIO: a manifest body could not be read */
    /* arena bytes and strs of the bulk (repos, manifests, blobs): the rest
     * follows them */
    size_t bulk_arena, bulk_strs;
};

/* The protobuf encoding (ATS1) of j: all of it, or (bulk false) all but
 * the repositories, manifests and blobs, which ATS2 lays out flat. */
int meta__snap_pb_encode(const struct meta_snap_job *j,
                         bool bulk,
                         proto_alloc_fn alloc,
                         void **out,
                         size_t *len,
                         char *errmsg);

/* The largest ATS2 encoding written or read. Its offsets are 64-bit, and
 * a snapshot file (snapfile.h) is mapped, never held in one buffer by
 * libraft, so the 2 GiB bound of a packed protobuf (PROTO_SNAPSHOT_MAX,
 * ATS1) does not apply; what bounds a snapshot is the disk and, where one
 * is sent to a node that fell behind, memory for it on both ends. */
#define META_SNAP_FLAT_MAX ((uint64_t)1 << 38) /* 256 GiB */

/* ATS2 (snapflat.c): j encoded flat, in one buffer from alloc. */
int meta__snap_flat_encode(const struct meta_snap_job *j,
                           proto_alloc_fn alloc,
                           void **out,
                           size_t *len,
                           char *errmsg);
/* The protobuf part of an ATS2 snapshot of f (everything but the bulk),
 * in a malloc'ed buffer. */
int meta__snap_rest_encode(const struct meta_fsm *f,
                           void **out,
                           size_t *len,
                           char *errmsg);
/* ATS2 of f itself, no job: one buffer from alloc (NULL: malloc; else an
 * allocator whose memory free() releases), written in one pass over the
 * state (meta_fsm_snapshot). */
int meta__snap_flat_direct(const struct meta_fsm *f,
                           proto_alloc_fn alloc,
                           void **out,
                           size_t *len,
                           char *errmsg);
/* The plan of an ATS2 encoding of f: its size (*len) and the parts
 * written before the bulk. 0, AT_ETOOBIG, AT_ENOMEM. */
struct meta_flat_plan;
int meta__snap_flat_plan(const struct meta_fsm *f,
                         struct meta_flat_plan **out,
                         uint64_t *len,
                         char *errmsg);
void meta__snap_flat_plan_free(struct meta_flat_plan *pl);
/* Write the planned encoding of f (unchanged since the plan) to fd through
 * a 1 MiB buffer; manifest bodies from bodies (a map of f's body file of
 * bodies_len bytes; NULL: read them); *hash (hash NULL: none) gets
 * meta__snapfile_hash of what was written. 0, or AT_EIO (a write or a body
 * read failed). */
int meta__snap_flat_write_fd(const struct meta_fsm *f,
                             const struct meta_flat_plan *pl,
                             int fd,
                             const void *bodies,
                             uint64_t bodies_len,
                             uint64_t *hash);
/* Writebacks meta__snap_flat_write_fd started in this process (into a
 * file, one per SINK_WRITEBACK_STEP bytes; none into a pipe): tests. */
unsigned long meta__snap_flat_writebacks(void);
/* Does buf start like an ATS2 snapshot? */
bool meta__snap_is_flat(const void *buf, size_t len);
/* Check an ATS2 snapshot and load its repositories, manifests and blobs
 * into f (fresh) as restore_bulk does for ATS1; *rest (to free with
 * proto_snapshot_free, also on error) is its protobuf part, which holds
 * no repository, manifest or blob. 0, AT_ECORRUPT, AT_EPROTO. */
int meta__snap_flat_load(struct meta_fsm *f,
                         const void *buf,
                         size_t len,
                         Atoll__Snapshot **rest,
                         char *errmsg);

#define VEC_AT(v, type, i) (&((type *)(v)->p)[i])

/* An arena string of the job j in scope. */
#define STR(off) ((char *)j->arena.p + (off))

#endif /* META_SNAPJOB_H */
