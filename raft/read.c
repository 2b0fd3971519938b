/* Linearizable reads: the read barrier, leadership confirmation by term
 * rounds, follower reads through the leader's read index, and the apply
 * waiters (meta_wait_applied).
 *
 * Happy path: meta_read_barrier on the leader queues the read; the first
 * batch of reads in a term waits for a raft_barrier (it commits an entry of
 * the term, so the commit index covers every earlier term); later batches
 * only confirm leadership by asking the other voters their term (no log
 * write, no fsync), then wait until the commit index taken before asking is
 * applied. A single voter that already committed a barrier in its term and
 * has applied everything answers on the next loop iteration without
 * touching the disk. On a follower, one read-index RPC to the leader serves
 * every read queued meanwhile, then the reads wait for the local apply.
 *
 * No leader: with leader_wait_ms, a follower read that finds no leader
 * known, or whose read-index RPC failed (a read is idempotent), is parked
 * and sent again from the tick once a leader is known (through the
 * read-index RPC, or here if this node leads now), until its deadline.
 *
 * Failure modes: no leader (AT_ENOTLEADER), leadership lost meanwhile
 * (AT_ENOTLEADER), the apply too slow (AT_ETIMEDOUT), closing
 * (AT_ESHUTDOWN). */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include "common/testbug.h"
#include "raft/read.h"

#include "raft/internal.h"

struct meta_read {
    struct at_list link; /* in m->ready, waiting, inflight or a round */
    meta_read_cb cb;
    void *data;
};

/* A follower read: read index from the leader, then the local apply. */
struct meta_rix {
    struct at_list link; /* in m->rix_wait, then in its batch's members,
                            or in m->rix_parked */
    meta_read_cb cb;
    void *data;
    uint64_t deadline; /* uv_now ms: parked until then at most */
};

/* One read-index RPC and the follower reads it serves. */
struct meta_rix_batch {
    struct at_list link;    /* in m->rixs while the hook has not answered */
    struct meta *m;         /* borrowed; NULL once orphaned by meta_close */
    struct at_list members; /* struct meta_rix */
};

/* One leadership confirmation round (see confirm_start): the reads it
 * serves and the answers to its term queries. It is the cb_data of its
 * queries, so it lives until every query has answered. */
struct meta_round {
    struct at_list link;  /* in m->rounds while m is set */
    struct meta *m;       /* borrowed; NULL once orphaned by meta_close */
    struct at_list reads; /* struct meta_read, served when decided */
    uint64_t term, commit;
    unsigned need, acks, left; /* left: queries not answered yet */
    bool decided;
};
#define META_ROUNDS_MAX 1 /* undecided rounds at once */
#define META_RIX_MAX    2 /* read-index RPCs in flight from a follower */

/* meta_wait_applied waiters. */
struct meta_waiter {
    struct at_list link; /* in m->waiters */
    uint64_t index;
    uint64_t deadline; /* uv_now() ms */
    meta_index_cb cb;
    void *data;
};

/* Answer every read of l; l is emptied first, so the callbacks may queue
 * new reads anywhere. */
static void reads_finish(struct at_list *l, int status)
{
    struct at_list todo;
    struct at_list *e;
    at_list_init(&todo);
    at_list_move(l, &todo);
    while ((e = at_list_pop_front(&todo)) != NULL) {
        struct meta_read *r = AT_LIST_ENTRY(e, struct meta_read, link);
        r->cb(r->data, status);
        at_free(r);
    }
}

static bool single_voter(struct meta *m)
{
    return meta__voters(m) == 1;
}

static bool read_fast_ok(struct meta *m)
{
    return raft_state(&m->raft) == RAFT_LEADER &&
           m->barrier_ok_term == m->raft.current_term && single_voter(m) &&
           raft_last_applied(&m->raft) == raft_last_index(&m->raft);
}

/* see meta.h */
bool meta_read_now(struct meta *m)
{
    return !m->closing && !at_test_bug("stale-read") && read_fast_ok(m);
}

