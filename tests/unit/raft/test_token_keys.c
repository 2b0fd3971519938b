/* Unit tests of raft/token_keys.c: the apply of TokenKeyPut (bounds,
 * if_none, the newest META_TOKEN_KEYS_KEEP kept), deterministic replay,
 * and snapshots with, without and with malformed keys. */
#include "common/compat.h"

#include <setjmp.h>

#include <cmocka.h>

#include "raft/token_keys.h"
#include "tests/unit/raft/helpers.h"

#define PEM "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49\n-----END"

static int key_put(struct meta_fsm *f, const char *kid, bool if_none)
{
    struct meta_cmd c = { .kind = META_CMD_TOKEN_KEY_PUT };
    c.token_key_put.kid = kid;
    c.token_key_put.pem = PEM;
    c.token_key_put.if_none = if_none;
    return try_cmd(f, &c);
}

static void kid_join(void *data, const struct meta_token_key *k)
{
    struct names *n = data;
    n->n += (size_t)snprintf(n->text + n->n, sizeof(n->text) - n->n, "%s%s",
                             n->n > 0 ? "," : "", k->kid);
}

static const char *kids(const struct meta_fsm *f, struct names *n)
{
    memset(n, 0, sizeof(*n));
    meta__token_keys_each(f, kid_join, n);
    return n->text;
}

static uint64_t fake_clock(void)
{
    return 4242;
}

static void test_apply(void **state)
{
    struct meta_fsm f;
    struct names n;
    AT_UNUSED(state);
    meta__cmd_clock = fake_clock;
    meta_fsm_init(&f, 100);
    assert_string_equal(kids(&f, &n), "");
    assert_int_equal(key_put(&f, "k1", true), META_OK);
    assert_int_equal(f.tkeys[0].pub.created_ms, 4242);
    assert_string_equal(f.tkeys[0].pub.pem, PEM);
    /* a second first key is refused: one node won the race */
    assert_int_equal(key_put(&f, "k2", true), META_ACCOUNT_EXISTS);
    assert_int_equal(key_put(&f, "k1", false), META_ACCOUNT_EXISTS);
    assert_int_equal(key_put(&f, "k2", false), META_OK);
    assert_int_equal(key_put(&f, "k3", false), META_OK);
    assert_string_equal(kids(&f, &n), "k1,k2,k3");
    uint64_t v = f.tkeys[2].pub.index;
    /* rotation drops the oldest beyond the bound */
    assert_int_equal(key_put(&f, "k4", false), META_OK);
    assert_string_equal(kids(&f, &n), "k2,k3,k4");
    assert_true(f.tkeys[2].pub.index > v);
    /* a dropped kid may come back (it is a new key then) */
    assert_int_equal(key_put(&f, "k1", false), META_OK);
    assert_string_equal(kids(&f, &n), "k3,k4,k1");
    meta_fsm_release(&f);
    meta__cmd_clock = at_wall_ms;
}

