/* Snapshots encoded by a forked child. See snapfork.h.
 *
 * The pipe carries a fixed header, the encoding, then a trailer:
 *   struct fork_head { uint64_t len, hash; int32_t rv; char errmsg[...]; }
 *   len bytes (ATS2, snapflat.c), then uint64_t private_kb
 * In file mode (a dir given) the encoding goes into a snapshot file
 * (snapfile.h: the temporary one, hashed as it is written) instead, and
 * the header comes once it is written, with its length and hash; the
 * pipe carries no encoding. The parent syncs and renames the file after
 * the child is gone: the child's life is the time the parent's writes
 * copy pages, so it does not wait for the disk.
 * rv != 0: the child could not plan the encoding (errmsg says why) and
 * nothing follows. The child plans first (the sizes of every section: one
 * pass over the state), announces the length, then writes the sections
 * straight from the state it sees frozen, through a 1 MiB buffer: no copy
 * of the state, no buffer of the encoding, so its private memory is what
 * the parent's applies make it copy. It exits 0 after the trailer; a
 * failure midway (a body it cannot read) is a non-zero exit.
 *
 * What the child may do: it keeps only stdio, the pipe and the manifest
 * body file (mapped read-only: no offset shared with the parent); only
 * this thread exists in it, and other threads' locks may be held forever
 * there. glibc's malloc is safe after fork (its arenas are locked across
 * it); the child uses malloc, protobuf-c, mmap and write(2), and nothing
 * else: no logging (the log may be locked), no libuv (its signal pipe is
 * shared with the parent: every signal is blocked at once, so a SIGTERM
 * meant for the group reaches the parent only), no exit handlers
 * (_exit). */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "raft/snapfork.h"

#include "raft/snapfile.h"
#include "raft/snapjob.h"

#define SNAP_CHILD_NICE 10

struct fork_head {
    uint64_t len;
    uint64_t hash; /* file mode: the file's (snapfile.h) */
    int32_t rv;
    char errmsg[AT_ERRMSG_SIZE];
};

static bool write_all(int fd, const void *p, size_t n)
{
    const char *c = p;

    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        c += w;
        n -= (size_t)w;
    }
    return true;
}

