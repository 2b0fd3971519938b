/* Unit tests of proto/peer.h: the endpoint table, versions, and pack/unpack
 * of the peer messages (hand-written encodings stand for other versions and
 * for the old protocol's bodies). */
#include "common/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "common/common.h"
#include "proto/peer.h"

static void test_table(void **state)
{
    const char *rest = NULL;

    AT_UNUSED(state);
    for (unsigned i = 0; i < PROTO_PEER_EP_COUNT; i++) {
        const struct proto_peer_endpoint *e = &proto_peer_endpoints[i];
        assert_non_null(e->name);
        assert_int_equal(e->path[0], '/');
        /* every path is spelled once */
        for (unsigned j = 0; j < i; j++)
            assert_string_not_equal(e->path, proto_peer_endpoints[j].path);
        if (!e->prefix)
            assert_int_equal(proto_peer_find(e->path, &rest), i);
        if (e->body == PROTO_PEER_BODY_PROTOBUF ||
            e->body == PROTO_PEER_BODY_JSON || e->body == PROTO_PEER_BODY_BYTES)
            assert_true(e->body_max > 0);
        else
            assert_int_equal(e->body_max, 0);
    }
    assert_int_equal(proto_peer_find("/_atoll/join", &rest), PROTO_PEER_JOIN);
    assert_int_equal(proto_peer_find("/_atoll/gossip", &rest),
                     PROTO_PEER_GOSSIP);
    assert_string_equal(rest, "");
    assert_int_equal(proto_peer_find("/_atoll/blobs/sha256:ab", &rest),
                     PROTO_PEER_BLOB);
    assert_string_equal(rest, "sha256:ab");
    assert_int_equal(proto_peer_find("/v2/r/blobs/uploads/x", &rest),
                     PROTO_PEER_RELAY);
    assert_string_equal(rest, "r/blobs/uploads/x");
    assert_int_equal(proto_peer_find("/_atoll/members", NULL),
                     PROTO_PEER_MEMBERS);
    assert_int_equal(proto_peer_find("/_atoll/members/remove", NULL),
                     PROTO_PEER_REMOVE);
    assert_int_equal(proto_peer_find("/_atoll/removed/7", NULL),
                     PROTO_PEER_EP_COUNT);
    assert_int_equal(proto_peer_find("/_atoll/joinx", NULL),
                     PROTO_PEER_EP_COUNT);
    assert_int_equal(proto_peer_find("/", NULL), PROTO_PEER_EP_COUNT);
    assert_string_equal(proto_peer_path(PROTO_PEER_RAFT), "/_atoll/raft");

    assert_true(proto_peer_method_ok(PROTO_PEER_JOIN, "POST"));
    assert_false(proto_peer_method_ok(PROTO_PEER_JOIN, "GET"));
    assert_true(proto_peer_method_ok(PROTO_PEER_MEMBERS, "HEAD"));
    assert_false(proto_peer_method_ok(PROTO_PEER_BLOB, "POST"));
    assert_true(proto_peer_method_ok(PROTO_PEER_RELAY, "PATCH"));
}

/* A snapshot file's name on the peer port: built from two numbers and
 * parsed back only in exactly that form. */
static void test_snapshot_path(void **state)
{
    char path[PROTO_PEER_SNAPSHOT_PATH_SIZE];
    const char *rest = NULL;
    uint64_t index = 0, hash = 0;
    AT_UNUSED(state);
    proto_peer_snapshot_path(0xa1, 0xfedcba9876543210ULL, path);
    assert_string_equal(path,
                        "/_atoll/snapshots/00000000000000a1-fedcba9876543210");
    assert_int_equal(proto_peer_find(path, &rest), PROTO_PEER_SNAPSHOT);
    assert_true(proto_peer_snapshot_parse(rest, &index, &hash));
    assert_int_equal(index, 0xa1);
    assert_true(hash == 0xfedcba9876543210ULL);
    assert_true(proto_peer_method_ok(PROTO_PEER_SNAPSHOT, "GET"));
    assert_false(proto_peer_method_ok(PROTO_PEER_SNAPSHOT, "POST"));
    static const char *bad[] = {
        "",
        "00000000000000a1",
        "00000000000000a1-",
        "00000000000000A1-fedcba9876543210",
        "00000000000000a1-fedcba987654321g",
        "00000000000000a1+fedcba9876543210",
        "00000000000000a1-fedcba9876543210/",
        "00000000000000a1-fedcba98765432100",
        "0000000000000a1-fedcba9876543210",
        "../../../../etc/passwd/xxxxxxxxxx",
        "00000000000000a1-fedcba98765432\0",
    };
    for (size_t i = 0; i < AT_ARRAY_SIZE(bad); i++)
        assert_false(proto_peer_snapshot_parse(bad[i], &index, &hash));
}

