/* Unit tests of the leader operations on the peer listener
 * (node/cluster/peer_leader.c): propose, read index and term answer a
 * PeerReply; the first protocol's bodies are refused. */
#include "common/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "peer_fixture.h"

static void test_propose(void **state)
{
    struct proto_peer_msg m = { .ep = PROTO_PEER_PROPOSE };
    struct proto_peer_reply rep;
    struct papi p;
    struct result r;
    size_t len;
    void *cmd = packed_command("unit-1", &len);

    AT_UNUSED(state);
    papi_start(&p);
    m.u.propose.command = cmd;
    m.u.propose.len = len;
    call_msg(&p, &m, &r);
    assert_int_equal(r.http, 200);
    reply_of(&r, &rep);
    assert_int_equal(rep.status, 0);
    assert_int_not_equal(rep.result, 0); /* the repository is unknown */
    assert_true(rep.index > 0);
    proto_peer_reply_release(&rep);
    at_free(r.body);

    /* a command that is no command: 400, nothing applied */
    m.u.propose.command = "garbage!";
    m.u.propose.len = 8;
    call_msg(&p, &m, &r);
    assert_int_equal(r.http, 400);
    reply_of(&r, &rep);
    assert_true(rep.status < 0);
    proto_peer_reply_release(&rep);
    at_free(r.body);

    /* the first protocol's body, a bare packed command: not a PeerPropose */
    call(p.peer, p.addr, "POST", "/_atoll/propose", cmd, len, &r);
    expect_reply(&r, 400, AT_EPROTO);
    free(cmd);
    papi_stop(&p);
}

static void test_read_index_and_term(void **state)
{
    struct proto_peer_msg m = { .ep = PROTO_PEER_READ_INDEX };
    struct proto_peer_reply rep;
    struct papi p;
    struct result r;

    AT_UNUSED(state);
    papi_start(&p);
    m.u.read_index.from_id = 12345;
    m.u.read_index.from_term = 1;
    call_msg(&p, &m, &r);
    assert_int_equal(r.http, 200);
    reply_of(&r, &rep);
    assert_int_equal(rep.status, 0);
    assert_true(rep.index > 0);
    proto_peer_reply_release(&rep);
    at_free(r.body);

    /* the first protocol's text body "<id> <term>"; no body at all (no
     * version field either) */
    expect(p.peer, p.addr, "POST", "/_atoll/read-index", "3 7", 3, 400);
    expect(p.peer, p.addr, "POST", "/_atoll/read-index", NULL, 0, 400);

    m.ep = PROTO_PEER_TERM;
    call_msg(&p, &m, &r);
    assert_int_equal(r.http, 200);
    reply_of(&r, &rep);
    assert_int_equal(rep.status, 0);
    assert_int_equal(rep.term, meta_term(p.m));
    assert_true(rep.term > 0);
    proto_peer_reply_release(&rep);
    at_free(r.body);
    papi_stop(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_propose),
        cmocka_unit_test(test_read_index_and_term),
    };
    return cmocka_run_group_tests(tests, loop_setup, loop_teardown);
}
