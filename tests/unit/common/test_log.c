/* Unit tests of common/log.c and common/err.c: log levels per component,
 * text and JSON lines, the JSON escaper, error texts. */
#include "common/compat.h"

#include <setjmp.h>

#include <cmocka.h>
#include <jansson.h>

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

static void esc_is(const char *in, size_t n, const char *want)
{
    char out[256];

    at_log_json_escape(out, sizeof(out), in, n);
    assert_string_equal(out, want);
}

static void test_json_escape(void **state)
{
    char out[16];
    AT_UNUSED(state);

    esc_is("plain", 5, "plain");
    esc_is("a\"b\\c", 5, "a\\\"b\\\\c");
    esc_is("\n\r\t\b\f\x01\x0b\x1f", 8, "\\n\\r\\t\\b\\f\\u0001\\u000b\\u001f");
    esc_is("nul\0x", 5, "nul\\u0000x");
    /* valid UTF-8 of 2, 3 and 4 bytes passes */
    esc_is("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9,
           "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    /* invalid: stray continuation, bad lead bytes, overlong, surrogate,
     * over U+10FFFF, truncated */
    esc_is("\x80", 1, "\\ufffd");
    esc_is("\xff\xfe", 2, "\\ufffd\\ufffd");
    esc_is("\xc0\xaf", 2, "\\ufffd\\ufffd");
    esc_is("\xe0\x80\x80", 3, "\\ufffd\\ufffd\\ufffd");
    esc_is("\xed\xa0\x80", 3, "\\ufffd\\ufffd\\ufffd");
    esc_is("\xf4\x90\x80\x80", 4, "\\ufffd\\ufffd\\ufffd\\ufffd");
    esc_is("a\xe2\x82", 3, "a\\ufffd\\ufffd");
    esc_is("\xe2\x82z", 3, "\\ufffd\\ufffdz");
    /* a small buffer never splits an escape or a character */
    assert_int_equal(at_log_json_escape(out, 6, "abcd\n", 5), 4);
    assert_string_equal(out, "abcd");
    assert_int_equal(
        at_log_json_escape(out, 8, "ab\xe2\x82\xac\xe2\x82\xac", 8), 5);
    assert_string_equal(out, "ab\xe2\x82\xac");
    assert_int_equal(at_log_json_escape(out, 1, "x", 1), 0);
    assert_string_equal(out, "");
}

/* Lines written while f is the stream, as one string (owned). */
static char *capture_end(FILE *f, char **buf)
{
    fflush(f);
    at_log_set_stream(NULL);
    fclose(f);
    return *buf;
}

/* Every line of text is one JSON object; returns how many. */
static int json_lines(const char *text, json_t **last)
{
    int n = 0;
    const char *p = text;

    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        json_error_t err;
        json_t *o;

        assert_non_null(nl);
        o = json_loadb(p, (size_t)(nl - p), 0, &err);
        if (o == NULL)
            fail_msg("not JSON (%s): %.*s", err.text, (int)(nl - p), p);
        assert_true(json_is_object(o));
        if (last != NULL) {
            json_decref(*last);
            *last = o;
        } else {
            json_decref(o);
        }
        n++;
        p = nl + 1;
    }
    return n;
}

