/* Private to storage/: the upload session struct and helpers shared by
 * blob.c and upload.c (tests may include it for white-box checks). */
#ifndef STORAGE_INTERNAL_H
#define STORAGE_INTERNAL_H

#include "storage/storage.h"

#define STORAGE__CHUNK              ((size_t)1 << 20)   /* queue buffer size */
#define STORAGE__CHUNK_SMALL        ((size_t)64 << 10)  /* first small buffer */
#define STORAGE__SYNC_RANGE         ((uint64_t)8 << 20) /* writeback kick */
#define STORAGE__BG_SYNC_STEP       ((uint64_t)16 << 20) /* background fsync */
#define STORAGE__HIGH_WATER_DEFAULT ((size_t)16 << 20)
#define STORAGE__BATCH_MIN          ((size_t)1 << 20) /* bytes per work item */
#define STORAGE__CHUNK_CACHE_MAX    8u /* spare STORAGE__CHUNK buffers kept */
#define STORAGE__HASH_MIN           ((uint64_t)2 << 20) /* lone hash item */
#define STORAGE__REPO_MAX           1024
#define STORAGE__INFO_MAX           4096
#define STORAGE__PURGE_MAX_MS       60000u

/* Loop-side state shared by the store and its sessions. It outlives
 * struct storage: freed once the store is closed, every session struct is
 * freed and both timers are closed. */
struct storage__core {
    struct storage *s; /* borrowed; NULL once storage_close() ran */
    uv_loop_t *loop;   /* borrowed */
    size_t write_high_water;
    uv_timer_t purge_timer;     /* periodic purge of stale uploads, unref'd */
    uv_timer_t defer_timer;     /* runs deferred callbacks next iteration */
    struct at_list defer;       /* struct storage_upload (defer_link), each
                                   holding a session reference */
    unsigned sessions;          /* live session structs */
    int handles_open;           /* timers not yet closed */
    struct at_list chunk_cache; /* owned: spare full-size chunks, so a stream
                                   does not page-fault in fresh memory for
                                   every buffer */
    unsigned chunks_cached;
    bool defer_closing;
    bool closing;
};

/* One buffer of queued upload bytes, shared by the write chain and the hash
 * chain: freed (loop thread) once both have consumed it. A sealed chunk
 * never grows again, so a worker may read it while the loop appends to the
 * list; workers never follow the link of the last chunk of their batch. */
struct storage__chunk {
    struct at_list link; /* in the session's chunks or the core's cache */
    uint64_t off;        /* stream offset of data[0] */
    size_t len;
    size_t cap;
    bool sealed; /* handed to a chain (or full): no more appends */
    bool wrote;  /* the write chain is done with it (loop thread) */
    bool hashed; /* the hash chain is done with it (loop thread) */
    char data[];
};

/* One storage_upload_flush() waiter. */
struct storage__flush {
    struct at_list link; /* in the session's flushes */
    uint64_t target;     /* satisfied once this many bytes are written */
    bool sync;
    storage_cb cb;
    void *data; /* borrowed */
};

enum storage__work_kind {
    STORAGE__WORK_WRITE,  /* create the file once, pwrite a batch, maybe sync */
    STORAGE__WORK_SYNC,   /* fdatasync (and session metadata once) */
    STORAGE__WORK_COMMIT, /* verify digest, fsync, rename, fsync dirs */
    STORAGE__WORK_REMOVE, /* close the fd, remove the session files */
};

enum storage__commit_state {
    STORAGE__COMMIT_NONE,
    STORAGE__COMMIT_PENDING, /* requested, waiting for both chains */
    STORAGE__COMMIT_RUNNING, /* work item in flight */
    STORAGE__COMMIT_DONE,    /* result waiting to be delivered */
};

/* An upload session. Two ordered chains of pool work items, each with at
 * most one item in flight: the write chain (WRITE, SYNC, COMMIT, REMOVE) and
 * the hash chain (sha256 of the same bytes). COMMIT and REMOVE run only when
 * the hash chain is idle. Fields marked [write] belong to the pool thread
 * while wr_inflight is true, [hash] while h_inflight is true, [both] while
 * either is; the loop thread owns them otherwise. */
struct storage_upload {
    struct storage__core *core; /* borrowed; outlives every session */
    char id[STORAGE_UPLOAD_ID_MAX + 1];
    char *repo;        /* owned */
    char *data_path;   /* owned: <store>/uploads/<id>.data */
    char *info_path;   /* owned: <store>/uploads/<id>.info */
    char *uploads_dir; /* owned: <store>/uploads */
    uint64_t created_wall_ms;
    unsigned refs; /* table + callers + waiters + deferred + work */
    bool in_table;
    bool locked;
    bool canceled;
    bool committed;
    bool removed;           /* removal submitted (or nothing to remove) */
    int error;              /* first write/sync/read error, sticky */
    uint64_t size;          /* bytes accepted: written + queued */
    int64_t last_active_ms; /* monotonic */

    /* the chunk list, loop thread */
    struct at_list chunks;          /* owned: struct storage__chunk, oldest
                                       first, each until both chains are done
                                       with it */
    struct storage__chunk *c_spare; /* owned: handed out by reserve, unlinked */
    struct storage__chunk *wr_next; /* borrowed: first chunk not yet written,
                                       NULL when none */
    struct storage__chunk *h_next;  /* borrowed: first chunk not yet hashed,
                                       NULL when none */
    size_t queued;                  /* bytes in the chunk list */

    /* progress as seen by the loop thread (copied at each completion) */
    uint64_t written;     /* bytes in the data file */
    uint64_t synced_upto; /* fdatasync'd prefix */
    bool meta_ok;         /* info + uploads/ fsynced */
    uint64_t hashed;      /* sha covers [0, hashed) */