static int barrier_status(struct meta *m, int status)
{
    if (status == 0)
        return 0;
    if (m->closing || status == RAFT_SHUTDOWN)
        return AT_ESHUTDOWN;
    if (status == RAFT_NOTLEADER || status == RAFT_LEADERSHIPLOST)
        return AT_ENOTLEADER;
    return AT_ETIMEDOUT;
}

static void barrier_start(struct meta *m);
static void on_idle(uv_idle_t *h);
static uint64_t applied(struct meta *m);
static void rix_send(struct meta *m);

static void on_barrier(struct raft_barrier *req, int status)
{
    struct meta *m = req->data;
    m->barrier_busy = false;
    if (status == 0)
        m->barrier_ok_term = m->barrier_issue_term;
    reads_finish(&m->inflight, barrier_status(m, status));
    if (m->closing)
        return;
    if (m->push_pending) {
        m->push_pending = false;
        barrier_start(m);
    } else if (!at_list_empty(&m->waiting)) {
        uv_idle_start(&m->idle, on_idle);
    }
}

/* ---- leadership confirmation for reads ---- */

static void round_free_maybe(struct meta_round *r)
{
    if (!r->decided || r->left > 0)
        return;
    at_list_remove(&r->link);
    at_free(r);
}

/* The reads of a decided round that waited for the local apply. */
static void on_round_applied(void *data, int status, uint64_t index)
{
    struct at_list *reads = data;
    AT_UNUSED(index);
    reads_finish(reads, status);
    at_free(reads);
}

static void round_decide(struct meta_round *r, int status)
{
    struct meta *m = r->m;
    r->decided = true;
    m->rounds_open--;
    if (status == 0 && (raft_state(&m->raft) != RAFT_LEADER ||
                        m->raft.current_term != r->term))
        status = AT_ENOTLEADER;
    if (status == 0 && !at_list_empty(&r->reads) && applied(m) < r->commit) {
        /* answered by the waiter; the round may be freed before */
        struct at_list *reads = at_malloc(sizeof(*reads));
        at_list_init(reads);
        at_list_move(&r->reads, reads);
        status = meta_wait_applied(m, r->commit, META_WAIT_MS, on_round_applied,
                                   reads);
        if (status != 0) {
            at_list_move(reads, &r->reads);
            at_free(reads);
        }
    }
    reads_finish(&r->reads, status);
    if (!at_list_empty(&m->waiting) && !m->closing)
        uv_idle_start(&m->idle, on_idle);
}

static void round_check(struct meta_round *r)
{
    if (r->decided)
        return;
    if (r->acks >= r->need)
        round_decide(r, 0);
    else if (r->acks + r->left < r->need)
        round_decide(r, AT_ENOTLEADER);
}

static void on_term(void *data, int status, uint64_t term)
{
    struct meta_round *r = data;
    AT_ASSERT(r->left > 0);
    r->left--;
    if (r->m != NULL && !r->decided) {
        if (status == 0 && term == r->term)
            r->acks++;
        round_check(r);
    }
    round_free_maybe(r);
}

/* Reads may skip the barrier: a barrier of this term is committed (so the
 * commit index covers every earlier term) and other voters exist to ask. */
static bool confirm_usable(struct meta *m)
{
    return m->hooks != NULL && m->hooks->term != NULL &&
           raft_state(&m->raft) == RAFT_LEADER &&
           m->barrier_ok_term == m->raft.current_term && !single_voter(m);
}

/* Serve the waiting reads with one round: note the commit index, ask every
 * other voter its term; a majority (this node included) in this term
 * confirms this node was leader after every waiting read arrived. Rounds
 * pipeline: reads arriving meanwhile start the next round at once (up to
 * META_ROUNDS_MAX undecided). */
