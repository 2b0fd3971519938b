/* Unit tests of node/auth/limit.c: failed-login limits per user name and
 * per address, windows, the bounded table, over an injected clock. */
#include "common/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "node/auth/limit.h"

static uint64_t now_ms;

static uint64_t fake_clock(void)
{
    return now_ms;
}

static struct node_auth_limit *limiter(unsigned user_max,
                                       unsigned addr_max,
                                       size_t entries)
{
    struct node_auth_limit_config cfg = {
        .user_max = user_max,
        .addr_max = addr_max,
        .window_ms = 60000,
        .entries = entries,
        .clock = fake_clock,
    };

    now_ms = 1000000;
    return node_auth_limit_new(&cfg);
}

/* The user's limit: refused for the rest of the window, even from another
 * address, and another user from the same address goes on. */
static void test_user_limit(void **state)
{
    struct node_auth_limit *l = limiter(10, 30, 0);
    struct node_auth_limit_stats st;
    AT_UNUSED(state);

    for (int i = 0; i < 10; i++) {
        assert_int_equal(node_auth_limit_check(l, "alice", "10.0.0.1:5"), 0);
        node_auth_limit_fail(l, "alice", "10.0.0.1:5");
        now_ms += 1000;
    }
    assert_int_equal(node_auth_limit_check(l, "alice", "10.0.0.1:6"),
                     AT_EAGAIN);
    assert_int_equal(node_auth_limit_check(l, "alice", "10.9.9.9:6"),
                     AT_EAGAIN);
    assert_int_equal(node_auth_limit_check(l, "bob", "10.0.0.1:7"), 0);
    /* the window opened at the first failure, 10 s ago: 50 s left */
    assert_int_equal(node_auth_limit_retry_after(l, "alice", NULL), 50);
    assert_int_equal(node_auth_limit_retry_after(l, "bob", "10.0.0.1"), 0);
    now_ms += 49999;
    assert_int_equal(node_auth_limit_check(l, "alice", NULL), AT_EAGAIN);
    assert_int_equal(node_auth_limit_retry_after(l, "alice", NULL), 1);
    now_ms += 1;
    assert_int_equal(node_auth_limit_check(l, "alice", NULL), 0);
    /* a new window: one failure is not enough */
    node_auth_limit_fail(l, "alice", NULL);
    assert_int_equal(node_auth_limit_check(l, "alice", NULL), 0);
    node_auth_limit_stats_get(l, &st);
    assert_int_equal(st.refused, 3);
    assert_int_equal(st.failures, 11);
    assert_int_equal(st.tracked, 2);
    node_auth_limit_free(l);
}

/* The address's limit over many names; success resets the user only. */
static void test_addr_limit(void **state)
{
    struct node_auth_limit *l = limiter(10, 30, 0);
    char name[16];
    AT_UNUSED(state);

    for (int i = 0; i < 29; i++) {
        snprintf(name, sizeof(name), "u%d", i);
        node_auth_limit_fail(l, name, "192.0.2.7:1000");
    }
    /* a good login of its own does not clear the address */
    node_auth_limit_ok(l, "mallory", "192.0.2.7:1001");
    node_auth_limit_fail(l, "u29", "192.0.2.7:1002");
    assert_int_equal(node_auth_limit_check(l, "anyone", "192.0.2.7:2000"),
                     AT_EAGAIN);
    assert_int_equal(node_auth_limit_check(l, "anyone", "192.0.2.7"),
                     AT_EAGAIN);
    assert_int_equal(node_auth_limit_check(l, "anyone", "192.0.2.8:1"), 0);
    assert_int_equal(node_auth_limit_check(l, NULL, "192.0.2.7:3"), AT_EAGAIN);
    /* IPv6 with and without a port */
    for (int i = 0; i < 30; i++)
        node_auth_limit_fail(l, NULL, "[2001:db8::1]:443");
    assert_int_equal(node_auth_limit_check(l, NULL, "[2001:db8::1]:9"),
                     AT_EAGAIN);
    assert_int_equal(node_auth_limit_check(l, NULL, "[2001:db8::2]:9"), 0);

    /* the user: success forgets its failures */
    for (int i = 0; i < 9; i++)
        node_auth_limit_fail(l, "carol", NULL);
    node_auth_limit_ok(l, "carol", NULL);
    node_auth_limit_fail(l, "carol", NULL);
    assert_int_equal(node_auth_limit_check(l, "carol", NULL), 0);
    node_auth_limit_free(l);
}

/* The table keeps at most `entries` keys; the least recently failed go. */
static void test_bounded(void **state)
{
    struct node_auth_limit *l = limiter(2, 100, 8);
    struct node_auth_limit_stats st;
    char name[16];
    AT_UNUSED(state);

    node_auth_limit_fail(l, "victim", NULL);
    node_auth_limit_fail(l, "victim", NULL);
    assert_int_equal(node_auth_limit_check(l, "victim", NULL), AT_EAGAIN);
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        node_auth_limit_fail(l, name, NULL);
    }
    /* refreshed: it stays while older ones go */
    node_auth_limit_fail(l, "victim", NULL);
    for (int i = 6; i < 13; i++) {
        snprintf(name, sizeof(name), "n%d", i);
        node_auth_limit_fail(l, name, NULL);
    }
    node_auth_limit_stats_get(l, &st);
    assert_int_equal(st.tracked, 8);
    assert_int_equal(node_auth_limit_check(l, "victim", NULL), AT_EAGAIN);
    node_auth_limit_fail(l, "n13", NULL);
    /* now the victim was the least recently failed: forgotten */
    assert_int_equal(node_auth_limit_check(l, "victim", NULL), 0);
    node_auth_limit_free(l);
    node_auth_limit_free(NULL);
}

/* Names longer than a key are cut, not overflowed; defaults apply. */
static void test_long_keys(void **state)
{
    struct node_auth_limit *l = node_auth_limit_new(NULL);
    char big[400];
    AT_UNUSED(state);

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    for (int i = 0; i < NODE_AUTH_LIMIT_USER_MAX; i++)
        node_auth_limit_fail(l, big, big);
    assert_int_equal(node_auth_limit_check(l, big, NULL), AT_EAGAIN);
    node_auth_limit_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_limit),
        cmocka_unit_test(test_addr_limit),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_long_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
