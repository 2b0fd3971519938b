/* Membership: join, remove and leadership transfer, the leader's
 * housekeeping tick (its own record, promotions), and the listings of
 * members and blob holders. */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include "raft/member.h"

#include "raft/autopilot.h"
#include "raft/disk.h"
#include "raft/internal.h"
#include "raft/nodes.h"
#include "raft/propose.h"
#include "raft/read.h"

/* A membership change, one at a time through libraft: the first change of
 * m->changes runs, the others wait (QUEUED). A join records the node
 * through the log (RECORD), adds it to the raft configuration as a spare
 * (ADD), then assigns its final role (ASSIGN); a remove forgets the node
 * (FORGET), then drops it from the configuration (DROP); a promotion only
 * assigns. Each step starts one asynchronous operation whose callback
 * calls change_tick, or passes at once when there is nothing to do (the
 * record is there already, ...). Before each step the node must still be
 * the leader and not closing. */
enum meta_change_kind { CHANGE_JOIN, CHANGE_REMOVE, CHANGE_PROMOTE };

enum meta_change_state {
    CHANGE_QUEUED, /* behind the change in flight */
    CHANGE_RECORD, /* join: its NodeUpsert proposed */
    CHANGE_ADD,    /* join: raft_add as a spare */
    CHANGE_ASSIGN, /* join, promote: raft_assign of its role */
    CHANGE_FORGET, /* remove: its NodeRemove proposed */
    CHANGE_DROP,   /* remove: raft_remove */
    CHANGE_DONE,   /* answered */
};

static const char *const change_state_names[] = { "queued", "record", "add",
                                                  "assign", "forget", "drop",
                                                  "done" };

/* Allowed transitions: bit `to` set in allowed[from]. */
static const unsigned change_allowed[] = {
    [CHANGE_QUEUED] = 1u << CHANGE_RECORD | 1u << CHANGE_ASSIGN |
                      1u << CHANGE_FORGET | 1u << CHANGE_DONE,
    [CHANGE_RECORD] = 1u << CHANGE_ADD | 1u << CHANGE_DONE,
    [CHANGE_ADD] = 1u << CHANGE_ASSIGN | 1u << CHANGE_DONE,
    [CHANGE_ASSIGN] = 1u << CHANGE_DONE,
    [CHANGE_FORGET] = 1u << CHANGE_DROP | 1u << CHANGE_DONE,
    [CHANGE_DROP] = 1u << CHANGE_DONE,
    [CHANGE_DONE] = 0,
};

#define CHANGE_PASS 1 /* a step's start: nothing to do */

struct meta_change {
    struct at_list link; /* in m->changes; the first one is in flight */
    struct meta *m;      /* borrowed */
    enum meta_change_kind kind;
    enum meta_change_state state;
    uint64_t id;
    char *name;         /* owned */
    char *peer_address; /* owned */
    char *api_address;  /* owned */
    char *region;       /* owned */
    bool standby;
    void (*cb)(void *data, int status);
    void *data;
    struct raft_change req;
};

/* A leadership transfer. libraft sends its TimeoutNow with the raft_io_send
 * inside the request, and that send can still be queued in the io (the
 * target unreachable) when the transfer ends: the struct is only freed with
 * the meta, after raft_close has closed the io. */
struct meta_xfer {
    struct raft_transfer req;
    struct at_list link; /* in m->xfers_done once ended */
    struct meta *m;      /* borrowed */
    void (*cb)(void *data, int status);
    void *data;
};

static int change_status(struct meta *m, int status)
{
    switch (status) {
    case 0:
    case RAFT_BADROLE: /* already has that role */
        return 0;
    case RAFT_NOTLEADER:
        return AT_ENOTLEADER;
    case RAFT_LEADERSHIPLOST:
        return AT_EUNKNOWN;
    case RAFT_CANTCHANGE:
        return AT_EBUSY;
    case RAFT_NOCONNECTION:
        return AT_ETIMEDOUT; /* catch-up too slow */
    case RAFT_BADID:
        return AT_ENOTFOUND;
    case RAFT_SHUTDOWN:
        return AT_ESHUTDOWN;
    default:
        return m->closing ? AT_ESHUTDOWN : AT_EIO;
    }
}

