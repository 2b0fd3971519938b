/* Unit tests of gossip/seal.c: keyring derivation and rotation, seal and
 * open, every way a packet fails to open, and the replay window. */
#include "common/compat.h"

#include <setjmp.h>

#include <cmocka.h>

#include "gossip/seal.h"

#define SECRET_A "cluster secret number one, long enough"
#define SECRET_B "the rotation secret, also long enough"
#define SECRET_C "a third secret that nobody else holds"
#define NOW      1700000000000ULL

static void ring_with(struct gossip_keyring *r,
                      const char *secret,
                      uint32_t *id)
{
    char errmsg[AT_ERRMSG_SIZE];

    assert_int_equal(gossip_keyring_init(r, errmsg), 0);
    assert_int_equal(gossip_keyring_add(r, secret, strlen(secret), id, errmsg),
                     0);
}

/* Seal msg under r's primary; returns the packet length. */
static size_t seal(struct gossip_keyring *r, const char *msg, uint8_t *pkt)
{
    size_t n = 0;

    assert_int_equal(
        gossip_seal(r, NOW, msg, strlen(msg), pkt, GOSSIP_SEAL_PACKET_MAX, &n),
        0);
    assert_int_equal(n, strlen(msg) + GOSSIP_SEAL_OVERHEAD);
    return n;
}

static int open_pkt(struct gossip_keyring *r,
                    const uint8_t *pkt,
                    size_t n,
                    uint64_t *seq)
{
    uint8_t out[GOSSIP_SEAL_PLAIN_MAX];
    size_t outlen = 0;

    return gossip_open(r, pkt, n, out, sizeof(out), &outlen, seq);
}

static void test_round_trip(void **state)
{
    struct gossip_keyring a, b;
    uint8_t pkt[GOSSIP_SEAL_PACKET_MAX], out[GOSSIP_SEAL_PLAIN_MAX];
    uint32_t ida, idb;
    size_t n, outlen = 0;
    uint64_t seq = 0;
    AT_UNUSED(state);

    ring_with(&a, SECRET_A, &ida);
    ring_with(&b, SECRET_A, &idb);
    assert_int_equal(ida, idb); /* every node derives the same id */
    n = seal(&a, "ping from a", pkt);
    assert_int_equal(pkt[0], GOSSIP_SEAL_VERSION);
    /* The payload does not travel in the clear. */
    assert_null(memmem(pkt, n, "ping", 4));
    assert_int_equal(gossip_open(&b, pkt, n, out, sizeof(out), &outlen, &seq),
                     0);
    assert_int_equal(outlen, strlen("ping from a"));
    assert_memory_equal(out, "ping from a", outlen);
    assert_int_equal(seq, NOW);
    assert_int_equal(b.stats.opened, 1);
    assert_int_equal(a.stats.sealed, 1);

    /* Same clock: the sequence still grows, and the nonce changes. */
    {
        uint8_t pkt2[GOSSIP_SEAL_PACKET_MAX];
        size_t n2 = seal(&a, "ping from a", pkt2);
        assert_int_equal(open_pkt(&b, pkt2, n2, &seq), 0);
        assert_int_equal(seq, NOW + 1);
        assert_memory_not_equal(pkt + 5, pkt2 + 5, GOSSIP_SEAL_NONCE_LEN);
    }
    /* An empty payload and the largest one. */
    {
        static uint8_t big[GOSSIP_SEAL_PLAIN_MAX];
        memset(big, 'x', sizeof(big));
        assert_int_equal(gossip_seal(&a, NOW, big, 0, pkt, sizeof(pkt), &n), 0);
        assert_int_equal(
            gossip_open(&b, pkt, n, out, sizeof(out), &outlen, NULL), 0);
        assert_int_equal(outlen, 0);
        assert_int_equal(
            gossip_seal(&a, NOW, big, sizeof(big), pkt, sizeof(pkt), &n), 0);
        assert_int_equal(n, GOSSIP_SEAL_PACKET_MAX);
        assert_int_equal(
            gossip_open(&b, pkt, n, out, sizeof(out), &outlen, NULL), 0);
        assert_memory_equal(out, big, sizeof(big));
    }
    gossip_keyring_release(&a);
    gossip_keyring_release(&b);
}

