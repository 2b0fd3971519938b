/* SWIM membership with the Lifeguard refinements: randomized round-robin
 * probes, indirect probes, suspicion refuted by incarnation numbers,
 * piggybacked dissemination, local health awareness. A pure state
 * machine: the caller gives it a clock, a send function and a timer that
 * calls gossip_tick(); it owns no socket and no thread. */
#ifndef GOSSIP_SWIM_H
#define GOSSIP_SWIM_H

#include <stddef.h>

#include "gossip/msg.h"

struct gossip;

/* What changed about a member; the member is passed as it is now. */
enum gossip_event {
    GOSSIP_EVENT_JOIN = 1, /* first heard of */
    GOSSIP_EVENT_ALIVE,    /* back to alive (refuted or rejoined) */
    GOSSIP_EVENT_SUSPECT,
    GOSSIP_EVENT_DEAD,
    GOSSIP_EVENT_LEFT,
    GOSSIP_EVENT_UPDATE, /* new metadata or address */
};

/* A member as gossip sees it (a copy handed to callbacks and lookups). */
struct gossip_member_info {
    char name[GOSSIP_NAME_MAX];
    char addr[GOSSIP_ADDR_MAX];
    enum gossip_state state;
    uint64_t incarnation;
    uint64_t state_since_ms; /* when this member entered its state */
    uint32_t rtt_us; /* our last direct probe's round trip; 0 = none yet */
    struct gossip_meta meta;
};

/* Milliseconds from any fixed origin, never going back. */
typedef uint64_t (*gossip_now_cb)(void *data);
/* Hand m to the network for addr; m is borrowed for the call only. A lost
 * packet is the protocol's business: send has no error to return. */
typedef void (*gossip_send_cb)(void *data,
                               const char *addr,
                               const struct gossip_msg *m);
typedef void (*gossip_event_cb)(void *data,
                                enum gossip_event ev,
                                const struct gossip_member_info *m);

struct gossip_config {
    const char *name; /* borrowed for gossip_new: unique in the cluster */
    const char *addr; /* borrowed for gossip_new: where others reach us */
    struct gossip_meta meta;
    /* 0 = memberlist's LAN default, in brackets. */
    unsigned probe_interval_ms;  /* [1000] one probe per period */
    unsigned probe_timeout_ms;   /* [500] direct ack wait */
    unsigned indirect_checks;    /* [3] k members asked to ping-req */
    unsigned suspicion_mult;     /* [4] min suspicion, x log10 N periods */
    unsigned suspicion_max_mult; /* [6] max suspicion = this x min */
    unsigned retransmit_mult;    /* [4] lambda: sends = this x log10(N+1) */
    unsigned awareness_max;      /* [8] local health scales timeouts 1..8 */
    unsigned gossip_interval_ms; /* [200] push queued updates... */
    unsigned gossip_nodes;       /* [3] ...to this many random members */
    unsigned reap_ms;      /* [30000] forget members dead or left this long */
    uint64_t seed;         /* PRNG seed (random in production) */
    gossip_now_cb now_ms;  /* required */
    gossip_send_cb send;   /* required */
    gossip_event_cb event; /* optional */
    void *data;            /* passed to the callbacks */
};

/* A member of one cluster, alone and alive at incarnation 1. Returns NULL
 * (errmsg set) for a missing callback or a name or address too long.
 * Callbacks never run inside gossip_new. Free with gossip_free. */
struct gossip *gossip_new(const struct gossip_config *c, char *errmsg);
void gossip_free(struct gossip *g);

/* Run due work: start the next probe, escalate a silent one to indirect
 * probes and suspicion, expire suspicions into deaths, gossip queued
 * updates. Call it at least every tenth of the probe timeout; calling it
 * more often changes nothing. */
void gossip_tick(struct gossip *g);

/* A message from addr, already opened and decoded. AT_EPROTO for a
 * message that fails gossip_msg_valid (nothing applied); 0 otherwise,
 * even for a message about members we ignore. May call send and event. */
int gossip_receive(struct gossip *g,
                   const char *from_addr,
                   const struct gossip_msg *m);

/* Announce ourselves to each seed address (our alive update): a seed that
 * hears of us spreads it and answers with part of its table. Retried on
 * each probe period until some member answers. AT_EINVAL for n == 0 or an
 * address too long. */
int gossip_join(struct gossip *g, const char *const *seeds, size_t n);

/* Leave on purpose: we become LEFT and spread a leave update; others show
 * left, not dead. Keep ticking until gossip_leave_done() so it spreads;
 * after that only stop and free. */
void gossip_leave(struct gossip *g);
/* Whether our leave update went out as often as dissemination wants. */
bool gossip_leave_done(const struct gossip *g);

/* New metadata: incarnation bump, spread as an alive update. */
void gossip_set_meta(struct gossip *g, const struct gossip_meta *meta);

/* Our whole table as updates, for a full-state (push-pull) exchange: one
 * per member in its state (suspect and dead name us as the accuser).
 * Writes at most max; returns how many members there are (a result above
 * max means out was too short). */
size_t gossip_state_export(const struct gossip *g,
                           struct gossip_update *out,
                           size_t max);

/* Learn a peer's full state (gossip_state_export's output) under the
 * usual incarnation rules, with memberlist's caution: a member the peer
 * thinks dead is only suspected here, so it gets its chance to refute.
 * spread: re-broadcast what is news (a real exchange); false for a test
 * fixture seeding a converged cluster. */
void gossip_merge(struct gossip *g,
                  const struct gossip_update *u,
                  size_t n,
                  bool spread);

/* The member named name (ourselves included): 0 and *out, or
 * AT_ENOTFOUND. */
int gossip_member_get(const struct gossip *g,
                      const char *name,
                      struct gossip_member_info *out);
/* Members we know (ourselves included), in any state. */
size_t gossip_members_count(const struct gossip *g);
/* Members alive or suspect (ourselves included): N in the formulas. */
size_t gossip_members_live(const struct gossip *g);
/* Local health score, 0 (healthy) .. awareness_max - 1. */
unsigned gossip_health(const struct gossip *g);
uint64_t gossip_incarnation(const struct gossip *g);

/* The formulas, for callers sizing timeouts and for the tests: */
/* memberlist's minimum suspicion timeout for n members, in ms. */
uint64_t gossip_suspicion_min_ms(const struct gossip_config *c, size_t n);
/* Suspicion timeout after confirmations independent accusers beyond the
 * first, k expected: max, falling on a log curve to min. */
uint64_t gossip_suspicion_timeout_ms(uint64_t min_ms,
                                     uint64_t max_ms,
                                     unsigned confirmations,
                                     unsigned k);
/* Times one update is sent: retransmit_mult x ceil(log10(n + 1)). */
unsigned gossip_retransmits(const struct gossip_config *c, size_t n);

#endif /* GOSSIP_SWIM_H */
