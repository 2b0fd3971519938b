/* Unit tests of common/log.c and common/err.c: log levels per component, error
 * texts. */
#include "common/compat.h"

#include <setjmp.h>

#include <cmocka.h>

#include "common/common.h"

static void test_log_configure(void **state)
{
    AT_UNUSED(state);

    assert_int_equal(at_log_configure("info"), 0);
    assert_true(at_log_enabled("raft", AT_LOG_LEVEL_INFO));
    assert_false(at_log_enabled("raft", AT_LOG_LEVEL_DEBUG));

    assert_int_equal(at_log_configure("warn,raft:debug,http:error"), 0);
    assert_true(at_log_enabled("raft", AT_LOG_LEVEL_DEBUG));
    assert_false(at_log_enabled("http", AT_LOG_LEVEL_WARN));
    assert_true(at_log_enabled("http", AT_LOG_LEVEL_ERROR));
    assert_false(at_log_enabled("storage", AT_LOG_LEVEL_INFO));
    assert_true(at_log_enabled("storage", AT_LOG_LEVEL_WARN));

    /* A bad spec leaves the levels unchanged. */
    assert_int_equal(at_log_configure("verbose"), AT_EINVAL);
    assert_int_equal(at_log_configure("info,raft:loud"), AT_EINVAL);
    assert_int_equal(at_log_configure(":debug"), AT_EINVAL);
    assert_int_equal(
        at_log_configure("a-component-name-that-is-far-too-long:debug"),
        AT_EINVAL);
    assert_true(at_log_enabled("raft", AT_LOG_LEVEL_DEBUG));
    assert_false(at_log_enabled("storage", AT_LOG_LEVEL_INFO));

    assert_int_equal(at_log_configure("OFF"), 0);
    assert_false(at_log_enabled("x", AT_LOG_LEVEL_ERROR));
    assert_int_equal(at_log_configure("debug"), 0);
    assert_true(at_log_enabled("x", AT_LOG_LEVEL_DEBUG));
    LOG_DEBUG("log line from test_common: %d", 1);
    assert_int_equal(at_log_configure("info"), 0);
}

static void test_errors(void **state)
{
    char errmsg[AT_ERRMSG_SIZE];
    char *s;
    AT_UNUSED(state);

    assert_string_equal(at_strerror(0), "ok");
    assert_string_equal(at_strerror(AT_EINVAL), "invalid argument");
    assert_string_equal(at_strerror(-9999), "unknown error");
    assert_int_equal(at_err_from_errno(-ENOSPC), AT_ENOSPC);
    assert_int_equal(at_err_from_errno(-ENOENT), AT_ENOTFOUND);
    assert_int_equal(at_err_from_errno(0), 0);

    at_errmsg_printf(errmsg, "open '%s'", "/x");
    at_errmsg_wrapf(errmsg, "put blob '%s'", "sha256:1");
    assert_string_equal(errmsg, "put blob 'sha256:1': open '/x'");
    /* Long messages are truncated, never overflow. */
    at_errmsg_printf(errmsg, "%600s", "z");
    assert_int_equal(strlen(errmsg), AT_ERRMSG_SIZE - 1);
    at_errmsg_wrapf(errmsg, "%600s", "w");
    assert_int_equal(strlen(errmsg), AT_ERRMSG_SIZE - 1);

    s = at_asprintf("%s-%d", "a", 5);
    assert_string_equal(s, "a-5");
    free(s);
    s = at_strndup("abcdef", 3);
    assert_string_equal(s, "abc");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_configure),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
