/* Unit tests of the meta hooks (node/cluster/peer_hooks.c): forward, read
 * index and term sent to a leader's peer listener and its PeerReply read
 * back (the one-node cluster is its own leader); failures map to "not
 * applied". */
#include "common/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "peer_fixture.h"
#include "proto/proto.h"

struct answer {
    bool done;
    int status;
    int result;
    uint64_t index;
};

static void on_forward(void *data, int status, int result, uint64_t index)
{
    struct answer *a = data;

    a->done = true;
    a->status = status;
    a->result = result;
    a->index = index;
}

static void on_index(void *data, int status, uint64_t index)
{
    on_forward(data, status, 0, index);
}

static void *packed_command(size_t *len)
{
    char errmsg[AT_ERRMSG_SIZE];
    Atoll__Command c = ATOLL__COMMAND__INIT;
    Atoll__DeleteTag dt = ATOLL__DELETE_TAG__INIT;
    void *buf = NULL;

    c.version = PROTO_COMMAND_VERSION;
    c.request_id = (char *)"hook-1";
    c.op_case = ATOLL__COMMAND__OP_DELETE_TAG;
    c.delete_tag = &dt;
    dt.repo = (char *)"no/such";
    dt.tag = (char *)"t";
    assert_int_equal(proto_command_pack(&c, NULL, &buf, len, errmsg), 0);
    return buf;
}

static void test_hooks(void **state)
{
    struct answer a;
    struct meta_status st;
    struct papi p;
    size_t len;
    void *cmd = packed_command(&len);

    AT_UNUSED(state);
    papi_start(&p);
    meta_status_get(p.m, &st);

    memset(&a, 0, sizeof(a));
    assert_int_equal(
        node_peer_hooks.forward(&p.api, st.id, cmd, len, on_forward, &a), 0);
    run_until(&a.done);
    assert_int_equal(a.status, 0);
    assert_int_not_equal(a.result, 0); /* no such repository */
    assert_true(a.index > 0);

    memset(&a, 0, sizeof(a));
    assert_int_equal(node_peer_hooks.read_index(&p.api, 0, on_index, &a), 0);
    run_until(&a.done);
    assert_int_equal(a.status, 0);
    assert_true(a.index > 0);

    memset(&a, 0, sizeof(a));
    assert_int_equal(node_peer_hooks.term(&p.api, st.id, 2000, on_index, &a),
                     0);
    run_until(&a.done);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.index, meta_term(p.m));

    /* another leader than the one asked for: not sent */
    assert_int_equal(
        node_peer_hooks.forward(&p.api, st.id + 1, cmd, len, on_forward, &a),
        AT_ENOTLEADER);
    assert_int_equal(
        node_peer_hooks.term(&p.api, st.id + 1, 2000, on_index, &a),
        AT_ENOTFOUND);
    /* the leader refuses the command: an error, never a success */
    memset(&a, 0, sizeof(a));
    assert_int_equal(
        node_peer_hooks.forward(&p.api, st.id, "garbage!", 8, on_forward, &a),
        0);
    run_until(&a.done);
    assert_int_equal(a.status, AT_ENOTLEADER);
    free(cmd);
    papi_stop(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hooks),
    };
    int rv;

    uv_loop_init(&g_loop);
    rv = cmocka_run_group_tests(tests, NULL, NULL);
    uv_run(&g_loop, UV_RUN_NOWAIT);
    uv_loop_close(&g_loop);
    return rv;
}