/* The derivation is part of the protocol: nodes of different builds must
 * derive the same key and id. Expected bytes from the openssl CLI:
 * openssl kdf -keylen 36 -kdfopt digest:SHA256 -kdfopt key:SECRET_A
 * -kdfopt "salt:atoll gossip v1" -kdfopt "info:<HKDF_INFO>" HKDF */
static void test_derivation_pinned(void **state)
{
    static const uint8_t key[32] = {
        0x48, 0xcb, 0x9c, 0x17, 0xcc, 0x6a, 0x2e, 0x6d, 0x18, 0xa3, 0x63,
        0x80, 0xe5, 0xc8, 0x05, 0xc4, 0xd7, 0x24, 0x1f, 0x87, 0x86, 0x40,
        0x31, 0xeb, 0x12, 0x03, 0x6b, 0xd0, 0x18, 0x32, 0xc3, 0xf7,
    };
    struct gossip_keyring r;
    uint32_t id;
    AT_UNUSED(state);

    ring_with(&r, SECRET_A, &id);
    assert_int_equal(id, 0x97dccdc4);
    assert_memory_equal(r.keys[r.primary].key, key, sizeof(key));
    gossip_keyring_release(&r);
}

/* A packet sealed by another implementation of the format (Python's
 * cryptography: HKDF-SHA256, AESGCM), the seed tests/fuzz/corpus/
 * gossip_open/sealed_a: the layout in seal.h is what the code does. */
static void test_known_packet(void **state)
{
    static const char secret[] = "fuzz gossip secret a, not a real one";
    static const uint8_t pkt[] = {
        0x01, 0x3d, 0x71, 0xcc, 0x34, 0x66, 0x75, 0x7a, 0x7a, 0x73, 0x65,
        0x65, 0x64, 0x00, 0x00, 0x00, 0x00, 0x22, 0xcd, 0x64, 0x4f, 0x3a,
        0xbc, 0x95, 0xd5, 0xdf, 0x3f, 0xfb, 0xb1, 0xf1, 0x67, 0x7b, 0xe9,
        0xd1, 0x84, 0xa1, 0x24, 0x20, 0xd5, 0x9e, 0xe5, 0x73, 0xe7, 0xb1,
        0x4f, 0x97, 0xc6, 0x1b, 0x2b, 0xb4, 0x79, 0x41, 0xcb,
    };
    static const uint8_t payload[] = { 0x08, 0x01, 0x12, 0x06, 'n',  'o',
                                       'd',  'e',  '-',  '1',  0x18, 0x07 };
    struct gossip_keyring r;
    uint8_t out[GOSSIP_SEAL_PLAIN_MAX];
    size_t outlen = 0;
    uint64_t seq = 0;
    uint32_t id;
    AT_UNUSED(state);

    ring_with(&r, secret, &id);
    assert_int_equal(
        gossip_open(&r, pkt, sizeof(pkt), out, sizeof(out), &outlen, &seq), 0);
    assert_int_equal(seq, 1700000000000ULL);
    assert_int_equal(outlen, sizeof(payload));
    assert_memory_equal(out, payload, sizeof(payload));
    gossip_keyring_release(&r);
}

