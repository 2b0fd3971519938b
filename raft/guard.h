/* The commit guard (guard.c): a raft_io decorator that closes the Raft
 * paper's Figure 8 window in libraft 0.15 (jepsen-style/FINDINGS.md F6).
 *
 * 0.15's replicationQuorum() commits the leader's last stored index once a
 * majority holds it, without checking that the entry is of the current
 * term (fixed upstream in 0.17.1). A new leader whose log ends with an
 * entry of an older term can therefore commit and apply it by counting
 * replicas, and a later leader can overwrite it (Figure 8 (c)-(d)); a
 * follower that learned that commit then stops for good on the
 * conflicting entry (RAFT_SHUTDOWN). tests/unit/raft/test_figure8.c plays
 * the schedule.
 *
 * The guard sits between libraft and its real io (libraft's uv io in
 * atoll, the fixture's io in the test) and does two things:
 * - while its raft leads a term of which no entry is stored on its own
 *   disk yet, it holds back every AppendEntries result addressed to it,
 *   and delivers them, in order, as soon as such an entry is stored (or
 *   the raft stops leading that term). replicationQuorum() is called only
 *   from those results and from the leader's own append completions, with
 *   the leader's last stored index: once an entry of the current term is
 *   stored, that index is of the current term, so every commit counts
 *   replicas of a current-term entry (Raft section 5.4.2);
 * - so that the wait is short, it appends a barrier (an entry of the new
 *   term, raft_barrier) as soon as its raft becomes leader: in the receive
 *   or tick callback in which that happened.
 *
 * It also carries snapshot files between nodes, since it sees every
 * message: an InstallSnapshot it sends holds a descriptor for a node that
 * fetches files and the file's bytes for any other (snapsend.h), and one
 * it receives with a descriptor reaches raft only once the file is here
 * (snaprecv.h).
 *
 * Everything else passes through unchanged. Held results carry no
 * entries; a full hold queue drops the newest (a lost message: the
 * leader's heartbeats bring another). */
#ifndef META_GUARD_H
#define META_GUARD_H

#include <raft.h>
#include <stdbool.h>

#include "raft/snaprecv.h"

#define META_GUARD_HELD_MAX 256

/* r leads, and is not in the middle of stepping down. libraft 0.15 fails a
 * leader's pending applies and barriers (RAFT_LEADERSHIPLOST) from inside
 * its step-down, after it freed the progress array but while r->state
 * still says leader: a request made from such a callback (raft_apply,
 * raft_barrier, raft_assign, ...) passes raft's leader check, replicates
 * with the freed array and crashes (a NULL read in progressState; seen
 * under a 3-node load: jepsen-style/FINDINGS.md, F11). Every request atoll
 * makes of raft is made only when this holds; otherwise it is "not
 * leader", as it is a moment later. */
static inline bool meta__raft_leading(const struct raft *r)
{
    return r->state == RAFT_LEADER && r->leader_state.progress != NULL;
}

struct meta_guard_held;
struct meta_guard {
    struct raft_io io;     /* hand this one to raft_init */
    struct raft_io *inner; /* borrowed: the real io */
    raft_io_tick_cb tick;  /* raft's, from start */
    raft_io_recv_cb recv;
    raft_io_close_cb close_cb;
    raft_term stored_term;        /* highest term of an entry stored on disk */
    raft_term barrier_term;       /* term whose barrier is appended */
    struct meta_guard_held *held; /* AppendEntries results held back */
    unsigned n_held;
    /* counters */
    unsigned long long held_total, dropped_total, barriers_total;
    unsigned close_calls; /* of the inner io's close callback: see guard.c */
    bool closing;         /* close has begun: see g_append_cb */
    const char *snap_dir; /* borrowed: where snapshot files are (snapsend.h) */
    /* Snapshot files between nodes. peer_fetches (may be NULL: no one
     * does) says whether node id fetches snapshot files itself: a leader
     * sends it descriptors as they are, everyone else the file's bytes
     * (snapsend.h). recv_env.fetch (may be NULL: this node does not
     * fetch) fetches a file for a descriptor received (snaprecv.h). */
    bool (*peer_fetches)(void *data, raft_id id);
    void *peer_fetches_data;
    struct meta_snaprecv_env recv_env;
    struct meta_snaprecv *fetching; /* the fetch in flight, or NULL */
};

/* Decorate inner, whose init has not run yet (raft_init runs it through
 * the guard). inner must outlive the guard; close it after raft_close's
 * callback as before. */
void meta__guard_init(struct meta_guard *g, struct raft_io *inner);

/* For a raft already initialized on inner (raft/fixture.h's servers):
 * put the guard between r and inner before raft_start. */
void meta__guard_attach(struct meta_guard *g, struct raft *r);

/* True while g holds results back: its raft leads a term of which no
 * entry is stored yet. */
bool meta__guard_holding(const struct meta_guard *g);

#endif /* META_GUARD_H */
