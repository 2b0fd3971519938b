/* Incoming messages: apply their piggybacked updates under the
 * incarnation rules, answer pings, relay indirect probes (nacking when
 * the target stays silent), and answer a joiner with part of our table.
 *
 * The rules: a higher incarnation wins; at equal incarnation suspect
 * beats alive, and dead or left beat both; news about ourselves that is
 * not alive is refuted with a higher incarnation, unless we are leaving. */
#include "gossip/internal.h"

static void apply_alive(struct gossip *g,
                        struct gossip_member *m,
                        const struct gossip_update *u,
                        bool rebroadcast)
{
    if (m == g->self) {
        /* Someone claims a newer us (a restart before ours): outbid. */
        if (u->incarnation > m->info.incarnation && !g->leaving)
            gossip__refute(g, u->incarnation);
        return;
    }
    if (m == NULL) {
        if (g->n_members >= GOSSIP_MEMBERS_MAX)
            return;
        m = gossip__member_add(g, u->name, u->addr);
        m->info.incarnation = u->incarnation;
        m->info.meta = u->meta;
        gossip__member_event(g, m, GOSSIP_EVENT_JOIN);
    } else {
        if (u->incarnation <= m->info.incarnation)
            return;
        bool changed = strcmp(m->info.addr, u->addr) != 0 ||
                       memcmp(&m->info.meta, &u->meta, sizeof(u->meta)) != 0;
        enum gossip_state old = m->info.state;
        m->info.incarnation = u->incarnation;
        memcpy(m->info.addr, u->addr, sizeof(m->info.addr));
        m->info.meta = u->meta;
        if (old != GOSSIP_ALIVE)
            gossip__member_set_state(g, m, GOSSIP_ALIVE, GOSSIP_EVENT_ALIVE);
        else if (changed)
            gossip__member_event(g, m, GOSSIP_EVENT_UPDATE);
    }
    if (rebroadcast)
        gossip__bcast_queue(g, u);
}

static void apply_suspect(struct gossip *g,
                          struct gossip_member *m,
                          const struct gossip_update *u,
                          bool rebroadcast)
{
    if (m == NULL || u->incarnation < m->info.incarnation)
        return;
    if (m == g->self) {
        if (!g->leaving)
            gossip__refute(g, u->incarnation);
        return;
    }
    if (m->info.state != GOSSIP_ALIVE && m->info.state != GOSSIP_SUSPECT)
        return;
    if (m->info.state == GOSSIP_SUSPECT &&
        u->incarnation > m->info.incarnation) {
        /* A suspicion of a newer incarnation is a new suspicion: its
         * timer starts now, at the maximum. */
        m->n_accusers = 0;
        m->suspect_start = gossip__now(g);
    }
    m->info.incarnation = u->incarnation;
    if (gossip__suspect(g, m, u->from[0] ? u->from : u->name) && rebroadcast)
        gossip__bcast_queue(g, u);
}

static void apply_end(struct gossip *g,
                      struct gossip_member *m,
                      const struct gossip_update *u,
                      bool rebroadcast)
{
    bool leave = u->kind == GOSSIP_UPDATE_LEAVE;
    if (m == NULL || u->incarnation < m->info.incarnation)
        return;
    if (m == g->self) {
        if (!g->leaving)
            gossip__refute(g, u->incarnation);
        return;
    }
    if (m->info.state == GOSSIP_LEFT ||
        (m->info.state == GOSSIP_DEAD && !leave))
        return;
    m->info.incarnation = u->incarnation;
    gossip__member_set_state(g, m, leave ? GOSSIP_LEFT : GOSSIP_DEAD,
                             leave ? GOSSIP_EVENT_LEFT : GOSSIP_EVENT_DEAD);
    if (rebroadcast)
        gossip__bcast_queue(g, u);
}

/* see internal.h */
void gossip__apply(struct gossip *g,
                   const struct gossip_update *u,
                   bool rebroadcast)
{
    struct gossip_member *m = gossip__member_find(g, u->name);
    if (m != NULL && u->incarnation < m->info.incarnation) {
        for (size_t i = 0; i < g->n_stale; i++)
            if (g->stale[i] == m)
                return;
        if (g->n_stale < GOSSIP_MSG_UPDATES_MAX)
            g->stale[g->n_stale++] = m;
        return;
    }
    switch (u->kind) {
    case GOSSIP_UPDATE_ALIVE:
        if (u->addr[0] != '\0')
            apply_alive(g, m, u, rebroadcast);
        break;
    case GOSSIP_UPDATE_SUSPECT:
        apply_suspect(g, m, u, rebroadcast);
        break;
    case GOSSIP_UPDATE_DEAD:
    case GOSSIP_UPDATE_LEAVE:
        apply_end(g, m, u, rebroadcast);
        break;
    }
}

/* A joiner announced itself to us: hand it ourselves and a random slice
 * of the table, so it can probe and gossip at once. The full table comes
 * with the push-pull exchange. */
static void answer_join(struct gossip *g, const char *addr)
{
    struct gossip_msg m;
    gossip__msg_init(g, &m, GOSSIP_MSG_UPDATES);
    gossip__update_alive(g->self, &m.updates[m.n_updates++]);
    struct gossip_member *some[GOSSIP_MSG_UPDATES_MAX / 2];
    size_t n =
        gossip__random_members(g, NULL, some, GOSSIP_MSG_UPDATES_MAX / 2);
    for (size_t i = 0; i < n; i++)
        gossip__update_alive(some[i], &m.updates[m.n_updates++]);
    gossip__send(g, addr, &m);
}

