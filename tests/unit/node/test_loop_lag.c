/* Unit tests of node/loop_lag.c: a real loop held busy, then held
 * waiting, each counted as its kind of stall; the text's families. */
#include "common/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "node/loop_lag.h"

/* 1: spin, 2: sleep, 3: fault in fresh pages then spin, in the next
 * idle callback */
static int mode;

#define FAULT_PAGES 8192

static void spin_ms(unsigned ms)
{
    uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000u;
    while (uv_hrtime() < end) {
    }
}

static void on_idle(uv_idle_t *h)
{
    if (mode == 1)
        spin_ms(180);
    else if (mode == 2)
        usleep(180 * 1000);
    else if (mode == 3) {
        size_t len = (size_t)FAULT_PAGES * 4096;
        char *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        assert_true(p != MAP_FAILED);
        madvise(p, len, MADV_NOHUGEPAGE); /* one fault per page */
        for (size_t i = 0; i < len; i += 4096)
            p[i] = 1;
        munmap(p, len);
        spin_ms(150);
    }
    mode = 0;
    uv_idle_stop(h);
}

static void noop_tick(uv_timer_t *t)
{
    AT_UNUSED(t);
}

static void run_for_ms(uv_loop_t *loop, unsigned ms)
{
    uint64_t end = uv_hrtime() + (uint64_t)ms * 1000000u;
    uv_timer_t t; /* keeps the loop alive: the monitor's timer does not */
    uv_timer_init(loop, &t);
    uv_timer_start(&t, noop_tick, 10, 10);
    while (uv_hrtime() < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

static void test_loop_lag_kinds(void **state)
{
    uv_loop_t loop;
    uv_idle_t idle;
    AT_UNUSED(state);
    assert_int_equal(uv_loop_init(&loop), 0);
    struct node_loop_lag *l = node_loop_lag_start(&loop);
    assert_non_null(l);
    uv_idle_init(&loop, &idle);

    run_for_ms(&loop, 300);
    /* a long callback on the loop: a stall, busy unless this machine
     * starved the spinning thread too (then the kind is not provable) */
    uint64_t stalls = l->stalls_busy + l->stalls_waiting;
    mode = 1;
    uv_idle_start(&idle, on_idle);
    run_for_ms(&loop, 200);
    assert_true(l->stalls_busy + l->stalls_waiting > stalls);
    /* the thread does not run: waiting, whatever the machine */
    uint64_t waiting = l->stalls_waiting;
    mode = 2;
    uv_idle_start(&idle, on_idle);
    run_for_ms(&loop, 200);
    assert_true(l->stalls_waiting > waiting);
    assert_true(l->max_s >= 0.1);
    /* the page faults of a late turn are counted */
    uint64_t faults = l->stall_faults;
    stalls = l->stalls_busy + l->stalls_waiting;
    mode = 3;
    uv_idle_start(&idle, on_idle);
    run_for_ms(&loop, 250);
    assert_true(l->stalls_busy + l->stalls_waiting > stalls);
    assert_true(l->stall_faults >= faults + FAULT_PAGES);

    struct at_buf b;
    at_buf_init(&b, 0);
    node_loop_lag_text(l, &b);
    at_buf_append(&b, "", 1);
    const char *t = (const char *)b.data;
    assert_non_null(strstr(t, "# TYPE atoll_loop_lag_seconds histogram\n"));
    assert_non_null(strstr(t, "atoll_loop_lag_seconds_bucket{le=\"+Inf\"} "));
    assert_non_null(strstr(t, "atoll_loop_stalls_total{kind=\"busy\"} "));
    assert_non_null(strstr(t, "atoll_loop_stalls_total{kind=\"waiting\"} "));
    assert_non_null(strstr(t, "# TYPE atoll_loop_lag_max_seconds gauge\n"));
    assert_non_null(strstr(t, "atoll_loop_stall_faults_total "));
    at_buf_release(&b);

    node_loop_lag_close(l);
    node_loop_lag_close(NULL);
    uv_close((uv_handle_t *)&idle, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* The bucket bounds and the busy rule, without a loop. */
static void test_loop_lag_record(void **state)
{
    struct node_loop_lag l;
    AT_UNUSED(state);
    memset(&l, 0, sizeof(l));
    node_loop_lag_record(&l, 1000000, 0, 51000000, 5);        /* 1 ms */
    node_loop_lag_record(&l, 60000000, 0, 110000000, 7);      /* 60 ms */
    node_loop_lag_record(&l, 3000000000u, 0, 3050000000u, 0); /* 3 s, waiting */
    node_loop_lag_record(&l, 150000000, 190000000, 200000000, 40); /* busy */
    assert_int_equal(l.count[0], 1);
    assert_int_equal(l.count[4], 1);                     /* <= 0.1 */
    assert_int_equal(l.count[NODE_LOOP_LAG_BUCKETS], 1); /* +Inf */
    assert_int_equal(l.count[5], 1);                     /* <= 0.25 */
    assert_int_equal(l.stalls_waiting, 1);
    assert_int_equal(l.stalls_busy, 1);
    assert_int_equal(l.stall_faults, 40); /* stalls only */
    assert_true(l.max_s > 2.9);
}

int main(void)
{
    at_log_configure("error");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loop_lag_record),
        cmocka_unit_test(test_loop_lag_kinds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
