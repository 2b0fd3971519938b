/* Unit tests of storage/blob.c: complete blobs (stat, open, remove) and the
 * verification of a local copy (its identity, its hash in the pool). */
#include "common/compat.h"

#include "tests/unit/storage/fixture.h"

static void test_stat_open_remove(void **state)
{
    struct fx *f = *state;
    struct at_digest d;
    struct at_digest none;
    uint64_t size = 0;
    int fd = -1;

    fx_open(f, 0, 0, 0);
    put_blob(f, "some blob", &d);
    at_digest_of("none", 4, &none);
    assert_int_equal(storage_blob_stat(&f->s, &d, &size), 0);
    assert_true(size == 9);
    assert_int_equal(storage_blob_stat(&f->s, &none, &size), AT_ENOTFOUND);
    assert_int_equal(storage_blob_open(&f->s, &none, &fd, &size), AT_ENOTFOUND);
    check_blob(f, &d, 9);
    assert_int_equal(storage_blob_remove(&f->s, &d), 0);
    assert_int_equal(storage_blob_remove(&f->s, &d), AT_ENOTFOUND);
    assert_int_equal(storage_blob_stat(&f->s, &d, &size), AT_ENOTFOUND);
    fx_close_store(f);
    assert_int_equal(storage_blob_stat(&f->s, &d, &size), AT_ESHUTDOWN);
}

struct verified {
    bool done;
    int calls;
    int status;
    struct storage_blob_id id;
};

static void on_verified(void *data,
                        int status,
                        const struct storage_blob_id *id)
{
    struct verified *v = data;
    v->done = true;
    v->calls++;
    v->status = status;
    v->id = *id;
}

static int verify_wait(struct fx *f,
                       const struct at_digest *d,
                       int fd,
                       struct verified *v)
{
    memset(v, 0, sizeof(*v));
    storage_blob_verify(&f->s, d, fd, on_verified, v);
    assert_false(v->done); /* never from inside the call */
    run_until(f, &v->done);
    assert_int_equal(v->calls, 1);
    return v->status;
}

/* A copy matches; once changed on disk it has another identity and does
 * not match (same size or not); a bad fd is an I/O error, not a mismatch. */
static void test_verify(void **state)
{
    struct fx *f = *state;
    struct at_digest d;
    struct storage_blob_id id;
    struct storage_blob_id id2;
    struct verified v;
    uint64_t size = 0;
    char hex[AT_DIGEST_HEX_LEN + 1];
    char path[512];
    int fd = -1;
    int wfd;

    fx_open(f, 0, 0, 0);
    put_blob(f, "verify me", &d);
    assert_int_equal(storage_blob_open(&f->s, &d, &fd, &size), 0);
    assert_int_equal(storage_blob_id_get(fd, &id), 0);
    assert_true(id.size == 9);
    assert_int_equal(verify_wait(f, &d, fd, &v), 0);
    assert_true(storage_blob_id_equal(&v.id, &id));

    /* same size, other bytes */
    usleep(20000); /* a ctime the coarse clock tells apart */
    snprintf(path, sizeof(path), "%s/blobs/sha256/%.2s/%s", f->dir,
             at_digest_hex(&d, hex), hex);
    wfd = open(path, O_WRONLY | O_CLOEXEC);
    assert_true(wfd >= 0);
    assert_int_equal(pwrite(wfd, "V", 1, 0), 1);
    assert_int_equal(storage_blob_id_get(fd, &id2), 0);
    assert_false(storage_blob_id_equal(&id, &id2));
    assert_int_equal(verify_wait(f, &d, fd, &v), AT_EDIGEST);

    /* the right bytes but one more */
    assert_int_equal(pwrite(wfd, "verify me!", 10, 0), 10);
    assert_int_equal(verify_wait(f, &d, fd, &v), AT_EDIGEST);
    close(wfd);

    assert_int_equal(verify_wait(f, &d, -1, &v), AT_EIO);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stat_open_remove, fx_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_verify, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
