/* Sealed gossip packets: AES-256-GCM under a keyring derived from the
 * cluster secret, a sequence number under the seal, and the per-sender
 * replay window that the receiver keeps.
 *
 * Packet (all integers big-endian):
 *
 *   offset  size  field
 *   0       1     version (GOSSIP_SEAL_VERSION)
 *   1       4     key id: names the key that sealed it
 *   5       12    nonce
 *   17      n     ciphertext of: 8-byte sequence number, then the payload
 *   17+n    16    GCM tag
 *
 * The 17-byte header is the AAD, so a changed version, key id or nonce
 * fails to open like a changed ciphertext. The key id lets the receiver
 * pick its key without trial decryption; a forged id only names a key that
 * then fails the tag.
 *
 * Nonce: 8 random bytes drawn when the keyring is initialized (and again
 * whenever the counter wraps) followed by a 4-byte counter. Every node of
 * a cluster seals under the same key, so nonces must not repeat across
 * senders: with a random prefix per sender and a counter within it, two
 * packets share a nonce only if two prefixes of 64 random bits collide,
 * where a fresh 96-bit random nonce per packet would make the whole
 * cluster's traffic one birthday pool (NIST SP 800-38D caps that at 2^32
 * packets per key).
 *
 * Replay: the sequence number is max(previous + 1, now in ms), so it grows
 * strictly per sender and keeps growing across the sender's restarts (its
 * clock has moved on). The receiver opens a packet, finds the sender in
 * the payload, and passes the sequence number to that sender's
 * struct gossip_replay: a number seen before, or older than the window,
 * is dropped. Only opened packets reach the window, so a forger cannot
 * move it. A receiver that restarts has empty windows; it should also
 * refuse a sequence number much older than its own clock (the number is
 * a time in ms), which bounds how old a replay can be. */
#ifndef GOSSIP_SEAL_H
#define GOSSIP_SEAL_H

#include "common/common.h"

#define GOSSIP_SEAL_VERSION    1
#define GOSSIP_SEAL_KEYS_MAX   4
#define GOSSIP_SEAL_KEY_LEN    32 /* AES-256 */
#define GOSSIP_SEAL_NONCE_LEN  12
#define GOSSIP_SEAL_TAG_LEN    16
#define GOSSIP_SEAL_SEQ_LEN    8
#define GOSSIP_SEAL_HEADER_LEN (1 + 4 + GOSSIP_SEAL_NONCE_LEN)
/* Bytes a packet adds to its payload: header, sequence number, tag. */
#define GOSSIP_SEAL_OVERHEAD \
    (GOSSIP_SEAL_HEADER_LEN + GOSSIP_SEAL_SEQ_LEN + GOSSIP_SEAL_TAG_LEN)
/* The largest payload: a packet stays within one unfragmented UDP
 * datagram on a 1,500-byte MTU (IPv6 40 + UDP 8 + 1,441). */
#define GOSSIP_SEAL_PLAIN_MAX  1400
#define GOSSIP_SEAL_PACKET_MAX (GOSSIP_SEAL_PLAIN_MAX + GOSSIP_SEAL_OVERHEAD)
/* A secret shorter than this is refused: it would be guessable offline
 * from one captured packet. */
#define GOSSIP_SEAL_SECRET_MIN 16

struct gossip_seal_key {
    bool used;
    uint32_t id;                      /* HKDF output, see _add */
    uint8_t key[GOSSIP_SEAL_KEY_LEN]; /* secret: wiped on removal */
};

/* Why packets were dropped by gossip_open, and what went through. */
struct gossip_seal_stats {
    uint64_t sealed;
    uint64_t opened;
    uint64_t drop_short;       /* shorter than the overhead */
    uint64_t drop_oversize;    /* longer than GOSSIP_SEAL_PACKET_MAX */
    uint64_t drop_version;     /* unknown version byte */
    uint64_t drop_unknown_key; /* key id not in the ring */
    uint64_t drop_auth;        /* tag did not verify: wrong key, tampered */
};

/* The keys a node seals and opens with. Caller-allocated; not
 * thread-safe (one loop thread). Holds secrets: never log or copy it. */
