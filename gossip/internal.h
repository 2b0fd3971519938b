/* gossip/'s private structures, shared by its .c files only: the member
 * table, the broadcast queue, the probe in flight, the relays. */
#ifndef GOSSIP_INTERNAL_H
#define GOSSIP_INTERNAL_H

#include "common/common.h"
#include "gossip/swim.h"

/* Indirect probes we relay for others at once; the oldest is forgotten
 * past this (its origin then simply sees no answer). */
#define GOSSIP_RELAYS_MAX 32
/* Members one table holds at most: updates from the network never grow
 * it past this (memberlist's clusters top out in the thousands). */
#define GOSSIP_MEMBERS_MAX 16384
/* Distinct accusers remembered per suspicion (k is 2 by default). */
#define GOSSIP_ACCUSERS_MAX 8

struct gossip_member {
    struct gossip_member_info info;
    /* Suspicion (state SUSPECT only): started at suspect_start, ends at
     * suspect_start + timeout, timeout shrinking as accusers arrive. */
    uint64_t suspect_start;
    uint64_t suspect_timeout;
    unsigned n_accusers;
    uint64_t accusers[GOSSIP_ACCUSERS_MAX]; /* hashes of their names */
};

struct gossip_bcast {
    struct gossip_update u;
    unsigned sent; /* times piggybacked so far */
    uint64_t id;   /* insertion order: newer first among equals */
};

enum gossip_probe_state {
    GOSSIP_PROBE_IDLE = 0,
    GOSSIP_PROBE_DIRECT,   /* ping sent, waiting up to the probe timeout */
    GOSSIP_PROBE_INDIRECT, /* ping-reqs sent, waiting to period's end */
};

struct gossip_probe {
    enum gossip_probe_state state;
    char target[GOSSIP_NAME_MAX];
    uint32_t seq;
    uint64_t timeout_at; /* direct: probe timeout; indirect: period end */
    uint64_t sent_at;    /* when the direct ping left: its ack's RTT */
    unsigned nacks_expected;
    unsigned nacks;
};

struct gossip_relay {
    bool used;
    uint32_t our_seq;    /* seq of our ping to the target */
    uint32_t origin_seq; /* seq the origin waits for */
    char origin_addr[GOSSIP_ADDR_MAX];
    uint64_t nack_at; /* no ack by then: nack the origin */
};

struct gossip {
    struct gossip_config cfg;       /* defaults applied; name/addr unused */
    struct gossip_member *self;     /* borrowed from members */
    struct gossip_member **members; /* owned, each owned */
    size_t n_members, cap_members;
    struct at_map by_name; /* name -> struct gossip_member * (borrowed) */
    size_t n_live;         /* alive or suspect, self included */
    /* Probe order: a shuffled copy of members, walked round robin. */
    struct gossip_member **order; /* owned array, borrowed entries */
    size_t n_order, order_next;
    /* Members in state SUSPECT, so ticks need not scan the table. */
    struct gossip_member **suspects; /* owned array, borrowed entries */
    size_t n_suspects, cap_suspects;
    struct gossip_bcast *bcasts; /* owned */
    size_t n_bcasts, cap_bcasts;
    uint64_t bcast_ids;
    struct gossip_probe probe;
    struct gossip_relay relays[GOSSIP_RELAYS_MAX];
    unsigned health; /* Lifeguard awareness score */
    uint32_t seq;
    uint64_t rng;
    uint64_t next_probe_at;
    uint64_t next_gossip_at;
    bool leaving;
    /* Members about whom the message being received carried older news
     * than ours: its sender gets our records back (borrowed, valid for
     * one gossip_receive). */
    struct gossip_member *stale[GOSSIP_MSG_UPDATES_MAX];
    size_t n_stale;
    /* Join seeds, retried each period until a member answers. */
    char (*seeds)[GOSSIP_ADDR_MAX]; /* owned */
    size_t n_seeds;
    uint64_t join_at; /* next retry */
    bool joined;      /* some member has answered */
};

/* members.c */
uint64_t gossip__rand(struct gossip *g);
struct gossip_member *gossip__member_find(const struct gossip *g,
                                          const char *name);
/* A new member in the table and at a random place in the probe order. */
struct gossip_member *gossip__member_add(struct gossip *g,
                                         const char *name,
                                         const char *addr);
/* Move m to state st now, keeping n_live right and telling the caller. */
void gossip__member_set_state(struct gossip *g,
                              struct gossip_member *m,
                              enum gossip_state st,
                              enum gossip_event ev);
void gossip__member_event(struct gossip *g,
                          struct gossip_member *m,
                          enum gossip_event ev);
/* The next member to probe (alive or suspect, not us), NULL if none. */
struct gossip_member *gossip__probe_next(struct gossip *g);
/* Up to n random live members other than us and except; count returned. */
size_t gossip__random_members(struct gossip *g,
                              const char *except,
                              struct gossip_member **out,
                              size_t n);
void gossip__members_free(struct gossip *g);

/* broadcast.c */
/* Queue u, replacing a queued update about the same member. */
void gossip__bcast_queue(struct gossip *g, const struct gossip_update *u);
/* Piggyback queued updates on m, least sent first; drops the ones sent
 * often enough. */
void gossip__bcast_fill(struct gossip *g, struct gossip_msg *m);
bool gossip__bcast_pending(const struct gossip *g);
bool gossip__bcast_about(const struct gossip *g, const char *name);
void gossip__bcast_free(struct gossip *g);
void gossip__update_alive(const struct gossip_member *m,
                          struct gossip_update *u);
/* m's record in its current state (suspect and dead with us as the
 * accuser). */
void gossip__update_of(const struct gossip *g,
                       const struct gossip_member *m,
                       struct gossip_update *u);

/* suspicion.c */
void gossip__config_defaults(struct gossip_config *c);
/* Start suspecting m on from's word (or add a confirmation). Returns
 * whether this was news worth re-broadcasting. */
bool gossip__suspect(struct gossip *g,
                     struct gossip_member *m,
                     const char *from);
/* Declare every suspect whose timer ran out dead. */
void gossip__suspicion_expire(struct gossip *g, uint64_t now);

/* core.c */
uint64_t gossip__now(const struct gossip *g);
/* Send m (piggybacking queued updates) to addr. */
void gossip__send(struct gossip *g, const char *addr, struct gossip_msg *m);
void gossip__msg_init(struct gossip *g,
                      struct gossip_msg *m,
                      enum gossip_msg_type type);
void gossip__health_add(struct gossip *g, int delta);
/* Refute a suspicion or death about us: bump and spread alive. */
void gossip__refute(struct gossip *g, uint64_t accused_incarnation);

/* receive.c */
/* Apply one update; rebroadcast says whether news is re-queued. */
void gossip__apply(struct gossip *g,
                   const struct gossip_update *u,
                   bool rebroadcast);

#endif /* GOSSIP_INTERNAL_H */
