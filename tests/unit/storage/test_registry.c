/* Unit tests of storage/registry.c: ids, find, sessions found again after a
 * restart (and what else uploads/ holds at open), purge of idle sessions. */
#include "common/compat.h"

#include "tests/unit/storage/fixture.h"

static void test_id_valid(void **state)
{
    AT_UNUSED(state);
    assert_true(
        storage_upload_id_valid("0123456789abcdef0123456789abcdef", 32));
    assert_true(
        storage_upload_id_valid("n1-0123456789abcdef0123456789abcdef", 35));
    assert_true(storage_upload_id_valid(
        "abcdefghijklmnop-0123456789abcdef0123456789abcdef", 49));
    assert_false(storage_upload_id_valid("", 0));
    assert_false(storage_upload_id_valid("../x", 4));
    assert_false(
        storage_upload_id_valid("0123456789ABCDEF0123456789abcdef", 32));
    assert_false(
        storage_upload_id_valid("0123456789abcdef0123456789abcde", 31));
    assert_false(
        storage_upload_id_valid("0123456789abcdef0123456789abcdef0", 33));
    assert_false(
        storage_upload_id_valid("-0123456789abcdef0123456789abcdef", 33));
    assert_false(storage_upload_id_valid(
        "abcdefghijklmnopq-0123456789abcdef0123456789abcdef", 50));
    assert_false(
        storage_upload_id_valid("N1-0123456789abcdef0123456789abcdef", 35));
    assert_false(
        storage_upload_id_valid("../0123456789abcdef0123456789abcdef", 35));
    assert_false(
        storage_upload_id_valid("n/-0123456789abcdef0123456789abcdef", 35));
    assert_false(
        storage_upload_id_valid("n1-0123456789abcdef0123456789abcde\0", 35));
    assert_false(storage_upload_id_valid(NULL, 0));
}

