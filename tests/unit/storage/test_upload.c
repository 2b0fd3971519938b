/* Unit tests of storage/upload.c: writes in pieces and commit, the empty
 * blob, reservations, cancel. */
#include "common/compat.h"

#include "tests/unit/storage/fixture.h"

static void test_commit_pieces(void **state)
{
    struct fx *f = *state;
    struct storage_upload *u = NULL;
    struct storage_upload *u2 = NULL;
    struct at_sha256 h;
    struct at_digest want;
    struct at_digest wrong;
    struct res r;
    size_t total = 0;
    uint8_t *buf = at_malloc(5 * MIB);
    char id[STORAGE_UPLOAD_ID_MAX + 1];

    fx_open(f, 0, 0, 0);
    u = session_new(&f->s, "lib/alpine", id);
    assert_true(strncmp(id, "n1-", 3) == 0);
    assert_true(storage_upload_id_valid(id, strlen(id)));
    assert_string_equal(storage_upload_repo(u), "lib/alpine");
    /* Creating a session creates no file. */
    assert_false(path_exists("%s/uploads/%s.data", f->dir, id));
    assert_false(path_exists("%s/uploads/%s.info", f->dir, id));

    at_sha256_init(&h);
    for (int i = 0; i < 300; i++) {
        size_t n = (size_t)(i * 37 % 1000) + 1;
        if (i % 50 == 7)
            n = 3 * MIB + (size_t)i; /* a few large pieces */
        fill(buf, n, (uint64_t)i);
        at_sha256_update(&h, buf, n);
        assert_int_equal(storage_upload_write(u, buf, n), 0);
        total += n;
        assert_true(storage_upload_size(u) == total);
        if (i % 40 == 0)
            uv_run(&f->loop, UV_RUN_NOWAIT);
        if (i == 100) {
            /* The data file is created by the first write, the info file
             * by the first sync flush. */
            assert_int_equal(flush_wait(f, u, false), 0);
            assert_true(path_exists("%s/uploads/%s.data", f->dir, id));
            assert_false(path_exists("%s/uploads/%s.info", f->dir, id));
            assert_int_equal(flush_wait(f, u, true), 0);
            assert_true(path_exists("%s/uploads/%s.info", f->dir, id));
        }
    }
    at_sha256_final(&h, &want);

    /* Wrong digest: nothing visible, session still usable. */
    at_digest_of("x", 1, &wrong);
    assert_int_equal(commit_wait(f, u, &wrong, &r), AT_EDIGEST);
    assert_int_equal(storage_blob_stat(&f->s, &wrong, &(uint64_t){ 0 }),
                     AT_ENOTFOUND);
    assert_int_equal(storage_blob_stat(&f->s, &want, &(uint64_t){ 0 }),
                     AT_ENOTFOUND);
    assert_int_equal(storage_upload_find(&f->s, id, &u2), 0);
    assert_ptr_equal(u, u2);
    storage_upload_unref(u2);
    assert_true(storage_upload_size(u) == total);

    /* Right digest (the hash is recomputed from the file). */
    assert_int_equal(commit_wait(f, u, &want, &r), 0);
    assert_true(at_digest_equal(&r.digest, &want));
    assert_true(r.size == total);
    check_blob(f, &want, total);
    assert_int_equal(storage_upload_find(&f->s, id, &u2), AT_ENOTFOUND);
    assert_false(path_exists("%s/uploads/%s.data", f->dir, id));
    assert_false(path_exists("%s/uploads/%s.info", f->dir, id));
    assert_int_equal(storage_upload_write(u, "x", 1), AT_ENOTFOUND);
    storage_upload_cancel(u); /* no-op after commit */
    storage_upload_unref(u);

    /* Blob removal. */
    assert_int_equal(storage_blob_remove(&f->s, &want), 0);
    assert_int_equal(storage_blob_remove(&f->s, &want), AT_ENOTFOUND);
    free(buf);
}

static void test_empty_blob(void **state)
{
    struct fx *f = *state;
    struct storage_upload *u = NULL;
    struct at_digest want;

    fx_open(f, 0, 0, 0);
    at_digest_of("", 0, &want);
    assert_int_equal(storage_upload_create(&f->s, "r", &u), 0);
    commit_check(f, u, &want, 0);
}

/* Bytes placed with storage_upload_reserve and then written (no copy), mixed
 * with copied writes, reservations never used or only partly used, and chains
 * running in between: the blob is exactly the bytes written. */
