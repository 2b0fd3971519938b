/* Unit tests of raft/gc.c: blob and untagged manifest candidates, the
 * GcSweep apply, and GC state across snapshots. */
#include "common/compat.h"

#include <setjmp.h>

#include <cmocka.h>

#include "raft/command.h"
#include "raft/gc.h"
#include "raft/snapshot.h"
#include "tests/unit/raft/helpers.h"

static uint64_t fake_now;

static uint64_t fake_clock(void)
{
    return fake_now;
}

/* Each test builds its commands at the moments it sets in fake_now. */
static int clock_fake(void **state)
{
    AT_UNUSED(state);
    meta__cmd_clock = fake_clock;
    return 0;
}

static int clock_real(void **state)
{
    AT_UNUSED(state);
    meta__cmd_clock = at_wall_ms;
    return 0;
}

static int gc_sweep(struct meta_fsm *f,
                    const char *rid,
                    uint64_t now,
                    uint64_t grace,
                    const char **blobs,
                    size_t n)
{
    struct at_digest d[16];
    for (size_t i = 0; i < n; i++)
        d[i] = dg(blobs[i]);
    struct meta_cmd c = { .kind = META_CMD_GC_SWEEP,
                          .gc_sweep = { .now_ms = now,
                                        .grace_ms = grace,
                                        .digests = d,
                                        .ndigests = n } };
    return apply_cmd(f, rid, &c);
}

struct gc_list {
    struct at_digest d[32];
    uint64_t size[32];
    size_t n;
};

static void gc_collect(void *data, const struct at_digest *d, uint64_t size)
{
    struct gc_list *l = data;
    assert_true(l->n < 32);
    l->d[l->n] = *d;
    l->size[l->n++] = size;
}

static bool gc_has(const struct gc_list *l, const char *blob)
{
    struct at_digest d = dg(blob);
    for (size_t i = 0; i < l->n; i++) {
        if (at_digest_equal(&l->d[i], &d))
            return true;
    }
    return false;
}

/* The history of test_gc_sweep, part 1: a, b, c in r (a and b in
 * manifest m1), c in s too, at 1000; "young" at 5000. */
static void gc_stored(struct meta_fsm *f)
{
    fake_now = 1000;
    blob_stored(f, "g1", "r", "a", 10);
    blob_stored(f, "g2", "r", "b", 20);
    blob_stored(f, "g3", "r", "c", 30);
    blob_stored(f, "g4", "s", "c", 30); /* s only links c */
    const char *ab[] = { "a", "b" };
    assert_int_equal(put_mf(f, "g5", "r", "m1", "v1", ab, 2, NULL, 0, NULL),
                     META_OK);
    fake_now = 5000;
    blob_stored(f, "g6", "r", "young", 40);
}

/* Part 2, after m1's delete: m2 links a, then a sweep of all. */
static void gc_swept(struct meta_fsm *f)
{
    /* a manifest applied before the sweep keeps its blob */
    const char *a[] = { "a" };
    assert_int_equal(put_mf(f, "g8", "r", "m2", NULL, a, 1, NULL, 0, NULL),
                     META_OK);
    const char *all[] = { "a", "b", "c", "young", "nope", "b" };
    assert_int_equal(gc_sweep(f, "g9", 6000, 2000, all, 6), META_OK);
}

/* The history of test_gc_sweep, replayable on several FSMs. */
static void gc_history(struct meta_fsm *f)
{
    gc_stored(f);
    assert_int_equal(del_mf(f, "g7", "r", "m1"), META_OK);
    gc_swept(f);
}

/* test_gc_sweep, continued: the same history gives the same state, and
 * batches are bounded. */