static void test_find_invalid(void **state)
{
    struct fx *f = *state;
    struct storage_upload *u = NULL;
    char longid[200];

    fx_open(f, 0, 0, 0);
    memset(longid, 'a', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    assert_int_equal(storage_upload_find(&f->s, "../x", &u), AT_ENOTFOUND);
    assert_int_equal(storage_upload_find(&f->s, "", &u), AT_ENOTFOUND);
    assert_int_equal(storage_upload_find(&f->s, longid, &u), AT_ENOTFOUND);
    assert_int_equal(
        storage_upload_find(&f->s, "0123456789ABCDEF0123456789ABCDEF", &u),
        AT_ENOTFOUND);
    assert_int_equal(
        storage_upload_find(&f->s, "0123456789abcdef0123456789abcdef", &u),
        AT_ENOTFOUND);
    assert_null(u);
}

static void test_restart_rehash(void **state)
{
    struct fx *f = *state;
    struct storage_upload *u = NULL;
    struct at_sha256 h;
    struct at_digest want;
    uint8_t *buf = at_malloc(3 * MIB);
    char id[STORAGE_UPLOAD_ID_MAX + 1];

    fx_open(f, 0, 0, 0);
    u = session_new(&f->s, "a/b", id);
    at_sha256_init(&h);
    fill(buf, 3 * MIB, 1);
    at_sha256_update(&h, buf, 3 * MIB);
    assert_int_equal(storage_upload_write(u, buf, 3 * MIB), 0);
    assert_int_equal(flush_wait(f, u, true), 0);
    storage_upload_unref(u);
    fx_close_store(f);

    /* A new struct, as after a process restart. */
    memset(&f->s, 0xa5, sizeof(f->s));
    fx_open(f, 0, 0, 0);
    u = NULL;
    assert_int_equal(storage_upload_find(&f->s, id, &u), 0);
    assert_true(storage_upload_size(u) == 3 * MIB);
    assert_string_equal(storage_upload_repo(u), "a/b");
    fill(buf, 1 * MIB + 3, 2);
    at_sha256_update(&h, buf, 1 * MIB + 3);
    assert_int_equal(storage_upload_write(u, buf, 1 * MIB + 3), 0);
    assert_true(storage_upload_size(u) == 4 * MIB + 3);
    at_sha256_final(&h, &want);
    commit_check(f, u, &want, 4 * MIB + 3);
    free(buf);
}

/* Names in uploads/ after open: only what a session owns. */
static void test_open_recovery(void **state)
{
    struct fx *f = *state;
    struct storage_upload *u = NULL;
    const char *both = "n1-0123456789abcdef0123456789abcdef";
    const char *info_only = "fedcba9876543210fedcba9876543210";
    const char *data_only = "n1-11111111111111111111111111111111";
    const char *badinfo = "n1-00000000000000000000000000000000";
    const char *old_dir = "n1-22222222222222222222222222222222";
    char path[512];
    int fd;

    fx_open(f, 0, 0, 0);
    fx_close_store(f);
    /* data + info: resumed at the data size */
    put_file("lib/x\n1700000000000\n", 20, "%s/uploads/%s.info", f->dir, both);
    put_file("hello", 5, "%s/uploads/%s.data", f->dir, both);
    /* info alone: an empty session */
    put_file("r\n1\n", 4, "%s/uploads/%s.info", f->dir, info_only);
    /* data alone (never acknowledged): removed */
    put_file("abc", 3, "%s/uploads/%s.data", f->dir, data_only);
    /* corrupt info: both files removed */
    put_file("repo\nnot-a-number\n", 18, "%s/uploads/%s.info", f->dir, badinfo);
    put_file("zz", 2, "%s/uploads/%s.data", f->dir, badinfo);
    /* the old per-directory layout, foreign names, a directory named like a
     * data file: removed */
    snprintf(path, sizeof(path), "%s/uploads/%s", f->dir, old_dir);
    assert_int_equal(mkdir(path, 0700), 0);
    put_file("r\n1\n", 4, "%s/uploads/%s/info", f->dir, old_dir);
    put_file("x", 1, "%s/uploads/%s/data", f->dir, old_dir);
    snprintf(path, sizeof(path), "%s/uploads/NOT-AN-ID", f->dir);
    assert_int_equal(mkdir(path, 0700), 0);
    put_file("x", 1, "%s/uploads/%s.tmp", f->dir, both);
    put_file("x", 1, "%s/uploads/.data", f->dir);
    snprintf(path, sizeof(path), "%s/uploads/%s.data", f->dir,
             "n1-33333333333333333333333333333333");
    assert_int_equal(mkdir(path, 0700), 0);
    put_file("r\n1\n", 4, "%s/uploads/%s.info", f->dir,
             "n1-33333333333333333333333333333333");
    /* junk in tmp/ */
    snprintf(path, sizeof(path), "%s/tmp/junk", f->dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof(path), "%s/tmp/junk/file", f->dir);
    fd = open(path, O_CREAT | O_WRONLY, 0600);
    close(fd);

    fx_open(f, 0, 0, 0);
    assert_int_equal(storage_upload_find(&f->s, both, &u), 0);
    assert_true(storage_upload_size(u) == 5);
    assert_string_equal(storage_upload_repo(u), "lib/x");
    storage_upload_unref(u);
    assert_int_equal(storage_upload_find(&f->s, info_only, &u), 0);
    assert_true(storage_upload_size(u) == 0);
    assert_string_equal(storage_upload_repo(u), "r");
    storage_upload_unref(u);
    assert_int_equal(storage_upload_find(&f->s, data_only, &u), AT_ENOTFOUND);
    assert_int_equal(storage_upload_find(&f->s, badinfo, &u), AT_ENOTFOUND);
    assert_int_equal(storage_upload_find(&f->s, old_dir, &u), AT_ENOTFOUND);
    assert_int_equal(
        storage_upload_find(&f->s, "n1-33333333333333333333333333333333", &u),
        AT_ENOTFOUND);
    assert_false(path_exists("%s/uploads/%s.data", f->dir, data_only));
    assert_false(path_exists("%s/uploads/%s.data", f->dir, badinfo));
    assert_false(path_exists("%s/uploads/%s.info", f->dir, badinfo));
    assert_false(path_exists("%s/uploads/%s", f->dir, old_dir));
    assert_false(path_exists("%s/uploads/NOT-AN-ID", f->dir));
    assert_false(path_exists("%s/uploads/%s.tmp", f->dir, both));
    assert_false(path_exists("%s/uploads/.data", f->dir));
    assert_false(path_exists("%s/uploads/%s.data", f->dir,
                             "n1-33333333333333333333333333333333"));
    assert_false(path_exists("%s/tmp/junk", f->dir));
    assert_true(path_exists("%s/tmp", f->dir));
    /* exactly the two live sessions' three files are left */
    snprintf(path, sizeof(path), "%s/uploads", f->dir);
    assert_true(count_entries(path) == 3);
}

/* The resumed sessions of test_open_recovery work: commit the one with
 * data, append to and commit the empty one. */
static void test_recovered_commit(void **state)
{
    struct fx *f = *state;
    struct storage_upload *u = NULL;
    const char *both = "n1-0123456789abcdef0123456789abcdef";
    const char *info_only = "fedcba9876543210fedcba9876543210";
    struct at_digest want;
    char path[512];

    fx_open(f, 0, 0, 0);
    fx_close_store(f);
    put_file("lib/x\n1700000000000\n", 20, "%s/uploads/%s.info", f->dir, both);
    put_file("hello", 5, "%s/uploads/%s.data", f->dir, both);
    put_file("r\n1\n", 4, "%s/uploads/%s.info", f->dir, info_only);
    fx_open(f, 0, 0, 0);

    assert_int_equal(storage_upload_find(&f->s, both, &u), 0);
    assert_int_equal(storage_upload_write(u, " world", 6), 0);
    at_digest_of("hello world", 11, &want);
    commit_check(f, u, &want, 11);

    assert_int_equal(storage_upload_find(&f->s, info_only, &u), 0);
    assert_int_equal(storage_upload_write(u, "abc", 3), 0);
    at_digest_of("abc", 3, &want);
    commit_check(f, u, &want, 3);
    snprintf(path, sizeof(path), "%s/uploads", f->dir);
    assert_true(count_entries(path) == 0);
}

/* A session that was only POSTed (or written but never sync-flushed) is gone
 * after a restart; a sync-flushed one survives with its flushed bytes. */
static void test_restart_unacked(void **state)
{
    struct fx *f = *state;
    struct storage_upload *u = NULL;
    char posted[STORAGE_UPLOAD_ID_MAX + 1];
    char written[STORAGE_UPLOAD_ID_MAX + 1];
    char acked[STORAGE_UPLOAD_ID_MAX + 1];
    char empty[STORAGE_UPLOAD_ID_MAX + 1];
    char path[512];

    fx_open(f, 0, 0, 0);
    u = session_new(&f->s, "a", posted);
    storage_upload_unref(u);

    u = session_new(&f->s, "a", written);
    assert_int_equal(storage_upload_write(u, "0123456789", 10), 0);
    assert_int_equal(flush_wait(f, u, false), 0);
    storage_upload_unref(u);

    u = session_new(&f->s, "a", acked);
    assert_int_equal(storage_upload_write(u, "0123456789", 10), 0);
    assert_int_equal(flush_wait(f, u, true), 0);
    storage_upload_unref(u);

    u = session_new(&f->s, "a", empty);
    assert_int_equal(flush_wait(f, u, true), 0); /* an empty PATCH */
    assert_false(path_exists("%s/uploads/%s.data", f->dir, empty));
    assert_true(path_exists("%s/uploads/%s.info", f->dir, empty));
    storage_upload_unref(u);

    snprintf(path, sizeof(path), "%s/uploads", f->dir);
    assert_true(count_entries(path) == 4); /* written: data; acked: both */
    fx_close_store(f);

    fx_open(f, 0, 0, 0);
    assert_int_equal(storage_upload_find(&f->s, posted, &u), AT_ENOTFOUND);
    assert_int_equal(storage_upload_find(&f->s, written, &u), AT_ENOTFOUND);
    assert_false(path_exists("%s/uploads/%s.data", f->dir, written));
    assert_int_equal(storage_upload_find(&f->s, acked, &u), 0);
    assert_true(storage_upload_size(u) == 10);
    storage_upload_unref(u);
    assert_int_equal(storage_upload_find(&f->s, empty, &u), 0);
    assert_true(storage_upload_size(u) == 0);
    storage_upload_unref(u);
    assert_true(count_entries(path) == 3);
}

static void test_purge_old_mtime(void **state)
{
    struct fx *f = *state;
    struct storage_upload *u = NULL;
    char id_old[STORAGE_UPLOAD_ID_MAX + 1];
    char id_new[STORAGE_UPLOAD_ID_MAX + 1];
    char path[512];
    struct timeval tv[2];

    fx_open(f, 0, 0, 0);
    u = session_new(&f->s, "old", id_old);
    assert_int_equal(storage_upload_write(u, "abc", 3), 0);
    assert_int_equal(flush_wait(f, u, true), 0);
    storage_upload_unref(u);
    u = session_new(&f->s, "new", id_new);
    assert_int_equal(flush_wait(f, u, true), 0); /* info only */
    storage_upload_unref(u);
    fx_close_store(f);

    snprintf(path, sizeof(path), "%s/uploads/%s.data", f->dir, id_old);
    gettimeofday(&tv[0], NULL);
    tv[0].tv_sec -= 3600;
    tv[1] = tv[0];
    assert_int_equal(utimes(path, tv), 0);

    fx_open(f, 0, 600000, 0); /* ttl 10 min */
    assert_int_equal(storage_upload_find(&f->s, id_old, &u), AT_ENOTFOUND);
    assert_int_equal(storage_upload_find(&f->s, id_new, &u), 0);
    storage_upload_unref(u);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* purge timer is unref'd */
    assert_false(path_exists("%s/uploads/%s.data", f->dir, id_old));
    assert_false(path_exists("%s/uploads/%s.info", f->dir, id_old));
    assert_true(path_exists("%s/uploads/%s.info", f->dir, id_new));
}

static void on_timer(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

static void test_purge_timer(void **state)
{
    struct fx *f = *state;
    struct storage_upload *u = NULL;
    struct storage_upload *locked = NULL;
    char id[STORAGE_UPLOAD_ID_MAX + 1];
    char id_locked[STORAGE_UPLOAD_ID_MAX + 1];
    uv_timer_t t;
    bool fired = false;

    fx_open(f, 0, 50, 0);
    u = session_new(&f->s, "p", id);
    assert_int_equal(storage_upload_write(u, "abc", 3), 0);
    assert_int_equal(flush_wait(f, u, true), 0);
    storage_upload_unref(u);
    locked = session_new(&f->s, "p", id_locked);
    assert_true(storage_upload_try_lock(locked));
    assert_false(storage_upload_try_lock(locked));

    uv_timer_init(&f->loop, &t);
    t.data = &fired;
    uv_timer_start(&t, on_timer, 300, 0);
    run_until(f, &fired);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(storage_upload_find(&f->s, id, &u), AT_ENOTFOUND);
    assert_false(path_exists("%s/uploads/%s.data", f->dir, id));
    assert_false(path_exists("%s/uploads/%s.info", f->dir, id));
    assert_int_equal(storage_upload_find(&f->s, id_locked, &u), 0);
    storage_upload_unref(u);
    storage_upload_unlock(locked);
    storage_upload_unref(locked);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_valid),
        cmocka_unit_test_setup_teardown(test_find_invalid, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_restart_rehash, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_open_recovery, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_recovered_commit, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_restart_unacked, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_purge_old_mtime, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_purge_timer, fx_setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
