/* Autopilot: the leader's management of voters from gossip's view (see
 * autopilot.h and meta.h). Every tick the leader refreshes, for each member
 * of the raft configuration, its liveness (hooks->liveness), whether it is
 * caught up (libraft's per-server match index, within max_lag of the last
 * index) and since when it has been both ("stable since"). Then, with no
 * membership change queued, it takes at most one action:
 *   1. a node that left (META_LIVE_LEFT) is removed (meta_member_remove);
 *   2. a voter dead for dead_after_ms while voters exceed target_voters (its
 *      replacement promoted already) is demoted to standby;
 *   3. a voter dead for dead_after_ms is replaced: a healthy, stable
 *      standby (not standby-flagged), same region first, becomes a voter;
 *   4. a voter asked to hand its vote over (meta_member_handoff: a pod's
 *      preStop) is treated like 2. and 3. at once, alive or not;
 *   5. a standby or spare dead for reap_after_ms (0: never) is removed
 *      (a StatefulSet scaled down; if it comes back, the node layer tells
 *      it that it was removed and it joins again).
 * No action leaves fewer live voters (this node and voters gossip sees
 * ALIVE) than a majority of the resulting configuration, and the leader
 * never acts on itself. Promotions of member.c's leader_tick (voters under
 * target) ask meta__autopilot_may_vote. */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include "raft/autopilot.h"

#include "common/clock.h"
#include "raft/internal.h"
#include "raft/nodes.h"

#define AP_DEAD_AFTER_MS    120000
#define AP_STABILIZATION_MS 10000
#define AP_MAX_LAG          250
#define AP_WARN_EVERY_MS    60000
#define AP_REASON_MAX       160
#define AP_HANDOFFS         8     /* handoffs waiting at once */
#define AP_HANDOFF_MS       30000 /* a handoff gives up after this */
#define AP_LEAVING_MS       60000 /* handed off: not promoted for this long */

/* The leader's view of one configuration member. */
struct ap_node {
    uint64_t id;
    char *name;   /* owned */
    char *region; /* owned, "" if none */
    int role;     /* RAFT_VOTER, ... */
    bool flagged; /* standby-flagged: never votes */
    bool self;
    enum meta_liveness live;
    uint64_t live_since; /* uv_now ms in that liveness */
    bool caught_up;
    bool healthy;          /* alive and caught up */
    uint64_t stable_since; /* uv_now ms healthy since (valid if healthy) */
};

/* A remembered action, with the strings the public view points to. */
struct ap_action {
    uint64_t time_ms;
    const char *kind; /* static */
    char node[META_ADDRESS_MAX + 1];
    char reason[AP_REASON_MAX];
};

/* A voter handing its vote over (meta_member_handoff), answered by
 * meta__autopilot_handoffs once it is no longer a voter. */
struct ap_handoff {
    uint64_t id;
    uint64_t deadline; /* uv_now ms */
    void (*cb)(void *data, int status);
    void *data;
};

struct meta_autopilot {
    bool enabled;
    unsigned dead_after_ms;
    unsigned reap_after_ms; /* 0: dead standbys stay */
    unsigned stabilization_ms;
    unsigned max_lag;
    struct ap_node *nodes; /* owned, n of them, configuration order */
    size_t n;
    struct ap_action actions[META_AUTOPILOT_ACTIONS]; /* oldest first */
    size_t nactions;
    uint64_t warn_after; /* uv_now ms before which no new WARN */
    struct ap_handoff handoffs[AP_HANDOFFS];
    size_t nhandoffs;
    /* nodes whose handoff is done: about to stop (a StatefulSet scaled
     * down stops several at once), never the replacement of another */
    struct {
        uint64_t id;
        uint64_t until; /* uv_now ms */
        bool went;      /* seen not alive since: back alive, it is a
                           restarted node (a rollout), no longer leaving */
    } leaving[AP_HANDOFFS];
    /* meta_autopilot_status's arrays, rebuilt by each call */
    struct meta_autopilot_action pub_actions[META_AUTOPILOT_ACTIONS];
    struct meta_autopilot_node *pub_nodes; /* owned */
};