static void gc_sweep_replay(void)
{
    struct meta_fsm f, g;
    struct at_digest da = dg("a");
    /* deterministic on replay: same history, same state and hash */
    meta_fsm_init(&f, 100);
    meta_fsm_init(&g, 100);
    next_index = 1;
    gc_history(&f);
    next_index = 1;
    gc_history(&g);
    assert_int_equal(f.hash, g.hash);
    void *b1, *b2;
    size_t l1, l2;
    char e[AT_ERRMSG_SIZE];
    assert_int_equal(meta_fsm_snapshot(&f, NULL, &b1, &l1, e), 0);
    assert_int_equal(meta_fsm_snapshot(&g, NULL, &b2, &l2, e), 0);
    assert_int_equal(l1, l2);
    assert_memory_equal(b1, b2, l1);
    free(b1);
    free(b2);
    assert_int_equal(f.blobs.len, 2); /* a, young */

    /* oversized batches are refused by the builder and by unpack */
    void *buf;
    size_t len;
    struct meta_cmd big = { .kind = META_CMD_GC_SWEEP,
                            .request_id = "x",
                            .gc_sweep = { .now_ms = 1,
                                          .grace_ms = 1,
                                          .digests = &da,
                                          .ndigests =
                                              PROTO_GC_BATCH_MAX + 1 } };
    assert_int_equal(meta__cmd_pack(&big, NULL, NULL, &buf, &len, e),
                     AT_EINVAL);
    meta_fsm_release(&f);
    meta_fsm_release(&g);
}

static void test_gc_sweep(void **state)
{
    struct meta_fsm f;
    struct gc_list l;
    struct names ns;
    AT_UNUSED(state);
    meta_fsm_init(&f, 100);

    gc_stored(&f);
    /* referenced blobs and young blobs are no candidates */
    memset(&l, 0, sizeof(l));
    meta_fsm_gc_candidates(&f, 6000, 2000, gc_collect, &l);
    assert_int_equal(l.n, 1);
    assert_true(gc_has(&l, "c"));
    assert_int_equal(l.size[0], 30);
    memset(&l, 0, sizeof(l));
    meta_fsm_gc_candidates(&f, 6000, 0, gc_collect, &l);
    assert_int_equal(l.n, 2);
    assert_true(gc_has(&l, "young"));
    /* the clock never goes backwards for a blob: now < stored keeps it */
    memset(&l, 0, sizeof(l));
    meta_fsm_gc_candidates(&f, 10, 0, gc_collect, &l);
    assert_int_equal(l.n, 0);

    assert_int_equal(del_mf(&f, "g7", "r", "m1"), META_OK);
    memset(&l, 0, sizeof(l));
    meta_fsm_gc_candidates(&f, 6000, 2000, gc_collect, &l);
    assert_int_equal(l.n, 3);
    assert_true(gc_has(&l, "a") && gc_has(&l, "b") && gc_has(&l, "c"));
    gc_swept(&f);
    struct at_digest da = dg("a"), db = dg("b"), dc = dg("c"), dy = dg("young");
    assert_true(meta_fsm_blob_known(&f, &da, NULL));
    assert_true(meta_fsm_blob_linked(&f, "r", &da, NULL));
    assert_false(meta_fsm_blob_known(&f, &db, NULL));
    assert_false(meta_fsm_blob_linked(&f, "r", &db, NULL));
    assert_false(meta_fsm_blob_known(&f, &dc, NULL));
    assert_true(meta_fsm_blob_known(&f, &dy, NULL));
    assert_int_equal(f.blobs.len, 2);
    assert_int_equal(f.gc_deleted_total, 2);
    /* s held only c: the repository is gone */
    assert_false(meta_fsm_repo_exists(&f, "s"));
    assert_string_equal(catalog_of(&f, &ns), "r");
    /* the node's deletion queue, in command order, then empty */
    struct meta_gc_removed *rm = NULL;
    assert_int_equal(meta_fsm_gc_take_removed(&f, &rm), 2);
    assert_true(at_digest_equal(&rm[0].digest, &db));
    assert_true(at_digest_equal(&rm[1].digest, &dc));
    assert_int_equal(rm[0].cutoff_ms, 1000); /* stored at 1000 */
    assert_int_equal(rm[1].cutoff_ms, 1000);
    at_free(rm);
    assert_int_equal(meta_fsm_gc_take_removed(&f, &rm), 0);
    at_free(rm);
    /* a manifest after the sweep: the blob must be pushed again */
    const char *c[] = { "c" };
    assert_int_equal(put_mf(&f, "g10", "r", "m3", NULL, c, 1, NULL, 0, NULL),
                     META_BLOB_UNKNOWN);
    fake_now = 7000;
    blob_stored(&f, "g11", "r", "c", 30);
    assert_int_equal(put_mf(&f, "g12", "r", "m3", NULL, c, 1, NULL, 0, NULL),
                     META_OK);
    /* a retried sweep (same request id) does not apply again */
    const char *y[] = { "young" };
    assert_int_equal(gc_sweep(&f, "g9", 9000, 0, y, 1), META_OK);
    assert_true(meta_fsm_blob_known(&f, &dy, NULL));
    /* a mount refreshes the age */
    fake_now = 8000;
    assert_int_equal(mount_blob(&f, "g13", "t", "r", "young"), META_OK);
    assert_int_equal(gc_sweep(&f, "g14", 9000, 2000, y, 1), META_OK);
    assert_true(meta_fsm_blob_known(&f, &dy, NULL));
    assert_int_equal(gc_sweep(&f, "g15", 10000, 2000, y, 1), META_OK);
    assert_false(meta_fsm_blob_known(&f, &dy, NULL));
    assert_false(meta_fsm_repo_exists(&f, "t"));

    meta_fsm_release(&f);
    gc_sweep_replay();
}

