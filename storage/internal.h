/* Private to storage/: the upload session struct and helpers shared by
 * blob.c and upload.c (tests may include it for white-box checks). */
#ifndef STORAGE_INTERNAL_H
#define STORAGE_INTERNAL_H

#include "storage/storage.h"

#define STORAGE__CHUNK              ((size_t)1 << 20)   /* queue buffer size */
#define STORAGE__CHUNK_SMALL        ((size_t)64 << 10)  /* first small buffer */
#define STORAGE__SYNC_RANGE         ((uint64_t)8 << 20) /* writeback kick */
#define STORAGE__HIGH_WATER_DEFAULT ((size_t)8 << 20)
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
    uv_timer_t purge_timer; /* periodic purge of stale uploads, unref'd */
    uv_timer_t defer_timer; /* runs deferred callbacks next iteration */
    struct storage_upload *defer_head; /* each holds a session reference */
    unsigned sessions;                 /* live session structs */
    int handles_open;                  /* timers not yet closed */
    bool defer_closing;
    bool closing;
};

/* One buffer of queued upload bytes. */
struct storage__chunk {
    struct storage__chunk *next; /* owned */
    size_t len;
    size_t cap;
    char data[];
};

/* One storage_upload_flush() waiter. */
struct storage__flush {
    struct storage__flush *next; /* owned */
    uint64_t target; /* satisfied once this many bytes are written */
    bool sync;
    storage_cb cb;
    void *data; /* borrowed */
};

enum storage__work_kind {
    STORAGE__WORK_WRITE,  /* hash catch-up, pwrite a batch, maybe fdatasync */
    STORAGE__WORK_SYNC,   /* fdatasync (and session metadata once) */
    STORAGE__WORK_COMMIT, /* verify digest, fsync, rename, fsync dirs */
    STORAGE__WORK_REMOVE, /* close the fd, remove the session dir */
};

enum storage__commit_state {
    STORAGE__COMMIT_NONE,
    STORAGE__COMMIT_PENDING, /* requested, waiting for queued writes */
    STORAGE__COMMIT_RUNNING, /* work item in flight */
    STORAGE__COMMIT_DONE,    /* result waiting to be delivered */
};

/* An upload session. Fields marked [worker] belong to the pool thread while
 * `inflight` is true and to the loop thread otherwise. */
struct storage_upload {
    struct storage__core *core; /* borrowed; outlives every session */
    char id[STORAGE_UPLOAD_ID_MAX + 1];
    char *repo;        /* owned */
    char *dir;         /* owned: <store>/uploads/<id> */
    char *data_path;   /* owned */
    char *info_path;   /* owned */
    char *uploads_dir; /* owned: <store>/uploads */
    unsigned refs;     /* table + callers + waiters + deferred + work */
    bool in_table;
    bool locked;
    bool canceled;
    bool committed;
    bool removed; /* removal submitted (or nothing to remove) */
    bool deferred;
    int error;              /* first write/sync error, sticky */
    uint64_t size;          /* bytes accepted: written + queued */
    int64_t last_active_ms; /* monotonic */

    /* write queue, loop thread */
    struct storage__chunk *q_head; /* owned */
    struct storage__chunk *q_tail; /* borrowed */
    size_t queued;                 /* bytes in q_* plus the batch in flight */

    /* waiters, loop thread; each holds a reference */
    storage_cb drain_cb;
    void *drain_data;                  /* borrowed */
    struct storage__flush *flush_head; /* owned */
    struct storage__flush *flush_tail; /* borrowed */
    enum storage__commit_state commit_state;
    struct at_digest commit_expected;
    storage_commit_cb commit_cb;
    void *commit_data; /* borrowed */
    int commit_status;
    char *blob_path;  /* owned, set by commit */
    char *blob_dir;   /* owned: .../blobs/sha256/<hh> */
    char *blobs_root; /* owned: .../blobs/sha256 */

    /* the one work item */
    uv_work_t work;
    bool inflight;
    enum storage__work_kind w_kind;
    struct storage__chunk *w_batch; /* owned */
    size_t w_batch_bytes;
    bool w_sync;
    int w_status;                  /* [worker] */
    char w_errmsg[AT_ERRMSG_SIZE]; /* [worker] */
    int fd;                        /* [worker] data file, or -1 */
    uint64_t written;              /* [worker] bytes in the data file */
    uint64_t hashed_upto;          /* [worker] sha covers [0, hashed_upto) */
    uint64_t synced_upto;          /* [worker] fdatasync'd prefix */
    uint64_t sfr_start;            /* [worker] start of unkicked range */
    bool meta_synced;              /* [worker] info + dirs fsynced once */
    struct at_sha256 sha;          /* [worker] */
    struct at_digest w_digest;     /* [worker] commit result */

    struct storage_upload *defer_next; /* borrowed */
};

/* ---- blob.c ---- */

/* Map an errno value to AT_ENOSPC (ENOSPC, EDQUOT) or AT_EIO. */
int storage__io_err(int err);

/* Remove a directory tree without following symlinks. 0 or -errno. Safe on
 * any thread. */
int storage__rm_tree(const char *path);

/* fsync a directory. 0 or -errno. */
int storage__fsync_dir(const char *path);

/* ---- upload.c ---- */

/* Rediscover uploads/<id> sessions at open. */
int storage__uploads_load(struct storage *s);

/* Free every session of a store that failed to open (no work in flight). */
void storage__uploads_drop(struct storage *s);

void storage__defer_timer_cb(uv_timer_t *t);
void storage__purge_timer_cb(uv_timer_t *t);

/* Called by upload.c when a session struct is created / freed. */
void storage__session_new(struct storage__core *c);
void storage__session_freed(struct storage__core *c);

#endif /* STORAGE_INTERNAL_H */
