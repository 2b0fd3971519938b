/* The walk over referenced blobs (meta_referenced_blobs_step), which the
 * leader's min_copies scan takes a bounded piece per loop turn: every
 * blob some manifest references is met once per repository linking it,
 * unreferenced blobs never, and no step visits more than its budget,
 * also with writes between the steps. */
#include "common/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "raft/meta.h"
#include "tests/unit/raft/fixture.h"
#include "tests/unit/raft/helpers.h"

#define NREPOS 40

struct seen {
    unsigned calls;
    unsigned hits[NREPOS][4]; /* by repo and blob number */
    unsigned other;
};

static void each(void *data,
                 const char *repo,
                 const struct at_digest *d,
                 uint64_t size)
{
    struct seen *s = data;
    int r;
    s->calls++;
    assert_int_equal(sscanf(repo, "walk%d", &r), 1);
    for (int b = 0; b < 4; b++) {
        char name[32];
        snprintf(name, sizeof(name), "w%d-b%d", r, b);
        struct at_digest want = dg(name);
        if (memcmp(&want, d, sizeof(want)) == 0) {
            assert_int_equal(size, (uint64_t)(100 + b));
            s->hits[r][b]++;
            return;
        }
    }
    s->other++;
}

/* Each repo: 4 blobs stored, 2 manifests referencing blobs 0-2 (blob 3
 * only linked). */
static void fill(struct node_ctx *c, int from, int to)
{
    want_acks = c->acked + c->failed + (unsigned)(to - from) * 6;
    for (int r = from; r < to; r++) {
        char repo[32], name[32], content[64];
        snprintf(repo, sizeof(repo), "walk%d", r);
        struct at_digest blobs[4];
        for (int b = 0; b < 4; b++) {
            snprintf(name, sizeof(name), "w%d-b%d", r, b);
            blobs[b] = dg(name);
            struct meta_cmd bs = { .kind = META_CMD_BLOB_STORED,
                                   .blob_stored = { .repo = repo,
                                                    .digest = blobs[b],
                                                    .size = 100u + b } };
            assert_int_equal(meta_propose(c->m, &bs, on_write, c), 0);
        }
        for (int k = 0; k < 2; k++) {
            snprintf(content, sizeof(content), "{\"walk\":%d,\"k\":%d}", r, k);
            struct meta_cmd pm = manifest_cmd(repo, content, k ? "b" : "a");
            pm.put_manifest.blobs = blobs + k;
            pm.put_manifest.nblobs = 2; /* k=0: 0,1; k=1: 1,2 */
            assert_int_equal(meta_propose(c->m, &pm, on_write, c), 0);
        }
    }
    run_until(c, acks_done);
    assert_int_equal(c->failed, 0);
}

static unsigned walk(struct node_ctx *c, size_t budget, struct seen *s)
{
    struct meta_blob_walk w = { 0, 0 };
    unsigned steps = 0;
    for (;;) {
        unsigned before = s->calls;
        bool done = meta_referenced_blobs_step(c->m, &w, budget, each, s);
        assert_true(s->calls - before <= budget);
        steps++;
        if (done)
            break;
        assert_true(steps < 100000);
    }
    assert_int_equal(w.repo, 0); /* ready for the next walk */
    assert_int_equal(w.link, 0);
    return steps;
}

static void test_walk_pieces(void **state)
{
    AT_UNUSED(state);
    struct node_ctx *c = node_ctx_new();
    char dir[300];
    snprintf(dir, sizeof(dir), "%s/raft", c->tmp);
    node_open(c, dir, 100000);
    fill(c, 0, NREPOS);

    static const size_t budgets[] = { 1, 3, 7, SIZE_MAX };
    for (size_t i = 0; i < AT_ARRAY_SIZE(budgets); i++) {
        struct seen s;
        memset(&s, 0, sizeof(s));
        unsigned steps = walk(c, budgets[i], &s);
        for (int r = 0; r < NREPOS; r++) {
            assert_int_equal(s.hits[r][0], 1);
            assert_int_equal(s.hits[r][1], 1);
            assert_int_equal(s.hits[r][2], 1);
            assert_int_equal(s.hits[r][3], 0); /* linked, not referenced */
        }
        assert_int_equal(s.other, 0);
        if (budgets[i] == 1) /* a step per link, and per repository */
            assert_true(steps >= NREPOS * 4);
        if (budgets[i] == SIZE_MAX)
            assert_int_equal(steps, 1);
    }

    /* writes between the steps: nothing breaks, and the next walk meets
     * everything */
    struct meta_blob_walk w = { 0, 0 };
    struct seen s;
    memset(&s, 0, sizeof(s));
    for (int k = 0; k < 20; k++)
        meta_referenced_blobs_step(c->m, &w, 5, each, &s);
    fill(c, NREPOS / 2, NREPOS); /* the same repos again: no-ops */
    struct meta_cmd del = { .kind = META_CMD_DELETE_TAG,
                            .delete_tag = { .repo = "walk3", .tag = "a" } };
    want_acks = c->acked + c->failed + 1;
    assert_int_equal(meta_propose(c->m, &del, on_write, c), 0);
    run_until(c, acks_done);
    while (!meta_referenced_blobs_step(c->m, &w, 5, each, &s))
        ;
    memset(&s, 0, sizeof(s));
    walk(c, 2, &s);
    assert_int_equal(s.hits[7][0], 1);
    assert_int_equal(s.other, 0);
    node_close(c);
    node_ctx_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_walk_pieces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