/* g (not initialised yet) restored from s, a snapshot written by hand as
 * an older node would, whose one repository "r" is sr. */
static void restore_written(struct meta_fsm *g,
                            Atoll__Snapshot *s,
                            Atoll__SnapRepo *sr)
{
    char e[AT_ERRMSG_SIZE];
    void *buf;
    size_t len;
    s->version = PROTO_SNAPSHOT_VERSION;
    sr->name = (char *)"r";
    s->n_repos = 1;
    s->repos = &sr;
    assert_int_equal(proto_snapshot_pack(s, NULL, &buf, &len, e), 0);
    s->repos = NULL;
    meta_fsm_init(g, 100);
    assert_int_equal(meta_fsm_restore(g, buf, len, e), 0);
    free(buf);
}

static void test_gc_snapshot(void **state)
{
    struct meta_fsm f, g;
    struct gc_list l;
    char e[AT_ERRMSG_SIZE];
    void *buf;
    size_t len;
    AT_UNUSED(state);
    meta_fsm_init(&f, 100);
    fake_now = 1000;
    blob_stored(&f, "s1", "r", "old", 1);
    blob_stored(&f, "s2", "r", "used", 2);
    const char *u[] = { "used" };
    assert_int_equal(put_mf(&f, "s3", "r", "m", "t", u, 1, NULL, 0, NULL),
                     META_OK);
    fake_now = 9000;
    blob_stored(&f, "s4", "r", "new", 3);
    assert_int_equal(meta_fsm_snapshot(&f, NULL, &buf, &len, e), 0);

    /* stored times and manifest references survive the round trip */
    meta_fsm_init(&g, 100);
    blob_stored(&g, "x1", "q", "gone", 1); /* replaced by the restore */
    assert_false(g.gc_scan_wanted);
    assert_int_equal(meta_fsm_restore(&g, buf, len, e), 0);
    free(buf);
    assert_true(g.gc_scan_wanted); /* the node scans its store later */
    memset(&l, 0, sizeof(l));
    meta_fsm_gc_candidates(&g, 10000, 2000, gc_collect, &l);
    assert_int_equal(l.n, 1);
    assert_true(gc_has(&l, "old"));
    /* the install dropped a record this node had: its copy goes */
    struct meta_gc_removed *rm = NULL;
    struct at_digest gone = dg("gone");
    assert_int_equal(meta_fsm_gc_take_removed(&g, &rm), 1);
    assert_true(at_digest_equal(&rm[0].digest, &gone));
    assert_int_equal(rm[0].cutoff_ms, 9000); /* its stored_ms */
    at_free(rm);
    meta_fsm_release(&g);

    /* a snapshot written before stored_ms existed: 0 = old enough */
    Atoll__Snapshot s = ATOLL__SNAPSHOT__INIT;
    Atoll__SnapBlob sb = ATOLL__SNAP_BLOB__INIT;
    Atoll__SnapRepo sr = ATOLL__SNAP_REPO__INIT;
    Atoll__SnapBlob *sbp = &sb;
    struct at_digest od = dg("old");
    char *stores[] = { (char *)"store1" };
    ProtobufCBinaryData dig = { AT_DIGEST_LEN, od.bytes };
    sb.digest = dig;
    sb.size = 5;
    sb.n_stores = 1;
    sb.stores = stores;
    sr.n_blobs = 1;
    sr.blobs = &dig;
    s.n_blobs = 1;
    s.blobs = &sbp;
    restore_written(&g, &s, &sr);
    memset(&l, 0, sizeof(l));
    meta_fsm_gc_candidates(&g, 3600000, 3600000, gc_collect, &l);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.size[0], 5);
    meta_fsm_release(&g);
    meta_fsm_release(&f);
}

