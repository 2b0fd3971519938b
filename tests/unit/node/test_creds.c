/* Unit tests of node/creds.c: the three forms of a credentials file, the
 * host match (with ports, URL keys and Docker Hub's two names), no entry,
 * and refusals that name no secret. */
#include "common/compat.h"

#include <setjmp.h>

#include <cmocka.h>

#include "common/common.h"
#include "node/creds.h"

static void pair(const char *text,
                 const char *url,
                 const char *want_user,
                 const char *want_pass)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    char *u, *p;

    assert_int_equal(node_creds_for(text, url, &u, &p, errmsg), 0);
    if (want_user == NULL) {
        assert_null(u);
        assert_null(p);
        return;
    }
    assert_non_null(u);
    assert_string_equal(u, want_user);
    assert_string_equal(p, want_pass);
    node_creds_wipe(u);
    node_creds_wipe(p);
}

static void test_forms(void **state)
{
    (void)state;
    /* one pair for every host; the first line; a colon in the password */
    pair("alice:s3:cret\nignored\n", "https://a:5000", "alice", "s3:cret");
    /* by host (zot's form) */
    const char *byhost =
        "{\"a.example:5000\": {\"username\": \"u1\", "
        "\"password\": \"p1\"}, \"b.example\": "
        "{\"username\": \"u2\", \"password\": \"p2\"}}";
    pair(byhost, "https://a.example:5000", "u1", "p1");
    pair(byhost, "http://b.example/", "u2", "p2");
    pair(byhost, "https://a.example", NULL, NULL); /* port differs */
    /* a Docker config.json: auth is base64 of user:password; URL keys */
    const char *docker =
        "{\"auths\": {\"https://index.docker.io/v1/\": {\"auth\": "
        "\"aHViOmh1YnBhc3M=\"}, \"ghcr.io\": {\"auth\": "
        "\"Z2g6Z2hwYXNz\"}}}"; /* hub:hubpass, gh:ghpass */
    pair(docker, "https://registry-1.docker.io", "hub", "hubpass");
    pair(docker, "https://ghcr.io", "gh", "ghpass");
    pair(docker, "https://quay.io", NULL, NULL);
}

static void test_refusals(void **state)
{
    char errmsg[AT_ERRMSG_SIZE];
    char *u, *p;
    static const char *bad[] = {
        "no-colon-here",
        ":empty-user",
        "{\"auths\": [1, 2]}",
        "{\"h\": {\"auth\": \"bm9jb2xvbg==\"}}", /* "nocolon" */
        "{\"h\": {\"auth\": \"!!!\"}}",
        "{\"h\": {\"username\": \"u\"}}",
        "{not json",
    };
    (void)state;
    for (size_t i = 0; i < AT_ARRAY_SIZE(bad); i++) {
        errmsg[0] = '\0';
        assert_int_equal(node_creds_for(bad[i], "https://h", &u, &p, errmsg),
                         AT_EINVAL);
        assert_null(u);
        assert_true(errmsg[0] != '\0');
        assert_null(strstr(errmsg, "nocolon"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
