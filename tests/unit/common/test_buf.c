/* Unit tests of common/buf.c: the growable buffer, printf and JSON strings. */
#include "common/compat.h"

#include <setjmp.h>

#include <cmocka.h>

#include "common/common.h"

static void test_buf_growth(void **state)
{
    struct at_buf b;
    AT_UNUSED(state);

    at_buf_init(&b, 0);
    for (int i = 0; i < 10000; i++)
        assert_int_equal(at_buf_append(&b, "0123456789", 10), 0);
    assert_int_equal(b.len, 100000);
    assert_true(b.cap > b.len);
    assert_int_equal(b.data[b.len], '\0');
    assert_memory_equal(b.data + 99990, "0123456789", 10);
    at_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    at_buf_release(&b);
    assert_null(b.data);
}

static void test_buf_max(void **state)
{
    struct at_buf b;
    AT_UNUSED(state);

    at_buf_init(&b, 10);
    assert_int_equal(at_buf_append(&b, "12345", 5), 0);
    assert_int_equal(at_buf_append(&b, "67890", 5), 0);
    assert_int_equal(b.len, 10);
    assert_int_equal(at_buf_append(&b, "x", 1), AT_ETOOBIG);
    assert_int_equal(at_buf_printf(&b, "%d", 1), AT_ETOOBIG);
    assert_int_equal(at_buf_json_str(&b, "", 0), AT_ETOOBIG);
    assert_string_equal(b.data, "1234567890");
    assert_int_equal(b.len, 10);
    assert_string_equal(b.data, "1234567890");
    /* A size near SIZE_MAX must not wrap around. */
    assert_int_equal(at_buf_reserve(&b, SIZE_MAX - 2), AT_ETOOBIG);
    at_buf_release(&b);

    at_buf_init(&b, 0);
    assert_int_equal(at_buf_reserve(&b, SIZE_MAX), AT_ETOOBIG);
    at_buf_release(&b);
}

/* A format that fits the spare room but passes max is refused and leaves
 * the buffer as it was (the room is larger than max after doubling). */
static void test_buf_printf_room(void **state)
{
    struct at_buf b;
    AT_UNUSED(state);

    at_buf_init(&b, 70);
    assert_int_equal(at_buf_printf(&b, "%65s", "a"), 0);
    assert_true(b.cap > 80);
    assert_int_equal(at_buf_printf(&b, "%10s", "b"), AT_ETOOBIG);
    assert_int_equal(b.len, 65);
    assert_int_equal(b.data[65], '\0');
    assert_int_equal(at_buf_printf(&b, "%5s", "c"), 0);
    assert_int_equal(b.len, 70);
    assert_int_equal(b.data[69], 'c');
    at_buf_release(&b);

    /* one that does not fit the room: reserved, then formatted */
    at_buf_init(&b, 0);
    assert_int_equal(at_buf_puts(&b, "x"), 0);
    assert_int_equal(at_buf_printf(&b, "%100s|%d", "y", 7), 0);
    assert_int_equal(b.len, 1 + 100 + 2);
    assert_string_equal(b.data + 100, "y|7");
    at_buf_release(&b);
}

static void test_buf_printf_take(void **state)
{
    struct at_buf b;
    char *s;
    size_t len;
    AT_UNUSED(state);

    at_buf_init(&b, 0);
    assert_int_equal(at_buf_puts(&b, "n="), 0);
    assert_int_equal(at_buf_printf(&b, "%d:%s", 42, "x"), 0);
    assert_string_equal(b.data, "n=42:x");
    /* Longer than any initial capacity. */
    assert_int_equal(at_buf_printf(&b, "%500s", "y"), 0);
    assert_int_equal(b.len, 6 + 500);
    s = at_buf_take(&b, &len);
    assert_int_equal(len, 506);
    assert_int_equal(s[505], 'y');
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    free(s);
    /* Taking an empty buffer gives an empty string, not NULL. */
    s = at_buf_take(&b, &len);
    assert_non_null(s);
    assert_int_equal(len, 0);
    assert_string_equal(s, "");
    free(s);
    at_buf_release(&b);
}

static void test_buf_json_str(void **state)
{
    struct at_buf b;
    const char in[] = "a\"b\\c\n\x01\x7f/\xc3\xa9";
    AT_UNUSED(state);

    at_buf_init(&b, 0);
    assert_int_equal(at_buf_json_str(&b, in, sizeof(in) - 1), 0);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\u000a\\u0001\x7f/\xc3\xa9\"");
    at_buf_reset(&b);
    /* Embedded NUL bytes are escaped, not truncated. */
    assert_int_equal(at_buf_json_str(&b, "x\0y", 3), 0);
    assert_string_equal(b.data, "\"x\\u0000y\"");
    at_buf_reset(&b);
    assert_int_equal(at_buf_json_str(&b, "", 0), 0);
    assert_string_equal(b.data, "\"\"");
    at_buf_release(&b);

    /* Escapes count against the bound. */
    at_buf_init(&b, 8);
    assert_int_equal(at_buf_json_str(&b, "\n\n", 2), AT_ETOOBIG);
    at_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_growth),
        cmocka_unit_test(test_buf_max),
        cmocka_unit_test(test_buf_printf_room),
        cmocka_unit_test(test_buf_printf_take),
        cmocka_unit_test(test_buf_json_str),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