/* ---- garbage collection of untagged manifests ---- */

struct mf_list {
    struct meta_gc_manifest m[32];
    char repo[32][16];
    size_t n;
};

static void mf_collect(void *data, const char *repo, const struct at_digest *d)
{
    struct mf_list *l = data;
    assert_true(l->n < 32);
    assert_true(strlen(repo) < sizeof(l->repo[0]));
    memcpy(l->repo[l->n], repo, strlen(repo) + 1);
    l->m[l->n].repo = l->repo[l->n];
    l->m[l->n++].digest = *d;
}

/* Position of content in l, or -1. */
static int mf_pos(const struct mf_list *l, const char *content)
{
    struct at_digest d = dg(content);
    for (size_t i = 0; i < l->n; i++) {
        if (at_digest_equal(&l->m[i].digest, &d))
            return (int)i;
    }
    return -1;
}

static void mf_add(struct mf_list *l, const char *repo, const char *content)
{
    assert_true(l->n < 32);
    memcpy(l->repo[l->n], repo, strlen(repo) + 1);
    l->m[l->n].repo = l->repo[l->n];
    l->m[l->n++].digest = dg(content);
}

static int gc_sweep_mf(struct meta_fsm *f,
                       const char *rid,
                       uint64_t now,
                       uint64_t grace,
                       const struct mf_list *l)
{
    struct meta_cmd c = { .kind = META_CMD_GC_SWEEP,
                          .gc_sweep = { .now_ms = now,
                                        .grace_ms = grace,
                                        .manifests = l->m,
                                        .nmanifests = l->n } };
    return apply_cmd(f, rid, &c);
}

static bool mf_in(struct meta_fsm *f, const char *repo, const char *content)
{
    struct at_digest d = dg(content);
    return meta_fsm_manifest_find(f, repo, &d) != NULL;
}

/* Repository u at 1000: tagged, untagged ("old"), a tagged index of c1 and
 * c2, an untagged index of c3, an untagged subject with a referrer, an
 * orphan referrer, "racer" (tagged later); "young" and "repushed" at 5000. */
static void untagged_history(struct meta_fsm *f)
{
    fake_now = 1000;
    blob_stored(f, "u1", "u", "cfg", 1);
    blob_stored(f, "u2", "u", "l1", 10);
    blob_stored(f, "u3", "u", "l2", 20);
    const char *b1[] = { "cfg", "l1" }, *b2[] = { "cfg", "l2" };
    const char *cfg[] = { "cfg" };
    assert_int_equal(put_mf(f, "u4", "u", "tagged", "v1", b1, 2, NULL, 0, NULL),
                     META_OK);
    assert_int_equal(put_mf(f, "u5", "u", "old", NULL, b2, 2, NULL, 0, NULL),
                     META_OK);
    assert_int_equal(put_mf(f, "u6", "u", "c1", NULL, cfg, 1, NULL, 0, NULL),
                     META_OK);
    assert_int_equal(put_mf(f, "u7", "u", "c2", NULL, cfg, 1, NULL, 0, NULL),
                     META_OK);
    assert_int_equal(put_mf(f, "u8", "u", "c3", NULL, cfg, 1, NULL, 0, NULL),
                     META_OK);
    const char *c12[] = { "c1", "c2" }, *c3[] = { "c3" };
    assert_int_equal(
        put_mf(f, "u9", "u", "idx", "multi", NULL, 0, c12, 2, NULL), META_OK);
    assert_int_equal(put_mf(f, "u10", "u", "idx2", NULL, NULL, 0, c3, 1, NULL),
                     META_OK);
    assert_int_equal(put_mf(f, "u11", "u", "subj", NULL, cfg, 1, NULL, 0, NULL),
                     META_OK);
    assert_int_equal(
        put_mf(f, "u12", "u", "sig1", NULL, cfg, 1, NULL, 0, "subj"), META_OK);
    assert_int_equal(
        put_mf(f, "u13", "u", "sig2", NULL, cfg, 1, NULL, 0, "missing"),
        META_OK);
    assert_int_equal(
        put_mf(f, "u14", "u", "racer", NULL, cfg, 1, NULL, 0, NULL), META_OK);
    assert_int_equal(
        put_mf(f, "u15", "u", "repushed", NULL, cfg, 1, NULL, 0, NULL),
        META_OK);
    fake_now = 5000;
    assert_int_equal(
        put_mf(f, "u16", "u", "young", NULL, cfg, 1, NULL, 0, NULL), META_OK);
    /* a re-push (here in another repository) refreshes the age */
    blob_stored(f, "u17", "w", "cfg", 1);
    assert_int_equal(
        put_mf(f, "u18", "w", "repushed", NULL, cfg, 1, NULL, 0, NULL),
        META_OK);
}

