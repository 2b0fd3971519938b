/* Unit tests of common/: buffers, digests, sha256, hash map, parsers, log. */
#include "common/compat.h"

#include <setjmp.h>

#include <cmocka.h>

#include "common/common.h"

#define EMPTY_SHA \
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ABC_SHA \
    "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

/* ---- at_buf ---- */

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

/* ---- digests ---- */

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

/* ---- at_map ---- */

static void test_map_many(void **state)
{
    struct at_map m;
    char key[32];
    const int n = 100000;
    size_t count = 0;
    const char *k;
    void *v;
    AT_UNUSED(state);

    at_map_init(&m);
    assert_null(at_map_gets(&m, "missing"));
    assert_null(at_map_del(&m, "missing", 7));
    for (int i = 0; i < n; i++) {
        int len = snprintf(key, sizeof(key), "key-%d", i);
        assert_null(
            at_map_put(&m, key, (size_t)len, (void *)(intptr_t)(i + 1)));
    }
    assert_int_equal(m.len, n);
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        assert_ptr_equal(at_map_gets(&m, key), (void *)(intptr_t)(i + 1));
    }
    /* Replace returns the old value. */
    assert_ptr_equal(at_map_put(&m, "key-7", 5, (void *)(intptr_t)99),
                     (void *)(intptr_t)8);
    assert_ptr_equal(at_map_gets(&m, "key-7"), (void *)(intptr_t)99);
    assert_int_equal(m.len, n);

    for (size_t it = 0; at_map_next(&m, &it, &k, &v);) {
        assert_non_null(k);
        assert_non_null(v);
        count++;
    }
    assert_int_equal(count, n);

    /* Delete the even keys, some while iterating. */
    for (int i = 0; i < n; i += 2) {
        int len = snprintf(key, sizeof(key), "key-%d", i);
        if (i == 6)
            continue;
        assert_non_null(at_map_del(&m, key, (size_t)len));
    }
    for (size_t it = 0; at_map_next(&m, &it, &k, &v);) {
        if (strcmp(k, "key-6") == 0)
            assert_non_null(at_map_del(&m, k, strlen(k)));
    }
    assert_int_equal(m.len, n / 2);
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "key-%d", i);
        if (i % 2 == 0)
            assert_null(at_map_gets(&m, key));
        else
            assert_non_null(at_map_gets(&m, key));
    }
    count = 0;
    for (size_t it = 0; at_map_next(&m, &it, NULL, NULL);)
        count++;
    assert_int_equal(count, n / 2);
    at_map_release(&m);
    assert_int_equal(m.len, 0);
    assert_null(m.slots);
}

static void test_map_tombstones(void **state)
{
    struct at_map m;
    char key[32];
    AT_UNUSED(state);

    at_map_init(&m);
    /* Churn: the table must reuse tombstones instead of growing forever. */
    for (int round = 0; round < 2000; round++) {
        for (int i = 0; i < 8; i++) {
            int len = snprintf(key, sizeof(key), "r%d-%d", round, i);
            assert_null(at_map_put(&m, key, (size_t)len, &m));
        }
        for (int i = 0; i < 8; i++) {
            int len = snprintf(key, sizeof(key), "r%d-%d", round, i);
            assert_ptr_equal(at_map_del(&m, key, (size_t)len), &m);
        }
        assert_int_equal(m.len, 0);
    }
    assert_true(m.cap <= 64);
    /* A deleted key can be inserted again and found. */
    assert_null(at_map_put(&m, "a", 1, &m));
    assert_null(at_map_del(&m, "b", 1));
    assert_ptr_equal(at_map_del(&m, "a", 1), &m);
    assert_null(at_map_put(&m, "a", 1, &key));
    assert_ptr_equal(at_map_gets(&m, "a"), &key);
    /* Binary keys with NUL bytes. */
    assert_null(at_map_put(&m, "x\0y", 3, &m));
    assert_null(at_map_put(&m, "x\0z", 3, &key));
    assert_ptr_equal(at_map_get(&m, "x\0y", 3), &m);
    assert_ptr_equal(at_map_get(&m, "x\0z", 3), &key);
    assert_null(at_map_get(&m, "x", 1));
    at_map_release(&m);
    assert_int_equal(at_hash_bytes("abc", 3), at_hash_bytes("abc", 3));
    assert_true(at_hash_bytes("abc", 3) != at_hash_bytes("abd", 3));
}

/* ---- parsers ---- */

