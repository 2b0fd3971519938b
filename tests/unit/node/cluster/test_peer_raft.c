/* Unit tests of the raft upgrade on the peer listener
 * (node/cluster/peer_raft.c). */
#include "common/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "peer_fixture.h"

/* An upgrade request; version NULL: none (the first peer protocol). */
static void upgrade_req(char *req,
                        size_t size,
                        const char *version,
                        const char *id)
{
    char vh[64] = "";

    if (version != NULL)
        snprintf(vh, sizeof(vh), "%s: %s\r\n", PROTO_PEER_VERSION_HEADER,
                 version);
    snprintf(req, size,
             "POST /_atoll/raft HTTP/1.1\r\nHost: x\r\n"
             "Upgrade: atoll-raft/1\r\nConnection: Upgrade\r\n%s"
             "Authorization: Bearer s3cret\r\nX-Atoll-Raft-Id: %s\r\n"
             "X-Atoll-Raft-Address: other\r\n"
             "X-Atoll-Peer-Address: 127.0.0.1:9\r\n"
             "Content-Length: 0\r\n\r\n",
             vh, id);
}

static void test_raft_upgrade(void **state)
{
    struct papi p;
    struct result r;
    char req[512], buf[1024];
    bool closed;

    AT_UNUSED(state);
    papi_start(&p);

    /* Bad headers are refused with 400. */
    call(p.peer, p.addr, "POST", "/_atoll/raft", NULL, 0, &r);
    assert_int_equal(r.http, 400);
    at_free(r.body);
    upgrade_req(req, sizeof(req), "2", "0");
    raw_exchange(port_of(p.addr), req, buf, sizeof(buf), &closed);
    assert_non_null(strstr(buf, "HTTP/1.1 400 "));

    /* A dialer of the first peer protocol: 426, never 101. */
    upgrade_req(req, sizeof(req), NULL, "77");
    raw_exchange(port_of(p.addr), req, buf, sizeof(buf), &closed);
    assert_non_null(strstr(buf, "HTTP/1.1 426 "));
    assert_true(closed);

    /* A good upgrade: 101, then the stream belongs to raft. */
    upgrade_req(req, sizeof(req), "2", "77");
    raw_exchange(port_of(p.addr), req, buf, sizeof(buf), &closed);
    assert_non_null(strstr(buf, "HTTP/1.1 101 Switching Protocols\r\n"));
    assert_non_null(strstr(buf, "\r\nUpgrade: atoll-raft/1\r\n"));
    assert_non_null(strstr(buf, "\r\nX-Atoll-Peer-Protocol: 2\r\n"));
    assert_string_equal(strstr(buf, "\r\n\r\n"), "\r\n\r\n");
    papi_stop(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_raft_upgrade),
    };
    return cmocka_run_group_tests(tests, loop_setup, loop_teardown);
}
