/* Unit tests of raft/users.c: the apply of the account commands, their
 * bounds, deterministic replay, and snapshots with and without accounts. */
#include "common/compat.h"

#include <setjmp.h>

#include <cmocka.h>

#include "raft/users.h"
#include "tests/unit/raft/helpers.h"

#define HASH1 "$2b$04$abcdefghijklmnopqrstuuQ2Fv9Yw0gL5pG9hQ3rKcJ1pWb0X5xK"
#define HASH2 "$2b$04$zyxwvutsrqponmlkjihgfeQ2Fv9Yw0gL5pG9hQ3rKcJ1pWb0X5xK"

static int user_put(struct meta_fsm *f,
                    const char *name,
                    const char *hash,
                    enum meta_put_mode mode)
{
    static const char *const groups[] = { "dev", "ops" };
    struct meta_cmd c = { .kind = META_CMD_USER_PUT };
    c.user_put.name = name;
    c.user_put.password_hash = hash;
    c.user_put.groups = groups;
    c.user_put.ngroups = 2;
    c.user_put.admin = true;
    c.user_put.mode = mode;
    return try_cmd(f, &c);
}

static int robot_put(struct meta_fsm *f, const char *name, uint64_t expires)
{
    static const struct meta_robot_perm perms[] = {
        { "lib/**", META_ACTION_PULL | META_ACTION_PUSH },
        { "public/*", META_ACTION_PULL },
    };
    struct meta_cmd c = { .kind = META_CMD_ROBOT_PUT };
    c.robot_put.name = name;
    c.robot_put.secret_hash = HASH1;
    c.robot_put.expires_ms = expires;
    c.robot_put.perms = perms;
    c.robot_put.nperms = 2;
    c.robot_put.mode = META_PUT_CREATE;
    return try_cmd(f, &c);
}

static int remove_cmd(struct meta_fsm *f,
                      enum meta_cmd_kind kind,
                      const char *n)
{
    struct meta_cmd c = { .kind = kind };
    if (kind == META_CMD_USER_REMOVE)
        c.user_remove.name = n;
    else
        c.robot_remove.name = n;
    return try_cmd(f, &c);
}

static uint64_t fake_ms;
static uint64_t fake_clock(void)
{
    return fake_ms;
}

static void test_user_apply(void **state)
{
    struct meta_fsm f;
    AT_UNUSED(state);
    meta__cmd_clock = fake_clock;
    fake_ms = 1234;
    meta_fsm_init(&f, 100);
    assert_int_equal(user_put(&f, "alice", HASH1, META_PUT_CREATE), META_OK);
    const struct meta_user *u = meta__user_find(&f, "alice");
    assert_non_null(u);
    assert_string_equal(u->password_hash, HASH1);
    assert_int_equal(u->ngroups, 2);
    assert_string_equal(u->groups[1], "ops");
    assert_true(u->admin);
    assert_int_equal(u->created_ms, 1234);
    uint64_t first = u->index;
    assert_int_equal(first, next_index - 1);

    /* create refuses a taken name and changes nothing */
    assert_int_equal(user_put(&f, "alice", HASH2, META_PUT_CREATE),
                     META_ACCOUNT_EXISTS);
    assert_string_equal(meta__user_find(&f, "alice")->password_hash, HASH1);
    /* a new password keeps the rest, and its index moves */
    fake_ms = 9999;
    assert_int_equal(user_put(&f, "bob", HASH2, META_PUT_PASSWORD),
                     META_ACCOUNT_UNKNOWN);
    assert_null(meta__user_find(&f, "bob"));
    assert_int_equal(user_put(&f, "alice", HASH2, META_PUT_PASSWORD), META_OK);
    u = meta__user_find(&f, "alice");
    assert_string_equal(u->password_hash, HASH2);
    assert_int_equal(u->created_ms, 1234);
    assert_true(u->index > first);
    /* upsert replaces the whole record */
    assert_int_equal(user_put(&f, "alice", HASH1, META_PUT_UPSERT), META_OK);
    assert_int_equal(meta__user_find(&f, "alice")->created_ms, 9999);

    assert_int_equal(remove_cmd(&f, META_CMD_USER_REMOVE, "alice"), META_OK);
    assert_null(meta__user_find(&f, "alice"));
    assert_int_equal(remove_cmd(&f, META_CMD_USER_REMOVE, "alice"),
                     META_ACCOUNT_UNKNOWN);
    meta_fsm_release(&f);
    meta__cmd_clock = at_wall_ms;
}

