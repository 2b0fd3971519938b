/* libraft's heap (heap.c): the C library's, except that a big block is
 * given back to the kernel on a detached thread. Returning hundreds of MB
 * (munmap of a snapshot's buffer: the leader's after it sent one to a
 * node that fell behind, a restored one) took 30-100 ms here, a stall of
 * every request on the loop. */
#ifndef META_HEAP_H
#define META_HEAP_H

#include <stddef.h>

/* Blocks of at least this many usable bytes are freed off the loop. */
#define META_HEAP_FREE_OFF_LOOP_MIN ((size_t)32 << 20)

/* Make libraft use this heap (raft_heap_set); idempotent, any time before
 * the first raft_init (blocks from the default heap are the C library's
 * as well, so either frees them). */
void meta__heap_install(void);

/* How many blocks were freed off the loop so far (tests, logs). */
unsigned long meta__heap_big_frees(void);

/* Run fn(p) on a detached thread, or inline when none can be started. */
void meta__off_loop(void *(*fn)(void *), void *p);

#endif /* META_HEAP_H */
