/* The access policy in the FSM (policy.c): apply of PolicySet, the rules
 * as the node reads them, and their part of snapshots. */
#ifndef META_POLICY_H
#define META_POLICY_H

#include "proto/proto.h"
#include "raft/state.h"

/* Apply a PolicySet at log index: META_OK, or META_INVALID for a policy
 * out of bounds (the policy in place stays). */
int meta__policy_set(struct meta_fsm *f,
                     uint64_t index,
                     const Atoll__PolicySet *o);
/* The policy of f, or NULL when none is set. */
const struct meta_policy *meta__policy_find(const struct meta_fsm *f);

/* The policy's part of a snapshot job: a deep copy taken on the loop
 * (NULL when no policy is set), whose message any thread may encode. */
struct meta_policy_snap;
struct meta_policy_snap *meta__policy_snap_take(const struct meta_fsm *f);
/* The SnapPolicy message of p (borrowed from p). */
Atoll__SnapPolicy *meta__policy_snap_msg(struct meta_policy_snap *p);
void meta__policy_snap_free(struct meta_policy_snap *p);

/* Fill the policy of a fresh FSM from a snapshot (none when the snapshot
 * has none): AT_ECORRUPT with errmsg for a policy out of bounds. */
int meta__policy_restore(struct meta_fsm *f,
                         const Atoll__Snapshot *s,
                         char *errmsg);
void meta__policy_release(struct meta_fsm *f);

#endif /* META_POLICY_H */
