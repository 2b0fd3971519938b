/* Unit tests of the --bootstrap-expect decision (node/cluster/bootstrap.c):
 * who bootstraps, who waits, who joins, and the settle time. */
#include "common/compat.h"

#include <setjmp.h>

#include <cmocka.h>

#include "node/cluster/bootstrap.h"

static struct gossip_member_info member(const char *name,
                                        enum gossip_state st,
                                        const char *role,
                                        bool in_cluster)
{
    struct gossip_member_info m;

    memset(&m, 0, sizeof(m));
    snprintf(m.name, sizeof(m.name), "%s", name);
    snprintf(m.addr, sizeof(m.addr), "10.0.0.%d:5001", name[1]);
    snprintf(m.meta.peer_addr, sizeof(m.meta.peer_addr), "%s:5001", name);
    snprintf(m.meta.role, sizeof(m.meta.role), "%s", role);
    m.state = st;
    m.meta.flags = in_cluster ? GOSSIP_META_IN_CLUSTER : 0;
    return m;
}

/* Five voters started together, expect 3: everyone waits until the set
 * settled, then only the lowest name bootstraps. */
static void test_lowest_bootstraps(void **state)
{
    struct gossip_member_info m[5];
    const char *names[] = { "n3", "n1", "n5", "n2", "n4" };
    char addr[GOSSIP_ADDR_MAX];
    char why[128];
    unsigned bootstraps = 0;

    AT_UNUSED(state);
    for (int i = 0; i < 5; i++)
        m[i] = member(names[i], GOSSIP_ALIVE, "voter", false);
    for (int i = 0; i < 5; i++) {
        struct node_boot b;
        node_boot_init(&b, names[i], "voter", 3, 1000);
        assert_int_equal(
            node_boot_decide(&b, m, 2, 1000, addr, why, sizeof(why)),
            NODE_BOOT_WAIT);
        assert_non_null(strstr(why, "2 of 3"));
        assert_int_equal(
            node_boot_decide(&b, m, 5, 2000, addr, why, sizeof(why)),
            NODE_BOOT_WAIT); /* settling */
        enum node_boot_decision d =
            node_boot_decide(&b, m, 5, 3000, addr, why, sizeof(why));
        if (strcmp(names[i], "n1") == 0) {
            assert_int_equal(d, NODE_BOOT_BOOTSTRAP);
            bootstraps++;
        } else {
            assert_int_equal(d, NODE_BOOT_WAIT);
            assert_non_null(strstr(why, "'n1'"));
        }
    }
    assert_int_equal(bootstraps, 1);
}

/* A lower name showing up restarts the settle time: no one bootstraps on
 * a set that is still changing. */
static void test_late_lower_name_restarts_settle(void **state)
{
    struct gossip_member_info m[4];
    char addr[GOSSIP_ADDR_MAX];
    struct node_boot b;

    AT_UNUSED(state);
    m[0] = member("n2", GOSSIP_ALIVE, "voter", false);
    m[1] = member("n3", GOSSIP_ALIVE, "voter", false);
    m[2] = member("n4", GOSSIP_ALIVE, "voter", false);
    m[3] = member("n1", GOSSIP_ALIVE, "voter", false);
    node_boot_init(&b, "n2", "voter", 3, 1000);
    assert_int_equal(node_boot_decide(&b, m, 3, 1000, addr, NULL, 0),
                     NODE_BOOT_WAIT);
    assert_int_equal(node_boot_decide(&b, m, 4, 1900, addr, NULL, 0),
                     NODE_BOOT_WAIT);
    /* n2 would have been lowest at 2000 without n1 */
    assert_int_equal(node_boot_decide(&b, m, 4, 2100, addr, NULL, 0),
                     NODE_BOOT_WAIT);
    assert_int_equal(node_boot_decide(&b, m, 4, 3000, addr, NULL, 0),
                     NODE_BOOT_WAIT); /* n1's turn, not ours */
}

/* Once anyone is in a cluster, everybody else joins it (a voter rather
 * than an edge), including a lower name arriving late. */
static void test_join_existing(void **state)
{
    struct gossip_member_info m[4];
    char addr[GOSSIP_ADDR_MAX];
    struct node_boot b;

    AT_UNUSED(state);
    m[0] = member("n0", GOSSIP_ALIVE, "voter", false);
    m[1] = member("n5", GOSSIP_ALIVE, "edge", true);
    m[2] = member("n2", GOSSIP_ALIVE, "voter", true);
    m[3] = member("n3", GOSSIP_DEAD, "voter", true);
    node_boot_init(&b, "n0", "voter", 3, 0);
    assert_int_equal(node_boot_decide(&b, m, 4, 5000, addr, NULL, 0),
                     NODE_BOOT_JOIN);
    assert_string_equal(addr, "n2:5001");
    /* only a dead member in a cluster: not a way in */
    m[1].state = GOSSIP_LEFT;
    m[2].meta.flags = 0;
    assert_int_equal(node_boot_decide(&b, m, 4, 5000, addr, NULL, 0),
                     NODE_BOOT_WAIT);
}

/* Dead members and members that never vote are no candidates; an edge
 * never bootstraps, even when it is the lowest name. */
static void test_candidates(void **state)
{
    struct gossip_member_info m[5];
    char addr[GOSSIP_ADDR_MAX];
    char why[128];
    struct node_boot b;

    AT_UNUSED(state);
    m[0] = member("n1", GOSSIP_DEAD, "voter", false);
    m[1] = member("n2", GOSSIP_ALIVE, "voter", false);
    m[2] = member("n3", GOSSIP_SUSPECT, "voter", false);
    m[3] = member("n4", GOSSIP_ALIVE, "standby", false);
    m[4] = member("n0", GOSSIP_ALIVE, "edge", false);
    node_boot_init(&b, "n2", "voter", 3, 0);
    assert_int_equal(node_boot_decide(&b, m, 5, 10, addr, why, sizeof(why)),
                     NODE_BOOT_WAIT);
    assert_non_null(strstr(why, "2 of 3"));
    m[0].state = GOSSIP_ALIVE;
    assert_int_equal(node_boot_decide(&b, m, 5, 20, addr, why, sizeof(why)),
                     NODE_BOOT_WAIT); /* n1 is lowest */
    m[0].state = GOSSIP_LEFT;
    m[3] = member("n4", GOSSIP_ALIVE, "voter", false);
    assert_int_equal(node_boot_decide(&b, m, 5, 30, addr, why, sizeof(why)),
                     NODE_BOOT_BOOTSTRAP);
    node_boot_init(&b, "n0", "edge", 3, 0);
    assert_int_equal(node_boot_decide(&b, m, 5, 40, addr, why, sizeof(why)),
                     NODE_BOOT_WAIT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lowest_bootstraps),
        cmocka_unit_test(test_late_lower_name_restarts_settle),
        cmocka_unit_test(test_join_existing),
        cmocka_unit_test(test_candidates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
