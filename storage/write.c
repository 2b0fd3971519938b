/* The write chain's work, in the thread pool: create the data file, pwritev
 * batches at the file offset with writeback kicks, fdatasync (in the chain,
 * and the background train beside it), make the session durable once (its
 * info file and the uploads/ directory), and remove a canceled session's
 * files. */
#include "common/compat.h"

#define AT_LOG_COMP "storage"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "storage/internal.h"

#define IOV_BATCH 64 /* iovecs per pwritev */

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

/* see internal.h */
void storage__wr_err(struct storage_upload *u,
                     int err,
                     const char *what,
                     const char *path)
{
    u->wr_status = storage__io_err(err);
    at_errmsg_printf(u->wr_errmsg, "upload '%s': %s '%s': %s", u->id, what,
                     path, strerror(err));
}

/* see internal.h */
int storage__open_data(struct storage_upload *u)
{
    if (u->fd >= 0)
        return 0;
    u->fd = open(u->data_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (u->fd < 0) {
        storage__wr_err(u, errno, "create", u->data_path);
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
                storage__wr_err(u, errno, "create", u->info_path);
                return u->wr_status;
            }
            u->info_exists = true;
            rv = write_all(fd, info, strlen(info));
            free(info);
        } else {
            fd = open(u->info_path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                storage__wr_err(u, errno, "open", u->info_path);
                return u->wr_status;
            }
        }
        if (rv == 0 && fsync(fd) != 0)
            rv = -errno;
        close(fd);
        if (rv != 0) {
            storage__wr_err(u, -rv, "write", u->info_path);
            return u->wr_status;
        }
        u->info_synced = true;
    }
    rv = storage__fsync_dir(u->uploads_dir);
    if (rv != 0) {
        storage__wr_err(u, -rv, "fsync", u->uploads_dir);
        return u->wr_status;
    }
    u->meta_synced = true;
    return 0;
}

/* see internal.h */
int storage__work_sync(struct storage_upload *u)
{
    if (u->fd >= 0 && u->wr_synced < u->wr_off) {
        if (fdatasync(u->fd) != 0) {
            storage__wr_err(u, errno, "fdatasync", u->data_path);
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

/* see internal.h */
int storage__write_batch(struct storage_upload *u)
{
    struct storage__chunk *c = u->wr_first;
    size_t left = u->wr_count;
    size_t skip = 0; /* bytes of c already written */

    if (left > 0 && storage__open_data(u) != 0)
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
            storage__wr_err(u, k < 0 ? errno : EIO, "write", u->data_path);
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

/* see internal.h */
void storage__work_write(struct storage_upload *u)
{
    if (storage__write_batch(u) == 0 && u->wr_sync)
        (void)storage__work_sync(u);
}

/* see internal.h */
void storage__work_remove(struct storage_upload *u)
{
    if (u->fd >= 0) {
        close(u->fd);
        u->fd = -1;
    }
    if (unlink(u->data_path) != 0 && errno != ENOENT) {
        storage__wr_err(u, errno, "remove", u->data_path);
        return;
    }
    if (unlink(u->info_path) != 0 && errno != ENOENT) {
        storage__wr_err(u, errno, "remove", u->info_path);
        return;
    }
}

/* see internal.h */
void storage__bsync_work_cb(uv_work_t *req)
{
    struct storage_upload *u = req->data;

    if (fdatasync(u->bs_fd) != 0) {
        /* Reported here and sticky: a later fdatasync may not see it. */
        u->bs_status = storage__io_err(errno);
        at_errmsg_printf(u->bs_errmsg, "fdatasync '%s': %s", u->data_path,
                         strerror(errno));
    }
}
