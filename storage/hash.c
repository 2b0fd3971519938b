/* The hash chain: the sha256 of a session's bytes, fed in the thread pool
 * from its chunks (and from the data file for bytes it missed: after a
 * restart or a digest mismatch), when the loop starts it, and when a hash
 * watch is done. */
#include "common/compat.h"

#define AT_LOG_COMP "storage"

#include <unistd.h>

#include "storage/internal.h"

/* see internal.h */
int storage__hash_file(struct storage_upload *u,
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

/* see internal.h */
int storage__hash_batch(struct storage_upload *u, int *status, char *errmsg)
{
    struct storage__chunk *c = u->h_first;

    if (u->h_count == 0)
        return 0;
    if (storage__hash_file(u, u->h_file_end, status, errmsg) != 0)
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

/* see internal.h */
void storage__hash_work_cb(uv_work_t *req)
{
    struct storage_upload *u = req->data;

    u->h_status = 0;
    if (u->h_count == 0) /* a resumed session under a watch: the file */
        (void)storage__hash_file(u, u->h_file_end, &u->h_status, u->h_errmsg);
    else
        (void)storage__hash_batch(u, &u->h_status, u->h_errmsg);
}

/* see internal.h */
bool storage__watch_full(const struct storage_upload *u)
{
    return u->hw_cb != NULL && u->size == u->hw_size;
}

/* see internal.h */
bool storage__watch_done(const struct storage_upload *u)
{
    return u->hashed == u->hw_size && u->written >= u->hw_size &&
           !u->h_inflight && u->commit_state != STORAGE__COMMIT_RUNNING;
}

/* see internal.h */
bool storage__hash_wanted(const struct storage_upload *u)
{
    uint64_t sealed = 0;

    if (u->h_next == NULL || u->commit_state == STORAGE__COMMIT_RUNNING)
        return false;
    if (storage__watch_full(u))
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

/* see internal.h */
int storage__watch_verdict(struct storage_upload *u, int fail)
{
    if (fail != 0)
        return fail;
    if (u->committed)
        return AT_ECANCELED; /* committed short of the watched size */
    /* Finalizing costs a block or two: fine on the loop. The session is
     * capped, so the sha never needs more bytes. */
    if (!u->h_final) {
        at_sha256_final(&u->sha, &u->h_digest);
        at_sha256_init(&u->sha);
        u->h_final = true;
    }
    return at_digest_equal(&u->h_digest, &u->hw_want) ? 0 : AT_EDIGEST;
}
