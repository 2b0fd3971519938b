/* Blob store: content-addressed files, resumable upload sessions, space guard.
 *
 * Layout under the store directory:
 *   blobs/sha256/<hh>/<64 hex>   complete, verified blobs (never partial)
 *   uploads/<id>.data            bytes received so far for an upload session
 *   uploads/<id>.info            "repo\n" + creation wall time; written once
 *   tmp/                         scratch files; emptied at open
 *
 * Threads: every function here runs on the loop thread given to
 * storage_open(). Hashing, writes and fsync run in libuv's thread pool
 * (uv_queue_work), as two ordered chains per session that overlap: writes
 * and sha256; so do the GC scan and sweep of local copies and the hash of
 * storage_blob_verify. Callbacks come back on the loop thread. A blob
 * becomes visible only by rename(2) after its digest matched and it was
 * fsynced, then the directory is fsynced.
 *
 * Files of a session: storage_upload_create() creates none. The first write
 * creates <id>.data (in the pool); the first sync flush writes and fsyncs
 * <id>.info and fsyncs uploads/. So a small blob pushed by POST then PUT
 * creates a single inode, the data file, renamed into blobs/ at commit.
 *
 * Restarts: only sessions that acknowledged bytes (a sync flush, which the
 * API does before answering a PATCH) survive. storage_open() resumes
 * <id>.data + <id>.info at the size of the data file (bytes are written in
 * order, one write in flight per session, so the file never has holes) and
 * <id>.info alone as an empty session; it removes <id>.data alone (a session
 * that was only POSTed, or never flushed: the client gets
 * BLOB_UPLOAD_UNKNOWN and restarts its upload) and anything else in
 * uploads/, directories included. The hash of already-written bytes is
 * recomputed in the pool before new bytes are hashed. A canceled or
 * committed session whose info removal is lost in a crash comes back empty
 * and is purged after upload_ttl_ms. */
#ifndef STORAGE_H
#define STORAGE_H

#include <uv.h>

#include "common/common.h"

/* Upload ids: 32 lowercase hex characters (128 random bits), optionally
 * prefixed by the owner's node tag "<tag>-". storage_upload_id_valid()
 * accepts [a-z0-9]{1,16}-[0-9a-f]{32} or [0-9a-f]{32}. Ids are validated before
 * any path is built from them. */
#define STORAGE_UPLOAD_ID_MAX 64

struct storage_config {
    const char *dir;         /* borrowed; created if missing */
    const char *node_tag;    /* borrowed; prefix of upload ids, may be NULL */
    uint64_t reserve_bytes;  /* refuse uploads when free space is below */
    uint64_t upload_ttl_ms;  /* idle uploads older than this are purged */
    size_t write_high_water; /* pending bytes per upload before "busy";
                                0 = 16 MiB */
};

struct storage_upload; /* opaque; owned by the storage, refcounted */

struct storage__core; /* private: loop-side state that outlives the struct */

struct storage {
    uv_loop_t *loop; /* borrowed */
    char *dir;       /* owned */
    char *node_tag;  /* owned, may be NULL */
    uint64_t reserve_bytes;
    uint64_t upload_ttl_ms;
    size_t write_high_water;
    struct at_map uploads;      /* id -> struct storage_upload * */
    struct storage__core *core; /* owned until storage_close(), which hands
                                   it to the sessions and timers still
                                   alive (they free it) */
    uint64_t free_bytes;        /* last statvfs result */
    uint64_t free_checked_ms;   /* when free_bytes was measured */
    uint64_t appended;          /* upload bytes accepted since then */
    bool closing;
    char errmsg[AT_ERRMSG_SIZE];
};

/* Open (create) the store, empty tmp/, rediscover uploads. Returns 0 or an
 * AT_E* code with storage_errmsg() set. */
int storage_open(struct storage *s,
                 uv_loop_t *loop,
                 const struct storage_config *cfg);

/* Stop timers (uv_close) and drop the table's references; uploads with work
 * in flight are freed when it completes. Sessions still referenced by
 * callers stay valid for cancel/unref (write, flush and commit return
 * AT_ESHUTDOWN). *s may be freed as soon as this returns; the loop must keep
 * running until the pending work and close callbacks are done (uv_run
 * returns), after which no handle of the store is left. */
