/* libFuzzer target: gossip_open on arbitrary bytes (a packet from anyone
 * on the network), the replay window on what opens, and a seal/open round
 * trip of the input as a payload. */
#include "common/compat.h"

#include "gossip/seal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The keys of the seed corpus (tests/fuzz/corpus/gossip_open): a packet
 * sealed under either can open, so mutations reach the cipher. */
#define SECRET_A "fuzz gossip secret a, not a real one"
#define SECRET_B "fuzz gossip secret b, not a real one"

static struct gossip_keyring ring;
static struct gossip_replay window;
static bool ready;

static bool setup(void)
{
    char errmsg[AT_ERRMSG_SIZE];

    if (gossip_keyring_init(&ring, errmsg) != 0 ||
        gossip_keyring_add(&ring, SECRET_A, strlen(SECRET_A), NULL, errmsg) !=
            0 ||
        gossip_keyring_add(&ring, SECRET_B, strlen(SECRET_B), NULL, errmsg) !=
            0)
        return false;
    ready = true;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[GOSSIP_SEAL_PLAIN_MAX];
    static uint8_t pkt[GOSSIP_SEAL_PACKET_MAX];
    size_t outlen = 0;
    size_t n = 0;
    uint64_t seq = 0;

    if (!ready && !setup())
        return 0;
    if (gossip_open(&ring, data, size, out, sizeof(out), &outlen, &seq) == 0) {
        AT_ASSERT(size == outlen + GOSSIP_SEAL_OVERHEAD);
        AT_ASSERT(outlen <= GOSSIP_SEAL_PLAIN_MAX);
        (void)gossip_replay_check(&window, seq);
    }
    /* Whatever fits seals, and opens to itself. */
    if (size <= GOSSIP_SEAL_PLAIN_MAX) {
        AT_ASSERT(gossip_seal(&ring, 1, data, size, pkt, sizeof(pkt), &n) == 0);
        AT_ASSERT(gossip_open(&ring, pkt, n, out, sizeof(out), &outlen, &seq) ==
                  0);
        AT_ASSERT(outlen == size && memcmp(out, data, size) == 0);
    } else {
        AT_ASSERT(gossip_seal(&ring, 1, data, size, pkt, sizeof(pkt), &n) ==
                  AT_ETOOBIG);
    }
    return 0;
}
