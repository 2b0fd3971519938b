/* The member table: lookup by name, states and their events, and the
 * shuffled round-robin probe order (every member probed once per round,
 * in an order nobody can predict). */
#include "gossip/internal.h"

/* xorshift64*: deterministic for a given seed, which the simulator needs;
 * nothing here is secret. */
uint64_t gossip__rand(struct gossip *g)
{
    g->rng ^= g->rng >> 12;
    g->rng ^= g->rng << 25;
    g->rng ^= g->rng >> 27;
    return g->rng * 2685821657736338717ULL;
}

/* see internal.h */
struct gossip_member *gossip__member_find(const struct gossip *g,
                                          const char *name)
{
    return at_map_gets(&g->by_name, name);
}

/* see internal.h */
struct gossip_member *gossip__member_add(struct gossip *g,
                                         const char *name,
                                         const char *addr)
{
    PRE(gossip__member_find(g, name) == NULL);
    struct gossip_member *m = at_calloc(1, sizeof(*m));
    snprintf(m->info.name, sizeof(m->info.name), "%s", name);
    snprintf(m->info.addr, sizeof(m->info.addr), "%s", addr);
    m->info.state = GOSSIP_ALIVE;
    m->info.state_since_ms = gossip__now(g);
    if (g->n_members == g->cap_members) {
        g->cap_members = g->cap_members ? 2 * g->cap_members : 16;
        g->members =
            at_realloc(g->members, g->cap_members * sizeof(*g->members));
        g->order = at_realloc(g->order, g->cap_members * sizeof(*g->order));
    }
    g->members[g->n_members++] = m;
    at_map_put(&g->by_name, name, strlen(name), m);
    g->n_live++;
    /* A random place in the order: a newcomer is probed within about a
     * round and no member's turn depends on when it joined. The one it
     * displaces goes to the end, still in this round. */
    size_t at = (size_t)(gossip__rand(g) % (g->n_order + 1));
    g->order[g->n_order++] = g->order[at];
    g->order[at] = m;
    return m;
}

static bool live(enum gossip_state st)
{
    return st == GOSSIP_ALIVE || st == GOSSIP_SUSPECT;
}

/* see internal.h */
void gossip__member_event(struct gossip *g,
                          struct gossip_member *m,
                          enum gossip_event ev)
{
    if (g->cfg.event != NULL)
        g->cfg.event(g->cfg.data, ev, &m->info);
}

/* see internal.h */
void gossip__member_set_state(struct gossip *g,
                              struct gossip_member *m,
                              enum gossip_state st,
                              enum gossip_event ev)
{
    if (live(m->info.state) && !live(st))
        g->n_live--;
    else if (!live(m->info.state) && live(st))
        g->n_live++;
    if (m->info.state != GOSSIP_SUSPECT && st == GOSSIP_SUSPECT) {
        if (g->n_suspects == g->cap_suspects) {
            g->cap_suspects = g->cap_suspects ? 2 * g->cap_suspects : 8;
            g->suspects =
                at_realloc(g->suspects, g->cap_suspects * sizeof(*g->suspects));
        }
        g->suspects[g->n_suspects++] = m;
    } else if (m->info.state == GOSSIP_SUSPECT && st != GOSSIP_SUSPECT) {
        for (size_t i = 0; i < g->n_suspects; i++) {
            if (g->suspects[i] == m) {
                g->suspects[i] = g->suspects[--g->n_suspects];
                break;
            }
        }
    }
    if (m->info.state != st)
        m->info.state_since_ms = gossip__now(g);
    m->info.state = st;
    if (st != GOSSIP_SUSPECT)
        m->n_accusers = 0;
    gossip__member_event(g, m, ev);
}

/* Forget members dead or left for reap_ms: the table stays the size of
 * the live cluster. Their news has long stopped spreading by then (it
 * is sent a few dozen times within seconds). */
static void reap(struct gossip *g, uint64_t now)
{
    for (size_t i = 0; i < g->n_members; i++) {
        struct gossip_member *m = g->members[i];
        if (m == g->self || live(m->info.state) ||
            now < m->info.state_since_ms + g->cfg.reap_ms)
            continue;
        at_map_del(&g->by_name, m->info.name, strlen(m->info.name));
        at_free(m);
        g->members[i--] = g->members[--g->n_members];
    }
}

/* A new round: reap, then a fresh random order of everyone left. */
static void shuffle(struct gossip *g)
{
    reap(g, gossip__now(g));
    memcpy(g->order, g->members, g->n_members * sizeof(*g->order));
    g->n_order = g->n_members;
    for (size_t i = g->n_order; i > 1; i--) {
        size_t j = (size_t)(gossip__rand(g) % i);
        struct gossip_member *t = g->order[i - 1];
        g->order[i - 1] = g->order[j];
        g->order[j] = t;
    }
}

/* see internal.h */
struct gossip_member *gossip__probe_next(struct gossip *g)
{
    /* At most one full round plus a reshuffle to find a candidate. */
    for (size_t tries = 0; tries <= g->n_order; tries++) {
        if (g->order_next >= g->n_order) {
            shuffle(g);
            if (g->n_order == 0)
                return NULL;
            g->order_next = 0;
        }
        struct gossip_member *m = g->order[g->order_next++];
        if (m != g->self && live(m->info.state))
            return m;
    }
    return NULL;
}

/* see internal.h */
size_t gossip__random_members(struct gossip *g,
                              const char *except,
                              struct gossip_member **out,
                              size_t n)
{
    size_t got = 0;
    if (g->n_members == 0)
        return 0;
    /* Random picks with a bound on tries: fine while live members are
     * a fair share of the table, which reaping keeps true. */
    for (size_t tries = 0; got < n && tries < 3 * n + 8; tries++) {
        struct gossip_member *m = g->members[gossip__rand(g) % g->n_members];
        if (m == g->self || !live(m->info.state) ||
            (except != NULL && strcmp(m->info.name, except) == 0))
            continue;
        bool dup = false;
        for (size_t i = 0; i < got; i++)
            dup = dup || out[i] == m;
        if (!dup)
            out[got++] = m;
    }
    return got;
}

/* see internal.h */
void gossip__members_free(struct gossip *g)
{
    for (size_t i = 0; i < g->n_members; i++)
        at_free(g->members[i]);
    at_free(g->members);
    at_free(g->order);
    at_free(g->suspects);
    at_map_release(&g->by_name);
}