static void test_json_lines(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    char big[6000];
    json_t *o = NULL;
    const struct at_log_field fields[] = {
        AT_LOG_STR("method", "GET"),
        AT_LOG_STR("path", "/v2/a\"b\n\xff/manifests/x"),
        AT_LOG_INT("status", 200),
        AT_LOG_MICROS("duration_ms", 1234),
        AT_LOG_STR("user", NULL),
    };
    AT_UNUSED(state);

    memset(big, '\x01', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(at_log_set_format("yaml"), AT_EINVAL);
    assert_int_equal(at_log_set_format("json"), 0);
    assert_int_equal(at_log_format(), AT_LOG_FORMAT_JSON);
    at_log_set_stream(f);
    LOG_INFO("hello \"%s\"\n\tbye \xc3", "q");
    LOG_FIELDS(AT_LOG_LEVEL_INFO, fields, AT_ARRAY_SIZE(fields), "request");
    /* a message far over the line: cut, and the fields still come */
    LOG_FIELDS(AT_LOG_LEVEL_WARN, fields, AT_ARRAY_SIZE(fields), "%s%s", big,
               big);
    LOG_WARN("%s", big);
    capture_end(f, &buf);
    assert_int_equal(at_log_set_format("text"), 0);

    assert_int_equal(json_lines(buf, NULL), 4);
    {
        const char *nl = strchr(buf, '\n');
        json_error_t err;
        o = json_loadb(buf, (size_t)(nl - buf), 0, &err);
        assert_non_null(o);
        assert_string_equal(json_string_value(json_object_get(o, "msg")),
                            "hello \"q\"\n\tbye \xef\xbf\xbd");
        assert_string_equal(json_string_value(json_object_get(o, "level")),
                            "info");
        assert_string_equal(json_string_value(json_object_get(o, "component")),
                            "atoll");
        assert_true(strncmp(json_string_value(json_object_get(o, "caller")),
                            "test_log.c:", 11) == 0);
        /* RFC 3339, UTC, milliseconds */
        assert_int_equal(strlen(json_string_value(json_object_get(o, "time"))),
                         24);
        json_decref(o);
        o = NULL;
        json_lines(nl + 1, &o);
    }
    /* the last full line, with its fields */
    json_decref(o);
    o = NULL;
    {
        char *third = strchr(strchr(buf, '\n') + 1, '\n') + 1;
        char *end = strchr(third, '\n');
        json_error_t err;
        o = json_loadb(third, (size_t)(end - third), 0, &err);
        assert_non_null(o);
        assert_true(end - third < AT_LOG_LINE_MAX);
        assert_string_equal(json_string_value(json_object_get(o, "path")),
                            "/v2/a\"b\n\xef\xbf\xbd/manifests/x");
        assert_int_equal(json_integer_value(json_object_get(o, "status")), 200);
        assert_true(json_real_value(json_object_get(o, "duration_ms")) ==
                    1.234);
        assert_string_equal(json_string_value(json_object_get(o, "user")), "-");
        json_decref(o);
    }
    free(buf);
}

static void test_text_lines(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    const struct at_log_field fields[] = {
        AT_LOG_STR("user", "alice"),
        AT_LOG_STR("path", "/a b\"c"),
        AT_LOG_STR("empty", ""),
        AT_LOG_MICROS("ms", 5),
    };
    AT_UNUSED(state);

    at_log_set_stream(f);
    LOG_INFO("two\nlines");
    LOG_FIELDS(AT_LOG_LEVEL_INFO, fields, AT_ARRAY_SIZE(fields), "request");
    capture_end(f, &buf);
    assert_non_null(strstr(buf, " INFO  atoll test_log.c:"));
    assert_non_null(strstr(buf, " two\\x0alines\n"));
    assert_non_null(strstr(buf,
                           " request user=alice path=\"/a b\\\"c\" empty=\"\" "
                           "ms=0.005\n"));
    free(buf);
}

/* A batching thread's lines wait for a flush, a WARN line or the stop;
 * their order stays. */
static void test_batch(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    AT_UNUSED(state);

    at_log_set_stream(f);
    at_log_batch_start();
    LOG_INFO("one");
    fflush(f);
    assert_int_equal(len, 0);
    LOG_WARN("two");
    fflush(f);
    assert_non_null(strstr(buf, "one\n"));
    assert_true(strstr(buf, "one\n") < strstr(buf, "two\n"));
    LOG_INFO("three");
    fflush(f);
    assert_null(strstr(buf, "three"));
    at_log_flush();
    fflush(f);
    assert_non_null(strstr(buf, "three\n"));
    /* more than the buffer holds: written as it fills, none lost */
    for (int i = 0; i < 2000; i++)
        LOG_INFO("line %04d %0100d", i, 0);
    LOG_INFO("last");
    at_log_batch_stop();
    LOG_INFO("direct");
    fflush(f);
    assert_non_null(strstr(buf, "line 1999 "));
    assert_non_null(strstr(buf, "last\n"));
    assert_true(strstr(buf, "last\n") < strstr(buf, "direct\n"));
    capture_end(f, &buf);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_configure), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_json_escape),   cmocka_unit_test(test_json_lines),
        cmocka_unit_test(test_text_lines),    cmocka_unit_test(test_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