    /* waiters, loop thread; each holds a reference */
    storage_cb drain_cb;
    void *drain_data;       /* borrowed */
    struct at_list flushes; /* owned: struct storage__flush, oldest first */
    enum storage__commit_state commit_state;
    struct at_digest commit_expected;
    storage_commit_cb commit_cb;
    void *commit_data; /* borrowed */
    int commit_status;
    char *blob_path;  /* owned, set by commit */
    char *blob_dir;   /* owned: .../blobs/sha256/<hh> */
    char *blobs_root; /* owned: .../blobs/sha256 */

    /* the write chain */
    uv_work_t wr_work;
    bool wr_inflight;
    enum storage__work_kind wr_kind;
    struct storage__chunk *wr_first; /* borrowed: the batch in flight */
    size_t wr_count;                 /* chunks in the batch */
    bool wr_sync;
    int wr_status;                  /* [write] */
    char wr_errmsg[AT_ERRMSG_SIZE]; /* [write] */
    int fd;                         /* [write] data file, or -1 (not yet) */
    uint64_t wr_off;                /* [write] bytes in the data file */
    uint64_t wr_synced;             /* [write] fdatasync'd prefix */
    uint64_t sfr_start;             /* [write] start of unkicked range */
    uint64_t sfr_prev;              /* [write] start of the last kicked one */
    uint64_t sfr_waited;            /* [write] writeback waited below */
    bool info_exists;               /* [write] <id>.info is on disk */
    bool info_synced;               /* [write] and fsynced */
    bool meta_synced;               /* [write] info + uploads/ fsynced */
    struct at_digest w_digest;      /* [write] commit result */
    bool w_dup; /* [write] commit kept an existing copy: remove ours */

    /* the hash chain */
    uv_work_t h_work;
    bool h_inflight;
    struct storage__chunk *h_first; /* borrowed: the batch in flight */
    size_t h_count;
    uint64_t h_file_end;           /* rehash the file up to here first */
    int h_status;                  /* [hash] */
    char h_errmsg[AT_ERRMSG_SIZE]; /* [hash] */
    uint64_t h_off;                /* [hash] sha covers [0, h_off) */
    struct at_sha256 sha;          /* [hash]; [write] in COMMIT */
    /* Set by the loop when a hash watch fires (hash chain idle, COMMIT not
     * running): h_digest is the digest of [0, h_off) and sha is a fresh
     * context; COMMIT uses h_digest instead of finalizing sha. [write] in
     * COMMIT. */
    bool h_final;
    struct at_digest h_digest;

    /* the hash watch (storage_upload_hash_watch), loop thread */
    bool hw_armed;    /* the session is capped at hw_size bytes */
    uint64_t hw_size; /* bytes the watch covers */
    struct at_digest hw_want;
    storage_hashed_cb hw_cb; /* NULL once fired (or never armed) */
    void *hw_data;           /* borrowed */

    /* the background sync chain: fdatasync of what is already written,
     * running beside the write chain, so the device flush that commit needs
     * overlaps with receiving the rest of the blob */
    uv_work_t bs_work;
    bool bs_inflight;
    bool no_throttle;   /* storage_upload_no_throttle: no writeback pacing */
    int bs_fd;          /* the data fd while bs_inflight */
    uint64_t bs_target; /* written offset when the item started */
    uint64_t bs_done;   /* loop: prefix made durable by this chain */
    int bs_status;      /* [bsync] */
    char bs_errmsg[AT_ERRMSG_SIZE]; /* [bsync] */

    struct at_list defer_link; /* in the core's defer list while deferred */
};

/* The chunk after c in its session's list. Only for a chunk that is not the
 * last one: a worker never goes past the last chunk of its batch, whose link
 * the loop thread may change. */
static inline struct storage__chunk *storage__chunk_next(
    const struct storage__chunk *c)
{
    return AT_LIST_ENTRY(c->link.next, struct storage__chunk, link);
}

/* The chunk after c in u's list, or NULL (loop thread). */
static inline struct storage__chunk *storage__chunk_after(
    const struct storage_upload *u,
    const struct storage__chunk *c)
{
    struct at_list *l = at_list_next(&u->chunks, &c->link);
    return l != NULL ? AT_LIST_ENTRY(l, struct storage__chunk, link) : NULL;
}

/* The newest chunk of u, or NULL (loop thread). */
static inline struct storage__chunk *storage__chunk_last(
    const struct storage_upload *u)
{
    struct at_list *l = at_list_last(&u->chunks);
    return l != NULL ? AT_LIST_ENTRY(l, struct storage__chunk, link) : NULL;
}

/* ---- blob.c ---- */

/* Map an errno value to AT_ENOSPC (ENOSPC, EDQUOT) or AT_EIO. */
int storage__io_err(int err);

/* Remove a directory tree without following symlinks. 0 or -errno. Safe on
 * any thread. */
int storage__rm_tree(const char *path);

/* fsync a directory. 0 or -errno. */
int storage__fsync_dir(const char *path);

/* ---- upload.c ---- */

/* Rediscover uploads/<id>.{data,info} sessions at open; remove the rest. */
int storage__uploads_load(struct storage *s);

/* Free every session of a store that failed to open (no work in flight). */
void storage__uploads_drop(struct storage *s);

void storage__defer_timer_cb(uv_timer_t *t);
void storage__purge_timer_cb(uv_timer_t *t);

/* Free the spare chunks (when the core is freed). */
void storage__chunk_cache_drop(struct storage__core *c);

/* Called by upload.c when a session struct is created / freed. */
void storage__session_new(struct storage__core *c);
void storage__session_freed(struct storage__core *c);

#endif /* STORAGE_INTERNAL_H */
