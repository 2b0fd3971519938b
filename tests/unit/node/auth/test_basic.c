/* Unit tests of node/auth/basic.c: Basic credentials out of an
 * Authorization header, and robot secrets. */
#include "common/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "node/auth/auth.h"

static void test_basic(void **state)
{
    char u[NODE_AUTH_NAME_SIZE], p[NODE_AUTH_PASSWORD_MAX + 1];
    AT_UNUSED(state);
    /* alice:s3cr:et (a colon in the password is the password's) */
    assert_int_equal(node_auth_basic_parse("Basic YWxpY2U6czNjcjpldA==", u,
                                           sizeof(u), p, sizeof(p)),
                     0);
    assert_string_equal(u, "alice");
    assert_string_equal(p, "s3cr:et");
    /* scheme in any case, padding optional, spaces around */
    assert_int_equal(node_auth_basic_parse("basic  YWxpY2U6czNjcjpldA ", u,
                                           sizeof(u), p, sizeof(p)),
                     0);
    assert_string_equal(p, "s3cr:et");
    /* robot$ci:x */
    assert_int_equal(node_auth_basic_parse("BASIC cm9ib3QkY2k6eA==", u,
                                           sizeof(u), p, sizeof(p)),
                     0);
    assert_string_equal(u, "robot$ci");
    /* an empty password parses (the verifier refuses it) */
    assert_int_equal(
        node_auth_basic_parse("Basic YWxpY2U6", u, sizeof(u), p, sizeof(p)), 0);
    assert_string_equal(p, "");

    static const char *bad[] = {
        NULL,
        "",
        "Basic",
        "Basic ",
        "Bearer YWxpY2U6eA==",
        "Basic YWxpY2U=",     /* no colon */
        "Basic YWxpY2U6eA=!", /* bad character */
        "Basic YWxpY2U6eA=x", /* data after padding */
        "Basic YWxpY2U6eB",   /* non-zero padding bits */
        "Basic YWxpY2U6eAA=", /* alice:x and a NUL */
        "Basic Y",            /* one character left over */
        "Basic%20YWxpY2U6eA==",
    };
    for (size_t i = 0; i < AT_ARRAY_SIZE(bad); i++) {
        if (node_auth_basic_parse(bad[i], u, sizeof(u), p, sizeof(p)) !=
            AT_EINVAL)
            fail_msg("case %zu accepted", i);
    }
    /* too long for the caller's buffers */
    assert_int_equal(
        node_auth_basic_parse("Basic YWxpY2U6czNjcjpldA==", u, 5, p, sizeof(p)),
        AT_EINVAL);
    assert_int_equal(
        node_auth_basic_parse("Basic YWxpY2U6czNjcjpldA==", u, sizeof(u), p, 7),
        AT_EINVAL);
    char huge[2100] = "Basic ";
    memset(huge + 6, 'Q', sizeof(huge) - 7);
    huge[sizeof(huge) - 1] = '\0';
    assert_int_equal(node_auth_basic_parse(huge, u, sizeof(u), p, sizeof(p)),
                     AT_EINVAL);
}

static void test_secret(void **state)
{
    char a[NODE_AUTH_SECRET_SIZE], b[NODE_AUTH_SECRET_SIZE];
    AT_UNUSED(state);
    node_auth_secret_new(a);
    node_auth_secret_new(b);
    assert_int_equal(strlen(a), NODE_AUTH_SECRET_SIZE - 1);
    assert_string_not_equal(a, b);
    for (size_t i = 0; a[i] != '\0'; i++) {
        char c = a[i];
        assert_true((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '-' || c == '_');
    }
    assert_true(strlen(a) <= NODE_AUTH_PASSWORD_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_secret),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