/* see autopilot.h */
struct meta_autopilot *meta__autopilot_new(const struct meta_config *cfg)
{
    struct meta_autopilot *ap = at_calloc(1, sizeof(*ap));
    ap->enabled = cfg->autopilot;
    ap->dead_after_ms = cfg->autopilot_dead_after_ms
                            ? cfg->autopilot_dead_after_ms
                            : AP_DEAD_AFTER_MS;
    ap->stabilization_ms = cfg->autopilot_stabilization_ms
                               ? cfg->autopilot_stabilization_ms
                               : AP_STABILIZATION_MS;
    ap->max_lag = cfg->autopilot_max_lag ? cfg->autopilot_max_lag : AP_MAX_LAG;
    ap->reap_after_ms = cfg->autopilot_reap_after_ms;
    return ap;
}

static void nodes_release(struct ap_node *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        at_free(v[i].name);
        at_free(v[i].region);
    }
    at_free(v);
}

/* see autopilot.h */
void meta__autopilot_free(struct meta_autopilot *ap)
{
    if (ap == NULL)
        return;
    nodes_release(ap->nodes, ap->n);
    at_free(ap->pub_nodes);
    at_free(ap);
}

/* see autopilot.h */
bool meta__autopilot_on(const struct meta *m)
{
    return m->ap != NULL && m->ap->enabled && m->hooks != NULL &&
           m->hooks->liveness != NULL;
}

static struct ap_node *ap_find(const struct meta_autopilot *ap, uint64_t id)
{
    for (size_t i = 0; i < ap->n; i++) {
        if (ap->nodes[i].id == id)
            return &ap->nodes[i];
    }
    return NULL;
}

/* Server i of the configuration (the leader's progress array follows the
 * configuration's order): within max_lag entries of last? Spares get no
 * entries: never caught up. This node always is. */
static bool caught_up(const struct meta *m, unsigned i, raft_index last)
{
    const struct raft_server *s = &m->raft.configuration.servers[i];
    if (s->id == m->id)
        return true;
    if (s->role == RAFT_SPARE || m->raft.state != RAFT_LEADER ||
        m->raft.leader_state.progress == NULL)
        return false;
    raft_index match = m->raft.leader_state.progress[i].match_index;
    /* 0: it has acknowledged nothing yet (a new node, or a new leader) */
    return match > 0 && match + m->ap->max_lag >= last;
}

/* Fill v, the new view of server i, from the old view (NULL: new). */
static void node_refresh(struct meta *m,
                         unsigned i,
                         const struct ap_node *old,
                         uint64_t now,
                         raft_index last,
                         struct ap_node *v)
{
    const struct raft_server *s = &m->raft.configuration.servers[i];
    const struct meta_noderec *r = meta__node_find(&m->fsm, s->id);
    uint64_t since = 0;

    v->id = s->id;
    v->self = s->id == m->id;
    v->name = at_strdup(r != NULL    ? r->name
                        : v->self    ? m->name
                        : s->address ? s->address
                                     : "");
    v->region = at_strdup(r != NULL ? r->region : v->self ? m->region : "");
    v->role = s->role;
    v->flagged = r != NULL ? r->standby : v->self ? m->standby : false;
    if (v->self)
        v->live = META_LIVE_ALIVE;
    else
        v->live = m->hooks->liveness(m->hooks_data, v->name, &since);
    if (since != 0 && since <= now)
        v->live_since = since;
    else if (old != NULL && old->live == v->live)
        v->live_since = old->live_since;
    else
        v->live_since = now;
    v->caught_up = caught_up(m, i, last);
    v->healthy = v->live == META_LIVE_ALIVE && v->caught_up;
    if (v->healthy)
        v->stable_since =
            old != NULL && old->healthy && !v->self ? old->stable_since : now;
    if (v->self)
        v->stable_since = 0; /* always stable */
}

