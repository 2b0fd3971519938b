/* Upload sessions: a write queue drained in order by one pool work item at a
 * time, streaming sha256, durable flush, commit by rename, cancel and purge.
 *
 * Happy path: storage_upload_write() copies bytes into the session's queue
 * and, if no work item is in flight, submits one (WRITE) that pwrite()s a
 * batch at the file offset and hashes it. Its completion frees the batch,
 * delivers satisfied waiters (drain, flush) and submits the next item. A
 * sync flush adds fdatasync (WRITE with w_sync, or SYNC).
 * storage_upload_commit() waits for the queue to empty, then COMMIT verifies
 * the digest, fsyncs, renames into blobs/ and fsyncs the directories; the
 * session leaves the table.
 *
 * Failure modes: a write/sync error is sticky (every later write, flush and
 * commit returns it; only cancel helps). A digest mismatch keeps the session
 * (the hash is recomputed from the file next time). Cancel removes the session
 * from the table at once, fails pending waiters with AT_ECANCELED and removes
 * the files once the item in flight is done (REMOVE). After a restart the
 * hash of existing bytes is unknown: every work item first hashes the file
 * from hashed_upto to the write offset.
 *
 * Callbacks are never called from inside the API call that armed them: they
 * run from a work completion or from the store's defer timer. Every pending
 * waiter, the defer list and the work item hold a session reference. */
#include "common/compat.h"

#define AT_LOG_COMP "storage"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/internal.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

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
    u->dir = at_asprintf("%s/%s", u->uploads_dir, id);
    u->data_path = at_asprintf("%s/data", u->dir);
    u->info_path = at_asprintf("%s/info", u->dir);
    u->fd = -1;
    u->work.data = u;
    u->last_active_ms = now_ms();
    at_sha256_init(&u->sha);
    storage__session_new(u->core);
    return u;
}

static void chunks_free(struct storage__chunk *c)
{
    while (c != NULL) {
        struct storage__chunk *next = c->next;
        free(c);
        c = next;
    }
}

static void upload_free(struct storage_upload *u)
{
    struct storage__core *core = u->core;

    PRE(u->refs == 0 && !u->inflight && !u->deferred && !u->in_table);
    PRE(u->flush_head == NULL && u->drain_cb == NULL);
    chunks_free(u->q_head);
    chunks_free(u->w_batch);
    if (u->fd >= 0)
        close(u->fd);
    at_sha256_release(&u->sha);
    free(u->repo);
    free(u->uploads_dir);
    free(u->dir);
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

/* ---- the worker (pool thread) ---- */

static void werr(struct storage_upload *u, int err, const char *what)
{
    u->w_status = storage__io_err(err);
    at_errmsg_printf(u->w_errmsg, "upload '%s': %s '%s': %s", u->id, what,
                     u->data_path, strerror(err));
}

/* Hash the bytes of the data file that the sha does not cover yet (after a
 * restart or a digest mismatch). */
static int hash_catch_up(struct storage_upload *u)
{
    size_t bufsize = STORAGE__CHUNK;
    char *buf;

    if (u->hashed_upto >= u->written)
        return 0;
    buf = at_malloc(bufsize);
    while (u->hashed_upto < u->written) {
        size_t want =
            (size_t)AT_MIN((uint64_t)bufsize, u->written - u->hashed_upto);
        ssize_t k = pread(u->fd, buf, want, (off_t)u->hashed_upto);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            werr(u, errno, "read");
            break;
        }
        if (k == 0) {
            u->w_status = AT_EIO;
            at_errmsg_printf(u->w_errmsg,
                             "upload '%s': data file shorter than %" PRIu64
                             " bytes",
                             u->id, u->written);
            break;
        }
        at_sha256_update(&u->sha, buf, (size_t)k);
        u->hashed_upto += (uint64_t)k;
    }
    free(buf);
    return u->w_status;
}

/* fsync the info file and the directories naming the session, once, so an
 * acknowledged (synced) upload is found again after a crash. */
