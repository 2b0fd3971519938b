/* Complete blobs: size, open for reading, removal. */
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