static void confirm_start(struct meta *m)
{
    bool self_voter = meta__role_of(m, m->id) == RAFT_VOTER;
    struct meta_round *r = at_calloc(1, sizeof(*r));
    r->m = m;
    at_list_init(&r->reads);
    at_list_move(&m->waiting, &r->reads);
    r->term = m->raft.current_term;
    r->commit = m->raft.commit_index;
    r->need = meta__voters(m) / 2 + 1 - (self_voter ? 1 : 0);
    at_list_push_front(&m->rounds, &r->link);
    m->rounds_open++;
    uint64_t timeout = m->raft.election_timeout;
    if (timeout < 500)
        timeout = 500;
    /* left counts the queries sent so far, so an early answer can never
     * see left == 0 while more are to come: answers arrive on later loop
     * turns only (hooks contract) */
    for (unsigned i = 0; i < m->raft.configuration.n; i++) {
        const struct raft_server *sv = &m->raft.configuration.servers[i];
        if (sv->role != RAFT_VOTER || sv->id == m->id)
            continue;
        if (m->hooks->term(m->hooks_data, sv->id, timeout, on_term, r) == 0)
            r->left++;
    }
    round_check(r);
    round_free_maybe(r);
}

/* Start what serves the waiting reads: a confirmation round or a barrier. */
static void reads_start(struct meta *m)
{
    if (at_list_empty(&m->waiting) || m->closing)
        return;
    if (confirm_usable(m)) {
        if (m->rounds_open < META_ROUNDS_MAX)
            confirm_start(m);
    } else if (!m->barrier_busy) {
        barrier_start(m);
    }
}

/* see read.h */
void meta__commit_push(struct meta *m)
{
    if (m->closing || raft_state(&m->raft) != RAFT_LEADER)
        return;
    if (m->barrier_busy)
        m->push_pending = true;
    else
        barrier_start(m);
}

static void barrier_start(struct meta *m)
{
    AT_ASSERT(!m->barrier_busy);
    if (!meta__raft_leading(&m->raft)) { /* on_barrier during a step-down */
        reads_finish(&m->waiting, AT_ENOTLEADER);
        return;
    }
    AT_ASSERT(at_list_empty(&m->inflight));
    at_list_move(&m->waiting, &m->inflight);
    m->barrier.data = m;
    m->barrier_issue_term = m->raft.current_term;
    uint64_t commit = m->raft.commit_index;
    uint64_t prev = raft_last_index(&m->raft);
    int rv = raft_barrier(&m->raft, &m->barrier, on_barrier);
    if (rv != 0) {
        reads_finish(&m->inflight, barrier_status(m, rv));
        return;
    }
    m->barrier_busy = true;
    m->pushed_commit = commit;
    m->barrier_prev = prev; /* raft_barrier appended one entry: prev + 1 */
}

/* The read index: the commit index, less our last barrier when that is the
 * only entry committed since the commit index the barrier carried (so the
 * log was fully committed when it was appended: barrier_prev is that
 * commit index, pushed_commit). The
 * barrier changes no state, so the state at barrier_prev is the state at the
 * commit index; and followers know barrier_prev is committed (the barrier's
 * AppendEntries said so) while the barrier's own commit reaches them only
 * with the next AppendEntries, a heartbeat away. Without this, every read
 * index would exceed what was pushed and append another barrier (a log
 * write and fsync on a majority per batch of reads, for ever). The entry
 * after barrier_prev is ours as long as the term has not changed. */
static uint64_t read_index_now(struct meta *m)
{
    uint64_t c = m->raft.commit_index;
    if (c == m->barrier_prev + 1 && m->barrier_prev == m->pushed_commit &&
        m->barrier_issue_term == m->raft.current_term)
        return m->barrier_prev;
    return c;
}

/* ---- apply waiters ---- */

static uint64_t applied(struct meta *m)
{
    return raft_last_applied(&m->raft);
}

/* see read.h: every waiter whose index is applied or whose deadline
 * passed (all of them with AT_ESHUTDOWN when shutdown) */
void meta__waiters_run(struct meta *m, bool shutdown)
{
    uint64_t now = uv_now(m->loop);
    uint64_t have = applied(m);
    struct at_list done;
    struct at_list *e, *tmp;
    at_list_init(&done);
    AT_LIST_FOREACH_SAFE (e, tmp, &m->waiters) {
        struct meta_waiter *w = AT_LIST_ENTRY(e, struct meta_waiter, link);
        if (shutdown || w->index <= have || now >= w->deadline) {
            at_list_remove(e);
            at_list_push_back(&done, e);
        }
    }
    while ((e = at_list_pop_front(&done)) != NULL) {
        struct meta_waiter *w = AT_LIST_ENTRY(e, struct meta_waiter, link);
        int st = shutdown ? AT_ESHUTDOWN : w->index <= have ? 0 : AT_ETIMEDOUT;
        w->cb(w->data, st, have);
        at_free(w);
    }
}