void storage_close(struct storage *s);

/* True once storage_close() ran. */
bool storage_closed(const struct storage *s);

const char *storage_errmsg(const struct storage *s);

/* Set the node tag that prefixes the ids of the sessions created from now
 * on ([a-z0-9]{1,16} as storage_config.node_tag; NULL or "" for none), for
 * a tag known only once the store is open (a node's raft id). Sessions that
 * exist keep their ids. 0, or AT_EINVAL with storage_errmsg() set and the
 * tag unchanged. */
int storage_node_tag_set(struct storage *s, const char *tag);

/* True when free space on the store's filesystem is at least the reserve
 * (statvfs, cached for up to 1 s). */
bool storage_space_ok(struct storage *s);

/* ---- blobs ---- */

/* Size of a complete local blob. 0, or AT_ENOTFOUND. */
int storage_blob_stat(struct storage *s,
                      const struct at_digest *d,
                      uint64_t *size);

/* Open a complete local blob read-only (O_CLOEXEC). The caller owns *fd.
 * 0, AT_ENOTFOUND, or AT_EIO. */
int storage_blob_open(struct storage *s,
                      const struct at_digest *d,
                      int *fd,
                      uint64_t *size);

/* Remove a local blob file at once (a copy found corrupt). 0,
 * AT_ENOTFOUND, or AT_EIO. */
int storage_blob_remove(struct storage *s, const struct at_digest *d);

/* What tells a local blob file's content as it is now: writing to the file,
 * truncating or replacing it, or changing its metadata changes one of
 * these. */
struct storage_blob_id {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec ctime;
};

/* Identify the open blob file fd (fstat). 0 or AT_EIO. */
int storage_blob_id_get(int fd, struct storage_blob_id *id);

bool storage_blob_id_equal(const struct storage_blob_id *a,
                           const struct storage_blob_id *b);

/* status: 0 (the file holds exactly the bytes of the digest), AT_EDIGEST
 * (it does not), or AT_EIO (it cannot be examined or read: never reported
 * as a mismatch). id: the file as identified before it was hashed. */
typedef void (*storage_verify_cb)(void *data,
                                  int status,
                                  const struct storage_blob_id *id);

/* Hash the local blob file fd of d in the thread pool and compare; fd is
 * borrowed for this call only (the job reads a duplicate). cb runs exactly
 * once, later, on the loop thread (also after storage_close()). */
void storage_blob_verify(struct storage *s,
                         const struct at_digest *d,
                         int fd,
                         storage_verify_cb cb,
                         void *data);

/* ---- local copies: garbage collection (sweep.c) ---- */

/* cb of storage_blob_scan: status 0, or AT_EIO when the blobs directory
 * cannot be read (nothing listed). found[0..n) is the callee's to free
 * (free()), NULL when n is 0; truncated: the listing stopped at max. */
typedef void (*storage_scan_cb)(void *data,
                                int status,
                                struct at_digest *found,
                                size_t n,
                                bool truncated);

/* List, in the thread pool, the local blob copies whose file did not change
 * (ctime) after cutoff_ms (wall clock), at most max of them. cb runs once,
 * later, on the loop thread (also after storage_close()). Returns 0, or
 * AT_ESHUTDOWN once the store is closing (cb never runs). */
int storage_blob_scan(struct storage *s,
                      uint64_t cutoff_ms,
                      size_t max,
                      storage_scan_cb cb,
                      void *data);

/* A local copy to sweep, and the moment it must not have changed since. */
struct storage_sweep_item {
    struct at_digest digest;
    uint64_t cutoff_ms; /* wall clock */
};

struct storage_sweep_stats {
    uint64_t removed; /* copies removed */
    uint64_t bytes;   /* their sizes */
    uint64_t changed; /* copies kept: changed after their cutoff */
    uint64_t kept;    /* copies kept by the predicate */
};

/* The predicate of storage_blob_sweep: true keeps the copy of d. */
typedef bool (*storage_sweep_keep_cb)(void *data, const struct at_digest *d);

