/* The bytes of the commands in libraft's log (logmem.c).
 *
 * A command's buffer lives from its proposal to the snapshot that
 * truncates the log behind it, and buffers die in log order. On the C
 * heap they sat among the FSM's records: after each snapshot's fork
 * (snapfork.c) libraft freed thousands of them at once, and every free
 * wrote to a page shared with the child (a copy-on-write fault, 17 us
 * each in a VM), and the holes they left sent new records to old pages.
 * Those faults were most of the loop's stalls during snapshots
 * (tests/bench/scale --perf-load).
 *
 * Here they are bump-allocated in chunks of their own, in one reserved
 * range that a forked child does not get (MADV_DONTFORK: the snapshot
 * child reads only the FSM), so a write to them never faults on a shared
 * page; a chunk whose buffers were all freed is reused whole, and a few
 * empty chunks stay resident for that.
 *
 * Thread-safe. Free these buffers with raft_free (heap.c asks
 * meta__logmem_owns), never with free(3). */
#ifndef META_LOGMEM_H
#define META_LOGMEM_H

#include <stdbool.h>
#include <stddef.h>

/* Bytes per chunk, and the largest buffer kept in one: bigger ones (a
 * big manifest's command) come from malloc(3). */
#define META_LOGMEM_CHUNK ((size_t)1 << 20)
#define META_LOGMEM_MAX   (META_LOGMEM_CHUNK / 4)

/* The reserved range (address space only; chunks are committed as they
 * are first used): when it is full, buffers come from malloc(3). */
#define META_LOGMEM_RESERVE ((size_t)4 << 30)

/* Empty chunks kept resident for reuse; more are given back
 * (MADV_DONTNEED) and committed again when needed. */
#define META_LOGMEM_SPARE 8

/* size bytes, 16-byte aligned, in the range when size <= META_LOGMEM_MAX
 * and it has room, else from malloc(3); NULL when neither can. The
 * signature of raft_malloc, for meta__cmd_pack. */
void *meta__logmem_alloc(size_t size);

/* Whether p is in the range (then meta__logmem_free frees it). */
bool meta__logmem_owns(const void *p);

/* Free p, which meta__logmem_owns. */
void meta__logmem_free(void *p);

/* The usable size of p, which meta__logmem_owns. */
size_t meta__logmem_size(const void *p);

struct meta_logmem_stats {
    size_t live;      /* buffers not freed */
    size_t chunks;    /* chunks ever committed */
    size_t resident;  /* chunks in use or kept resident */
    size_t fallbacks; /* buffers that came from malloc(3) */
};

void meta__logmem_stats(struct meta_logmem_stats *out);

#endif /* META_LOGMEM_H */