/* see meta.h */
int meta_wait_applied(struct meta *m,
                      uint64_t index,
                      uint64_t timeout_ms,
                      meta_index_cb cb,
                      void *data)
{
    if (m->closing)
        return AT_ESHUTDOWN;
    struct meta_waiter *w = at_calloc(1, sizeof(*w));
    w->index = index;
    w->deadline = uv_now(m->loop) + timeout_ms;
    w->cb = cb;
    w->data = data;
    at_list_push_front(&m->waiters, &w->link);
    uv_idle_start(&m->idle, on_idle); /* answer soon if already applied */
    return 0;
}

static void on_idle(uv_idle_t *h)
{
    struct meta *m = h->data;
    uv_idle_stop(h);
    reads_finish(&m->ready, 0);
    if (!at_list_empty(&m->waiters) && !m->closing)
        meta__waiters_run(m, false);
    if (!at_list_empty(&m->rix_wait) && !m->closing)
        rix_send(m);
    reads_start(m);
}

/* ---- follower reads ---- */

static void on_rix_applied(void *data, int status, uint64_t index)
{
    struct meta_rix *x = data;
    AT_UNUSED(index);
    meta_read_cb cb = x->cb;
    void *cbdata = x->data;
    at_free(x);
    cb(cbdata, status);
}

/* Park x (its RPC found no leader) if leader_wait_ms and its deadline
 * allow: true. */
static bool rix_park(struct meta *m, struct meta_rix *x, int status)
{
    if (m->closing || m->leader_wait_ms == 0 ||
        (status != AT_ENOTLEADER && status != AT_EUNKNOWN &&
         status != AT_ETIMEDOUT) ||
        uv_now(m->loop) >= x->deadline)
        return false;
    at_list_push_back(&m->rix_parked, &x->link);
    return true;
}

/* Fail every read of l (emptied first: the callbacks may read again),
 * or park it. */
static void rix_fail_members(struct meta *m, struct at_list *l, int status)
{
    struct at_list todo;
    struct at_list *e;
    at_list_init(&todo);
    at_list_move(l, &todo);
    while ((e = at_list_pop_front(&todo)) != NULL) {
        struct meta_rix *x = AT_LIST_ENTRY(e, struct meta_rix, link);
        if (!rix_park(m, x, status))
            on_rix_applied(x, status, 0);
    }
}

static void on_rix_index(void *data, int status, uint64_t index)
{
    struct meta_rix_batch *b = data;
    struct meta *m = b->m;
    struct at_list members;
    struct at_list *e;
    if (m == NULL) { /* meta_close answered already */
        at_free(b);
        return;
    }
    at_list_remove(&b->link);
    m->rix_inflight--;
    at_list_init(&members);
    at_list_move(&b->members, &members);
    at_free(b);
    while ((e = at_list_pop_front(&members)) != NULL) {
        struct meta_rix *x = AT_LIST_ENTRY(e, struct meta_rix, link);
        int st = status;
        if (st == 0)
            st = meta_wait_applied(m, index, META_WAIT_MS, on_rix_applied, x);
        else if (rix_park(m, x, st))
            continue;
        if (st != 0)
            on_rix_applied(x, st, 0);
    }
    if (!at_list_empty(&m->rix_wait) && !m->closing)
        rix_send(m);
}

/* One read-index RPC serves every follower read queued before it was sent;
 * reads arriving meanwhile go in the next one, sent at once while fewer
 * than META_RIX_MAX are in flight (else when one answers). */
static void rix_send(struct meta *m)
{
    uint64_t leader;

    if (at_list_empty(&m->rix_wait) || m->rix_inflight >= META_RIX_MAX)
        return;
    if (m->hooks == NULL || m->hooks->read_index == NULL ||
        !meta__leader_known(m, &leader)) {
        rix_fail_members(m, &m->rix_wait, AT_ENOTLEADER);
        return;
    }
    struct meta_rix_batch *b = at_calloc(1, sizeof(*b));
    b->m = m;
    at_list_init(&b->members);
    at_list_move(&m->rix_wait, &b->members);
    at_list_push_front(&m->rixs, &b->link);
    m->rix_inflight++;
    int rv = m->hooks->read_index(m->hooks_data, leader, on_rix_index, b);
    if (rv != 0) {
        at_list_remove(&b->link);
        m->rix_inflight--;
        rix_fail_members(m, &b->members, rv);
        at_free(b);
    }
}

