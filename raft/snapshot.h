/* Whole-state snapshots of the FSM (snapshot.c): a flat copy taken on
 * the loop, its encoding, and the decoding of a snapshot into an FSM. */
#ifndef META_SNAPSHOT_H
#define META_SNAPSHOT_H

#include "proto/proto.h"
#include "raft/state.h"

/* A consistent copy of the whole state, taken on the loop thread and
 * encoded later (possibly on another thread) while applies continue. It
 * shares nothing with the FSM: every string and byte lives in one arena. */
struct meta_snap_job;
/* Copy the state (cheap: flat arrays and one arena, no encoding). Reuses
 * f->snap_spare when there is one. */
struct meta_snap_job *meta_snap_job_take(struct meta_fsm *f);
/* Hand a job back once encoded: kept as f->snap_spare unless big. */
void meta_snap_job_recycle(struct meta_fsm *f, struct meta_snap_job *j);
/* Bytes the job holds; a job above META_SNAP_SPARE_MAX is not kept. */
#define META_SNAP_SPARE_MAX ((size_t)64 << 20)
size_t meta_snap_job_size(const struct meta_snap_job *j);
/* Encode the copy into one buffer from alloc (caller owns). Touches only
 * the job, so it may run on any thread. */
int meta_snap_job_encode(const struct meta_snap_job *j,
                         proto_alloc_fn alloc,
                         void **out,
                         size_t *len,
                         char *errmsg);
void meta_snap_job_free(struct meta_snap_job *j);

/* Encode the whole state into one buffer from alloc (caller owns). */
int meta_fsm_snapshot(const struct meta_fsm *f,
                      proto_alloc_fn alloc,
                      void **out,
                      size_t *len,
                      char *errmsg);
/* Decode a snapshot into fresh (initialized, empty) and check every cross
 * reference. Returns 0, AT_ECORRUPT, AT_EPROTO or AT_ETOOBIG; fresh is to
 * be released either way when not used. */
int meta__snap_decode(struct meta_fsm *fresh,
                      const void *buf,
                      size_t len,
                      char *errmsg);

#endif /* META_SNAPSHOT_H */
