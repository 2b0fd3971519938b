/* The calls on an upload session: append bytes (copied, or placed with a
 * reservation), wait for the queue to drain or for a flush, commit, watch
 * the hash, cancel. Each records what was asked and kicks the session's
 * scheduler (schedule.c), which runs the work and the callbacks. */
#include "common/compat.h"

#define AT_LOG_COMP "storage"

#include "storage/internal.h"

/* The reserve holds for every append, not only at create: an upload in
 * flight never takes the file system below it (the raft log may share
 * it, with its own smaller reserve). The error sticks to the session; the
 * caller's cancel gives its bytes back. */
static int space_check(struct storage_upload *u)
{
    if (u->core->s != NULL && !storage_space_ok(u->core->s)) {
        u->error = AT_ENOSPC;
        return AT_ENOSPC;
    }
    return 0;
}

/* see storage.h */
int storage_upload_write(struct storage_upload *u, const void *p, size_t n)
{
    int rv = storage__usable(u);

    if (rv == 0)
        rv = space_check(u);
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
    u->last_active_ms = storage__now_ms();
    if (u->core->s != NULL)
        u->core->s->appended += n;
    storage__chunks_append(u, p, n);
    /* Submit from the next loop iteration: pieces of the same read coalesce
     * into one batch, and a commit requested right after the last piece
     * (a small blob) takes them all in one work item. */
    if (!u->wr_inflight || !u->h_inflight)
        storage__defer(u);
    return 0;
}

/* see storage.h */
int storage_upload_reserve(struct storage_upload *u,
                           size_t want,
                           char **p,
                           size_t *n)
{
    int rv = storage__usable(u);

    PRE(want > 0);
    if (rv == 0)
        rv = space_check(u);
    if (rv != 0)
        return rv;
    if (u->commit_state != STORAGE__COMMIT_NONE)
        return AT_EBUSY;
    storage__chunks_reserve(u, want, p, n);
    return 0;
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
    storage__kick(u);
}

/* see storage.h */
int storage_upload_flush(struct storage_upload *u,
                         bool sync,
                         storage_cb cb,
                         void *data)
{
    struct storage__flush *f;
    int rv = storage__usable(u);

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
    u->last_active_ms = storage__now_ms();
    storage__kick(u);
    return 0;
}

/* see storage.h */
int storage_upload_commit(struct storage_upload *u,
                          const struct at_digest *expected,
                          storage_commit_cb cb,
                          void *data)
{
    struct storage *s = u->core->s; /* not NULL: usable() checked closing */
    int rv = storage__usable(u);

    PRE(cb != NULL && expected != NULL);
    if (rv != 0)
        return rv;
    if (u->commit_state != STORAGE__COMMIT_NONE)
        return AT_EBUSY;
    free(u->blob_path);
    free(u->blob_dir);
    free(u->blobs_root);
    u->blob_path =
        storage__path_blob(s->dir, expected, &u->blob_dir, &u->blobs_root);
    u->commit_expected = *expected;
    u->commit_cb = cb;
    u->commit_data = data;
    u->commit_state = STORAGE__COMMIT_PENDING;
    storage_upload_ref(u);
    u->last_active_ms = storage__now_ms();
    storage__kick(u);
    return 0;
}

/* see storage.h */
int storage_upload_hash_watch(struct storage_upload *u,
                              uint64_t size,
                              const struct at_digest *want,
                              storage_hashed_cb cb,
                              void *data)
{
    int rv = storage__usable(u);

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
    u->last_active_ms = storage__now_ms();
    storage__kick(u);
    return 0;
}

/* see storage.h */
void storage_upload_cancel(struct storage_upload *u)
{
    if (u->canceled)
        return;
    u->canceled = true;
    storage_upload_ref(u);
    storage__table_remove(u);
    storage__chunks_forget(u);
    LOG_DEBUG("upload '%s' canceled", u->id);
    storage__kick(u);
    storage_upload_unref(u);
}
