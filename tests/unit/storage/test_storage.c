/* Unit tests of the blob store: uploads, commit, backpressure, restart,
 * recovery of the flat layout, write/hash chains, purge. */
#include "common/compat.h"

#include <setjmp.h>

#include <cmocka.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "storage/internal.h"

#define MIB ((size_t)1 << 20)

struct fx {
    uv_loop_t loop;
    char dir[64];
    struct storage s;
    bool open;
};

static int fx_setup(void **state)
{
    struct fx *f = at_calloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/atoll-storage-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    if (uv_loop_init(&f->loop) != 0)
        return -1;
    *state = f;
    return 0;
}

/* Run the loop once more so every work item and close callback finishes. */
static void fx_close_store(struct fx *f)
{
    if (!f->open)
        return;
    storage_close(&f->s);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(storage_closed(&f->s));
    f->open = false;
}

static int fx_teardown(void **state)
{
    struct fx *f = *state;

    fx_close_store(f);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    assert_int_equal(storage__rm_tree(f->dir), 0);
    free(f);
    return 0;
}

static void fx_open(struct fx *f, uint64_t reserve, uint64_t ttl, size_t hw)
{
    struct storage_config cfg = {
        .dir = f->dir,
        .node_tag = "n1",
        .reserve_bytes = reserve,
        .upload_ttl_ms = ttl,
        .write_high_water = hw,
    };
    int rv = storage_open(&f->s, &f->loop, &cfg);
    if (rv != 0)
        fail_msg("storage_open: %s", storage_errmsg(&f->s));
    f->open = true;
}

/* Run the loop until *flag is set; fail if the loop runs dry first. */
static void run_until(struct fx *f, const bool *flag)
{
    while (!*flag) {
        if (uv_run(&f->loop, UV_RUN_ONCE) == 0 && !*flag)
            fail_msg("loop ran dry");
    }
}

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)x;
    }
}

static bool path_exists(const char *fmt, ...) AT_PRINTF(1, 2);
static bool path_exists(const char *fmt, ...)
{
    char path[512];
    struct stat st;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    return lstat(path, &st) == 0;
}

/* ---- callbacks ---- */

struct res {
    bool done;
    int status;
    int calls;
    struct at_digest digest;
    uint64_t size;
};

static void on_status(void *data, int status)
{
    struct res *r = data;
    r->done = true;
    r->status = status;
    r->calls++;
}

static void on_commit(void *data,
                      int status,
                      const struct at_digest *d,
                      uint64_t size)
{
    struct res *r = data;
    r->done = true;
    r->status = status;
    r->calls++;
    if (d != NULL)
        r->digest = *d;
    r->size = size;
}

static int flush_wait(struct fx *f, struct storage_upload *u, bool sync)
{
    struct res r = { 0 };
    int rv = storage_upload_flush(u, sync, on_status, &r);
    if (rv != 0)
        return rv;
    run_until(f, &r.done);
    assert_int_equal(r.calls, 1);
    return r.status;
}

static int commit_wait(struct fx *f,
                       struct storage_upload *u,
                       const struct at_digest *want,
                       struct res *r)
{
    int rv;

    memset(r, 0, sizeof(*r));
    rv = storage_upload_commit(u, want, on_commit, r);
    if (rv != 0)
        return rv;
    run_until(f, &r->done);
    assert_int_equal(r->calls, 1);
    return r->status;
}

/* Read a whole blob and check its size and sha256. */
static void check_blob(struct fx *f, const struct at_digest *d, uint64_t size)
{
    struct at_sha256 h;
    struct at_digest got;
    uint64_t sz = 0;
    char buf[65536];
    uint64_t total = 0;
    int fd = -1;
    ssize_t k;

    assert_int_equal(storage_blob_stat(&f->s, d, &sz), 0);
    assert_true(sz == size);
    assert_int_equal(storage_blob_open(&f->s, d, &fd, &sz), 0);
    assert_true(sz == size);
    at_sha256_init(&h);
    while ((k = read(fd, buf, sizeof(buf))) > 0) {
        at_sha256_update(&h, buf, (size_t)k);
        total += (uint64_t)k;
    }
    close(fd);
    at_sha256_final(&h, &got);
    assert_true(total == size);
    assert_true(at_digest_equal(&got, d));
}

