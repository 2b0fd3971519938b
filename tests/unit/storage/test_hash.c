/* Unit tests of storage/hash.c: the hash watch (match, mismatch, exact
 * size, cancel, a resumed session). */
#include "common/compat.h"

#include "tests/unit/storage/fixture.h"

/* Records the order of the watch and commit callbacks. */
static int order_seq;

struct wres {
    struct res r;
    int seq;
    uint64_t hashed, written; /* white-box, when cb ran */
    bool h_final;
    struct storage_upload *u; /* borrowed */
};

static void on_hashed(void *data, int status)
{
    struct wres *w = data;
    on_status(&w->r, status);
    w->seq = ++order_seq;
    w->hashed = w->u->hashed;
    w->written = w->u->written;
    w->h_final = w->u->h_final;
}

static void on_commit_seq(void *data,
                          int status,
                          const struct at_digest *d,
                          uint64_t size)
{
    struct wres *w = data;
    on_commit(&w->r, status, d, size);
    w->seq = ++order_seq;
}

/* size bytes of the pattern of seed (owned by the caller) and their
 * digest. */
static uint8_t *payload(size_t size, uint64_t seed, struct at_digest *want)
{
    uint8_t *buf = at_malloc(size);
    fill(buf, size, seed);
    at_digest_of(buf, size, want);
    return buf;
}

/* Watch u for size bytes of digest want; w hears of the end. */
static void watch(struct storage_upload *u,
                  size_t size,
                  const struct at_digest *want,
                  struct wres *w)
{
    w->u = u;
    assert_int_equal(storage_upload_hash_watch(u, size, want, on_hashed, w), 0);
}

/* Match: the watch fires once every byte is hashed and written, not before
 * the last byte; the session is capped; a commit requested at once waits
 * for the watch and reuses its digest. */
static void test_watch_match(void **state)
{
    struct fx *f = *state;
    struct storage_upload *u = NULL;
    size_t size = 12 * MIB + 5;
    struct at_digest want;
    uint8_t *buf = payload(size, 11, &want);
    struct wres w = { 0 };
    struct wres c = { 0 };

    fx_open(f, 0, 0, 4 * MIB);
    assert_int_equal(storage_upload_create(&f->s, "w/m", &u), 0);
    assert_int_equal(storage_upload_write(u, buf, 100), 0);
    assert_int_equal(storage_upload_hash_watch(u, 99, &want, on_hashed, &w),
                     AT_EINVAL);
    watch(u, size, &want, &w);
    assert_int_equal(storage_upload_hash_watch(u, size, &want, on_hashed, &w),
                     AT_EBUSY);
    /* all but the last byte, in pieces, fully written and hashed */
    for (size_t off = 100; off < size - 1;) {
        size_t n = AT_MIN((size_t)700000, size - 1 - off);
        assert_int_equal(storage_upload_write(u, buf + off, n), 0);
        off += n;
        if (storage_upload_busy(u)) {
            struct res dr = { 0 };
            storage_upload_on_drain(u, on_status, &dr);
            run_until(f, &dr.done);
        }
    }
    assert_int_equal(flush_wait(f, u, false), 0);
    while (uv_run(&f->loop, UV_RUN_NOWAIT) != 0 && !w.r.done)
        ;
    assert_false(w.r.done);
    assert_int_equal(storage_upload_write(u, buf, 2), AT_ETOOBIG);
    assert_int_equal(storage_upload_write(u, buf + size - 1, 1), 0);
    assert_int_equal(storage_upload_write(u, buf, 1), AT_ETOOBIG);
    assert_true(storage_upload_size(u) == size);
    order_seq = 0;
    assert_int_equal(storage_upload_commit(u, &want, on_commit_seq, &c), 0);
    assert_false(w.r.done);
    run_until(f, &c.r.done);
    assert_int_equal(w.r.calls, 1);
    assert_int_equal(w.r.status, 0);
    assert_true(w.hashed == size && w.written == size && w.h_final);
    assert_int_equal(w.seq, 1); /* before the commit */
    assert_int_equal(c.seq, 2);
    assert_int_equal(c.r.status, 0);
    assert_true(at_digest_equal(&c.r.digest, &want));
    assert_true(c.r.size == size);
    storage_upload_unref(u);
    check_blob(f, &want, size);
    free(buf);
}

/* Mismatch: AT_EDIGEST, written and hashed; a commit with the same wrong
 * digest fails and keeps the session; one with the right one rehashes the
 * file and succeeds. */