static int read_via_leader(struct meta *m, meta_read_cb cb, void *data)
{
    uint64_t leader;
    if (m->hooks == NULL || m->hooks->read_index == NULL)
        return AT_ENOTLEADER;
    bool known = meta__leader_known(m, &leader);
    if (!known && m->leader_wait_ms == 0)
        return AT_ENOTLEADER;
    struct meta_rix *x = at_calloc(1, sizeof(*x));
    x->cb = cb;
    x->data = data;
    x->deadline = uv_now(m->loop) + m->leader_wait_ms;
    if (!known) { /* an election: wait for its leader (the tick) */
        at_list_push_back(&m->rix_parked, &x->link);
        return 0;
    }
    at_list_push_back(&m->rix_wait, &x->link);
    /* sent from the idle callback: every read of this loop turn rides on
     * the same RPC, and cb never runs inside this call */
    uv_idle_start(&m->idle, on_idle);
    return 0;
}

/* see meta.h */
int meta_read_barrier(struct meta *m, meta_read_cb cb, void *data)
{
    if (m->closing)
        return AT_ESHUTDOWN;
    bool stale = at_test_bug("stale-read"); /* test builds only */
    if (raft_state(&m->raft) != RAFT_LEADER && !stale)
        return read_via_leader(m, cb, data);
    struct meta_read *r = at_calloc(1, sizeof(*r));
    r->cb = cb;
    r->data = data;
    if (read_fast_ok(m) || (stale && raft_state(&m->raft) != RAFT_LEADER)) {
        at_list_push_back(&m->ready, &r->link);
    } else {
        /* reads arriving while a barrier flies wait for the next one */
        at_list_push_back(&m->waiting, &r->link);
    }
    uv_idle_start(&m->idle, on_idle);
    return 0;
}

struct meta_index_req {
    struct meta *m;
    meta_index_cb cb;
    void *data;
    uint64_t index; /* commit index when the request arrived, or 0 */
};

static void on_index_read(void *data, int status)
{
    struct meta_index_req *q = data;
    uint64_t index = status != 0 ? 0 : q->index != 0 ? q->index : applied(q->m);
    meta_index_cb cb = q->cb;
    void *cbdata = q->data;
    at_free(q);
    cb(cbdata, status, index);
}

/* see meta.h: the read index is the commit index when the request arrived
 * (Raft's ReadIndex), valid once the barrier confirms this node is still
 * leader, provided the leader already committed an entry of its term; else
 * the applied index after the barrier. The barrier's AppendEntries carries
 * that commit index to the followers, so the asking follower can apply it
 * without waiting for a heartbeat. */
int meta_read_index(struct meta *m, meta_index_cb cb, void *data)
{
    return meta_read_index_for(m, 0, 0, cb, data);
}

/* Is one other voter's confirmation all a round would need? */
static bool one_other_voter_needed(struct meta *m)
{
    return meta__role_of(m, m->id) == RAFT_VOTER &&
           meta__voters(m) / 2 + 1 == 2;
}