static void test_robot_apply(void **state)
{
    struct meta_fsm f;
    AT_UNUSED(state);
    meta_fsm_init(&f, 100);
    assert_int_equal(robot_put(&f, "ci", 5000), META_OK);
    assert_int_equal(robot_put(&f, "ci", 6000), META_ACCOUNT_EXISTS);
    const struct meta_robot *r = meta__robot_find(&f, "ci");
    assert_non_null(r);
    assert_int_equal(r->expires_ms, 5000);
    assert_int_equal(r->nperms, 2);
    assert_string_equal(r->perms[0].repository, "lib/**");
    assert_int_equal(r->perms[0].actions, META_ACTION_PULL | META_ACTION_PUSH);
    /* robots and users are separate name spaces */
    assert_null(meta__user_find(&f, "ci"));
    assert_int_equal(remove_cmd(&f, META_CMD_USER_REMOVE, "ci"),
                     META_ACCOUNT_UNKNOWN);
    assert_int_equal(remove_cmd(&f, META_CMD_ROBOT_REMOVE, "ci"), META_OK);
    assert_null(meta__robot_find(&f, "ci"));
    meta_fsm_release(&f);
}

/* The builder refuses what apply would, so a bad record never reaches the
 * log from this code; a command packed by hand reaches apply, which
 * refuses it as META_INVALID. */
static void test_bounds(void **state)
{
    struct meta_fsm f;
    char longname[80];
    AT_UNUSED(state);
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    const char *bad_users[] = { "",   "a:b", "robot$x", ".a",
                                "-a", "a b", "a/b",     longname };
    for (size_t i = 0; i < AT_ARRAY_SIZE(bad_users); i++)
        assert_false(meta_user_name_ok(bad_users[i]));
    longname[META_ACCOUNT_NAME_MAX] = '\0';
    assert_true(meta_user_name_ok(longname));
    assert_true(meta_user_name_ok("Alice.Smith@example-1.org"));
    assert_false(meta_robot_name_ok("Ci"));
    assert_false(meta_robot_name_ok("a@b"));
    assert_true(meta_robot_name_ok("ci-bot_1.x"));
    assert_false(meta_account_hash_ok("plain-text-password-here"));
    assert_false(meta_account_hash_ok("$2b$04$short"));
    assert_false(meta_account_hash_ok(HASH1 " "));
    assert_true(meta_repo_glob_ok("lib/**"));
    assert_false(meta_repo_glob_ok("Lib/*"));
    assert_false(meta_repo_glob_ok(""));

    meta_fsm_init(&f, 100);
    assert_int_equal(user_put(&f, "a:b", HASH1, META_PUT_CREATE), AT_EINVAL);
    assert_int_equal(user_put(&f, "alice", "secret", META_PUT_CREATE),
                     AT_EINVAL);
    assert_int_equal(remove_cmd(&f, META_CMD_ROBOT_REMOVE, "robot$x"),
                     AT_EINVAL);
    const char *groups[META_GROUPS_MAX + 1];
    for (size_t i = 0; i <= META_GROUPS_MAX; i++)
        groups[i] = "g";
    struct meta_cmd c = { .kind = META_CMD_USER_PUT };
    c.user_put.name = "alice";
    c.user_put.password_hash = HASH1;
    c.user_put.groups = groups;
    c.user_put.ngroups = META_GROUPS_MAX + 1;
    assert_int_equal(try_cmd(&f, &c), AT_EINVAL);
    c.user_put.ngroups = META_GROUPS_MAX;
    assert_int_equal(try_cmd(&f, &c), META_OK);
    struct meta_robot_perm p = { "lib/*", 16 };
    struct meta_cmd rc = { .kind = META_CMD_ROBOT_PUT };
    rc.robot_put.name = "ci";
    rc.robot_put.secret_hash = HASH1;
    rc.robot_put.perms = &p;
    rc.robot_put.nperms = 1;
    assert_int_equal(try_cmd(&f, &rc), AT_EINVAL); /* unknown action */
    p.actions = META_ACTION_DELETE;
    rc.robot_put.mode = META_PUT_PASSWORD;
    assert_int_equal(try_cmd(&f, &rc), AT_EINVAL); /* users only */

    /* by hand: a name apply must refuse */
    char e[AT_ERRMSG_SIZE];
    void *buf;
    size_t len;
    Atoll__Command hc = ATOLL__COMMAND__INIT;
    Atoll__UserPut up = ATOLL__USER_PUT__INIT;
    hc.version = PROTO_COMMAND_VERSION;
    hc.request_id = (char *)"";
    up.name = (char *)"robot$evil";
    up.password_hash = (char *)HASH1;
    hc.op_case = ATOLL__COMMAND__OP_USER_PUT;
    hc.user_put = &up;
    assert_int_equal(proto_command_pack(&hc, NULL, &buf, &len, e), 0);
    assert_int_equal(apply_buf(&f, buf, len), META_INVALID);
    up.name = (char *)"evil";
    up.mode = 7;
    assert_int_equal(proto_command_pack(&hc, NULL, &buf, &len, e), 0);
    assert_int_equal(apply_buf(&f, buf, len), META_INVALID);
    assert_null(meta__user_find(&f, "evil"));
    meta_fsm_release(&f);
}

