/* Unit tests of membership on the peer listener
 * (node/cluster/peer_members.c): join bodies, a name taken by another
 * address, remove and transfer (JSON), the removed notice. */
#include "common/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "peer_fixture.h"

static void test_join(void **state)
{
    struct proto_peer_msg m = { .ep = PROTO_PEER_JOIN };
    struct proto_peer_reply rep;
    struct papi p;
    struct result r;
    static const char json[] =
        "{\"name\":\"x\",\"peer_address\":\"127.0.0.9:1\","
        "\"api_address\":\"127.0.0.9:2\",\"standby\":false}";

    AT_UNUSED(state);
    papi_start(&p);
    /* the first protocol's JSON join, and other garbage: 400 */
    call(p.peer, p.addr, "POST", "/_atoll/join", json, sizeof(json) - 1, &r);
    expect_reply(&r, 400, AT_EPROTO);
    expect(p.peer, p.addr, "POST", "/_atoll/join", "{nope", 5, 400);
    /* a PeerJoin without a node, then without a peer address */
    expect(p.peer, p.addr, "POST", "/_atoll/join", "\x08\x02", 2, 400);
    expect(p.peer, p.addr, "POST", "/_atoll/join", "\x08\x02\x12\x03\x12\x01x",
           7, 400);

    /* The same name with another address: 409. */
    m.u.join.name = "solo";
    m.u.join.peer_address = "127.0.0.9:1";
    m.u.join.api_address = "127.0.0.9:2";
    call_msg(&p, &m, &r);
    expect_reply(&r, 409, AT_EEXIST);

    /* Its own address: already a member, answered with its id and role. */
    m.u.join.peer_address = p.addr;
    call_msg(&p, &m, &r);
    assert_int_equal(r.http, 200);
    reply_of(&r, &rep);
    assert_int_equal(rep.status, 0);
    assert_true(rep.id > 0);
    assert_string_equal(rep.role, "voter");
    proto_peer_reply_release(&rep);
    at_free(r.body);
    papi_stop(&p);
}

static void test_remove_transfer_removed(void **state)
{
    struct proto_peer_msg m = { .ep = PROTO_PEER_REMOVED };
    struct papi p;
    struct result r;

    AT_UNUSED(state);
    papi_start(&p);
    /* Removing an unknown node is an error (JSON: an operator call). */
    call(p.peer, p.addr, "POST", "/_atoll/members/remove",
         "{\"name\":\"ghost\"}", 16, &r);
    assert_true(r.http == 404 || r.http == 503);
    assert_non_null(strstr(r.body, "{\"status\":"));
    at_free(r.body);
    expect(p.peer, p.addr, "POST", "/_atoll/members/remove", "{\"name\":5}", 10,
           400);
    expect(p.peer, p.addr, "POST", "/_atoll/transfer", "{\"name\":[]}", 11,
           400);

    /* A removed notice for another node: 409, this node keeps running. */
    m.u.removed.id = 424242;
    call_msg(&p, &m, &r);
    expect_reply(&r, 409, AT_EINVAL);
    papi_stop(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join),
        cmocka_unit_test(test_remove_transfer_removed),
    };
    return cmocka_run_group_tests(tests, loop_setup, loop_teardown);
}
