/* Unit tests of raft/glue.c: a seeded 3-node simulation on libraft's
 * in-memory fixture, and snapshots a real node encodes in the pool while
 * writes go on. */
#include "common/compat.h"

#include <setjmp.h>
#include <unistd.h>

#include <cmocka.h>
#include <raft/fixture.h>

#include "raft/command.h"
#include "raft/glue.h"
#include "raft/heap.h"
#include "tests/unit/raft/helpers.h"

#define SIM_N     3
#define SIM_STEPS 4000

struct sim_node {
    struct meta_fsm fsm;
    struct meta_fsm_glue glue;
    uint64_t *chain; /* chain[count] = hash after count applies; 0 unknown */
    size_t cap;
};

struct sim_write {
    struct raft_apply req;
    int seq;
    bool is_put;
    struct sim *sim;
};

struct sim {
    struct raft_fixture f;
    struct sim_node nodes[SIM_N];
    uint64_t rng;
    int *acked_puts; /* seq of acknowledged PutManifest */
    size_t nacked;
    unsigned outstanding;
};

static uint64_t rnd(struct sim *s)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return s->rng;
}

static void sim_applied(void *data, const struct meta_fsm *f)
{
    struct sim_node *n = data;
    if (f->applied_count >= n->cap) {
        size_t cap = (f->applied_count + 1) * 2;
        n->chain = at_realloc(n->chain, cap * sizeof(*n->chain));
        memset(n->chain + n->cap, 0, (cap - n->cap) * sizeof(*n->chain));
        n->cap = cap;
    }
    n->chain[f->applied_count] = f->hash;
}

static void sim_on_apply(struct raft_apply *req, int status, void *result)
{
    struct sim_write *w = req->data;
    struct sim *s = w->sim;
    if (status == 0 && w->is_put && (int)(intptr_t)result == META_OK) {
        s->acked_puts =
            at_realloc(s->acked_puts, (s->nacked + 1) * sizeof(int));
        s->acked_puts[s->nacked++] = w->seq;
    }
    s->outstanding--;
    at_free(w);
}

static void sim_propose(struct sim *s, unsigned leader, int seq)
{
    struct raft *r = raft_fixture_get(&s->f, leader);
    char repo[16], content[64], tag[16], rid[32];
    void *buf;
    size_t len;
    char e[AT_ERRMSG_SIZE];
    snprintf(repo, sizeof(repo), "r%d", seq % 2);
    snprintf(tag, sizeof(tag), "t%d", (int)(rnd(s) % 20));
    snprintf(rid, sizeof(rid), "req-%d", seq);
    bool is_put = rnd(s) % 4 != 0;
    struct meta_cmd c = { .kind = META_CMD_DELETE_TAG,
                          .delete_tag = { .repo = repo, .tag = tag } };
    if (is_put) {
        snprintf(content, sizeof(content), "manifest-%d%.*s", seq,
                 (int)(rnd(s) % 9), "........");
        c = manifest_cmd(repo, content, tag);
        c.put_manifest.media_type = "m";
    }
    c.request_id = rid;
    assert_int_equal(meta__cmd_pack(&c, NULL, raft_malloc, &buf, &len, e), 0);
    struct sim_write *w = at_calloc(1, sizeof(*w));
    w->seq = seq;
    w->is_put = is_put;
    w->sim = s;
    w->req.data = w;
    struct raft_buffer b = { buf, len };
    if (raft_apply(r, &w->req, &b, 1, sim_on_apply) != 0) {
        raft_free(buf);
        at_free(w);
        return;
    }
    s->outstanding++;
}

