/* Unit tests of gossip's node-side tables: "ip:port" parsing and
 * formatting (IPv4, IPv6, refusals) and the replay windows by sender
 * (replays refused, least recently used evicted). */
#include "common/compat.h"

#include <setjmp.h>

#include <cmocka.h>

#include "node/cluster/gossip_addr.h"

static void roundtrip(const char *in)
{
    struct sockaddr_storage sa;
    char out[GOSSIP_ADDR_MAX];

    assert_int_equal(node_gossip_addr_parse(in, &sa), 0);
    assert_int_equal(
        node_gossip_addr_format((struct sockaddr *)&sa, out, sizeof(out)), 0);
    assert_string_equal(out, in);
}

static void test_parse(void **state)
{
    static const char *bad[] = {
        "",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:0",
        "1.2.3.4:65536",
        "1.2.3.4:-1",
        "1.2.3.4:12x",
        "host:5000",
        "::1:5000",
        "[::1]",
        "[::1]5000",
        "[::1:5000",
        "[zz::1]:5000",
        "1.2.3:5000",
        ":5000",
        "[]:5000",
    };
    struct sockaddr_storage sa;
    char out[8];

    AT_UNUSED(state);
    roundtrip("127.0.0.1:5001");
    roundtrip("10.1.2.3:1");
    roundtrip("[::1]:65535");
    roundtrip("[fe80::1:2]:7946");
    assert_int_equal(node_gossip_addr_parse("127.0.0.1:5001", &sa), 0);
    assert_int_equal(sa.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&sa)->sin_port), 5001);
    for (size_t i = 0; i < AT_ARRAY_SIZE(bad); i++)
        assert_int_equal(node_gossip_addr_parse(bad[i], &sa), AT_EINVAL);
    /* too short an output */
    assert_int_equal(node_gossip_addr_parse("127.0.0.1:5001", &sa), 0);
    assert_int_equal(
        node_gossip_addr_format((struct sockaddr *)&sa, out, sizeof(out)),
        AT_EINVAL);
    /* an IPv4 sender seen on a dual-stack socket */
    assert_int_equal(node_gossip_addr_parse("[::ffff:10.0.0.7]:5001", &sa), 0);
    {
        char o2[GOSSIP_ADDR_MAX];
        assert_int_equal(
            node_gossip_addr_format((struct sockaddr *)&sa, o2, sizeof(o2)), 0);
        assert_string_equal(o2, "10.0.0.7:5001");
    }
    sa.ss_family = AF_UNIX;
    assert_int_equal(
        node_gossip_addr_format((struct sockaddr *)&sa, out, sizeof(out)),
        AT_EINVAL);
}

static void test_split(void **state)
{
    char host[16];
    int port = 0;

    AT_UNUSED(state);
    assert_int_equal(node_gossip_hostport_split("seed.example:5001", host,
                                                sizeof(host), &port),
                     0);
    assert_string_equal(host, "seed.example");
    assert_int_equal(port, 5001);
    assert_int_equal(
        node_gossip_hostport_split("[::1]:7", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 7);
    assert_int_equal(node_gossip_hostport_split("a-very-long-host-name:1", host,
                                                sizeof(host), &port),
                     AT_EINVAL);
    assert_int_equal(
        node_gossip_hostport_split("seed", host, sizeof(host), &port),
        AT_EINVAL);
    assert_int_equal(
        node_gossip_hostport_split("a:b:1", host, sizeof(host), &port),
        AT_EINVAL);
}

static void test_replays(void **state)
{
    struct node_gossip_replays t;
    char name[32];

    AT_UNUSED(state);
    node_gossip_replays_init(&t, 3);
    assert_int_equal(node_gossip_replays_check(&t, "a", 1000), 0);
    assert_int_equal(node_gossip_replays_check(&t, "a", 1000), AT_EPROTO);
    assert_int_equal(node_gossip_replays_check(&t, "a", 1001), 0);
    assert_int_equal(node_gossip_replays_check(&t, "a", 999), 0);
    assert_int_equal(node_gossip_replays_check(&t, "a", 999), AT_EPROTO);
    /* far below the window top: refused */
    assert_int_equal(node_gossip_replays_check(&t, "a", 100000), 0);
    assert_int_equal(node_gossip_replays_check(&t, "a", 1002), AT_EPROTO);
    /* windows are per sender */
    assert_int_equal(node_gossip_replays_check(&t, "b", 1000), 0);
    assert_int_equal(node_gossip_replays_check(&t, "c", 1000), 0);
    assert_int_equal(t.by_name.len, 3);
    /* "a" is now the least recently heard of: touch it, "b" goes */
    assert_int_equal(node_gossip_replays_check(&t, "a", 100001), 0);
    assert_int_equal(node_gossip_replays_check(&t, "d", 5), 0);
    assert_int_equal(t.by_name.len, 3);
    assert_int_equal(t.evicted, 1);
    assert_null(at_map_gets(&t.by_name, "b"));
    assert_non_null(at_map_gets(&t.by_name, "a"));
    /* a's window survived: its replay is still refused */
    assert_int_equal(node_gossip_replays_check(&t, "a", 100001), AT_EPROTO);
    /* b forgotten: its old number opens a fresh window (the receiver's
     * staleness check bounds this) */
    assert_int_equal(node_gossip_replays_check(&t, "b", 1000), 0);
    /* many senders stay bounded */
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        assert_int_equal(node_gossip_replays_check(&t, name, 7), 0);
    }
    assert_int_equal(t.by_name.len, 3);
    assert_int_equal(at_list_count(&t.lru), 3);
    node_gossip_replays_release(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_replays),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