static int sync_meta(struct storage_upload *u)
{
    int fd;
    int rv;

    if (u->meta_synced)
        return 0;
    fd = open(u->info_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        werr(u, errno, "open info");
        return u->w_status;
    }
    rv = fsync(fd) != 0 ? errno : 0;
    close(fd);
    if (rv != 0) {
        werr(u, rv, "fsync info");
        return u->w_status;
    }
    rv = storage__fsync_dir(u->dir);
    if (rv == 0)
        rv = storage__fsync_dir(u->uploads_dir);
    if (rv != 0) {
        werr(u, -rv, "fsync dir of");
        return u->w_status;
    }
    u->meta_synced = true;
    return 0;
}

static int do_fdatasync(struct storage_upload *u)
{
    if (fdatasync(u->fd) != 0) {
        werr(u, errno, "fdatasync");
        return u->w_status;
    }
    u->synced_upto = u->written;
    return sync_meta(u);
}

static void work_write(struct storage_upload *u)
{
    if (hash_catch_up(u) != 0)
        return;
    for (struct storage__chunk *c = u->w_batch; c != NULL; c = c->next) {
        size_t off = 0;
        while (off < c->len) {
            ssize_t k =
                pwrite(u->fd, c->data + off, c->len - off, (off_t)u->written);
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0) {
                werr(u, errno, "write");
                return;
            }
            at_sha256_update(&u->sha, c->data + off, (size_t)k);
            off += (size_t)k;
            u->written += (uint64_t)k;
            u->hashed_upto = u->written;
        }
        if (u->written - u->sfr_start >= STORAGE__SYNC_RANGE) {
            /* Start writeback early so the final fsync is short; a failure
             * here only costs that, the fsync reports real errors. */
            (void)sync_file_range(u->fd, (off_t)u->sfr_start,
                                  (off_t)(u->written - u->sfr_start),
                                  SYNC_FILE_RANGE_WRITE);
            u->sfr_start = u->written;
        }
    }
    if (u->w_sync)
        (void)do_fdatasync(u);
}

static void work_commit(struct storage_upload *u)
{
    struct at_digest got;
    char want_s[AT_DIGEST_STR_SIZE];
    char got_s[AT_DIGEST_STR_SIZE];
    bool created = false;
    bool renamed = false;
    int rv;

    if (hash_catch_up(u) != 0)
        return;
    at_sha256_final(&u->sha, &got);
    /* The context is consumed: whatever happens next, a later attempt
     * rehashes the file from the start. */
    at_sha256_init(&u->sha);
    u->hashed_upto = 0;
    if (!at_digest_equal(&got, &u->commit_expected)) {
        u->w_status = AT_EDIGEST;
        at_errmsg_printf(u->w_errmsg,
                         "upload '%s': digest mismatch: got '%s', want '%s'",
                         u->id, at_digest_format(&got, got_s),
                         at_digest_format(&u->commit_expected, want_s));
        return;
    }
    if (fsync(u->fd) != 0) {
        werr(u, errno, "fsync");
        return;
    }
    if (mkdir(u->blob_dir, 0755) == 0) {
        created = true;
    } else if (errno != EEXIST) {
        werr(u, errno, "mkdir blob dir for");
        return;
    }
    rv = renameat2(AT_FDCWD, u->data_path, AT_FDCWD, u->blob_path,
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
        renamed = true;
    } else if (errno != EEXIST) {
        werr(u, errno, "rename into blobs");
        return;
    }
    rv = storage__fsync_dir(u->blob_dir);
    if (rv == 0 && created)
        rv = storage__fsync_dir(u->blobs_root);
    if (rv != 0) {
        /* If renamed, the blob is in place but maybe not durable: report the
         * error (sticky); a new upload of the same content finds the blob
         * and syncs the directory again. */
        werr(u, -rv, "fsync blob dir for");
        return;
    }
    close(u->fd);
    u->fd = -1;
    if (!renamed && unlink(u->data_path) != 0 && errno != ENOENT)
        LOG_WARN("unlink '%s': %s", u->data_path, strerror(errno));
    rv = storage__rm_tree(u->dir);
    if (rv != 0)
        LOG_WARN("remove '%s': %s", u->dir, strerror(-rv));
    u->w_digest = got;
}

