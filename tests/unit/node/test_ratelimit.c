/* Unit tests of node/ratelimit.c: hosts of URLs, spacing per host, no
 * limit at rate 0, a cancel while waiting. (Lower bounds of elapsed time
 * only: what the limiter promises, not a speed.) */
#include "common/compat.h"

#include <setjmp.h>
#include <time.h>

#include <cmocka.h>

#include "common/common.h"
#include "node/ratelimit.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_host_of(void **state)
{
    char h[16];
    (void)state;
    node_rate_host_of("https://reg.example:5000/v2/x/blobs/y", h, sizeof(h));
    assert_string_equal(h, "reg.example:500"); /* truncated to 15 */
    node_rate_host_of("http://a/v2/", h, sizeof(h));
    assert_string_equal(h, "a");
    node_rate_host_of("http://b?x", h, sizeof(h));
    assert_string_equal(h, "b");
}

static void test_spacing(void **state)
{
    (void)state;
    /* 5 requests to one host at 20/s: 4 gaps of 50 ms at least */
    double t0 = now_s();
    for (int i = 0; i < 5; i++)
        assert_int_equal(node_rate_wait("spaced:1", 20, NULL), 0);
    assert_true(now_s() - t0 >= 0.19);
    /* rate 0 (and above the maximum): no limit, no slot taken */
    for (int i = 0; i < 1000; i++)
        assert_int_equal(node_rate_wait("free:1", 0, NULL), 0);
}

static void test_cancel(void **state)
{
    atomic_bool cancel;
    (void)state;
    atomic_init(&cancel, false);
    assert_int_equal(node_rate_wait("slow:1", 0.5, &cancel), 0);
    atomic_store(&cancel, true);
    /* the next slot is 2 s away: the wait sees the cancel */
    double t0 = now_s();
    assert_int_equal(node_rate_wait("slow:1", 0.5, &cancel), AT_ECANCELED);
    assert_true(now_s() - t0 < 1.5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_of),
        cmocka_unit_test(test_spacing),
        cmocka_unit_test(test_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
