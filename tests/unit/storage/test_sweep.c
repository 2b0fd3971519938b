/* Unit tests of storage/sweep.c: listing the local copies not changed since
 * a moment, and removing those a predicate rejects, sparing copies changed
 * after their cutoff (a blob uploaded again meanwhile). */
#include "common/compat.h"

#include "tests/unit/storage/fixture.h"

static bool have(struct fx *f, const struct at_digest *d)
{
    uint64_t size;
    return storage_blob_stat(&f->s, d, &size) == 0;
}

/* Past any ctime set so far (ctime comes from a coarse clock). */
static uint64_t moment(void)
{
    uint64_t t;

    usleep(20000);
    t = at_wall_ms();
    usleep(20000);
    return t;
}

struct swept {
    bool done;
    int calls;
    struct storage_sweep_stats st;
    const struct at_digest *keep; /* the predicate keeps this one */
    int asked;                    /* predicate calls */
};

static bool keep_one(void *data, const struct at_digest *d)
{
    struct swept *sw = data;
    sw->asked++;
    return sw->keep != NULL && at_digest_equal(d, sw->keep);
}

static void on_swept(void *data, const struct storage_sweep_stats *st)
{
    struct swept *sw = data;
    sw->done = true;
    sw->calls++;
    sw->st = *st;
}

static void sweep_wait(struct fx *f,
                       const struct storage_sweep_item *items,
                       size_t n,
                       struct swept *sw)
{
    assert_int_equal(
        storage_blob_sweep(&f->s, items, n, keep_one, on_swept, sw), 0);
    assert_false(sw->done); /* never from inside the call */
    run_until(f, &sw->done);
    assert_int_equal(sw->calls, 1);
}

/* What the sweep in sw counted: copies removed, changed after their
 * cutoff, kept by the predicate. */
static void expect_counts(const struct swept *sw,
                          uint64_t removed,
                          uint64_t changed,
                          uint64_t kept)
{
    assert_true(sw->st.removed == removed);
    assert_true(sw->st.changed == changed);
    assert_true(sw->st.kept == kept);
}

/* The predicate keeps one copy; the others go; a copy never stored counts
 * nowhere. */
static void test_sweep_predicate(void **state)
{
    struct fx *f = *state;
    struct at_digest a, b, c, none;
    struct storage_sweep_item items[4];
    struct swept sw = { 0 };
    uint64_t cutoff;

    fx_open(f, 0, 0, 0);
    put_blob(f, "alpha", &a);
    put_blob(f, "bravo!", &b);
    put_blob(f, "charlie", &c);
    at_digest_of("never stored", 12, &none);
    cutoff = moment();
    items[0] = (struct storage_sweep_item){ a, cutoff };
    items[1] = (struct storage_sweep_item){ b, cutoff };
    items[2] = (struct storage_sweep_item){ c, cutoff };
    items[3] = (struct storage_sweep_item){ none, cutoff };
    sw.keep = &b;
    sweep_wait(f, items, 4, &sw);
    assert_int_equal(sw.asked, 4);
    expect_counts(&sw, 2, 0, 1);
    assert_true(sw.st.bytes == 5 + 7);
    assert_false(have(f, &a));
    assert_true(have(f, &b));
    assert_false(have(f, &c));

    /* no predicate: nothing kept that way */
    memset(&sw, 0, sizeof(sw));
    assert_int_equal(storage_blob_sweep(&f->s, items, 2, NULL, on_swept, &sw),
                     0);
    run_until(f, &sw.done);
    assert_true(sw.st.removed == 1 && sw.st.kept == 0);
    assert_false(have(f, &b));
}

/* A copy written after its cutoff stays, and so does one uploaded again
 * after it (the commit touches the copy it finds); the same copy without
 * the re-upload goes. */