static void change_free(struct meta_change *c)
{
    at_free(c->name);
    at_free(c->peer_address);
    at_free(c->api_address);
    at_free(c->region);
    at_free(c);
}

static void changes_run(struct meta *m);

static void change_move(struct meta_change *c, enum meta_change_state to)
{
    AT_ASSERT(change_allowed[c->state] & (1u << to));
    LOG_DEBUG("membership change of '%s': %s -> %s", c->name,
              change_state_names[c->state], change_state_names[to]);
    c->state = to;
}

/* The head change finished: pop it, answer, start the next one. */
static void change_done(struct meta_change *c, int status)
{
    struct meta *m = c->m;
    AT_ASSERT(at_list_first(&m->changes) == &c->link);
    at_list_remove(&c->link);
    m->change_busy = false;
    if (status != 0)
        LOG_INFO("membership change of '%s' (%" PRIu64 "): %s", c->name, c->id,
                 at_strerror(status));
    if (c->kind == CHANGE_PROMOTE && status != 0)
        m->promote_after = uv_now(m->loop) + 5000;
    if (c->cb != NULL)
        c->cb(c->data, status);
    change_free(c);
    if (!m->closing)
        changes_run(m);
}

static void change_tick(struct meta_change *c, int status);

static void on_change_cmd(void *data, int status, int result, uint64_t index)
{
    struct meta_change *c = data;
    AT_UNUSED(index);
    if (status == 0 && result == META_NODE_CONFLICT)
        status = AT_EEXIST;
    change_tick(c, status);
}

static void on_change_raft(struct raft_change *req, int status)
{
    struct meta_change *c = req->data;
    change_tick(c, change_status(c->m, status));
}

/* RECORD: the node through the log, unless recorded as it is already. */
static int change_record(struct meta_change *c)
{
    struct meta *m = c->m;
    struct meta_cmd cmd = { .kind = META_CMD_NODE_UPSERT };
    struct meta_node *n = &cmd.node_upsert.node;
    n->id = c->id;
    n->name = c->name;
    n->peer_address = c->peer_address;
    n->api_address = c->api_address;
    n->region = c->region;
    cmd.node_upsert.standby = c->standby;
    const struct meta_noderec *old = meta__node_find(&m->fsm, c->id);
    if (old != NULL && meta__node_equal(old, &cmd.node_upsert))
        return CHANGE_PASS;
    return meta__propose_here(m, &cmd, true, on_change_cmd, c);
}

/* ADD: the node as a spare, unless in the configuration already. */
static int change_add(struct meta_change *c)
{
    struct meta *m = c->m;
    if (meta__role_of(m, c->id) >= 0)
        return CHANGE_PASS;
    if (!meta__raft_leading(&m->raft)) /* stepping down: guard.h */
        return AT_ENOTLEADER;
    return change_status(
        m, raft_add(&m->raft, &c->req, c->id, c->name, on_change_raft));
}

/* ASSIGN: a joining node becomes a voter while voters are missing (or
 * stays one), else a standby (or when asked); a promotion gets the role it
 * was queued for, if the node is still in the configuration. */
static int change_assign(struct meta_change *c)
{
    struct meta *m = c->m;
    int role = meta__role_of(m, c->id);
    int want;
    if (c->kind == CHANGE_PROMOTE) {
        want = c->standby ? RAFT_STANDBY : RAFT_VOTER;
        if (role < 0)
            return CHANGE_PASS;
    } else if (c->standby) {
        want = RAFT_STANDBY;
    } else if (role == RAFT_VOTER || (meta__voters(m) < m->target_voters &&
                                      meta__autopilot_may_vote(m, c->id))) {
        want = RAFT_VOTER;
    } else {
        want = RAFT_STANDBY;
    }
    if (role == want)
        return CHANGE_PASS;
    if (!meta__raft_leading(&m->raft)) /* stepping down: guard.h */
        return AT_ENOTLEADER;
    return change_status(
        m, raft_assign(&m->raft, &c->req, c->id, want, on_change_raft));
}

