/* libFuzzer target: gossip/wire.c's decoders on arbitrary bytes. The
 * first byte picks the decoder (even: a plain GossipPacket, as it comes
 * out of a datagram that opened; odd: a push-pull GossipState), the rest
 * is its input. Whatever decodes is valid, encodes again, and decodes to
 * the same thing. */
#include "common/compat.h"

#include "gossip/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void packet(const uint8_t *data, size_t size)
{
    static struct gossip_msg m, back;
    static uint8_t buf[GOSSIP_SEAL_PLAIN_MAX];
    size_t len = 0;
    uint32_t sent = 0;

    if (gossip_wire_decode(data, size, &m) != 0)
        return;
    AT_ASSERT(gossip_msg_valid(&m));
    /* The canonical encoding is never longer than what decoded. */
    AT_ASSERT(gossip_wire_encode(&m, buf, sizeof(buf), &len, &sent) == 0);
    AT_ASSERT(sent == m.n_updates);
    AT_ASSERT(gossip_wire_decode(buf, len, &back) == 0);
    AT_ASSERT(memcmp(&m, &back, sizeof(m)) == 0);
}

static void state(const uint8_t *data, size_t size)
{
    char from[GOSSIP_NAME_MAX], from2[GOSSIP_NAME_MAX];
    struct gossip_update *u = NULL, *u2 = NULL;
    size_t n = 0, n2 = 0, len = 0;
    uint8_t *buf = NULL;

    if (gossip_wire_state_decode(data, size, from, &u, &n) != 0) {
        AT_ASSERT(u == NULL);
        return;
    }
    AT_ASSERT(n <= GOSSIP_STATE_MAX);
    for (size_t i = 0; i < n; i++)
        AT_ASSERT(gossip_update_valid(&u[i]));
    AT_ASSERT(gossip_wire_state_encode(from, u, n, &buf, &len) == 0);
    AT_ASSERT(gossip_wire_state_decode(buf, len, from2, &u2, &n2) == 0);
    AT_ASSERT(n2 == n && strcmp(from, from2) == 0);
    AT_ASSERT(n == 0 || memcmp(u, u2, n * sizeof(*u)) == 0);
    at_free(u);
    at_free(u2);
    at_free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] % 2 == 0)
        packet(data + 1, size - 1);
    else
        state(data + 1, size - 1);
    return 0;
}