static void test_versions(void **state)
{
    AT_UNUSED(state);
    assert_int_equal(proto_peer_version_of(NULL), PROTO_PEER_VERSION_OLD);
    assert_int_equal(proto_peer_version_of("2"), 2);
    assert_int_equal(proto_peer_version_of("65535"), 65535);
    assert_int_equal(proto_peer_version_of("65536"), 0);
    assert_int_equal(proto_peer_version_of("0"), 0);
    assert_int_equal(proto_peer_version_of(""), 0);
    assert_int_equal(proto_peer_version_of("two"), 0);
    assert_int_equal(proto_peer_version_of("+2"), 0);
    assert_int_equal(proto_peer_version_of("-2"), 0);
    assert_int_equal(proto_peer_version_of("2 3"), 0);
    assert_false(proto_peer_version_ok(0));
    assert_false(proto_peer_version_ok(PROTO_PEER_VERSION_OLD));
    assert_true(proto_peer_version_ok(PROTO_PEER_VERSION));
    assert_true(proto_peer_version_ok(PROTO_PEER_VERSION_MIN));
    assert_true(proto_peer_version_ok(PROTO_PEER_VERSION_MAX));
    assert_false(proto_peer_version_ok(PROTO_PEER_VERSION_MAX + 1));
}

/* The header line as an answer carries it, in any case, with or without
 * CRLF; other lines are no version line. */
static void test_version_line(void **state)
{
    static const struct {
        const char *line;
        bool is;
        unsigned v;
    } cases[] = {
        { "X-Atoll-Peer-Protocol: 2\r\n", true, 2 },
        { "x-atoll-peer-protocol:2", true, 2 },
        { "X-ATOLL-PEER-PROTOCOL: \t 7 \r\n", true, 7 },
        { "X-Atoll-Peer-Protocol: two\r\n", true, 0 },
        { "X-Atoll-Peer-Protocol: \r\n", true, 0 },
        { "X-Atoll-Peer-Protocol: 22222222222222222222\r\n", true, 0 },
        { "X-Atoll-Peer-Protocol:", false, 0 },
        { "X-Atoll-Peer-Protocols: 2\r\n", false, 0 },
        { "Upgrade: atoll-raft/1\r\n", false, 0 },
        { "HTTP/1.1 101 Switching Protocols\r\n", false, 0 },
    };
    AT_UNUSED(state);
    for (size_t i = 0; i < AT_ARRAY_SIZE(cases); i++) {
        unsigned v = 99;
        bool is =
            proto_peer_version_line(cases[i].line, strlen(cases[i].line), &v);
        assert_int_equal(is, cases[i].is);
        if (is)
            assert_int_equal(v, cases[i].v);
    }
}

/* Pack m, unpack it again into *out (released by the caller). */
static void round_trip(const struct proto_peer_msg *m,
                       struct proto_peer_msg *out)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    struct at_buf b;

    at_buf_init(&b, 0);
    assert_int_equal(proto_peer_msg_pack(m, &b, errmsg), 0);
    assert_int_equal(proto_peer_msg_unpack(m->ep, b.data, b.len, out, errmsg),
                     0);
    assert_non_null(out->decoded);
    assert_int_equal(out->ep, m->ep);
    at_buf_release(&b);
}