static size_t count_entries(const char *path)
{
    char cmd[600];
    FILE *p;
    size_t n = 0;
    char line[512];

    snprintf(cmd, sizeof(cmd), "find '%s' -type f", path);
    p = popen(cmd, "r");
    assert_non_null(p);
    while (fgets(line, sizeof(line), p) != NULL)
        n++;
    pclose(p);
    return n;
}

/* ---- tests ---- */

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
    assert_int_equal(storage_upload_create(&f->s, "lib/alpine", &u), 0);
    snprintf(id, sizeof(id), "%s", storage_upload_id(u));
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
    struct res r;

    fx_open(f, 0, 0, 0);
    at_digest_of("", 0, &want);
    assert_int_equal(storage_upload_create(&f->s, "r", &u), 0);
    assert_int_equal(commit_wait(f, u, &want, &r), 0);
    storage_upload_unref(u);
    check_blob(f, &want, 0);
}

/* ---- backpressure ---- */

struct bp {
    struct fx *f;
    struct storage_upload *u;
    struct at_sha256 h;
    uint8_t piece[65536];
    size_t total;
    size_t sent;
    size_t peak;
    int drains;
    bool done;
};

static void bp_pump(struct bp *b);

static void bp_on_drain(void *data, int status)
{
    struct bp *b = data;
    assert_int_equal(status, 0);
    assert_true(storage_upload_queued(b->u) <= b->f->s.write_high_water / 2);
    b->drains++;
    bp_pump(b);
}

static void bp_pump(struct bp *b)
{
    while (b->sent < b->total) {
        fill(b->piece, sizeof(b->piece), b->sent);
        at_sha256_update(&b->h, b->piece, sizeof(b->piece));
        assert_int_equal(storage_upload_write(b->u, b->piece, sizeof(b->piece)),
                         0);
        b->sent += sizeof(b->piece);
        b->peak = AT_MAX(b->peak, storage_upload_queued(b->u));
        if (storage_upload_busy(b->u)) {
            storage_upload_on_drain(b->u, bp_on_drain, b);
            return;
        }
    }
    b->done = true;
}

static void test_backpressure(void **state)
{
    struct fx *f = *state;
    struct bp *b = at_calloc(1, sizeof(*b));
    struct at_digest want;
    struct res r;

    fx_open(f, 0, 0, 0);
    assert_true(f->s.write_high_water == 16 * MIB);
    b->f = f;
    b->total = 64 * MIB;
    at_sha256_init(&b->h);
    assert_int_equal(storage_upload_create(&f->s, "big", &b->u), 0);
    bp_pump(b);
    run_until(f, &b->done);
    at_sha256_final(&b->h, &want);
    assert_true(b->drains > 0);
    assert_true(b->peak > f->s.write_high_water);
    assert_true(b->peak <= f->s.write_high_water + sizeof(b->piece));
    assert_int_equal(commit_wait(f, b->u, &want, &r), 0);
    assert_true(r.size == 64 * MIB);
    check_blob(f, &want, 64 * MIB);
    storage_upload_unref(b->u);
    free(b);
}

/* ---- restart ---- */