/* FORGET: the node's record through the log, if there is one. */
static int change_forget(struct meta_change *c)
{
    struct meta *m = c->m;
    if (meta__node_find(&m->fsm, c->id) == NULL)
        return CHANGE_PASS;
    struct meta_cmd cmd = { .kind = META_CMD_NODE_REMOVE };
    cmd.node_remove.id = c->id;
    return meta__propose_here(m, &cmd, true, on_change_cmd, c);
}

/* DROP: the node from the configuration, if it is there. */
static int change_drop(struct meta_change *c)
{
    struct meta *m = c->m;
    if (meta__role_of(m, c->id) < 0)
        return CHANGE_PASS;
    if (!meta__raft_leading(&m->raft)) /* stepping down: guard.h */
        return AT_ENOTLEADER;
    return change_status(m,
                         raft_remove(&m->raft, &c->req, c->id, on_change_raft));
}

/* The step after c's state, by kind. */
static enum meta_change_state change_next(const struct meta_change *c)
{
    switch (c->state) {
    case CHANGE_QUEUED:
        return c->kind == CHANGE_JOIN     ? CHANGE_RECORD
               : c->kind == CHANGE_REMOVE ? CHANGE_FORGET
                                          : CHANGE_ASSIGN;
    case CHANGE_RECORD:
        return CHANGE_ADD;
    case CHANGE_ADD:
        return CHANGE_ASSIGN;
    case CHANGE_FORGET:
        return CHANGE_DROP;
    default:
        return CHANGE_DONE;
    }
}

/* Move the head change on: status is the outcome of what its state started
 * (0 for a change leaving the queue; AT_ESHUTDOWN on close). Steps that
 * have nothing to do pass at once; the first that starts something waits
 * for its callback; the change is answered once done or failed. The only
 * place where a change's state changes. */
static void change_tick(struct meta_change *c, int status)
{
    struct meta *m = c->m;
    while (status == 0) {
        if (m->closing)
            status = AT_ESHUTDOWN;
        else if (raft_state(&m->raft) != RAFT_LEADER)
            status = AT_ENOTLEADER;
        if (status != 0)
            break;
        change_move(c, change_next(c));
        switch (c->state) {
        case CHANGE_RECORD:
            status = change_record(c);
            break;
        case CHANGE_ADD:
            status = change_add(c);
            break;
        case CHANGE_ASSIGN:
            status = change_assign(c);
            break;
        case CHANGE_FORGET:
            status = change_forget(c);
            break;
        case CHANGE_DROP:
            status = change_drop(c);
            break;
        case CHANGE_QUEUED:
        case CHANGE_DONE:
            change_done(c, 0);
            return;
        }
        if (status == 0)
            return; /* started: its callback ticks again */
        if (status == CHANGE_PASS)
            status = 0;
    }
    change_move(c, CHANGE_DONE);
    change_done(c, status);
}

static void changes_run(struct meta *m)
{
    if (m->change_busy || at_list_empty(&m->changes) || m->closing)
        return;
    m->change_busy = true;
    change_tick(
        AT_LIST_ENTRY(at_list_first(&m->changes), struct meta_change, link), 0);
}

static struct meta_change *change_new(struct meta *m,
                                      enum meta_change_kind kind,
                                      uint64_t id,
                                      const char *name)
{
    struct meta_change *c = at_calloc(1, sizeof(*c));
    c->m = m;
    c->kind = kind;
    c->state = CHANGE_QUEUED;
    c->id = id;
    c->req.data = c;
    c->name = at_strdup(name != NULL ? name : "");
    c->peer_address = at_strdup("");
    c->api_address = at_strdup("");
    c->region = at_strdup("");
    return c;
}

static void change_enqueue(struct meta *m, struct meta_change *c)
{
    at_list_push_back(&m->changes, &c->link);
    changes_run(m);
}

/* Leader: queue a change of node id's role (named name, for the logs):
 * standby, else voter (after libraft's catch-up rounds). Once it is the
 * head of the queue, a node no longer in the configuration is left alone;
 * a failure holds the automatic promotions back for 5 s. */
