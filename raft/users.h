/* Users and robot accounts in the FSM (users.c): apply of their commands,
 * lookups, sorted listings, and their part of snapshots. */
#ifndef META_USERS_H
#define META_USERS_H

#include "proto/proto.h"
#include "raft/state.h"

/* Apply a UserPut, UserRemove, RobotPut or RobotRemove at log index;
 * an enum meta_result (META_INVALID for a record out of bounds). */
int meta__user_put(struct meta_fsm *f, uint64_t index, const Atoll__UserPut *o);
int meta__user_remove(struct meta_fsm *f, const char *name);
int meta__robot_put(struct meta_fsm *f,
                    uint64_t index,
                    const Atoll__RobotPut *o);
int meta__robot_remove(struct meta_fsm *f, const char *name);

const struct meta_user *meta__user_find(const struct meta_fsm *f,
                                        const char *name);
const struct meta_robot *meta__robot_find(const struct meta_fsm *f,
                                          const char *name);
/* Sorted by name (sorted) or in map order (not sorted: snapshots). */
void meta__users_each(const struct meta_fsm *f,
                      bool sorted,
                      meta_user_cb each,
                      void *data);
void meta__robots_each(const struct meta_fsm *f,
                       bool sorted,
                       meta_robot_cb each,
                       void *data);

/* Fill the accounts of a fresh FSM from a snapshot: AT_ECORRUPT with
 * errmsg for a missing, duplicate or out-of-bounds record. */
int meta__accounts_restore(struct meta_fsm *f,
                           const Atoll__Snapshot *s,
                           char *errmsg);
void meta__accounts_release(struct meta_fsm *f);

#endif /* META_USERS_H */
