/* Unit tests of node/semver.c: versions, their order, ranges. */
#include "common/compat.h"

#include <setjmp.h>

#include <cmocka.h>

#include "common/common.h"
#include "node/semver.h"

static int cmp(const char *a, const char *b)
{
    struct node_semver x, y;
    assert_int_equal(node_semver_parse(a, &x), 0);
    assert_int_equal(node_semver_parse(b, &y), 0);
    return node_semver_cmp(&x, &y);
}

static void test_versions(void **state)
{
    static const char *bad[] = { "",   "v",    "1.",   "1..2",    "1.2.3.4",
                                 "x1", "1.2-", "1.2+", "1.2-a b", "latest" };
    struct node_semver v;
    (void)state;
    for (size_t i = 0; i < AT_ARRAY_SIZE(bad); i++)
        assert_int_equal(node_semver_parse(bad[i], &v), AT_EINVAL);
    assert_int_equal(node_semver_parse("v1.2", &v), 0);
    assert_true(v.v[0] == 1 && v.v[1] == 2 && v.v[2] == 0);
    /* semver 2.0.0's example order */
    static const char *order[] = {
        "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta",
        "1.0.0-beta",  "1.0.0-beta.2",  "1.0.0-beta.11",
        "1.0.0-rc.1",  "1.0.0",         "1.0.1",
        "1.10.0",      "2.0.0"
    };
    for (size_t i = 1; i < AT_ARRAY_SIZE(order); i++)
        assert_true(cmp(order[i - 1], order[i]) < 0);
    assert_int_equal(cmp("1.2.3+build.5", "v1.2.3"), 0);
}

static bool in(const char *range, const char *tag)
{
    struct node_semver_range r;
    char errmsg[AT_ERRMSG_SIZE];
    assert_int_equal(node_semver_range_parse(range, &r, errmsg), 0);
    return node_semver_range_has(&r, tag);
}

static void test_ranges(void **state)
{
    struct node_semver_range r;
    char errmsg[AT_ERRMSG_SIZE];
    (void)state;
    assert_true(in(">=1.2.0 <2.0.0", "v1.4.7"));
    assert_false(in(">=1.2.0 <2.0.0", "2.0.0"));
    assert_false(in(">=1.2.0 <2.0.0", "1.1.9"));
    assert_false(in(">=1.2.0 <2.0.0", "latest"));
    assert_true(in("^1.2.3", "1.9.0"));
    assert_false(in("^1.2.3", "2.0.0"));
    assert_false(in("^0.2.3", "0.3.0"));
    assert_true(in("^0.2.3", "0.2.9"));
    assert_true(in("~1.2.3", "1.2.9"));
    assert_false(in("~1.2.3", "1.3.0"));
    assert_true(in("<1.0.0 || >=3", "3.1"));
    assert_true(in("<1.0.0 || >=3", "0.9"));
    assert_false(in("<1.0.0 || >=3", "2.0.0"));
    assert_true(in("1.2.3", "v1.2.3"));
    assert_false(in(">=1.0.0", "1.0.0-rc.1"));
    static const char *bad[] = { "",    "||", ">=1 ||",   "|| <2",
                                 ">=x", "^",  "1.2.3 <<2" };
    for (size_t i = 0; i < AT_ARRAY_SIZE(bad); i++)
        assert_int_equal(node_semver_range_parse(bad[i], &r, errmsg),
                         AT_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_ranges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
