/* Unit tests of common/digest.c: digest parsing and formatting, streaming
 * sha256. */
#include "common/compat.h"

#include <setjmp.h>

#include <cmocka.h>

#include "common/common.h"

#define EMPTY_SHA \
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ABC_SHA \
    "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static void test_digest_parse_valid(void **state)
{
    struct at_digest d;
    char out[AT_DIGEST_STR_SIZE];
    char hex[AT_DIGEST_HEX_LEN + 1];
    AT_UNUSED(state);

    assert_int_equal(at_digest_parse(EMPTY_SHA, strlen(EMPTY_SHA), &d), 0);
    assert_int_equal(d.bytes[0], 0xe3);
    assert_int_equal(d.bytes[31], 0x55);
    assert_string_equal(at_digest_format(&d, out), EMPTY_SHA);
    assert_string_equal(at_digest_hex(&d, hex), EMPTY_SHA + 7);
    /* The length argument is honoured: trailing bytes are not read. */
    {
        char longer[100];
        snprintf(longer, sizeof(longer), "%sXYZ", ABC_SHA);
        assert_int_equal(at_digest_parse(longer, strlen(ABC_SHA), &d), 0);
        assert_string_equal(at_digest_format(&d, out), ABC_SHA);
        assert_int_equal(at_digest_parse(longer, strlen(longer), &d),
                         AT_EINVAL);
    }
}

static void test_digest_parse_invalid(void **state)
{
    struct at_digest d;
    char buf[200];
    static const char *bad[] = {
        "",
        "sha256",
        "sha256:",
        ":",
        "nocolon",
        "sha256:totallywrong",
        /* 63 and 65 hex characters */
        "sha256:"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
        "sha256:"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
        /* uppercase hex */
        "sha256:"
        "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        "sha256:"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85G",
        "SHA256:"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        " sha256:"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "sha512:abcd",
        "-sha:abc",
        "a+:abc",
        "sha256:"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85!",
        "foo:bar baz",
    };
    AT_UNUSED(state);

    for (size_t i = 0; i < AT_ARRAY_SIZE(bad); i++) {
        int rv = at_digest_parse(bad[i], strlen(bad[i]), &d);
        if (rv != AT_EINVAL)
            fail_msg("'%s': got %d, want AT_EINVAL", bad[i], rv);
    }
    /* An embedded NUL inside the hex part. */
    memcpy(buf, EMPTY_SHA, sizeof(EMPTY_SHA));
    buf[20] = '\0';
    assert_int_equal(at_digest_parse(buf, strlen(EMPTY_SHA), &d), AT_EINVAL);
}

static void test_digest_parse_unsupported(void **state)
{
    struct at_digest d;
    char s512[7 + 128 + 1];
    AT_UNUSED(state);

    memcpy(s512, "sha512:", 7);
    memset(s512 + 7, 'a', 128);
    s512[7 + 128] = '\0';
    assert_int_equal(at_digest_parse(s512, strlen(s512), &d), AT_EUNSUPPORTED);
    /* Uppercase in sha512 is still malformed. */
    s512[10] = 'A';
    assert_int_equal(at_digest_parse(s512, strlen(s512), &d), AT_EINVAL);
    /* Well-formed digests of algorithms we do not know. */
    assert_int_equal(at_digest_parse("blake3:abcd", 11, &d), AT_EUNSUPPORTED);
    assert_int_equal(
        at_digest_parse(
            "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
            strlen("multihash+base58:QmRZxt2b1FVZPNqd"
                   "8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8"),
            &d),
        AT_EUNSUPPORTED);
}

static void test_digest_roundtrip(void **state)
{
    struct at_digest d;
    struct at_digest e;
    char s[AT_DIGEST_STR_SIZE];
    AT_UNUSED(state);

    for (int i = 0; i < 256; i++) {
        for (int j = 0; j < AT_DIGEST_LEN; j++)
            d.bytes[j] = (uint8_t)(i * 31 + j * 7);
        at_digest_format(&d, s);
        assert_int_equal(strlen(s), 7 + AT_DIGEST_HEX_LEN);
        assert_int_equal(at_digest_parse(s, strlen(s), &e), 0);
        assert_true(at_digest_equal(&d, &e));
    }
    e.bytes[5] ^= 1;
    assert_false(at_digest_equal(&d, &e));
}

static void test_sha256_vectors(void **state)
{
    struct at_digest d;
    struct at_digest e;
    struct at_sha256 h;
    char s[AT_DIGEST_STR_SIZE];
    static char big[100000];
    AT_UNUSED(state);

    at_digest_of("", 0, &d);
    assert_string_equal(at_digest_format(&d, s), EMPTY_SHA);
    at_digest_of("abc", 3, &d);
    assert_string_equal(at_digest_format(&d, s), ABC_SHA);

    at_sha256_init(&h);
    at_sha256_final(&h, &d);
    assert_null(h.ctx);
    assert_string_equal(at_digest_format(&d, s), EMPTY_SHA);

    at_sha256_init(&h);
    at_sha256_update(&h, "a", 1);
    at_sha256_update(&h, "", 0);
    at_sha256_update(&h, "bc", 2);
    at_sha256_final(&h, &d);
    assert_string_equal(at_digest_format(&d, s), ABC_SHA);

    /* Streaming in odd-sized chunks equals one shot. */
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)(i * 7 + i / 13);
    at_digest_of(big, sizeof(big), &d);
    at_sha256_init(&h);
    for (size_t off = 0; off < sizeof(big);) {
        size_t n = AT_MIN(sizeof(big) - off, (off % 97) + 1);
        at_sha256_update(&h, big + off, n);
        off += n;
    }
    at_sha256_final(&h, &e);
    assert_true(at_digest_equal(&d, &e));

    /* Release without final frees the context. */
    at_sha256_init(&h);
    at_sha256_update(&h, "x", 1);
    at_sha256_release(&h);
    assert_null(h.ctx);
    at_sha256_release(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digest_parse_valid),
        cmocka_unit_test(test_digest_parse_invalid),
        cmocka_unit_test(test_digest_parse_unsupported),
        cmocka_unit_test(test_digest_roundtrip),
        cmocka_unit_test(test_sha256_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
