/* Unit tests of node/http/tables.c: status reasons, method names, Range. */
#include "common/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "common/common.h"
#include "node/http/http.h"
#include "node/http/internal.h"

static void test_parse_range(void **state)
{
    static const struct {
        const char *v;
        uint64_t size;
        int rv;
        uint64_t s, e;
    } t[] = {
        { "bytes=0-0", 10, 0, 0, 0 },
        { "bytes=0-9", 10, 0, 0, 9 },
        { "bytes=2-", 10, 0, 2, 9 },
        { "bytes=2-100", 10, 0, 2, 9 },
        { "bytes=-3", 10, 0, 7, 9 },
        { "bytes=-30", 10, 0, 0, 9 },
        { "BYTES=1-2", 10, 0, 1, 2 },
        { "bytes=10-", 10, AT_ERANGE, 0, 0 },
        { "bytes=10-20", 10, AT_ERANGE, 0, 0 },
        { "bytes=-0", 10, AT_ERANGE, 0, 0 },
        { "bytes=0-", 0, AT_ERANGE, 0, 0 },
        { "bytes=-5", 0, AT_ERANGE, 0, 0 },
        { "bytes=5-2", 10, AT_EINVAL, 0, 0 },
        { "bytes=1-2,4-5", 10, AT_EINVAL, 0, 0 },
        { "bytes=a-b", 10, AT_EINVAL, 0, 0 },
        { "bytes=+1-2", 10, AT_EINVAL, 0, 0 },
        { "bytes=1 -2", 10, AT_EINVAL, 0, 0 },
        { "bytes=-", 10, AT_EINVAL, 0, 0 },
        { "bytes=", 10, AT_EINVAL, 0, 0 },
        { "items=1-2", 10, AT_EINVAL, 0, 0 },
        { "bytes=99999999999999999999-", 10, AT_EINVAL, 0, 0 },
        { "bytes=0-18446744073709551615", 10, 0, 0, 9 },
        { "bytes=0-18446744073709551616", 10, AT_EINVAL, 0, 0 },
    };

    AT_UNUSED(state);
    for (size_t i = 0; i < AT_ARRAY_SIZE(t); i++) {
        uint64_t s = 99, e = 99;
        int rv = node_http_parse_range(t[i].v, t[i].size, &s, &e);
        if (rv != t[i].rv)
            fail_msg("range '%s' size %" PRIu64 ": rv %d, want %d", t[i].v,
                     t[i].size, rv, t[i].rv);
        if (rv == 0 && (s != t[i].s || e != t[i].e))
            fail_msg("range '%s': %" PRIu64 "-%" PRIu64, t[i].v, s, e);
    }
}

static void test_status_reason(void **state)
{
    AT_UNUSED(state);
    assert_string_equal(node_http__status_reason(200), "OK");
    assert_string_equal(node_http__status_reason(206), "Partial Content");
    assert_string_equal(node_http__status_reason(416), "Range Not Satisfiable");
    assert_string_equal(node_http__status_reason(431),
                        "Request Header Fields Too Large");
    assert_string_equal(node_http__status_reason(299), "Unknown");
}

static void test_method_map(void **state)
{
    AT_UNUSED(state);
    assert_int_equal(node_http__method_map(HTTP_GET), NODE_HTTP_GET);
    assert_int_equal(node_http__method_map(HTTP_HEAD), NODE_HTTP_HEAD);
    assert_int_equal(node_http__method_map(HTTP_PATCH), NODE_HTTP_PATCH);
    assert_int_equal(node_http__method_map(HTTP_DELETE), NODE_HTTP_DELETE);
    assert_int_equal(node_http__method_map(HTTP_PROPFIND), NODE_HTTP_OTHER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_range),
        cmocka_unit_test(test_status_reason),
        cmocka_unit_test(test_method_map),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
