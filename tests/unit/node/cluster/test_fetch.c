/* Unit tests of node/cluster/fetch.c: the order in which holders of a blob
 * are tried. */
#include "common/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "common/common.h"
#include "node/cluster/holders.h"

static void test_holder_order(void **state)
{
    AT_UNUSED(state);
    enum node_rank ok = NODE_RANK_OK, sus = NODE_RANK_SUSPECT,
                   gone = NODE_RANK_GONE;
#define K(r, g, rtt, l) (&(struct node_holder_key){ r, g, rtt, l })
    /* alive first, whatever the region, distance or load; gone last */
    assert_true(node_holder_before(K(ok, 1, 900, 9), K(sus, 0, 1, 0)));
    assert_false(node_holder_before(K(sus, 0, 1, 0), K(ok, 1, 900, 9)));
    assert_true(node_holder_before(K(sus, 1, 0, 9), K(gone, 0, 0, 0)));
    assert_false(node_holder_before(K(gone, 0, 0, 0), K(sus, 1, 0, 9)));
    assert_true(node_holder_before(K(ok, 1, 0, 9), K(gone, 0, 0, 0)));
    /* then same region */
    assert_true(node_holder_before(K(ok, 0, 900, 5), K(ok, 1, 1, 0)));
    assert_false(node_holder_before(K(ok, 1, 1, 0), K(ok, 0, 900, 5)));
    /* then the nearer, when clearly nearer and both known */
    assert_true(node_holder_before(K(ok, 1, 1000, 5), K(ok, 1, 30000, 0)));
    assert_false(node_holder_before(K(ok, 1, 30000, 0), K(ok, 1, 1000, 5)));
    assert_false(node_holder_before(K(ok, 1, 1000, 5), K(ok, 1, 1500, 0)));
    assert_false(node_holder_before(K(ok, 1, 0, 5), K(ok, 1, 30000, 0)));
    /* then the least loaded; ties keep their order */
    assert_true(node_holder_before(K(ok, 1, 0, 0), K(ok, 1, 0, 1)));
    assert_false(node_holder_before(K(ok, 1, 0, 1), K(ok, 1, 0, 1)));
    assert_false(node_holder_before(K(sus, 1, 0, 2), K(sus, 1, 0, 1)));
#undef K
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_holder_order),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
