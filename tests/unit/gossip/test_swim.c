/* Unit tests of gossip/: SWIM in a deterministic simulator (seeded PRNG,
 * virtual clock, a packet queue with per-packet delay and loss): failure
 * detection and join at 1,000 members against memberlist's formulas, no
 * false death under 10% loss, graceful leave, refutation. */
#include "common/compat.h"

#include <math.h>
#include <setjmp.h>
#include <stdio.h>

#include <cmocka.h>

#include "common/common.h"
#include "gossip/swim.h"

#define STEP_MS 10 /* virtual time per simulator step; ticks every step */

struct packet {
    uint64_t at, order;
    unsigned to;
    char from_addr[GOSSIP_ADDR_MAX];
    struct gossip_msg m;
};

struct sim;

struct node {
    struct sim *sim;
    unsigned idx;
    struct gossip *g;
    bool up;
    uint64_t paused_until; /* frozen: no ticks, packets wait */
    uint64_t watch_at;     /* when this node saw the watched event */
    unsigned slow_ms;      /* extra delay on every packet to or from it */
};

struct sim {
    uint64_t now, rng, order;
    unsigned loss_pct;
    struct node *nodes;
    size_t n, cap;
    struct packet **heap; /* min-heap on (at, order) */
    size_t n_heap, cap_heap;
    /* The watched member and event, and counters over every node. */
    char watch[GOSSIP_NAME_MAX];
    enum gossip_event watch_ev;
    size_t watch_seen;
    unsigned false_dead, suspects, alives, lefts, deads;
    uint64_t first_suspect_at;
};

static uint64_t rnd(struct sim *s)
{
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return s->rng * 2685821657736338717ULL;
}

static bool earlier(const struct packet *a, const struct packet *b)
{
    return a->at < b->at || (a->at == b->at && a->order < b->order);
}