typedef void (*storage_sweep_cb)(void *data,
                                 const struct storage_sweep_stats *stats);

/* Remove the local copies of items[0..n) that keep rejects. keep (may be
 * NULL: none kept) runs for each item inside this call, on the loop thread;
 * the rest are removed in the thread pool, except a copy whose file changed
 * (ctime) after its item's cutoff_ms: a commit that finds its blob already
 * stored touches the copy, so a blob uploaded again meanwhile stays. A copy
 * already gone counts nowhere. items are copied. cb runs once, later, on the
 * loop thread (also after storage_close()), with data as keep's. Returns 0,
 * or AT_ESHUTDOWN once the store is closing (keep and cb never run). */
int storage_blob_sweep(struct storage *s,
                       const struct storage_sweep_item *items,
                       size_t n,
                       storage_sweep_keep_cb keep,
                       storage_sweep_cb cb,
                       void *data);

/* ---- uploads ---- */

bool storage_upload_id_valid(const char *id, size_t len);

/* Create a session for a repository. Creates no file and never blocks (see
 * "Files of a session" above). The returned session has one reference, owned
 * by the caller. AT_ENOSPC when below the reserve. */
int storage_upload_create(struct storage *s,
                          const char *repo,
                          struct storage_upload **out);

/* Find a session by id; takes a reference. AT_ENOTFOUND (also for invalid
 * ids). */
int storage_upload_find(struct storage *s,
                        const char *id,
                        struct storage_upload **out);

void storage_upload_ref(struct storage_upload *u);
void storage_upload_unref(struct storage_upload *u);

const char *storage_upload_id(const struct storage_upload *u);
const char *storage_upload_repo(const struct storage_upload *u);
/* Bytes accepted so far (written or queued). The next append starts here. */
uint64_t storage_upload_size(const struct storage_upload *u);

/* Open the session's data file for reading (O_RDONLY, O_CLOEXEC): a reader
 * may stream the bytes already written while more arrive (at least the
 * first storage_upload_size() - storage_upload_queued() bytes are in it).
 * The caller owns *fd. 0; AT_ENOTFOUND before the first write created the
 * file, or once the session is committed or canceled; AT_EIO. */
int storage_upload_open_data(struct storage_upload *u, int *fd);

/* A request in progress holds the session: a second concurrent PATCH/PUT on
 * the same session must be refused by the caller. */
bool storage_upload_try_lock(struct storage_upload *u);
void storage_upload_unlock(struct storage_upload *u);

/* Append bytes (copied). Returns 0, or the first error of an earlier write
 * (AT_EIO, AT_ENOSPC), or AT_ENOSPC when free space is below the reserve
 * (checked at most once a second; the session keeps that error). Never
 * blocks. */
int storage_upload_write(struct storage_upload *u, const void *p, size_t n);

/* Memory the next bytes of the stream may be placed in before they are
 * passed to storage_upload_write, which then takes them without a copy:
 * up to `want` bytes at *p (*n >= 1). Valid on the loop thread until the
 * next call on u other than storage_upload_size; bytes placed there and not
 * written are ignored. Returns 0 or what storage_upload_write would. */
int storage_upload_reserve(struct storage_upload *u,
                           size_t want,
                           char **p,
                           size_t *n);

/* True when more than write_high_water bytes are queued: the caller should
 * stop reading from its socket until the drain callback runs. */
bool storage_upload_busy(const struct storage_upload *u);

typedef void (*storage_cb)(void *data, int status);

/* Do not pace this session's writes by the disk (no early writeback, no
 * background fdatasync): its bytes stay in the page cache until the commit's
 * fdatasync. For copies that a reader verifies on its own while they arrive
 * (a peer fetch): they arrive at memory speed, and only the commit waits for
 * the disk. Dirty pages are then bounded by the kernel's limits alone. */
void storage_upload_no_throttle(struct storage_upload *u);

/* Call cb once when the queued bytes fall to half of write_high_water or
 * below (or at once, on the next loop iteration, if they already are).
 * One drain callback at a time. status is 0, or the session's write error /
 * AT_ECANCELED when it can never drain normally. */