/* see autopilot.h */
void meta__autopilot_update(struct meta *m, bool leader)
{
    struct meta_autopilot *ap = m->ap;
    if (!meta__autopilot_on(m) || !leader) {
        meta__autopilot_handoffs_end(m, AT_ENOTLEADER);
        nodes_release(ap->nodes, ap->n);
        ap->nodes = NULL;
        ap->n = 0;
        return;
    }
    uint64_t now = uv_now(m->loop);
    raft_index last = raft_last_index(&m->raft);
    unsigned n = m->raft.configuration.n;
    struct ap_node *v = at_calloc(n + 1, sizeof(*v));
    for (unsigned i = 0; i < n; i++)
        node_refresh(m, i, ap_find(ap, m->raft.configuration.servers[i].id),
                     now, last, &v[i]);
    nodes_release(ap->nodes, ap->n);
    ap->nodes = v;
    ap->n = n;
    for (size_t i = 0; i < AP_HANDOFFS; i++) {
        const struct ap_node *l = ap_find(ap, ap->leaving[i].id);
        if (ap->leaving[i].id == 0 || l == NULL)
            continue;
        if (l->live != META_LIVE_ALIVE)
            ap->leaving[i].went = true;
        else if (ap->leaving[i].went)
            ap->leaving[i].id = 0; /* restarted: it stays */
    }
}

/* Is node id handing its vote over, or done with it a moment ago (it is
 * stopping)? Such a node never takes a vote over. */
static bool is_leaving(const struct meta *m, uint64_t id)
{
    const struct meta_autopilot *ap = m->ap;
    uint64_t now = uv_now(m->loop);
    for (size_t i = 0; i < ap->nhandoffs; i++) {
        if (ap->handoffs[i].id == id)
            return true;
    }
    for (size_t i = 0; i < AP_HANDOFFS; i++) {
        if (ap->leaving[i].id == id && now < ap->leaving[i].until)
            return true;
    }
    return false;
}

static bool node_stable(const struct meta *m, const struct ap_node *v)
{
    return v->self || (v->healthy && uv_now(m->loop) - v->stable_since >=
                                         m->ap->stabilization_ms);
}

/* see autopilot.h */
bool meta__autopilot_may_vote(const struct meta *m, uint64_t id)
{
    if (!meta__autopilot_on(m) || id == m->id)
        return true;
    const struct ap_node *v = ap_find(m->ap, id);
    return v != NULL && !v->flagged && node_stable(m, v) && !is_leaving(m, id);
}

static const char *kind_verb(const char *kind)
{
    return strcmp(kind, "promote") == 0  ? "promoting"
           : strcmp(kind, "demote") == 0 ? "demoting"
                                         : "removing";
}

/* see autopilot.h */
void meta__autopilot_note(struct meta *m,
                          const char *kind,
                          const char *node,
                          const char *reason)
{
    struct meta_autopilot *ap = m->ap;
    if (ap->nactions == META_AUTOPILOT_ACTIONS) {
        memmove(&ap->actions[0], &ap->actions[1],
                (META_AUTOPILOT_ACTIONS - 1) * sizeof(ap->actions[0]));
        ap->nactions--;
    }
    struct ap_action *a = &ap->actions[ap->nactions++];
    a->time_ms = at_wall_ms();
    a->kind = kind;
    snprintf(a->node, sizeof(a->node), "%s", node);
    snprintf(a->reason, sizeof(a->reason), "%s", reason);
    LOG_INFO("autopilot: %s '%s' %s", kind_verb(kind), a->node, a->reason);
}

/* see autopilot.h */
void meta__autopilot_duration(uint64_t ms, char *out, size_t size)
{
    if (ms < 10000)
        snprintf(out, size, "%" PRIu64 ".%" PRIu64 "s", ms / 1000,
                 ms % 1000 / 100);
    else
        snprintf(out, size, "%" PRIu64 "s", ms / 1000);
}

/* Voters, and live voters (this node and ALIVE ones). */
static void voter_counts(const struct meta_autopilot *ap,
                         unsigned *voters,
                         unsigned *live)
{
    *voters = *live = 0;
    for (size_t i = 0; i < ap->n; i++) {
        if (ap->nodes[i].role != RAFT_VOTER)
            continue;
        (*voters)++;
        if (ap->nodes[i].self || ap->nodes[i].live == META_LIVE_ALIVE)
            (*live)++;
    }
}

