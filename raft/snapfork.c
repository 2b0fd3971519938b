/* Snapshots encoded by a forked child. See snapfork.h.
 *
 * The pipe carries a fixed header, the encoding, then a trailer:
 *   struct fork_head { uint64_t len; int32_t rv; char errmsg[...]; }
 *   len bytes (ATS2, snapflat.c), then uint64_t private_kb
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "raft/snapfork.h"

#include "raft/snapjob.h"

struct fork_head {
    uint64_t len;
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

static _Noreturn void child_run(const struct meta_fsm *f, pid_t parent, int fd)
{
    struct fork_head h;
    sigset_t all;

    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(3);
    /* Keep only stdio and the pipe: an inherited descriptor would keep the
     * data dir's lock (flock) and the listeners alive in the child, and a
     * node restarted at once after a kill -9 would find them taken. */
    /* The manifest body file (bodies.h) stays too, as fd 4: the encode
     * reads the bodies from it. Both are first moved above 4 so that
     * neither dup2 closes the other. */
    struct meta_fsm c = *f;
    int pipe_hi = fcntl(fd, F_DUPFD, 5);
    int body_hi = f->bodies.fd >= 0 ? fcntl(f->bodies.fd, F_DUPFD, 5) : -1;
    if (pipe_hi < 0 || (f->bodies.fd >= 0 && body_hi < 0) ||
        dup2(pipe_hi, 3) != 3 || (body_hi >= 0 && dup2(body_hi, 4) != 4))
        _exit(3);
    fd = 3;
    c.bodies.fd = body_hi >= 0 ? 4 : -1;
    close_range(5, ~0U, 0);
    memset(&h, 0, sizeof(h));
    struct meta_flat_plan *plan = NULL;
    h.rv = meta__snap_flat_plan(&c, &plan, &h.len, h.errmsg);
    if (!write_all(fd, &h, sizeof(h)) || h.rv != 0)
        _exit(h.rv != 0 ? 0 : 2);
    /* the bodies: mapped and faulted in at once (page cache), so that
     * the encode copies them instead of a pread each */
    const void *bodies = NULL;
    uint64_t blen = c.bodies.end;
    struct stat st;
    /* never map past the file's end: a read there is a SIGBUS */
    if (c.bodies.fd >= 0 && fstat(c.bodies.fd, &st) == 0 &&
        (uint64_t)st.st_size < blen)
        blen = (uint64_t)st.st_size;
    if (c.bodies.fd >= 0 && blen > 0 && blen <= SIZE_MAX) {
        void *m = mmap(NULL, (size_t)blen, PROT_READ, MAP_SHARED | MAP_POPULATE,
                       c.bodies.fd, 0);
        bodies = m != MAP_FAILED ? m : NULL;
    }
    if (meta__snap_flat_write_fd(&c, plan, fd, bodies, blen) != 0)
        _exit(2);
    /* unmapped first: dirty page-cache pages of the body file would count
     * as this process's private memory, and they are not */
    if (bodies != NULL)
        munmap((void *)bodies, (size_t)blen);
    uint64_t kb = private_dirty_kb();
    if (!write_all(fd, &kb, sizeof(kb)))
        _exit(2);
    _exit(0);
}

/* see snapfork.h */
int meta_snap_fork_start(struct meta_snap_fork *sf,
                         const struct meta_fsm *f,
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
        child_run(f, parent, p[1]);
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
    if (read_all(sf->fd, &h, sizeof(h)) != sizeof(h)) {
        if (reap(sf, errmsg))
            at_errmsg_printf(errmsg, "snapshot child wrote no header");
        return AT_EIO;
    }
    if (h.rv != 0) {
        h.errmsg[sizeof(h.errmsg) - 1] = '\0';
        reap(sf, errmsg);
        at_errmsg_printf(errmsg, "%s", h.errmsg);
        return h.rv;
    }
    if (h.len == 0 || h.len > PROTO_SNAPSHOT_MAX + PROTO_FRAME_SIZE + 8) {
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
void meta_snap_fork_abort(struct meta_snap_fork *sf)
{
    char errmsg[AT_ERRMSG_SIZE];

    if (sf->pid <= 0)
        return;
    kill(sf->pid, SIGKILL);
    reap(sf, errmsg);
}
