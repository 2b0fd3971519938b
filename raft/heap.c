/* libraft's heap. See heap.h. */
#include "common/compat.h"

#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <raft.h>

#include "raft/heap.h"
#include "raft/logmem.h"

/* see heap.h */
void meta__off_loop(void *(*fn)(void *), void *p)
{
    pthread_attr_t attr;
    pthread_t t;
    bool started = false;

    if (pthread_attr_init(&attr) == 0) {
        started =
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
            pthread_create(&t, &attr, fn, p) == 0;
        pthread_attr_destroy(&attr);
    }
    if (!started)
        fn(p);
}

static void *free_thread(void *p)
{
    free(p);
    return NULL;
}

static void *h_malloc(void *data, size_t size)
{
    (void)data;
    return malloc(size);
}

static _Atomic unsigned long big_frees;

/* see heap.h */
unsigned long meta__heap_big_frees(void)
{
    return big_frees;
}

static void h_free(void *data, void *p)
{
    (void)data;
    if (meta__logmem_owns(p)) {
        meta__logmem_free(p);
    } else if (p != NULL &&
               malloc_usable_size(p) >= META_HEAP_FREE_OFF_LOOP_MIN) {
        big_frees++;
        meta__off_loop(free_thread, p);
    } else
        free(p);
}

static void *h_calloc(void *data, size_t nmemb, size_t size)
{
    (void)data;
    return calloc(nmemb, size);
}

static void *h_realloc(void *data, void *p, size_t size)
{
    (void)data;
    if (meta__logmem_owns(p)) {
        size_t old = meta__logmem_size(p);
        if (size <= old)
            return p;
        void *q = malloc(size);
        if (q == NULL)
            return NULL;
        memcpy(q, p, old);
        meta__logmem_free(p);
        return q;
    }
    return realloc(p, size);
}

static void *h_aligned_alloc(void *data, size_t alignment, size_t size)
{
    (void)data;
    return aligned_alloc(alignment, size);
}

static void h_aligned_free(void *data, size_t alignment, void *p)
{
    (void)alignment;
    h_free(data, p);
}

static struct raft_heap heap = {
    .malloc = h_malloc,
    .free = h_free,
    .calloc = h_calloc,
    .realloc = h_realloc,
    .aligned_alloc = h_aligned_alloc,
    .aligned_free = h_aligned_free,
};

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void install(void)
{
    raft_heap_set(&heap);
}

/* see heap.h */
void meta__heap_install(void)
{
    pthread_once(&once, install);
}
