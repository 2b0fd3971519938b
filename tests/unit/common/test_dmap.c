/* Unit tests of common/dmap.c: the digest-keyed table of records. */
#include "common/compat.h"

#include <setjmp.h>

#include <cmocka.h>

#include "common/common.h"

struct rec {
    int value;
    struct at_digest d; /* not at offset 0: key_off is honoured */
};

static struct rec *recs_new(int n)
{
    struct rec *v = at_calloc((size_t)n, sizeof(*v));
    char s[32];

    for (int i = 0; i < n; i++) {
        int len = snprintf(s, sizeof(s), "rec-%d", i);
        at_digest_of(s, (size_t)len, &v[i].d);
        v[i].value = i;
    }
    return v;
}

/* Many records in, found by digest, half out, the rest still there; a
 * put of a record with a digest already in replaces it. */
static void test_dmap_many(void **state)
{
    const int n = 100000;
    struct rec *v = recs_new(n);
    struct rec twin;
    struct at_dmap m;
    size_t count = 0;
    void *r;
    AT_UNUSED(state);

    at_dmap_init(&m, offsetof(struct rec, d));
    assert_null(at_dmap_get(&m, &v[0].d));
    assert_null(at_dmap_del(&m, &v[0].d));
    for (int i = 0; i < n; i++)
        assert_null(at_dmap_put(&m, &v[i]));
    assert_int_equal(m.len, n);
    assert_true(m.used * 4 <= m.cap * 3);
    for (int i = 0; i < n; i++)
        assert_ptr_equal(at_dmap_get(&m, &v[i].d), &v[i]);
    for (int i = 0; i < n; i += 2)
        assert_ptr_equal(at_dmap_del(&m, &v[i].d), &v[i]);
    assert_int_equal(m.len, n / 2);
    for (int i = 0; i < n; i++)
        assert_ptr_equal(at_dmap_get(&m, &v[i].d), i % 2 ? &v[i] : NULL);
    twin = v[1];
    assert_ptr_equal(at_dmap_put(&m, &twin), &v[1]);
    assert_ptr_equal(at_dmap_get(&m, &v[1].d), &twin);
    assert_int_equal(m.len, n / 2);
    for (size_t i = 0; at_dmap_next(&m, &i, &r);)
        count++;
    assert_int_equal(count, n / 2);
    assert_true(at_dmap_bytes(&m) >= m.len * sizeof(void *));
    at_dmap_release(&m);
    assert_int_equal(m.len, 0);
    assert_null(at_dmap_get(&m, &v[1].d));
    at_free(v);
}

/* Deleting the current record while iterating visits every other one
 * once; tombstones left by churn are reclaimed (the table does not grow
 * without bound when live entries stay few). */
static void test_dmap_delete_while_iterating(void **state)
{
    const int n = 5000;
    struct rec *v = recs_new(n);
    struct at_dmap m;
    size_t seen = 0, cap;
    void *r;
    AT_UNUSED(state);

    at_dmap_init(&m, offsetof(struct rec, d));
    for (int i = 0; i < n; i++)
        at_dmap_put(&m, &v[i]);
    for (size_t i = 0; at_dmap_next(&m, &i, &r);) {
        seen++;
        assert_ptr_equal(at_dmap_del(&m, &((struct rec *)r)->d), r);
    }
    assert_int_equal(seen, n);
    assert_int_equal(m.len, 0);
    cap = m.cap;
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 100; i++)
            assert_null(at_dmap_put(&m, &v[(round * 100 + i) % n]));
        for (int i = 0; i < 100; i++)
            assert_non_null(at_dmap_del(&m, &v[(round * 100 + i) % n].d));
    }
    assert_true(m.cap <= cap);
    at_dmap_release(&m);
    at_free(v);
}

/* A table filled in another table's slot order (a snapshot restore):
 * unreserved, linear probing turns quadratic (while the table is half the
 * source's size, the records sweep its slots twice over, and where the
 * source was over half full the second sweep lands on slots already over
 * half taken: runs grow with each insert); reserved, an insert steps over
 * about one slot. n fills the source to 0.69 of its 2^19 slots. */
static void test_dmap_fill_in_hash_order(void **state)
{
    const int n = 360000;
    struct rec *v = recs_new(n);
    struct at_dmap src, slow, fast;
    void *r;
    AT_UNUSED(state);

    at_dmap_init(&src, offsetof(struct rec, d));
    at_dmap_init(&slow, offsetof(struct rec, d));
    at_dmap_init(&fast, offsetof(struct rec, d));
    for (int i = 0; i < n; i++)
        at_dmap_put(&src, &v[i]);
    at_dmap_reserve(&fast, src.len);
    size_t cap = fast.cap;
    at_dmap_reserve(&fast, src.len); /* enough already: a no-op */
    assert_int_equal(fast.cap, cap);
    for (size_t i = 0; at_dmap_next(&src, &i, &r);) {
        at_dmap_put(&slow, r);
        at_dmap_put(&fast, r);
    }
    assert_int_equal(fast.cap, cap); /* never grew */
    assert_int_equal(fast.cap, slow.cap);
    assert_true(fast.probes < (size_t)n * 2);
    assert_true(slow.probes > fast.probes * 20);
    for (int i = 0; i < n; i++)
        assert_ptr_equal(at_dmap_get(&fast, &v[i].d), &v[i]);
    /* reserve of a table in use keeps its records */
    at_dmap_reserve(&slow, (size_t)n * 3);
    assert_true(slow.cap >= (size_t)n * 4);
    for (int i = 0; i < n; i++)
        assert_ptr_equal(at_dmap_get(&slow, &v[i].d), &v[i]);
    at_dmap_release(&src);
    at_dmap_release(&slow);
    at_dmap_release(&fast);
    at_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dmap_many),
        cmocka_unit_test(test_dmap_fill_in_hash_order),
        cmocka_unit_test(test_dmap_delete_while_iterating),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
