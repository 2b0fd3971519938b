/* Upload sessions: a chunk queue consumed in order by two chains of pool work
 * items (writes and sha256), durable flush, commit by rename, cancel, purge.
 *
 * Layout: a session is uploads/<id>.data (created by the first work item of
 * the write chain) and uploads/<id>.info (repo + creation time, written and
 * fsynced with the uploads/ directory at the first sync flush). A session
 * that never acknowledged bytes (no sync flush) leaves no trace after a
 * crash; a small blob pushed by POST + PUT creates one inode, the data file,
 * which is renamed into blobs/sha256/<hh>/ at commit.
 *
 * Happy path: storage_upload_write() copies bytes into the session's chunk
 * list. When idle, the write chain takes a batch of chunks (sealing them:
 * they never grow again) and pwritev()s it at the file offset, kicking
 * writeback every STORAGE__SYNC_RANGE bytes; the hash chain independently
 * takes sealed chunks and feeds the sha256. A chunk is freed when both chains
 * are done with it. Completions deliver satisfied waiters (drain, flush) and
 * submit the next items. A sync flush adds fdatasync (WRITE with wr_sync, or
 * SYNC). storage_upload_commit() waits until both chains consumed every
 * chunk, then COMMIT (write chain, hash chain idle) verifies the digest,
 * fsyncs, renames into blobs/ and fsyncs the directories; the session leaves
 * the table.
 *
 * Hash watch: a reader that verifies the bytes as they arrive (a peer fetch)
 * arms storage_upload_hash_watch(size, digest) instead of hashing them a
 * second time: the session is capped at size, the chains finish the tail at
 * once when size bytes are accepted, and when the hash chain has covered
 * exactly size bytes (and they are written) the loop finalizes the sha into
 * h_digest and calls back match/mismatch. A commit requested meanwhile waits
 * for that, then reuses h_digest: one sha256 pass per byte in all.
 *
 * Failure modes: a write/sync/read error is sticky (every later write, flush
 * and commit returns it; only cancel helps). A digest mismatch keeps the
 * session (the hash is recomputed from the file next time). Cancel removes
 * the session from the table at once, fails pending waiters with
 * AT_ECANCELED and removes the files once both chains are idle (REMOVE).
 * After a restart or a mismatch the sha does not cover the file: the hash
 * chain first hashes the file from its hashed offset up to its first chunk
 * (COMMIT does the same for what is left).
 *
 * Callbacks are never called from inside the API call that armed them: they
 * run from a work completion or from the store's defer timer. Every pending
 * waiter, the defer list and each work item hold a session reference. */
#include "common/compat.h"

#define AT_LOG_COMP "storage"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "storage/internal.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

#define IOV_BATCH 64 /* iovecs per pwritev */

/* ---- ids and small helpers ---- */

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* see storage.h */
bool storage_upload_id_valid(const char *id, size_t len)
{
    size_t prefix;

    if (id == NULL || len < 32 || len > STORAGE_UPLOAD_ID_MAX)
        return false;
    if (len > 32) {
        prefix = len - 33;
        if (prefix < 1 || prefix > 16 || id[prefix] != '-')
            return false;
        for (size_t i = 0; i < prefix; i++) {
            char c = id[i];
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
                return false;
        }
        id += prefix + 1;
    }
    for (size_t i = 0; i < 32; i++) {
        if (!is_hex(id[i]))
            return false;
    }
    return true;
}

static bool repo_valid(const char *repo, size_t len)
{
    if (len == 0 || len > STORAGE__REPO_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)repo[i];
        if (c < 0x21 || c == 0x7f)
            return false;
    }
    return true;
}

