/* The process_* series of /metrics (see metrics.h), read from /proc on each
 * scrape: small files, read whole with one read each, so a scrape costs a
 * few syscalls on the loop thread. Linux only, like the rest of atoll. */
#include "common/compat.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>

#include "node/metrics.h"

/* Read a small /proc file into buf (NUL-terminated). Bytes read, or -1. */
static ssize_t read_small(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -1;
    do
        n = read(fd, buf, size - 1);
    while (n < 0 && errno == EINTR);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    return n;
}

static void series(struct at_buf *b,
                   const char *name,
                   const char *type,
                   const char *help,
                   double v)
{
    at_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %.15g\n", name, help, name,
                  type, name, v);
}

/* Seconds since the epoch at which the machine booted (btime of
 * /proc/stat), or 0. */
static uint64_t boot_time(void)
{
    char buf[16384];
    const char *p;

    if (read_small("/proc/stat", buf, sizeof(buf)) < 0)
        return 0;
    p = strstr(buf, "\nbtime ");
    return p != NULL ? strtoull(p + 7, NULL, 10) : 0;
}

/* CPU seconds and start time from /proc/self/stat: fields 14, 15 (utime,
 * stime) and 22 (starttime, ticks after boot), counted after the ")" that
 * ends the command name (which may hold spaces). */
static void stat_series(struct at_buf *b)
{
    char buf[1024];
    char *p, *save = NULL;
    unsigned long long v[23] = { 0 }; /* v[k]: field k */
    long tck = sysconf(_SC_CLK_TCK);
    uint64_t btime;
    int field = 3;

    if (read_small("/proc/self/stat", buf, sizeof(buf)) < 0 || tck <= 0)
        return;
    p = strrchr(buf, ')');
    if (p == NULL)
        return;
    for (p = strtok_r(p + 1, " ", &save); p != NULL && field <= 22;
         p = strtok_r(NULL, " ", &save))
        v[field++] = strtoull(p, NULL, 10);
    if (field <= 22)
        return;
    series(b, "process_cpu_seconds_total", "counter",
           "User and system CPU time spent in seconds.",
           (double)(v[14] + v[15]) / (double)tck);
    btime = boot_time();
    if (btime != 0)
        series(b, "process_start_time_seconds", "gauge",
               "Start time of the process since unix epoch in seconds.",
               (double)btime + (double)v[22] / (double)tck);
}

static void fd_series(struct at_buf *b)
{
    DIR *d = opendir("/proc/self/fd");
    struct rlimit rl;

    if (d != NULL) {
        uint64_t n = 0;
        const struct dirent *e;

        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] != '.')
                n++;
        closedir(d);
        if (n > 0)
            n--; /* the directory's own descriptor */
        series(b, "process_open_fds", "gauge",
               "Number of open file descriptors.", (double)n);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        series(b, "process_max_fds", "gauge",
               "Maximum number of open file descriptors.", (double)rl.rlim_cur);
}

/* see metrics.h */
void node_metrics_process_text(struct at_buf *b)
{
    char buf[256];
    unsigned long long vsize, rss;
    long page = sysconf(_SC_PAGESIZE);

    if (read_small("/proc/self/statm", buf, sizeof(buf)) > 0 &&
        sscanf(buf, "%llu %llu", &vsize, &rss) == 2 && page > 0) {
        series(b, "process_resident_memory_bytes", "gauge",
               "Resident memory size in bytes.", (double)rss * (double)page);
        series(b, "process_virtual_memory_bytes", "gauge",
               "Virtual memory size in bytes.", (double)vsize * (double)page);
    }
    stat_series(b);
    fd_series(b);
}
