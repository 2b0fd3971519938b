/* The bytes of the commands in libraft's log. See logmem.h.
 *
 * One range of META_LOGMEM_RESERVE bytes is reserved (PROT_NONE) at the
 * first allocation and marked MADV_DONTFORK; chunks are made writable
 * one at a time, in order, and never given back to PROT_NONE. The chunk
 * being filled is cur; a buffer is [16-byte size][bytes], bumped at the
 * chunk's used offset; the chunk counts its live buffers, and the free
 * that brings a full chunk's count to 0 puts it on the spare stack (kept
 * resident) or, past META_LOGMEM_SPARE, on the cold stack (its pages
 * dropped with MADV_DONTNEED). */
#include "common/compat.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "raft/logmem.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define NCHUNKS (META_LOGMEM_RESERVE / META_LOGMEM_CHUNK)
#define HDR     16 /* before each buffer: its size */

struct chunk {
    size_t live; /* buffers not freed */
    size_t used; /* bytes bumped, this header included */
    uint8_t pad[16];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* the range; NULL until the first allocation (set once, under lock;
 * read without it by meta__logmem_owns) */
static uint8_t *_Atomic base;
static bool broken;    /* reserving the range failed: malloc(3) only */
static size_t ncommit; /* chunks made writable, [0, ncommit) */
static struct chunk *cur;
static uint32_t spare[NCHUNKS], cold[NCHUNKS];
static size_t nspare, ncold;
static size_t live, fallbacks;

static struct chunk *chunk_at(size_t i)
{
    return (struct chunk *)(base + i * META_LOGMEM_CHUNK);
}

static size_t chunk_index(const void *p)
{
    return (size_t)((const uint8_t *)p - base) / META_LOGMEM_CHUNK;
}

/* Under lock. */
static bool reserve(void)
{
    if (base != NULL || broken)
        return base != NULL;
    void *p = mmap(NULL, META_LOGMEM_RESERVE, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        broken = true;
        return false;
    }
    /* the snapshot child reads only the FSM: without this, each first
     * write here after a fork would copy a page */
    if (madvise(p, META_LOGMEM_RESERVE, MADV_DONTFORK) != 0) {
        munmap(p, META_LOGMEM_RESERVE);
        broken = true;
        return false;
    }
    atomic_store(&base, (uint8_t *)p);
    return true;
}

/* An empty chunk to fill, or NULL. Under lock. */
static struct chunk *chunk_take(void)
{
    struct chunk *c;
    if (nspare > 0) {
        c = chunk_at(spare[--nspare]);
    } else if (ncold > 0) {
        c = chunk_at(cold[--ncold]);
    } else if (ncommit < NCHUNKS && reserve()) {
        c = chunk_at(ncommit);
        if (mprotect(c, META_LOGMEM_CHUNK, PROT_READ | PROT_WRITE) != 0)
            return NULL;
        ncommit++;
    } else {
        return NULL;
    }
    UNPOISON(c, sizeof(*c));
    c->live = 0;
    c->used = sizeof(*c);
    POISON((uint8_t *)c + sizeof(*c), META_LOGMEM_CHUNK - sizeof(*c));
    return c;
}

/* c is empty and not cur. Under lock. */
static void chunk_put(struct chunk *c)
{
    size_t i = chunk_index(c);
    if (nspare < META_LOGMEM_SPARE) {
        spare[nspare++] = (uint32_t)i;
    } else {
        UNPOISON(c, META_LOGMEM_CHUNK);
        (void)madvise(c, META_LOGMEM_CHUNK, MADV_DONTNEED);
        cold[ncold++] = (uint32_t)i;
    }
}

/* need bytes bumped in cur (a new chunk when it is full), or NULL.
 * Under lock. */
static uint8_t *bump(size_t need)
{
    if (cur != NULL && cur->used + need > META_LOGMEM_CHUNK) {
        struct chunk *full = cur;
        cur = NULL;
        if (full->live == 0)
            chunk_put(full);
    }
    if (cur == NULL && (cur = chunk_take()) == NULL)
        return NULL;
    uint8_t *p = (uint8_t *)cur + cur->used;
    cur->used += need;
    cur->live++;
    live++;
    return p;
}

/* see logmem.h */
void *meta__logmem_alloc(size_t size)
{
    /* 16 bytes at least: p stays inside its chunk (and the range) */
    size_t need = HDR + (((size > 0 ? size : 1) + 15) & ~(size_t)15);

    pthread_mutex_lock(&lock);
    uint8_t *p = size <= META_LOGMEM_MAX ? bump(need) : NULL;
    if (p == NULL)
        fallbacks++;
    pthread_mutex_unlock(&lock);
    if (p == NULL)
        return malloc(size > 0 ? size : 1);
    UNPOISON(p, HDR + size);
    memcpy(p, &size, sizeof(size));
    return p + HDR;
}

/* see logmem.h */
bool meta__logmem_owns(const void *p)
{
    /* base is set once, before any pointer into the range exists */
    const uint8_t *b = atomic_load_explicit(&base, memory_order_relaxed);
    return b != NULL && (const uint8_t *)p >= b &&
           (const uint8_t *)p < b + META_LOGMEM_RESERVE;
}

/* see logmem.h */
size_t meta__logmem_size(const void *p)
{
    size_t size;
    memcpy(&size, (const uint8_t *)p - HDR, sizeof(size));
    return size;
}

/* see logmem.h */
void meta__logmem_free(void *p)
{
    uint8_t *h = (uint8_t *)p - HDR;
    POISON(h, HDR + meta__logmem_size(p));
    pthread_mutex_lock(&lock);
    struct chunk *c = chunk_at(chunk_index(h));
    live--;
    if (--c->live == 0 && c != cur)
        chunk_put(c);
    pthread_mutex_unlock(&lock);
}

/* see logmem.h */
void meta__logmem_stats(struct meta_logmem_stats *out)
{
    pthread_mutex_lock(&lock);
    out->live = live;
    out->chunks = ncommit;
    out->resident = ncommit - ncold;
    out->fallbacks = fallbacks;
    pthread_mutex_unlock(&lock);
}
