/* Unit tests of the leader operations on the peer listener
 * (node/cluster/peer_leader.c): propose, read index and term answer a
 * PeerReply; the first protocol's bodies are refused. */
#include "common/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "peer_fixture.h"
#include "proto/proto.h"

/* A packed DeleteTag of a repository that does not exist. */
static void *packed_command(size_t *len)
{
    char errmsg[AT_ERRMSG_SIZE];
    Atoll__Command c = ATOLL__COMMAND__INIT;
    Atoll__DeleteTag dt = ATOLL__DELETE_TAG__INIT;
    void *buf = NULL;

    c.version = PROTO_COMMAND_VERSION;
    c.request_id = (char *)"unit-1";
    c.op_case = ATOLL__COMMAND__OP_DELETE_TAG;
    c.delete_tag = &dt;
    dt.repo = (char *)"no/such";
    dt.tag = (char *)"t";
    assert_int_equal(proto_command_pack(&c, NULL, &buf, len, errmsg), 0);
    return buf;
}

static void test_propose(void **state)
{
    struct proto_peer_msg m = { .ep = PROTO_PEER_PROPOSE };
    struct proto_peer_reply rep;
    struct papi p;
    struct result r;
    size_t len;
    void *cmd = packed_command(&len);

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
    assert_int_equal(r.http, 400);
    reply_of(&r, &rep);
    assert_int_equal(rep.status, AT_EPROTO);
    proto_peer_reply_release(&rep);
    at_free(r.body);
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

    /* the first protocol's text body "<id> <term>" */
    call(p.peer, p.addr, "POST", "/_atoll/read-index", "3 7", 3, &r);
    assert_int_equal(r.http, 400);
    at_free(r.body);
    /* no body at all: no version field either */
    call(p.peer, p.addr, "POST", "/_atoll/read-index", NULL, 0, &r);
    assert_int_equal(r.http, 400);
    at_free(r.body);

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
    int rv;

    uv_loop_init(&g_loop);
    rv = cmocka_run_group_tests(tests, NULL, NULL);
    uv_run(&g_loop, UV_RUN_NOWAIT);
    uv_loop_close(&g_loop);
    return rv;
}