static void test_reserve(void **state)
{
    struct fx *f = *state;
    uint8_t *buf = at_malloc(5 * MIB);
    struct rnd r = { 0x5eed5eed12345678ull };
    struct storage_upload *u = NULL;
    struct at_sha256 h;
    struct at_digest want;
    struct res res;
    uint64_t seed = 1;
    char *p = NULL;
    size_t n = 0;

    fx_open(f, 0, 0, 4 * MIB);
    at_sha256_init(&h);
    assert_int_equal(storage_upload_create(&f->s, "rsv", &u), 0);
    for (int i = 0; i < 400; i++) {
        uint64_t action = rnd_next(&r) % 8;
        size_t ask = rnd_size(&r);
        size_t k;

        if (ask == 0)
            ask = 1;
        assert_int_equal(storage_upload_reserve(u, ask, &p, &n), 0);
        assert_true(n >= 1 && n <= ask && n <= 1 * MIB);
        /* Placed bytes, a part of them (like a short read) written. */
        k = action == 7 ? n / 2 : n;
        fill((uint8_t *)p, n, seed++);
        if (action == 6) {
            /* Never written: the next reservation may reuse the memory. */
        } else if (k > 0) {
            at_sha256_update(&h, p, k);
            assert_int_equal(storage_upload_write(u, p, k), 0);
        }
        if (action == 5) {
            size_t len = rnd_size(&r);
            fill(buf, len, seed++);
            at_sha256_update(&h, buf, len);
            assert_int_equal(storage_upload_write(u, buf, len), 0);
        }
        wait_drain(f, u);
        if (action <= 1)
            uv_run(&f->loop, UV_RUN_NOWAIT);
        else if (action == 2)
            assert_int_equal(flush_wait(f, u, false), 0);
    }
    at_sha256_final(&h, &want);
    /* A reservation left unused at commit time is dropped with the session. */
    assert_int_equal(storage_upload_reserve(u, 4096, &p, &n), 0);
    assert_int_equal(commit_wait(f, u, &want, &res), 0);
    assert_true(at_digest_equal(&res.digest, &want));
    assert_true(res.size == storage_upload_size(u));
    check_blob(f, &want, res.size);
    assert_int_equal(storage_upload_reserve(u, 4096, &p, &n), AT_ENOTFOUND);
    storage_upload_unref(u);

    /* A canceled session refuses reservations. */
    assert_int_equal(storage_upload_create(&f->s, "rsv", &u), 0);
    assert_int_equal(storage_upload_reserve(u, 10, &p, &n), 0);
    storage_upload_cancel(u);
    assert_int_equal(storage_upload_reserve(u, 10, &p, &n), AT_ENOTFOUND);
    storage_upload_unref(u);
    free(buf);
}

static void test_cancel(void **state)
{
    struct fx *f = *state;
    struct storage_upload *u = NULL;
    struct storage_upload *u2 = NULL;
    uint8_t *buf = at_malloc(2 * MIB);
    char id[STORAGE_UPLOAD_ID_MAX + 1];
    struct res fl = { 0 };
    struct res dr = { 0 };

    fx_open(f, 0, 0, 1 * MIB);
    u = session_new(&f->s, "c", id);
    fill(buf, 2 * MIB, 4);
    assert_int_equal(storage_upload_write(u, buf, 2 * MIB), 0);
    assert_int_equal(storage_upload_write(u, buf, 2 * MIB), 0);
    assert_true(storage_upload_busy(u));
    storage_upload_on_drain(u, on_status, &dr);
    assert_int_equal(storage_upload_flush(u, true, on_status, &fl), 0);
    storage_upload_cancel(u);
    assert_int_equal(storage_upload_find(&f->s, id, &u2), AT_ENOTFOUND);
    storage_upload_cancel(u); /* idempotent */
    assert_int_equal(storage_upload_write(u, "x", 1), AT_ENOTFOUND);
    assert_false(dr.done); /* never synchronously */
    storage_upload_unref(u);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(dr.calls, 1);
    assert_int_equal(dr.status, AT_ECANCELED);
    assert_int_equal(fl.calls, 1);
    assert_int_equal(fl.status, AT_ECANCELED);
    assert_false(path_exists("%s/uploads/%s.data", f->dir, id));
    assert_false(path_exists("%s/uploads/%s.info", f->dir, id));
    free(buf);
}

/* A reader of the data file sees the bytes written so far, and more as they
 * are written; after the commit the file is the blob (same inode). */
static void test_open_data(void **state)
{
    struct fx *f = *state;
    struct storage_upload *u = NULL;
    struct at_digest want;
    struct res r;
    char buf[32];
    int fd = -1;
    int fd2 = -1;

    fx_open(f, 0, 0, 0);
    assert_int_equal(storage_upload_create(&f->s, "od", &u), 0);
    assert_int_equal(storage_upload_open_data(u, &fd), AT_ENOTFOUND);
    assert_int_equal(storage_upload_write(u, "hello", 5), 0);
    assert_int_equal(flush_wait(f, u, false), 0);
    assert_int_equal(storage_upload_open_data(u, &fd), 0);
    assert_int_equal(pread(fd, buf, sizeof(buf), 0), 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(storage_upload_write(u, " world", 6), 0);
    assert_int_equal(flush_wait(f, u, false), 0);
    assert_int_equal(pread(fd, buf, sizeof(buf), 5), 6);
    assert_memory_equal(buf, " world", 6);
    at_digest_of("hello world", 11, &want);
    assert_int_equal(commit_wait(f, u, &want, &r), 0);
    assert_int_equal(storage_upload_open_data(u, &fd2), AT_ENOTFOUND);
    assert_int_equal(storage_blob_open(&f->s, &want, &fd2, &r.size), 0);
    {
        struct stat a, b;
        assert_int_equal(fstat(fd, &a), 0);
        assert_int_equal(fstat(fd2, &b), 0);
        assert_true(a.st_ino == b.st_ino);
    }
    close(fd);
    close(fd2);
    storage_upload_unref(u);

    /* canceled: nothing to open */
    assert_int_equal(storage_upload_create(&f->s, "od", &u), 0);
    assert_int_equal(storage_upload_write(u, "abc", 3), 0);
    assert_int_equal(flush_wait(f, u, false), 0);
    storage_upload_cancel(u);
    assert_int_equal(storage_upload_open_data(u, &fd), AT_ENOTFOUND);
    storage_upload_unref(u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commit_pieces, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_empty_blob, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_reserve, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_cancel, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_open_data, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
