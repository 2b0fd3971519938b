/* Unit tests of raft/nodes.c: the node table and the ids derived from
 * names. */
#include "common/compat.h"

#include <setjmp.h>

#include <cmocka.h>

#include "raft/command.h"
#include "raft/nodes.h"
#include "raft/snapshot.h"
#include "tests/unit/raft/helpers.h"

static int node_rm(struct meta_fsm *f, uint64_t id)
{
    struct meta_cmd c = { .kind = META_CMD_NODE_REMOVE,
                          .node_remove = { .id = id } };
    return try_cmd(f, &c);
}

/* The node table: upsert, conflicts, remove, snapshots, bad records. */
static void test_node_table(void **state)
{
    struct meta_fsm f, g;
    AT_UNUSED(state);
    meta_fsm_init(&f, 100);
    assert_int_equal(node_up(&f, 7, "a", "10.0.0.1:5001", false), META_OK);
    assert_int_equal(node_up(&f, 8, "b", "10.0.0.2:5001", true), META_OK);
    uint64_t v = f.nodes_version;
    assert_int_equal(node_up(&f, 8, "b", "10.0.0.2:5001", true), META_OK);
    assert_int_equal(f.nodes_version, v); /* same record: no change */
    assert_int_equal(node_up(&f, 8, "b", "10.0.0.3:5001", true), META_OK);
    assert_true(f.nodes_version > v);
    assert_string_equal(meta__node_find(&f, 8)->peer_address, "10.0.0.3:5001");
    /* a name belongs to one id */
    assert_int_equal(node_up(&f, 9, "a", "10.0.0.9:5001", false),
                     META_NODE_CONFLICT);
    assert_null(meta__node_find(&f, 9));
    assert_int_equal(node_rm(&f, 9), META_NODE_UNKNOWN);
    assert_int_equal(node_up(&f, 10, "c", "", false), META_OK);
    assert_int_equal(node_rm(&f, 10), META_OK);
    assert_null(meta__node_by_name(&f, "c"));
    /* malformed records are refused at pack time */
    assert_int_equal(node_up(&f, 0, "z", "x:1", false), AT_EINVAL);
    assert_int_equal(node_up(&f, 11, "", "x:1", false), AT_EINVAL);
    char longname[300];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(node_up(&f, 11, longname, "x:1", false), AT_EINVAL);
    assert_int_equal(node_rm(&f, 0), AT_EINVAL);

    /* snapshots carry the table */
    fsm_copy(&f, &g, 100);
    assert_int_equal(g.nodes.len, 2);
    const struct meta_noderec *b = meta__node_by_name(&g, "b");
    assert_non_null(b);
    assert_int_equal(b->id, 8);
    assert_true(b->standby);
    assert_string_equal(b->region, "eu");
    assert_string_equal(b->api_address, "127.0.0.1:5000");
    assert_int_equal(g.hash, f.hash);
    meta_fsm_release(&f);
    meta_fsm_release(&g);

    /* ids from names: stable, 32-bit, never 0 or 1 */
    assert_int_equal(meta_node_id_from_name("n1"),
                     meta_node_id_from_name("n1"));
    assert_int_not_equal(meta_node_id_from_name("n1"),
                         meta_node_id_from_name("n2"));
    for (int i = 0; i < 1000; i++) {
        char name[16];
        snprintf(name, sizeof(name), "node-%d", i);
        uint64_t id = meta_node_id_from_name(name);
        assert_true(id >= 2 && id <= 0x7fffffffu);
    }
}

int main(void)
{
    at_log_configure(getenv("META_LOG") ? getenv("META_LOG") : "error");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