static void test_gc_untagged(void **state)
{
    struct meta_fsm f;
    struct mf_list l;
    struct gc_list bl;
    AT_UNUSED(state);
    meta_fsm_init(&f, 100);
    untagged_history(&f);

    memset(&l, 0, sizeof(l));
    meta_fsm_gc_manifest_candidates(&f, 6000, 2000, 100, mf_collect, &l);
    assert_int_equal(l.n, 5);
    assert_true(mf_pos(&l, "old") >= 0);
    assert_true(mf_pos(&l, "idx2") >= 0);
    assert_true(mf_pos(&l, "sig2") >= 0); /* its subject is not there */
    assert_true(mf_pos(&l, "racer") >= 0);
    assert_true(mf_pos(&l, "c3") > mf_pos(&l, "idx2")); /* next round */
    assert_string_equal(l.m[0].repo, "u");
    /* bounded */
    struct mf_list two;
    memset(&two, 0, sizeof(two));
    meta_fsm_gc_manifest_candidates(&f, 6000, 2000, 2, mf_collect, &two);
    assert_int_equal(two.n, 2);
    /* grace 0: the young one too; "repushed" is young in u as well */
    memset(&two, 0, sizeof(two));
    meta_fsm_gc_manifest_candidates(&f, 6000, 0, 100, mf_collect, &two);
    assert_int_equal(two.n, 8); /* + young, repushed (u and w) */

    /* between proposal and apply: a tag lands on racer (clock of that
     * push no later than the first one, so only the tag keeps it) */
    fake_now = 1000;
    const char *cfg[] = { "cfg" };
    assert_int_equal(
        put_mf(&f, "u19", "u", "racer", "late", cfg, 1, NULL, 0, NULL),
        META_OK);
    /* the command also lists manifests that must be kept */
    mf_add(&l, "u", "tagged");
    mf_add(&l, "u", "c1");
    mf_add(&l, "u", "idx");
    mf_add(&l, "u", "subj");
    mf_add(&l, "u", "sig1");
    mf_add(&l, "u", "young");
    mf_add(&l, "u", "repushed");
    mf_add(&l, "u", "nope");
    mf_add(&l, "nowhere", "old");
    assert_int_equal(gc_sweep_mf(&f, "u20", 6000, 2000, &l), META_OK);
    assert_false(mf_in(&f, "u", "old"));
    assert_false(mf_in(&f, "u", "idx2"));
    assert_false(mf_in(&f, "u", "c3"));
    assert_false(mf_in(&f, "u", "sig2"));
    const char *kept[] = { "tagged", "c1",    "c2",    "idx",     "subj",
                           "sig1",   "racer", "young", "repushed" };
    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
        assert_true(mf_in(&f, "u", kept[i]));
    assert_true(mf_in(&f, "w", "repushed"));
    assert_int_equal(f.gc_mf_deleted, 4);
    /* old's unique layer is garbage now, the shared config is not */
    memset(&bl, 0, sizeof(bl));
    meta_fsm_gc_candidates(&f, 6000, 2000, gc_collect, &bl);
    assert_int_equal(bl.n, 1);
    assert_true(gc_has(&bl, "l2"));
    /* nothing left to collect at that age */
    memset(&two, 0, sizeof(two));
    meta_fsm_gc_manifest_candidates(&f, 6000, 2000, 100, mf_collect, &two);
    assert_int_equal(two.n, 0);

    /* a referrer whose subject goes is collectable; the order inside a
     * command decides: a child listed before its index stays */
    assert_int_equal(del_mf(&f, "u21", "u", "subj"), META_OK);
    memset(&two, 0, sizeof(two));
    mf_add(&two, "u", "sig1");
    assert_int_equal(gc_sweep_mf(&f, "u22", 6000, 2000, &two), META_OK);
    assert_false(mf_in(&f, "u", "sig1"));
    assert_int_equal(del_tag(&f, "u23", "u", "multi"), META_OK);
    memset(&two, 0, sizeof(two));
    mf_add(&two, "u", "c1");
    mf_add(&two, "u", "idx");
    assert_int_equal(gc_sweep_mf(&f, "u24", 6000, 2000, &two), META_OK);
    assert_true(mf_in(&f, "u", "c1"));
    assert_false(mf_in(&f, "u", "idx"));
    /* oversized batches are refused by the builder */
    void *buf;
    size_t len;
    char e[AT_ERRMSG_SIZE];
    struct meta_cmd big = { .kind = META_CMD_GC_SWEEP,
                            .request_id = "x",
                            .gc_sweep = { .now_ms = 1,
                                          .grace_ms = 1,
                                          .manifests = two.m,
                                          .nmanifests =
                                              PROTO_GC_BATCH_MAX + 1 } };
    assert_int_equal(meta__cmd_pack(&big, NULL, NULL, &buf, &len, e),
                     AT_EINVAL);
    meta_fsm_release(&f);
}

