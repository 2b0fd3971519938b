/* Unit tests of raft/command.c: what the builders refuse, and request
 * ids. */
#include "common/compat.h"

#include <setjmp.h>

#include <cmocka.h>

#include "raft/command.h"
#include "tests/unit/raft/helpers.h"

static void test_proto_bounds(void **state)
{
    char e[AT_ERRMSG_SIZE];
    void *buf;
    size_t len;
    AT_UNUSED(state);
    struct meta_cmd pm = { .kind = META_CMD_PUT_MANIFEST, .request_id = "r" };
    struct meta_manifest_put *p = &pm.put_manifest;
    p->repo = "a";
    p->media_type = "x";
    p->len = PROTO_MANIFEST_MAX + 1;
    p->bytes = at_calloc(1, p->len);
    assert_int_equal(meta__cmd_pack(&pm, NULL, NULL, &buf, &len, e),
                     AT_ETOOBIG);
    p->len = PROTO_MANIFEST_MAX;
    assert_int_equal(meta__cmd_pack(&pm, NULL, NULL, &buf, &len, e), 0);
    Atoll__Command *c = NULL;
    assert_int_equal(proto_command_unpack(buf, len, &c, e), 0);
    assert_int_equal(c->put_manifest->bytes.len, PROTO_MANIFEST_MAX);
    proto_command_free(c);
    /* truncated, misaligned, bad padding */
    assert_int_equal(proto_command_unpack(buf, len - 8, &c, e), AT_ECORRUPT);
    assert_int_equal(proto_command_unpack(buf, len - 1, &c, e), AT_ECORRUPT);
    free(buf);
    at_free((void *)p->bytes);
    struct meta_cmd dt = { .kind = META_CMD_DELETE_TAG,
                           .request_id = "r",
                           .delete_tag = { .repo = "a", .tag = NULL } };
    assert_int_equal(meta__cmd_pack(&dt, NULL, NULL, &buf, &len, e), AT_EINVAL);
}

/* Request ids: printable, bounded. */
static void test_request_ids(void **state)
{
    AT_UNUSED(state);
    assert_true(meta__request_id_ok("abc-123"));
    assert_false(meta__request_id_ok(""));
    assert_false(meta__request_id_ok("a b"));
    char longid[80];
    memset(longid, 'x', sizeof(longid) - 1);
    longid[79] = '\0';
    assert_false(meta__request_id_ok(longid));
    longid[64] = '\0';
    assert_true(meta__request_id_ok(longid));
}

int main(void)
{
    at_log_configure(getenv("META_LOG") ? getenv("META_LOG") : "error");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_bounds),
        cmocka_unit_test(test_request_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
