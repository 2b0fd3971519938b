/* Unit tests of common/base64.c: both alphabets, RFC 4648's test vectors,
 * padding rules and refusals. */
#include "common/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "common/base64.h"
#include "common/buf.h"
#include "common/err.h"

static const char *const plain[] = { "",     "f",     "fo",    "foo",
                                     "foob", "fooba", "foobar" };
static const char *const std[] = { "",         "Zg==",     "Zm8=",    "Zm9v",
                                   "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
static const char *const url[] = { "",       "Zg",      "Zm8",     "Zm9v",
                                   "Zm9vYg", "Zm9vYmE", "Zm9vYmFy" };

static void check(enum at_base64 a, const char *const *enc)
{
    for (size_t i = 0; i < AT_ARRAY_SIZE(plain); i++) {
        struct at_buf b;
        uint8_t out[16];
        at_buf_init(&b, 0);
        assert_int_equal(at_base64_encode(plain[i], strlen(plain[i]), a, &b),
                         0);
        assert_int_equal(b.len, strlen(enc[i]));
        assert_memory_equal(b.len ? b.data : "", enc[i], b.len);
        assert_int_equal(
            at_base64_decode(enc[i], strlen(enc[i]), a, out, sizeof(out)),
            (long)strlen(plain[i]));
        assert_memory_equal(out, plain[i], strlen(plain[i]));
        at_buf_release(&b);
    }
}

static void test_vectors(void **state)
{
    AT_UNUSED(state);
    check(AT_BASE64_STD, std);
    check(AT_BASE64_URL, url);
}

static void test_alphabets_and_padding(void **state)
{
    uint8_t out[8];
    AT_UNUSED(state);
    /* 0xfb 0xff: "+/8=" in one alphabet, "-_8" in the other */
    assert_int_equal(at_base64_decode("+/8=", 4, AT_BASE64_STD, out, 8), 2);
    assert_int_equal(at_base64_decode("-_8", 3, AT_BASE64_URL, out, 8), 2);
    assert_int_equal(out[0], 0xfb);
    assert_int_equal(at_base64_decode("-_8=", 4, AT_BASE64_STD, out, 8), -1);
    assert_int_equal(at_base64_decode("+/8", 3, AT_BASE64_URL, out, 8), -1);
    /* padding: none in URL, at the end and to a multiple of 4 in STD;
     * STD also takes it unpadded (some clients send it so) */
    assert_int_equal(at_base64_decode("Zg==", 4, AT_BASE64_URL, out, 8), -1);
    assert_int_equal(at_base64_decode("Zg", 2, AT_BASE64_STD, out, 8), 1);
    assert_int_equal(at_base64_decode("Zg=", 3, AT_BASE64_STD, out, 8), -1);
    assert_int_equal(at_base64_decode("Zg===", 5, AT_BASE64_STD, out, 8), -1);
    assert_int_equal(at_base64_decode("Z=g=", 4, AT_BASE64_STD, out, 8), -1);
}

static void test_refusals(void **state)
{
    uint8_t out[4];
    AT_UNUSED(state);
    /* a length no encoding has, a foreign character, leftover bits, and a
     * result over the room given */
    assert_int_equal(at_base64_decode("Zm9vY", 5, AT_BASE64_URL, out, 4), -1);
    assert_int_equal(at_base64_decode("Zm 9", 4, AT_BASE64_STD, out, 4), -1);
    assert_int_equal(at_base64_decode("Zh", 2, AT_BASE64_URL, out, 4), -1);
    assert_int_equal(at_base64_decode("Zm9vYmFy", 8, AT_BASE64_URL, out, 4),
                     -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_alphabets_and_padding),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
