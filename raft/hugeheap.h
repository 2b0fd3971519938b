/* The heap put back on huge pages after each snapshot's fork (hugeheap.c).
 *
 * fork(2) copies the parent's page tables: an entry per 4 KiB page, but
 * one per 2 MiB transparent huge page. The FSM lives in glibc's main
 * heap (the brk area). Whatever it starts on, every first write to a huge
 * page that the snapshot child shares splits that page's mapping into 512
 * small entries (the kernel copies only the 4 KiB written), and khugepaged
 * merges them back at its own pace (16 MiB per 10 s by default). So the
 * fork grew with the state: 16-28 ms at 1M tags, about ten times that at
 * 10M.
 *
 * Once the child is gone, a detached thread asks the kernel to collapse
 * the heap back into huge pages (madvise MADV_COLLAPSE, Linux 6.1): the
 * copies and the allocations are that thread's, off the loop, and the
 * next fork copies an entry per 2 MiB. On a 400 MB heap here: a fork of
 * 18 ms on small pages, 0.7 ms once collapsed; at 4 GB, 2 ms.
 *
 * Where the kernel has no MADV_COLLAPSE (or THP is off), it is tried once
 * and never again: the forks stay what they were. */
#ifndef META_HUGEHEAP_H
#define META_HUGEHEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct meta_hugeheap_stats {
    uint64_t runs;    /* collapses finished */
    uint64_t bytes;   /* bytes the last one went over */
    double last_ms;   /* how long the last one took */
    bool unsupported; /* the kernel said no: no more attempts */
};

/* Any thread, synchronously: collapse the heap's mappings ([heap] in
 * /proc/self/maps, each one's 2 MiB-aligned inside) into huge pages.
 * Returns 0 (parts may have stayed small: the kernel had no huge page
 * for them now), AT_EUNSUPPORTED (no heap, no MADV_COLLAPSE, or THP
 * disabled: no later call tries again), or AT_EBUSY while another
 * collapse runs. */
int meta__hugeheap_collapse(void);

/* The same on a detached thread (meta__off_loop); returns at once, and
 * does nothing while one is running or once unsupported. */
void meta__hugeheap_collapse_async(void);

void meta__hugeheap_stats(struct meta_hugeheap_stats *st);

#endif /* META_HUGEHEAP_H */
