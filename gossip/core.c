/* The SWIM probe cycle and the member's own life: creation, the tick
 * that drives probes, indirect probes, suspicion timers and gossip, join
 * with retries, graceful leave, metadata, and Lifeguard's local health.
 *
 * One probe per period (period and timeout stretched by the health
 * score): ping the next member in the shuffled order; no ack within the
 * probe timeout: ask k random members to ping it for us (they nack if it
 * stays silent, which tells us the network, not we, is slow); no ack by
 * the period's end: suspect it. Suspicion ends in death unless the
 * member refutes it with a higher incarnation first. */
#include "gossip/internal.h"

/* see internal.h */
uint64_t gossip__now(const struct gossip *g)
{
    return g->cfg.now_ms(g->cfg.data);
}

/* see internal.h */
void gossip__msg_init(struct gossip *g,
                      struct gossip_msg *m,
                      enum gossip_msg_type type)
{
    memset(m, 0, sizeof(*m));
    m->type = type;
    memcpy(m->from, g->self->info.name, sizeof(m->from));
}

/* see internal.h */
void gossip__send(struct gossip *g, const char *addr, struct gossip_msg *m)
{
    gossip__bcast_fill(g, m);
    /* Anti-entropy (tarantool's design): free slots carry random live
     * members' current records, so a member that missed every copy of a
     * refutation still learns it long before its suspicion expires. */
    struct gossip_member *some[GOSSIP_MSG_UPDATES_MAX];
    size_t n = gossip__random_members(g, NULL, some,
                                      GOSSIP_MSG_UPDATES_MAX - m->n_updates);
    for (size_t i = 0; i < n; i++)
        if (some[i]->info.state == GOSSIP_ALIVE)
            gossip__update_alive(some[i], &m->updates[m->n_updates++]);
    g->cfg.send(g->cfg.data, addr, m);
}

/* see internal.h */
void gossip__health_add(struct gossip *g, int delta)
{
    int h = (int)g->health + delta;
    int max = (int)g->cfg.awareness_max - 1;
    g->health = (unsigned)(h < 0 ? 0 : h > max ? max : h);
}

/* see internal.h */
void gossip__refute(struct gossip *g, uint64_t accused_incarnation)
{
    struct gossip_member *s = g->self;
    uint64_t inc = s->info.incarnation;
    s->info.incarnation =
        (accused_incarnation > inc ? accused_incarnation : inc) + 1;
    struct gossip_update u;
    gossip__update_alive(s, &u);
    gossip__bcast_queue(g, &u);
    /* Being accused hints that we are the slow one (Lifeguard). */
    gossip__health_add(g, 1);
}

static uint64_t scaled(const struct gossip *g, unsigned ms)
{
    return (uint64_t)ms * (g->health + 1);
}

/* see swim.h */
struct gossip *gossip_new(const struct gossip_config *c, char *errmsg)
{
    if (c->now_ms == NULL || c->send == NULL || c->name == NULL ||
        c->addr == NULL) {
        at_errmsg_printf(errmsg,
                         "gossip: now_ms, send, name and addr are required");
        return NULL;
    }
    if (c->name[0] == '\0' || strlen(c->name) >= GOSSIP_NAME_MAX ||
        strlen(c->addr) >= GOSSIP_ADDR_MAX) {
        at_errmsg_printf(errmsg,
                         "gossip: name '%s' or address '%s' empty or too long",
                         c->name, c->addr);
        return NULL;
    }
    struct gossip *g = at_calloc(1, sizeof(*g));
    g->cfg = *c;
    gossip__config_defaults(&g->cfg);
    g->cfg.name = NULL;
    g->cfg.addr = NULL;
    g->rng = c->seed != 0 ? c->seed : 0x9e3779b97f4a7c15ULL;
    at_map_init(&g->by_name);
    g->self = gossip__member_add(g, c->name, c->addr);
    g->self->info.incarnation = 1;
    g->self->info.meta = c->meta;
    uint64_t now = gossip__now(g);
    /* A random phase, so members started together do not probe in
     * lockstep. */
    g->next_probe_at = now + gossip__rand(g) % g->cfg.probe_interval_ms;
    g->next_gossip_at = now + g->cfg.gossip_interval_ms;
    return g;
}

/* see swim.h */
void gossip_free(struct gossip *g)
{
    if (g == NULL)
        return;
    gossip__members_free(g);
    gossip__bcast_free(g);
    at_free(g->seeds);
    at_free(g);
}