static void change_role(struct meta *m,
                        uint64_t id,
                        const char *name,
                        bool standby)
{
    struct meta_change *c = change_new(m, CHANGE_PROMOTE, id, name);
    c->standby = standby;
    change_enqueue(m, c);
}

/* see member.h */
bool meta__field_ok(const char *s, bool required)
{
    if (s == NULL)
        return !required;
    size_t n = strlen(s);
    if (n > META_ADDRESS_MAX || (required && n == 0))
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
            return false;
    }
    return true;
}

/* see meta.h: n->id 0 means derived from the name */
int meta_member_join(struct meta *m,
                     const struct meta_node *n,
                     bool standby,
                     void (*cb)(void *data, int status),
                     void *data)
{
    if (m->closing)
        return AT_ESHUTDOWN;
    if (!meta__field_ok(n->name, true) ||
        !meta__field_ok(n->peer_address, true) ||
        !meta__field_ok(n->api_address, false) ||
        !meta__field_ok(n->region, false))
        return AT_EINVAL;
    if (raft_state(&m->raft) != RAFT_LEADER)
        return AT_ENOTLEADER;
    uint64_t id = n->id != 0 ? n->id : meta_node_id_from_name(n->name);
    const struct meta_noderec *byname = meta__node_by_name(&m->fsm, n->name);
    if (byname != NULL && (byname->id != id ||
                           strcmp(byname->peer_address, n->peer_address) != 0))
        return AT_EEXIST;
    const struct meta_noderec *byid = meta__node_find(&m->fsm, id);
    if (byid != NULL && strcmp(byid->name, n->name) != 0)
        return AT_EEXIST;
    struct meta_change *c = change_new(m, CHANGE_JOIN, id, n->name);
    at_free(c->peer_address);
    c->peer_address = at_strdup(n->peer_address);
    if (n->api_address != NULL) {
        at_free(c->api_address);
        c->api_address = at_strdup(n->api_address);
    }
    if (n->region != NULL) {
        at_free(c->region);
        c->region = at_strdup(n->region);
    }
    c->standby = standby;
    c->cb = cb;
    c->data = data;
    change_enqueue(m, c);
    return 0;
}

/* Find a node id by name: the node table, then the raft configuration. */
static uint64_t id_by_name(struct meta *m, const char *name)
{
    const struct meta_noderec *r = meta__node_by_name(&m->fsm, name);
    if (r != NULL)
        return r->id;
    for (unsigned i = 0; i < m->raft.configuration.n; i++) {
        const struct raft_server *s = &m->raft.configuration.servers[i];
        if (s->address != NULL && strcmp(s->address, name) == 0)
            return s->id;
    }
    return 0;
}

/* A membership operation on node name, on the leader: its id in *id, or
 * AT_ESHUTDOWN, AT_EINVAL (no name), AT_ENOTLEADER, AT_ENOTFOUND. */
static int member_op_id(struct meta *m, const char *name, uint64_t *id)
{
    if (m->closing)
        return AT_ESHUTDOWN;
    if (name == NULL)
        return AT_EINVAL;
    if (raft_state(&m->raft) != RAFT_LEADER)
        return AT_ENOTLEADER;
    *id = id_by_name(m, name);
    return *id != 0 ? 0 : AT_ENOTFOUND;
}

/* see meta.h */
int meta_member_remove(struct meta *m,
                       const char *name,
                       void (*cb)(void *data, int status),
                       void *data)
{
    uint64_t id = 0;
    int rv = member_op_id(m, name, &id);
    if (rv != 0)
        return rv;
    struct meta_change *c = change_new(m, CHANGE_REMOVE, id, name);
    c->cb = cb;
    c->data = data;
    change_enqueue(m, c);
    return 0;
}

/* see meta.h */
int meta_member_handoff(struct meta *m,
                        const char *name,
                        void (*cb)(void *data, int status),
                        void *data)
{
    uint64_t id = 0;
    int rv = member_op_id(m, name, &id);
    if (rv != 0)
        return rv;
    if (!meta__autopilot_on(m))
        return AT_EUNSUPPORTED;
    if (id == m->id)
        return AT_EINVAL;
    return meta__autopilot_handoff(m, id, cb, data);
}

