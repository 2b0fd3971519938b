/* Private to storage/: the structs of the store's core, of an upload session
 * and its chunks, and the calls between storage's files (tests may include
 * it for white-box checks). */
#ifndef STORAGE_INTERNAL_H
#define STORAGE_INTERNAL_H

#include "storage/storage.h"

#define STORAGE__CHUNK              ((size_t)1 << 20)   /* queue buffer size */
#define STORAGE__CHUNK_SMALL        ((size_t)64 << 10)  /* first small buffer */
#define STORAGE__SYNC_RANGE         ((uint64_t)8 << 20) /* writeback kick */
#define STORAGE__BG_SYNC_STEP       ((uint64_t)16 << 20) /* background fsync */
#define STORAGE__HIGH_WATER_DEFAULT ((size_t)16 << 20)
#define STORAGE__BATCH_MIN          ((size_t)1 << 20) /* bytes per work item */
#define STORAGE__CHUNK_CACHE_MAX    24u /* spare STORAGE__CHUNK buffers kept */
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

static inline int64_t storage__now_ms(void)
{
    return (int64_t)at_now_ms();
}

/* The calls between storage's files, by file. A file calls only files after
 * it in this order: store.c (open, close), registry.c, upload.c (the public
 * calls on a session, all in storage.h), schedule.c, commit.c, hash.c,
 * write.c, session.c, core.c, chunk.c, fs.c; blob.c and sweep.c (complete
 * blobs) use fs.c alone. */

/* ---- registry.c: the table of sessions ---- */

/* Rediscover uploads/<id>.{data,info} sessions at open; remove the rest. */
int storage__uploads_load(struct storage *s);

/* Drop the table's reference on every session (store closing, or failed to
 * open); sessions with work in flight are freed when it completes. */
void storage__uploads_drop(struct storage *s);

void storage__purge_timer_cb(uv_timer_t *t);

/* ---- schedule.c: the state machine of a session ---- */

/* Deliver u's due callbacks and start its next work items on the next loop
 * iteration (holds a reference until then; no-op when already pending). */
void storage__defer(struct storage_upload *u);

/* After an API call changed the session: start work, and arrange for any
 * callback that is now due to run on the next loop iteration. */
void storage__kick(struct storage_upload *u);

void storage__defer_timer_cb(uv_timer_t *t);

/* ---- commit.c: the COMMIT work item (pool) ---- */

/* Write and hash what is left, check the digest against commit_expected,
 * place the file at blob_path and sync the directories. Sets wr_status and
 * wr_errmsg on failure; on success w_digest, and w_dup when a copy already
 * there was kept (ours is to be removed with storage__remove_later). */
void storage__work_commit(struct storage_upload *u);

/* Remove a data file that no session refers to any more, in the pool and
 * after the answer: freeing a large file's blocks takes a while (hundreds of
 * ms for 256 MiB with online discard). If that is lost in a crash, the
 * orphan is removed at the next open. */
void storage__remove_later(uv_loop_t *loop, const char *path);

/* ---- hash.c: the hash chain ---- */

/* Feed the sha with the data file's bytes [h_off, end): after a restart or a
 * digest mismatch. Those bytes are written (the loop checked). 0 or an
 * AT_E* code, with *status and errmsg set. Pool thread. */
int storage__hash_file(struct storage_upload *u,
                       uint64_t end,
                       int *status,
                       char *errmsg);

/* Hash the file up to h_file_end, then the batch h_first/h_count. Same
 * returns as storage__hash_file. Pool thread. */
int storage__hash_batch(struct storage_upload *u, int *status, char *errmsg);

/* The hash chain's work item (uv_work_cb): sets h_status, h_errmsg. */
void storage__hash_work_cb(uv_work_t *req);

/* A hash watch waits and every byte it covers is accepted: the chains finish
 * them without waiting for more (the session is capped), and a commit waits
 * for the watch, so the watch fires before the commit's fdatasync. */
bool storage__watch_full(const struct storage_upload *u);

/* The watch's bytes are hashed (the sha is ours) and in the data file. */
bool storage__watch_done(const struct storage_upload *u);

/* Whether the idle hash chain should start now. Small amounts wait (a
 * small blob is hashed by its commit item) unless someone waits for the
 * memory or the commit waits for the write chain anyway. */
bool storage__hash_wanted(const struct storage_upload *u);

/* What a due hash watch reports, given the session's failure status fail:
 * fail itself, AT_ECANCELED when committed short of the watched size, else
 * 0 or AT_EDIGEST from the finalized sha (kept in h_digest for the
 * commit). */
int storage__watch_verdict(struct storage_upload *u, int fail);

/* ---- write.c: the write chain's work items (pool) ---- */

/* Record a failed system call of the write chain in wr_status and
 * wr_errmsg. */
void storage__wr_err(struct storage_upload *u,
                     int err,
                     const char *what,
                     const char *path);

