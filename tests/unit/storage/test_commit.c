/* Unit tests of storage/commit.c: a blob already stored is kept, and a
 * mismatch right after a restart is rehashed. */
#include "common/compat.h"

#include "tests/unit/storage/fixture.h"

static void test_existing_blob(void **state)
{
    struct fx *f = *state;
    struct storage_upload *u = NULL;
    struct at_digest want;
    struct res r;
    char hex[AT_DIGEST_HEX_LEN + 1];
    char path[512];
    const char *content = "same content";
    struct stat st1;
    struct stat st2;

    fx_open(f, 0, 0, 0);
    at_digest_of(content, strlen(content), &want);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(storage_upload_create(&f->s, "r", &u), 0);
        assert_int_equal(storage_upload_write(u, content, strlen(content)), 0);
        assert_int_equal(commit_wait(f, u, &want, &r), 0);
        /* The first copy's data is synced before its rename; the second
         * one finds it and is dropped without an fdatasync. */
        if (i == 0)
            assert_true(u->wr_synced == strlen(content));
        else
            assert_true(u->wr_synced == 0);
        storage_upload_unref(u);
        snprintf(path, sizeof(path), "%s/blobs/sha256/%.2s/%s", f->dir,
                 at_digest_hex(&want, hex), hex);
        assert_int_equal(stat(path, i == 0 ? &st1 : &st2), 0);
    }
    assert_true(st1.st_ino == st2.st_ino); /* the first one was kept */
    snprintf(path, sizeof(path), "%s/blobs", f->dir);
    assert_true(count_entries(path) == 1);
    /* The duplicate's data file goes in the pool after the answer. */
    snprintf(path, sizeof(path), "%s/uploads", f->dir);
    for (int i = 0; i < 500 && count_entries(path) != 0; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(10000);
    }
    assert_true(count_entries(path) == 0);
    check_blob(f, &want, strlen(content));
}

/* Mismatch right after a restart, with no new bytes: commit rehashes. */
static void test_restart_mismatch(void **state)
{
    struct fx *f = *state;
    struct storage_upload *u = NULL;
    uint8_t *buf = at_malloc(3 * MIB);
    struct at_digest want;
    struct at_digest wrong;
    struct res r;
    char id[STORAGE_UPLOAD_ID_MAX + 1];

    fx_open(f, 0, 0, 0);
    fill(buf, 3 * MIB, 9);
    at_digest_of(buf, 3 * MIB, &want);
    at_digest_of("nope", 4, &wrong);
    u = session_new(&f->s, "m", id);
    assert_int_equal(storage_upload_write(u, buf, 3 * MIB), 0);
    assert_int_equal(flush_wait(f, u, true), 0);
    storage_upload_unref(u);
    fx_close_store(f);
    fx_open(f, 0, 0, 0);
    assert_int_equal(storage_upload_find(&f->s, id, &u), 0);
    assert_int_equal(commit_wait(f, u, &wrong, &r), AT_EDIGEST);
    assert_int_equal(commit_wait(f, u, &wrong, &r), AT_EDIGEST);
    commit_check(f, u, &want, 3 * MIB);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_existing_blob, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_restart_mismatch, fx_setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