static int64_t now_ms(void)
{
    return (int64_t)at_now_ms();
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;

    while (n > 0) {
        ssize_t k = write(fd, c, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

static struct storage_upload *upload_new(struct storage *s,
                                         const char *id,
                                         const char *repo,
                                         size_t repo_len)
{
    struct storage_upload *u = at_calloc(1, sizeof(*u));
    size_t idlen = strlen(id);

    PRE(idlen <= STORAGE_UPLOAD_ID_MAX);
    u->core = s->core;
    memcpy(u->id, id, idlen + 1);
    u->repo = at_strndup(repo, repo_len);
    u->uploads_dir = at_asprintf("%s/uploads", s->dir);
    u->data_path = at_asprintf("%s/%s.data", u->uploads_dir, id);
    u->info_path = at_asprintf("%s/%s.info", u->uploads_dir, id);
    u->created_wall_ms = at_wall_ms();
    u->fd = -1;
    at_list_init(&u->chunks);
    at_list_init(&u->flushes);
    at_list_init(&u->defer_link);
    u->wr_work.data = u;
    u->h_work.data = u;
    u->last_active_ms = now_ms();
    at_sha256_init(&u->sha);
    storage__session_new(u->core);
    return u;
}

static struct storage__chunk *chunk_new(struct storage__core *core,
                                        size_t cap,
                                        uint64_t off)
{
    struct at_list *l =
        cap == STORAGE__CHUNK ? at_list_pop_front(&core->chunk_cache) : NULL;
    struct storage__chunk *c;

    if (l != NULL) {
        c = AT_LIST_ENTRY(l, struct storage__chunk, link);
        core->chunks_cached--;
    } else {
        c = at_malloc(sizeof(*c) + cap);
        at_list_init(&c->link);
    }
    c->off = off;
    c->len = 0;
    c->cap = cap;
    c->sealed = false;
    c->wrote = false;
    c->hashed = false;
    return c;
}

static void chunk_free(struct storage__core *core, struct storage__chunk *c)
{
    PRE(!at_list_linked(&c->link));
    if (c->cap == STORAGE__CHUNK &&
        core->chunks_cached < STORAGE__CHUNK_CACHE_MAX) {
        at_list_push_front(&core->chunk_cache, &c->link);
        core->chunks_cached++;
        return;
    }
    free(c);
}

static void chunks_free(struct storage__core *core, struct at_list *chunks)
{
    struct at_list *l;

    while ((l = at_list_pop_front(chunks)) != NULL)
        chunk_free(core, AT_LIST_ENTRY(l, struct storage__chunk, link));
}

/* see internal.h */
void storage__chunk_cache_drop(struct storage__core *core)
{
    struct at_list *l;

    core->chunks_cached = 0;
    while ((l = at_list_pop_front(&core->chunk_cache)) != NULL)
        free(AT_LIST_ENTRY(l, struct storage__chunk, link));
}

/* Free the chunks at the head of the list that both chains are done with. */
static void chunks_release_done(struct storage_upload *u)
{
    struct at_list *l;

    while ((l = at_list_first(&u->chunks)) != NULL) {
        struct storage__chunk *c =
            AT_LIST_ENTRY(l, struct storage__chunk, link);
        if (!c->wrote || !c->hashed)
            break;
        at_list_remove(&c->link);
        AT_ASSERT(u->wr_next != c && u->h_next != c);
        AT_ASSERT(u->queued >= c->len);
        u->queued -= c->len;
        chunk_free(u->core, c);
    }
}

static void upload_free(struct storage_upload *u)
{
    struct storage__core *core = u->core;

    PRE(u->refs == 0 && !u->wr_inflight && !u->h_inflight && !u->bs_inflight &&
        !at_list_linked(&u->defer_link) && !u->in_table);
    PRE(at_list_empty(&u->flushes) && u->drain_cb == NULL && u->hw_cb == NULL);
    chunks_free(core, &u->chunks);
    if (u->c_spare != NULL)
        chunk_free(core, u->c_spare);
    if (u->fd >= 0)
        close(u->fd);
    at_sha256_release(&u->sha);
    free(u->repo);
    free(u->uploads_dir);
    free(u->data_path);
    free(u->info_path);
    free(u->blob_path);
    free(u->blob_dir);
    free(u->blobs_root);
    free(u);
    storage__session_freed(core);
}

/* see storage.h */
void storage_upload_ref(struct storage_upload *u)
{
    AT_ASSERT(u->refs > 0);
    u->refs++;
}

/* see storage.h */
void storage_upload_unref(struct storage_upload *u)
{
    AT_ASSERT(u->refs > 0);
    if (--u->refs == 0)
        upload_free(u);
}

static void table_remove(struct storage_upload *u)
{
    if (!u->in_table)
        return;
    u->in_table = false;
    AT_ASSERT(u->core->s != NULL); /* the table dies with storage_close */
    at_map_del(&u->core->s->uploads, u->id, strlen(u->id));
    storage_upload_unref(u); /* the table's reference; caller holds one */
}

/* ---- the workers (pool threads) ---- */

static void wr_err(struct storage_upload *u,
                   int err,
                   const char *what,
                   const char *path)
{
    u->wr_status = storage__io_err(err);
    at_errmsg_printf(u->wr_errmsg, "upload '%s': %s '%s': %s", u->id, what,
                     path, strerror(err));
}

/* Feed the sha with the data file's bytes [h_off, end): after a restart or a
 * digest mismatch. Those bytes are written (the loop checked). 0 or an
 * AT_E* code, with *status and errmsg set. */
static int hash_file(struct storage_upload *u,
                     uint64_t end,
                     int *status,
                     char *errmsg)
{
    size_t bufsize = STORAGE__CHUNK;
    char *buf;

    if (u->h_off >= end)
        return 0;
    if (u->fd < 0) {
        *status = AT_EIO;
        at_errmsg_printf(errmsg, "upload '%s': data file '%s' missing", u->id,
                         u->data_path);
        return *status;
    }
    buf = at_malloc(bufsize);
    while (u->h_off < end) {
        size_t want = (size_t)AT_MIN((uint64_t)bufsize, end - u->h_off);
        ssize_t k = pread(u->fd, buf, want, (off_t)u->h_off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            *status = storage__io_err(errno);
            at_errmsg_printf(errmsg, "upload '%s': read '%s': %s", u->id,
                             u->data_path, strerror(errno));
            break;
        }
        if (k == 0) {
            *status = AT_EIO;
            at_errmsg_printf(errmsg,
                             "upload '%s': data file '%s' shorter than "
                             "%" PRIu64 " bytes",
                             u->id, u->data_path, end);
            break;
        }
        at_sha256_update(&u->sha, buf, (size_t)k);
        u->h_off += (uint64_t)k;
    }
    free(buf);
    return *status;
}

/* Hash the file up to h_file_end, then the batch h_first/h_count. */
static int hash_batch(struct storage_upload *u, int *status, char *errmsg)
{
    struct storage__chunk *c = u->h_first;

    if (u->h_count == 0)
        return 0;
    if (hash_file(u, u->h_file_end, status, errmsg) != 0)
        return *status;
    for (size_t i = 0; i < u->h_count; i++) {
        AT_ASSERT(c->off == u->h_off);
        at_sha256_update(&u->sha, c->data, c->len);
        u->h_off += c->len;
        if (i + 1 < u->h_count)
            c = storage__chunk_next(c); /* never past the batch's last */
    }
    return 0;
}

static void h_work_cb(uv_work_t *req)
{
    struct storage_upload *u = req->data;

    u->h_status = 0;
    if (u->h_count == 0) /* a resumed session under a watch: the file */
        (void)hash_file(u, u->h_file_end, &u->h_status, u->h_errmsg);
    else
        (void)hash_batch(u, &u->h_status, u->h_errmsg);
}

/* Create the data file on first use. */
static int open_data(struct storage_upload *u)
{
    if (u->fd >= 0)
        return 0;
    u->fd = open(u->data_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (u->fd < 0) {
        wr_err(u, errno, "create", u->data_path);
        return u->wr_status;
    }
    u->meta_synced = false; /* its name is not durable yet */
    return 0;
}

/* Write the info file once, then fsync it and the uploads/ directory, so a
 * session that acknowledged bytes is found again after a crash. */
static int sync_meta(struct storage_upload *u)
{
    int fd;
    int rv = 0;

    if (u->meta_synced)
        return 0;
    if (!u->info_synced) {
        if (!u->info_exists) {
            char *info =
                at_asprintf("%s\n%" PRIu64 "\n", u->repo, u->created_wall_ms);
            fd = open(u->info_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                      0600);
            if (fd < 0) {
                free(info);
                wr_err(u, errno, "create", u->info_path);
                return u->wr_status;
            }
            u->info_exists = true;
            rv = write_all(fd, info, strlen(info));
            free(info);
        } else {
            fd = open(u->info_path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                wr_err(u, errno, "open", u->info_path);
                return u->wr_status;
            }
        }
        if (rv == 0 && fsync(fd) != 0)
            rv = -errno;
        close(fd);
        if (rv != 0) {
            wr_err(u, -rv, "write", u->info_path);
            return u->wr_status;
        }
        u->info_synced = true;
    }
    rv = storage__fsync_dir(u->uploads_dir);
    if (rv != 0) {
        wr_err(u, -rv, "fsync", u->uploads_dir);
        return u->wr_status;
    }
    u->meta_synced = true;
    return 0;
}

static int do_sync(struct storage_upload *u)
{
    if (u->fd >= 0 && u->wr_synced < u->wr_off) {
        if (fdatasync(u->fd) != 0) {
            wr_err(u, errno, "fdatasync", u->data_path);
            return u->wr_status;
        }
    }
    u->wr_synced = u->wr_off;
    return sync_meta(u);
}

/* Start writeback of each STORAGE__SYNC_RANGE as soon as it is written, and
 * wait for the range started two steps earlier: the final fsync stays short
 * and dirty pages stay bounded. Failures here only cost that; fdatasync
 * reports real errors. */
static void kick_writeback(struct storage_upload *u)
{
    if (u->no_throttle || u->wr_off - u->sfr_start < STORAGE__SYNC_RANGE)
        return;
    (void)sync_file_range(u->fd, (off_t)u->sfr_start,
                          (off_t)(u->wr_off - u->sfr_start),
                          SYNC_FILE_RANGE_WRITE);
    if (u->sfr_prev > u->sfr_waited) {
        (void)sync_file_range(u->fd, (off_t)u->sfr_waited,
                              (off_t)(u->sfr_prev - u->sfr_waited),
                              SYNC_FILE_RANGE_WAIT_BEFORE);
        u->sfr_waited = u->sfr_prev;
    }
    u->sfr_prev = u->sfr_start;
    u->sfr_start = u->wr_off;
}

/* pwritev the batch wr_first/wr_count at the end of the file. */
static int write_batch(struct storage_upload *u)
{
    struct storage__chunk *c = u->wr_first;
    size_t left = u->wr_count;
    size_t skip = 0; /* bytes of c already written */

    if (left > 0 && open_data(u) != 0)
        return u->wr_status;
    while (left > 0) {
        struct iovec iov[IOV_BATCH];
        struct storage__chunk *it = c;
        size_t it_left = left;
        size_t it_skip = skip;
        int n = 0;
        ssize_t k;
        size_t adv;

        while (n < IOV_BATCH && it_left > 0) {
            iov[n].iov_base = it->data + it_skip;
            iov[n].iov_len = it->len - it_skip;
            n++;
            it_skip = 0;
            if (--it_left > 0)
                it = storage__chunk_next(it);
        }
        k = pwritev(u->fd, iov, n, (off_t)u->wr_off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            wr_err(u, k < 0 ? errno : EIO, "write", u->data_path);
            return u->wr_status;
        }
        u->wr_off += (uint64_t)k;
        for (adv = (size_t)k; adv > 0;) {
            size_t room = c->len - skip;
            if (adv < room) {
                skip += adv;
                break;
            }
            adv -= room;
            skip = 0;
            if (--left == 0)
                break;
            c = storage__chunk_next(c); /* not the batch's last chunk */
        }
        kick_writeback(u);
    }
    return 0;
}

static void work_write(struct storage_upload *u)
{
    if (write_batch(u) == 0 && u->wr_sync)
        (void)do_sync(u);
}

/* Make the verified data file the blob: fdatasync it, rename it into
 * blobs/ unless a copy is there already (that copy is kept, with a fresh
 * ctime: GC's local sweep keeps files changed after its cutoff, so a
 * re-upload of a blob being collected keeps it, the node layer). Returns 0 or
 * -1 with wr_status set. */
static int place_blob(struct storage_upload *u, bool *created, bool *renamed)
{
    /* A copy already in blobs/ was complete, verified and synced before its
     * rename: ours needs no fdatasync (the caller syncs the directory
     * again). Touching it is the check. */
    if (utimensat(AT_FDCWD, u->blob_path, NULL, 0) == 0)
        return 0;
    if ((u->wr_off == 0 || u->wr_synced < u->wr_off) && fdatasync(u->fd) != 0) {
        wr_err(u, errno, "fdatasync", u->data_path);
        return -1;
    }
    u->wr_synced = u->wr_off;
    if (mkdir(u->blob_dir, 0755) == 0) {
        *created = true;
    } else if (errno != EEXIST) {
        wr_err(u, errno, "mkdir", u->blob_dir);
        return -1;
    }
    for (int attempt = 0;; attempt++) {
        int rv = renameat2(AT_FDCWD, u->data_path, AT_FDCWD, u->blob_path,
                           RENAME_NOREPLACE);
        if (rv != 0 && (errno == EINVAL || errno == ENOSYS)) {
            /* Filesystem without RENAME_NOREPLACE: check, then rename. */
            struct stat st;
            if (stat(u->blob_path, &st) == 0) {
                errno = EEXIST;
            } else {
                rv = rename(u->data_path, u->blob_path);
            }
        }
        if (rv == 0) {
            *renamed = true;
        } else if (errno != EEXIST) {
            wr_err(u, errno, "rename into blobs", u->data_path);
            return -1;
        } else if (utimensat(AT_FDCWD, u->blob_path, NULL, 0) != 0 &&
                   errno == ENOENT && attempt == 0) {
            continue; /* GC removed the existing copy meanwhile: rename */
        }
        break;
    }
    return 0;
}

static void work_commit(struct storage_upload *u)
{
    struct at_digest got;
    char want_s[AT_DIGEST_STR_SIZE];
    char got_s[AT_DIGEST_STR_SIZE];
    bool created = false;
    bool renamed = false;
    int rv;

    /* The tail of the stream (a small blob: all of it) comes in the commit
     * item itself: one pool round trip instead of three. */
    if (write_batch(u) != 0 ||
        hash_batch(u, &u->wr_status, u->wr_errmsg) != 0 ||
        hash_file(u, u->wr_off, &u->wr_status, u->wr_errmsg) != 0)
        return;
    if (u->h_final) {
        /* A hash watch already finalized the sha over every byte (the
         * session is capped at the watched size): trust it. */
        AT_ASSERT(u->h_off == u->wr_off);
        got = u->h_digest;
        u->h_final = false; /* sha is already a fresh context */
    } else {
        at_sha256_final(&u->sha, &got);
        /* The context is consumed: whatever happens next, a later attempt
         * rehashes the file from the start. */
        at_sha256_init(&u->sha);
    }
    u->h_off = 0;
    if (!at_digest_equal(&got, &u->commit_expected)) {
        u->wr_status = AT_EDIGEST;
        at_errmsg_printf(u->wr_errmsg,
                         "upload '%s': digest mismatch: got '%s', want '%s'",
                         u->id, at_digest_format(&got, got_s),
                         at_digest_format(&u->commit_expected, want_s));
        return;
    }
    if (open_data(u) != 0) /* an empty blob: no write created it */
        return;
    if (place_blob(u, &created, &renamed) != 0)
        return;
    rv = storage__fsync_dir(u->blob_dir);
    if (rv == 0 && created)
        rv = storage__fsync_dir(u->blobs_root);
    if (rv != 0) {
        /* If renamed, the blob is in place but maybe not durable: report the
         * error (sticky); a new upload of the same content finds the blob
         * and syncs the directory again. */
        wr_err(u, -rv, "fsync", u->blob_dir);
        return;
    }
    close(u->fd);
    u->fd = -1;
    /* Leftovers are harmless: an orphan data file is removed at open, an
     * info file whose removal is lost in a crash comes back as an empty
     * session that the purge removes. */
    if (u->info_exists)
        (void)unlink(u->info_path);
    u->w_dup = !renamed; /* removed after the answer: see remove_later */
    u->w_digest = got;
}

struct remove_job {
    uv_work_t work;
    char path[];
};

static void remove_work_cb(uv_work_t *req)
{
    struct remove_job *j = req->data;

    if (unlink(j->path) != 0 && errno != ENOENT)
        LOG_WARN("remove '%s': %s", j->path, strerror(errno));
}

static void after_remove_cb(uv_work_t *req, int status)
{
    AT_UNUSED(status);
    free(req->data);
}

/* Remove a data file that no session refers to any more, in the pool and
 * after the answer: freeing a large file's blocks takes a while (hundreds of
 * ms for 256 MiB with online discard). If that is lost in a crash, the
 * orphan is removed at the next open. */
static void remove_later(uv_loop_t *loop, const char *path)
{
    size_t len = strlen(path);
    struct remove_job *j = at_malloc(sizeof(*j) + len + 1);
    int rv;

    memcpy(j->path, path, len + 1);
    j->work.data = j;
    rv = uv_queue_work(loop, &j->work, remove_work_cb, after_remove_cb);
    AT_ASSERT(rv == 0);
}

static void work_remove(struct storage_upload *u)
{
    if (u->fd >= 0) {
        close(u->fd);
        u->fd = -1;
    }
    if (unlink(u->data_path) != 0 && errno != ENOENT) {
        wr_err(u, errno, "remove", u->data_path);
        return;
    }
    if (unlink(u->info_path) != 0 && errno != ENOENT) {
        wr_err(u, errno, "remove", u->info_path);
        return;
    }
}

static void wr_work_cb(uv_work_t *req)
{
    struct storage_upload *u = req->data;

    u->wr_status = 0;
    switch (u->wr_kind) {
    case STORAGE__WORK_WRITE:
        work_write(u);
        break;
    case STORAGE__WORK_SYNC:
        (void)do_sync(u);
        break;
    case STORAGE__WORK_COMMIT:
        work_commit(u);
        break;
    case STORAGE__WORK_REMOVE:
        work_remove(u);
        break;
    }
}

/* ---- loop thread: scheduling and delivery ---- */

static void deliver(struct storage_upload *u);

static bool flush_ok(const struct storage_upload *u,
                     const struct storage__flush *f)
{
    if (u->written < f->target)
        return false;
    return !f->sync || (u->synced_upto >= f->target && u->meta_ok);
}

static bool sync_wanted(const struct storage_upload *u)
{
    const struct at_list *l;

    AT_LIST_FOREACH (l, &u->flushes) {
        const struct storage__flush *f =
            AT_LIST_ENTRY(l, struct storage__flush, link);
        if (f->sync && (u->synced_upto < f->target || !u->meta_ok))
            return true;
    }
    return false;
}

/* The oldest flush waiter, or NULL. */
static struct storage__flush *flush_first(const struct storage_upload *u)
{
    struct at_list *l = at_list_first(&u->flushes);
    return l != NULL ? AT_LIST_ENTRY(l, struct storage__flush, link) : NULL;
}

/* The status waiters get when the session can no longer make progress. */
static int fail_status(const struct storage_upload *u)
{
    if (u->error != 0)
        return u->error;
    if (u->canceled)
        return AT_ECANCELED;
    return 0;
}

static size_t low_water(const struct storage_upload *u)
{
    return u->core->write_high_water / 2;
}

/* Bytes per work item: small enough that buffers are freed well before the
 * queue drains to the low-water mark, so the disk never waits for the
 * socket; large enough to amortise the pool round trip. */
static size_t batch_cap(const struct storage_upload *u)
{
    return AT_MAX(STORAGE__BATCH_MIN, u->core->write_high_water / 4);
}

/* Take up to cap bytes of u's chunks starting at *next (only sealed ones
 * when need_sealed), seal them, advance *next. Returns the chunk count. */
static size_t take_batch(const struct storage_upload *u,
                         struct storage__chunk **next,
                         size_t cap,
                         bool need_sealed)
{
    size_t bytes = 0;
    size_t n = 0;
    struct storage__chunk *c = *next;

    while (c != NULL && bytes < cap && (!need_sealed || c->sealed)) {
        c->sealed = true;
        bytes += c->len;
        n++;
        c = storage__chunk_after(u, c);
    }
    *next = c;
    return n;
}

static void after_write_cb(uv_work_t *req, int status);
static void after_hash_cb(uv_work_t *req, int status);
static void after_bsync_cb(uv_work_t *req, int status);

static void bsync_work_cb(uv_work_t *req)
{
    struct storage_upload *u = req->data;

    if (fdatasync(u->bs_fd) != 0) {
        /* Reported here and sticky: a later fdatasync may not see it. */
        u->bs_status = storage__io_err(errno);
        at_errmsg_printf(u->bs_errmsg, "fdatasync '%s': %s", u->data_path,
                         strerror(errno));
    }
}

/* see storage.h */
void storage_upload_no_throttle(struct storage_upload *u)
{
    u->no_throttle = true;
}

/* Start a background fdatasync when enough was written since the last one
 * and the write chain has created the file (u->fd is stable from then on
 * until COMMIT/REMOVE, which wait for this chain). */
static void maybe_bsync(struct storage_upload *u)
{
    int rv;

    if (u->bs_inflight || u->no_throttle || u->written == 0 ||
        u->written - u->bs_done < STORAGE__BG_SYNC_STEP ||
        u->commit_state == STORAGE__COMMIT_RUNNING)
        return;
    u->bs_inflight = true;
    u->bs_fd = u->fd;
    u->bs_target = u->written;
    u->bs_work.data = u;
    storage_upload_ref(u);
    rv = uv_queue_work(u->core->loop, &u->bs_work, bsync_work_cb,
                       after_bsync_cb);
    AT_ASSERT(rv == 0);
}

static void submit_write(struct storage_upload *u, enum storage__work_kind kind)
{
    int rv;

    PRE(!u->wr_inflight);
    u->wr_inflight = true;
    u->wr_kind = kind;
    storage_upload_ref(u); /* the work item's */
    rv = uv_queue_work(u->core->loop, &u->wr_work, wr_work_cb, after_write_cb);
    AT_ASSERT(rv == 0);
}

static void submit_hash(struct storage_upload *u)
{
    int rv;

    PRE(!u->h_inflight);
    u->h_inflight = true;
    storage_upload_ref(u);
    rv = uv_queue_work(u->core->loop, &u->h_work, h_work_cb, after_hash_cb);
    AT_ASSERT(rv == 0);
}

/* Bytes of the chunk list from c to the end of the stream. */
static uint64_t bytes_from(const struct storage_upload *u,
                           const struct storage__chunk *c)
{
    return c != NULL ? u->size - c->off : 0;
}

/* A hash watch waits and every byte it covers is accepted: the chains finish
 * them without waiting for more (the session is capped), and a commit waits
 * for the watch, so the watch fires before the commit's fdatasync. */
static bool watch_full(const struct storage_upload *u)
{
    return u->hw_cb != NULL && u->size == u->hw_size;
}

/* Whether the idle hash chain should start now. Small amounts wait (a
 * small blob is hashed by its commit item) unless someone waits for the
 * memory or the commit waits for the write chain anyway. */
static bool hash_wanted(const struct storage_upload *u)
{
    uint64_t sealed = 0;

    if (u->h_next == NULL || u->commit_state == STORAGE__COMMIT_RUNNING)
        return false;
    if (watch_full(u))
        return true; /* nothing more can come: hash the tail now */
    if (!u->h_next->sealed)
        return false;
    if (u->drain_cb != NULL || u->commit_state == STORAGE__COMMIT_PENDING)
        return true;
    for (const struct storage__chunk *c = u->h_next; c != NULL && c->sealed;
         c = storage__chunk_after(u, c)) {
        sealed += c->len;
        if (sealed >= STORAGE__HASH_MIN)
            return true;
    }
    return false;
}

/* Start the next item of each chain if it is idle. Never calls callbacks. */
static void submit_next(struct storage_upload *u)
{
    if (u->canceled) {
        if (u->wr_inflight || u->h_inflight || u->bs_inflight || u->removed)
            return;
        u->removed = true;
        /* fd and info_exists are ours: no work in flight */
        if (!u->committed && (u->fd >= 0 || u->info_exists))
            submit_write(u, STORAGE__WORK_REMOVE);
        return;
    }
    if (u->committed || u->error != 0)
        return;
    if (!u->wr_inflight) {
        if (u->commit_state == STORAGE__COMMIT_PENDING && !u->h_inflight &&
            !u->bs_inflight && !watch_full(u) &&
            bytes_from(u, u->wr_next) <= STORAGE__BATCH_MIN &&
            bytes_from(u, u->h_next) <= STORAGE__BATCH_MIN) {
            /* The commit item writes and hashes what is left. */
            u->wr_first = u->wr_next;
            u->wr_count = take_batch(u, &u->wr_next, SIZE_MAX, false);
            if (u->h_next != NULL) {
                u->h_first = u->h_next;
                u->h_file_end = u->h_first->off;
                AT_ASSERT(u->hashed >= u->h_file_end ||
                          u->written >= u->h_file_end);
                u->h_count = take_batch(u, &u->h_next, SIZE_MAX, true);
                AT_ASSERT(u->h_next == NULL);
            }
            u->commit_state = STORAGE__COMMIT_RUNNING;
            submit_write(u, STORAGE__WORK_COMMIT);
            return;
        }
        if (u->wr_next != NULL) {
            u->wr_first = u->wr_next;
            u->wr_count = take_batch(u, &u->wr_next, batch_cap(u), false);
            u->wr_sync = u->wr_next == NULL && sync_wanted(u);
            submit_write(u, STORAGE__WORK_WRITE);
        } else if (sync_wanted(u)) {
            u->wr_sync = true;
            submit_write(u, STORAGE__WORK_SYNC);
        }
    }
    if (!u->wr_inflight || u->wr_kind == STORAGE__WORK_WRITE)
        maybe_bsync(u);
    if (!u->h_inflight && hash_wanted(u)) {
        u->h_first = u->h_next;
        u->h_file_end = u->h_first->off;
        /* Bytes before the first chunk that the sha misses are on disk: the
         * session was resumed (base = file size) or a commit wrote all. */
        AT_ASSERT(u->hashed >= u->h_file_end || u->written >= u->h_file_end);
        u->h_count = take_batch(u, &u->h_next, batch_cap(u), !watch_full(u));
        submit_hash(u);
    } else if (!u->h_inflight && u->hw_cb != NULL && u->h_next == NULL &&
               u->hashed < u->written &&
               u->commit_state != STORAGE__COMMIT_RUNNING) {
        /* A watch on a session whose sha misses written bytes (resumed
         * after a restart, or after a mismatched commit) and no chunk to
         * hash: rehash the file alone. */
        u->h_first = NULL;
        u->h_count = 0;
        u->h_file_end = u->written;
        submit_hash(u);
    }
}

enum event {
    EV_NONE,
    EV_DRAIN,
    EV_FLUSH,
    EV_HASHED,
    EV_COMMIT,
};

/* The watch's bytes are hashed (the sha is ours) and in the data file. */
static bool watch_done(const struct storage_upload *u)
{
    return u->hashed == u->hw_size && u->written >= u->hw_size &&
           !u->h_inflight && u->commit_state != STORAGE__COMMIT_RUNNING;
}

static enum event next_event(const struct storage_upload *u)
{
    int fail = fail_status(u);

    if (u->drain_cb != NULL && (fail != 0 || u->queued <= low_water(u)))
        return EV_DRAIN;
    if (flush_first(u) != NULL && (fail != 0 || flush_ok(u, flush_first(u))))
        return EV_FLUSH;
    if (u->hw_cb != NULL && (fail != 0 || u->committed || watch_done(u)))
        return EV_HASHED;
    if (u->commit_state == STORAGE__COMMIT_DONE)
        return EV_COMMIT;
    if (u->commit_state == STORAGE__COMMIT_PENDING && fail != 0)
        return EV_COMMIT;
    return EV_NONE;
}

/* Run satisfied callbacks, then start the next work items. Only called from
 * the defer timer or a work completion, never from an API call. */
static void deliver(struct storage_upload *u)
{
    enum event ev;

    storage_upload_ref(u);
    while ((ev = next_event(u)) != EV_NONE) {
        int fail = fail_status(u);
        switch (ev) {
        case EV_DRAIN: {
            storage_cb cb = u->drain_cb;
            void *data = u->drain_data;
            u->drain_cb = NULL;
            u->drain_data = NULL;
            cb(data, fail);
            storage_upload_unref(u);
            break;
        }
        case EV_FLUSH: {
            struct storage__flush *f = flush_first(u);
            at_list_remove(&f->link);
            f->cb(f->data, fail);
            free(f);
            storage_upload_unref(u);
            break;
        }
        case EV_HASHED: {
            storage_hashed_cb cb = u->hw_cb;
            void *data = u->hw_data;
            int st = fail;
            u->hw_cb = NULL;
            u->hw_data = NULL;
            if (st == 0 && u->committed) {
                st = AT_ECANCELED; /* committed short of the watched size */
            } else if (st == 0) {
                /* Finalizing costs a block or two: fine on the loop. The
                 * session is capped, so the sha never needs more bytes. */
                if (!u->h_final) {
                    at_sha256_final(&u->sha, &u->h_digest);
                    at_sha256_init(&u->sha);
                    u->h_final = true;
                }
                st =
                    at_digest_equal(&u->h_digest, &u->hw_want) ? 0 : AT_EDIGEST;
            }
            cb(data, st);
            storage_upload_unref(u);
            break;
        }
        case EV_COMMIT: {
            storage_commit_cb cb = u->commit_cb;
            void *data = u->commit_data;
            int st = u->commit_state == STORAGE__COMMIT_DONE ? u->commit_status
                                                             : fail;
            uint64_t size = u->written;
            struct at_digest d = u->w_digest;
            u->commit_state = STORAGE__COMMIT_NONE;
            u->commit_cb = NULL;
            u->commit_data = NULL;
            cb(data, st, st == 0 ? &d : NULL, st == 0 ? size : 0);
            storage_upload_unref(u);
            break;
        }
        case EV_NONE:
            break;
        }
    }
    submit_next(u);
    storage_upload_unref(u);
}

static void defer(struct storage_upload *u)
{
    struct storage__core *c = u->core;

    if (at_list_linked(&u->defer_link))
        return;
    AT_ASSERT(!c->defer_closing); /* closed only once no session is left */
    storage_upload_ref(u);
    at_list_push_front(&c->defer, &u->defer_link);
    uv_timer_start(&c->defer_timer, storage__defer_timer_cb, 0, 0);
}

/* see internal.h */
void storage__defer_timer_cb(uv_timer_t *t)
{
    struct storage__core *c = t->data;
    struct at_list due; /* sessions deferred again meanwhile wait a turn */
    struct at_list *l;

    at_list_init(&due);
    at_list_move(&c->defer, &due);
    while ((l = at_list_pop_front(&due)) != NULL) {
        struct storage_upload *u =
            AT_LIST_ENTRY(l, struct storage_upload, defer_link);
        deliver(u);
        storage_upload_unref(u);
    }
}

/* After an API call changed the session: start work, and arrange for any
 * callback that is now due to run on the next loop iteration. */
static void kick(struct storage_upload *u)
{
    submit_next(u);
    if (next_event(u) != EV_NONE)
        defer(u);
}

static void record_error(struct storage_upload *u,
                         int status,
                         const char *errmsg)
{
    struct storage *s = u->core->s; /* NULL after storage_close() */

    if (s != NULL)
        memcpy(s->errmsg, errmsg, AT_ERRMSG_SIZE);
    if (status == AT_EDIGEST)
        return;
    LOG_WARN("%s", errmsg);
    if (u->error == 0)
        u->error = status;
}

/* The chain that took the n chunks from c (a batch) is done with them. */
static void mark_wrote(struct storage__chunk *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        c->wrote = true;
        if (i + 1 < n)
            c = storage__chunk_next(c);
    }
}

static void mark_hashed(struct storage__chunk *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        c->hashed = true;
        if (i + 1 < n)
            c = storage__chunk_next(c);
    }
}

static void after_write_cb(uv_work_t *req, int status)
{
    struct storage_upload *u = req->data;
    struct storage__chunk *c = u->wr_first;

    AT_ASSERT(status == 0); /* we never uv_cancel() */
    u->wr_inflight = false;
    u->last_active_ms = now_ms();
    u->written = u->wr_off;
    u->synced_upto = u->wr_synced;
    u->meta_ok = u->meta_synced;
    switch (u->wr_kind) {
    case STORAGE__WORK_WRITE:
        mark_wrote(c, u->wr_count);
        u->wr_first = NULL;
        u->wr_count = 0;
        chunks_release_done(u);
        if (u->wr_status != 0)
            record_error(u, u->wr_status, u->wr_errmsg);
        break;
    case STORAGE__WORK_SYNC:
        if (u->wr_status != 0)
            record_error(u, u->wr_status, u->wr_errmsg);
        break;
    case STORAGE__WORK_COMMIT:
        mark_wrote(c, u->wr_count);
        mark_hashed(u->h_first, u->h_count);
        u->wr_first = NULL;
        u->wr_count = 0;
        u->h_first = NULL;
        u->h_count = 0;
        chunks_release_done(u);
        u->hashed = u->h_off;
        u->commit_state = STORAGE__COMMIT_DONE;
        u->commit_status = u->wr_status;
        if (u->wr_status == 0) {
            AT_ASSERT(at_list_empty(&u->chunks));
            u->committed = true;
            LOG_DEBUG("upload '%s' committed (%" PRIu64 " bytes)", u->id,
                      u->written);
            if (u->w_dup)
                remove_later(u->core->loop, u->data_path);
            table_remove(u);
        } else {
            record_error(u, u->wr_status, u->wr_errmsg);
        }
        break;
    case STORAGE__WORK_REMOVE:
        if (u->wr_status != 0)
            LOG_WARN("%s", u->wr_errmsg);
        break;
    }
    deliver(u);
    storage_upload_unref(u); /* the work item's */
}

static void after_hash_cb(uv_work_t *req, int status)
{
    struct storage_upload *u = req->data;
    struct storage__chunk *c = u->h_first;

    AT_ASSERT(status == 0);
    u->h_inflight = false;
    u->hashed = u->h_off;
    mark_hashed(c, u->h_count);
    u->h_first = NULL;
    u->h_count = 0;
    chunks_release_done(u);
    if (u->h_status != 0)
        record_error(u, u->h_status, u->h_errmsg);
    deliver(u);
    storage_upload_unref(u);
}

static void after_bsync_cb(uv_work_t *req, int status)
{
    struct storage_upload *u = req->data;

    AT_ASSERT(status == 0);
    u->bs_inflight = false;
    if (u->bs_status != 0)
        record_error(u, u->bs_status, u->bs_errmsg);
    else if (u->bs_target > u->bs_done)
        u->bs_done = u->bs_target;
    deliver(u);
    storage_upload_unref(u);
}

/* ---- public API ---- */

/* Checks shared by write, flush and commit. */
static int usable(struct storage_upload *u)
{
    if (u->error != 0)
        return u->error;
    if (u->canceled || u->committed)
        return AT_ENOTFOUND;
    if (u->core->closing)
        return AT_ESHUTDOWN;
    return 0;
}

/* see storage.h */
int storage_upload_create(struct storage *s,
                          const char *repo,
                          struct storage_upload **out)
{
    struct storage_upload *u;
    uint8_t rnd[16];
    char id[STORAGE_UPLOAD_ID_MAX + 1];
    size_t repo_len;
    size_t off = 0;

    if (s->closing) {
        at_errmsg_printf(s->errmsg, "store is closing");
        return AT_ESHUTDOWN;
    }
    repo_len = strnlen(repo, STORAGE__REPO_MAX + 1);
    if (!repo_valid(repo, repo_len)) {
        at_errmsg_printf(s->errmsg, "upload: invalid repository name");
        return AT_EINVAL;
    }
    if (!storage_space_ok(s)) {
        at_errmsg_printf(
            s->errmsg, "upload: free space %" PRIu64 " below reserve %" PRIu64,
            s->free_bytes, s->reserve_bytes);
        return AT_ENOSPC;
    }
    while (off < sizeof(rnd)) {
        ssize_t k = getrandom(rnd + off, sizeof(rnd) - off, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            at_errmsg_printf(s->errmsg, "getrandom: %s", strerror(errno));
            return AT_EIO;
        }
        off += (size_t)k;
    }
    off = 0;
    if (s->node_tag != NULL)
        off = (size_t)snprintf(id, sizeof(id), "%s-", s->node_tag);
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(id + off + 2 * i, 3, "%02x", rnd[i]);
    AT_ASSERT(storage_upload_id_valid(id, strlen(id)));

    /* No file yet: the first work item creates the data file, the first sync
     * flush the info file. */
    u = upload_new(s, id, repo, repo_len);
    u->refs = 2; /* table + caller */
    u->in_table = true;
    AT_ASSERT(at_map_put(&s->uploads, u->id, strlen(u->id), u) == NULL);
    *out = u;
    return 0;
}

/* see storage.h */
int storage_upload_find(struct storage *s,
                        const char *id,
                        struct storage_upload **out)
{
    size_t len;
    struct storage_upload *u;

    if (s->closing || id == NULL)
        return AT_ENOTFOUND;
    len = strnlen(id, STORAGE_UPLOAD_ID_MAX + 1);
    if (!storage_upload_id_valid(id, len))
        return AT_ENOTFOUND;
    u = at_map_get(&s->uploads, id, len);
    if (u == NULL)
        return AT_ENOTFOUND;
    storage_upload_ref(u);
    *out = u;
    return 0;
}

/* see storage.h */
const char *storage_upload_id(const struct storage_upload *u)
{
    return u->id;
}

/* see storage.h */
const char *storage_upload_repo(const struct storage_upload *u)
{
    return u->repo;
}

/* see storage.h */
uint64_t storage_upload_size(const struct storage_upload *u)
{
    return u->size;
}

/* see storage.h */
size_t storage_upload_queued(const struct storage_upload *u)
{
    return u->queued;
}

/* see storage.h */
bool storage_upload_try_lock(struct storage_upload *u)
{
    if (u->locked)
        return false;
    u->locked = true;
    return true;
}

/* see storage.h */
void storage_upload_unlock(struct storage_upload *u)
{
    u->locked = false;
}

/* see storage.h */
int storage_upload_write(struct storage_upload *u, const void *p, size_t n)
{
    const char *src = p;
    int rv = usable(u);

    if (rv != 0)
        return rv;
    if (u->commit_state != STORAGE__COMMIT_NONE)
        return AT_EBUSY;
    if (n == 0)
        return 0;
    if (UINT64_MAX - u->size < n)
        return AT_ETOOBIG;
    if (u->hw_armed && n > u->hw_size - u->size)
        return AT_ETOOBIG; /* hash_watch: never past the watched size */
    u->last_active_ms = now_ms();
    while (n > 0) {
        struct storage__chunk *c = storage__chunk_last(u);
        size_t k;
        if (c == NULL || c->sealed) {
            size_t cap = (at_list_empty(&u->chunks) && n < STORAGE__CHUNK_SMALL)
                             ? STORAGE__CHUNK_SMALL
                             : STORAGE__CHUNK;
            if (u->c_spare != NULL && src == u->c_spare->data) {
                c = u->c_spare; /* the bytes are already in it */
                u->c_spare = NULL;
                c->off = u->size;
            } else {
                c = chunk_new(u->core, cap, u->size);
            }
            at_list_push_back(&u->chunks, &c->link);
            if (u->wr_next == NULL)
                u->wr_next = c;
            if (u->h_next == NULL)
                u->h_next = c;
        }
        k = AT_MIN(n, c->cap - c->len);
        if (src != c->data + c->len) /* else placed by storage_upload_reserve */
            memcpy(c->data + c->len, src, k);
        c->len += k;
        c->sealed = c->len == c->cap;
        u->size += k;
        u->queued += k;
        src += k;
        n -= k;
    }
    /* Submit from the next loop iteration: pieces of the same read coalesce
     * into one batch, and a commit requested right after the last piece
     * (a small blob) takes them all in one work item. */
    if (!u->wr_inflight || !u->h_inflight)
        defer(u);
    return 0;
}

/* see storage.h */
int storage_upload_reserve(struct storage_upload *u,
                           size_t want,
                           char **p,
                           size_t *n)
{
    struct storage__chunk *c = storage__chunk_last(u);
    int rv = usable(u);

    PRE(want > 0);
    if (rv != 0)
        return rv;
    if (u->commit_state != STORAGE__COMMIT_NONE)
        return AT_EBUSY;
    if (c == NULL || c->sealed || c->len == c->cap) {
        if (u->c_spare == NULL)
            u->c_spare = chunk_new(u->core, STORAGE__CHUNK, 0);
        c = u->c_spare;
    }
    *p = c->data + c->len;
    *n = AT_MIN(want, c->cap - c->len);
    return 0;
}

/* see storage.h */
bool storage_upload_busy(const struct storage_upload *u)
{
    return u->queued > u->core->write_high_water;
}

/* see storage.h */
void storage_upload_on_drain(struct storage_upload *u,
                             storage_cb cb,
                             void *data)
{
    PRE(cb != NULL);
    PRE(u->drain_cb == NULL);
    u->drain_cb = cb;
    u->drain_data = data;
    storage_upload_ref(u);
    kick(u);
}

/* see storage.h */
int storage_upload_flush(struct storage_upload *u,
                         bool sync,
                         storage_cb cb,
                         void *data)
{
    struct storage__flush *f;
    int rv = usable(u);

    PRE(cb != NULL);
    if (rv != 0)
        return rv;
    f = at_calloc(1, sizeof(*f));
    f->target = u->size;
    f->sync = sync;
    f->cb = cb;
    f->data = data;
    at_list_push_back(&u->flushes, &f->link);
    storage_upload_ref(u);
    u->last_active_ms = now_ms();
    kick(u);
    return 0;
}

/* see storage.h */
int storage_upload_commit(struct storage_upload *u,
                          const struct at_digest *expected,
                          storage_commit_cb cb,
                          void *data)
{
    char hex[AT_DIGEST_HEX_LEN + 1];
    struct storage *s = u->core->s; /* not NULL: usable() checked closing */
    int rv = usable(u);

    PRE(cb != NULL && expected != NULL);
    if (rv != 0)
        return rv;
    if (u->commit_state != STORAGE__COMMIT_NONE)
        return AT_EBUSY;
    at_digest_hex(expected, hex);
    free(u->blob_path);
    free(u->blob_dir);
    free(u->blobs_root);
    u->blobs_root = at_asprintf("%s/blobs/sha256", s->dir);
    u->blob_dir = at_asprintf("%s/%.2s", u->blobs_root, hex);
    u->blob_path = at_asprintf("%s/%s", u->blob_dir, hex);
    u->commit_expected = *expected;
    u->commit_cb = cb;
    u->commit_data = data;
    u->commit_state = STORAGE__COMMIT_PENDING;
    storage_upload_ref(u);
    u->last_active_ms = now_ms();
    kick(u);
    return 0;
}

/* see storage.h */
int storage_upload_hash_watch(struct storage_upload *u,
                              uint64_t size,
                              const struct at_digest *want,
                              storage_hashed_cb cb,
                              void *data)
{
    int rv = usable(u);

    PRE(cb != NULL && want != NULL);
    if (rv != 0)
        return rv;
    if (u->hw_armed || u->commit_state != STORAGE__COMMIT_NONE)
        return AT_EBUSY;
    if (u->size > size)
        return AT_EINVAL;
    u->hw_armed = true;
    u->hw_size = size;
    u->hw_want = *want;
    u->hw_cb = cb;
    u->hw_data = data;
    storage_upload_ref(u);
    u->last_active_ms = now_ms();
    kick(u);
    return 0;
}

/* see storage.h */
void storage_upload_cancel(struct storage_upload *u)
{
    if (u->canceled)
        return;
    u->canceled = true;
    storage_upload_ref(u);
    table_remove(u);
    /* Chunks no chain has taken are never needed again; those in a batch
     * in flight are freed by its completion. */
    for (struct storage__chunk *c = u->wr_next; c != NULL;
         c = storage__chunk_after(u, c))
        c->wrote = true;
    for (struct storage__chunk *c = u->h_next; c != NULL;
         c = storage__chunk_after(u, c))
        c->hashed = true;
    u->wr_next = NULL;
    u->h_next = NULL;
    chunks_release_done(u);
    LOG_DEBUG("upload '%s' canceled", u->id);
    kick(u);
    storage_upload_unref(u);
}

/* see storage.h */
void storage_upload_purge(struct storage *s)
{
    int64_t now = now_ms();
    void *v;

    if (s->closing || s->upload_ttl_ms == 0)
        return;
    for (size_t i = 0; at_map_next(&s->uploads, &i, NULL, &v);) {
        struct storage_upload *u = v;
        if (u->locked || u->wr_inflight || u->h_inflight || u->bs_inflight ||
            !at_list_empty(&u->flushes) || u->drain_cb != NULL ||
            u->hw_cb != NULL || u->commit_state != STORAGE__COMMIT_NONE)
            continue;
        if (now - u->last_active_ms <= (int64_t)s->upload_ttl_ms)
            continue;
        LOG_INFO("purging upload '%s' of '%s', idle %" PRId64 " ms", u->id,
                 u->repo, now - u->last_active_ms);
        storage_upload_cancel(u); /* deletes the current entry: allowed */
    }
}

/* see internal.h */
void storage__purge_timer_cb(uv_timer_t *t)
{
    struct storage__core *c = t->data;

    if (c->s != NULL)
        storage_upload_purge(c->s);
}

/* ---- rediscovery at open ---- */

/* Read and check uploads/<id>.info: "<repo>\n<wall ms>\n". */
static int read_info(const char *path,
                     char **repo,
                     size_t *repo_len,
                     uint64_t *when,
                     struct stat *st)
{
    char buf[STORAGE__INFO_MAX + 1];
    size_t len = 0;
    char *nl;
    char *end;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

    if (fd < 0)
        return AT_ECORRUPT;
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return AT_ECORRUPT;
    }
    while (len < sizeof(buf)) {
        ssize_t k = read(fd, buf + len, sizeof(buf) - len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        len += (size_t)k;
    }
    close(fd);
    if (len == 0 || len > STORAGE__INFO_MAX)
        return AT_ECORRUPT;
    nl = memchr(buf, '\n', len);
    if (nl == NULL || !repo_valid(buf, (size_t)(nl - buf)))
        return AT_ECORRUPT;
    end = memchr(nl + 1, '\n', len - (size_t)(nl + 1 - buf));
    if (end == NULL || end != buf + len - 1 ||
        at_parse_u64(nl + 1, (size_t)(end - nl - 1), when) != 0)
        return AT_ECORRUPT;
    *repo_len = (size_t)(nl - buf);
    *repo = at_strndup(buf, *repo_len);
    return 0;
}

/* Remove a file or a directory tree; logs failures. */
static void remove_any(const char *path)
{
    int rv = 0;

    if (unlink(path) != 0 && errno != ENOENT) {
        if (errno == EISDIR || errno == EPERM)
            rv = storage__rm_tree(path);
        else
            rv = -errno;
    }
    if (rv != 0)
        LOG_WARN("remove '%s': %s", path, strerror(-rv));
}

static int64_t mtime_ms(const struct stat *st)
{
    return (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
}

/* Resume one session: <id>.info (valid) plus <id>.data when has_data. */
static void load_one(struct storage *s, const char *id, bool has_data)
{
    struct storage_upload *u;
    struct stat ist;
    struct stat dst;
    char *info = at_asprintf("%s/uploads/%s.info", s->dir, id);
    char *data = at_asprintf("%s/uploads/%s.data", s->dir, id);
    char *repo = NULL;
    size_t repo_len = 0;
    uint64_t when = 0;
    int64_t age;
    int fd = -1;
    int rv;

    rv = read_info(info, &repo, &repo_len, &when, &ist);
    if (rv == 0 && has_data) {
        fd = open(data, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 || fstat(fd, &dst) != 0 || !S_ISREG(dst.st_mode))
            rv = AT_ECORRUPT;
    }
    if (rv != 0) {
        LOG_WARN("removing upload '%s': corrupt info or data file", id);
        if (fd >= 0)
            close(fd);
        remove_any(info);
        remove_any(data);
        goto out;
    }
    u = upload_new(s, id, repo, repo_len);
    u->created_wall_ms = when;
    u->fd = fd;
    u->info_exists = true; /* maybe not fsynced: the next sync does it */
    if (has_data) {
        u->wr_off = (uint64_t)dst.st_size;
        u->written = u->wr_off;
        u->size = u->wr_off;
        u->sfr_start = u->wr_off;
        u->sfr_prev = u->wr_off;
        u->sfr_waited = u->wr_off;
    }
    /* h_off = 0: the hash chain rehashes the file before new chunks */
    age = (int64_t)at_wall_ms() - mtime_ms(has_data ? &dst : &ist);
    u->last_active_ms = now_ms() - AT_MAX(age, 0);
    u->refs = 1; /* the table's */
    u->in_table = true;
    at_map_put(&s->uploads, u->id, strlen(u->id), u);
    LOG_DEBUG("resumed upload '%s' of '%s' at %" PRIu64, u->id, u->repo,
              u->size);
out:
    free(repo);
    free(info);
    free(data);
}

#define FOUND_DATA ((uintptr_t)1)
#define FOUND_INFO ((uintptr_t)2)

/* If name is "<valid id>.data" or "<valid id>.info", return its FOUND_* bit
 * and the id length. */
static uintptr_t session_file(const char *name, size_t len, size_t *idlen)
{
    uintptr_t kind;

    if (len < 5)
        return 0;
    if (strcmp(name + len - 5, ".data") == 0)
        kind = FOUND_DATA;
    else if (strcmp(name + len - 5, ".info") == 0)
        kind = FOUND_INFO;
    else
        return 0;
    if (!storage_upload_id_valid(name, len - 5))
        return 0;
    *idlen = len - 5;
    return kind;
}

/* see internal.h */
int storage__uploads_load(struct storage *s)
{
    char *path = at_asprintf("%s/uploads", s->dir);
    DIR *d = opendir(path);
    struct at_map found; /* id -> FOUND_* bits (as a pointer value) */
    struct dirent *e;
    const char *id;
    void *v;
    int rv = 0;

    at_map_init(&found);
    if (d == NULL) {
        at_errmsg_printf(s->errmsg, "opendir '%s': %s", path, strerror(errno));
        rv = storage__io_err(errno);
        goto out;
    }
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        size_t idlen = 0;
        uintptr_t kind;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        kind = session_file(e->d_name, len, &idlen);
        if (kind == 0) {
            char *p = at_asprintf("%s/%s", path, e->d_name);
            LOG_WARN("removing '%s': not an upload file", p);
            remove_any(p);
            free(p);
            continue;
        }
        v = at_map_get(&found, e->d_name, idlen);
        at_map_put(&found, e->d_name, idlen, (void *)((uintptr_t)v | kind));
    }
    closedir(d);
    for (size_t i = 0; at_map_next(&found, &i, &id, &v);) {
        uintptr_t kind = (uintptr_t)v;
        if (kind & FOUND_INFO) {
            load_one(s, id, (kind & FOUND_DATA) != 0);
        } else {
            /* Never acknowledged (no sync flush): the client restarts. */
            char *p = at_asprintf("%s/%s.data", path, id);
            LOG_INFO("removing '%s': upload never acknowledged", p);
            remove_any(p);
            free(p);
        }
    }
out:
    at_map_release(&found);
    free(path);
    return rv;
}

/* see internal.h */
void storage__uploads_drop(struct storage *s)
{
    void *v;

    for (size_t i = 0; at_map_next(&s->uploads, &i, NULL, &v);) {
        struct storage_upload *u = v;
        u->in_table = false;
        storage_upload_unref(u);
    }
}