static void work_remove(struct storage_upload *u)
{
    int rv;

    if (u->fd >= 0) {
        close(u->fd);
        u->fd = -1;
    }
    rv = storage__rm_tree(u->dir);
    if (rv != 0) {
        werr(u, -rv, "remove session dir of");
    }
}

static void work_cb(uv_work_t *req)
{
    struct storage_upload *u = req->data;

    u->w_status = 0;
    switch (u->w_kind) {
    case STORAGE__WORK_WRITE:
        work_write(u);
        break;
    case STORAGE__WORK_SYNC:
        (void)do_fdatasync(u);
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
    return u->written >= f->target && (!f->sync || u->synced_upto >= f->target);
}

static bool sync_wanted(const struct storage_upload *u)
{
    for (struct storage__flush *f = u->flush_head; f != NULL; f = f->next) {
        if (f->sync && u->synced_upto < f->target)
            return true;
    }
    return false;
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

static void after_work_cb(uv_work_t *req, int status);

static void submit(struct storage_upload *u, enum storage__work_kind kind)
{
    int rv;

    PRE(!u->inflight);
    u->inflight = true;
    u->w_kind = kind;
    storage_upload_ref(u); /* the work item's */
    rv = uv_queue_work(u->core->loop, &u->work, work_cb, after_work_cb);
    AT_ASSERT(rv == 0);
}

/* Start the next work item if none is in flight. Never calls callbacks. */
static void submit_next(struct storage_upload *u)
{
    if (u->inflight)
        return;
    if (u->canceled) {
        if (!u->removed) {
            u->removed = true;
            if (!u->committed)
                submit(u, STORAGE__WORK_REMOVE);
        }
        return;
    }
    if (u->committed || u->error != 0)
        return;
    if (u->q_head != NULL) {
        size_t cap = AT_MAX(STORAGE__CHUNK, u->core->write_high_water / 2);
        struct storage__chunk **tail = &u->w_batch;
        size_t n = 0;

        PRE(u->w_batch == NULL);
        while (u->q_head != NULL && n < cap) {
            struct storage__chunk *c = u->q_head;
            u->q_head = c->next;
            c->next = NULL;
            *tail = c;
            tail = &c->next;
            n += c->len;
        }
        if (u->q_head == NULL)
            u->q_tail = NULL;
        u->w_batch_bytes = n;
        u->w_sync = u->q_head == NULL && sync_wanted(u);
        submit(u, STORAGE__WORK_WRITE);
        return;
    }
    if (sync_wanted(u)) {
        submit(u, STORAGE__WORK_SYNC);
        return;
    }
    if (u->commit_state == STORAGE__COMMIT_PENDING) {
        u->commit_state = STORAGE__COMMIT_RUNNING;
        submit(u, STORAGE__WORK_COMMIT);
    }
}

enum event {
    EV_NONE,
    EV_DRAIN,
    EV_FLUSH,
    EV_COMMIT,
};

static enum event next_event(const struct storage_upload *u)
{
    int fail = fail_status(u);

    if (u->drain_cb != NULL && (fail != 0 || u->queued <= low_water(u)))
        return EV_DRAIN;
    if (u->flush_head != NULL &&
        (fail != 0 || (!u->inflight && flush_ok(u, u->flush_head))))
        return EV_FLUSH;
    if (u->commit_state == STORAGE__COMMIT_DONE)
        return EV_COMMIT;
    if (u->commit_state == STORAGE__COMMIT_PENDING && fail != 0)
        return EV_COMMIT;
    return EV_NONE;
}

/* Run satisfied callbacks, then start the next work item. Only called from
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
            struct storage__flush *f = u->flush_head;
            u->flush_head = f->next;
            if (u->flush_head == NULL)
                u->flush_tail = NULL;
            f->cb(f->data, fail);
            free(f);
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

    if (u->deferred)
        return;
    AT_ASSERT(!c->defer_closing); /* closed only once no session is left */
    u->deferred = true;
    storage_upload_ref(u);
    u->defer_next = c->defer_head;
    c->defer_head = u;
    uv_timer_start(&c->defer_timer, storage__defer_timer_cb, 0, 0);
}

/* see internal.h */
void storage__defer_timer_cb(uv_timer_t *t)
{
    struct storage__core *c = t->data;
    struct storage_upload *list = c->defer_head;

    c->defer_head = NULL;
    while (list != NULL) {
        struct storage_upload *u = list;
        list = u->defer_next;
        u->defer_next = NULL;
        u->deferred = false;
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

static void record_error(struct storage_upload *u, int status)
{
    struct storage *s = u->core->s; /* NULL after storage_close() */

    if (s != NULL)
        memcpy(s->errmsg, u->w_errmsg, AT_ERRMSG_SIZE);
    if (status == AT_EDIGEST)
        return;
    LOG_WARN("%s", u->w_errmsg);
    if (u->error == 0)
        u->error = status;
}

static void after_work_cb(uv_work_t *req, int status)
{
    struct storage_upload *u = req->data;

    AT_ASSERT(status == 0); /* we never uv_cancel() */
    u->inflight = false;
    u->last_active_ms = now_ms();
    switch (u->w_kind) {
    case STORAGE__WORK_WRITE:
        chunks_free(u->w_batch);
        u->w_batch = NULL;
        AT_ASSERT(u->queued >= u->w_batch_bytes);
        u->queued -= u->w_batch_bytes;
        u->w_batch_bytes = 0;
        if (u->w_status != 0)
            record_error(u, u->w_status);
        break;
    case STORAGE__WORK_SYNC:
        if (u->w_status != 0)
            record_error(u, u->w_status);
        break;
    case STORAGE__WORK_COMMIT:
        u->commit_state = STORAGE__COMMIT_DONE;
        u->commit_status = u->w_status;
        if (u->w_status == 0) {
            u->committed = true;
            LOG_DEBUG("upload '%s' committed (%" PRIu64 " bytes)", u->id,
                      u->written);
            table_remove(u);
        } else {
            record_error(u, u->w_status);
        }
        break;
    case STORAGE__WORK_REMOVE:
        if (u->w_status != 0)
            LOG_WARN("%s", u->w_errmsg);
        break;
    }
    deliver(u);
    storage_upload_unref(u); /* the work item's */
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
    char *info = NULL;
    size_t repo_len;
    size_t off = 0;
    int fd;
    int rv;

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

    u = upload_new(s, id, repo, repo_len);
    if (mkdir(u->dir, 0700) != 0) {
        rv = storage__io_err(errno);
        at_errmsg_printf(s->errmsg, "mkdir '%s': %s", u->dir, strerror(errno));
        goto err_free;
    }
    fd = open(u->info_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        rv = storage__io_err(errno);
        at_errmsg_printf(s->errmsg, "create '%s': %s", u->info_path,
                         strerror(errno));
        goto err_rm;
    }
    info = at_asprintf("%s\n%" PRIu64 "\n", u->repo, at_wall_ms());
    rv = write_all(fd, info, strlen(info));
    free(info);
    close(fd);
    if (rv != 0) {
        at_errmsg_printf(s->errmsg, "write '%s': %s", u->info_path,
                         strerror(-rv));
        rv = storage__io_err(-rv);
        goto err_rm;
    }
    u->fd = open(u->data_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (u->fd < 0) {
        rv = storage__io_err(errno);
        at_errmsg_printf(s->errmsg, "create '%s': %s", u->data_path,
                         strerror(errno));
        goto err_rm;
    }
    u->refs = 2; /* table + caller */
    u->in_table = true;
    AT_ASSERT(at_map_put(&s->uploads, u->id, strlen(u->id), u) == NULL);
    *out = u;
    return 0;

err_rm:
    (void)storage__rm_tree(u->dir);
err_free:
    upload_free(u);
    return rv;
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
    u->size += n;
    u->queued += n;
    u->last_active_ms = now_ms();
    while (n > 0) {
        struct storage__chunk *c = u->q_tail;
        size_t k;
        if (c == NULL || c->len == c->cap) {
            size_t cap = (u->q_head == NULL && n < STORAGE__CHUNK_SMALL)
                             ? STORAGE__CHUNK_SMALL
                             : STORAGE__CHUNK;
            c = at_malloc(sizeof(*c) + cap);
            c->next = NULL;
            c->len = 0;
            c->cap = cap;
            if (u->q_tail != NULL)
                u->q_tail->next = c;
            else
                u->q_head = c;
            u->q_tail = c;
        }
        k = AT_MIN(n, c->cap - c->len);
        memcpy(c->data + c->len, src, k);
        c->len += k;
        src += k;
        n -= k;
    }
    kick(u);
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
    if (u->flush_tail != NULL)
        u->flush_tail->next = f;
    else
        u->flush_head = f;
    u->flush_tail = f;
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
void storage_upload_cancel(struct storage_upload *u)
{
    if (u->canceled)
        return;
    u->canceled = true;
    storage_upload_ref(u);
    table_remove(u);
    chunks_free(u->q_head);
    AT_ASSERT(u->queued >= u->w_batch_bytes);
    u->q_head = NULL;
    u->q_tail = NULL;
    u->queued = u->w_batch_bytes;
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
        if (u->locked || u->inflight || u->flush_head != NULL ||
            u->drain_cb != NULL || u->commit_state != STORAGE__COMMIT_NONE)
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

/* Read and check uploads/<id>/info: "<repo>\n<wall ms>\n". */
static int read_info(const char *path, char **repo, size_t *repo_len)
{
    char buf[STORAGE__INFO_MAX + 1];
    size_t len = 0;
    char *nl;
    char *end;
    uint64_t when;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

    if (fd < 0)
        return AT_ECORRUPT;
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
        at_parse_u64(nl + 1, (size_t)(end - nl - 1), &when) != 0)
        return AT_ECORRUPT;
    *repo_len = (size_t)(nl - buf);
    *repo = at_strndup(buf, *repo_len);
    return 0;
}

static void load_one(struct storage *s, const char *name)
{
    struct storage_upload *u;
    struct stat st;
    char *dir = at_asprintf("%s/uploads/%s", s->dir, name);
    char *info = at_asprintf("%s/info", dir);
    char *data = at_asprintf("%s/data", dir);
    char *repo = NULL;
    size_t repo_len = 0;
    int64_t age;
    int fd = -1;
    int rv;

    rv = read_info(info, &repo, &repo_len);
    if (rv == 0) {
        fd = open(data, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
            rv = AT_ECORRUPT;
    }
    if (rv != 0) {
        LOG_WARN("removing upload dir '%s': missing or corrupt info/data", dir);
        if (fd >= 0)
            close(fd);
        rv = storage__rm_tree(dir);
        if (rv != 0)
            LOG_WARN("remove '%s': %s", dir, strerror(-rv));
        goto out;
    }
    u = upload_new(s, name, repo, repo_len);
    u->fd = fd;
    u->written = (uint64_t)st.st_size;
    u->size = u->written;
    u->sfr_start = u->written;
    u->hashed_upto = 0; /* rehashed lazily in the pool */
    age = (int64_t)at_wall_ms() -
          ((int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000);
    u->last_active_ms = now_ms() - AT_MAX(age, 0);
    u->refs = 1; /* the table's */
    u->in_table = true;
    at_map_put(&s->uploads, u->id, strlen(u->id), u);
    LOG_DEBUG("resumed upload '%s' of '%s' at %" PRIu64, u->id, u->repo,
              u->size);
out:
    free(repo);
    free(dir);
    free(info);
    free(data);
}

/* see internal.h */
int storage__uploads_load(struct storage *s)
{
    char *path = at_asprintf("%s/uploads", s->dir);
    DIR *d = opendir(path);
    struct dirent *e;
    int rv = 0;

    if (d == NULL) {
        at_errmsg_printf(s->errmsg, "opendir '%s': %s", path, strerror(errno));
        rv = storage__io_err(errno);
        goto out;
    }
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (!storage_upload_id_valid(e->d_name, len)) {
            LOG_WARN("ignoring '%s/%s': not an upload id", path, e->d_name);
            continue;
        }
        load_one(s, e->d_name);
    }
    closedir(d);
out:
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
