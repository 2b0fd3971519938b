/* The heap put back on huge pages after a fork: see hugeheap.h. */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "common/common.h"
#include "raft/heap.h"
#include "raft/hugeheap.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* Linux 6.1; glibc 2.36's headers lack it */
#endif

#define HUGE_PAGE ((uintptr_t)2 << 20)

static atomic_bool running;
static atomic_bool unsupported;
static atomic_uint_least64_t runs;
static atomic_uint_least64_t last_bytes;
static atomic_uint_least64_t last_us;

/* The brk heap's mappings, from /proc/self/maps: one, or several
 * adjacent ones (an madvise on part of it splits it). Returns how many
 * were found, at most max. */
static size_t heap_ranges(uintptr_t (*r)[2], size_t max)
{
    FILE *f = fopen("/proc/self/maps", "re");
    char line[512];
    size_t n = 0;

    if (f == NULL)
        return 0;
    while (n < max && fgets(line, sizeof(line), f) != NULL) {
        unsigned long a, b;
        size_t len = strlen(line);
        if (len < 8 || strcmp(line + len - 8, " [heap]\n") != 0 ||
            sscanf(line, "%lx-%lx", &a, &b) != 2 || b <= a)
            continue;
        r[n][0] = a;
        r[n][1] = b;
        n++;
    }
    fclose(f);
    return n;
}

static double mono_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

/* see hugeheap.h */
int meta__hugeheap_collapse(void)
{
    uintptr_t r[16][2];
    size_t bytes = 0;
    unsigned done = 0, refused = 0; /* slices */

    if (atomic_load(&unsupported))
        return AT_EUNSUPPORTED;
    if (atomic_exchange(&running, true))
        return AT_EBUSY;
    double t0 = mono_us();
    size_t n = heap_ranges(r, AT_ARRAY_SIZE(r));
    for (size_t i = 0; i < n; i++) {
        /* each mapping on its own: the kernel refuses (EINVAL) a range
         * whose 2 MiB pages do not fall inside one mapping */
        uintptr_t lo = (r[i][0] + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
        uintptr_t hi = r[i][1] & ~(HUGE_PAGE - 1);
        /* in slices: the kernel takes the address space's lock for each
         * page it collapses, and a slice bounds what one call holds up */
        for (uintptr_t p = lo; p < hi; p += 16 * HUGE_PAGE) {
            size_t len = (size_t)AT_MIN(hi - p, 16 * HUGE_PAGE);
            bytes += len;
            if (madvise((void *)p, len, MADV_COLLAPSE) == 0)
                done++;
            else if (errno == EINVAL || errno == EPERM)
                refused++; /* no MADV_COLLAPSE, or no THP for us */
            /* EAGAIN, ENOMEM: the kernel had no huge page for part of
             * the slice now; the next run tries again */
        }
    }
    atomic_store(&running, false);
    if (done == 0 && (refused > 0 || n == 0)) {
        atomic_store(&unsupported, true);
        return AT_EUNSUPPORTED;
    }
    atomic_store(&last_bytes, bytes);
    atomic_store(&last_us, (uint64_t)(mono_us() - t0));
    atomic_fetch_add(&runs, 1);
    return 0;
}

/* KiB of the heap mapped as huge pages, from /proc/self/smaps (for the
 * log: that walk is the length of the process's page tables). */
static long heap_huge_kb(void)
{
    FILE *f = fopen("/proc/self/smaps", "re");
    char line[512];
    bool in_heap = false;
    long kb = 0;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long a, b;
        if (sscanf(line, "%lx-%lx ", &a, &b) == 2)
            in_heap = strstr(line, " [heap]") != NULL;
        else if (in_heap && strncmp(line, "AnonHugePages:", 14) == 0)
            kb += atol(line + 14);
    }
    fclose(f);
    return kb;
}

static void *collapse_thread(void *p)
{
    (void)p;
    int rv = meta__hugeheap_collapse();
    if (rv == AT_EUNSUPPORTED)
        LOG_INFO(
            "heap: the kernel collapses no huge pages here "
            "(MADV_COLLAPSE); forks stay on small pages");
    else if (rv == 0)
        LOG_INFO("heap: collapsed in %.1f ms, %ld of %" PRIu64
                 " MiB on huge pages",
                 (double)atomic_load(&last_us) / 1e3, heap_huge_kb() >> 10,
                 (uint64_t)atomic_load(&last_bytes) >> 20);
    return NULL;
}

/* see hugeheap.h */
void meta__hugeheap_collapse_async(void)
{
    if (atomic_load(&unsupported) || atomic_load(&running))
        return;
    meta__off_loop(collapse_thread, NULL);
}

/* see hugeheap.h */
void meta__hugeheap_stats(struct meta_hugeheap_stats *st)
{
    st->runs = atomic_load(&runs);
    st->bytes = atomic_load(&last_bytes);
    st->last_ms = (double)atomic_load(&last_us) / 1e3;
    st->unsupported = atomic_load(&unsupported);
}
