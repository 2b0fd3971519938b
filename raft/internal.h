/* The struct meta behind meta.h, shared by the files that drive it: open.c
 * (open, close), propose.c (writes), read.c (reads), member.c
 * (membership) and local.c (local reads), with the raft configuration
 * queries they all ask. */
#ifndef META_INTERNAL_H
#define META_INTERNAL_H

#include <raft.h>
#include <raft/uv.h>

#include "raft/fsm.h"
#include "raft/glue.h"
#include "raft/guard.h"
#include "raft/transport.h"

#define META_WAIT_MS 10000 /* bound on waiting for a local apply */

struct meta {
    uv_loop_t *loop; /* borrowed */
    uint64_t id;
    char *name;         /* owned */
    char *address;      /* owned */
    char *store_id;     /* owned */
    char *dir;          /* owned */
    char *peer_address; /* owned, "" if none */
    char *api_address;  /* owned, "" if none */
    char *region;       /* owned, "" if none */
    char *secret;       /* owned, never logged */
    bool standby;
    unsigned target_voters;
    const struct meta_hooks *hooks; /* borrowed */
    void *hooks_data;               /* borrowed */
    struct raft raft;
    struct raft_io io;       /* libraft's uv io */
    struct meta_guard guard; /* raft -> guard -> io (guard.h, F6) */
    struct meta_transport transport;
    struct raft_tracer tracer;
    struct meta_fsm fsm;
    struct meta_fsm_glue glue;

    /* open.c: the peers cache, the handles, closing */
    struct at_map peers_cache; /* name -> owned "host:port" (peers file) */
    uint64_t peers_written;    /* fsm.nodes_version last written */
    uv_timer_t tick;           /* membership, self record, timeouts */
    uv_check_t check; /* wakes apply waiters after each loop iteration */
    uv_timer_t close_timer;
    bool close_xfer_busy;
    bool raft_closing;
    unsigned close_handles;
    bool closing;
    void (*close_cb)(void *data);
    void *close_data;
    struct meta *buried_next; /* open.c: the husks of closed metas (F7) */

    /* propose.c */
    struct at_list fwds;         /* struct meta_fwd in the forward hook */
    struct at_list parked;       /* struct meta_fwd waiting for a leader */
    unsigned leader_wait_ms;     /* 0: no leader fails at once */
    char errmsg[AT_ERRMSG_SIZE]; /* why the last proposal failed */

    /* read.c */
    struct at_list waiters; /* struct meta_waiter (owned) */
    struct at_list rixs;    /* struct meta_rix_batch in the read-index hook */
    /* follower reads waiting for the next read-index RPC (struct meta_rix) */
    struct at_list rix_wait;
    struct at_list rix_parked; /* struct meta_rix waiting for a leader */
    unsigned rix_inflight;     /* read-index RPCs in flight */
    uv_idle_t idle;            /* flushes ready reads and starts barriers */
    struct at_list ready;      /* struct meta_read: answer on the next turn */
    struct at_list waiting;    /* struct meta_read: need the next barrier */
    struct at_list inflight;   /* struct meta_read: served by the barrier in
                                  flight */
    struct raft_barrier barrier;
    bool barrier_busy;
    bool push_pending; /* a barrier must follow the one in flight */
    uint64_t barrier_issue_term;
    uint64_t barrier_ok_term; /* term of the last committed barrier */
    uint64_t pushed_commit;   /* commit index sent with the last barrier */
    /* the last index before the last barrier, whose entry is the next one
     * (see read_index_now) */
    uint64_t barrier_prev;
    /* Leadership confirmation (ReadIndex without a log write): once the
     * leader has committed a barrier in its term, a batch of reads is
     * served by asking every other voter its current term; a majority
     * still in this term proves no other leader can have committed
     * anything newer than the commit index taken when the round began. */
    struct at_list rounds; /* struct meta_round with queries in flight */
    unsigned rounds_open;  /* of which undecided */

    /* member.c */
    struct at_list changes; /* struct meta_change queue; the first one is
                               in flight if change_busy */
    bool change_busy;
    uint64_t promote_after;    /* uv_now() before which no auto promotion */
    bool self_busy;            /* our own NodeUpsert in flight */
    uint64_t self_retry_after; /* uv_now() before which it is not retried */
    struct at_list xfers_done; /* owned: ended transfers (meta_xfer) */
    bool was_member;           /* seen in the raft configuration */
    bool was_in_table;         /* seen in the FSM's node table */
    bool removed_logged;
    uint64_t seen_leader;    /* leader id at the last tick (0: none) */
    uint64_t leader_changes; /* see meta_status.leader_changes */

    /* autopilot.c */
    struct meta_autopilot *ap; /* owned */

    /* disk.c: the raft dir's free space against raft_reserve */
    uint64_t raft_reserve; /* bytes; 0: no check */
    uint64_t disk_free;    /* last reading */
    uint64_t disk_next;    /* uv_now ms of the next reading */
    bool disk_low;         /* below the reserve: proposals refused */
};

/* The role of node id in the raft configuration (RAFT_VOTER, ...), or -1
 * when it is not there. */
static inline int meta__role_of(const struct meta *m, uint64_t id)
{
    for (unsigned i = 0; i < m->raft.configuration.n; i++) {
        if (m->raft.configuration.servers[i].id == id)
            return m->raft.configuration.servers[i].role;
    }
    return -1;
}

/* The voters of the raft configuration. */
static inline unsigned meta__voters(const struct meta *m)
{
    unsigned n = 0;
    for (unsigned i = 0; i < m->raft.configuration.n; i++) {
        if (m->raft.configuration.servers[i].role == RAFT_VOTER)
            n++;
    }
    return n;
}

/* Is another node known to lead? Its id in *leader (0: none known). */
static inline bool meta__leader_known(struct meta *m, uint64_t *leader)
{
    raft_id id = 0;
    const char *addr = NULL;
    raft_leader(&m->raft, &id, &addr);
    *leader = id;
    return id != 0 && id != m->id;
}

/* snapshare.c: the guard's snapshot sending and fetching wired to the
 * transport and the node's hook (after meta__guard_init). */
void meta__snapshare_setup(struct meta *m, const struct meta_config *cfg);

#endif /* META_INTERNAL_H */