static void probe_start(struct gossip *g, uint64_t now)
{
    g->next_probe_at = now + scaled(g, g->cfg.probe_interval_ms);
    struct gossip_member *t = gossip__probe_next(g);
    if (t == NULL)
        return;
    struct gossip_msg m;
    gossip__msg_init(g, &m, GOSSIP_MSG_PING);
    m.seq = ++g->seq;
    memcpy(m.target, t->info.name, sizeof(m.target));
    if (t->info.state == GOSSIP_SUSPECT) {
        /* Tell a suspect it is suspected: if it is alive, this is its
         * surest way to hear of it and refute (the broadcasts may have
         * spent their sends while it was away). */
        struct gossip_update *u = &m.updates[m.n_updates++];
        u->kind = GOSSIP_UPDATE_SUSPECT;
        u->incarnation = t->info.incarnation;
        memcpy(u->name, t->info.name, sizeof(u->name));
        memcpy(u->from, g->self->info.name, sizeof(u->from));
    }
    g->probe =
        (struct gossip_probe){ .state = GOSSIP_PROBE_DIRECT, .seq = m.seq };
    memcpy(g->probe.target, t->info.name, sizeof(g->probe.target));
    g->probe.timeout_at = now + scaled(g, g->cfg.probe_timeout_ms);
    g->probe.sent_at = now;
    gossip__send(g, t->info.addr, &m);
}

static void probe_indirect(struct gossip *g, struct gossip_member *t)
{
    struct gossip_member *via[16];
    size_t k = g->cfg.indirect_checks < 16 ? g->cfg.indirect_checks : 16;
    size_t n = gossip__random_members(g, t->info.name, via, k);
    for (size_t i = 0; i < n; i++) {
        struct gossip_msg m;
        gossip__msg_init(g, &m, GOSSIP_MSG_PING_REQ);
        m.seq = g->probe.seq;
        memcpy(m.target, t->info.name, sizeof(m.target));
        memcpy(m.target_addr, t->info.addr, sizeof(m.target_addr));
        gossip__send(g, via[i]->info.addr, &m);
    }
    g->probe.state = GOSSIP_PROBE_INDIRECT;
    g->probe.nacks_expected = (unsigned)n;
    /* To the period's end, but never less than a probe timeout: a tick
     * that comes late (a paused process) must not cut it short. */
    uint64_t floor = gossip__now(g) + scaled(g, g->cfg.probe_timeout_ms);
    g->probe.timeout_at = g->next_probe_at > floor ? g->next_probe_at : floor;
}

static void probe_failed(struct gossip *g, struct gossip_member *t)
{
    /* Lifeguard: missing nacks mean our own links or process are slow;
     * with nobody to ask, count the miss against ourselves. */
    if (g->probe.nacks_expected > 0)
        gossip__health_add(g, (int)(g->probe.nacks_expected - g->probe.nacks));
    else
        gossip__health_add(g, 1);
    g->probe.state = GOSSIP_PROBE_IDLE;
    /* Our suspicion, or our confirmation of another's: news either way. */
    if (t == NULL || !gossip__suspect(g, t, g->self->info.name))
        return;
    struct gossip_update u = { .kind = GOSSIP_UPDATE_SUSPECT,
                               .incarnation = t->info.incarnation };
    memcpy(u.name, t->info.name, sizeof(u.name));
    memcpy(u.from, g->self->info.name, sizeof(u.from));
    gossip__bcast_queue(g, &u);
}

static void probe_tick(struct gossip *g, uint64_t now)
{
    struct gossip_member *t = NULL;
    if (g->probe.state != GOSSIP_PROBE_IDLE) {
        t = gossip__member_find(g, g->probe.target);
        if (t == NULL ||
            (t->info.state != GOSSIP_ALIVE && t->info.state != GOSSIP_SUSPECT))
            g->probe.state = GOSSIP_PROBE_IDLE; /* decided meanwhile */
    }
    if (g->probe.state == GOSSIP_PROBE_DIRECT && now >= g->probe.timeout_at)
        probe_indirect(g, t);
    if (g->probe.state == GOSSIP_PROBE_INDIRECT && now >= g->probe.timeout_at)
        probe_failed(g, t);
    if (g->probe.state == GOSSIP_PROBE_IDLE && now >= g->next_probe_at)
        probe_start(g, now);
}

static void relays_tick(struct gossip *g, uint64_t now)
{
    for (size_t i = 0; i < GOSSIP_RELAYS_MAX; i++) {
        struct gossip_relay *r = &g->relays[i];
        if (!r->used || now < r->nack_at)
            continue;
        struct gossip_msg m;
        gossip__msg_init(g, &m, GOSSIP_MSG_NACK);
        m.seq = r->origin_seq;
        r->used = false;
        gossip__send(g, r->origin_addr, &m);
    }
}

static void gossip_round(struct gossip *g, uint64_t now)
{
    if (now < g->next_gossip_at)
        return;
    g->next_gossip_at = now + g->cfg.gossip_interval_ms;
    if (!gossip__bcast_pending(g))
        return;
    struct gossip_member *to[16];
    size_t k = g->cfg.gossip_nodes < 16 ? g->cfg.gossip_nodes : 16;
    size_t n = gossip__random_members(g, NULL, to, k);
    for (size_t i = 0; i < n && gossip__bcast_pending(g); i++) {
        struct gossip_msg m;
        gossip__msg_init(g, &m, GOSSIP_MSG_UPDATES);
        gossip__send(g, to[i]->info.addr, &m);
    }
}