static void heap_push(struct sim *s, struct packet *p)
{
    if (s->n_heap == s->cap_heap) {
        s->cap_heap = s->cap_heap ? 2 * s->cap_heap : 1024;
        s->heap = at_realloc(s->heap, s->cap_heap * sizeof(*s->heap));
    }
    size_t i = s->n_heap++;
    while (i > 0 && earlier(p, s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = p;
}

static struct packet *heap_pop(struct sim *s)
{
    struct packet *top = s->heap[0];
    struct packet *last = s->heap[--s->n_heap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->n_heap)
            break;
        if (c + 1 < s->n_heap && earlier(s->heap[c + 1], s->heap[c]))
            c++;
        if (!earlier(s->heap[c], last))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->n_heap > 0)
        s->heap[i] = last;
    return top;
}

static unsigned idx_of(const char *name_or_addr)
{
    return (unsigned)strtoul(name_or_addr + 1, NULL, 10);
}

static uint64_t now_cb(void *data)
{
    return ((struct node *)data)->sim->now;
}

static void send_cb(void *data, const char *addr, const struct gossip_msg *m)
{
    struct node *from = data;
    struct sim *s = from->sim;
    unsigned to = idx_of(addr);
    if (to >= s->n || rnd(s) % 100 < s->loss_pct)
        return;
    struct packet *p = at_malloc(sizeof(*p));
    p->at = s->now + 1 + rnd(s) % 15 + from->slow_ms + s->nodes[to].slow_ms;
    p->order = ++s->order;
    p->to = to;
    snprintf(p->from_addr, sizeof(p->from_addr), "n%u", from->idx);
    p->m = *m;
    heap_push(s, p);
}

static void event_cb(void *data,
                     enum gossip_event ev,
                     const struct gossip_member_info *m)
{
    struct node *me = data;
    struct sim *s = me->sim;
    unsigned about = idx_of(m->name);
    if (ev == GOSSIP_EVENT_SUSPECT) {
        s->suspects++;
        if (s->first_suspect_at == 0)
            s->first_suspect_at = s->now;
    }
    s->alives += ev == GOSSIP_EVENT_ALIVE;
    s->lefts += ev == GOSSIP_EVENT_LEFT;
    s->deads += ev == GOSSIP_EVENT_DEAD;
    if (ev == GOSSIP_EVENT_DEAD && about < s->n && s->nodes[about].up)
        s->false_dead++;
    if (ev == s->watch_ev && strcmp(m->name, s->watch) == 0 &&
        me->watch_at == 0 && about != me->idx) {
        me->watch_at = s->now;
        s->watch_seen++;
    }
}

static struct node *sim_add(struct sim *s, uint64_t seed)
{
    if (s->n == s->cap) {
        /* Nodes are found through their gossip's data pointer: size the
         * array once, before any node exists. */
        fail_msg("sim capacity %zu reached", s->cap);
    }
    struct node *nd = &s->nodes[s->n];
    *nd = (struct node){ .sim = s, .idx = (unsigned)s->n, .up = true };
    char name[GOSSIP_NAME_MAX], errmsg[AT_ERRMSG_SIZE];
    snprintf(name, sizeof(name), "n%zu", s->n);
    struct gossip_config c = { .name = name,
                               .addr = name,
                               .seed = seed,
                               .now_ms = now_cb,
                               .send = send_cb,
                               .event = event_cb,
                               .data = nd };
    snprintf(c.meta.region, sizeof(c.meta.region), "r%zu", s->n % 2);
    snprintf(c.meta.role, sizeof(c.meta.role), "voter");
    nd->g = gossip_new(&c, errmsg);
    assert_non_null(nd->g);
    s->n++;
    return nd;
}

/* n members that already know each other (as after push-pull). The
 * environment's GOSSIP_SIM_SEED shifts every seed, for soak runs. */
static void sim_init(struct sim *s, size_t n, size_t cap, uint64_t seed)
{
    const char *env = getenv("GOSSIP_SIM_SEED");
    if (env != NULL)
        seed += strtoull(env, NULL, 10) * 1000;
    memset(s, 0, sizeof(*s));
    s->rng = seed;
    s->now = 1000;
    s->cap = cap;
    s->nodes = at_calloc(cap, sizeof(*s->nodes));
    for (size_t i = 0; i < n; i++)
        sim_add(s, seed * 7919 + i + 1);
    struct gossip_update *ups = at_calloc(n, sizeof(*ups));
    for (size_t i = 0; i < n; i++) {
        ups[i].kind = GOSSIP_UPDATE_ALIVE;
        ups[i].incarnation = 1;
        snprintf(ups[i].name, sizeof(ups[i].name), "n%zu", i);
        snprintf(ups[i].addr, sizeof(ups[i].addr), "n%zu", i);
    }
    for (size_t i = 0; i < n; i++)
        gossip_merge(s->nodes[i].g, ups, n, false);
    at_free(ups);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(gossip_members_count(s->nodes[i].g), n);
}

static void sim_free(struct sim *s)
{
    for (size_t i = 0; i < s->n; i++)
        gossip_free(s->nodes[i].g);
    for (size_t i = 0; i < s->n_heap; i++)
        at_free(s->heap[i]);
    at_free(s->heap);
    at_free(s->nodes);
}

static bool running(const struct node *nd, uint64_t now)
{
    return nd->up && now >= nd->paused_until;
}

/* One step: deliver due packets, then tick every running node. */
static void sim_step(struct sim *s)
{
    s->now += STEP_MS;
    while (s->n_heap > 0 && s->heap[0]->at <= s->now) {
        struct packet *p = heap_pop(s);
        struct node *to = &s->nodes[p->to];
        if (to->up && !running(to, s->now)) {
            p->at = to->paused_until; /* the kernel keeps it for later */
            heap_push(s, p);
            continue;
        }
        if (to->up)
            assert_int_equal(gossip_receive(to->g, p->from_addr, &p->m), 0);
        at_free(p);
    }
    for (size_t i = 0; i < s->n; i++)
        if (running(&s->nodes[i], s->now))
            gossip_tick(s->nodes[i].g);
}

/* Run until every running node other than skip saw the watched event, or
 * for ms; returns the elapsed virtual time. */
static uint64_t sim_run(struct sim *s, uint64_t ms, bool until_watched)
{
    uint64_t start = s->now;
    while (s->now - start < ms) {
        sim_step(s);
        if (!until_watched)
            continue;
        size_t want = 0;
        for (size_t i = 0; i < s->n; i++)
            want += s->nodes[i].up && strcmp(s->watch, "") != 0 &&
                    idx_of(s->watch) != i;
        if (s->watch_seen >= want)
            break;
    }
    return s->now - start;
}

static void sim_watch(struct sim *s, const char *name, enum gossip_event ev)
{
    snprintf(s->watch, sizeof(s->watch), "%s", name);
    s->watch_ev = ev;
    s->watch_seen = 0;
    for (size_t i = 0; i < s->n; i++)
        s->nodes[i].watch_at = 0;
}

static enum gossip_state state_at(struct sim *s, size_t i, const char *name)
{
    struct gossip_member_info info;
    assert_int_equal(gossip_member_get(s->nodes[i].g, name, &info), 0);
    return info.state;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* (b) A newcomer announced to one seed reaches everyone in O(log N)
 * protocol periods. */
static void join_one(struct sim *s)
{
    size_t n = s->n;
    struct node *nd = sim_add(s, 4242);
    sim_watch(s, "n1000", GOSSIP_EVENT_JOIN);
    const char *seeds[] = { "n5" };
    assert_int_equal(gossip_join(nd->g, seeds, 1), 0);
    uint64_t took = sim_run(s, 60000, true);
    assert_int_equal(s->watch_seen, n - 1); /* n7 is dead */
    double periods = (double)took / 1000.0;
    printf(
        "join: known by all %zu members after %.2f periods "
        "(log2 N = %.1f; one update is sent %u times)\n",
        n, periods, log2((double)n),
        gossip_retransmits(&(struct gossip_config){ 0 }, n));
    assert_true(periods <= 2.0 * log2((double)n));
}

/* (a) One member dies: everyone declares it dead within the time the
 * formulas give. */
static void kill_one(struct sim *s)
{
    size_t n = s->n;
    struct gossip_config d = { 0 };
    uint64_t min = gossip_suspicion_min_ms(&d, n);
    uint64_t max = 6 * min;
    s->nodes[7].up = false;
    sim_watch(s, "n7", GOSSIP_EVENT_DEAD);
    s->first_suspect_at = 0;
    uint64_t t0 = s->now;
    sim_run(s, 200000, true);
    assert_int_equal(s->watch_seen, n - 1);
    uint64_t *at = at_calloc(n, sizeof(*at));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (s->nodes[i].up)
            at[k++] = s->nodes[i].watch_at - t0;
    qsort(at, k, sizeof(*at), cmp_u64);
    double first = (double)(s->first_suspect_at - t0) / 1000.0;
    printf(
        "failure at N=%zu: first suspicion after %.2f s (SWIM: about "
        "1.58 periods + probe timeout = %.2f s)\n",
        n, first, 1.58 + 0.5);
    printf(
        "failure: dead everywhere after %.2f s (first %.2f s, median "
        "%.2f s); suspicion timeout min %.1f s, max %.1f s "
        "(memberlist: 4 x log10(N) x 1 s, 6 x min)\n",
        (double)at[k - 1] / 1000.0, (double)at[0] / 1000.0,
        (double)at[k / 2] / 1000.0, (double)min / 1000.0, (double)max / 1000.0);
    /* Bound: first probe (a couple of periods), the longest suspicion,
     * then a few gossip rounds to spread the death. */
    assert_true(at[k - 1] <= 3000 + max + 5000);
    assert_true(at[0] >= min);
    assert_int_equal(s->false_dead, 0);
    at_free(at);
}

static void test_thousand(void **state)
{
    AT_UNUSED(state);
    struct sim s;
    sim_init(&s, 1000, 1001, 1);
    sim_run(&s, 5000, false);
    assert_int_equal(s.suspects, 0);
    kill_one(&s);
    join_one(&s);
    sim_free(&s);
}

/* (c) 10% packet loss for 300 s: suspicions happen and are refuted, no
 * healthy member is ever declared dead. */
static void test_lossy(void **state)
{
    AT_UNUSED(state);
    struct sim s;
    sim_init(&s, 100, 100, 2);
    s.loss_pct = 10;
    sim_run(&s, 300000, false);
    unsigned max_health = 0;
    for (size_t i = 0; i < s.n; i++) {
        unsigned h = gossip_health(s.nodes[i].g);
        max_health = h > max_health ? h : max_health;
    }
    printf(
        "loss 10%% at N=100 over 300 s: %u suspicion events summed over "
        "all views (about %u suspicions), %u back to alive, %u false "
        "deaths; health score now at most %u\n",
        s.suspects, s.suspects / 99, s.alives, s.false_dead, max_health);
    assert_int_equal(s.false_dead, 0);
    assert_int_equal(s.deads, 0);
    for (size_t i = 0; i < s.n; i++)
        assert_int_equal(gossip_members_live(s.nodes[i].g), 100);
    sim_free(&s);
}

/* (d) A graceful leave shows as left, never dead. */
static void test_leave(void **state)
{
    AT_UNUSED(state);
    struct sim s;
    sim_init(&s, 20, 20, 3);
    sim_run(&s, 3000, false);
    sim_watch(&s, "n3", GOSSIP_EVENT_LEFT);
    gossip_leave(s.nodes[3].g);
    for (int i = 0; i < 1000 && !gossip_leave_done(s.nodes[3].g); i++)
        sim_step(&s);
    assert_true(gossip_leave_done(s.nodes[3].g));
    s.nodes[3].up = false;
    sim_run(&s, 20000, false); /* below reap_ms: still in the tables */
    assert_int_equal(s.watch_seen, 19);
    for (size_t i = 0; i < s.n; i++)
        if (i != 3)
            assert_int_equal(state_at(&s, i, "n3"), GOSSIP_LEFT);
    assert_int_equal(s.deads, 0);
    sim_free(&s);
}

/* (e) A paused member gets suspected, wakes, refutes with a higher
 * incarnation, and is alive again everywhere. */
static void test_refute(void **state)
{
    AT_UNUSED(state);
    struct sim s;
    sim_init(&s, 20, 20, 4);
    sim_run(&s, 3000, false);
    assert_int_equal(s.suspects, 0);
    s.nodes[4].paused_until = s.now + 3500;
    sim_run(&s, 3500, false);
    assert_true(s.suspects > 0);
    sim_run(&s, 20000, false);
    printf(
        "refute: %u suspicion events, %u back to alive, incarnation "
        "%llu\n",
        s.suspects, s.alives,
        (unsigned long long)gossip_incarnation(s.nodes[4].g));
    assert_true(gossip_incarnation(s.nodes[4].g) > 1);
    for (size_t i = 0; i < s.n; i++) {
        struct gossip_member_info info;
        assert_int_equal(gossip_member_get(s.nodes[i].g, "n4", &info), 0);
        assert_int_equal(info.state, GOSSIP_ALIVE);
        assert_int_equal(info.incarnation, gossip_incarnation(s.nodes[4].g));
    }
    assert_int_equal(s.deads, 0);
    sim_free(&s);
}

/* New metadata spreads with an incarnation bump as an update. */
static void test_meta(void **state)
{
    AT_UNUSED(state);
    struct sim s;
    sim_init(&s, 20, 20, 6);
    sim_run(&s, 2000, false);
    sim_watch(&s, "n5", GOSSIP_EVENT_UPDATE);
    struct gossip_meta meta = { .free_bytes = 1 << 30, .load = 7 };
    snprintf(meta.region, sizeof(meta.region), "eu");
    snprintf(meta.role, sizeof(meta.role), "edge");
    gossip_set_meta(s.nodes[5].g, &meta);
    sim_run(&s, 10000, true);
    assert_int_equal(s.watch_seen, 19);
    for (size_t i = 0; i < s.n; i++) {
        struct gossip_member_info info;
        assert_int_equal(gossip_member_get(s.nodes[i].g, "n5", &info), 0);
        assert_string_equal(info.meta.region, "eu");
        assert_int_equal(info.meta.load, 7);
        assert_int_equal(info.incarnation, 2);
    }
    sim_free(&s);
}

/* Lifeguard: a member whose packets all take 700 ms each way (an
 * overloaded host) misses its acks; its health score stretches its own
 * timeouts, so it does not get healthy members declared dead. */
static void test_slow_member(void **state)
{
    AT_UNUSED(state);
    struct sim s;
    sim_init(&s, 30, 30, 7);
    sim_run(&s, 2000, false);
    s.nodes[2].slow_ms = 700;
    unsigned max_health = 0;
    for (int i = 0; i < 60; i++) {
        sim_run(&s, 1000, false);
        unsigned h = gossip_health(s.nodes[2].g);
        max_health = h > max_health ? h : max_health;
    }
    printf(
        "slow member: health score rose to %u (timeouts x%u); %u "
        "suspicion events, %u false deaths\n",
        max_health, max_health + 1, s.suspects, s.false_dead);
    assert_true(max_health > 0);
    assert_int_equal(s.false_dead, 0);
    sim_free(&s);
}

/* A joiner whose seed is down keeps announcing itself until the seed
 * answers; a push-pull exchange then gives it the whole table. */
static void test_join_retry_push_pull(void **state)
{
    AT_UNUSED(state);
    struct sim s;
    sim_init(&s, 20, 21, 8);
    sim_run(&s, 2000, false);
    s.nodes[2].up = false;
    struct node *nd = sim_add(&s, 99);
    sim_watch(&s, "n20", GOSSIP_EVENT_JOIN);
    const char *seeds[] = { "n2" };
    assert_int_equal(gossip_join(nd->g, seeds, 1), 0);
    sim_run(&s, 3000, false);
    assert_int_equal(s.watch_seen, 0);
    s.nodes[2].up = true;
    sim_run(&s, 10000, true);
    assert_int_equal(s.watch_seen, 20);
    /* Push-pull between joiner and seed, as the TCP exchange will do. */
    struct gossip_update ups[64];
    size_t n = gossip_state_export(s.nodes[2].g, ups, 64);
    assert_int_equal(n, 21);
    gossip_merge(nd->g, ups, n, true);
    n = gossip_state_export(nd->g, ups, 64);
    gossip_merge(s.nodes[2].g, ups, n, true);
    assert_int_equal(gossip_members_count(nd->g), 21);
    assert_int_equal(gossip_members_live(nd->g), 21);
    sim_run(&s, 5000, false);
    assert_int_equal(s.deads, 0);
    for (size_t i = 0; i < s.n; i++)
        assert_int_equal(gossip_members_live(s.nodes[i].g), 21);
    sim_free(&s);
}

/* A peer's "dead" is only a suspicion here, and a suspicion the member
 * refutes once it hears of it. */
static void test_merge_dead_is_suspect(void **state)
{
    AT_UNUSED(state);
    struct sim s;
    sim_init(&s, 3, 3, 9);
    struct gossip_update u = { .kind = GOSSIP_UPDATE_DEAD,
                               .incarnation = 1,
                               .name = "n1",
                               .from = "n2" };
    gossip_merge(s.nodes[0].g, &u, 1, true);
    assert_int_equal(state_at(&s, 0, "n1"), GOSSIP_SUSPECT);
    sim_run(&s, 5000, false);
    assert_int_equal(state_at(&s, 0, "n1"), GOSSIP_ALIVE);
    assert_int_equal(gossip_incarnation(s.nodes[1].g), 2);
    assert_int_equal(s.deads, 0);
    sim_free(&s);
}

/* Dead and left members are forgotten reap_ms after, so the table stays
 * the size of the cluster. */
static void test_reap(void **state)
{
    AT_UNUSED(state);
    struct sim s;
    sim_init(&s, 10, 10, 10);
    sim_run(&s, 2000, false);
    gossip_leave(s.nodes[1].g);
    for (int i = 0; i < 1000 && !gossip_leave_done(s.nodes[1].g); i++)
        sim_step(&s);
    s.nodes[1].up = false;
    s.nodes[2].up = false;
    sim_watch(&s, "n2", GOSSIP_EVENT_DEAD);
    sim_run(&s, 60000, true);
    assert_int_equal(s.watch_seen, 8);
    assert_int_equal(gossip_members_count(s.nodes[0].g), 10);
    /* Reaping runs when a probe round ends: up to a round after. */
    sim_run(&s, 45000, false);
    for (size_t i = 3; i < s.n; i++) {
        struct gossip_member_info info;
        assert_int_equal(gossip_members_count(s.nodes[i].g), 8);
        assert_int_equal(gossip_member_get(s.nodes[i].g, "n1", &info),
                         AT_ENOTFOUND);
        assert_int_equal(gossip_members_live(s.nodes[i].g), 8);
    }
    sim_free(&s);
}

/* Random messages (random bytes, then made to pass the validity check
 * half the time): refused or applied, never a crash, and the member
 * table keeps its invariants. */
static void test_random_messages(void **state)
{
    AT_UNUSED(state);
    struct sim s;
    sim_init(&s, 5, 5, 11);
    struct gossip *g = s.nodes[0].g;
    static const char *names[] = { "n1", "n2", "n3", "n4", "n9", "n0" };
    for (int i = 0; i < 20000; i++) {
        struct gossip_msg m;
        unsigned char *b = (unsigned char *)&m;
        for (size_t j = 0; j < sizeof(m); j++)
            b[j] = (unsigned char)rnd(&s);
        if (i % 2 == 0) {
            /* Plausible: small counts and kinds, known names, strings
             * terminated. */
            m.type = (enum gossip_msg_type)(1 + rnd(&s) % 5);
            snprintf(m.from, sizeof(m.from), "%s", names[rnd(&s) % 6]);
            const char *t = names[rnd(&s) % 6];
            snprintf(m.target, sizeof(m.target), "%s", t);
            snprintf(m.target_addr, sizeof(m.target_addr), "%s", t);
            m.n_updates = (uint32_t)(rnd(&s) % (GOSSIP_MSG_UPDATES_MAX + 1));
            for (uint32_t k = 0; k < m.n_updates; k++) {
                struct gossip_update *u = &m.updates[k];
                u->kind = (enum gossip_update_kind)(1 + rnd(&s) % 4);
                u->incarnation = rnd(&s) % 4;
                const char *who = names[rnd(&s) % 6];
                snprintf(u->name, sizeof(u->name), "%s", who);
                snprintf(u->addr, sizeof(u->addr), "%s", who);
                snprintf(u->from, sizeof(u->from), "%s", names[rnd(&s) % 6]);
                memset(&u->meta, 0, sizeof(u->meta));
            }
        }
        int rc = gossip_receive(g, names[rnd(&s) % 6], &m);
        assert_true(rc == 0 || rc == AT_EPROTO);
        assert_true(rc == AT_EPROTO || i % 2 == 0);
        if (i % 50 == 0)
            sim_step(&s);
        assert_true(gossip_members_live(g) <= gossip_members_count(g));
        assert_true(gossip_members_count(g) <= 6);
    }
    sim_free(&s);
}

/* The formulas against memberlist's figures for n = 100. */
static void test_formulas(void **state)
{
    AT_UNUSED(state);
    struct gossip_config d = { 0 };
    assert_int_equal(gossip_suspicion_min_ms(&d, 100), 8000);
    assert_int_equal(gossip_retransmits(&d, 100), 12);
    assert_int_equal(gossip_suspicion_min_ms(&d, 1), 4000);
    assert_int_equal(gossip_suspicion_timeout_ms(8000, 48000, 0, 2), 48000);
    assert_int_equal(gossip_suspicion_timeout_ms(8000, 48000, 2, 2), 8000);
    uint64_t one = gossip_suspicion_timeout_ms(8000, 48000, 1, 2);
    assert_true(one > 8000 && one < 48000);
    assert_int_equal(gossip_suspicion_timeout_ms(8000, 48000, 5, 0), 8000);
}

/* Bad messages are refused before anything is applied. */
static void test_invalid(void **state)
{
    AT_UNUSED(state);
    struct sim s;
    sim_init(&s, 2, 2, 5);
    struct gossip_msg m = { .type = GOSSIP_MSG_PING, .from = "n1" };
    m.n_updates = GOSSIP_MSG_UPDATES_MAX + 1;
    assert_int_equal(gossip_receive(s.nodes[0].g, "n1", &m), AT_EPROTO);
    m.n_updates = 0;
    memset(m.from, 'x', sizeof(m.from));
    assert_int_equal(gossip_receive(s.nodes[0].g, "n1", &m), AT_EPROTO);
    m = (struct gossip_msg){ .type = 99, .from = "n1" };
    assert_int_equal(gossip_receive(s.nodes[0].g, "n1", &m), AT_EPROTO);
    m = (struct gossip_msg){ .type = GOSSIP_MSG_UPDATES, .from = "n1" };
    m.n_updates = 1;
    m.updates[0].kind = GOSSIP_UPDATE_DEAD; /* no name */
    assert_int_equal(gossip_receive(s.nodes[0].g, "n1", &m), AT_EPROTO);
    assert_int_equal(state_at(&s, 0, "n1"), GOSSIP_ALIVE);
    char errmsg[AT_ERRMSG_SIZE];
    struct gossip_config c = { .name = "a", .addr = "a" };
    assert_null(gossip_new(&c, errmsg));
    sim_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formulas),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_leave),
        cmocka_unit_test(test_refute),
        cmocka_unit_test(test_meta),
        cmocka_unit_test(test_slow_member),
        cmocka_unit_test(test_join_retry_push_pull),
        cmocka_unit_test(test_merge_dead_is_suspect),
        cmocka_unit_test(test_reap),
        cmocka_unit_test(test_random_messages),
        cmocka_unit_test(test_lossy),
        cmocka_unit_test(test_thousand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