static void sim_run(uint64_t seed)
{
    struct sim *s = at_calloc(1, sizeof(*s));
    struct raft_configuration conf;
    s->rng = seed * 2654435761u + 1;
    assert_int_equal(raft_fixture_initialize(&s->f), 0);
    for (unsigned i = 0; i < SIM_N; i++) {
        struct sim_node *n = &s->nodes[i];
        meta_fsm_init(&n->fsm, 1000);
        meta__glue_init(&n->glue, &n->fsm);
        /* the fixture's io is version 1 (no async_work): snapshots are
         * taken and encoded on the spot, finalize still frees them */
        n->glue.iface.snapshot_async = NULL;
        n->glue.applied = sim_applied;
        n->glue.data = n;
        assert_int_equal(raft_fixture_grow(&s->f, &n->glue.iface), 0);
        n->glue.raft = raft_fixture_get(&s->f, i);
        raft_set_snapshot_threshold(n->glue.raft, 128);
        raft_set_snapshot_trailing(n->glue.raft, 64);
        raft_fixture_set_randomized_election_timeout(
            &s->f, i, 1000 + (unsigned)(rnd(s) % 1000));
    }
    assert_int_equal(raft_fixture_configuration(&s->f, SIM_N, &conf), 0);
    assert_int_equal(raft_fixture_bootstrap(&s->f, &conf), 0);
    raft_configuration_close(&conf);
    assert_int_equal(raft_fixture_start(&s->f), 0);

    int seq = 0;
    for (int step = 0; step < SIM_STEPS; step++) {
        uint64_t x = rnd(s) % 1000;
        unsigned a = (unsigned)(rnd(s) % SIM_N), b = (unsigned)(rnd(s) % SIM_N);
        if (x < 15 && a != b) {
            raft_fixture_saturate(&s->f, a, b);
            raft_fixture_saturate(&s->f, b, a);
        } else if (x < 40 && a != b) {
            raft_fixture_desaturate(&s->f, a, b);
            raft_fixture_desaturate(&s->f, b, a);
        } else if (x < 45) {
            unsigned alive = 0;
            for (unsigned i = 0; i < SIM_N; i++)
                alive += raft_fixture_alive(&s->f, i);
            if (alive == SIM_N && raft_fixture_alive(&s->f, a))
                raft_fixture_kill(&s->f, a);
        } else if (x < 70) {
            if (!raft_fixture_alive(&s->f, a))
                raft_fixture_revive(&s->f, a);
        } else if (x < 400) {
            unsigned l = raft_fixture_leader_index(&s->f);
            if (l < SIM_N &&
                raft_state(raft_fixture_get(&s->f, l)) == RAFT_LEADER)
                sim_propose(s, l, seq++);
        }
        raft_fixture_step(&s->f);
    }

    /* heal, then let everything converge */
    for (unsigned i = 0; i < SIM_N; i++) {
        if (!raft_fixture_alive(&s->f, i))
            raft_fixture_revive(&s->f, i);
        for (unsigned j = 0; j < SIM_N; j++) {
            if (i != j)
                raft_fixture_desaturate(&s->f, i, j);
        }
    }
    assert_true(raft_fixture_step_until_has_leader(&s->f, 30000));
    unsigned l = raft_fixture_leader_index(&s->f);
    sim_propose(s, l, seq++); /* commits everything in the leader's term */
    struct raft *lr = raft_fixture_get(&s->f, l);
    raft_index last = raft_last_index(lr);
    assert_true(raft_fixture_step_until_applied(&s->f, SIM_N, last, 30000));

    /* same sequence everywhere: equal final hash, equal chain prefixes */
    for (unsigned i = 1; i < SIM_N; i++) {
        assert_int_equal(s->nodes[i].fsm.hash, s->nodes[0].fsm.hash);
        assert_int_equal(s->nodes[i].fsm.applied_count,
                         s->nodes[0].fsm.applied_count);
    }
    for (unsigned i = 1; i < SIM_N; i++) {
        struct sim_node *p = &s->nodes[0], *q = &s->nodes[i];
        size_t n = AT_MIN(p->cap, q->cap);
        for (size_t k = 0; k < n; k++) {
            if (p->chain[k] != 0 && q->chain[k] != 0)
                assert_int_equal(p->chain[k], q->chain[k]);
        }
    }
    /* every acknowledged manifest is present on every node */
    for (size_t k = 0; k < s->nacked; k++) {
        char repo[16], prefix[32];
        snprintf(repo, sizeof(repo), "r%d", s->acked_puts[k] % 2);
        snprintf(prefix, sizeof(prefix), "manifest-%d", s->acked_puts[k]);
        bool found = false;
        for (int pad = 0; pad < 9 && !found; pad++) {
            char content[64];
            snprintf(content, sizeof(content), "%s%.*s", prefix, pad,
                     "........");
            struct at_digest d = dg(content);
            found = meta_fsm_manifest_find(&s->nodes[0].fsm, repo, &d) != NULL;
            for (unsigned i = 1; found && i < SIM_N; i++)
                assert_non_null(
                    meta_fsm_manifest_find(&s->nodes[i].fsm, repo, &d));
        }
        assert_true(found);
    }
    print_message("# seed %" PRIu64 ": %d proposed, %zu puts acked, %" PRIu64
                  " applied\n",
                  seed, seq, s->nacked, s->nodes[0].fsm.applied_count);
    assert_true(s->nacked > 0);

    raft_fixture_close(&s->f);
    for (unsigned i = 0; i < SIM_N; i++) {
        meta_fsm_release(&s->nodes[i].fsm);
        at_free(s->nodes[i].chain);
    }
    at_free(s->acked_puts);
    at_free(s);
}