static void on_transfer(struct raft_transfer *req)
{
    struct meta_xfer *x = req->data;
    struct meta *m = x->m;
    raft_id leader = 0;
    const char *addr = NULL;
    raft_leader(&m->raft, &leader, &addr);
    int st = leader != m->id ? 0 : AT_ETIMEDOUT;
    /* not freed here: its TimeoutNow may still wait in the io's queue */
    at_list_push_front(&m->xfers_done, &x->link);
    if (x->cb != NULL)
        x->cb(x->data, st);
}

/* see meta.h */
int meta_transfer(struct meta *m,
                  const char *name,
                  void (*cb)(void *data, int status),
                  void *data)
{
    if (m->closing)
        return AT_ESHUTDOWN;
    if (raft_state(&m->raft) != RAFT_LEADER)
        return AT_ENOTLEADER;
    uint64_t id = 0;
    if (name != NULL) {
        id = id_by_name(m, name);
        if (id == 0)
            return AT_ENOTFOUND;
        if (meta__role_of(m, id) != RAFT_VOTER || id == m->id)
            return AT_EINVAL;
    } else {
        id = meta__autopilot_transfer_to(m); /* not to a pod stopping too */
    }
    struct meta_xfer *x = at_calloc(1, sizeof(*x));
    x->m = m;
    x->cb = cb;
    x->data = data;
    x->req.data = x;
    int rv = meta__raft_leading(&m->raft)
                 ? raft_transfer(&m->raft, &x->req, id, on_transfer)
                 : RAFT_NOTLEADER;
    if (rv != 0) {
        at_free(x);
        return rv == RAFT_NOTLEADER ? AT_ENOTLEADER
               : rv == RAFT_BADID   ? AT_EINVAL
                                    : AT_EBUSY;
    }
    return 0;
}

static void on_self_upserted(void *data, int status, int result, uint64_t index)
{
    struct meta *m = data;
    AT_UNUSED(index);
    m->self_busy = false;
    if (status != 0 || result != META_OK) {
        if (!m->closing)
            m->self_retry_after = uv_now(m->loop) + 10000;
        LOG_WARN("record of this node: %s / %s", at_strerror(status),
                 meta_result_str(result));
    }
}

static void on_tick_barrier(void *data, int status)
{
    AT_UNUSED(data);
    AT_UNUSED(status);
}

/* Leader housekeeping: prove leadership after an election, keep our own
 * record up to date, promote standbys/spares while voters are missing. */
static void leader_tick(struct meta *m)
{
    if (m->barrier_ok_term != m->raft.current_term) {
        if (!m->barrier_busy && at_list_empty(&m->waiting))
            meta_read_barrier(m, on_tick_barrier, NULL);
        return;
    }
    if (!m->self_busy && uv_now(m->loop) >= m->self_retry_after) {
        struct meta_cmd cmd = { .kind = META_CMD_NODE_UPSERT };
        struct meta_node *n = &cmd.node_upsert.node;
        n->id = m->id;
        n->name = m->name;
        n->peer_address = m->peer_address;
        n->api_address = m->api_address;
        n->region = m->region;
        cmd.node_upsert.standby = m->standby;
        const struct meta_noderec *r = meta__node_find(&m->fsm, m->id);
        if ((r == NULL || !meta__node_equal(r, &cmd.node_upsert)) &&
            meta__propose_here(m, &cmd, false, on_self_upserted, m) == 0)
            m->self_busy = true;
    }
    meta__autopilot_update(m, true);
    meta__autopilot_handoffs(m);
    if (m->change_busy || !at_list_empty(&m->changes) ||
        uv_now(m->loop) < m->promote_after)
        return;
    struct meta__ap_change ap;
    if (meta__autopilot_decide(m, &ap)) {
        if (!ap.remove)
            change_role(m, ap.id, ap.name, ap.standby);
        else if (meta_member_remove(m, ap.name, NULL, NULL) != 0)
            m->promote_after = uv_now(m->loop) + 5000;
        return;
    }
    bool want_voter = meta__voters(m) < m->target_voters;
    for (unsigned i = 0; i < m->raft.configuration.n; i++) {
        const struct raft_server *s = &m->raft.configuration.servers[i];
        const struct meta_noderec *r = meta__node_find(&m->fsm, s->id);
        if (s->role == RAFT_VOTER || r == NULL)
            continue;
        /* with autopilot, only once alive and caught up long enough */
        bool voter =
            !r->standby && want_voter && meta__autopilot_may_vote(m, s->id);
        /* spares left by an interrupted join become standbys at least */
        if (!voter && s->role != RAFT_SPARE)
            continue;
        LOG_INFO("assigning '%s' the %s role (%u voters, target %u)", r->name,
                 voter ? "voter" : "standby", meta__voters(m),
                 m->target_voters);
        if (voter && meta__autopilot_on(m)) {
            char why[96];
            snprintf(why, sizeof(why), "to voter (%u voters < target %u)",
                     meta__voters(m), m->target_voters);
            meta__autopilot_note(m, "promote", r->name, why);
        }
        change_role(m, s->id, r->name, !voter);
        return;
    }
}

