/* Complete blobs: size, open for reading, removal, and the verification of
 * a local copy (identify the file; hash it in the thread pool). */
#include "common/compat.h"

#define AT_LOG_COMP "storage"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/internal.h"

/* see storage.h */
int storage_blob_stat(struct storage *s,
                      const struct at_digest *d,
                      uint64_t *size)
{
    struct stat st;
    char *path;
    int rv = 0;

    if (s->closing)
        return AT_ESHUTDOWN;
    path = storage__path_blob(s->dir, d, NULL, NULL);
    if (stat(path, &st) != 0) {
        rv = errno == ENOENT ? AT_ENOTFOUND : AT_EIO;
        if (rv == AT_EIO)
            at_errmsg_printf(s->errmsg, "stat '%s': %s", path, strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        rv = AT_ENOTFOUND;
    } else {
        *size = (uint64_t)st.st_size;
    }
    free(path);
    return rv;
}

/* see storage.h */
int storage_blob_open(struct storage *s,
                      const struct at_digest *d,
                      int *fd,
                      uint64_t *size)
{
    struct stat st;
    char *path;
    int rv = 0;
    int f;

    if (s->closing)
        return AT_ESHUTDOWN;
    path = storage__path_blob(s->dir, d, NULL, NULL);
    f = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (f < 0) {
        rv = errno == ENOENT ? AT_ENOTFOUND : AT_EIO;
        if (rv == AT_EIO)
            at_errmsg_printf(s->errmsg, "open '%s': %s", path, strerror(errno));
        goto out;
    }
    if (fstat(f, &st) != 0 || !S_ISREG(st.st_mode)) {
        at_errmsg_printf(s->errmsg, "fstat '%s': not a regular file", path);
        close(f);
        rv = AT_EIO;
        goto out;
    }
    *fd = f;
    *size = (uint64_t)st.st_size;
out:
    free(path);
    return rv;
}

/* see storage.h */
int storage_blob_remove(struct storage *s, const struct at_digest *d)
{
    char *path;
    int rv = 0;

    if (s->closing)
        return AT_ESHUTDOWN;
    path = storage__path_blob(s->dir, d, NULL, NULL);
    if (unlink(path) != 0) {
        rv = errno == ENOENT ? AT_ENOTFOUND : AT_EIO;
        if (rv == AT_EIO)
            at_errmsg_printf(s->errmsg, "unlink '%s': %s", path,
                             strerror(errno));
    }
    free(path);
    return rv;
}

/* see storage.h */
int storage_blob_id_get(int fd, struct storage_blob_id *id)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return AT_EIO;
    memset(id, 0, sizeof(*id));
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    id->size = st.st_size;
    id->ctime = st.st_ctim;
    return 0;
}

/* see storage.h */
bool storage_blob_id_equal(const struct storage_blob_id *a,
                           const struct storage_blob_id *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->ctime.tv_sec == b->ctime.tv_sec &&
           a->ctime.tv_nsec == b->ctime.tv_nsec;
}

struct verify_job {
    uv_work_t work;
    struct at_digest d;
    int fd; /* owned duplicate, or -1 */
    struct storage_blob_id id;
    int status;
    storage_verify_cb cb;
    void *data; /* borrowed */
};

/* In the pool: hash the whole file. */
static void verify_work(uv_work_t *w)
{
    struct verify_job *j = w->data;
    struct at_sha256 h;
    struct at_digest got;
    char *buf;
    off_t off = 0;

    if (j->status != 0)
        return;
    buf = at_malloc(STORAGE__CHUNK);
    at_sha256_init(&h);
    for (;;) {
        ssize_t n = pread(j->fd, buf, STORAGE__CHUNK, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            j->status = AT_EIO;
            break;
        }
        if (n == 0)
            break;
        at_sha256_update(&h, buf, (size_t)n);
        off += n;
    }
    at_sha256_final(&h, &got);
    at_sha256_release(&h);
    free(buf);
    if (j->status == 0 && (off != j->id.size || !at_digest_equal(&got, &j->d)))
        j->status = AT_EDIGEST;
}

static void verify_done(uv_work_t *w, int uvstatus)
{
    struct verify_job *j = w->data;

    if (j->fd >= 0)
        close(j->fd);
    j->cb(j->data, uvstatus != 0 ? AT_EIO : j->status, &j->id);
    free(j);
}

/* see storage.h */
void storage_blob_verify(struct storage *s,
                         const struct at_digest *d,
                         int fd,
                         storage_verify_cb cb,
                         void *data)
{
    struct verify_job *j = at_calloc(1, sizeof(*j));
    int rv;

    PRE(cb != NULL);
    j->d = *d;
    j->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    j->cb = cb;
    j->data = data;
    j->work.data = j;
    /* a file that cannot be examined is an I/O error, never a mismatch (a
     * mismatch removes the copy) */
    if (j->fd < 0 || storage_blob_id_get(j->fd, &j->id) != 0)
        j->status = AT_EIO;
    rv = uv_queue_work(s->loop, &j->work, verify_work, verify_done);
    AT_ASSERT(rv == 0); /* fails only without a work callback */
}
