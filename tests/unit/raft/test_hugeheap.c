/* Unit tests of raft/hugeheap.c: the heap collapsed back into huge pages
 * once a forked child that split them is gone. */
#include "common/compat.h"

#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "raft/hugeheap.h"

#define BLOCKS 16384 /* of 4 KiB: 64 MiB of heap, below mmap's threshold */

static char *blocks[BLOCKS];

/* KiB of the [heap] mappings that are mapped as huge pages. */
static long heap_huge_kb(void)
{
    FILE *f = fopen("/proc/self/smaps", "re");
    char line[512];
    bool in_heap = false;
    long kb = 0;

    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long a, b;
        if (sscanf(line, "%lx-%lx ", &a, &b) == 2)
            in_heap = strstr(line, "[heap]") != NULL;
        else if (in_heap && strncmp(line, "AnonHugePages:", 14) == 0)
            kb += atol(line + 14);
    }
    fclose(f);
    return kb;
}

static int setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc(4096 - 16);
        if (blocks[i] == NULL)
            return -1;
        memset(blocks[i], 1, 4096 - 16);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < BLOCKS; i++)
        free(blocks[i]);
    return 0;
}

/* The snapshot's sequence: fork, writes while the child lives, the child
 * gone, then the collapse. */
static void test_collapse_after_fork(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__)
    skip(); /* ASan's malloc does not grow the brk heap */
#endif
    int rv = meta__hugeheap_collapse();
    if (rv == AT_EUNSUPPORTED) {
        print_message("no MADV_COLLAPSE on this kernel\n");
        skip();
    }
    assert_int_equal(rv, 0);
    long before = heap_huge_kb();
    assert_true(before >= 48 * 1024);

    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char c;
        close(p[1]);
        (void)!read(p[0], &c, 1);
        _exit(0);
    }
    close(p[0]);
    for (size_t i = 0; i < BLOCKS; i += 16)
        blocks[i][0]++; /* a write per 64 KiB: every huge page is split */
    long split = heap_huge_kb();
    close(p[1]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(split < before / 2);

    struct meta_hugeheap_stats st0, st;
    meta__hugeheap_stats(&st0);
    assert_int_equal(meta__hugeheap_collapse(), 0);
    meta__hugeheap_stats(&st);
    assert_int_equal(st.runs, st0.runs + 1);
    assert_true(st.bytes >= (uint64_t)48 << 20);
    assert_true(heap_huge_kb() >= 48 * 1024);
    for (size_t i = 0; i < BLOCKS; i += 16)
        assert_int_equal(blocks[i][0], 2); /* the data came along */
}

/* The async form runs on its own thread and is counted. */
static void test_async(void **state)
{
    struct meta_hugeheap_stats st0, st;
    (void)state;
    meta__hugeheap_stats(&st0);
    if (st0.unsupported)
        skip();
    meta__hugeheap_collapse_async();
    for (int i = 0; i < 1000; i++) {
        meta__hugeheap_stats(&st);
        if (st.runs > st0.runs || st.unsupported)
            break;
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    if (st.unsupported)
        skip(); /* no brk heap (ASan's malloc), or no MADV_COLLAPSE */
    assert_int_equal(st.runs, st0.runs + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collapse_after_fork),
        cmocka_unit_test(test_async),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