static void test_keyring_errors(void **state)
{
    struct gossip_keyring r;
    char errmsg[AT_ERRMSG_SIZE];
    const char *secrets[] = { SECRET_A, SECRET_B, SECRET_C,
                              "a fourth secret, 4444", "a fifth secret 55555" };
    uint8_t pkt[64];
    size_t n;
    AT_UNUSED(state);

    assert_int_equal(gossip_keyring_init(&r, errmsg), 0);
    /* Nothing seals without a key. */
    assert_int_equal(gossip_seal(&r, NOW, "x", 1, pkt, sizeof(pkt), &n),
                     AT_EINVAL);
    assert_int_equal(gossip_keyring_add(&r, "short", 5, NULL, errmsg),
                     AT_EINVAL);
    assert_null(strstr(errmsg, "short")); /* the secret is never echoed */
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(gossip_keyring_add(&r, secrets[i], strlen(secrets[i]),
                                            NULL, errmsg),
                         0);
    assert_int_equal(gossip_keyring_count(&r), 4);
    assert_int_equal(
        gossip_keyring_add(&r, secrets[4], strlen(secrets[4]), NULL, errmsg),
        AT_ENOSPC);
    assert_int_equal(
        gossip_keyring_add(&r, SECRET_A, strlen(SECRET_A), NULL, errmsg),
        AT_EEXIST);
    assert_int_equal(gossip_keyring_set_primary(&r, 12345), AT_ENOTFOUND);
    assert_int_equal(gossip_keyring_remove(&r, 12345), AT_ENOTFOUND);
    /* out too small, payload too big */
    assert_int_equal(
        gossip_seal(&r, NOW, "x", 1, pkt, GOSSIP_SEAL_OVERHEAD, &n),
        AT_ETOOBIG);
    {
        static uint8_t big[GOSSIP_SEAL_PLAIN_MAX + 1];
        static uint8_t bigout[GOSSIP_SEAL_PACKET_MAX + 64];
        assert_int_equal(
            gossip_seal(&r, NOW, big, sizeof(big), bigout, sizeof(bigout), &n),
            AT_ETOOBIG);
    }
    gossip_keyring_release(&r);
    assert_int_equal(gossip_keyring_count(&r), 0);
    for (size_t i = 0; i < sizeof(r.keys); i++)
        assert_int_equal(((uint8_t *)r.keys)[i], 0); /* wiped */
}

static void test_wrong_key(void **state)
{
    struct gossip_keyring a, c;
    uint8_t pkt[GOSSIP_SEAL_PACKET_MAX];
    size_t n;
    uint32_t ida, idc;
    char errmsg[AT_ERRMSG_SIZE];
    AT_UNUSED(state);

    ring_with(&a, SECRET_A, &ida);
    ring_with(&c, SECRET_C, &idc);
    n = seal(&a, "hello", pkt);
    /* Unknown key id: dropped without trying a key. */
    assert_int_equal(open_pkt(&c, pkt, n, NULL), AT_EPROTO);
    assert_int_equal(c.stats.drop_unknown_key, 1);
    /* A forged id naming c's key: the tag fails. */
    pkt[1] = (uint8_t)(idc >> 24);
    pkt[2] = (uint8_t)(idc >> 16);
    pkt[3] = (uint8_t)(idc >> 8);
    pkt[4] = (uint8_t)idc;
    assert_int_equal(open_pkt(&c, pkt, n, NULL), AT_EPROTO);
    assert_int_equal(c.stats.drop_auth, 1);
    assert_int_equal(c.stats.opened, 0);
    /* And a ring holding both keys opens neither forgery. */
    assert_int_equal(
        gossip_keyring_add(&c, SECRET_A, strlen(SECRET_A), NULL, errmsg), 0);
    assert_int_equal(open_pkt(&c, pkt, n, NULL), AT_EPROTO);
    gossip_keyring_release(&a);
    gossip_keyring_release(&c);
}

/* Flip one bit in every byte (header, nonce, ciphertext, tag) in turn:
 * nothing opens, and each drop is counted under its reason. */
static void test_tampered(void **state)
{
    struct gossip_keyring r;
    uint8_t pkt[GOSSIP_SEAL_PACKET_MAX];
    size_t n;
    uint32_t id;
    AT_UNUSED(state);

    ring_with(&r, SECRET_A, &id);
    n = seal(&r, "alive node-1 incarnation 7", pkt);
    for (size_t i = 0; i < n; i++) {
        for (int b = 0; b < 8; b++) {
            pkt[i] ^= (uint8_t)(1u << b);
            assert_int_equal(open_pkt(&r, pkt, n, NULL), AT_EPROTO);
            pkt[i] ^= (uint8_t)(1u << b);
        }
    }
    assert_int_equal(r.stats.drop_version, 8);
    assert_int_equal(r.stats.drop_unknown_key, 32);
    assert_int_equal(r.stats.drop_auth, (n - 5) * 8);
    assert_int_equal(r.stats.opened, 0);
    assert_int_equal(open_pkt(&r, pkt, n, NULL), 0); /* restored */
    gossip_keyring_release(&r);
}