struct gossip_keyring {
    struct gossip_seal_key keys[GOSSIP_SEAL_KEYS_MAX];
    int primary; /* index into keys that seals, -1 when empty */
    uint8_t nonce_prefix[8];
    uint32_t nonce_count;
    uint64_t last_seq;
    struct gossip_seal_stats stats;
};

/* Initialize an empty ring (nothing seals until a key is added). Returns
 * 0, or AT_EIO when the random generator fails (errmsg says so). */
int gossip_keyring_init(struct gossip_keyring *r, char *errmsg);

/* Wipe every key and the ring's state. Safe on an initialized ring
 * only; the ring may be initialized again afterwards. */
void gossip_keyring_release(struct gossip_keyring *r);

/* Derive a key from secret (len bytes, borrowed, not kept) with
 * HKDF-SHA256, salt and info fixed labels of this protocol version, and
 * add it; the first key added becomes the primary. *id (may be NULL)
 * receives the key's id, which every node derives alike from the same
 * secret. Returns 0, AT_EINVAL (secret shorter than
 * GOSSIP_SEAL_SECRET_MIN), AT_EEXIST (that secret's key is already in the
 * ring), AT_ENOSPC (GOSSIP_SEAL_KEYS_MAX keys already) or AT_EIO
 * (OpenSSL failed); errmsg says which, never the secret. */
int gossip_keyring_add(struct gossip_keyring *r,
                       const void *secret,
                       size_t len,
                       uint32_t *id,
                       char *errmsg);

/* The key with this id seals from now on; the others still open.
 * Returns 0 or AT_ENOTFOUND. */
int gossip_keyring_set_primary(struct gossip_keyring *r, uint32_t id);

/* Remove and wipe the key with this id: its packets no longer open.
 * Returns 0, AT_ENOTFOUND, or AT_EBUSY for the primary (make another key
 * primary first, so the ring can always seal once it could). */
int gossip_keyring_remove(struct gossip_keyring *r, uint32_t id);

/* Number of keys in the ring. */
size_t gossip_keyring_count(const struct gossip_keyring *r);

/* Seal payload plain (len bytes) with the primary key into out (outsize
 * bytes; len + GOSSIP_SEAL_OVERHEAD suffices) and set *outlen. now_ms is
 * the caller's clock (wall time in ms): the packet's sequence number is
 * max(last + 1, now_ms). Returns 0, AT_ETOOBIG (len over
 * GOSSIP_SEAL_PLAIN_MAX, or out too small), AT_EINVAL (no key) or AT_EIO
 * (OpenSSL or the random generator failed). */
int gossip_seal(struct gossip_keyring *r,
                uint64_t now_ms,
                const void *plain,
                size_t len,
                uint8_t *out,
                size_t outsize,
                size_t *outlen);

/* Open packet (len bytes, from the network) into out (outsize bytes; a
 * GOSSIP_SEAL_PLAIN_MAX buffer holds any payload), setting *outlen and
 * *seq (may be NULL) to the sender's sequence number. Nothing in out is
 * valid unless this returns 0. Returns 0, or AT_EPROTO for any packet
 * that does not open (short, oversize, unknown version or key, failed
 * tag), counted in r->stats by reason, or AT_ETOOBIG when out is smaller
 * than the opened payload (the caller's bug; not counted). */
int gossip_open(struct gossip_keyring *r,
                const uint8_t *packet,
                size_t len,
                uint8_t *out,
                size_t outsize,
                size_t *outlen,
                uint64_t *seq);

/* ---- replay window ---- */

#define GOSSIP_REPLAY_WINDOW 256 /* sequence numbers remembered below top */

/* One sender's window: the highest sequence number accepted and which of
 * the GOSSIP_REPLAY_WINDOW numbers below it were seen (a bitmap indexed
 * by seq modulo the window). Zero it to initialize. */
struct gossip_replay {
    uint64_t top; /* highest accepted; 0 = none yet */
    uint64_t seen[GOSSIP_REPLAY_WINDOW / 64];
};

/* Accept seq (from a packet that opened) once: returns 0 and remembers
 * it, or AT_EPROTO when it was seen before, is 0, or is at least
 * GOSSIP_REPLAY_WINDOW below the highest accepted. Call it only after
 * gossip_open succeeded and the sender is known, so that no forged
 * packet moves the window. */
int gossip_replay_check(struct gossip_replay *w, uint64_t seq);

#endif /* GOSSIP_SEAL_H */
