/* Unit tests of the htpasswd parser (node/auth/htpasswd.c): good files,
 * and each bad line refused with its number. */
#include "common/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "node/auth/auth.h"

#define H1 "$2y$05$abcdefghijklmnopqrstuuQ2Fv9Yw0gL5pG9hQ3rKcJ1pWb0X5xKa"
#define H2 "$2b$10$ABCDEFGHIJKLMNOPQRSTUuQ2Fv9Yw0gL5pG9hQ3rKcJ1pWb0X5xKa"

static int parse(const char *text, struct node_auth_htpasswd **h, char *e)
{
    *h = NULL;
    return node_auth_htpasswd_parse(text, strlen(text), h, e);
}

static void test_good(void **state)
{
    struct node_auth_htpasswd *h;
    char e[AT_ERRMSG_SIZE];
    AT_UNUSED(state);
    /* comments, empty lines, CRLF, no final newline */
    assert_int_equal(parse("# team\n\nalice:" H1 "\r\n"
                           "bob.smith@example.org:" H2,
                           &h, e),
                     0);
    assert_int_equal(node_auth_htpasswd_count(h), 2);
    assert_string_equal(node_auth_htpasswd_find(h, "alice"), H1);
    assert_string_equal(node_auth_htpasswd_find(h, "bob.smith@example.org"),
                        H2);
    assert_null(node_auth_htpasswd_find(h, "carol"));
    assert_null(node_auth_htpasswd_find(h, "Alice"));
    node_auth_htpasswd_free(h);
    assert_int_equal(parse("", &h, e), 0);
    assert_int_equal(node_auth_htpasswd_count(h), 0);
    node_auth_htpasswd_free(h);
}

static void test_bad(void **state)
{
    static const struct {
        const char *text;
        const char *why;
    } bad[] = {
        { "alice\n", "line 1: want name:hash" },
        { "# ok\nalice:" H1 "\nalice:" H2 "\n",
          "line 3: user 'alice' appears twice" },
        { "alice:$apr1$abc$defghijklmnopqrstuvwxy\n",
          "line 1: user 'alice': not a bcrypt" },
        { "alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", "not a bcrypt" },
        { "alice:plaintext\n", "not a bcrypt" },
        { "alice:$2a$05$"
          "abcdefghijklmnopqrstuuQ2Fv9Yw0gL5pG9hQ3rKcJ1pWb0X5xKa\n",
          "not a bcrypt" },
        { "alice:$2y$03$"
          "abcdefghijklmnopqrstuuQ2Fv9Yw0gL5pG9hQ3rKcJ1pWb0X5xKa\n",
          "not a bcrypt" },
        { "alice:$2y$05$abcdefghijklmnopqrstuuQ2Fv9Yw0gL5pG9hQ3rKcJ1pWb0X5xK\n",
          "not a bcrypt" },
        { "alice:$2y$05$abcdefghijklmnopqrstuuQ2Fv9Yw0gL5pG9hQ3rKcJ1pWb0X5x!"
          "a\n",
          "not a bcrypt" },
        { ":" H1 "\n", "line 1: bad user name" },
        { "robot$ci:" H1 "\n", "line 1: bad user name" },
        { "a b:" H1 "\n", "bad user name" },
        { "\n\n\n-lead:" H1 "\n", "line 4: bad user name" },
    };
    struct node_auth_htpasswd *h;
    char e[AT_ERRMSG_SIZE];
    AT_UNUSED(state);
    for (size_t i = 0; i < AT_ARRAY_SIZE(bad); i++) {
        e[0] = '\0';
        assert_int_equal(parse(bad[i].text, &h, e), AT_EINVAL);
        assert_null(h);
        if (strstr(e, bad[i].why) == NULL)
            fail_msg("case %zu: '%s' lacks '%s'", i, e, bad[i].why);
    }
    /* a NUL inside a line */
    char nul[80];
    size_t n = (size_t)snprintf(nul, sizeof(nul), "al%cce:%s", 'X', H1);
    nul[2] = '\0';
    assert_int_equal(node_auth_htpasswd_parse(nul, n, &h, e), AT_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