static void test_msg_round_trip(void **state)
{
    static const char cmd[] = "ATC1 not checked here";
    struct proto_peer_msg m, out;

    AT_UNUSED(state);
    memset(&m, 0, sizeof(m));
    m.ep = PROTO_PEER_PROPOSE;
    m.u.propose.command = cmd;
    m.u.propose.len = sizeof(cmd);
    round_trip(&m, &out);
    assert_int_equal(out.u.propose.len, sizeof(cmd));
    assert_memory_equal(out.u.propose.command, cmd, sizeof(cmd));
    proto_peer_msg_release(&out);

    memset(&m, 0, sizeof(m));
    m.ep = PROTO_PEER_READ_INDEX;
    m.u.read_index.from_id = UINT64_MAX;
    m.u.read_index.from_term = 7;
    round_trip(&m, &out);
    assert_true(out.u.read_index.from_id == UINT64_MAX);
    assert_int_equal(out.u.read_index.from_term, 7);
    proto_peer_msg_release(&out);

    memset(&m, 0, sizeof(m));
    m.ep = PROTO_PEER_TERM;
    round_trip(&m, &out);
    proto_peer_msg_release(&out);

    memset(&m, 0, sizeof(m));
    m.ep = PROTO_PEER_JOIN;
    m.u.join.id = 42;
    m.u.join.name = "reg-b";
    m.u.join.peer_address = "10.0.0.2:5001";
    m.u.join.region = "eu";
    m.u.join.standby = true;
    round_trip(&m, &out);
    assert_int_equal(out.u.join.id, 42);
    assert_string_equal(out.u.join.name, "reg-b");
    assert_string_equal(out.u.join.peer_address, "10.0.0.2:5001");
    assert_string_equal(out.u.join.api_address, "");
    assert_string_equal(out.u.join.region, "eu");
    assert_true(out.u.join.standby);
    proto_peer_msg_release(&out);

    memset(&m, 0, sizeof(m));
    m.ep = PROTO_PEER_REPLICATE;
    m.u.replicate.repo = "lib/alpine";
    memset(m.u.replicate.digest.bytes, 0xab, AT_DIGEST_LEN);
    m.u.replicate.size = 1 << 20;
    round_trip(&m, &out);
    assert_string_equal(out.u.replicate.repo, "lib/alpine");
    assert_true(
        at_digest_equal(&out.u.replicate.digest, &m.u.replicate.digest));
    assert_int_equal(out.u.replicate.size, 1 << 20);
    proto_peer_msg_release(&out);

    memset(&m, 0, sizeof(m));
    m.ep = PROTO_PEER_REMOVED;
    m.u.removed.id = 9;
    round_trip(&m, &out);
    assert_int_equal(out.u.removed.id, 9);
    proto_peer_msg_release(&out);
    proto_peer_msg_release(&out); /* twice: harmless */
}

static void test_msg_pack_refused(void **state)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    struct proto_peer_msg m;
    struct at_buf b;

    AT_UNUSED(state);
    at_buf_init(&b, 0);
    memset(&m, 0, sizeof(m));
    m.ep = PROTO_PEER_MEMBERS; /* no protobuf body */
    assert_int_equal(proto_peer_msg_pack(&m, &b, errmsg), AT_EINVAL);
    m.ep = PROTO_PEER_JOIN; /* no name */
    m.u.join.peer_address = "h:1";
    assert_int_equal(proto_peer_msg_pack(&m, &b, errmsg), AT_EINVAL);
    assert_non_null(strstr(errmsg, "join"));
    m.u.join.name = "a\nb";
    assert_int_equal(proto_peer_msg_pack(&m, &b, errmsg), AT_EINVAL);
    m.ep = PROTO_PEER_REMOVED; /* id 0 */
    assert_int_equal(proto_peer_msg_pack(&m, &b, errmsg), AT_EINVAL);
    m.ep = PROTO_PEER_PROPOSE; /* empty command */
    assert_int_equal(proto_peer_msg_pack(&m, &b, errmsg), AT_EINVAL);
    assert_int_equal(b.len, 0);
    /* the buffer's bound */
    at_buf_init(&b, 2);
    m.ep = PROTO_PEER_REMOVED;
    m.u.removed.id = 1u << 30;
    assert_int_equal(proto_peer_msg_pack(&m, &b, errmsg), AT_ETOOBIG);
    at_buf_release(&b);
}

/* Unpack bytes for ep: the return code (nothing to release on failure). */
static int unpack(enum proto_peer_ep ep, const char *p, size_t n)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    struct proto_peer_msg m;
    int rv = proto_peer_msg_unpack(ep, p, n, &m, errmsg);

    if (rv == 0)
        proto_peer_msg_release(&m);
    else
        assert_null(m.decoded);
    return rv;
}

