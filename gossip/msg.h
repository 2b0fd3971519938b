/* The messages SWIM members exchange, as plain C structs: the boundary a
 * later wire codec (protobuf, sealed) packs and unpacks, so the protocol
 * never sees bytes. Every string is NUL-terminated within its array. */
#ifndef GOSSIP_MSG_H
#define GOSSIP_MSG_H

#include <stdbool.h>
#include <stdint.h>

#define GOSSIP_NAME_MAX    64 /* member name, NUL included */
#define GOSSIP_ADDR_MAX    64 /* "host:port", NUL included */
#define GOSSIP_REGION_MAX  32
#define GOSSIP_ROLE_MAX    16
#define GOSSIP_VERSION_MAX 32
/* Updates piggybacked on one packet: memberlist fits its own into one
 * UDP datagram of about 1,400 bytes, a handful of updates. */
#define GOSSIP_MSG_UPDATES_MAX 8

/* A member's state as every member sees it. */
enum gossip_state {
    GOSSIP_ALIVE = 0,
    GOSSIP_SUSPECT,
    GOSSIP_DEAD, /* failed: stopped answering */
    GOSSIP_LEFT, /* said goodbye: a graceful leave, not a failure */
};

/* gossip_meta.flags */
#define GOSSIP_META_IN_CLUSTER 1u /* has raft state: bootstrapped or joined */
/* leaving the cluster for good (not a restart): its leave that follows
 * means "remove me" to autopilot */
#define GOSSIP_META_DEPARTING 2u

/* What a member says about itself; spread with an incarnation bump. */
struct gossip_meta {
    char region[GOSSIP_REGION_MAX];
    char zone[GOSSIP_REGION_MAX];
    char role[GOSSIP_ROLE_MAX]; /* "voter", "standby", "edge" */
    char api_addr[GOSSIP_ADDR_MAX];
    char peer_addr[GOSSIP_ADDR_MAX];
    char version[GOSSIP_VERSION_MAX];
    uint64_t free_bytes; /* free blob space */
    uint32_t load;       /* requests in flight, or any load figure */
    uint32_t flags;      /* GOSSIP_META_* */
    uint64_t raft_id;    /* the node's raft id, 0 before it has one */
};

/* A piggybacked broadcast: one member's state at one incarnation. */
enum gossip_update_kind {
    GOSSIP_UPDATE_ALIVE = 1, /* name, addr, meta at incarnation */
    GOSSIP_UPDATE_SUSPECT,   /* 'from' suspects name at incarnation */
    GOSSIP_UPDATE_DEAD,      /* 'from' declares name failed */
    GOSSIP_UPDATE_LEAVE,     /* name leaves on purpose */
};

struct gossip_update {
    enum gossip_update_kind kind;
    uint64_t incarnation;
    char name[GOSSIP_NAME_MAX];
    char addr[GOSSIP_ADDR_MAX]; /* ALIVE only */
    char from[GOSSIP_NAME_MAX]; /* SUSPECT and DEAD: the accuser */
    struct gossip_meta meta;    /* ALIVE only */
};

/* The packet types. Updates ride on every one of them. */
enum gossip_msg_type {
    GOSSIP_MSG_PING = 1, /* are you there? (seq) */
    GOSSIP_MSG_ACK,      /* yes (seq of the ping) */
    GOSSIP_MSG_PING_REQ, /* ping target for me, relay its ack (indirect) */
    GOSSIP_MSG_NACK,     /* I relayed your ping-req, target did not answer */
    GOSSIP_MSG_UPDATES,  /* only piggybacked updates (gossip, join) */
};

struct gossip_msg {
    enum gossip_msg_type type;
    uint32_t seq;
    char from[GOSSIP_NAME_MAX]; /* sender's name */
    /* PING: the name the sender expects to reach (a restarted process
     * at the same address must not ack for its predecessor);
     * PING_REQ: the member to probe, at target_addr. */
    char target[GOSSIP_NAME_MAX];
    char target_addr[GOSSIP_ADDR_MAX];
    uint32_t n_updates;
    struct gossip_update updates[GOSSIP_MSG_UPDATES_MAX];
};

/* Whether m's strings are terminated and its counts in bounds: a codec
 * calls it on everything it unpacks; gossip_receive refuses the rest. */
bool gossip_msg_valid(const struct gossip_msg *m);
/* The same checks on one update (a known kind, a non-empty name, every
 * string terminated): a push-pull table's entries pass it one by one. */
bool gossip_update_valid(const struct gossip_update *u);

#endif /* GOSSIP_MSG_H */
