/* The struct raft_fsm that libraft drives (glue.c): apply, snapshots in
 * the thread pool, restore, on one meta_fsm. */
#ifndef META_GLUE_H
#define META_GLUE_H

#include <raft.h>

#include "common/common.h"
#include "raft/snapfork.h"

struct meta_fsm;
struct meta_snap_job;

/* The struct raft_fsm handed to libraft, bound to one meta_fsm. */
struct meta_fsm_glue {
    struct raft_fsm iface; /* iface.data points back here */
    struct meta_fsm *fsm;  /* borrowed */
    struct raft *raft;     /* borrowed; set before raft_start */
    /* Snapshot in flight (version-3 FSM): a child forked on the loop by
     * snapshot (or, when fork fails, a copy taken there), its encoding
     * collected (or the copy encoded) in the pool by snapshot_async, the
     * child reaped (or the copy recycled) by snapshot_finalize at the
     * latest. */
    struct meta_snap_fork child; /* pid 0 when none */
    struct meta_snap_job *job;   /* owned; finalize recycles it (fsm spare) */
    bool job_inflight;           /* loop only: snapshot called, not finalized */
    bool job_forked;             /* this one is the child's */
    uint64_t job_t0;             /* uv_hrtime() when snapshot was called */
    double job_loop_ms;          /* loop-thread time of the fork or the copy */
    double job_loop_cpu_ms;      /* the same in thread CPU time */
    double job_pool_ms;          /* pool time of the encode */
    size_t job_len;              /* encoded bytes */
    /* file mode (snapfile.h): the child writes the snapshot file of
     * job_index in snap_dir, and libraft stores its descriptor */
    bool job_file;
    uint64_t job_index;
    uint64_t job_file_len;
    const char *snap_dir; /* borrowed: the raft dir; NULL: no files */
    uint64_t job_applies; /* applies while the job was in flight */
    /* optional: called after every apply (tests record the hash chain) */
    void (*applied)(void *data, const struct meta_fsm *f);
    void *data;
};
void meta__glue_init(struct meta_fsm_glue *g, struct meta_fsm *fsm);

/* Remove, off the loop, the snapshot files libraft no longer names
 * (snapfile.h); no-op without snap_dir. */
void meta__glue_prune(const struct meta_fsm_glue *g);

#endif /* META_GLUE_H */