static void test_watch_mismatch(void **state)
{
    struct fx *f = *state;
    struct storage_upload *u = NULL;
    size_t size = 9 * MIB + 77;
    struct at_digest want, bad;
    uint8_t *buf = payload(size, 12, &want);
    struct wres w = { 0 };
    struct res r;

    fx_open(f, 0, 0, 0);
    bad = want;
    bad.bytes[5] ^= 1;
    assert_int_equal(storage_upload_create(&f->s, "w/x", &u), 0);
    watch(u, size, &bad, &w);
    assert_int_equal(storage_upload_write(u, buf, size), 0);
    run_until(f, &w.r.done);
    assert_int_equal(w.r.status, AT_EDIGEST);
    assert_true(w.hashed == size && w.written == size);
    assert_int_equal(commit_wait(f, u, &bad, &r), AT_EDIGEST);
    commit_check(f, u, &want, size);
    assert_int_equal(w.r.calls, 1);
    free(buf);
}

/* Size reached exactly, including by arming a watch on bytes already all
 * accepted, and the empty blob. */
static void test_watch_exact(void **state)
{
    struct fx *f = *state;
    struct storage_upload *u = NULL;
    size_t size = 3 * MIB;
    struct at_digest want;
    uint8_t *buf = payload(size, 13, &want);
    struct wres w = { 0 };

    fx_open(f, 0, 0, 0);
    assert_int_equal(storage_upload_create(&f->s, "w/e", &u), 0);
    assert_int_equal(storage_upload_write(u, buf, size), 0);
    assert_int_equal(flush_wait(f, u, false), 0);
    watch(u, size, &want, &w);
    assert_false(w.r.done); /* never from inside the call */
    run_until(f, &w.r.done);
    assert_int_equal(w.r.status, 0);
    commit_check(f, u, &want, size);

    /* the empty blob */
    memset(&w, 0, sizeof(w));
    at_digest_of("", 0, &want);
    assert_int_equal(storage_upload_create(&f->s, "w/e", &u), 0);
    watch(u, 0, &want, &w);
    assert_int_equal(storage_upload_write(u, "x", 1), AT_ETOOBIG);
    run_until(f, &w.r.done);
    assert_int_equal(w.r.status, 0);
    commit_check(f, u, &want, 0);
    free(buf);
}

/* Cancel while watching: AT_ECANCELED once, no file left; a commit short of
 * the watched size: AT_ECANCELED after the commit. */
static void test_watch_cancel(void **state)
{
    struct fx *f = *state;
    struct storage_upload *u = NULL;
    size_t size = 10 * MIB;
    struct at_digest want;
    uint8_t *buf = payload(size, 14, &want);
    struct wres w = { 0 };
    struct res r;
    char id[STORAGE_UPLOAD_ID_MAX + 1];

    fx_open(f, 0, 0, 0);
    u = session_new(&f->s, "w/c", id);
    watch(u, size, &want, &w);
    assert_int_equal(storage_upload_write(u, buf, size / 2), 0);
    assert_int_equal(flush_wait(f, u, false), 0);
    assert_int_equal(storage_upload_write(u, buf + size / 2, size / 2), 0);
    storage_upload_cancel(u);
    assert_false(w.r.done);
    storage_upload_unref(u);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(w.r.calls, 1);
    assert_int_equal(w.r.status, AT_ECANCELED);
    assert_false(path_exists("%s/uploads/%s.data", f->dir, id));

    /* committed with fewer bytes than watched */
    memset(&w, 0, sizeof(w));
    assert_int_equal(storage_upload_create(&f->s, "w/c", &u), 0);
    watch(u, size, &want, &w);
    assert_int_equal(storage_upload_write(u, buf, MIB), 0);
    at_digest_of(buf, MIB, &want);
    assert_int_equal(commit_wait(f, u, &want, &r), 0);
    run_until(f, &w.r.done);
    assert_int_equal(w.r.status, AT_ECANCELED);
    storage_upload_unref(u);
    check_blob(f, &want, MIB);
    free(buf);
}

/* A session resumed after a restart: the watch rehashes the data file (no
 * chunk to hash) and the commit reuses that digest. */
static void test_watch_resumed(void **state)
{
    struct fx *f = *state;
    struct storage_upload *u = NULL;
    size_t size = 5 * MIB + 1;
    struct at_digest want;
    uint8_t *buf = payload(size, 15, &want);
    struct wres w = { 0 };
    char id[STORAGE_UPLOAD_ID_MAX + 1];

    fx_open(f, 0, 0, 0);
    u = session_new(&f->s, "w/r", id);
    assert_int_equal(storage_upload_write(u, buf, size), 0);
    assert_int_equal(flush_wait(f, u, true), 0);
    storage_upload_unref(u);
    fx_close_store(f);

    memset(&f->s, 0xa5, sizeof(f->s));
    fx_open(f, 0, 0, 0);
    assert_int_equal(storage_upload_find(&f->s, id, &u), 0);
    watch(u, size, &want, &w);
    run_until(f, &w.r.done);
    assert_int_equal(w.r.status, 0);
    assert_true(w.hashed == size && w.h_final);
    commit_check(f, u, &want, size);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_watch_match, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_watch_mismatch, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_watch_exact, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_watch_cancel, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_watch_resumed, fx_setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