void storage_upload_on_drain(struct storage_upload *u,
                             storage_cb cb,
                             void *data);

/* Wait until every byte accepted so far is written; with sync, also
 * fdatasync, and (first time) make the session itself durable: write and
 * fsync <id>.info, fsync uploads/. cb gets 0 or the first write error. Used
 * to acknowledge a PATCH durably: after a crash the session resumes with at
 * least the flushed bytes. Hashing may still be in progress when cb runs. */
int storage_upload_flush(struct storage_upload *u,
                         bool sync,
                         storage_cb cb,
                         void *data);

typedef void (*storage_commit_cb)(void *data,
                                  int status,
                                  const struct at_digest *digest,
                                  uint64_t size);

/* Finish the session: write what is queued, finish the hash, compare it with
 * *expected (AT_EDIGEST on mismatch: the session is kept, nothing is
 * visible), fsync, rename into blobs/ (an existing identical blob is kept),
 * fsync the directory, remove the session. cb gets 0, AT_EDIGEST, AT_EIO,
 * AT_ENOSPC or AT_ECANCELED; digest is the computed one on success, NULL
 * otherwise. On success the session is gone from the store's table (the
 * caller still drops its reference). Returns AT_EBUSY when a commit is
 * already pending (writes are refused with AT_EBUSY meanwhile). */
int storage_upload_commit(struct storage_upload *u,
                          const struct at_digest *expected,
                          storage_commit_cb cb,
                          void *data);

/* status: 0 when the watched bytes hash to the wanted digest, else an AT_E*
 * code (see storage_upload_hash_watch). */
typedef void (*storage_hashed_cb)(void *data, int status);

/* Learn, without hashing anything again, whether the first size bytes of the
 * session have the digest *want: the hash chain, which hashes every byte
 * from memory as it arrives, finalizes its sha once it covers exactly size
 * bytes (no other pass over the data). For a reader that verifies a copy
 * while it arrives (a peer fetch, whose held-back tail goes out on a match
 * instead of after the commit's fdatasync).
 *
 * Arming caps the session at size bytes for good: a write beyond fails with
 * AT_ETOOBIG and accepts nothing. Once all size bytes are accepted, the
 * chains write and hash them without waiting for more (no small-amount
 * batching), and a commit requested meanwhile waits for the watch to fire:
 * the commit then reuses the finalized digest (no third pass) and still
 * reports AT_EDIGEST on a mismatch.
 *
 * cb runs once, on the loop thread, from a work completion or the defer
 * timer (never from inside this call), with:
 *   0            the size bytes are hashed, match *want AND are all in the
 *                data file (written, not necessarily fdatasync'd);
 *   AT_EDIGEST   they are hashed and written but do not match;
 *   AT_ECANCELED the session was canceled, or committed with fewer than
 *                size bytes, before that;
 *   the session's sticky error (AT_EIO, AT_ENOSPC) if one came first.
 * The session stays usable after a mismatch (commit fails with AT_EDIGEST;
 * cancel removes it). The watch holds a session reference until cb ran.
 *
 * Returns 0 (cb will run), or without arming: AT_EBUSY when a watch was
 * already armed on this session or a commit is pending; AT_EINVAL when more
 * than size bytes are already accepted; the session's error / AT_ENOTFOUND /
 * AT_ESHUTDOWN as storage_upload_write. A session resumed after a restart
 * is fine: the hash chain rehashes its data file first. */
int storage_upload_hash_watch(struct storage_upload *u,
                              uint64_t size,
                              const struct at_digest *want,
                              storage_hashed_cb cb,
                              void *data);

/* Remove the session and its files (idempotent). Work in flight finishes
 * first; the files are removed in the pool. */
void storage_upload_cancel(struct storage_upload *u);

/* Bytes held in memory for this session (queued plus the batch being
 * written). For metrics and tests. */
size_t storage_upload_queued(const struct storage_upload *u);

/* Cancel every unlocked, idle session whose last activity is older than
 * upload_ttl_ms (runs from the purge timer too; exposed for tests). */
void storage_upload_purge(struct storage *s);

#endif /* STORAGE_H */