static void test_simulation(void **state)
{
    AT_UNUSED(state);
    const char *env = getenv("META_SIM_SEEDS");
    unsigned long seeds = env != NULL ? strtoul(env, NULL, 10) : 20;
    for (uint64_t seed = 1; seed <= seeds; seed++)
        sim_run(seed);
}

static const char *glue_dir;
static bool glue_snapshot_on_disk(struct node_ctx *c)
{
    AT_UNUSED(c);
    return has_snapshot(glue_dir);
}

/* Snapshots taken by a real node while writes stream in (every write is
 * pipelined, the threshold is tiny, so applies run during the pool's
 * encode) restore to exactly the state that was acknowledged. */
static void test_snapshot_during_writes(void **state)
{
    struct node_ctx *c = node_ctx_new();
    AT_UNUSED(state);
    char dir[300];
    snprintf(dir, sizeof(dir), "%s/raft", c->tmp);

    node_open(c, dir, 16);
    for (int round = 0; round < 4; round++)
        node_write_batch(c, round * 250, 250);
    assert_int_equal(c->acked, 1000);
    /* deletes while snapshots run too */
    want_acks = c->acked + c->failed + 50;
    for (int i = 1; i < 100; i += 2) {
        char tag[32];
        snprintf(tag, sizeof(tag), "tag%03d", i);
        struct meta_cmd dt = { .kind = META_CMD_DELETE_TAG,
                               .delete_tag = { .repo = "repo1", .tag = tag } };
        assert_int_equal(meta_propose(c->m, &dt, on_write, c), 0);
    }
    run_until(c, acks_done);
    snapshot_state(c, c->before, STATE_SIZE);
    struct meta_status st;
    meta_status_get(c->m, &st);
    /* the child runs at nice 10: on a busy machine the last snapshot may
     * still be on its way */
    glue_dir = dir;
    run_until(c, glue_snapshot_on_disk);
    node_close(c);
    assert_true(has_snapshot(dir));

    node_reopen_same(c, dir, 16);
    struct meta_status st2;
    meta_status_get(c->m, &st2);
    assert_int_equal(st.tags, st2.tags);
    assert_int_equal(st.repos, st2.repos);
    node_close(c);

    node_ctx_free(c);
}

/* libraft's heap (raft/heap.h): a big block goes back off the loop, a
 * small one at once; both are freed (ASan's leak check would say). */
static void test_heap_big_frees_off_loop(void **state)
{
    AT_UNUSED(state);
    meta__heap_install();
    meta__heap_install(); /* idempotent */
    unsigned long before = meta__heap_big_frees();
    void *small = raft_malloc(4096);
    void *big = raft_malloc(META_HEAP_FREE_OFF_LOOP_MIN);
    assert_non_null(small);
    assert_non_null(big);
    memset(big, 1, 4096);
    raft_free(small);
    assert_int_equal(meta__heap_big_frees(), before);
    raft_free(big);
    assert_int_equal(meta__heap_big_frees(), before + 1);
    raft_free(NULL);
    usleep(100 * 1000); /* the detached thread's free, before exit */
}

int main(void)
{
    at_log_configure(getenv("META_LOG") ? getenv("META_LOG") : "error");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heap_big_frees_off_loop),
        cmocka_unit_test(test_snapshot_during_writes),
        cmocka_unit_test(test_simulation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
