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
    enum node_rank ok = NODE_RANK_OK, sus = NODE_RANK_SUSPECT,
                   gone = NODE_RANK_GONE;
    /* alive first, whatever the region or load; dead or left last */
    assert_true(node_fetch_holder_before(ok, 1, 9, sus, 0, 0));
    assert_false(node_fetch_holder_before(sus, 0, 0, ok, 1, 9));
    assert_true(node_fetch_holder_before(sus, 1, 9, gone, 0, 0));
    assert_false(node_fetch_holder_before(gone, 0, 0, sus, 1, 9));
    assert_true(node_fetch_holder_before(ok, 1, 9, gone, 0, 0));
    /* then same region */
    assert_true(node_fetch_holder_before(ok, 0, 5, ok, 1, 0));
    assert_false(node_fetch_holder_before(ok, 1, 0, ok, 0, 5));
    /* then the least loaded; ties keep their order */
    assert_true(node_fetch_holder_before(ok, 1, 0, ok, 1, 1));
    assert_false(node_fetch_holder_before(ok, 1, 1, ok, 1, 1));
    assert_false(node_fetch_holder_before(sus, 1, 2, sus, 1, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_holder_order),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