static void test_limit(void **state)
{
    struct meta_fsm f;
    char name[32];
    AT_UNUSED(state);
    meta_fsm_init(&f, 4);
    for (int i = 0; i < META_USERS_MAX; i++) {
        snprintf(name, sizeof(name), "u%05d", i);
        assert_int_equal(user_put(&f, name, HASH1, META_PUT_CREATE), META_OK);
    }
    assert_int_equal(user_put(&f, "one-more", HASH1, META_PUT_CREATE),
                     META_ACCOUNT_LIMIT);
    /* a replacement is no new record */
    assert_int_equal(user_put(&f, "u00007", HASH2, META_PUT_UPSERT), META_OK);
    assert_int_equal(remove_cmd(&f, META_CMD_USER_REMOVE, "u00000"), META_OK);
    assert_int_equal(user_put(&f, "one-more", HASH1, META_PUT_CREATE), META_OK);
    meta_fsm_release(&f);
}

static void user_name(void *data, const struct meta_user *u)
{
    collect(data, u->name);
}

static void robot_name(void *data, const struct meta_robot *r)
{
    collect(data, r->name);
}

/* The same commands give the same state and hash on every replica. */
static void test_replay(void **state)
{
    struct meta_fsm f, g;
    struct names n1, n2;
    AT_UNUSED(state);
    /* commands carry the proposer's clock: the same on both replicas */
    meta__cmd_clock = fake_clock;
    fake_ms = 5678;
    meta_fsm_init(&f, 100);
    meta_fsm_init(&g, 100);
    const char *names[] = { "zed", "amy", "Bob", "carl" };
    uint64_t start = next_index;
    for (int pass = 0; pass < 2; pass++) {
        struct meta_fsm *x = pass == 0 ? &f : &g;
        next_index = start;
        for (size_t i = 0; i < AT_ARRAY_SIZE(names); i++)
            user_put(x, names[i], HASH1, META_PUT_CREATE);
        robot_put(x, "r2", 0);
        robot_put(x, "r1", 7);
        user_put(x, "amy", HASH2, META_PUT_PASSWORD);
        remove_cmd(x, META_CMD_USER_REMOVE, "carl");
    }
    assert_int_equal(f.hash, g.hash);
    memset(&n1, 0, sizeof(n1));
    memset(&n2, 0, sizeof(n2));
    meta__users_each(&f, true, user_name, &n1);
    meta__users_each(&g, true, user_name, &n2);
    assert_string_equal(n1.text, "Bob,amy,zed");
    assert_string_equal(n1.text, n2.text);
    assert_int_equal(meta__user_find(&f, "amy")->index,
                     meta__user_find(&g, "amy")->index);
    memset(&n1, 0, sizeof(n1));
    meta__robots_each(&f, true, robot_name, &n1);
    assert_string_equal(n1.text, "r1,r2");
    meta_fsm_release(&f);
    meta_fsm_release(&g);
    meta__cmd_clock = at_wall_ms;
}