/* see member.h */
void meta__on_tick(uv_timer_t *t)
{
    struct meta *m = t->data;
    raft_id leader = 0;
    const char *leader_addr = NULL;
    if (m->closing)
        return;
    raft_leader(&m->raft, &leader, &leader_addr);
    if (leader != 0 && leader != m->seen_leader) {
        if (m->seen_leader != 0)
            m->leader_changes++;
        m->seen_leader = leader;
    }
    if (!at_list_empty(&m->waiters))
        meta__waiters_run(m, false);
    meta__disk_refresh(m);
    meta__parked_run(m);
    meta__rix_parked_run(m);
    if (meta__role_of(m, m->id) >= 0)
        m->was_member = true;
    if (meta__node_find(&m->fsm, m->id) != NULL)
        m->was_in_table = true;
    if (meta_removed(m) && !m->removed_logged) {
        m->removed_logged = true;
        LOG_ERROR(
            "this node was removed from the cluster: it serves no "
            "cluster reads or writes any more; stop it, and to bring "
            "it back wipe its data dir and start it with --join");
    }
    if (raft_state(&m->raft) == RAFT_LEADER) {
        leader_tick(m);
        return;
    }
    meta__autopilot_update(m, false);
    if (!at_list_empty(&m->changes) && !m->change_busy) {
        changes_run(m); /* fails them with AT_ENOTLEADER */
    }
}

static const char *server_address(struct meta *m, uint64_t id)
{
    for (unsigned i = 0; i < m->raft.configuration.n; i++) {
        if (m->raft.configuration.servers[i].id == id)
            return m->raft.configuration.servers[i].address;
    }
    return NULL;
}

/* meta.h roles: 0 spare, 1 voter, 2 standby, -1 not in config */
static int public_role(int raft_role)
{
    switch (raft_role) {
    case RAFT_VOTER:
        return 1;
    case RAFT_STANDBY:
        return 2;
    case RAFT_SPARE:
        return 0;
    default:
        return -1;
    }
}

static void fill_node(struct meta *m,
                      uint64_t id,
                      uint64_t leader,
                      struct meta_node *out)
{
    const struct meta_noderec *r = meta__node_find(&m->fsm, id);
    memset(out, 0, sizeof(*out));
    out->id = id;
    if (r != NULL) {
        out->name = r->name;
        out->peer_address = r->peer_address;
        out->api_address = r->api_address;
        out->region = r->region;
    } else {
        const char *a = server_address(m, id);
        out->name = a != NULL ? a : "";
        out->peer_address = "";
        out->api_address = "";
        out->region = "";
        if (id == m->id) {
            out->name = m->name;
            out->peer_address = m->peer_address;
            out->api_address = m->api_address;
            out->region = m->region;
        }
    }
    out->role = public_role(meta__role_of(m, id));
    out->leader = leader != 0 && leader == id;
}

