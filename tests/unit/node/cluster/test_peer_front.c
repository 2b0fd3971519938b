/* Unit tests of the peer listener's front (node/cluster/peer_front.c): the
 * cluster secret, the peer protocol version check, routing by the endpoint
 * table and body bounds, on a one-node cluster. */
#include "common/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "peer_fixture.h"

static void test_auth_ok(void **state)
{
    AT_UNUSED(state);
    assert_true(node_peer_auth_ok("Bearer s3cret", "s3cret"));
    assert_false(node_peer_auth_ok("Bearer s3cre", "s3cret"));
    assert_false(node_peer_auth_ok("Bearer s3cretx", "s3cret"));
    assert_false(node_peer_auth_ok("bearer s3cret", "s3cret"));
    assert_false(node_peer_auth_ok("Bearer s3creT", "s3cret"));
    assert_false(node_peer_auth_ok(NULL, "s3cret"));
    assert_false(node_peer_auth_ok("Bearer ", ""));
    assert_false(node_peer_auth_ok("Bearer x", NULL));
}

static void test_secret(void **state)
{
    struct papi p;
    struct result r;

    AT_UNUSED(state);
    papi_start(&p);
    /* No or a wrong secret: 401, whatever the endpoint. */
    call(p.nopeer, p.addr, "GET", "/_atoll/members", NULL, 0, &r);
    assert_int_equal(r.http, 401);
    assert_non_null(strstr(r.body, "UNAUTHORIZED"));
    at_free(r.body);
    call(p.nopeer, p.addr, "POST", "/_atoll/propose", "x", 1, &r);
    assert_int_equal(r.http, 401);
    at_free(r.body);

    call(p.peer, p.addr, "GET", "/_atoll/members", NULL, 0, &r);
    assert_int_equal(r.http, 200);
    assert_non_null(strstr(r.body, "\"leader\":\"solo\""));
    assert_non_null(strstr(r.body, "\"role\":\"voter\""));
    at_free(r.body);
    papi_stop(&p);
}

/* A request in the first peer protocol (no version header) or another
 * version: 426 naming both versions, the connection closed, nothing run. */
static void test_version_refused(void **state)
{
    static const char *versions[] = { NULL, "1", "3", "two", "" };
    struct papi p;
    char req[512], out[4096];
    bool closed;

    AT_UNUSED(state);
    papi_start(&p);
    for (size_t i = 0; i < AT_ARRAY_SIZE(versions); i++) {
        char vh[64] = "";
        if (versions[i] != NULL)
            snprintf(vh, sizeof(vh), "%s: %s\r\n", PROTO_PEER_VERSION_HEADER,
                     versions[i]);
        /* the first protocol's read index: "<id> <term>" as text */
        snprintf(req, sizeof(req),
                 "POST /_atoll/read-index HTTP/1.1\r\nHost: x\r\n"
                 "Authorization: Bearer s3cret\r\n%s"
                 "Content-Length: 3\r\n\r\n3 7",
                 vh);
        raw_exchange(port_of(p.addr), req, out, sizeof(out), &closed);
        assert_non_null(strstr(out, "HTTP/1.1 426 "));
        assert_non_null(strstr(out, "\"code\":\"PEER_PROTOCOL\""));
        assert_non_null(strstr(out, "this node speaks 2 (accepts 2..2)"));
        assert_non_null(strstr(out, "\r\nX-Atoll-Peer-Protocol: 2\r\n"));
        assert_non_null(strstr(out, "\r\nUpgrade: atoll-peer/2\r\n"));
        assert_true(closed);
    }
    /* the secret is checked first: no version talk with strangers */
    snprintf(req, sizeof(req),
             "POST /_atoll/read-index HTTP/1.1\r\nHost: x\r\n"
             "Content-Length: 0\r\n\r\n");
    raw_exchange(port_of(p.addr), req, out, sizeof(out), &closed);
    assert_non_null(strstr(out, "HTTP/1.1 401 "));
    papi_stop(&p);
}

static void test_routing(void **state)
{
    static const struct {
        const char *method, *path;
        int http;
    } cases[] = {
        { "GET", "/_atoll/nothing", 404 },
        { "POST", "/_atoll/nothing", 404 },
        /* the path of the first protocol's removed notice */
        { "POST", "/_atoll/removed/1", 404 },
        /* a known endpoint, another method */
        { "GET", "/_atoll/join", 405 },
        { "POST", "/_atoll/members", 405 },
        /* /v2/ is served only when relayed (and with a relay wired) */
        { "GET", "/v2/", 404 },
    };
    struct papi p;
    struct result r;
    char *big;

    AT_UNUSED(state);
    papi_start(&p);
    for (size_t i = 0; i < AT_ARRAY_SIZE(cases); i++)
        expect(p.peer, p.addr, cases[i].method, cases[i].path, NULL, 0,
               cases[i].http);
    /* bodies over the endpoint's bound: 413 with the endpoint's answer */
    big = at_calloc(1, PROTO_PEER_JOIN_MAX + 1);
    call(p.peer, p.addr, "POST", "/_atoll/join", big, PROTO_PEER_JOIN_MAX + 1,
         &r);
    expect_reply(&r, 413, AT_ETOOBIG);
    /* a JSON endpoint has a larger bound; NUL bytes are no document */
    call(p.peer, p.addr, "POST", "/_atoll/transfer", big,
         PROTO_PEER_JOIN_MAX + 1, &r);
    assert_int_equal(r.http, 400);
    assert_non_null(strstr(r.body, "{\"status\":"));
    at_free(r.body);
    at_free(big);
    papi_stop(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_ok),
        cmocka_unit_test(test_secret),
        cmocka_unit_test(test_version_refused),
        cmocka_unit_test(test_routing),
    };
    return cmocka_run_group_tests(tests, loop_setup, loop_teardown);
}