static void test_snapshot(void **state)
{
    struct meta_fsm f, g;
    char e[AT_ERRMSG_SIZE];
    AT_UNUSED(state);
    meta_fsm_init(&f, 100);
    assert_int_equal(user_put(&f, "alice", HASH1, META_PUT_CREATE), META_OK);
    assert_int_equal(user_put(&f, "bob", HASH2, META_PUT_CREATE), META_OK);
    assert_int_equal(robot_put(&f, "ci", 42), META_OK);
    blob_stored(&f, "s1", "lib/a", "c1", 5);
    fsm_copy(&f, &g, 100);
    const struct meta_user *a = meta__user_find(&f, "alice");
    const struct meta_user *b = meta__user_find(&g, "alice");
    assert_non_null(b);
    assert_string_equal(a->password_hash, b->password_hash);
    assert_int_equal(a->index, b->index);
    assert_int_equal(a->created_ms, b->created_ms);
    assert_int_equal(b->ngroups, 2);
    assert_string_equal(b->groups[0], "dev");
    assert_true(b->admin);
    const struct meta_robot *r = meta__robot_find(&g, "ci");
    assert_non_null(r);
    assert_int_equal(r->expires_ms, 42);
    assert_int_equal(r->nperms, 2);
    assert_string_equal(r->perms[1].repository, "public/*");
    assert_int_equal(r->perms[1].actions, META_ACTION_PULL);
    assert_int_equal(g.users.len, 2);
    assert_int_equal(f.hash, g.hash);
    /* a snapshot job taken twice (the spare reused) says the same */
    void *b1, *b2;
    size_t l1, l2;
    struct meta_snap_job *j = meta_snap_job_take(&g);
    assert_int_equal(meta_snap_job_encode(j, NULL, &b1, &l1, e), 0);
    meta_snap_job_recycle(&g, j);
    j = meta_snap_job_take(&g);
    assert_int_equal(meta_snap_job_encode(j, NULL, &b2, &l2, e), 0);
    meta_snap_job_recycle(&g, j);
    assert_int_equal(l1, l2);
    assert_memory_equal(b1, b2, l1);
    free(b1);
    free(b2);
    meta_fsm_release(&f);
    meta_fsm_release(&g);
}

/* A snapshot of a node from before accounts restores with none; one with
 * a duplicate or malformed account is refused. */