static void test_sweep_changed_after_cutoff(void **state)
{
    struct fx *f = *state;
    struct at_digest old, late, again;
    struct storage_sweep_item items[3];
    struct swept sw = { 0 };
    uint64_t cutoff;

    fx_open(f, 0, 0, 0);
    put_blob(f, "old copy", &old);
    put_blob(f, "uploaded again", &again);
    cutoff = moment();
    put_blob(f, "written late", &late);
    put_blob(f, "uploaded again", &again); /* finds the copy, touches it */
    items[0] = (struct storage_sweep_item){ old, cutoff };
    items[1] = (struct storage_sweep_item){ late, cutoff };
    items[2] = (struct storage_sweep_item){ again, cutoff };
    sweep_wait(f, items, 3, &sw);
    expect_counts(&sw, 1, 2, 0);
    assert_false(have(f, &old));
    assert_true(have(f, &late));
    assert_true(have(f, &again));

    /* with a later cutoff, the re-uploaded copy goes too */
    memset(&sw, 0, sizeof(sw));
    items[2].cutoff_ms = moment();
    sweep_wait(f, &items[2], 1, &sw);
    assert_true(sw.st.removed == 1 && sw.st.changed == 0);
    assert_false(have(f, &again));

    fx_close_store(f);
    assert_int_equal(
        storage_blob_sweep(&f->s, items, 1, keep_one, on_swept, &sw),
        AT_ESHUTDOWN);
}

struct scanned {
    bool done;
    int status;
    struct at_digest *found;
    size_t n;
    bool truncated;
};

static void on_scanned(void *data,
                       int status,
                       struct at_digest *found,
                       size_t n,
                       bool truncated)
{
    struct scanned *sc = data;
    sc->done = true;
    sc->status = status;
    sc->found = found;
    sc->n = n;
    sc->truncated = truncated;
}

static void scan_wait(struct fx *f,
                      uint64_t cutoff,
                      size_t max,
                      struct scanned *sc)
{
    memset(sc, 0, sizeof(*sc));
    assert_int_equal(storage_blob_scan(&f->s, cutoff, max, on_scanned, sc), 0);
    assert_false(sc->done);
    run_until(f, &sc->done);
}

static bool listed(const struct scanned *sc, const struct at_digest *d)
{
    for (size_t i = 0; i < sc->n; i++) {
        if (at_digest_equal(&sc->found[i], d))
            return true;
    }
    return false;
}

/* The copies not changed after the cutoff are listed, nothing else that
 * lies in blobs/; max truncates. */
static void test_scan(void **state)
{
    struct fx *f = *state;
    struct at_digest a, b, late;
    struct scanned sc;
    char hex[AT_DIGEST_HEX_LEN + 1];
    uint64_t cutoff;

    fx_open(f, 0, 0, 0);
    put_blob(f, "first", &a);
    put_blob(f, "second", &b);
    /* not blob files: a short name, a directory with a blob's name */
    put_file("x", 1, "%s/blobs/sha256/%.2s/junk", f->dir,
             at_digest_hex(&a, hex));
    at_digest_of("a directory", 11, &late);
    at_digest_hex(&late, hex);
    {
        char path[512];
        snprintf(path, sizeof(path), "%s/blobs/sha256/%.2s", f->dir, hex);
        (void)mkdir(path, 0755);
        snprintf(path, sizeof(path), "%s/blobs/sha256/%.2s/%s", f->dir, hex,
                 hex);
        assert_int_equal(mkdir(path, 0755), 0);
    }
    cutoff = moment();
    put_blob(f, "after the cutoff", &late);

    scan_wait(f, cutoff, 100, &sc);
    assert_int_equal(sc.status, 0);
    assert_true(sc.n == 2);
    assert_false(sc.truncated);
    assert_true(listed(&sc, &a) && listed(&sc, &b));
    free(sc.found);

    scan_wait(f, cutoff, 1, &sc);
    assert_true(sc.n == 1 && sc.truncated);
    assert_true(listed(&sc, &a) || listed(&sc, &b));
    free(sc.found);

    scan_wait(f, 0, 100, &sc); /* nothing that old */
    assert_true(sc.n == 0 && sc.found == NULL);

    fx_close_store(f);
    assert_int_equal(storage_blob_scan(&f->s, cutoff, 1, on_scanned, &sc),
                     AT_ESHUTDOWN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sweep_predicate, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_sweep_changed_after_cutoff,
                                        fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_scan, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