static void test_truncated_and_oversize(void **state)
{
    struct gossip_keyring r;
    static uint8_t pkt[GOSSIP_SEAL_PACKET_MAX + 16];
    uint8_t small[4];
    size_t n, outlen;
    uint32_t id;
    AT_UNUSED(state);

    ring_with(&r, SECRET_A, &id);
    n = seal(&r, "a payload of some length", pkt);
    for (size_t len = 0; len < n; len++)
        assert_int_equal(open_pkt(&r, pkt, len, NULL), AT_EPROTO);
    assert_int_equal(r.stats.drop_short, GOSSIP_SEAL_OVERHEAD);
    assert_int_equal(r.stats.drop_auth, n - GOSSIP_SEAL_OVERHEAD);
    /* Longer than the bound: dropped before any key is looked at. */
    assert_int_equal(open_pkt(&r, pkt, GOSSIP_SEAL_PACKET_MAX + 1, NULL),
                     AT_EPROTO);
    assert_int_equal(r.stats.drop_oversize, 1);
    /* A caller's buffer too small is the caller's error, not a drop. */
    assert_int_equal(
        gossip_open(&r, pkt, n, small, sizeof(small), &outlen, NULL),
        AT_ETOOBIG);
    assert_int_equal(open_pkt(&r, pkt, n, NULL), 0);
    gossip_keyring_release(&r);
}

/* Rotation without downtime: add the new key everywhere, make it primary,
 * then remove the old one. */
static void test_rotation(void **state)
{
    struct gossip_keyring old, cur;
    char errmsg[AT_ERRMSG_SIZE];
    uint8_t p_old[GOSSIP_SEAL_PACKET_MAX], p_new[GOSSIP_SEAL_PACKET_MAX];
    size_t n_old, n_new;
    uint32_t ida, idb;
    AT_UNUSED(state);

    ring_with(&old, SECRET_A, &ida); /* a node not yet rotated */
    ring_with(&cur, SECRET_A, &ida);
    assert_int_equal(
        gossip_keyring_add(&cur, SECRET_B, strlen(SECRET_B), &idb, errmsg), 0);
    assert_int_not_equal(ida, idb);
    /* Added but not primary: cur still seals with A. */
    n_old = seal(&cur, "before", p_old);
    assert_int_equal(open_pkt(&old, p_old, n_old, NULL), 0);
    assert_int_equal(gossip_keyring_remove(&cur, ida), AT_EBUSY);
    assert_int_equal(gossip_keyring_set_primary(&cur, idb), 0);
    n_new = seal(&cur, "after", p_new);
    /* The old primary still opens on cur, the new one not on old. */
    assert_int_equal(open_pkt(&cur, p_old, n_old, NULL), 0);
    assert_int_equal(open_pkt(&cur, p_new, n_new, NULL), 0);
    assert_int_equal(open_pkt(&old, p_new, n_new, NULL), AT_EPROTO);
    /* Removed: A's packets no longer open. */
    assert_int_equal(gossip_keyring_remove(&cur, ida), 0);
    assert_int_equal(gossip_keyring_count(&cur), 1);
    assert_int_equal(open_pkt(&cur, p_old, n_old, NULL), AT_EPROTO);
    assert_int_equal(cur.stats.drop_unknown_key, 1);
    assert_int_equal(open_pkt(&cur, p_new, n_new, NULL), 0);
    /* A key can come back (same secret, same id). */
    assert_int_equal(
        gossip_keyring_add(&cur, SECRET_A, strlen(SECRET_A), &ida, errmsg), 0);
    assert_int_equal(open_pkt(&cur, p_old, n_old, NULL), 0);
    gossip_keyring_release(&old);
    gossip_keyring_release(&cur);
}

/* The sequence number follows the clock, never goes back. */
static void test_sequence(void **state)
{
    struct gossip_keyring r;
    uint8_t pkt[GOSSIP_SEAL_PACKET_MAX];
    size_t n;
    uint64_t seq;
    uint32_t id;
    AT_UNUSED(state);

    ring_with(&r, SECRET_A, &id);
    assert_int_equal(gossip_seal(&r, 5000, "x", 1, pkt, sizeof(pkt), &n), 0);
    assert_int_equal(open_pkt(&r, pkt, n, &seq), 0);
    assert_int_equal(seq, 5000);
    /* The clock went back: the number does not. */
    assert_int_equal(gossip_seal(&r, 10, "x", 1, pkt, sizeof(pkt), &n), 0);
    assert_int_equal(open_pkt(&r, pkt, n, &seq), 0);
    assert_int_equal(seq, 5001);
    assert_int_equal(gossip_seal(&r, 9000, "x", 1, pkt, sizeof(pkt), &n), 0);
    assert_int_equal(open_pkt(&r, pkt, n, &seq), 0);
    assert_int_equal(seq, 9000);
    gossip_keyring_release(&r);
}

