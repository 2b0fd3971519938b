/* Manifest bodies off the heap. See bodies.h. */
#include "common/compat.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "raft/bodies.h"

#include "common/alloc.h"
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
    at_free(b->stage);
    meta_bodies_init(b);
}

#define STAGE_SIZE ((size_t)1 << 20)

/* Write len bytes at off: 0, AT_ENOSPC or AT_EIO. */
static int write_at(int fd, const char *c, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(fd, c + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == ENOSPC || errno == EDQUOT ? AT_ENOSPC : AT_EIO;
        if (n == 0)
            return AT_EIO;
        done += (size_t)n;
    }
    return 0;
}

/* Write the staged bytes (they end at b->end). */
static void stage_flush(struct meta_bodies *b)
{
    if (b->staged > 0 && !b->failed &&
        write_at(b->fd, b->stage, b->staged, b->end - b->staged) != 0)
        b->failed = true;
    b->staged = 0;
}

/* see bodies.h */
int meta_bodies_put(struct meta_bodies *b,
                    const void *p,
                    size_t len,
                    uint64_t *off)
{
    if (b->fd < 0)
        return AT_EINVAL;
    if (len > (uint64_t)INT64_MAX - b->end)
        return AT_ENOSPC;
    if (b->stage != NULL) {
        if (b->staged + len > STAGE_SIZE)
            stage_flush(b);
        if (len > STAGE_SIZE) { /* bigger than a stage: written at once */
            if (write_at(b->fd, p, len, b->end) != 0)
                b->failed = true;
        } else {
            memcpy(b->stage + b->staged, p, len);
            b->staged += len;
        }
    } else {
        int rv = write_at(b->fd, p, len, b->end);
        if (rv != 0)
            return rv;
    }
    *off = b->end;
    b->end += len;
    b->live += len;
    return 0;
}

/* see bodies.h */
void meta_bodies_batch(struct meta_bodies *b)
{
    AT_ASSERT(b->stage == NULL);
    if (b->fd < 0)
        return;
    b->stage = at_malloc(STAGE_SIZE);
    b->staged = 0;
    b->failed = false;
}

/* see bodies.h */
int meta_bodies_batch_end(struct meta_bodies *b)
{
    if (b->stage == NULL)
        return 0;
    stage_flush(b);
    at_free(b->stage);
    b->stage = NULL;
    bool failed = b->failed;
    b->failed = false;
    return failed ? AT_EIO : 0;
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
