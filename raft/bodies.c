/* Manifest bodies off the heap. See bodies.h. */
#include "common/compat.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "raft/bodies.h"

#include "common/check.h"
#include "common/err.h"

/* see bodies.h */
void meta_bodies_init(struct meta_bodies *b)
{
    memset(b, 0, sizeof(*b));
    b->fd = -1;
}

/* see bodies.h */
int meta_bodies_open(struct meta_bodies *b, const char *dir, char *errmsg)
{
    meta_bodies_init(b);
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        at_errmsg_printf(errmsg, "manifest bodies in '%s': %s", dir,
                         strerror(e));
        return at_err_from_errno(-e);
    }
    b->fd = fd;
    return 0;
}

/* see bodies.h */
void meta_bodies_close(struct meta_bodies *b)
{
    if (b->fd >= 0)
        close(b->fd);
    meta_bodies_init(b);
}

/* see bodies.h */
int meta_bodies_put(struct meta_bodies *b,
                    const void *p,
                    size_t len,
                    uint64_t *off)
{
    const char *c = p;
    size_t done = 0;

    if (b->fd < 0)
        return AT_EINVAL;
    if (len > (uint64_t)INT64_MAX - b->end)
        return AT_ENOSPC;
    while (done < len) {
        ssize_t n = pwrite(b->fd, c + done, len - done, (off_t)(b->end + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == ENOSPC || errno == EDQUOT ? AT_ENOSPC : AT_EIO;
        if (n == 0)
            return AT_EIO;
        done += (size_t)n;
    }
    *off = b->end;
    b->end += len;
    b->live += len;
    return 0;
}

/* see bodies.h */
int meta_bodies_read(const struct meta_bodies *b,
                     uint64_t off,
                     void *buf,
                     size_t len)
{
    char *c = buf;
    size_t done = 0;

    if (b->fd < 0 || off > b->end || len > b->end - off)
        return AT_EIO;
    while (done < len) {
        ssize_t n = pread(b->fd, c + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return AT_EIO;
        done += (size_t)n;
    }
    return 0;
}

/* see bodies.h */
void meta_bodies_drop(struct meta_bodies *b, size_t len)
{
    AT_ASSERT(len <= b->live);
    b->live -= len;
    b->dead += len;
}
