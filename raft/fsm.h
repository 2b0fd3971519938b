/* The FSM as a whole (fsm.c): set up, apply one command, restore a
 * snapshot, release. */
#ifndef META_FSM_H
#define META_FSM_H

#include "raft/state.h"

#define META_REQUESTS_MAX 10000 /* request ids remembered for retries */

/* An empty FSM remembering up to requests_max request ids. */
void meta_fsm_init(struct meta_fsm *f, size_t requests_max);
void meta_fsm_release(struct meta_fsm *f);

/* Keep manifest bodies in a new unnamed file in dir (bodies.h), and again
 * in a new one after each restore. Call before the first apply. 0, or an
 * AT_E* code (errmsg set): the bodies stay on the heap. */
int meta_fsm_bodies_open(struct meta_fsm *f, const char *dir, char *errmsg);

/* Apply one packed command at log index. Deterministic; business failures
 * and undecodable commands go to *result (META_INVALID), never the return
 * value, which is always 0. */
int meta_fsm_apply(struct meta_fsm *f,
                   uint64_t index,
                   const void *buf,
                   size_t len,
                   int *result);

/* Replace the state with a decoded snapshot; on error f is unchanged.
 * Returns 0, AT_ECORRUPT, AT_EPROTO or AT_ETOOBIG. */
int meta_fsm_restore(struct meta_fsm *f,
                     const void *buf,
                     size_t len,
                     char *errmsg);

/* meta_fsm_restore, with check(data, errmsg) run once the snapshot is
 * decoded and before the state is replaced (it may be NULL): a non-zero
 * AT_E* from it leaves f unchanged and is returned. So a check of buf
 * (its hash, computed on another thread meanwhile) can run alongside the
 * decoding. */
int meta_fsm_restore_checked(struct meta_fsm *f,
                             const void *buf,
                             size_t len,
                             int (*check)(void *data, char *errmsg),
                             void *data,
                             char *errmsg);

#endif /* META_FSM_H */