static void test_restart_rehash(void **state)
{
    struct fx *f = *state;
    struct storage_upload *u = NULL;
    struct at_sha256 h;
    struct at_digest want;
    struct res r;
    uint8_t *buf = at_malloc(3 * MIB);
    char id[STORAGE_UPLOAD_ID_MAX + 1];

    fx_open(f, 0, 0, 0);
    assert_int_equal(storage_upload_create(&f->s, "a/b", &u), 0);
    snprintf(id, sizeof(id), "%s", storage_upload_id(u));
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
    assert_int_equal(commit_wait(f, u, &want, &r), 0);
    storage_upload_unref(u);
    check_blob(f, &want, 4 * MIB + 3);
    free(buf);
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
    assert_int_equal(storage_upload_create(hs, "x", &u), 0);
    snprintf(id, sizeof(id), "%s", storage_upload_id(u));
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

/* ---- cancel ---- */

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
    assert_int_equal(storage_upload_create(&f->s, "c", &u), 0);
    snprintf(id, sizeof(id), "%s", storage_upload_id(u));
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

/* ---- write errors (white-box: the data fd is swapped for /dev/full) ---- */

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
    assert_int_equal(storage_upload_create(&f->s, "e", &u), 0);
    snprintf(id, sizeof(id), "%s", storage_upload_id(u));
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

/* ---- purge ---- */

static void test_purge_old_mtime(void **state)
{
    struct fx *f = *state;
    struct storage_upload *u = NULL;
    char id_old[STORAGE_UPLOAD_ID_MAX + 1];
    char id_new[STORAGE_UPLOAD_ID_MAX + 1];
    char path[512];
    struct timeval tv[2];

    fx_open(f, 0, 0, 0);
    assert_int_equal(storage_upload_create(&f->s, "old", &u), 0);
    snprintf(id_old, sizeof(id_old), "%s", storage_upload_id(u));
    assert_int_equal(storage_upload_write(u, "abc", 3), 0);
    assert_int_equal(flush_wait(f, u, true), 0);
    storage_upload_unref(u);
    assert_int_equal(storage_upload_create(&f->s, "new", &u), 0);
    snprintf(id_new, sizeof(id_new), "%s", storage_upload_id(u));
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
    assert_int_equal(storage_upload_create(&f->s, "p", &u), 0);
    snprintf(id, sizeof(id), "%s", storage_upload_id(u));
    assert_int_equal(storage_upload_write(u, "abc", 3), 0);
    assert_int_equal(flush_wait(f, u, true), 0);
    storage_upload_unref(u);
    assert_int_equal(storage_upload_create(&f->s, "p", &locked), 0);
    snprintf(id_locked, sizeof(id_locked), "%s", storage_upload_id(locked));
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

/* ---- space, existing blobs, open-time recovery ---- */

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

static void put_file(const char *content, size_t len, const char *fmt, ...)
    AT_PRINTF(3, 4);
static void put_file(const char *content, size_t len, const char *fmt, ...)
{
    char path[512];
    va_list ap;
    int fd;

    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_true(write(fd, content, len) == (ssize_t)len);
    close(fd);
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
    struct res r;
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
    assert_int_equal(commit_wait(f, u, &want, &r), 0);
    storage_upload_unref(u);
    check_blob(f, &want, 11);

    assert_int_equal(storage_upload_find(&f->s, info_only, &u), 0);
    assert_int_equal(storage_upload_write(u, "abc", 3), 0);
    at_digest_of("abc", 3, &want);
    assert_int_equal(commit_wait(f, u, &want, &r), 0);
    storage_upload_unref(u);
    check_blob(f, &want, 3);
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
    assert_int_equal(storage_upload_create(&f->s, "a", &u), 0);
    snprintf(posted, sizeof(posted), "%s", storage_upload_id(u));
    storage_upload_unref(u);

    assert_int_equal(storage_upload_create(&f->s, "a", &u), 0);
    snprintf(written, sizeof(written), "%s", storage_upload_id(u));
    assert_int_equal(storage_upload_write(u, "0123456789", 10), 0);
    assert_int_equal(flush_wait(f, u, false), 0);
    storage_upload_unref(u);

    assert_int_equal(storage_upload_create(&f->s, "a", &u), 0);
    snprintf(acked, sizeof(acked), "%s", storage_upload_id(u));
    assert_int_equal(storage_upload_write(u, "0123456789", 10), 0);
    assert_int_equal(flush_wait(f, u, true), 0);
    storage_upload_unref(u);

    assert_int_equal(storage_upload_create(&f->s, "a", &u), 0);
    snprintf(empty, sizeof(empty), "%s", storage_upload_id(u));
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
        assert_int_equal(storage_upload_create(&f->s, "small", &u), 0);
        snprintf(id, sizeof(id), "%s", storage_upload_id(u));
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

/* ---- the write and hash chains ---- */

struct rnd {
    uint64_t x;
};

static uint64_t rnd_next(struct rnd *r)
{
    r->x ^= r->x << 13;
    r->x ^= r->x >> 7;
    r->x ^= r->x << 17;
    return r->x;
}

/* A piece size: mostly small, sometimes around the chunk size, sometimes a
 * few MiB. */
static size_t rnd_size(struct rnd *r)
{
    uint64_t k = rnd_next(r) % 16;
    if (k < 8)
        return (size_t)(rnd_next(r) % 70000) + 1;
    if (k < 14)
        return (size_t)(MIB - 2000 + rnd_next(r) % 4000);
    return (size_t)(rnd_next(r) % (5 * MIB)) + 1;
}

/* Backpressure: when the session is busy, wait until it drained. */
static void wait_drain(struct fx *f, struct storage_upload *u)
{
    struct res dr = { 0 };

    if (!storage_upload_busy(u))
        return;
    storage_upload_on_drain(u, on_status, &dr);
    run_until(f, &dr.done);
    assert_int_equal(dr.status, 0);
    assert_false(storage_upload_busy(u));
}

/* Write n random pieces, honouring backpressure, with random loop turns and
 * flushes in between. */
static void chain_pieces(struct fx *f,
                         struct storage_upload *u,
                         struct at_sha256 *h,
                         struct rnd *r,
                         uint8_t *buf,
                         int n)
{
    for (int i = 0; i < n; i++) {
        size_t len = rnd_size(r);
        uint64_t action = rnd_next(r) % 8;
        fill(buf, len, rnd_next(r));
        at_sha256_update(h, buf, len);
        assert_int_equal(storage_upload_write(u, buf, len), 0);
        wait_drain(f, u);
        if (action == 0)
            uv_run(&f->loop, UV_RUN_NOWAIT);
        else if (action == 1)
            assert_int_equal(flush_wait(f, u, (rnd_next(r) & 1) != 0), 0);
        assert_true(storage_upload_queued(u) <=
                    f->s.write_high_water + 5 * MIB);
    }
}

static void test_chains_random(void **state)
{
    struct fx *f = *state;
    uint8_t *buf = at_malloc(5 * MIB);
    struct rnd r = { 0x1234567890abcdefull };

    fx_open(f, 0, 0, 4 * MIB);
    for (int round = 0; round < 6; round++) {
        struct storage_upload *u = NULL;
        struct at_sha256 h;
        struct at_digest want;
        struct at_digest wrong;
        struct res res;
        char id[STORAGE_UPLOAD_ID_MAX + 1];
        uint64_t total;

        at_sha256_init(&h);
        assert_int_equal(storage_upload_create(&f->s, "rnd", &u), 0);
        snprintf(id, sizeof(id), "%s", storage_upload_id(u));
        chain_pieces(f, u, &h, &r, buf, 10 + round * 5);
        if (round % 2 == 1) {
            /* A restart: the hash chain rehashes the file first. */
            total = storage_upload_size(u);
            assert_int_equal(flush_wait(f, u, true), 0);
            storage_upload_unref(u);
            fx_close_store(f);
            fx_open(f, 0, 0, 4 * MIB);
            assert_int_equal(storage_upload_find(&f->s, id, &u), 0);
            assert_true(storage_upload_size(u) == total);
            chain_pieces(f, u, &h, &r, buf, 10);
        }
        if (round % 3 == 2) {
            /* A mismatch: the sha restarts from the file. */
            at_digest_of("nope", 4, &wrong);
            assert_int_equal(commit_wait(f, u, &wrong, &res), AT_EDIGEST);
            chain_pieces(f, u, &h, &r, buf, 5);
        }
        at_sha256_final(&h, &want);
        total = storage_upload_size(u);
        assert_int_equal(commit_wait(f, u, &want, &res), 0);
        assert_true(at_digest_equal(&res.digest, &want));
        assert_true(res.size == total);
        assert_true(storage_upload_queued(u) == 0);
        storage_upload_unref(u);
        check_blob(f, &want, total);
    }
    free(buf);
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
    assert_int_equal(storage_upload_create(&f->s, "m", &u), 0);
    snprintf(id, sizeof(id), "%s", storage_upload_id(u));
    assert_int_equal(storage_upload_write(u, buf, 3 * MIB), 0);
    assert_int_equal(flush_wait(f, u, true), 0);
    storage_upload_unref(u);
    fx_close_store(f);
    fx_open(f, 0, 0, 0);
    assert_int_equal(storage_upload_find(&f->s, id, &u), 0);
    assert_int_equal(commit_wait(f, u, &wrong, &r), AT_EDIGEST);
    assert_int_equal(commit_wait(f, u, &wrong, &r), AT_EDIGEST);
    assert_int_equal(commit_wait(f, u, &want, &r), 0);
    storage_upload_unref(u);
    check_blob(f, &want, 3 * MIB);
    free(buf);
}

/* ---- hash watch ---- */

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

/* Match: the watch fires once every byte is hashed and written, not before
 * the last byte; the session is capped; a commit requested at once waits
 * for the watch and reuses its digest. */
static void test_watch_match(void **state)
{
    struct fx *f = *state;
    struct storage_upload *u = NULL;
    size_t size = 12 * MIB + 5;
    uint8_t *buf = at_malloc(size);
    struct at_digest want;
    struct wres w = { 0 };
    struct wres c = { 0 };

    fx_open(f, 0, 0, 4 * MIB);
    fill(buf, size, 11);
    at_digest_of(buf, size, &want);
    assert_int_equal(storage_upload_create(&f->s, "w/m", &u), 0);
    assert_int_equal(storage_upload_write(u, buf, 100), 0);
    assert_int_equal(storage_upload_hash_watch(u, 99, &want, on_hashed, &w),
                     AT_EINVAL);
    w.u = u;
    assert_int_equal(storage_upload_hash_watch(u, size, &want, on_hashed, &w),
                     0);
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
    uint8_t *buf = at_malloc(size);
    struct at_digest want, bad;
    struct wres w = { 0 };
    struct res r;

    fx_open(f, 0, 0, 0);
    fill(buf, size, 12);
    at_digest_of(buf, size, &want);
    bad = want;
    bad.bytes[5] ^= 1;
    assert_int_equal(storage_upload_create(&f->s, "w/x", &u), 0);
    w.u = u;
    assert_int_equal(storage_upload_hash_watch(u, size, &bad, on_hashed, &w),
                     0);
    assert_int_equal(storage_upload_write(u, buf, size), 0);
    run_until(f, &w.r.done);
    assert_int_equal(w.r.status, AT_EDIGEST);
    assert_true(w.hashed == size && w.written == size);
    assert_int_equal(commit_wait(f, u, &bad, &r), AT_EDIGEST);
    assert_int_equal(commit_wait(f, u, &want, &r), 0);
    assert_true(at_digest_equal(&r.digest, &want));
    storage_upload_unref(u);
    check_blob(f, &want, size);
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
    uint8_t *buf = at_malloc(size);
    struct at_digest want;
    struct wres w = { 0 };
    struct res r;

    fx_open(f, 0, 0, 0);
    fill(buf, size, 13);
    at_digest_of(buf, size, &want);
    assert_int_equal(storage_upload_create(&f->s, "w/e", &u), 0);
    assert_int_equal(storage_upload_write(u, buf, size), 0);
    assert_int_equal(flush_wait(f, u, false), 0);
    w.u = u;
    assert_int_equal(storage_upload_hash_watch(u, size, &want, on_hashed, &w),
                     0);
    assert_false(w.r.done); /* never from inside the call */
    run_until(f, &w.r.done);
    assert_int_equal(w.r.status, 0);
    assert_int_equal(commit_wait(f, u, &want, &r), 0);
    storage_upload_unref(u);
    check_blob(f, &want, size);

    /* the empty blob */
    memset(&w, 0, sizeof(w));
    at_digest_of("", 0, &want);
    assert_int_equal(storage_upload_create(&f->s, "w/e", &u), 0);
    w.u = u;
    assert_int_equal(storage_upload_hash_watch(u, 0, &want, on_hashed, &w), 0);
    assert_int_equal(storage_upload_write(u, "x", 1), AT_ETOOBIG);
    run_until(f, &w.r.done);
    assert_int_equal(w.r.status, 0);
    assert_int_equal(commit_wait(f, u, &want, &r), 0);
    storage_upload_unref(u);
    check_blob(f, &want, 0);
    free(buf);
}

/* Cancel while watching: AT_ECANCELED once, no file left; a commit short of
 * the watched size: AT_ECANCELED after the commit. */
static void test_watch_cancel(void **state)
{
    struct fx *f = *state;
    struct storage_upload *u = NULL;
    size_t size = 10 * MIB;
    uint8_t *buf = at_malloc(size);
    struct at_digest want;
    struct wres w = { 0 };
    struct res r;
    char id[STORAGE_UPLOAD_ID_MAX + 1];

    fx_open(f, 0, 0, 0);
    fill(buf, size, 14);
    at_digest_of(buf, size, &want);
    assert_int_equal(storage_upload_create(&f->s, "w/c", &u), 0);
    snprintf(id, sizeof(id), "%s", storage_upload_id(u));
    w.u = u;
    assert_int_equal(storage_upload_hash_watch(u, size, &want, on_hashed, &w),
                     0);
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
    w.u = u;
    assert_int_equal(storage_upload_hash_watch(u, size, &want, on_hashed, &w),
                     0);
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
    uint8_t *buf = at_malloc(size);
    struct at_digest want;
    struct wres w = { 0 };
    struct res r;
    char id[STORAGE_UPLOAD_ID_MAX + 1];

    fx_open(f, 0, 0, 0);
    fill(buf, size, 15);
    at_digest_of(buf, size, &want);
    assert_int_equal(storage_upload_create(&f->s, "w/r", &u), 0);
    snprintf(id, sizeof(id), "%s", storage_upload_id(u));
    assert_int_equal(storage_upload_write(u, buf, size), 0);
    assert_int_equal(flush_wait(f, u, true), 0);
    storage_upload_unref(u);
    fx_close_store(f);

    memset(&f->s, 0xa5, sizeof(f->s));
    fx_open(f, 0, 0, 0);
    assert_int_equal(storage_upload_find(&f->s, id, &u), 0);
    w.u = u;
    assert_int_equal(storage_upload_hash_watch(u, size, &want, on_hashed, &w),
                     0);
    run_until(f, &w.r.done);
    assert_int_equal(w.r.status, 0);
    assert_true(w.hashed == size && w.h_final);
    assert_int_equal(commit_wait(f, u, &want, &r), 0);
    storage_upload_unref(u);
    check_blob(f, &want, size);
    free(buf);
}

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_valid),
        cmocka_unit_test_setup_teardown(test_find_invalid, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_commit_pieces, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_empty_blob, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_backpressure, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_restart_rehash, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_close_inflight, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_cancel, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_write_error, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_purge_old_mtime, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_purge_timer, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_space_reserve, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_existing_blob, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_open_recovery, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_recovered_commit, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_restart_unacked, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_small_blob_one_inode, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_chains_random, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_reserve, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_restart_mismatch, fx_setup,
                                        fx_teardown),
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
        cmocka_unit_test_setup_teardown(test_bad_config, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