static void test_bounds(void **state)
{
    struct meta_fsm f;
    char big[META_TOKEN_PEM_MAX + 2];
    AT_UNUSED(state);
    meta_fsm_init(&f, 100);
    /* the builder refuses bad kids and oversized PEM */
    assert_int_equal(key_put(&f, "", false), AT_EINVAL);
    assert_int_equal(key_put(&f, "a/b", false), AT_EINVAL);
    assert_int_equal(key_put(&f, NULL, false), AT_EINVAL);
    memset(big, 'k', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    big[META_TOKEN_KID_MAX + 1] = '\0';
    assert_int_equal(key_put(&f, big, false), AT_EINVAL);
    big[META_TOKEN_KID_MAX] = '\0';
    assert_int_equal(key_put(&f, big, false), META_OK);

    /* apply refuses what a hostile proposer could pack */
    static const char *const pems[] = { "", "junk", "-----BEGIN \x01" };
    for (size_t i = 0; i < AT_ARRAY_SIZE(pems); i++) {
        Atoll__Command c = ATOLL__COMMAND__INIT;
        Atoll__TokenKeyPut o = ATOLL__TOKEN_KEY_PUT__INIT;
        char e[AT_ERRMSG_SIZE];
        void *buf;
        size_t len;
        o.kid = (char *)"x1";
        o.private_key_pem = (char *)pems[i];
        c.version = PROTO_COMMAND_VERSION;
        c.request_id = (char *)"";
        c.op_case = ATOLL__COMMAND__OP_TOKEN_KEY_PUT;
        c.token_key_put = &o;
        assert_int_equal(proto_command_pack(&c, NULL, &buf, &len, e), 0);
        assert_int_equal(apply_buf(&f, buf, len), META_INVALID);
    }
    assert_int_equal(f.ntkeys, 1);
    meta_fsm_release(&f);
}

static void test_replay(void **state)
{
    struct meta_fsm f, g;
    struct names n1, n2;
    AT_UNUSED(state);
    meta__cmd_clock = fake_clock;
    meta_fsm_init(&f, 100);
    meta_fsm_init(&g, 100);
    uint64_t start = next_index;
    for (int pass = 0; pass < 2; pass++) {
        struct meta_fsm *x = pass == 0 ? &f : &g;
        next_index = start;
        key_put(x, "a", true);
        key_put(x, "b", true);
        for (int i = 0; i < 5; i++) {
            char kid[8];
            snprintf(kid, sizeof(kid), "r%d", i);
            key_put(x, kid, false);
        }
    }
    assert_int_equal(f.hash, g.hash);
    assert_string_equal(kids(&f, &n1), "r2,r3,r4");
    assert_string_equal(kids(&g, &n2), n1.text);
    assert_int_equal(f.tkeys[2].pub.index, g.tkeys[2].pub.index);
    meta_fsm_release(&f);
    meta_fsm_release(&g);
    meta__cmd_clock = at_wall_ms;
}

static void test_snapshot(void **state)
{
    struct meta_fsm f, g;
    struct names n;
    AT_UNUSED(state);
    meta_fsm_init(&f, 100);
    assert_int_equal(key_put(&f, "k1", true), META_OK);
    assert_int_equal(key_put(&f, "k2", false), META_OK);
    fsm_copy(&f, &g, 100);
    assert_string_equal(kids(&g, &n), "k1,k2");
    assert_int_equal(g.tkeys[1].pub.index, f.tkeys[1].pub.index);
    assert_int_equal(g.tkeys[1].pub.created_ms, f.tkeys[1].pub.created_ms);
    assert_string_equal(g.tkeys[1].pub.pem, PEM);
    /* if_none still sees the restored keys */
    assert_int_equal(key_put(&g, "k3", true), META_ACCOUNT_EXISTS);
    meta_fsm_release(&f);
    meta_fsm_release(&g);
}

/* A snapshot from before token keys restores with none; duplicate,
 * malformed or too many keys are refused. */
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
    assert_int_equal(key_put(&g, "gone", true), META_OK);
    assert_int_equal(meta_fsm_restore(&g, buf, len, e), 0);
    free(buf);
    assert_int_equal(g.ntkeys, 0);

    Atoll__TokenKeyPut k = ATOLL__TOKEN_KEY_PUT__INIT;
    Atoll__SnapTokenKey sk = ATOLL__SNAP_TOKEN_KEY__INIT;
    Atoll__SnapTokenKey *sks[4] = { &sk, &sk, &sk, &sk };
    k.kid = (char *)"k1";
    k.private_key_pem = (char *)PEM;
    sk.key = &k;
    sk.index = 3;
    s.token_keys = sks;
    s.n_token_keys = 2; /* the same kid twice */
    assert_int_equal(proto_snapshot_pack(&s, NULL, &buf, &len, e), 0);
    assert_int_equal(meta_fsm_restore(&g, buf, len, e), AT_ECORRUPT);
    free(buf);
    s.n_token_keys = 4; /* over the bound */
    assert_int_equal(proto_snapshot_pack(&s, NULL, &buf, &len, e), 0);
    assert_int_equal(meta_fsm_restore(&g, buf, len, e), AT_ECORRUPT);
    free(buf);
    s.n_token_keys = 1;
    k.private_key_pem = (char *)"not pem";
    assert_int_equal(proto_snapshot_pack(&s, NULL, &buf, &len, e), 0);
    assert_int_equal(meta_fsm_restore(&g, buf, len, e), AT_ECORRUPT);
    free(buf);
    sk.key = NULL;
    assert_int_equal(proto_snapshot_pack(&s, NULL, &buf, &len, e), 0);
    assert_int_equal(meta_fsm_restore(&g, buf, len, e), AT_ECORRUPT);
    free(buf);
    sk.key = &k;
    k.private_key_pem = (char *)PEM;
    assert_int_equal(proto_snapshot_pack(&s, NULL, &buf, &len, e), 0);
    assert_int_equal(meta_fsm_restore(&g, buf, len, e), 0);
    free(buf);
    assert_int_equal(g.ntkeys, 1);
    assert_int_equal(g.tkeys[0].pub.index, 3);
    meta_fsm_release(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_replay),
        cmocka_unit_test(test_snapshot),
        cmocka_unit_test(test_snapshot_old_and_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