static int cmp_node(const void *a, const void *b)
{
    const struct meta_node *x = a, *y = b;
    return strcmp(x->name, y->name);
}

/* see meta.h: sorted by name */
void meta_members(struct meta *m, meta_node_cb each, void *data)
{
    raft_id leader = 0;
    const char *addr = NULL;
    raft_leader(&m->raft, &leader, &addr);
    size_t cap = m->fsm.nodes.len + m->raft.configuration.n + 1, n = 0;
    struct meta_node *v = at_calloc(cap, sizeof(*v));
    const char *k;
    void *val;
    for (size_t i = 0; at_map_next(&m->fsm.nodes, &i, &k, &val);)
        fill_node(m, ((struct meta_noderec *)val)->id, leader, &v[n++]);
    for (unsigned i = 0; i < m->raft.configuration.n; i++) {
        uint64_t id = m->raft.configuration.servers[i].id;
        if (meta__node_find(&m->fsm, id) == NULL)
            fill_node(m, id, leader, &v[n++]);
    }
    qsort(v, n, sizeof(*v), cmp_node);
    for (size_t i = 0; i < n; i++)
        each(data, &v[i]);
    at_free(v);
}

/* see meta.h */
void meta_blob_holders(struct meta *m,
                       const struct at_digest *d,
                       meta_node_cb each,
                       void *data)
{
    const struct meta_blob *b = meta__blob_get(&m->fsm, d, 0, false);
    raft_id leader = 0;
    const char *addr = NULL;
    struct meta_node *v;
    size_t n = 0;

    if (b == NULL || b->nstores == 0)
        return;
    raft_leader(&m->raft, &leader, &addr);
    v = at_calloc(b->nstores, sizeof(*v));
    for (size_t i = 0; i < b->nstores; i++) {
        const struct meta_noderec *r =
            meta__node_by_name(&m->fsm, b->stores[i]);
        if (r == NULL || strcmp(r->name, m->name) == 0 ||
            strcmp(b->stores[i], m->store_id) == 0)
            continue;
        fill_node(m, r->id, leader, &v[n++]);
    }
    qsort(v, n, sizeof(*v), cmp_node);
    /* same region first, keeping the name order inside each group */
    for (size_t pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            bool local = m->region[0] != '\0' && v[i].region != NULL &&
                         strcmp(v[i].region, m->region) == 0;
            if (local == (pass == 0))
                each(data, &v[i]);
        }
    }
    at_free(v);
}

/* see meta.h */
bool meta_leader(struct meta *m, struct meta_node *out)
{
    raft_id leader = 0;
    const char *addr = NULL;
    raft_leader(&m->raft, &leader, &addr);
    if (leader == 0)
        return false;
    fill_node(m, leader, leader, out);
    if (out->name[0] == '\0' && addr != NULL)
        out->name = addr;
    return true;
}

/* see meta.h */
bool meta_removed(struct meta *m)
{
    /* a removed node may never get the configuration without it (the
     * leader stops sending it entries), but the NodeRemove that comes
     * first reaches it while it is still a member. Closing: raft frees
     * its configuration (a peer request may still ask meanwhile). */
    if (m->raft_closing)
        return false;
    return (m->was_member && m->raft.configuration.n > 0 &&
            meta__role_of(m, m->id) < 0) ||
           (m->was_in_table && meta__node_find(&m->fsm, m->id) == NULL);
}

/* see meta.h */
bool meta_is_member(struct meta *m, uint64_t id)
{
    return meta__role_of(m, id) >= 0 || meta__node_find(&m->fsm, id) != NULL;
}

/* see member.h */
void meta__changes_stop(struct meta *m)
{
    struct at_list *e;
    while ((e = at_list_first(&m->changes)) != NULL) {
        m->change_busy = true;
        change_tick(AT_LIST_ENTRY(e, struct meta_change, link), AT_ESHUTDOWN);
    }
}

/* see member.h */
void meta__xfers_free(struct meta *m)
{
    struct at_list *e;
    while ((e = at_list_pop_front(&m->xfers_done)) != NULL)
        at_free(AT_LIST_ENTRY(e, struct meta_xfer, link));
}
