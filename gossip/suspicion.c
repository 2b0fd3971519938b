/* Suspicion, Lifeguard style: a suspect's timer starts at the maximum
 * and falls on a log curve toward the minimum as independent accusers
 * confirm it, so a real failure is declared fast and a lone slow accuser
 * gives its victim time to refute. Also the configuration's defaults and
 * the formulas, memberlist's, so operators can size timeouts. */
#include <math.h>

#include "gossip/internal.h"

/* see internal.h */
void gossip__config_defaults(struct gossip_config *c)
{
#define DEF(f, v)  \
    if (c->f == 0) \
    c->f = (v)
    DEF(probe_interval_ms, 1000);
    DEF(probe_timeout_ms, 500);
    DEF(indirect_checks, 3);
    DEF(suspicion_mult, 4);
    DEF(suspicion_max_mult, 6);
    DEF(retransmit_mult, 4);
    DEF(awareness_max, 8);
    DEF(gossip_interval_ms, 200);
    DEF(gossip_nodes, 3);
    DEF(reap_ms, 30000);
#undef DEF
}

/* see swim.h */
uint64_t gossip_suspicion_min_ms(const struct gossip_config *c, size_t n)
{
    struct gossip_config d = *c;
    gossip__config_defaults(&d);
    double scale = fmax(1.0, log10(fmax(1.0, (double)n)));
    return (uint64_t)(d.suspicion_mult * scale * d.probe_interval_ms);
}

/* see swim.h */
uint64_t gossip_suspicion_timeout_ms(uint64_t min_ms,
                                     uint64_t max_ms,
                                     unsigned confirmations,
                                     unsigned k)
{
    if (k < 1 || max_ms <= min_ms)
        return min_ms;
    double frac = log((double)confirmations + 1.0) / log((double)k + 1.0);
    double raw = (double)max_ms - frac * (double)(max_ms - min_ms);
    return raw < (double)min_ms ? min_ms : (uint64_t)raw;
}

/* see swim.h */
unsigned gossip_retransmits(const struct gossip_config *c, size_t n)
{
    struct gossip_config d = *c;
    gossip__config_defaults(&d);
    return d.retransmit_mult * (unsigned)ceil(log10((double)n + 1.0));
}

/* Confirmations expected: everyone but the accuser and the suspect may
 * confirm, and memberlist waits for suspicion_mult - 2 of them. */
static unsigned expected_k(const struct gossip *g)
{
    unsigned k = g->cfg.suspicion_mult > 2 ? g->cfg.suspicion_mult - 2 : 0;
    return g->n_live < (size_t)k + 2 ? 0 : k;
}

static void retime(struct gossip *g, struct gossip_member *m)
{
    uint64_t min = gossip_suspicion_min_ms(&g->cfg, g->n_live);
    uint64_t max = min * g->cfg.suspicion_max_mult;
    unsigned conf = m->n_accusers > 0 ? m->n_accusers - 1 : 0;
    m->suspect_timeout =
        gossip_suspicion_timeout_ms(min, max, conf, expected_k(g));
}

/* see internal.h */
bool gossip__suspect(struct gossip *g,
                     struct gossip_member *m,
                     const char *from)
{
    PRE(m != g->self);
    uint64_t h = at_hash_bytes(from, strlen(from));
    if (m->info.state == GOSSIP_SUSPECT) {
        for (unsigned i = 0; i < m->n_accusers; i++)
            if (m->accusers[i] == h)
                return false;
        if (m->n_accusers == GOSSIP_ACCUSERS_MAX)
            return false;
        m->accusers[m->n_accusers++] = h;
        retime(g, m);
        return true;
    }
    if (m->info.state != GOSSIP_ALIVE)
        return false;
    m->accusers[0] = h;
    m->suspect_start = gossip__now(g);
    gossip__member_set_state(g, m, GOSSIP_SUSPECT, GOSSIP_EVENT_SUSPECT);
    m->n_accusers = 1; /* set_state keeps accusers only for SUSPECT */
    retime(g, m);
    return true;
}

/* see internal.h */
void gossip__suspicion_expire(struct gossip *g, uint64_t now)
{
    /* Backwards: a death swaps the last suspect into slot i, one already
     * looked at. */
    for (size_t i = g->n_suspects; i-- > 0;) {
        struct gossip_member *m = g->suspects[i];
        if (now < m->suspect_start + m->suspect_timeout)
            continue;
        struct gossip_update u = { .kind = GOSSIP_UPDATE_DEAD,
                                   .incarnation = m->info.incarnation };
        memcpy(u.name, m->info.name, sizeof(u.name));
        memcpy(u.from, g->self->info.name, sizeof(u.from));
        gossip__member_set_state(g, m, GOSSIP_DEAD, GOSSIP_EVENT_DEAD);
        gossip__bcast_queue(g, &u);
    }
}
