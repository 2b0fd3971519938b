/* The broadcast queue: updates waiting to ride on outgoing packets, each
 * sent retransmit_mult x log10(N+1) times, least-sent first, a newer
 * update about a member replacing the queued one. */
#include "gossip/internal.h"

/* see internal.h */
void gossip__update_alive(const struct gossip_member *m,
                          struct gossip_update *u)
{
    memset(u, 0, sizeof(*u));
    u->kind = GOSSIP_UPDATE_ALIVE;
    u->incarnation = m->info.incarnation;
    memcpy(u->name, m->info.name, sizeof(u->name));
    memcpy(u->addr, m->info.addr, sizeof(u->addr));
    u->meta = m->info.meta;
}

/* see internal.h */
void gossip__update_of(const struct gossip *g,
                       const struct gossip_member *m,
                       struct gossip_update *u)
{
    static const enum gossip_update_kind kinds[] = {
        [GOSSIP_ALIVE] = GOSSIP_UPDATE_ALIVE,
        [GOSSIP_SUSPECT] = GOSSIP_UPDATE_SUSPECT,
        [GOSSIP_DEAD] = GOSSIP_UPDATE_DEAD,
        [GOSSIP_LEFT] = GOSSIP_UPDATE_LEAVE,
    };
    gossip__update_alive(m, u);
    u->kind = kinds[m->info.state];
    if (m->info.state == GOSSIP_SUSPECT || m->info.state == GOSSIP_DEAD)
        memcpy(u->from, g->self->info.name, sizeof(u->from));
}

static void drop(struct gossip *g, size_t i)
{
    g->bcasts[i] = g->bcasts[--g->n_bcasts];
}

/* see internal.h */
void gossip__bcast_queue(struct gossip *g, const struct gossip_update *u)
{
    for (size_t i = 0; i < g->n_bcasts; i++) {
        if (strcmp(g->bcasts[i].u.name, u->name) == 0) {
            /* Confirmations of one suspicion are separate news: keep
             * each accuser's, so the suspect's timers shrink. */
            if (u->kind == GOSSIP_UPDATE_SUSPECT &&
                g->bcasts[i].u.kind == GOSSIP_UPDATE_SUSPECT &&
                strcmp(g->bcasts[i].u.from, u->from) != 0)
                continue;
            drop(g, i);
            i--;
        }
    }
    if (g->n_bcasts == g->cap_bcasts) {
        g->cap_bcasts = g->cap_bcasts ? 2 * g->cap_bcasts : 16;
        g->bcasts = at_realloc(g->bcasts, g->cap_bcasts * sizeof(*g->bcasts));
    }
    struct gossip_bcast *b = &g->bcasts[g->n_bcasts++];
    b->u = *u;
    b->sent = 0;
    b->id = ++g->bcast_ids;
}

static bool before(const struct gossip_bcast *a, const struct gossip_bcast *b)
{
    return a->sent < b->sent || (a->sent == b->sent && a->id > b->id);
}

/* see internal.h */
void gossip__bcast_fill(struct gossip *g, struct gossip_msg *m)
{
    unsigned limit = gossip_retransmits(&g->cfg, g->n_live);
    /* N may have shrunk since an update was queued. */
    for (size_t i = 0; i < g->n_bcasts; i++) {
        if (g->bcasts[i].sent >= limit) {
            drop(g, i);
            i--;
        }
    }
    /* Mark the ones taken for this packet by adding a sentinel above the
     * limit, counted as one send below. */
    unsigned taken = limit + 1;
    while (m->n_updates < GOSSIP_MSG_UPDATES_MAX) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < g->n_bcasts; i++) {
            if (g->bcasts[i].sent >= taken)
                continue;
            if (best == SIZE_MAX || before(&g->bcasts[i], &g->bcasts[best]))
                best = i;
        }
        if (best == SIZE_MAX)
            break;
        m->updates[m->n_updates++] = g->bcasts[best].u;
        g->bcasts[best].sent += taken;
    }
    for (size_t i = 0; i < g->n_bcasts; i++) {
        if (g->bcasts[i].sent < taken)
            continue;
        g->bcasts[i].sent -= limit; /* net: one more send */
        if (g->bcasts[i].sent >= limit) {
            drop(g, i);
            i--;
        }
    }
}

/* see internal.h */
bool gossip__bcast_pending(const struct gossip *g)
{
    return g->n_bcasts > 0;
}

/* see internal.h */
bool gossip__bcast_about(const struct gossip *g, const char *name)
{
    for (size_t i = 0; i < g->n_bcasts; i++)
        if (strcmp(g->bcasts[i].u.name, name) == 0)
            return true;
    return false;
}

/* see internal.h */
void gossip__bcast_free(struct gossip *g)
{
    at_free(g->bcasts);
}
