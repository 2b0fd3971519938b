/* Unit tests of storage/store.c: opening (bad config, the free-space
 * reserve) and closing with work in flight. */
#include "common/compat.h"

#include "tests/unit/storage/fixture.h"

static void test_bad_config(void **state)
{
    struct fx *f = *state;
    struct storage st;
    struct storage_config cfg = { .dir = f->dir, .node_tag = "Bad/Tag" };
    struct storage_upload *u = NULL;

    assert_int_equal(storage_open(&st, &f->loop, &cfg), AT_EINVAL);
    fx_open(f, 0, 0, 0);
    assert_int_equal(storage_upload_create(&f->s, "", &u), AT_EINVAL);
    assert_int_equal(storage_upload_create(&f->s, "a\nb", &u), AT_EINVAL);
}

static void test_space_reserve(void **state)
{
    struct fx *f = *state;
    struct storage_upload *u = NULL;

    fx_open(f, (uint64_t)1 << 62, 0, 0);
    assert_false(storage_space_ok(&f->s));
    assert_int_equal(storage_upload_create(&f->s, "r", &u), AT_ENOSPC);
    assert_null(u);
    fx_close_store(f);
    fx_open(f, 1, 0, 0);
    assert_true(storage_space_ok(&f->s));
}

/* Closing with a write in flight, a pending sync flush and a drain: the
 * struct is freed at once (as node/server.c does), the loop finishes with no
 * handle left, and the (acknowledged) session survives with its bytes. */
static void test_close_inflight(void **state)
{
    struct fx *f = *state;
    struct storage *hs = at_malloc(sizeof(*hs));
    struct storage_config cfg = { .dir = f->dir };
    struct storage_upload *u = NULL;
    uint8_t *buf = at_malloc(16 * MIB);
    char id[STORAGE_UPLOAD_ID_MAX + 1];
    struct res r = { 0 };
    struct res dr = { 0 };

    assert_int_equal(storage_open(hs, &f->loop, &cfg), 0);
    u = session_new(hs, "x", id);
    fill(buf, 16 * MIB, 3);
    assert_int_equal(storage_upload_write(u, buf, 16 * MIB), 0);
    assert_int_equal(storage_upload_flush(u, true, on_status, &r), 0);
    storage_upload_on_drain(u, on_status, &dr);
    storage_close(hs);
    assert_true(storage_closed(hs));
    free(hs);
    assert_int_equal(storage_upload_write(u, buf, 1), AT_ESHUTDOWN);
    assert_int_equal(storage_upload_flush(u, true, on_status, &r),
                     AT_ESHUTDOWN);
    storage_upload_unref(u);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(dr.calls, 1);

    fx_open(f, 0, 0, 0);
    assert_int_equal(storage_upload_find(&f->s, id, &u), 0);
    assert_true(storage_upload_size(u) == 16 * MIB);
    storage_upload_cancel(u);
    storage_upload_unref(u);
    free(buf);
}

/* A tag set after open prefixes the sessions created from then on. */
static void test_node_tag_set(void **state)
{
    struct fx *f = *state;
    struct storage_upload *a = NULL;
    struct storage_upload *b = NULL;
    struct storage_upload *c = NULL;

    fx_open(f, 0, 0, 0);
    assert_int_equal(storage_upload_create(&f->s, "r", &a), 0);
    assert_true(strncmp(storage_upload_id(a), "n1-", 3) == 0);
    assert_int_equal(storage_node_tag_set(&f->s, "00000000000000ab"), 0);
    assert_int_equal(storage_upload_create(&f->s, "r", &b), 0);
    assert_true(strncmp(storage_upload_id(b), "00000000000000ab-", 17) == 0);
    assert_true(strncmp(storage_upload_id(a), "n1-", 3) == 0);
    assert_int_equal(storage_node_tag_set(&f->s, "Bad/Tag"), AT_EINVAL);
    assert_non_null(strstr(storage_errmsg(&f->s), "Bad/Tag"));
    assert_int_equal(storage_node_tag_set(&f->s, "01234567890abcdef"),
                     AT_EINVAL); /* 17 characters */
    assert_int_equal(storage_upload_create(&f->s, "r", &c), 0);
    assert_true(strncmp(storage_upload_id(c), "00000000000000ab-", 17) == 0);
    storage_upload_unref(c);
    assert_int_equal(storage_node_tag_set(&f->s, NULL), 0);
    assert_int_equal(storage_upload_create(&f->s, "r", &c), 0);
    assert_int_equal(strlen(storage_upload_id(c)), 32);
    storage_upload_unref(a);
    storage_upload_unref(b);
    storage_upload_unref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bad_config, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_space_reserve, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_close_inflight, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_node_tag_set, fx_setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
