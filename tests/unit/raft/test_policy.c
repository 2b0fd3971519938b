/* Unit tests of raft/policy.c: the glob matcher, the longest-match
 * decision, the apply of PolicySet with its bounds, and snapshots with and
 * without a policy. */
#include "common/compat.h"

#include <setjmp.h>

#include <cmocka.h>

#include "raft/command.h"
#include "raft/policy.h"
#include "raft/snapshot.h"
#include "tests/unit/raft/helpers.h"

static void test_glob(void **state)
{
    AT_UNUSED(state);
    assert_true(meta_repo_glob_match("a/b", "a/b"));
    assert_false(meta_repo_glob_match("a/b", "a/bc"));
    assert_false(meta_repo_glob_match("a/b", "a"));
    assert_true(meta_repo_glob_match("a/*", "a/b"));
    assert_false(meta_repo_glob_match("a/*", "a/b/c"));
    assert_false(meta_repo_glob_match("a/*", "a"));
    assert_true(meta_repo_glob_match("a/*", "a/"));
    assert_true(meta_repo_glob_match("a/**", "a/b"));
    assert_true(meta_repo_glob_match("a/**", "a/b/c/d"));
    assert_false(meta_repo_glob_match("a/**", "a"));
    assert_false(meta_repo_glob_match("a/**", "ab/c"));
    assert_true(meta_repo_glob_match("**", "x/y/z"));
    assert_true(meta_repo_glob_match("*", "x"));
    assert_false(meta_repo_glob_match("*", "x/y"));
    assert_true(meta_repo_glob_match("*/nginx", "lib/nginx"));
    assert_false(meta_repo_glob_match("*/nginx", "a/lib/nginx"));
    assert_true(meta_repo_glob_match("**/nginx", "a/lib/nginx"));
    assert_true(meta_repo_glob_match("lib*/n*x", "library/nginx"));
    assert_false(meta_repo_glob_match("lib*/n*x", "library/nginy"));
    assert_true(meta_repo_glob_match("a/**/c", "a/b/x/c"));
    assert_true(meta_repo_glob_match("***", "a/b")); /* a run is "**" */
    /* many stars against a long name: linear, not exponential */
    char name[256];
    memset(name, 'a', 250);
    name[250] = '\0';
    assert_false(meta_repo_glob_match("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", name));
    assert_true(meta_repo_glob_match("**a**a**a**a**a**a**a**a**a**", name));
}

static const char *const alice[] = { "alice" };
static const char *const dev[] = { "dev" };
static const char *const ops[] = { "ops" };

#define P META_ACTION_PULL
#define U META_ACTION_PUSH
#define D META_ACTION_DELETE
#define O META_ACTION_OVERWRITE

static const struct meta_policy_rule rules[] = {
    { .repository = "**", .authenticated = true, .actions = P },
    { .repository = "public/**", .anonymous = true, .actions = P },
    { .repository = "team/**", .groups = dev, .ngroups = 1, .actions = P | U },
    { .repository = "team/**", .groups = ops, .ngroups = 1, .actions = D },
    { .repository = "team/secret",
      .users = alice,
      .nusers = 1,
      .actions = P | U | D | O },
    { .repository = "team/secret", .groups = dev, .ngroups = 1, .actions = 0 },
};

static void test_decide(void **state)
{
    const char *const g_dev[] = { "dev" };
    const char *const g_both[] = { "dev", "ops" };
    struct meta_caller anon = { 0 };
    struct meta_caller bob = { "bob", NULL, 0 };
    struct meta_caller carol = { "carol", g_dev, 1 };
    struct meta_caller dave = { "dave", g_both, 2 };
    struct meta_caller al = { "alice", g_dev, 1 };
    size_t n = AT_ARRAY_SIZE(rules);
    AT_UNUSED(state);

    assert_int_equal(meta_policy_decide(rules, n, &anon, "x"), 0);
    assert_int_equal(meta_policy_decide(rules, n, &anon, "public/a/b"), P);
    assert_int_equal(meta_policy_decide(rules, n, &bob, "x/y"), P);
    /* the public rule is longer but does not name bob */
    assert_int_equal(meta_policy_decide(rules, n, &bob, "public/a"), P);
    assert_int_equal(meta_policy_decide(rules, n, &carol, "team/a"), P | U);
    /* equally long globs add up */
    assert_int_equal(meta_policy_decide(rules, n, &dave, "team/a"), P | U | D);
    /* the longest match decides, even when it allows less: a deny */
    assert_int_equal(meta_policy_decide(rules, n, &carol, "team/secret"), 0);
    /* alice is in dev too: both exact rules count */
    assert_int_equal(meta_policy_decide(rules, n, &al, "team/secret"),
                     P | U | D | O);
    /* bob: only the catch-all rule names him */
    assert_int_equal(meta_policy_decide(rules, n, &bob, "team/secret"), P);
    assert_int_equal(meta_policy_decide(NULL, 0, &bob, "x"), 0);
}

