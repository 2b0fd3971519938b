/* What autopilot.c offers member.c and open.c: the leader's management of
 * voters from gossip's view (see meta.h, autopilot). Autopilot is "on"
 * when meta_config.autopilot is set and hooks->liveness exists; off, every
 * function here is a no-op (and meta__autopilot_may_vote says yes). */
#ifndef META_AUTOPILOT_H
#define META_AUTOPILOT_H

#include "raft/meta.h"
#include "raft/transport.h"

struct meta_autopilot; /* opaque, owned by struct meta (m->ap) */

/* The autopilot of a node opened with cfg (its fields, defaults for 0
 * values: dead after 2 min, stabilization 10 s, max lag 250; reap after
 * 0 means never). Never
 * NULL. */
struct meta_autopilot *meta__autopilot_new(const struct meta_config *cfg);
/* Free ap (NULL: nothing). */
void meta__autopilot_free(struct meta_autopilot *ap);

/* Autopilot on for m: enabled and a liveness hook. */
bool meta__autopilot_on(const struct meta *m);

/* Leader, every tick: refresh each configuration member's liveness,
 * catch-up and "stable since" state. Not leader: forget that state (a new
 * leader starts its stabilization clocks afresh). */
void meta__autopilot_update(struct meta *m, bool leader);

/* May the leader make node id a voter now? Always when autopilot is off;
 * else when id is this node, or has been alive and caught up for the
 * stabilization time. */
bool meta__autopilot_may_vote(const struct meta *m, uint64_t id);

/* A change the autopilot wants (member.c makes it). */
struct meta__ap_change {
    bool remove;  /* meta_member_remove; else a role change */
    bool standby; /* role change: to standby, else to voter */
    uint64_t id;
    char name[META_ADDRESS_MAX + 1];
};

/* Leader, no membership change queued: decide at most one autopilot
 * change (remove a node that left, promote a replacement of a dead voter
 * or of one handing its vote over, demote a replaced one, remove a
 * standby dead for reap_after), noted as an action. True when *out is
 * one, for the caller to queue at once. */
bool meta__autopilot_decide(struct meta *m, struct meta__ap_change *out);

/* Leader: a voter to hand leadership to, healthy (alive, caught up) and
 * not leaving (handing its vote over, or stopping after that); 0: none
 * such, or autopilot off (libraft then picks). */
uint64_t meta__autopilot_transfer_to(const struct meta *m);

/* Queue a handoff of voter id (see meta_member_handoff, which checks the
 * rest): 0, or AT_EBUSY with 8 waiting. */
int meta__autopilot_handoff(struct meta *m,
                            uint64_t id,
                            void (*cb)(void *data, int status),
                            void *data);
/* Leader, every tick after meta__autopilot_update: answer the handoffs
 * (meta_member_handoff) that are over: 0 once the node is no longer a
 * voter, AT_EAGAIN when no standby could ever take over (none alive
 * that may vote), AT_ETIMEDOUT after 30 s. */
void meta__autopilot_handoffs(struct meta *m);
/* Answer every waiting handoff with status (leadership lost, closing). */
void meta__autopilot_handoffs_end(struct meta *m, int status);

/* Remember an action (kind "promote" | "demote" | "remove", static) on
 * node, with a reason (copied, truncated), and log it at INFO as
 * "autopilot: promoting 'node' <reason>" (demoting, removing). */
void meta__autopilot_note(struct meta *m,
                          const char *kind,
                          const char *node,
                          const char *reason);

/* ms as "0.6s" (under 10 s) or "125s", in out (size bytes). */
void meta__autopilot_duration(uint64_t ms, char *out, size_t size);

#endif /* META_AUTOPILOT_H */
