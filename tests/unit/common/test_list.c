/* Unit tests of common/list.h: the intrusive list. */
#include "common/compat.h"

#include <setjmp.h>

#include <cmocka.h>

#include "common/common.h"

struct item {
    int v;
    struct at_list link;
};

static int value(const struct at_list *e)
{
    return AT_LIST_ENTRY(e, struct item, link)->v;
}

static void assert_values(const struct at_list *h, const int *want, size_t n)
{
    const struct at_list *e;
    size_t i = 0;

    AT_LIST_FOREACH (e, h) {
        assert_true(i < n);
        assert_int_equal(value(e), want[i]);
        i++;
    }
    assert_int_equal(i, n);
    assert_int_equal(at_list_count(h), n);
}

/* it[0..n) with values 0..n-1, pushed in that order onto h (initialised
 * here). */
static void fill(struct at_list *h, struct item *it, int n)
{
    at_list_init(h);
    for (int i = 0; i < n; i++) {
        it[i].v = i;
        at_list_push_back(h, &it[i].link);
    }
}

static void test_push_pop(void **state)
{
    struct item it[4];
    struct at_list h;
    const int want[] = { 3, 0, 1, 2 };

    AT_UNUSED(state);
    at_list_init(&h);
    assert_true(at_list_empty(&h));
    assert_null(at_list_first(&h));
    assert_null(at_list_last(&h));
    assert_null(at_list_pop_front(&h));
    for (int i = 0; i < 4; i++) {
        it[i].v = i;
        at_list_init(&it[i].link);
        assert_false(at_list_linked(&it[i].link));
    }
    at_list_push_back(&h, &it[0].link);
    at_list_push_back(&h, &it[1].link);
    at_list_push_back(&h, &it[2].link);
    at_list_push_front(&h, &it[3].link);
    assert_true(at_list_linked(&it[0].link));
    assert_values(&h, want, 4);
    assert_int_equal(value(at_list_first(&h)), 3);
    assert_int_equal(value(at_list_last(&h)), 2);
    assert_int_equal(value(at_list_next(&h, &it[0].link)), 1);
    assert_null(at_list_next(&h, &it[2].link));
    assert_ptr_equal(at_list_pop_front(&h), &it[3].link);
    assert_false(at_list_linked(&it[3].link));
    assert_int_equal(at_list_count(&h), 3);
}

static void test_remove(void **state)
{
    struct item it[3];
    struct at_list h;
    const int want[] = { 0, 2 };

    AT_UNUSED(state);
    fill(&h, it, 3);
    at_list_remove(&it[1].link);
    assert_values(&h, want, 2);
    /* twice, and on the unlinked element: harmless */
    at_list_remove(&it[1].link);
    assert_values(&h, want, 2);
    at_list_remove(&it[0].link);
    at_list_remove(&it[2].link);
    assert_true(at_list_empty(&h));
}

static void test_foreach_safe(void **state)
{
    struct item it[5];
    struct at_list h, *e, *tmp;
    const int want[] = { 1, 3 };

    AT_UNUSED(state);
    fill(&h, it, 5);
    AT_LIST_FOREACH_SAFE (e, tmp, &h) {
        if (value(e) % 2 == 0)
            at_list_remove(e);
    }
    assert_values(&h, want, 2);
}

static void test_move(void **state)
{
    struct item it[4];
    struct at_list a, b;
    const int want[] = { 2, 3, 0, 1 };

    AT_UNUSED(state);
    at_list_init(&a);
    at_list_init(&b);
    at_list_move(&a, &b); /* empty into empty */
    assert_true(at_list_empty(&b));
    for (int i = 0; i < 4; i++) {
        it[i].v = i;
        at_list_push_back(i < 2 ? &a : &b, &it[i].link);
    }
    at_list_move(&a, &b);
    assert_true(at_list_empty(&a));
    assert_values(&b, want, 4);
    /* both lists stay usable */
    assert_ptr_equal(at_list_pop_front(&b), &it[2].link);
    at_list_push_back(&a, &it[2].link);
    assert_int_equal(at_list_count(&a), 1);
    assert_int_equal(at_list_count(&b), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_pop),
        cmocka_unit_test(test_remove),
        cmocka_unit_test(test_foreach_safe),
        cmocka_unit_test(test_move),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
