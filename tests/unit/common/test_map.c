/* Unit tests of common/map.c: the hash map. */
#include "common/compat.h"

#include <setjmp.h>

#include <cmocka.h>

#include "common/common.h"

static void test_map_many(void **state)
{
    struct at_map m;
    char key[32];
    const int n = 100000;
    size_t count = 0;
    const char *k;
    void *v;
    AT_UNUSED(state);

    at_map_init(&m);
    assert_null(at_map_gets(&m, "missing"));
    assert_null(at_map_del(&m, "missing", 7));
    for (int i = 0; i < n; i++) {
        int len = snprintf(key, sizeof(key), "key-%d", i);
        assert_null(
            at_map_put(&m, key, (size_t)len, (void *)(intptr_t)(i + 1)));
    }
    assert_int_equal(m.len, n);
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        assert_ptr_equal(at_map_gets(&m, key), (void *)(intptr_t)(i + 1));
    }
    /* Replace returns the old value. */
    assert_ptr_equal(at_map_put(&m, "key-7", 5, (void *)(intptr_t)99),
                     (void *)(intptr_t)8);
    assert_ptr_equal(at_map_gets(&m, "key-7"), (void *)(intptr_t)99);
    assert_int_equal(m.len, n);

    for (size_t it = 0; at_map_next(&m, &it, &k, &v);) {
        assert_non_null(k);
        assert_non_null(v);
        count++;
    }
    assert_int_equal(count, n);

    /* Delete the even keys, some while iterating. */
    for (int i = 0; i < n; i += 2) {
        int len = snprintf(key, sizeof(key), "key-%d", i);
        if (i == 6)
            continue;
        assert_non_null(at_map_del(&m, key, (size_t)len));
    }
    for (size_t it = 0; at_map_next(&m, &it, &k, &v);) {
        if (strcmp(k, "key-6") == 0)
            assert_non_null(at_map_del(&m, k, strlen(k)));
    }
    assert_int_equal(m.len, n / 2);
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        if (i % 2 == 0)
            assert_null(at_map_gets(&m, key));
        else
            assert_non_null(at_map_gets(&m, key));
    }
    count = 0;
    for (size_t it = 0; at_map_next(&m, &it, NULL, NULL);)
        count++;
    assert_int_equal(count, n / 2);
    at_map_release(&m);
    assert_int_equal(m.len, 0);
    assert_null(m.slots);
}

static void test_map_tombstones(void **state)
{
    struct at_map m;
    char key[32];
    AT_UNUSED(state);

    at_map_init(&m);
    /* Churn: the table must reuse tombstones instead of growing forever. */
    for (int round = 0; round < 2000; round++) {
        for (int i = 0; i < 8; i++) {
            int len = snprintf(key, sizeof(key), "r%d-%d", round, i);
            assert_null(at_map_put(&m, key, (size_t)len, &m));
        }
        for (int i = 0; i < 8; i++) {
            int len = snprintf(key, sizeof(key), "r%d-%d", round, i);
            assert_ptr_equal(at_map_del(&m, key, (size_t)len), &m);
        }
        assert_int_equal(m.len, 0);
    }
    assert_true(m.cap <= 64);
    /* A deleted key can be inserted again and found. */
    assert_null(at_map_put(&m, "a", 1, &m));
    assert_null(at_map_del(&m, "b", 1));
    assert_ptr_equal(at_map_del(&m, "a", 1), &m);
    assert_null(at_map_put(&m, "a", 1, &key));
    assert_ptr_equal(at_map_gets(&m, "a"), &key);
    /* Binary keys with NUL bytes. */
    assert_null(at_map_put(&m, "x\0y", 3, &m));
    assert_null(at_map_put(&m, "x\0z", 3, &key));
    assert_ptr_equal(at_map_get(&m, "x\0y", 3), &m);
    assert_ptr_equal(at_map_get(&m, "x\0z", 3), &key);
    assert_null(at_map_get(&m, "x", 1));
    at_map_release(&m);
    assert_int_equal(at_hash_bytes("abc", 3), at_hash_bytes("abc", 3));
    assert_true(at_hash_bytes("abc", 3) != at_hash_bytes("abd", 3));
}

/* at_map_reserve: room without growing, entries kept across it. */
static void test_map_reserve(void **state)
{
    struct at_map m;
    char key[32];
    AT_UNUSED(state);

    at_map_init(&m);
    at_map_put(&m, "a", 1, (void *)1);
    at_map_reserve(&m, 1000);
    size_t cap = m.cap;
    assert_true(cap * 3 >= 1000 * 4);
    for (int i = 0; i < 999; i++) {
        int len = snprintf(key, sizeof(key), "key-%d", i);
        at_map_put(&m, key, (size_t)len, (void *)(intptr_t)(i + 1));
    }
    assert_int_equal(m.cap, cap); /* never grew */
    assert_ptr_equal(at_map_gets(&m, "a"), (void *)1);
    assert_ptr_equal(at_map_gets(&m, "key-998"), (void *)999);
    at_map_reserve(&m, 10); /* enough already: a no-op */
    assert_int_equal(m.cap, cap);
    at_map_release(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_many),
        cmocka_unit_test(test_map_tombstones),
        cmocka_unit_test(test_map_reserve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
