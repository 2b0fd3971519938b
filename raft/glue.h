/* The struct raft_fsm that libraft drives (glue.c): apply, snapshots in
 * the thread pool, restore, on one meta_fsm. */
#ifndef META_GLUE_H
#define META_GLUE_H

#include <raft.h>

#include "common/common.h"

struct meta_fsm;
struct meta_snap_job;

/* The struct raft_fsm handed to libraft, bound to one meta_fsm. */
struct meta_fsm_glue {
    struct raft_fsm iface; /* iface.data points back here */
    struct meta_fsm *fsm;  /* borrowed */
    struct raft *raft;     /* borrowed; set before raft_start */
    /* Snapshot in flight (version-3 FSM): taken on the loop by snapshot,
     * encoded in the pool by snapshot_async, recycled by snapshot_finalize. */
    struct meta_snap_job *job; /* owned; finalize recycles it (fsm spare) */
    bool job_inflight;         /* loop only: snapshot called, not finalized */
    uint64_t job_t0;           /* uv_hrtime() when snapshot was called */
    double job_loop_ms;        /* loop-thread time of the copy */
    double job_loop_cpu_ms;    /* the same in thread CPU time */
    double job_pool_ms;        /* pool time of the encode */
    size_t job_len;            /* encoded bytes */
    uint64_t job_applies;      /* applies while the job was in flight */
    /* optional: called after every apply (tests record the hash chain) */
    void (*applied)(void *data, const struct meta_fsm *f);
    void *data;
};
void meta__glue_init(struct meta_fsm_glue *g, struct meta_fsm *fsm);

#endif /* META_GLUE_H */