/* Enough live voters for a majority of a configuration of voters? */
static bool quorum_ok(unsigned live, unsigned voters)
{
    return live >= voters / 2 + 1;
}

/* *out: a change of node v. */
static void change_of(const struct ap_node *v,
                      bool remove,
                      bool standby,
                      struct meta__ap_change *out)
{
    out->remove = remove;
    out->standby = standby;
    out->id = v->id;
    snprintf(out->name, sizeof(out->name), "%s", v->name);
}

/* 1. a node that left: removed. */
static bool act_left(struct meta *m,
                     unsigned voters,
                     unsigned live,
                     struct meta__ap_change *out)
{
    struct meta_autopilot *ap = m->ap;
    for (size_t i = 0; i < ap->n; i++) {
        struct ap_node *v = &ap->nodes[i];
        if (v->self || v->live != META_LIVE_LEFT)
            continue;
        if (v->role == RAFT_VOTER && !quorum_ok(live, voters - 1))
            continue;
        change_of(v, true, false, out);
        meta__autopilot_note(m, "remove", v->name, "(left the cluster)");
        return true;
    }
    return false;
}

static uint64_t dead_for(const struct meta *m, const struct ap_node *v)
{
    return v->live == META_LIVE_DEAD ? uv_now(m->loop) - v->live_since : 0;
}

/* The healthy stable standby to replace dead voter d: same region first
 * (when d has one), then any; NULL if none. */
static struct ap_node *replacement(struct meta *m, const struct ap_node *d)
{
    struct meta_autopilot *ap = m->ap;
    for (int pass = d->region[0] != '\0' ? 0 : 1; pass < 2; pass++) {
        for (size_t i = 0; i < ap->n; i++) {
            struct ap_node *v = &ap->nodes[i];
            if (v->role == RAFT_VOTER || v->flagged || !node_stable(m, v) ||
                is_leaving(m, v->id))
                continue;
            if (pass == 0 && strcmp(v->region, d->region) != 0)
                continue;
            return v;
        }
    }
    return NULL;
}

/* 2. and 3.: dead voter d, dead for ms. */
static bool act_dead(struct meta *m,
                     struct ap_node *d,
                     uint64_t ms,
                     unsigned voters,
                     unsigned live,
                     struct meta__ap_change *out)
{
    struct meta_autopilot *ap = m->ap;
    char reason[AP_REASON_MAX], name[META_ADDRESS_MAX + 1], dead[32];
    snprintf(name, sizeof(name), "%s", d->name);
    meta__autopilot_duration(ms, dead, sizeof(dead));
    if (voters > m->target_voters) {
        if (!quorum_ok(live, voters - 1))
            return false;
        snprintf(reason, sizeof(reason),
                 "to standby (dead %s, %u voters > target %u)", dead, voters,
                 m->target_voters);
        change_of(d, false, true, out);
        meta__autopilot_note(m, "demote", name, reason);
        return true;
    }
    struct ap_node *r = replacement(m, d);
    if (r == NULL || !quorum_ok(live + 1, voters + 1)) {
        if (uv_now(m->loop) >= ap->warn_after) {
            ap->warn_after = uv_now(m->loop) + AP_WARN_EVERY_MS;
            LOG_WARN("voter %s dead for %s, no healthy standby to replace it",
                     name, dead);
        }
        return false;
    }
    snprintf(reason, sizeof(reason),
             "to voter to replace '%s' (dead %s, region %s)", name, dead,
             d->region[0] != '\0' ? d->region : "none");
    change_of(r, false, false, out);
    meta__autopilot_note(m, "promote", r->name, reason);
    return true;
}

/* 4. a voter handing its vote over: a replacement promoted first (while
 * voters are not above target), then the voter demoted. */
