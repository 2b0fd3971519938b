/* The commit of a session, in the thread pool: write and hash what is left,
 * check the digest, place the file in blobs/ (or keep a copy already there)
 * and sync the directories; and the later removal of a duplicate. */
#include "common/compat.h"

#define AT_LOG_COMP "storage"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/internal.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

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
        storage__wr_err(u, errno, "fdatasync", u->data_path);
        return -1;
    }
    u->wr_synced = u->wr_off;
    if (mkdir(u->blob_dir, 0755) == 0) {
        *created = true;
    } else if (errno != EEXIST) {
        storage__wr_err(u, errno, "mkdir", u->blob_dir);
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
            storage__wr_err(u, errno, "rename into blobs", u->data_path);
            return -1;
        } else if (utimensat(AT_FDCWD, u->blob_path, NULL, 0) != 0 &&
                   errno == ENOENT && attempt == 0) {
            continue; /* GC removed the existing copy meanwhile: rename */
        }
        break;
    }
    return 0;
}

/* see internal.h */
void storage__work_commit(struct storage_upload *u)
{
    struct at_digest got;
    char want_s[AT_DIGEST_STR_SIZE];
    char got_s[AT_DIGEST_STR_SIZE];
    bool created = false;
    bool renamed = false;
    int rv;

    /* The tail of the stream (a small blob: all of it) comes in the commit
     * item itself: one pool round trip instead of three. */
    if (storage__write_batch(u) != 0 ||
        storage__hash_batch(u, &u->wr_status, u->wr_errmsg) != 0 ||
        storage__hash_file(u, u->wr_off, &u->wr_status, u->wr_errmsg) != 0)
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
    if (storage__open_data(u) != 0) /* an empty blob: no write created it */
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
        storage__wr_err(u, -rv, "fsync", u->blob_dir);
        return;
    }
    close(u->fd);
    u->fd = -1;
    /* Leftovers are harmless: an orphan data file is removed at open, an
     * info file whose removal is lost in a crash comes back as an empty
     * session that the purge removes. */
    if (u->info_exists)
        (void)unlink(u->info_path);
    u->w_dup = !renamed; /* removed after the answer: storage__remove_later */
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

/* see internal.h */
void storage__remove_later(uv_loop_t *loop, const char *path)
{
    size_t len = strlen(path);
    struct remove_job *j = at_malloc(sizeof(*j) + len + 1);
    int rv;

    memcpy(j->path, path, len + 1);
    j->work.data = j;
    rv = uv_queue_work(loop, &j->work, remove_work_cb, after_remove_cb);
    AT_ASSERT(rv == 0);
}
