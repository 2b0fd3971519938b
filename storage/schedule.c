/* How an upload session runs: which work item each of its chains starts
 * next, and which waiting callback is due (the one state machine of a
 * session; the chains' work is in write.c, hash.c and commit.c).
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

#include "storage/internal.h"

static void deliver(struct storage_upload *u);
static void after_write_cb(uv_work_t *req, int status);
static void after_hash_cb(uv_work_t *req, int status);
static void after_bsync_cb(uv_work_t *req, int status);

static void wr_work_cb(uv_work_t *req)
{
    struct storage_upload *u = req->data;

    u->wr_status = 0;
    switch (u->wr_kind) {
    case STORAGE__WORK_WRITE:
        storage__work_write(u);
        break;
    case STORAGE__WORK_SYNC:
        (void)storage__work_sync(u);
        break;
    case STORAGE__WORK_COMMIT:
        storage__work_commit(u);
        break;
    case STORAGE__WORK_REMOVE:
        storage__work_remove(u);
        break;
    }
}

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
    rv = uv_queue_work(u->core->loop, &u->bs_work, storage__bsync_work_cb,
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
    rv = uv_queue_work(u->core->loop, &u->h_work, storage__hash_work_cb,
                       after_hash_cb);
    AT_ASSERT(rv == 0);
}

/* Bytes of the chunk list from c to the end of the stream. */
static uint64_t bytes_from(const struct storage_upload *u,
                           const struct storage__chunk *c)
{
    return c != NULL ? u->size - c->off : 0;
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
            !u->bs_inflight && !storage__watch_full(u) &&
            bytes_from(u, u->wr_next) <= STORAGE__BATCH_MIN &&
            bytes_from(u, u->h_next) <= STORAGE__BATCH_MIN) {
            /* The commit item writes and hashes what is left. */
            u->wr_first = u->wr_next;
            u->wr_count = storage__chunks_take(u, &u->wr_next, SIZE_MAX, false);
            if (u->h_next != NULL) {
                u->h_first = u->h_next;
                u->h_file_end = u->h_first->off;
                AT_ASSERT(u->hashed >= u->h_file_end ||
                          u->written >= u->h_file_end);
                u->h_count =
                    storage__chunks_take(u, &u->h_next, SIZE_MAX, true);
                AT_ASSERT(u->h_next == NULL);
            }
            u->commit_state = STORAGE__COMMIT_RUNNING;
            submit_write(u, STORAGE__WORK_COMMIT);
            return;
        }
        if (u->wr_next != NULL) {
            u->wr_first = u->wr_next;
            u->wr_count =
                storage__chunks_take(u, &u->wr_next, batch_cap(u), false);
            u->wr_sync = u->wr_next == NULL && sync_wanted(u);
            submit_write(u, STORAGE__WORK_WRITE);
        } else if (sync_wanted(u)) {
            u->wr_sync = true;
            submit_write(u, STORAGE__WORK_SYNC);
        }
    }
    if (!u->wr_inflight || u->wr_kind == STORAGE__WORK_WRITE)
        maybe_bsync(u);
    if (!u->h_inflight && storage__hash_wanted(u)) {
        u->h_first = u->h_next;
        u->h_file_end = u->h_first->off;
        /* Bytes before the first chunk that the sha misses are on disk: the
         * session was resumed (base = file size) or a commit wrote all. */
        AT_ASSERT(u->hashed >= u->h_file_end || u->written >= u->h_file_end);
        u->h_count = storage__chunks_take(u, &u->h_next, batch_cap(u),
                                          !storage__watch_full(u));
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

static enum event next_event(const struct storage_upload *u)
{
    int fail = fail_status(u);

    if (u->drain_cb != NULL && (fail != 0 || u->queued <= low_water(u)))
        return EV_DRAIN;
    if (flush_first(u) != NULL && (fail != 0 || flush_ok(u, flush_first(u))))
        return EV_FLUSH;
    if (u->hw_cb != NULL &&
        (fail != 0 || u->committed || storage__watch_done(u)))
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
            int st = storage__watch_verdict(u, fail);
            u->hw_cb = NULL;
            u->hw_data = NULL;
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

/* see internal.h */
void storage__defer(struct storage_upload *u)
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

/* see internal.h */
void storage__kick(struct storage_upload *u)
{
    submit_next(u);
    if (next_event(u) != EV_NONE)
        storage__defer(u);
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

static void after_write_cb(uv_work_t *req, int status)
{
    struct storage_upload *u = req->data;
    struct storage__chunk *c = u->wr_first;

    AT_ASSERT(status == 0); /* we never uv_cancel() */
    u->wr_inflight = false;
    u->last_active_ms = storage__now_ms();
    u->written = u->wr_off;
    u->synced_upto = u->wr_synced;
    u->meta_ok = u->meta_synced;
    switch (u->wr_kind) {
    case STORAGE__WORK_WRITE:
        storage__chunks_mark_wrote(c, u->wr_count);
        u->wr_first = NULL;
        u->wr_count = 0;
        storage__chunks_release_done(u);
        if (u->wr_status != 0)
            record_error(u, u->wr_status, u->wr_errmsg);
        break;
    case STORAGE__WORK_SYNC:
        if (u->wr_status != 0)
            record_error(u, u->wr_status, u->wr_errmsg);
        break;
    case STORAGE__WORK_COMMIT:
        storage__chunks_mark_wrote(c, u->wr_count);
        storage__chunks_mark_hashed(u->h_first, u->h_count);
        u->wr_first = NULL;
        u->wr_count = 0;
        u->h_first = NULL;
        u->h_count = 0;
        storage__chunks_release_done(u);
        u->hashed = u->h_off;
        u->commit_state = STORAGE__COMMIT_DONE;
        u->commit_status = u->wr_status;
        if (u->wr_status == 0) {
            AT_ASSERT(at_list_empty(&u->chunks));
            u->committed = true;
            LOG_DEBUG("upload '%s' committed (%" PRIu64 " bytes)", u->id,
                      u->written);
            if (u->w_dup)
                storage__remove_later(u->core->loop, u->data_path);
            storage__table_remove(u);
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
    storage__chunks_mark_hashed(c, u->h_count);
    u->h_first = NULL;
    u->h_count = 0;
    storage__chunks_release_done(u);
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
