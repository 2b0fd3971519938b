/* Unit tests of raft/logmem.c: the command buffers of libraft's log, in a
 * range a forked snapshot child does not share. */
#include "common/compat.h"

#include <errno.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <raft.h>

#include "raft/heap.h"
#include "raft/logmem.h"

static void test_alloc_free(void **state)
{
    struct meta_logmem_stats st0, st;
    void *p[100];
    (void)state;
    meta__logmem_stats(&st0);
    for (size_t i = 0; i < AT_ARRAY_SIZE(p); i++) {
        p[i] = meta__logmem_alloc(i * 37);
        assert_non_null(p[i]);
        assert_true(meta__logmem_owns(p[i]));
        assert_int_equal((uintptr_t)p[i] % 16, 0);
        assert_int_equal(meta__logmem_size(p[i]), i * 37);
        memset(p[i], (int)i, i * 37);
    }
    for (size_t i = 0; i < AT_ARRAY_SIZE(p); i++)
        for (size_t k = 0; k < i * 37; k++)
            assert_int_equal(((uint8_t *)p[i])[k], (uint8_t)i);
    meta__logmem_stats(&st);
    assert_int_equal(st.live, st0.live + AT_ARRAY_SIZE(p));
    for (size_t i = 0; i < AT_ARRAY_SIZE(p); i++)
        meta__logmem_free(p[i]);
    meta__logmem_stats(&st);
    assert_int_equal(st.live, st0.live);
    int on_stack;
    assert_false(meta__logmem_owns(&on_stack));
    assert_false(meta__logmem_owns(NULL));
}

/* libraft frees them (raft_free through heap.c), reallocs them, and a
 * buffer too big for a chunk comes from malloc(3). */
static void test_through_raft_heap(void **state)
{
    struct meta_logmem_stats st0, st;
    (void)state;
    meta__heap_install();
    meta__logmem_stats(&st0);
    char *p = meta__logmem_alloc(100);
    memcpy(p, "command", 8);
    p = raft_realloc(p, 50); /* fits: the same buffer */
    assert_true(meta__logmem_owns(p));
    p = raft_realloc(p, 4000); /* moved to malloc(3), bytes kept */
    assert_false(meta__logmem_owns(p));
    assert_string_equal(p, "command");
    raft_free(p);
    void *q = meta__logmem_alloc(10);
    raft_free(q);
    void *big = meta__logmem_alloc(META_LOGMEM_MAX + 1);
    assert_non_null(big);
    assert_false(meta__logmem_owns(big));
    raft_free(big);
    meta__logmem_stats(&st);
    assert_int_equal(st.live, st0.live);
    assert_int_equal(st.fallbacks, st0.fallbacks + 1);
}

/* A log's life: buffers freed in the order they were made, a window of
 * them alive; chunks are reused, not added. */
static void test_fifo_reuses_chunks(void **state)
{
    enum { WINDOW = 6000, TOTAL = 200000, SIZE = 600 };
    void **ring = calloc(WINDOW, sizeof(*ring));
    struct meta_logmem_stats st0, st;
    (void)state;
    meta__logmem_stats(&st0);
    for (size_t i = 0; i < TOTAL; i++) {
        if (ring[i % WINDOW] != NULL)
            meta__logmem_free(ring[i % WINDOW]);
        ring[i % WINDOW] = meta__logmem_alloc(SIZE + i % 64);
        assert_true(meta__logmem_owns(ring[i % WINDOW]));
    }
    meta__logmem_stats(&st);
    size_t per = META_LOGMEM_CHUNK / (SIZE + 64 + 16);
    assert_true(st.chunks - st0.chunks <= WINDOW / per + 3);
    assert_true(st.resident <= WINDOW / per + 3 + META_LOGMEM_SPARE);
    for (size_t i = 0; i < WINDOW; i++)
        meta__logmem_free(ring[i]);
    free(ring);
}

static long minor_faults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return ru.ru_minflt;
}

/* A forked child has no such range, and the parent writes its buffers
 * after the fork without a fault (on the C heap each page would be
 * copied on its first write). */
static void test_not_shared_with_a_child(void **state)
{
    enum { PAGES = 64 };
    char *p[PAGES];
    int fds[2];
    (void)state;
    for (size_t i = 0; i < PAGES; i++) {
        p[i] = meta__logmem_alloc(4096);
        memset(p[i], 1, 4096); /* resident */
    }
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char c;
        /* madvise on an unmapped range fails with ENOMEM */
        int gone = madvise((void *)((uintptr_t)p[0] & ~(uintptr_t)4095), 4096,
                           MADV_NORMAL) != 0 &&
                   errno == ENOMEM;
        (void)read(fds[0], &c, 1); /* the parent wrote meanwhile */
        _exit(gone ? 0 : 1);
    }
    long before = minor_faults();
    for (size_t i = 0; i < PAGES; i++)
        memset(p[i], 2, 4096);
    long faults = minor_faults() - before;
    assert_int_equal(write(fds[1], "x", 1), 1);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_true(faults < PAGES / 4);
    close(fds[0]);
    close(fds[1]);
    for (size_t i = 0; i < PAGES; i++)
        meta__logmem_free(p[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_free),
        cmocka_unit_test(test_through_raft_heap),
        cmocka_unit_test(test_fifo_reuses_chunks),
        cmocka_unit_test(test_not_shared_with_a_child),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