static void test_gc_untagged_snapshot(void **state)
{
    struct meta_fsm f, g;
    struct mf_list l;
    AT_UNUSED(state);
    meta_fsm_init(&f, 100);
    untagged_history(&f);
    fsm_copy(&f, &g, 100);
    /* pushed_ms survived: young is still young */
    memset(&l, 0, sizeof(l));
    meta_fsm_gc_manifest_candidates(&g, 6000, 2000, 100, mf_collect, &l);
    assert_int_equal(l.n, 5);
    assert_int_equal(mf_pos(&l, "young"), -1);
    struct at_digest y = dg("young");
    const struct meta_manifest *pub = meta_fsm_manifest_find(&g, "u", &y);
    assert_non_null(pub);
    assert_int_equal(((const struct meta_mf *)(const void *)pub)->pushed_ms,
                     5000);
    meta_fsm_release(&g);
    meta_fsm_release(&f);

    /* a snapshot written before pushed_ms existed: 0 = old enough */
    Atoll__Snapshot s = ATOLL__SNAPSHOT__INIT;
    Atoll__SnapManifest sm = ATOLL__SNAP_MANIFEST__INIT;
    Atoll__SnapRepo sr = ATOLL__SNAP_REPO__INIT;
    Atoll__SnapManifest *smp = &sm;
    struct at_digest md = dg("{}");
    ProtobufCBinaryData dig = { AT_DIGEST_LEN, md.bytes };
    sm.digest = dig;
    sm.media_type = (char *)"application/vnd.oci.image.manifest.v1+json";
    sm.bytes.data = (uint8_t *)"{}";
    sm.bytes.len = 2;
    sr.n_manifests = 1;
    sr.manifests = &dig;
    s.n_manifests = 1;
    s.manifests = &smp;
    restore_written(&g, &s, &sr);
    memset(&l, 0, sizeof(l));
    meta_fsm_gc_manifest_candidates(&g, 3600000, 3600000, 100, mf_collect, &l);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.m[0].repo, "r");
    assert_true(at_digest_equal(&l.m[0].digest, &md));
    meta_fsm_release(&g);
}

int main(void)
{
    at_log_configure(getenv("META_LOG") ? getenv("META_LOG") : "error");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gc_sweep),
        cmocka_unit_test(test_gc_snapshot),
        cmocka_unit_test(test_gc_untagged),
        cmocka_unit_test(test_gc_untagged_snapshot),
    };
    return cmocka_run_group_tests(tests, clock_fake, clock_real);
}