static void test_msg_unpack_refused(void **state)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    struct proto_peer_msg m;
    char *big;

    AT_UNUSED(state);
    /* field 1 (version) = 2, 1, 3, none */
    assert_int_equal(unpack(PROTO_PEER_TERM, "\x08\x02", 2), 0);
    assert_int_equal(unpack(PROTO_PEER_TERM, "\x08\x01", 2), AT_EPROTO);
    assert_int_equal(unpack(PROTO_PEER_TERM, "\x08\x03", 2), AT_EPROTO);
    assert_int_equal(unpack(PROTO_PEER_TERM, "", 0), AT_EPROTO);
    assert_int_equal(
        proto_peer_msg_unpack(PROTO_PEER_TERM, "\x08\x05", 2, &m, errmsg),
        AT_EPROTO);
    assert_non_null(strstr(errmsg, "version 5"));
    assert_non_null(strstr(errmsg, "accepts 2..2"));
    /* the first protocol's bodies: text, JSON, a bare packed command */
    assert_int_equal(unpack(PROTO_PEER_READ_INDEX, "3 7", 3), AT_EPROTO);
    {
        static const char doc[] = "{\"name\":\"x\",\"peer_address\":\"h:1\"}";
        assert_int_equal(unpack(PROTO_PEER_JOIN, doc, sizeof(doc) - 1),
                         AT_EPROTO);
    }
    assert_int_equal(unpack(PROTO_PEER_PROPOSE, "ATC1\x01\0\0\0\0\0\0\0", 12),
                     AT_EPROTO);
    /* join without a node; with a node but no peer address */
    assert_int_equal(unpack(PROTO_PEER_JOIN, "\x08\x02", 2), AT_EPROTO);
    assert_int_equal(unpack(PROTO_PEER_JOIN, "\x08\x02\x12\x03\x12\x01x", 7),
                     AT_EPROTO);
    assert_int_equal(
        unpack(PROTO_PEER_JOIN, "\x08\x02\x12\x08\x12\x01x\x1a\x03h:1", 12), 0);
    /* replicate: a digest of 31 bytes; removed: id 0 */
    {
        char b[64] = "\x08\x02\x12\x01r\x1a\x1f";
        assert_int_equal(unpack(PROTO_PEER_REPLICATE, b, 7 + 31), AT_EPROTO);
        b[6] = 0x20;
        assert_int_equal(unpack(PROTO_PEER_REPLICATE, b, 7 + 32), 0);
    }
    assert_int_equal(unpack(PROTO_PEER_REMOVED, "\x08\x02", 2), AT_EPROTO);
    assert_int_equal(unpack(PROTO_PEER_REMOVED, "\x08\x02\x10\x01", 4), 0);
    /* no protobuf body there; over the endpoint's bound */
    assert_int_equal(unpack(PROTO_PEER_RAFT, "\x08\x02", 2), AT_EPROTO);
    big = at_calloc(1, PROTO_PEER_SMALL_MAX + 1);
    big[0] = 0x08;
    big[1] = 0x02;
    assert_int_equal(unpack(PROTO_PEER_TERM, big, PROTO_PEER_SMALL_MAX + 1),
                     AT_ETOOBIG);
    at_free(big);
    /* truncated */
    assert_int_equal(unpack(PROTO_PEER_REMOVED, "\x08\x02\x10", 3), AT_EPROTO);
}

static void test_reply(void **state)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    struct proto_peer_reply r, out;
    struct at_buf b;

    AT_UNUSED(state);
    memset(&r, 0, sizeof(r));
    r.status = AT_ENOTLEADER;
    r.result = 3;
    r.index = 1234567;
    r.term = 5;
    r.id = 77;
    r.role = "standby";
    at_buf_init(&b, 0);
    assert_int_equal(proto_peer_reply_pack(&r, &b, errmsg), 0);
    assert_int_equal(proto_peer_reply_unpack(b.data, b.len, &out, errmsg), 0);
    assert_int_equal(out.status, AT_ENOTLEADER);
    assert_int_equal(out.result, 3);
    assert_int_equal(out.index, 1234567);
    assert_int_equal(out.term, 5);
    assert_int_equal(out.id, 77);
    assert_string_equal(out.role, "standby");
    proto_peer_reply_release(&out);
    at_buf_release(&b);

    r.status = 1;
    assert_int_equal(proto_peer_reply_pack(&r, &b, errmsg), AT_EINVAL);
    /* a positive status, another version, JSON, too long */
    assert_int_equal(
        proto_peer_reply_unpack("\x08\x02\x10\x02", 4, &out, errmsg),
        AT_EPROTO);
    assert_int_equal(proto_peer_reply_unpack("\x08\x01", 2, &out, errmsg),
                     AT_EPROTO);
    assert_non_null(strstr(errmsg, "version 1"));
    {
        static const char doc[] = "{\"status\":0,\"index\":5}";
        assert_int_equal(
            proto_peer_reply_unpack(doc, sizeof(doc) - 1, &out, errmsg),
            AT_EPROTO);
    }
    assert_int_equal(proto_peer_reply_unpack("\x08\x02", 2, &out, errmsg), 0);
    assert_int_equal(out.status, 0);
    assert_string_equal(out.role, "");
    proto_peer_reply_release(&out);
    {
        char *big = at_calloc(1, PROTO_PEER_REPLY_MAX + 1);
        assert_int_equal(proto_peer_reply_unpack(big, PROTO_PEER_REPLY_MAX + 1,
                                                 &out, errmsg),
                         AT_ETOOBIG);
        at_free(big);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_snapshot_path),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_version_line),
        cmocka_unit_test(test_msg_round_trip),
        cmocka_unit_test(test_msg_pack_refused),
        cmocka_unit_test(test_msg_unpack_refused),
        cmocka_unit_test(test_reply),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