static bool act_handoff(struct meta *m,
                        unsigned voters,
                        unsigned live,
                        struct meta__ap_change *out)
{
    struct meta_autopilot *ap = m->ap;
    char reason[AP_REASON_MAX];
    for (size_t i = 0; i < ap->nhandoffs; i++) {
        struct ap_node *v = ap_find(ap, ap->handoffs[i].id);
        if (v == NULL || v->self || v->role != RAFT_VOTER)
            continue;
        unsigned vlive = v->live == META_LIVE_ALIVE ? 1 : 0;
        if (voters > m->target_voters) {
            if (!quorum_ok(live - vlive, voters - 1))
                continue;
            change_of(v, false, true, out);
            meta__autopilot_note(m, "demote", v->name,
                                 "to standby (it hands its vote over)");
            return true;
        }
        struct ap_node *r = replacement(m, v);
        if (r == NULL || !quorum_ok(live + 1, voters + 1))
            continue;
        snprintf(reason, sizeof(reason),
                 "to voter to take over from '%s' (handing its vote over)",
                 v->name);
        change_of(r, false, false, out);
        meta__autopilot_note(m, "promote", r->name, reason);
        return true;
    }
    return false;
}

/* 5. a standby or spare dead for reap_after: removed. */
static bool act_reap(struct meta *m, struct meta__ap_change *out)
{
    struct meta_autopilot *ap = m->ap;
    char reason[AP_REASON_MAX], dead[32];
    if (ap->reap_after_ms == 0)
        return false;
    for (size_t i = 0; i < ap->n; i++) {
        struct ap_node *v = &ap->nodes[i];
        uint64_t ms = dead_for(m, v);
        if (v->self || v->role == RAFT_VOTER || ms < ap->reap_after_ms)
            continue;
        meta__autopilot_duration(ms, dead, sizeof(dead));
        snprintf(reason, sizeof(reason), "(a %s dead %s)",
                 v->role == RAFT_STANDBY ? "standby" : "spare", dead);
        change_of(v, true, false, out);
        meta__autopilot_note(m, "remove", v->name, reason);
        return true;
    }
    return false;
}

/* see autopilot.h */
bool meta__autopilot_decide(struct meta *m, struct meta__ap_change *out)
{
    struct meta_autopilot *ap = m->ap;
    unsigned voters, live;
    if (!meta__autopilot_on(m) || raft_state(&m->raft) != RAFT_LEADER)
        return false;
    voter_counts(ap, &voters, &live);
    if (act_left(m, voters, live, out) || act_handoff(m, voters, live, out))
        return true;
    for (size_t i = 0; i < ap->n; i++) {
        struct ap_node *d = &ap->nodes[i];
        uint64_t ms = dead_for(m, d);
        if (d->self || d->role != RAFT_VOTER || d->live != META_LIVE_DEAD ||
            ms < ap->dead_after_ms)
            continue;
        if (act_dead(m, d, ms, voters, live, out))
            return true;
        break;
    }
    return act_reap(m, out);
}

/* Could a standby (now or once stable) take over from voter v? */
static bool may_replace(const struct meta *m, const struct ap_node *v)
{
    const struct meta_autopilot *ap = m->ap;
    for (size_t i = 0; i < ap->n; i++) {
        const struct ap_node *r = &ap->nodes[i];
        if (r != v && r->role != RAFT_VOTER && !r->flagged &&
            r->live == META_LIVE_ALIVE && !is_leaving(m, r->id))
            return true;
    }
    return false;
}

static void handoff_end(struct meta *m, size_t i, int status)
{
    struct meta_autopilot *ap = m->ap;
    struct ap_handoff h = ap->handoffs[i];
    memmove(&ap->handoffs[i], &ap->handoffs[i + 1],
            (ap->nhandoffs - i - 1) * sizeof(ap->handoffs[0]));
    ap->nhandoffs--;
    /* it stops next: remember it (the oldest slot makes room) */
    size_t slot = 0;
    for (size_t k = 1; k < AP_HANDOFFS; k++) {
        if (ap->leaving[k].until < ap->leaving[slot].until)
            slot = k;
    }
    ap->leaving[slot].id = h.id;
    ap->leaving[slot].until = uv_now(m->loop) + AP_LEAVING_MS;
    ap->leaving[slot].went = false;
    if (h.cb != NULL)
        h.cb(h.data, status);
}

