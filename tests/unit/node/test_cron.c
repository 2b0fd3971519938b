/* Unit tests of node/cron.c: the five cron fields, parsed and matched in
 * UTC. */
#include "common/compat.h"

#include <setjmp.h>
#include <time.h>

#include <cmocka.h>

#include "common/common.h"
#include "node/cron.h"

/* Seconds since the epoch of y-m-d h:m UTC. */
static time_t at(int y, int mo, int d, int h, int mi)
{
    struct tm tm = { .tm_year = y - 1900,
                     .tm_mon = mo - 1,
                     .tm_mday = d,
                     .tm_hour = h,
                     .tm_min = mi };
    return timegm(&tm);
}

static bool fires(const char *s, time_t t)
{
    struct node_cron c;
    char errmsg[AT_ERRMSG_SIZE];
    assert_int_equal(node_cron_parse(s, &c, errmsg), 0);
    return node_cron_matches(&c, t);
}

static void test_parse_refuses(void **state)
{
    static const char *bad[] = {
        "",
        "* * * *",
        "* * * * * *",
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * * 13 *",
        "* * * * 8",
        "*/0 * * * *",
        "5-3 * * * *",
        "a * * * *",
        "1,,2 * * * *",
        "1- * * * *",
        "-1 * * * *",
        "@daily",
        "1/ * * * *",
    };
    struct node_cron c;
    char errmsg[AT_ERRMSG_SIZE];
    (void)state;
    for (size_t i = 0; i < AT_ARRAY_SIZE(bad); i++) {
        assert_int_equal(node_cron_parse(bad[i], &c, errmsg), AT_EINVAL);
        assert_non_null(strstr(errmsg, "cron"));
    }
}

static void test_matches(void **state)
{
    (void)state;
    /* 2026-12-07 is a Monday */
    assert_true(fires("*/15 * * * *", at(2026, 12, 7, 0, 15)));
    assert_false(fires("*/15 * * * *", at(2026, 12, 7, 0, 16)));
    assert_true(fires("0 2 * * 1-5", at(2026, 12, 7, 2, 0)));
    assert_false(fires("0 2 * * 1-5", at(2026, 12, 6, 2, 0))); /* Sunday */
    assert_true(fires("  0   2 * *   1-5 ", at(2026, 12, 8, 2, 0)));
    /* day-of-month or day-of-week, both restricted: either */
    assert_true(fires("0 0 1 * 0", at(2026, 1, 1, 0, 0)));  /* a Thursday */
    assert_true(fires("0 0 1 * 0", at(2026, 12, 6, 0, 0))); /* a Sunday */
    assert_false(fires("0 0 1 * 0", at(2026, 12, 7, 0, 0)));
    /* 7 is Sunday too */
    assert_true(fires("0 0 * * 7", at(2026, 12, 6, 0, 0)));
    assert_true(fires("1-30/2,45 * * 12 *", at(2026, 12, 7, 9, 45)));
    assert_true(fires("1-30/2,45 * * 12 *", at(2026, 12, 7, 9, 29)));
    assert_false(fires("1-30/2,45 * * 12 *", at(2026, 12, 7, 9, 30)));
    assert_false(fires("1-30/2,45 * * 11 *", at(2026, 12, 7, 9, 45)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_refuses),
        cmocka_unit_test(test_matches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