/* see meta.h */
int meta_read_index_for(struct meta *m,
                        uint64_t from_id,
                        uint64_t from_term,
                        meta_index_cb cb,
                        void *data)
{
    if (m->closing)
        return AT_ESHUTDOWN;
    if (raft_state(&m->raft) != RAFT_LEADER)
        return AT_ENOTLEADER;
    struct meta_index_req *q = at_calloc(1, sizeof(*q));
    q->m = m;
    q->cb = cb;
    q->data = data;
    /* The asker was a voter in this term when it sent the request, after
     * its reads began; with this node that is a majority of three that no
     * other leader can have had since: no round needed (see
     * confirm_start). The commit index is taken now, as in a round. */
    if (m->barrier_ok_term == m->raft.current_term && from_id != 0 &&
        from_id != m->id && from_term == m->raft.current_term &&
        meta__role_of(m, from_id) == RAFT_VOTER && one_other_voter_needed(m)) {
        q->index = read_index_now(m);
        if (q->index > m->pushed_commit)
            meta__commit_push(m);
        struct meta_read *r = at_calloc(1, sizeof(*r));
        r->cb = on_index_read;
        r->data = q;
        at_list_push_back(&m->ready, &r->link); /* on the next loop turn */
        uv_idle_start(&m->idle, on_idle);
        return 0;
    }
    if (m->barrier_ok_term == m->raft.current_term) {
        q->index = read_index_now(m);
        /* followers learn a commit index from the next AppendEntries (a
         * heartbeat away when idle): when this one has not been sent with
         * a barrier yet, send one now so the asking follower need not
         * wait for the heartbeat to reach it */
        if (q->index > m->pushed_commit)
            meta__commit_push(m);
    }
    int rv = meta_read_barrier(m, on_index_read, q);
    if (rv != 0)
        at_free(q);
    return rv;
}

/* see meta.h */
uint64_t meta_term(struct meta *m)
{
    return m->raft.current_term;
}

/* ---- close ---- */

/* see read.h */
void meta__reads_stop(struct meta *m)
{
    struct at_list *e;
    reads_finish(&m->ready, AT_ESHUTDOWN);
    reads_finish(&m->waiting, AT_ESHUTDOWN);
    while ((e = at_list_pop_front(&m->rounds)) != NULL) {
        /* orphaned: late answers only free them */
        struct meta_round *r = AT_LIST_ENTRY(e, struct meta_round, link);
        if (!r->decided) {
            reads_finish(&r->reads, AT_ESHUTDOWN);
            r->decided = true;
        }
        r->m = NULL;
        round_free_maybe(r);
    }
    m->rounds_open = 0;
    /* follower reads: answer now, orphan the hook calls (their late
     * answers are dropped) */
    while ((e = at_list_pop_front(&m->rixs)) != NULL) {
        struct meta_rix_batch *b =
            AT_LIST_ENTRY(e, struct meta_rix_batch, link);
        b->m = NULL;
        rix_fail_members(m, &b->members, AT_ESHUTDOWN);
    }
    rix_fail_members(m, &m->rix_wait, AT_ESHUTDOWN);
    rix_fail_members(m, &m->rix_parked, AT_ESHUTDOWN);
}

/* see read.h */
void meta__rix_parked_run(struct meta *m)
{
    struct at_list todo;
    struct at_list *e;
    uint64_t leader = 0;
    bool here = raft_state(&m->raft) == RAFT_LEADER;
    if (at_list_empty(&m->rix_parked))
        return;
    bool known = here || meta__leader_known(m, &leader);
    at_list_init(&todo);
    at_list_move(&m->rix_parked, &todo);
    while ((e = at_list_pop_front(&todo)) != NULL) {
        struct meta_rix *x = AT_LIST_ENTRY(e, struct meta_rix, link);
        if (m->closing || (!known && uv_now(m->loop) >= x->deadline)) {
            on_rix_applied(x, m->closing ? AT_ESHUTDOWN : AT_ENOTLEADER, 0);
        } else if (!known) {
            at_list_push_back(&m->rix_parked, &x->link);
        } else if (here) { /* this node leads now: a leader read */
            meta_read_cb cb = x->cb;
            void *cbdata = x->data;
            at_free(x);
            int rv = meta_read_barrier(m, cb, cbdata);
            if (rv != 0)
                cb(cbdata, rv);
        } else {
            at_list_push_back(&m->rix_wait, &x->link);
        }
    }
    if (!at_list_empty(&m->rix_wait))
        uv_idle_start(&m->idle, on_idle);
}

/* see read.h */
void meta__reads_closed(struct meta *m)
{
    reads_finish(&m->inflight, AT_ESHUTDOWN);
    reads_finish(&m->waiting, AT_ESHUTDOWN);
    reads_finish(&m->ready, AT_ESHUTDOWN);
    meta__waiters_run(m, true);
}
