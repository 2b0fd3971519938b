/* Unit tests of storage/write.c: a write error is sticky; a small blob is a
 * single inode from its data file to blobs/. */
#include "common/compat.h"

#include "tests/unit/storage/fixture.h"

/* White-box: the data fd is swapped for /dev/full. */
static void test_write_error(void **state)
{
    struct fx *f = *state;
    struct storage_upload *u = NULL;
    struct at_digest d;
    struct res r = { 0 };
    int full = open("/dev/full", O_RDWR | O_CLOEXEC);
    char id[STORAGE_UPLOAD_ID_MAX + 1];

    if (full < 0)
        skip();
    fx_open(f, 0, 0, 0);
    u = session_new(&f->s, "e", id);
    assert_int_equal(u->fd, -1); /* created by the first write */
    assert_int_equal(storage_upload_write(u, "a", 1), 0);
    assert_int_equal(flush_wait(f, u, false), 0);
    assert_true(u->fd >= 0);
    assert_true(dup2(full, u->fd) >= 0);
    close(full);
    assert_int_equal(storage_upload_write(u, "hello", 5), 0);
    assert_int_equal(flush_wait(f, u, false), AT_ENOSPC);
    assert_int_equal(storage_upload_write(u, "x", 1), AT_ENOSPC);
    assert_int_equal(storage_upload_flush(u, true, on_status, &r), AT_ENOSPC);
    at_digest_of("hello", 5, &d);
    assert_int_equal(storage_upload_commit(u, &d, on_commit, &r), AT_ENOSPC);
    assert_false(r.done);
    assert_non_null(strstr(storage_errmsg(&f->s), "No space"));
    storage_upload_cancel(u);
    storage_upload_unref(u);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_false(path_exists("%s/uploads/%s.data", f->dir, id));
}

/* POST + PUT of a small blob: the only file ever created in uploads/ is the
 * data file, and it is the blob (renamed, same inode). */
static void test_small_blob_one_inode(void **state)
{
    struct fx *f = *state;
    struct storage_upload *u = NULL;
    struct at_digest want;
    struct res r;
    uint8_t buf[4096];
    char id[STORAGE_UPLOAD_ID_MAX + 1];
    char hex[AT_DIGEST_HEX_LEN + 1];
    char path[512];
    char uploads[512];
    struct stat st_data;
    struct stat st_blob;

    fx_open(f, 0, 0, 0);
    snprintf(uploads, sizeof(uploads), "%s/uploads", f->dir);
    for (int i = 0; i < 3; i++) {
        fill(buf, sizeof(buf), 100 + (uint64_t)i);
        at_digest_of(buf, sizeof(buf), &want);
        u = session_new(&f->s, "small", id);
        assert_true(count_entries(uploads) == 0);
        assert_int_equal(storage_upload_write(u, buf, sizeof(buf)), 0);
        if (i == 0) {
            /* Look at the data file between the write and the commit. */
            assert_int_equal(flush_wait(f, u, false), 0);
            assert_true(count_entries(uploads) == 1);
            snprintf(path, sizeof(path), "%s/%s.data", uploads, id);
            assert_int_equal(stat(path, &st_data), 0);
        }
        assert_int_equal(commit_wait(f, u, &want, &r), 0);
        storage_upload_unref(u);
        assert_true(count_entries(uploads) == 0);
        check_blob(f, &want, sizeof(buf));
        snprintf(path, sizeof(path), "%s/blobs/sha256/%.2s/%s", f->dir,
                 at_digest_hex(&want, hex), hex);
        assert_int_equal(stat(path, &st_blob), 0);
        if (i == 0)
            assert_true(st_blob.st_ino == st_data.st_ino);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_error, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_small_blob_one_inode, fx_setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
