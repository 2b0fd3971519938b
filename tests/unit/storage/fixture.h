/* Shared by the storage unit tests (one binary per storage file): a store
 * in a fresh temporary directory on its own loop, and helpers that run the
 * loop until an upload call's callback ran. Everything is static inline, so
 * a test file uses what it needs. */
#ifndef TESTS_STORAGE_FIXTURE_H
#define TESTS_STORAGE_FIXTURE_H

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

static inline int fx_setup(void **state)
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
static inline void fx_close_store(struct fx *f)
{
    if (!f->open)
        return;
    storage_close(&f->s);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(storage_closed(&f->s));
    f->open = false;
}

static inline int fx_teardown(void **state)
{
    struct fx *f = *state;

    fx_close_store(f);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    assert_int_equal(storage__rm_tree(f->dir), 0);
    free(f);
    return 0;
}

static inline void fx_open(struct fx *f,
                           uint64_t reserve,
                           uint64_t ttl,
                           size_t hw)
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
static inline void run_until(struct fx *f, const bool *flag)
{
    while (!*flag) {
        if (uv_run(&f->loop, UV_RUN_ONCE) == 0 && !*flag)
            fail_msg("loop ran dry");
    }
}

static inline void fill(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)x;
    }
}

static inline bool path_exists(const char *fmt, ...) AT_PRINTF(1, 2);

static inline bool path_exists(const char *fmt, ...)
{
    char path[512];
    struct stat st;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    return lstat(path, &st) == 0;
}

struct res {
    bool done;
    int status;
    int calls;
    struct at_digest digest;
    uint64_t size;
};

static inline void on_status(void *data, int status)
{
    struct res *r = data;
    r->done = true;
    r->status = status;
    r->calls++;
}

static inline void on_commit(void *data,
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

static inline int flush_wait(struct fx *f, struct storage_upload *u, bool sync)
{
    struct res r = { 0 };
    int rv = storage_upload_flush(u, sync, on_status, &r);
    if (rv != 0)
        return rv;
    run_until(f, &r.done);
    assert_int_equal(r.calls, 1);
    return r.status;
}

static inline int commit_wait(struct fx *f,
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
static inline void check_blob(struct fx *f,
                              const struct at_digest *d,
                              uint64_t size)
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

static inline size_t count_entries(const char *path)
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

static inline void put_file(const char *content,
                            size_t len,
                            const char *fmt,
                            ...) AT_PRINTF(3, 4);

static inline void put_file(const char *content,
                            size_t len,
                            const char *fmt,
                            ...)
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

struct rnd {
    uint64_t x;
};

static inline uint64_t rnd_next(struct rnd *r)
{
    r->x ^= r->x << 13;
    r->x ^= r->x >> 7;
    r->x ^= r->x << 17;
    return r->x;
}

/* A piece size: mostly small, sometimes around the chunk size, sometimes a
 * few MiB. */
static inline size_t rnd_size(struct rnd *r)
{
    uint64_t k = rnd_next(r) % 16;
    if (k < 8)
        return (size_t)(rnd_next(r) % 70000) + 1;
    if (k < 14)
        return (size_t)(MIB - 2000 + rnd_next(r) % 4000);
    return (size_t)(rnd_next(r) % (5 * MIB)) + 1;
}

/* Backpressure: when the session is busy, wait until it drained. */
static inline void wait_drain(struct fx *f, struct storage_upload *u)
{
    struct res dr = { 0 };

    if (!storage_upload_busy(u))
        return;
    storage_upload_on_drain(u, on_status, &dr);
    run_until(f, &dr.done);
    assert_int_equal(dr.status, 0);
    assert_false(storage_upload_busy(u));
}

/* Commit u as want (it must succeed), drop u, and find the blob of size
 * bytes in the store. */
static inline void commit_check(struct fx *f,
                                struct storage_upload *u,
                                const struct at_digest *want,
                                uint64_t size)
{
    struct res r;

    assert_int_equal(commit_wait(f, u, want, &r), 0);
    assert_true(at_digest_equal(&r.digest, want));
    storage_upload_unref(u);
    check_blob(f, want, size);
}

/* A new session in repo of s; its id copied to id (room for
 * STORAGE_UPLOAD_ID_MAX + 1 bytes). */
static inline struct storage_upload *session_new(struct storage *s,
                                                 const char *repo,
                                                 char *id)
{
    struct storage_upload *u = NULL;

    assert_int_equal(storage_upload_create(s, repo, &u), 0);
    snprintf(id, STORAGE_UPLOAD_ID_MAX + 1, "%s", storage_upload_id(u));
    return u;
}

/* Store content as a blob (upload + commit); its digest in *d. */
static inline void put_blob(struct fx *f,
                            const char *content,
                            struct at_digest *d)
{
    struct storage_upload *u = NULL;
    struct res r;

    at_digest_of(content, strlen(content), d);
    assert_int_equal(storage_upload_create(&f->s, "r", &u), 0);
    assert_int_equal(storage_upload_write(u, content, strlen(content)), 0);
    assert_int_equal(commit_wait(f, u, d, &r), 0);
    storage_upload_unref(u);
}

#endif /* TESTS_STORAGE_FIXTURE_H */
