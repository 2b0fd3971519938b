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

static void test_hooks(void **state)
{
    struct answer a;
    struct meta_status st;
    struct papi p;
    size_t len;
    void *cmd = packed_command("hook-1", &len);

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
    return cmocka_run_group_tests(tests, loop_setup, loop_teardown);
}