static void join_tick(struct gossip *g, uint64_t now)
{
    if (g->joined || g->n_seeds == 0 || now < g->join_at)
        return;
    g->join_at = now + g->cfg.probe_interval_ms;
    for (size_t i = 0; i < g->n_seeds; i++) {
        struct gossip_msg m;
        gossip__msg_init(g, &m, GOSSIP_MSG_UPDATES);
        gossip__update_alive(g->self, &m.updates[0]);
        m.n_updates = 1;
        gossip__send(g, g->seeds[i], &m);
    }
}

/* see swim.h */
void gossip_tick(struct gossip *g)
{
    uint64_t now = gossip__now(g);
    join_tick(g, now);
    if (!g->leaving)
        probe_tick(g, now);
    relays_tick(g, now);
    gossip__suspicion_expire(g, now);
    gossip_round(g, now);
}

/* see swim.h */
int gossip_join(struct gossip *g, const char *const *seeds, size_t n)
{
    if (n == 0)
        return AT_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (strlen(seeds[i]) >= GOSSIP_ADDR_MAX)
            return AT_EINVAL;
    at_free(g->seeds);
    g->seeds = at_calloc(n, sizeof(*g->seeds));
    for (size_t i = 0; i < n; i++)
        snprintf(g->seeds[i], GOSSIP_ADDR_MAX, "%s", seeds[i]);
    g->n_seeds = n;
    g->joined = false;
    g->join_at = 0;
    join_tick(g, gossip__now(g));
    return 0;
}

/* see swim.h */
void gossip_leave(struct gossip *g)
{
    if (g->leaving)
        return;
    g->leaving = true;
    g->probe.state = GOSSIP_PROBE_IDLE;
    struct gossip_member *s = g->self;
    s->info.incarnation++;
    gossip__member_set_state(g, s, GOSSIP_LEFT, GOSSIP_EVENT_LEFT);
    struct gossip_update u = { .kind = GOSSIP_UPDATE_LEAVE,
                               .incarnation = s->info.incarnation };
    memcpy(u.name, s->info.name, sizeof(u.name));
    gossip__bcast_queue(g, &u);
}

/* see swim.h */
bool gossip_leave_done(const struct gossip *g)
{
    return g->leaving && !gossip__bcast_about(g, g->self->info.name);
}

/* see swim.h */
void gossip_set_meta(struct gossip *g, const struct gossip_meta *meta)
{
    g->self->info.meta = *meta;
    g->self->info.incarnation++;
    struct gossip_update u;
    gossip__update_alive(g->self, &u);
    gossip__bcast_queue(g, &u);
}

/* see swim.h */
size_t gossip_state_export(const struct gossip *g,
                           struct gossip_update *out,
                           size_t max)
{
    for (size_t i = 0; i < g->n_members && i < max; i++)
        gossip__update_of(g, g->members[i], &out[i]);
    return g->n_members;
}

/* see swim.h */
void gossip_merge(struct gossip *g,
                  const struct gossip_update *u,
                  size_t n,
                  bool spread)
{
    for (size_t i = 0; i < n; i++) {
        struct gossip_update v = u[i];
        if (v.kind == GOSSIP_UPDATE_DEAD)
            v.kind = GOSSIP_UPDATE_SUSPECT;
        /* An unknown member learnt in any state is added alive first,
         * then takes the peer's state: a newcomer must know its
         * address. */
        if (v.kind != GOSSIP_UPDATE_ALIVE && v.addr[0] != '\0' &&
            gossip__member_find(g, v.name) == NULL) {
            struct gossip_update a = v;
            a.kind = GOSSIP_UPDATE_ALIVE;
            gossip__apply(g, &a, spread);
        }
        gossip__apply(g, &v, spread);
    }
    g->n_stale = 0; /* nobody to answer here */
}

/* see swim.h */
int gossip_member_get(const struct gossip *g,
                      const char *name,
                      struct gossip_member_info *out)
{
    const struct gossip_member *m = gossip__member_find(g, name);
    if (m == NULL)
        return AT_ENOTFOUND;
    *out = m->info;
    return 0;
}

/* see swim.h */
size_t gossip_members_count(const struct gossip *g)
{
    return g->n_members;
}

/* see swim.h */
size_t gossip_members_live(const struct gossip *g)
{
    return g->n_live;
}

/* see swim.h */
unsigned gossip_health(const struct gossip *g)
{
    return g->health;
}

/* see swim.h */
uint64_t gossip_incarnation(const struct gossip *g)
{
    return g->self->info.incarnation;
}