static void test_parse_u64(void **state)
{
    uint64_t v = 0;
    static const char *bad[] = { "",
                                 "-1",
                                 "+1",
                                 " 1",
                                 "1 ",
                                 "1x",
                                 "0x10",
                                 "18446744073709551616",
                                 "99999999999999999999",
                                 "000000000000000000001" };
    AT_UNUSED(state);

    assert_int_equal(at_parse_u64("0", 1, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(at_parse_u64("12345", 5, &v), 0);
    assert_int_equal(v, 12345);
    assert_int_equal(at_parse_u64("123", 2, &v), 0);
    assert_int_equal(v, 12);
    assert_int_equal(at_parse_u64("18446744073709551615", 20, &v), 0);
    assert_true(v == UINT64_MAX);
    for (size_t i = 0; i < AT_ARRAY_SIZE(bad); i++) {
        v = 7;
        if (at_parse_u64(bad[i], strlen(bad[i]), &v) != AT_EINVAL)
            fail_msg("'%s' accepted", bad[i]);
        assert_int_equal(v, 7);
    }
}

static void test_parse_size(void **state)
{
    uint64_t v = 0;
    static const struct {
        const char *s;
        uint64_t want;
    } ok[] = {
        { "4096", 4096 },
        { "0", 0 },
        { "64k", 64 << 10 },
        { "4KiB", 4 << 10 },
        { "10MB", 10 << 20 },
        { "4MiB", 4 << 20 },
        { "1GiB", 1ull << 30 },
        { "2tib", 2ull << 40 },
        { "7b", 7 },
        { "3 MiB", 3 << 20 },
    };
    static const char *bad[] = {
        "",      "abc",         "4XB",
        "MiB",   "-1",          "1.5GiB",
        "4MiB ", "16777216TiB", "18446744073709551616"
    };
    AT_UNUSED(state);

    for (size_t i = 0; i < AT_ARRAY_SIZE(ok); i++) {
        assert_int_equal(at_parse_size(ok[i].s, &v), 0);
        if (v != ok[i].want)
            fail_msg("'%s' = %" PRIu64, ok[i].s, v);
    }
    for (size_t i = 0; i < AT_ARRAY_SIZE(bad); i++) {
        if (at_parse_size(bad[i], &v) != AT_EINVAL)
            fail_msg("'%s' accepted", bad[i]);
    }
}

static void test_parse_duration(void **state)
{
    uint64_t v = 0;
    static const struct {
        const char *s;
        uint64_t want;
    } ok[] = {
        { "250ms", 250 },  { "30s", 30000 },    { "5m", 300000 },
        { "1h", 3600000 }, { "2d", 172800000 }, { "30", 30000 },
        { "0", 0 },        { "1000ms", 1000 },
    };
    static const char *bad[] = { "",
                                 "s",
                                 "1w",
                                 "1.5s",
                                 "-1s",
                                 "10 sec",
                                 "18446744073709551615s",
                                 "18446744073709551615" };
    AT_UNUSED(state);

    for (size_t i = 0; i < AT_ARRAY_SIZE(ok); i++) {
        assert_int_equal(at_parse_duration_ms(ok[i].s, &v), 0);
        if (v != ok[i].want)
            fail_msg("'%s' = %" PRIu64, ok[i].s, v);
    }
    for (size_t i = 0; i < AT_ARRAY_SIZE(bad); i++) {
        if (at_parse_duration_ms(bad[i], &v) != AT_EINVAL)
            fail_msg("'%s' accepted", bad[i]);
    }
}

static void test_parse_bool(void **state)
{
    bool b;
    static const char *yes[] = { "true", "TRUE", "yes", "on", "1" };
    static const char *no[] = { "false", "No", "off", "0" };
    static const char *bad[] = { "", "maybe", "2", "truee", " true" };
    AT_UNUSED(state);

    for (size_t i = 0; i < AT_ARRAY_SIZE(yes); i++) {
        b = false;
        assert_int_equal(at_parse_bool(yes[i], &b), 0);
        assert_true(b);
    }
    for (size_t i = 0; i < AT_ARRAY_SIZE(no); i++) {
        b = true;
        assert_int_equal(at_parse_bool(no[i], &b), 0);
        assert_false(b);
    }
    for (size_t i = 0; i < AT_ARRAY_SIZE(bad); i++)
        assert_int_equal(at_parse_bool(bad[i], &b), AT_EINVAL);
}

/* ---- log, errors, alloc ---- */

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
        cmocka_unit_test(test_buf_growth),
        cmocka_unit_test(test_buf_max),
        cmocka_unit_test(test_buf_printf_room),
        cmocka_unit_test(test_buf_printf_take),
        cmocka_unit_test(test_buf_json_str),
        cmocka_unit_test(test_digest_parse_valid),
        cmocka_unit_test(test_digest_parse_invalid),
        cmocka_unit_test(test_digest_parse_unsupported),
        cmocka_unit_test(test_digest_roundtrip),
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_map_many),
        cmocka_unit_test(test_map_tombstones),
        cmocka_unit_test(test_parse_u64),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_bool),
        cmocka_unit_test(test_log_configure),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
