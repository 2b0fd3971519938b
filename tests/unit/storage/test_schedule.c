/* Unit tests of storage/schedule.c: backpressure (drain callbacks) and the
 * write and hash chains under random pieces, flushes, restarts and
 * mismatches. */
#include "common/compat.h"

#include "tests/unit/storage/fixture.h"

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
        u = session_new(&f->s, "rnd", id);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_backpressure, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_chains_random, fx_setup,
                                        fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