/* see autopilot.h */
void meta__autopilot_handoffs(struct meta *m)
{
    struct meta_autopilot *ap = m->ap;
    uint64_t now = uv_now(m->loop);
    unsigned voters, live;
    voter_counts(ap, &voters, &live);
    for (size_t i = 0; i < ap->nhandoffs;) {
        const struct ap_node *v = ap_find(ap, ap->handoffs[i].id);
        if (v == NULL || v->role != RAFT_VOTER)
            handoff_end(m, i, 0);
        else if (voters <= m->target_voters && !may_replace(m, v))
            handoff_end(m, i, AT_EAGAIN);
        else if (now >= ap->handoffs[i].deadline)
            handoff_end(m, i, AT_ETIMEDOUT);
        else
            i++;
    }
}

/* see autopilot.h */
void meta__autopilot_handoffs_end(struct meta *m, int status)
{
    while (m->ap->nhandoffs > 0)
        handoff_end(m, 0, status);
}

/* see autopilot.h */
uint64_t meta__autopilot_transfer_to(const struct meta *m)
{
    const struct meta_autopilot *ap = m->ap;
    if (!meta__autopilot_on(m))
        return 0;
    for (size_t i = 0; i < ap->n; i++) {
        const struct ap_node *v = &ap->nodes[i];
        if (!v->self && v->role == RAFT_VOTER && v->healthy &&
            !is_leaving(m, v->id))
            return v->id;
    }
    return 0;
}

/* see autopilot.h */
int meta__autopilot_handoff(struct meta *m,
                            uint64_t id,
                            void (*cb)(void *data, int status),
                            void *data)
{
    struct meta_autopilot *ap = m->ap;
    if (ap->nhandoffs == AP_HANDOFFS)
        return AT_EBUSY;
    ap->handoffs[ap->nhandoffs++] = (struct ap_handoff){
        .id = id,
        .deadline = uv_now(m->loop) + AP_HANDOFF_MS,
        .cb = cb,
        .data = data,
    };
    return 0;
}

/* meta.h roles: 0 spare, 1 voter, 2 standby */
static int public_role(int raft_role)
{
    return raft_role == RAFT_VOTER ? 1 : raft_role == RAFT_STANDBY ? 2 : 0;
}

/* see meta.h */
void meta_autopilot_status(struct meta *m, struct meta_autopilot_status *out)
{
    struct meta_autopilot *ap = m->ap;
    uint64_t now = uv_now(m->loop), wall = at_wall_ms();
    memset(out, 0, sizeof(*out));
    out->enabled = meta__autopilot_on(m);
    out->configured = ap->enabled;
    out->leader = raft_state(&m->raft) == RAFT_LEADER;
    for (size_t i = 0; i < ap->nactions; i++) {
        struct meta_autopilot_action *p = &ap->pub_actions[i];
        p->time_ms = ap->actions[i].time_ms;
        p->kind = ap->actions[i].kind;
        p->node = ap->actions[i].node;
        p->reason = ap->actions[i].reason;
    }
    out->actions = ap->pub_actions;
    out->nactions = ap->nactions;
    at_free(ap->pub_nodes);
    ap->pub_nodes = at_calloc(ap->n + 1, sizeof(*ap->pub_nodes));
    for (size_t i = 0; i < ap->n; i++) {
        const struct ap_node *v = &ap->nodes[i];
        struct meta_autopilot_node *p = &ap->pub_nodes[i];
        p->name = v->name;
        p->liveness = v->live;
        p->role = public_role(v->role);
        p->caught_up = v->caught_up;
        p->healthy = v->healthy;
        if (v->healthy && !v->self)
            p->stable_since_ms = wall - (now - v->stable_since);
    }
    out->nodes = ap->pub_nodes;
    out->nnodes = ap->n;
}