/* Create the data file on first use. 0 or wr_status. */
int storage__open_data(struct storage_upload *u);

/* pwritev the batch wr_first/wr_count at the end of the file. 0 or
 * wr_status. */
int storage__write_batch(struct storage_upload *u);

/* WRITE: the batch, then with wr_sync what storage__work_sync does. */
void storage__work_write(struct storage_upload *u);

/* SYNC: fdatasync what is written, and make the session durable once (info
 * file, uploads/). 0 or wr_status. */
int storage__work_sync(struct storage_upload *u);

/* REMOVE: close the data file, remove the session's files. */
void storage__work_remove(struct storage_upload *u);

/* The background fdatasync of bs_fd (uv_work_cb): sets bs_status. */
void storage__bsync_work_cb(uv_work_t *req);

/* ---- session.c: a session struct ---- */

bool storage__repo_valid(const char *repo, size_t len);

/* A new session struct, with no reference and out of the table (the caller
 * sets both). */
struct storage_upload *storage__upload_new(struct storage *s,
                                           const char *id,
                                           const char *repo,
                                           size_t repo_len);

/* Take u out of the store's table and drop the table's reference (the
 * caller holds another). No-op when not in the table. */
void storage__table_remove(struct storage_upload *u);

/* Checks shared by write, reserve, flush, commit and hash_watch: 0, the
 * sticky error, AT_ENOTFOUND (canceled or committed) or AT_ESHUTDOWN. */
int storage__usable(struct storage_upload *u);

/* ---- core.c: the loop-side core ---- */

/* A new core for s (no timer yet). */
struct storage__core *storage__core_new(struct storage *s, uv_loop_t *loop);

/* Initialize both timers (neither started). */
void storage__core_timers_init(struct storage__core *c);

/* The store closes: detach from it, close the purge timer, and the defer
 * timer once no session is left; c frees itself after that. */
void storage__core_close(struct storage__core *c);

/* Called when a session struct is created / freed. */
void storage__session_new(struct storage__core *c);
void storage__session_freed(struct storage__core *c);

/* ---- chunk.c: the chunk queue ---- */

/* Append n bytes at p to u's chunks (taking the reserved chunk without a
 * copy when p is its free tail). The caller checked the session. */
void storage__chunks_append(struct storage_upload *u, const void *p, size_t n);

/* Room for up to want (> 0) bytes at the end of u's queue: the free tail of
 * the last chunk, else of a spare chunk (see storage_upload_reserve). */
void storage__chunks_reserve(struct storage_upload *u,
                             size_t want,
                             char **p,
                             size_t *n);

/* Take up to cap bytes of u's chunks starting at *next (only sealed ones
 * when need_sealed), seal them, advance *next. Returns the chunk count. */
size_t storage__chunks_take(const struct storage_upload *u,
                            struct storage__chunk **next,
                            size_t cap,
                            bool need_sealed);

/* The chain that took the n chunks from c (a batch) is done with them. */
void storage__chunks_mark_wrote(struct storage__chunk *c, size_t n);
void storage__chunks_mark_hashed(struct storage__chunk *c, size_t n);

/* Free the chunks at the head of the list that both chains are done with. */
void storage__chunks_release_done(struct storage_upload *u);

/* A canceled session: chunks no chain has taken are never needed again. */
void storage__chunks_forget(struct storage_upload *u);

/* Free every chunk of u, and its spare (u is being freed). */
void storage__chunks_drop(struct storage_upload *u);

/* Free the spare chunks (when the core is freed). */
void storage__chunk_cache_drop(struct storage__core *c);

/* ---- fs.c: the store on the filesystem ---- */

/* Map an errno value to AT_ENOSPC (ENOSPC, EDQUOT) or AT_EIO. */
int storage__io_err(int err);

/* Remove a directory tree without following symlinks. 0 or -errno. Safe on
 * any thread. */
int storage__rm_tree(const char *path);

/* fsync a directory. 0 or -errno. */
int storage__fsync_dir(const char *path);

/* Create the store directory (with its parents) and its subdirectories,
 * empty tmp/. 0 or an AT_E* code with s->errmsg set. */
int storage__layout_init(struct storage *s);

/* The paths under the store directory dir; each is the caller's to free.
 * <dir>/blobs/sha256/<hh>/<hex> for d, and when not NULL *sub =
 * <dir>/blobs/sha256/<hh>, *root = <dir>/blobs/sha256. */
char *storage__path_blob(const char *dir,
                         const struct at_digest *d,
                         char **sub,
                         char **root);
/* <dir>/blobs/sha256 */
char *storage__path_blobs(const char *dir);
/* <dir>/uploads */
char *storage__path_uploads(const char *dir);
/* <dir>/uploads/<id><ext>, ext ".data" or ".info" */
char *storage__path_session(const char *dir, const char *id, const char *ext);

#endif /* STORAGE_INTERNAL_H */
