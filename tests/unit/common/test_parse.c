/* Unit tests of common/parse.c: strict parsers of numbers, sizes, durations,
 * booleans. */
#include "common/compat.h"

#include <setjmp.h>

#include <cmocka.h>

#include "common/common.h"

static void test_parse_u64(void **state)
{
    uint64_t v = 0;
    static const char *bad[] = { "",
                                 "-1",
                                 "+1",
                                 " 1",
                                 "1 ",
                                 "1x",
                                 "0x10",
                                 "18446744073709551616",
                                 "99999999999999999999",
                                 "000000000000000000001" };
    AT_UNUSED(state);

    assert_int_equal(at_parse_u64("0", 1, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(at_parse_u64("12345", 5, &v), 0);
    assert_int_equal(v, 12345);
    assert_int_equal(at_parse_u64("123", 2, &v), 0);
    assert_int_equal(v, 12);
    assert_int_equal(at_parse_u64("18446744073709551615", 20, &v), 0);
    assert_true(v == UINT64_MAX);
    for (size_t i = 0; i < AT_ARRAY_SIZE(bad); i++) {
        v = 7;
        if (at_parse_u64(bad[i], strlen(bad[i]), &v) != AT_EINVAL)
            fail_msg("'%s' accepted", bad[i]);
        assert_int_equal(v, 7);
    }
}

/* A text and the value it parses to. */
struct parsed {
    const char *s;
    uint64_t want;
};

/* parse takes each of ok[n_ok] to its value and refuses each of
 * bad[n_bad] with AT_EINVAL. */
static void check_parser(int (*parse)(const char *, uint64_t *),
                         const struct parsed *ok,
                         size_t n_ok,
                         const char *const *bad,
                         size_t n_bad)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n_ok; i++) {
        assert_int_equal(parse(ok[i].s, &v), 0);
        if (v != ok[i].want)
            fail_msg("'%s' = %" PRIu64, ok[i].s, v);
    }
    for (size_t i = 0; i < n_bad; i++) {
        if (parse(bad[i], &v) != AT_EINVAL)
            fail_msg("'%s' accepted", bad[i]);
    }
}

static void test_parse_size(void **state)
{
    static const struct parsed ok[] = {
        { "4096", 4096 },
        { "0", 0 },
        { "64k", 64 << 10 },
        { "4KiB", 4 << 10 },
        { "10MB", 10 << 20 },
        { "4MiB", 4 << 20 },
        { "1GiB", 1ull << 30 },
        { "2tib", 2ull << 40 },
        { "7b", 7 },
        { "3 MiB", 3 << 20 },
    };
    static const char *const bad[] = {
        "",      "abc",         "4XB",
        "MiB",   "-1",          "1.5GiB",
        "4MiB ", "16777216TiB", "18446744073709551616"
    };
    AT_UNUSED(state);

    check_parser(at_parse_size, ok, AT_ARRAY_SIZE(ok), bad, AT_ARRAY_SIZE(bad));
}

static void test_parse_duration(void **state)
{
    static const struct parsed ok[] = {
        { "250ms", 250 },  { "30s", 30000 },    { "5m", 300000 },
        { "1h", 3600000 }, { "2d", 172800000 }, { "30", 30000 },
        { "0", 0 },        { "1000ms", 1000 },
    };
    static const char *const bad[] = { "",
                                       "s",
                                       "1w",
                                       "1.5s",
                                       "-1s",
                                       "10 sec",
                                       "18446744073709551615s",
                                       "18446744073709551615" };
    AT_UNUSED(state);

    check_parser(at_parse_duration_ms, ok, AT_ARRAY_SIZE(ok), bad,
                 AT_ARRAY_SIZE(bad));
}

static void test_parse_bool(void **state)
{
    bool b;
    static const char *yes[] = { "true", "TRUE", "yes", "on", "1" };
    static const char *no[] = { "false", "No", "off", "0" };
    static const char *bad[] = { "", "maybe", "2", "truee", " true" };
    AT_UNUSED(state);

    for (size_t i = 0; i < AT_ARRAY_SIZE(yes); i++) {
        b = false;
        assert_int_equal(at_parse_bool(yes[i], &b), 0);
        assert_true(b);
    }
    for (size_t i = 0; i < AT_ARRAY_SIZE(no); i++) {
        b = true;
        assert_int_equal(at_parse_bool(no[i], &b), 0);
        assert_false(b);
    }
    for (size_t i = 0; i < AT_ARRAY_SIZE(bad); i++)
        assert_int_equal(at_parse_bool(bad[i], &b), AT_EINVAL);
}

static void test_list(void **state)
{
    char out[8];

    AT_UNUSED(state);
    assert_int_equal(at_csv_count(NULL), 0);
    assert_int_equal(at_csv_count(""), 0);
    assert_int_equal(at_csv_count("a:1"), 1);
    assert_int_equal(at_csv_count("a:1,bb:2,c:3"), 3);
    assert_int_equal(at_csv_item("a:1,bb:2,c:3", 0, out, sizeof(out)), 0);
    assert_string_equal(out, "a:1");
    assert_int_equal(at_csv_item("a:1,bb:2,c:3", 1, out, sizeof(out)), 0);
    assert_string_equal(out, "bb:2");
    assert_int_equal(at_csv_item("a:1,bb:2,c:3", 2, out, sizeof(out)), 0);
    assert_string_equal(out, "c:3");
    assert_int_equal(at_csv_item("a:1,bb:2", 2, out, sizeof(out)),
                     AT_ENOTFOUND);
    assert_int_equal(at_csv_item("a,,b", 1, out, sizeof(out)), AT_ETOOBIG);
    assert_string_equal(out, "");
    assert_int_equal(at_csv_item("a,12345678", 1, out, sizeof(out)),
                     AT_ETOOBIG);
    assert_int_equal(at_csv_item("a,1234567", 1, out, sizeof(out)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_u64),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_bool),
        cmocka_unit_test(test_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