static struct gossip_relay *relay_slot(struct gossip *g)
{
    struct gossip_relay *oldest = &g->relays[0];
    for (size_t i = 0; i < GOSSIP_RELAYS_MAX; i++) {
        if (!g->relays[i].used)
            return &g->relays[i];
        if (g->relays[i].nack_at < oldest->nack_at)
            oldest = &g->relays[i];
    }
    return oldest;
}

static void relay_ping(struct gossip *g,
                       const char *from_addr,
                       const struct gossip_msg *req)
{
    struct gossip_msg m;
    if (strcmp(req->target, g->self->info.name) == 0) {
        /* Asked to probe ourselves (a stale view of who we are): the
         * answer is ours to give. */
        gossip__msg_init(g, &m, GOSSIP_MSG_ACK);
        m.seq = req->seq;
        gossip__send(g, from_addr, &m);
        return;
    }
    struct gossip_relay *r = relay_slot(g);
    r->used = true;
    r->our_seq = ++g->seq;
    r->origin_seq = req->seq;
    snprintf(r->origin_addr, sizeof(r->origin_addr), "%s", from_addr);
    /* Nack before the origin's period ends, so it can count the nack. */
    r->nack_at = gossip__now(g) + g->cfg.probe_timeout_ms * 4 / 5;
    gossip__msg_init(g, &m, GOSSIP_MSG_PING);
    m.seq = r->our_seq;
    memcpy(m.target, req->target, sizeof(m.target));
    gossip__send(g, req->target_addr, &m);
}

/* The target itself answered our direct ping in time: its round trip,
 * at the clock's millisecond resolution (at least 1 us, so 0 stays
 * "none"). Relayed acks and late ones measure other paths: skipped. */
static void record_rtt(struct gossip *g, const struct gossip_msg *m)
{
    if (g->probe.state != GOSSIP_PROBE_DIRECT ||
        strcmp(m->from, g->probe.target) != 0)
        return;
    struct gossip_member *t = gossip__member_find(g, g->probe.target);
    if (t == NULL)
        return;
    uint64_t now = gossip__now(g);
    uint64_t us = now > g->probe.sent_at ? (now - g->probe.sent_at) * 1000 : 1;
    t->info.rtt_us = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static void on_ack(struct gossip *g, const struct gossip_msg *m)
{
    if (g->probe.state != GOSSIP_PROBE_IDLE && m->seq == g->probe.seq) {
        record_rtt(g, m);
        g->probe.state = GOSSIP_PROBE_IDLE;
        gossip__health_add(g, -1);
        return;
    }
    for (size_t i = 0; i < GOSSIP_RELAYS_MAX; i++) {
        struct gossip_relay *r = &g->relays[i];
        if (!r->used || r->our_seq != m->seq)
            continue;
        struct gossip_msg a;
        gossip__msg_init(g, &a, GOSSIP_MSG_ACK);
        a.seq = r->origin_seq;
        r->used = false;
        gossip__send(g, r->origin_addr, &a);
        return;
    }
}

/* see swim.h */
int gossip_receive(struct gossip *g,
                   const char *from_addr,
                   const struct gossip_msg *m)
{
    if (!gossip_msg_valid(m) || strlen(from_addr) >= GOSSIP_ADDR_MAX)
        return AT_EPROTO;
    if (strcmp(m->from, g->self->info.name) == 0)
        return 0;
    g->joined = true;
    bool joiner = m->type == GOSSIP_MSG_UPDATES && m->n_updates > 0 &&
                  m->updates[0].kind == GOSSIP_UPDATE_ALIVE &&
                  strcmp(m->updates[0].name, m->from) == 0 &&
                  gossip__member_find(g, m->from) == NULL;
    g->n_stale = 0;
    for (uint32_t i = 0; i < m->n_updates; i++)
        gossip__apply(g, &m->updates[i], true);
    struct gossip_msg r;
    if (g->n_stale > 0) {
        /* Its sender spreads news older than ours (an accusation we saw
         * refuted, a member we saw leave): the copies that would have
         * told it were lost, so tell it directly. */
        gossip__msg_init(g, &r, GOSSIP_MSG_UPDATES);
        for (size_t i = 0; i < g->n_stale; i++)
            gossip__update_of(g, g->stale[i], &r.updates[r.n_updates++]);
        g->n_stale = 0;
        gossip__send(g, from_addr, &r);
    }
    switch (m->type) {
    case GOSSIP_MSG_PING:
        /* A ping for someone else at our address (we restarted under a
         * new name) must not pass for that member's ack. */
        if (m->target[0] != '\0' && strcmp(m->target, g->self->info.name))
            break;
        if (g->leaving && gossip_leave_done(g))
            break;
        gossip__msg_init(g, &r, GOSSIP_MSG_ACK);
        r.seq = m->seq;
        gossip__send(g, from_addr, &r);
        break;
    case GOSSIP_MSG_ACK:
        on_ack(g, m);
        break;
    case GOSSIP_MSG_PING_REQ:
        relay_ping(g, from_addr, m);
        break;
    case GOSSIP_MSG_NACK:
        if (g->probe.state == GOSSIP_PROBE_INDIRECT && m->seq == g->probe.seq)
            g->probe.nacks++;
        break;
    case GOSSIP_MSG_UPDATES:
        if (joiner)
            answer_join(g, from_addr);
        break;
    }
    return 0;
}
