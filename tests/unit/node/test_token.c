/* Unit tests of node/token.c: the checks the /v2/ gate calls
 * (node_token_allows, node_token_challenge, node_token_check's
 * refusals) and the default grant, without a cluster. */
#include "common/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "node/token.h"

static struct node_token *make(const char *realm)
{
    static struct node_api api; /* no meta: no keys */
    struct node_token_config cfg = { "atoll", "reg", realm, 300000,
                                     node_token_grant_default };
    struct node_token *t = NULL;
    char errmsg[AT_ERRMSG_SIZE];
    assert_int_equal(node_token_new(&t, &api, &cfg, errmsg), 0);
    return t;
}

static void test_config(void **state)
{
    static struct node_api api;
    struct node_token_config cfg = { "atoll", "reg", "", 59000,
                                     node_token_grant_default };
    struct node_token *t = NULL;
    char errmsg[AT_ERRMSG_SIZE];
    AT_UNUSED(state);
    assert_int_equal(node_token_new(&t, &api, &cfg, errmsg), AT_EINVAL);
    cfg.ttl_ms = 60000;
    cfg.service = "a\"b";
    assert_int_equal(node_token_new(&t, &api, &cfg, errmsg), AT_EINVAL);
    cfg.service = "";
    assert_int_equal(node_token_new(&t, &api, &cfg, errmsg), AT_EINVAL);
}

static void test_challenge(void **state)
{
    struct node_token *t = make("");
    struct at_buf b;
    AT_UNUSED(state);
    at_buf_init(&b, 0);
    node_token_challenge(t, &b, "reg.example:5000", "https", "lib/app",
                         NODE_JWT_PULL | NODE_JWT_PUSH);
    assert_string_equal(b.data,
                        "Bearer realm=\"https://reg.example:5000/_atoll/"
                        "token\",service=\"reg\",scope=\"repository:lib/"
                        "app:pull,push\"");
    at_buf_reset(&b);
    node_token_challenge(t, &b, "evil\"host", "http", NULL, 0);
    assert_string_equal(b.data,
                        "Bearer realm=\"http://evilhost/_atoll/"
                        "token\",service=\"reg\"");
    at_buf_reset(&b);
    node_token_challenge(t, &b, NULL, "http", NULL, NODE_JWT_ANY);
    assert_string_equal(b.data,
                        "Bearer realm=\"http://localhost/_atoll/token\","
                        "service=\"reg\",scope=\"registry:catalog:*\"");
    at_buf_release(&b);
    node_token_close(t);
    t = make("https://auth.example/token");
    at_buf_init(&b, 0);
    node_token_challenge(t, &b, "ignored", "http", "a", NODE_JWT_DELETE);
    assert_string_equal(b.data,
                        "Bearer realm=\"https://auth.example/token\","
                        "service=\"reg\",scope=\"repository:a:delete\"");
    at_buf_release(&b);
    node_token_close(t);
}

static void test_allows(void **state)
{
    struct node_jwt_claims c;
    AT_UNUSED(state);
    memset(&c, 0, sizeof(c));
    assert_false(node_token_allows(&c, "a", NODE_JWT_PULL));
    assert_false(node_token_allows(&c, NULL, NODE_JWT_ANY));
    c.naccess = 2;
    snprintf(c.access[0].type, sizeof(c.access[0].type), "repository");
    snprintf(c.access[0].name, sizeof(c.access[0].name), "lib/app");
    c.access[0].actions = NODE_JWT_PULL;
    snprintf(c.access[1].type, sizeof(c.access[1].type), "registry");
    snprintf(c.access[1].name, sizeof(c.access[1].name), "catalog");
    c.access[1].actions = NODE_JWT_ANY;
    assert_true(node_token_allows(&c, "lib/app", NODE_JWT_PULL));
    assert_false(node_token_allows(&c, "lib/app", NODE_JWT_PUSH));
    assert_false(node_token_allows(&c, "lib/ap", NODE_JWT_PULL));
    assert_false(node_token_allows(&c, "lib/app/x", NODE_JWT_PULL));
    assert_false(node_token_allows(&c, "catalog", NODE_JWT_ANY));
    assert_true(node_token_allows(&c, NULL, NODE_JWT_ANY));
}

static void test_check_refusals(void **state)
{
    struct node_token *t = make("");
    struct node_jwt_claims c;
    AT_UNUSED(state);
    assert_int_equal(node_token_check(t, NULL, &c), AT_EINVAL);
    assert_int_equal(node_token_check(t, "Basic YTpi", &c), AT_EINVAL);
    assert_int_equal(node_token_check(t, "Bearer x.y.z", &c), AT_EINVAL);
    /* well formed, but no key here */
    assert_int_equal(
        node_token_check(t,
                         "bearer eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.e30."
                         "AAAA",
                         &c),
        AT_ENOTFOUND);
    assert_false(node_token_has_key(t));
    node_token_close(t);
}

static void test_grant(void **state)
{
    struct node_token *t = make("");
    struct node_auth_identity who = { .name = "alice" };
    struct node_jwt_access acc[2];
    size_t n = 2;
    AT_UNUSED(state);
    memset(acc, 0, sizeof(acc));
    snprintf(acc[0].type, sizeof(acc[0].type), "repository");
    snprintf(acc[0].name, sizeof(acc[0].name), "a");
    acc[0].actions = NODE_JWT_PULL | NODE_JWT_PUSH;
    snprintf(acc[1].type, sizeof(acc[1].type), "registry");
    snprintf(acc[1].name, sizeof(acc[1].name), "catalog");
    acc[1].actions = NODE_JWT_ANY;
    node_token_grant_apply(t, NULL, acc, &n); /* anonymous */
    assert_int_equal(n, 1);
    assert_int_equal(acc[0].actions, NODE_JWT_PULL);
    acc[0].actions = NODE_JWT_PULL | NODE_JWT_PUSH;
    n = 1;
    node_token_grant_apply(t, &who, acc, &n);
    assert_int_equal(acc[0].actions, NODE_JWT_PULL | NODE_JWT_PUSH);
    node_token_close(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config), cmocka_unit_test(test_challenge),
        cmocka_unit_test(test_allows), cmocka_unit_test(test_check_refusals),
        cmocka_unit_test(test_grant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