static void test_snapshot_old_and_bad(void **state)
{
    struct meta_fsm g;
    char e[AT_ERRMSG_SIZE];
    void *buf;
    size_t len;
    AT_UNUSED(state);
    Atoll__Snapshot s = ATOLL__SNAPSHOT__INIT;
    s.version = PROTO_SNAPSHOT_VERSION;
    s.applied_index = 9;
    assert_int_equal(proto_snapshot_pack(&s, NULL, &buf, &len, e), 0);
    meta_fsm_init(&g, 100);
    assert_int_equal(user_put(&g, "gone", HASH1, META_PUT_CREATE), META_OK);
    assert_int_equal(meta_fsm_restore(&g, buf, len, e), 0);
    free(buf);
    assert_null(meta__user_find(&g, "gone"));
    assert_int_equal(g.users.len, 0);
    assert_int_equal(g.applied_index, 9);

    Atoll__UserPut u = ATOLL__USER_PUT__INIT;
    Atoll__SnapUser su = ATOLL__SNAP_USER__INIT;
    Atoll__SnapUser *sus[2] = { &su, &su };
    u.name = (char *)"alice";
    u.password_hash = (char *)HASH1;
    su.user = &u;
    su.index = 3;
    s.users = sus;
    s.n_users = 2; /* twice the same name */
    assert_int_equal(proto_snapshot_pack(&s, NULL, &buf, &len, e), 0);
    assert_int_equal(meta_fsm_restore(&g, buf, len, e), AT_ECORRUPT);
    free(buf);
    s.n_users = 1;
    u.password_hash = (char *)"not a hash";
    assert_int_equal(proto_snapshot_pack(&s, NULL, &buf, &len, e), 0);
    assert_int_equal(meta_fsm_restore(&g, buf, len, e), AT_ECORRUPT);
    free(buf);
    su.user = NULL; /* a record without its user */
    assert_int_equal(proto_snapshot_pack(&s, NULL, &buf, &len, e), 0);
    assert_int_equal(meta_fsm_restore(&g, buf, len, e), AT_ECORRUPT);
    free(buf);
    u.password_hash = (char *)HASH1;
    su.user = &u;
    assert_int_equal(proto_snapshot_pack(&s, NULL, &buf, &len, e), 0);
    assert_int_equal(meta_fsm_restore(&g, buf, len, e), 0);
    free(buf);
    assert_int_equal(meta__user_find(&g, "alice")->index, 3);
    meta_fsm_release(&g);
}

static bool snapshot_written(struct node_ctx *c)
{
    return has_snapshot(c->tmp);
}

/* Through a real node: meta_propose, the local reads, and a restart from
 * the log, then from a snapshot. */
static void test_node_restart(void **state)
{
    struct node_ctx *c = node_ctx_new();
    AT_UNUSED(state);
    node_open(c, c->tmp, 0);
    struct meta_cmd u = { .kind = META_CMD_USER_PUT };
    u.user_put.name = "alice";
    u.user_put.password_hash = HASH1;
    u.user_put.mode = META_PUT_CREATE;
    struct meta_robot_perm p = { "lib/*", META_ACTION_PULL };
    struct meta_cmd r = { .kind = META_CMD_ROBOT_PUT };
    r.robot_put.name = "ci";
    r.robot_put.secret_hash = HASH2;
    r.robot_put.perms = &p;
    r.robot_put.nperms = 1;
    want_acks = 2;
    assert_int_equal(meta_propose(c->m, &u, on_write, c), 0);
    assert_int_equal(meta_propose(c->m, &r, on_write, c), 0);
    run_until(c, acks_done);
    assert_int_equal(c->acked, 2);
    struct names n;
    memset(&n, 0, sizeof(n));
    meta_users_list(c->m, user_name, &n);
    assert_string_equal(n.text, "alice");
    node_close(c);

    node_open(c, c->tmp, 64); /* from the log */
    assert_non_null(meta_user_get(c->m, "alice"));
    assert_string_equal(meta_robot_get(c->m, "ci")->secret_hash, HASH2);
    node_write_batch(c, 0, 200); /* snapshots are taken */
    run_until(c, snapshot_written);
    node_close(c);
    node_open(c, c->tmp, 64); /* from a snapshot */
    assert_string_equal(meta_user_get(c->m, "alice")->password_hash, HASH1);
    memset(&n, 0, sizeof(n));
    meta_robots_list(c->m, robot_name, &n);
    assert_string_equal(n.text, "ci");
    assert_null(meta_user_get(c->m, "ci"));
    node_close(c);
    node_ctx_free(c);
}

int main(void)
{
    at_log_configure(getenv("META_LOG") ? getenv("META_LOG") : "error");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_apply),
        cmocka_unit_test(test_robot_apply),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_replay),
        cmocka_unit_test(test_snapshot),
        cmocka_unit_test(test_snapshot_old_and_bad),
        cmocka_unit_test(test_node_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
