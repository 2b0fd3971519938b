/* The wire form of gossip: struct gossip_msg as a protobuf GossipPacket
 * (proto/gossip.proto) sealed into one UDP datagram, and a member table
 * (gossip_state_export's updates) as a GossipState for the push-pull
 * exchange over the peer TCP listener. The only file of gossip/ that
 * sees bytes from the network: everything it decodes passes
 * gossip_msg_valid before anyone trusts it. */
#ifndef GOSSIP_WIRE_H
#define GOSSIP_WIRE_H

#include <stddef.h>

#include "gossip/msg.h"
#include "gossip/seal.h"

/* A push-pull body holds at most this many members (the table's cap),
 * and is at most this many bytes (about 300 bytes per member). */
#define GOSSIP_STATE_MAX       16384
#define GOSSIP_STATE_BYTES_MAX (8u << 20)

/* Encode m and seal it with r's primary key into out (outsize bytes;
 * GOSSIP_SEAL_PACKET_MAX always suffices), setting *outlen. Updates that
 * would push the payload past GOSSIP_SEAL_PLAIN_MAX are left out, last
 * first; *n_sent (may be NULL) receives how many went in. now_ms is the
 * wall clock in ms (the packet's sequence number, see seal.h). Returns 0,
 * AT_EINVAL (m fails gossip_msg_valid, or no key), AT_ETOOBIG (outsize
 * too small, or the message without updates does not fit) or AT_EIO. */
int gossip_wire_seal(struct gossip_keyring *r,
                     uint64_t now_ms,
                     const struct gossip_msg *m,
                     uint8_t *out,
                     size_t outsize,
                     size_t *outlen,
                     uint32_t *n_sent);

/* Open packet (len bytes from the network) with r and decode it into *m,
 * setting *seq (may be NULL) to the sender's sequence number for the
 * replay window (seal.h: check it only after this returned 0, keyed by
 * m->from). Returns 0, or AT_EPROTO for anything that does not open,
 * does not decode as a GossipPacket, or decodes to a message failing
 * gossip_msg_valid (strings too long, too many updates, unknown type);
 * the seal's drops are counted in r->stats, decode failures in
 * *drop_decode when given. Nothing in *m is valid unless this returned
 * 0. */
int gossip_wire_open(struct gossip_keyring *r,
                     const uint8_t *packet,
                     size_t len,
                     struct gossip_msg *m,
                     uint64_t *seq,
                     uint64_t *drop_decode);

/* Decode a plain (unsealed) GossipPacket of len bytes (at most
 * GOSSIP_SEAL_PLAIN_MAX): gossip_wire_open's second half, for tests and
 * the fuzz target. *m is zeroed first, so unused bytes compare equal.
 * Refused with AT_EPROTO: a version other than 1, an unknown type or
 * update kind, a string that does not fit its array whole (never cut),
 * more than GOSSIP_MSG_UPDATES_MAX updates (counted before protobuf-c
 * allocates them), malformed bytes, or a result failing
 * gossip_msg_valid. Returns 0 or AT_EPROTO. */
int gossip_wire_decode(const uint8_t *buf, size_t len, struct gossip_msg *m);
/* Encode m as a plain GossipPacket into out, as gossip_wire_seal does
 * before sealing (same rules and results, without the seal). */
int gossip_wire_encode(const struct gossip_msg *m,
                       uint8_t *out,
                       size_t outsize,
                       size_t *outlen,
                       uint32_t *n_sent);

/* Encode the n updates u (a full member table) and the sender's name as a
 * GossipState into *out (malloc'd, caller frees) of *outlen bytes.
 * Updates with no metadata leave it out (it decodes as zeros). Returns 0,
 * AT_EINVAL (from empty or too long, n over GOSSIP_STATE_MAX, an update
 * failing validation) or AT_ETOOBIG (the encoding would exceed
 * GOSSIP_STATE_BYTES_MAX; not reachable with valid updates of bounded
 * strings). */
int gossip_wire_state_encode(const char *from,
                             const struct gossip_update *u,
                             size_t n,
                             uint8_t **out,
                             size_t *outlen);

/* Decode a GossipState of len bytes (at most GOSSIP_STATE_BYTES_MAX) into
 * a malloc'd array *u of *n updates (caller frees) and the sender's name
 * into from (GOSSIP_NAME_MAX bytes). Returns 0 or AT_EPROTO (malformed,
 * over the limits, an empty sender, or any update failing validation:
 * all or nothing; the count of updates is checked before protobuf-c
 * allocates them). On failure *u is NULL. */
int gossip_wire_state_decode(const uint8_t *buf,
                             size_t len,
                             char *from,
                             struct gossip_update **u,
                             size_t *n);

#endif /* GOSSIP_WIRE_H */