static int policy_set(struct meta_fsm *f,
                      const struct meta_policy_rule *r,
                      size_t n,
                      bool reset)
{
    struct meta_cmd c = { .kind = META_CMD_POLICY_SET };
    c.policy_set.rules = r;
    c.policy_set.nrules = n;
    c.policy_set.reset = reset;
    return try_cmd(f, &c);
}

static void test_apply(void **state)
{
    struct meta_fsm f;
    AT_UNUSED(state);
    meta_fsm_init(&f, 100);
    assert_null(meta__policy_find(&f));
    assert_int_equal(policy_set(&f, rules, AT_ARRAY_SIZE(rules), false),
                     META_OK);
    const struct meta_policy *p = meta__policy_find(&f);
    assert_non_null(p);
    assert_int_equal(p->nrules, AT_ARRAY_SIZE(rules));
    assert_int_equal(p->index, f.applied_index);
    assert_string_equal(p->rules[4].users[0], "alice");
    assert_int_equal(p->rules[5].actions, 0);
    /* an empty policy is a policy (nobody but admins) */
    assert_int_equal(policy_set(&f, NULL, 0, false), META_OK);
    assert_non_null(meta__policy_find(&f));
    assert_int_equal(meta__policy_find(&f)->nrules, 0);
    assert_int_equal(policy_set(&f, NULL, 0, true), META_OK);
    assert_null(meta__policy_find(&f));
    meta_fsm_release(&f);
}

/* The proposer refuses what apply would refuse. */
static void test_bounds(void **state)
{
    struct meta_fsm f;
    char e[AT_ERRMSG_SIZE];
    void *buf;
    size_t len;
    static const char *const bad_name[] = { "has space" };
    struct meta_policy_rule r[] = {
        { .repository = "a/**", .authenticated = true, .actions = P },
    };
    struct meta_cmd c = { .kind = META_CMD_POLICY_SET };
    AT_UNUSED(state);
    meta_fsm_init(&f, 100);
    c.policy_set.rules = r;
    c.policy_set.nrules = 1;
    r[0].repository = "UPPER";
    assert_int_equal(meta__cmd_pack(&c, "s", NULL, &buf, &len, e), AT_EINVAL);
    r[0].repository = "a";
    r[0].actions = 16;
    assert_int_equal(meta__cmd_pack(&c, "s", NULL, &buf, &len, e), AT_EINVAL);
    r[0].actions = P;
    r[0].authenticated = false; /* no subject */
    assert_int_equal(meta__cmd_pack(&c, "s", NULL, &buf, &len, e), AT_EINVAL);
    r[0].users = bad_name;
    r[0].nusers = 1;
    assert_int_equal(meta__cmd_pack(&c, "s", NULL, &buf, &len, e), AT_EINVAL);
    c.policy_set.nrules = META_POLICY_RULES_MAX + 1;
    assert_int_equal(meta__cmd_pack(&c, "s", NULL, &buf, &len, e), AT_EINVAL);
    assert_null(meta__policy_find(&f));
    meta_fsm_release(&f);
}

static void test_snapshot(void **state)
{
    struct meta_fsm f, g, h;
    char e[AT_ERRMSG_SIZE];
    AT_UNUSED(state);
    meta_fsm_init(&f, 100);
    /* without a policy: none after the round trip */
    fsm_copy(&f, &h, 100);
    assert_null(meta__policy_find(&h));
    meta_fsm_release(&h);
    assert_int_equal(policy_set(&f, rules, AT_ARRAY_SIZE(rules), false),
                     META_OK);
    blob_stored(&f, "s1", "lib/a", "c1", 5);
    fsm_copy(&f, &g, 100);
    const struct meta_policy *a = meta__policy_find(&f);
    const struct meta_policy *b = meta__policy_find(&g);
    assert_non_null(b);
    assert_int_equal(a->index, b->index);
    assert_int_equal(a->nrules, b->nrules);
    for (size_t i = 0; i < a->nrules; i++) {
        assert_string_equal(a->rules[i].repository, b->rules[i].repository);
        assert_int_equal(a->rules[i].actions, b->rules[i].actions);
        assert_int_equal(a->rules[i].nusers, b->rules[i].nusers);
        assert_int_equal(a->rules[i].ngroups, b->rules[i].ngroups);
        assert_int_equal(a->rules[i].anonymous, b->rules[i].anonymous);
        assert_int_equal(a->rules[i].authenticated, b->rules[i].authenticated);
    }
    assert_int_equal(f.hash, g.hash);
    /* the job (taken twice, the spare reused) encodes the same bytes */
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
    /* an empty policy survives as one */
    assert_int_equal(policy_set(&f, NULL, 0, false), META_OK);
    fsm_copy(&f, &h, 100);
    assert_non_null(meta__policy_find(&h));
    assert_int_equal(meta__policy_find(&h)->nrules, 0);
    meta_fsm_release(&h);
    meta_fsm_release(&f);
    meta_fsm_release(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_glob),     cmocka_unit_test(test_decide),
        cmocka_unit_test(test_apply),    cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_snapshot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