static void test_replay_window(void **state)
{
    struct gossip_replay w = { 0 };
    AT_UNUSED(state);

    assert_int_equal(gossip_replay_check(&w, 0), AT_EPROTO);
    assert_int_equal(gossip_replay_check(&w, 1000), 0);
    assert_int_equal(gossip_replay_check(&w, 1000), AT_EPROTO);
    /* Out of order within the window: each accepted once. */
    assert_int_equal(gossip_replay_check(&w, 1010), 0);
    assert_int_equal(gossip_replay_check(&w, 1005), 0);
    assert_int_equal(gossip_replay_check(&w, 1005), AT_EPROTO);
    assert_int_equal(gossip_replay_check(&w, 1010), AT_EPROTO);
    assert_int_equal(gossip_replay_check(&w, 1001), 0);
    /* The oldest number still inside, and the first one outside. */
    assert_int_equal(gossip_replay_check(&w, 1010 - GOSSIP_REPLAY_WINDOW + 1),
                     0);
    assert_int_equal(gossip_replay_check(&w, 1010 - GOSSIP_REPLAY_WINDOW),
                     AT_EPROTO);
    /* Slide by less than a window: seen numbers still in it stay seen,
     * the slots reused for new numbers start unseen. */
    assert_int_equal(gossip_replay_check(&w, 1200), 0);
    assert_int_equal(gossip_replay_check(&w, 1005), AT_EPROTO);
    assert_int_equal(gossip_replay_check(&w, 1010), AT_EPROTO);
    assert_int_equal(gossip_replay_check(&w, 1100), 0);
    assert_int_equal(gossip_replay_check(&w, 1000 + GOSSIP_REPLAY_WINDOW),
                     0); /* same slot as 1000, a new number */
    /* Slide by more than a window: everything older is refused. */
    assert_int_equal(gossip_replay_check(&w, 100000), 0);
    assert_int_equal(gossip_replay_check(&w, 1200), AT_EPROTO);
    assert_int_equal(gossip_replay_check(&w, 99999), 0);
    assert_int_equal(gossip_replay_check(&w, 99999), AT_EPROTO);
}

/* Seal, open and the window together: a replayed packet opens (it is
 * authentic) but the window drops it. */
static void test_replay_packets(void **state)
{
    struct gossip_keyring a, b;
    struct gossip_replay w = { 0 };
    uint8_t p1[GOSSIP_SEAL_PACKET_MAX], p2[GOSSIP_SEAL_PACKET_MAX];
    size_t n1, n2;
    uint64_t seq;
    uint32_t id;
    AT_UNUSED(state);

    ring_with(&a, SECRET_A, &id);
    ring_with(&b, SECRET_A, &id);
    n1 = seal(&a, "suspect node-3", p1);
    n2 = seal(&a, "alive node-3", p2);
    assert_int_equal(open_pkt(&b, p2, n2, &seq), 0);
    assert_int_equal(gossip_replay_check(&w, seq), 0);
    assert_int_equal(open_pkt(&b, p1, n1, &seq), 0);
    assert_int_equal(gossip_replay_check(&w, seq), 0); /* reordered */
    assert_int_equal(open_pkt(&b, p1, n1, &seq), 0);
    assert_int_equal(gossip_replay_check(&w, seq), AT_EPROTO); /* replay */
    gossip_keyring_release(&a);
    gossip_keyring_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_derivation_pinned),
        cmocka_unit_test(test_known_packet),
        cmocka_unit_test(test_keyring_errors),
        cmocka_unit_test(test_wrong_key),
        cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_truncated_and_oversize),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_sequence),
        cmocka_unit_test(test_replay_window),
        cmocka_unit_test(test_replay_packets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
