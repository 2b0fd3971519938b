/* Unit tests of blob serving on the peer listener
 * (node/cluster/peer_blobs.c): GET of a local copy, unknown and
 * malformed digests, no store. */
#include "common/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "peer_fixture.h"
#include "storage/internal.h"
#include "storage/storage.h"

static void test_blobs(void **state)
{
    static const char data[] = "the bytes of a blob";
    struct storage_config sc = { 0 };
    struct storage store;
    struct at_digest d;
    struct papi p;
    struct result r;
    char dstr[AT_DIGEST_STR_SIZE], path[256], dir[128], cmd[300];
    char *file;
    FILE *f;

    AT_UNUSED(state);
    papi_start(&p);
    at_digest_of(data, sizeof(data) - 1, &d);
    snprintf(path, sizeof(path), "/_atoll/blobs/%s",
             at_digest_format(&d, dstr));

    /* no store (a node still starting or stopping): 503 */
    call(p.peer, p.addr, "GET", path, NULL, 0, &r);
    assert_int_equal(r.http, 503);
    at_free(r.body);

    snprintf(dir, sizeof(dir), "%s/store", p.dir);
    sc.dir = dir;
    assert_int_equal(storage_open(&store, &g_loop, &sc), 0);
    p.api.store = &store;
    call(p.peer, p.addr, "GET", path, NULL, 0, &r);
    assert_int_equal(r.http, 404);
    assert_non_null(strstr(r.body, "BLOB_UNKNOWN"));
    at_free(r.body);
    call(p.peer, p.addr, "GET", "/_atoll/blobs/sha256:zz", NULL, 0, &r);
    assert_int_equal(r.http, 400);
    at_free(r.body);

    /* a local copy, written where the store keeps it (storage's private
     * layout: a test seam) */
    file = storage__path_blob(dir, &d, NULL, NULL);
    snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\"", file);
    assert_int_equal(system(cmd), 0);
    f = fopen(file, "w");
    assert_non_null(f);
    fputs(data, f);
    fclose(f);
    free(file);
    call(p.peer, p.addr, "GET", path, NULL, 0, &r);
    assert_int_equal(r.http, 200);
    assert_int_equal(r.len, sizeof(data) - 1);
    assert_memory_equal(r.body, data, r.len);
    assert_int_equal(p.api.blob_serves, 1);
    at_free(r.body);

    p.api.store = NULL;
    storage_close(&store);
    for (int i = 0; i < 20; i++)
        uv_run(&g_loop, UV_RUN_NOWAIT);
    papi_stop(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blobs),
    };
    return cmocka_run_group_tests(tests, loop_setup, loop_teardown);
}
