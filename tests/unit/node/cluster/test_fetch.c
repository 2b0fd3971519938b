/* Unit tests of node/cluster/fetch.c: the order in which holders of a blob
 * are tried. */
#include "common/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "common/common.h"
#include "node/cluster/fetch.h"

static void test_holder_order(void **state)
{
    AT_UNUSED(state);
    /* not suspect first, whatever the region or load */
    assert_true(node_fetch_holder_before(false, 1, 9, true, 0, 0));
    assert_false(node_fetch_holder_before(true, 0, 0, false, 1, 9));
    /* then same region */
    assert_true(node_fetch_holder_before(false, 0, 5, false, 1, 0));
    assert_false(node_fetch_holder_before(false, 1, 0, false, 0, 5));
    /* then the least loaded; ties keep their order */
    assert_true(node_fetch_holder_before(false, 1, 0, false, 1, 1));
    assert_false(node_fetch_holder_before(false, 1, 1, false, 1, 1));
    assert_false(node_fetch_holder_before(true, 1, 2, true, 1, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_holder_order),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