static size_t read_all(int fd, void *p, size_t n)
{
    char *c = p;
    size_t got = 0;

    while (got < n) {
        ssize_t r = read(fd, c + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

/* Private_Dirty of this process in KiB (0 when unknown): what it
 * allocated, plus the pages it copied by writing to them. */
static uint64_t private_dirty_kb(void)
{
    char buf[4096];
    const char *p;
    ssize_t n;
    int fd = open("/proc/self/smaps_rollup", O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    p = strstr(buf, "Private_Dirty:");
    return p != NULL ? strtoull(p + strlen("Private_Dirty:"), NULL, 10) : 0;
}

/* The manifest bodies, mapped and faulted in at once (page cache), so
 * that the encode copies them instead of a pread each; NULL when none. */
static const void *map_bodies(const struct meta_fsm *c, uint64_t *len)
{
    struct stat st;
    *len = c->bodies.end;
    /* never map past the file's end: a read there is a SIGBUS */
    if (c->bodies.fd >= 0 && fstat(c->bodies.fd, &st) == 0 &&
        (uint64_t)st.st_size < *len)
        *len = (uint64_t)st.st_size;
    if (c->bodies.fd < 0 || *len == 0 || *len > SIZE_MAX)
        return NULL;
    void *m = mmap(NULL, (size_t)*len, PROT_READ, MAP_SHARED | MAP_POPULATE,
                   c->bodies.fd, 0);
    return m != MAP_FAILED ? m : NULL;
}

struct child_encode {
    const struct meta_fsm *f;
    const struct meta_flat_plan *plan;
    const void *bodies;
    uint64_t blen;
};

static int child_write(int fd, void *data, uint64_t *hash)
{
    struct child_encode *ce = data;
    return meta__snap_flat_write_fd(ce->f, ce->plan, fd, ce->bodies, ce->blen,
                                    hash);
}

/* Keep only stdio, the pipe (as 3) and the body file (as 4): an inherited
 * descriptor would keep the data dir's lock (flock) and the listeners
 * alive in the child, and a node restarted at once after a kill -9 would
 * find them taken. Both are first moved above 4 so that neither dup2
 * closes the other. */
static bool child_fds(struct meta_fsm *c, int fd)
{
    int pipe_hi = fcntl(fd, F_DUPFD, 5);
    int body_hi = c->bodies.fd >= 0 ? fcntl(c->bodies.fd, F_DUPFD, 5) : -1;
    if (pipe_hi < 0 || (c->bodies.fd >= 0 && body_hi < 0) ||
        dup2(pipe_hi, 3) != 3 || (body_hi >= 0 && dup2(body_hi, 4) != 4))
        return false;
    c->bodies.fd = body_hi >= 0 ? 4 : -1;
    close_range(5, ~0U, 0);
    return true;
}

static _Noreturn void child_run(const struct meta_fsm *f,
                                pid_t parent,
                                int fd,
                                const char *dir,
                                uint64_t index)
{
    struct fork_head h;
    sigset_t all;

    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(3);
    /* background work: the node's loop, which serves every request, wins
     * the CPU over it (on 2 cores under load the child otherwise took a
     * whole one, and requests waited behind it) */
    (void)setpriority(PRIO_PROCESS, 0, SNAP_CHILD_NICE);
    struct meta_fsm c = *f;
    if (!child_fds(&c, fd))
        _exit(3);
    fd = 3;
    memset(&h, 0, sizeof(h));
    struct meta_flat_plan *plan = NULL;
    h.rv = meta__snap_flat_plan(&c, &plan, &h.len, h.errmsg);
    if (h.rv != 0)
        _exit(write_all(fd, &h, sizeof(h)) ? 0 : 2);
    struct child_encode ce = { .f = &c, .plan = plan };
    ce.bodies = map_bodies(&c, &ce.blen);
    if (dir != NULL) {
        /* file mode: the head comes once the file is written (the parent
         * syncs it, after this process is gone) */
        struct meta_snapfile d = { .index = index };
        h.rv = meta__snapfile_create(dir, &d, child_write, &ce, h.errmsg);
        h.len = d.len;
        h.hash = d.hash;
        if (!write_all(fd, &h, sizeof(h)) || h.rv != 0)
            _exit(h.rv != 0 ? 0 : 2);
    } else if (!write_all(fd, &h, sizeof(h)) ||
               child_write(fd, &ce, NULL) != 0) {
        _exit(2);
    }
    /* unmapped first: dirty page-cache pages of the body file would count
     * as this process's private memory, and they are not */
    if (ce.bodies != NULL)
        munmap((void *)ce.bodies, (size_t)ce.blen);
    uint64_t kb = private_dirty_kb();
    if (!write_all(fd, &kb, sizeof(kb)))
        _exit(2);
    _exit(0);
}

/* see snapfork.h */
int meta_snap_fork_start(struct meta_snap_fork *sf,
                         const struct meta_fsm *f,
                         const char *dir,
                         uint64_t index,
                         char *errmsg)
{
    pid_t parent = getpid();
    int p[2];
    pid_t pid;

    sf->pid = 0;
    sf->fd = -1;
    sf->private_kb = 0;
    if (pipe2(p, O_CLOEXEC) != 0) {
        at_errmsg_printf(errmsg, "pipe: %s", strerror(errno));
        return AT_EIO;
    }
    pid = fork();
    if (pid < 0) {
        int err = errno;
        close(p[0]);
        close(p[1]);
        at_errmsg_printf(errmsg, "fork: %s", strerror(err));
        return err == ENOMEM || err == EAGAIN ? AT_ENOMEM : AT_EIO;
    }
    if (pid == 0) {
        close(p[0]);
        child_run(f, parent, p[1], dir, index);
    }
    close(p[1]);
    /* a bigger pipe: fewer wakeups of the child and of the collector (the
     * kernel caps it at fs/pipe-max-size; a failure keeps the default) */
    (void)fcntl(p[0], F_SETPIPE_SZ, 1 << 20);
    sf->pid = pid;
    sf->fd = p[0];
    return 0;
}

/* Reap the child; true when it exited 0. */
static bool reap(struct meta_snap_fork *sf, char *errmsg)
{
    int status = 0;
    pid_t w;

    if (sf->fd >= 0) {
        close(sf->fd);
        sf->fd = -1;
    }
    if (sf->pid <= 0)
        return false;
    do {
        w = waitpid(sf->pid, &status, 0);
    } while (w < 0 && errno == EINTR);
    sf->pid = 0;
    if (w < 0) {
        at_errmsg_printf(errmsg, "waitpid: %s", strerror(errno));
        return false;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return true;
    if (WIFSIGNALED(status))
        at_errmsg_printf(errmsg, "snapshot child killed by signal %d",
                         WTERMSIG(status));
    else
        at_errmsg_printf(errmsg, "snapshot child exited with status %d",
                         WEXITSTATUS(status));
    return false;
}

/* The child's header: 0, or its own error (the child reaped), or AT_EIO
 * when it wrote none. */
static int read_head(struct meta_snap_fork *sf,
                     struct fork_head *h,
                     char *errmsg)
{
    if (read_all(sf->fd, h, sizeof(*h)) != sizeof(*h)) {
        if (reap(sf, errmsg))
            at_errmsg_printf(errmsg, "snapshot child wrote no header");
        return AT_EIO;
    }
    if (h->rv != 0) {
        h->errmsg[sizeof(h->errmsg) - 1] = '\0';
        reap(sf, errmsg);
        at_errmsg_printf(errmsg, "%s", h->errmsg);
        return h->rv;
    }
    return 0;
}

/* see snapfork.h */
int meta_snap_fork_collect(struct meta_snap_fork *sf,
                           proto_alloc_fn alloc,
                           void (*release)(void *p),
                           void **out,
                           size_t *len,
                           char *errmsg)
{
    struct fork_head h;
    void *buf = NULL;
    bool ok;

    *out = NULL;
    *len = 0;
    int rv = read_head(sf, &h, errmsg);
    if (rv != 0)
        return rv;
    if (h.len == 0 || h.len > META_SNAP_FLAT_MAX || h.len > SIZE_MAX) {
        reap(sf, errmsg);
        at_errmsg_printf(errmsg, "snapshot child announced %" PRIu64 " bytes",
                         h.len);
        return AT_EIO;
    }
    buf = alloc != NULL ? alloc((size_t)h.len) : malloc((size_t)h.len);
    if (buf == NULL) {
        reap(sf, errmsg);
        at_errmsg_printf(errmsg, "no memory for a %" PRIu64 "-byte snapshot",
                         h.len);
        return AT_ENOMEM;
    }
    /* huge pages for the buffer where the kernel allows them: a fault per
     * 2 MiB instead of per 4 KiB while it fills (faults are dear here) */
    uintptr_t lo = ((uintptr_t)buf + 4095) & ~(uintptr_t)4095;
    uintptr_t hi = ((uintptr_t)buf + (size_t)h.len) & ~(uintptr_t)4095;
    if (hi > lo)
        (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
    uint64_t kb = 0;
    ok = read_all(sf->fd, buf, (size_t)h.len) == h.len &&
         read_all(sf->fd, &kb, sizeof(kb)) == sizeof(kb);
    if (!reap(sf, errmsg) || !ok) {
        if (!ok)
            at_errmsg_printf(
                errmsg, "snapshot child stopped short of %" PRIu64 " bytes",
                h.len);
        if (release != NULL)
            release(buf);
        else
            free(buf);
        return AT_EIO;
    }
    *out = buf;
    *len = (size_t)h.len;
    sf->private_kb = kb;
    return 0;
}

/* see snapfork.h */
int meta_snap_fork_collect_file(struct meta_snap_fork *sf,
                                struct meta_snapfile *d,
                                char *errmsg)
{
    struct fork_head h;
    uint64_t kb = 0;

    int rv = read_head(sf, &h, errmsg);
    if (rv != 0)
        return rv;
    bool ok = read_all(sf->fd, &kb, sizeof(kb)) == sizeof(kb);
    if (!reap(sf, errmsg) || !ok) {
        if (!ok)
            at_errmsg_printf(errmsg, "snapshot child stopped before its end");
        return AT_EIO;
    }
    d->len = h.len;
    d->hash = h.hash;
    sf->private_kb = kb;
    return 0;
}

/* see snapfork.h */
void meta_snap_fork_abort(struct meta_snap_fork *sf)
{
    char errmsg[AT_ERRMSG_SIZE];

    if (sf->pid <= 0)
        return;
    kill(sf->pid, SIGKILL);
    reap(sf, errmsg);
}
