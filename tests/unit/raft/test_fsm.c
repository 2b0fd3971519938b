/* Unit tests of raft/fsm.c: the rules apply enforces, request ids
 * deduplicated, garbage commands as no-ops. */
#include "common/compat.h"

#include <setjmp.h>

#include <cmocka.h>

#include "raft/events.h"
#include "tests/unit/raft/helpers.h"

static void test_put_manifest_rules(void **state)
{
    struct meta_fsm f;
    struct names ns;
    AT_UNUSED(state);
    meta_fsm_init(&f, 100);
    const char *layers[] = { "cfg", "layer1" };

    /* blobs must be linked in the repo */
    assert_int_equal(
        put_mf(&f, "r1", "a", "m1", "v1", layers, 2, NULL, 0, NULL),
        META_BLOB_UNKNOWN);
    assert_false(meta_fsm_repo_exists(&f, "a"));
    assert_int_equal(blob_stored(&f, "r2", "a", "cfg", 10), META_OK);
    assert_int_equal(
        put_mf(&f, "r3", "a", "m1", "v1", layers, 2, NULL, 0, NULL),
        META_BLOB_UNKNOWN);
    assert_int_equal(blob_stored(&f, "r4", "a", "layer1", 20), META_OK);
    assert_int_equal(
        put_mf(&f, "r5", "a", "m1", "v1", layers, 2, NULL, 0, NULL), META_OK);
    struct at_digest d, m1 = dg("m1");
    assert_int_equal(meta_fsm_tag_resolve(&f, "a", "v1", &d), 0);
    assert_true(at_digest_equal(&d, &m1));
    const struct meta_manifest *mf = meta_fsm_manifest_find(&f, "a", &m1);
    assert_non_null(mf);
    assert_int_equal(mf->len, 2);
    assert_memory_equal(mf->bytes, "m1", 2);
    assert_string_equal(mf->media_type,
                        "application/vnd.oci.image.manifest.v1+json");
    assert_null(mf->artifact_type);
    assert_null(meta_fsm_manifest_find(&f, "b", &m1));

    /* index: children must be in the repo */
    const char *kids[] = { "m1", "m2" };
    assert_int_equal(
        put_mf(&f, "r6", "a", "idx", "multi", NULL, 0, kids, 2, NULL),
        META_MANIFEST_UNKNOWN);
    assert_int_equal(put_mf(&f, "r7", "a", "m2", NULL, NULL, 0, NULL, 0, NULL),
                     META_OK);
    assert_int_equal(
        put_mf(&f, "r8", "a", "idx", "multi", NULL, 0, kids, 2, NULL), META_OK);
    /* moving a tag */
    assert_int_equal(put_mf(&f, "r9", "a", "m2", "v1", NULL, 0, NULL, 0, NULL),
                     META_OK);
    struct at_digest m2 = dg("m2");
    assert_int_equal(meta_fsm_tag_resolve(&f, "a", "v1", &d), 0);
    assert_true(at_digest_equal(&d, &m2));
    assert_string_equal(tags_of(&f, "a", &ns), "multi,v1");
    assert_int_equal(f.manifests.len, 3);

    /* the same manifest in another repo is shared, refcounted */
    assert_int_equal(put_mf(&f, "r10", "b", "m2", "x", NULL, 0, NULL, 0, NULL),
                     META_OK);
    assert_int_equal(f.manifests.len, 3);
    assert_string_equal(catalog_of(&f, &ns), "a,b");
    assert_int_equal(del_mf(&f, "r11", "b", "m2"), META_OK);
    assert_false(meta_fsm_repo_exists(&f, "b"));
    assert_non_null(meta_fsm_manifest_find(&f, "a", &m2));
    assert_int_equal(del_mf(&f, "r12", "b", "m2"), META_MANIFEST_UNKNOWN);

    /* delete manifest removes every tag pointing at it */
    assert_int_equal(
        put_mf(&f, "r13", "a", "m2", "also", NULL, 0, NULL, 0, NULL), META_OK);
    assert_int_equal(del_mf(&f, "r14", "a", "m2"), META_OK);
    assert_string_equal(tags_of(&f, "a", &ns), "multi");
    assert_null(meta_fsm_manifest_find(&f, "a", &m2));
    assert_int_equal(f.manifests.len, 2);
    assert_int_equal(f.ntags, 1);

    /* delete tag */
    assert_int_equal(del_tag(&f, "r15", "a", "nope"), META_TAG_UNKNOWN);
    assert_int_equal(del_tag(&f, "r16", "zz", "nope"), META_TAG_UNKNOWN);
    assert_int_equal(del_tag(&f, "r17", "a", "multi"), META_OK);
    assert_string_equal(tags_of(&f, "a", &ns), "");
    struct at_digest idx = dg("idx");
    assert_non_null(meta_fsm_manifest_find(&f, "a", &idx));
    meta_fsm_release(&f);
}

static void test_blob_rules(void **state)
{
    struct meta_fsm f;
    uint64_t size = 0;
    AT_UNUSED(state);
    meta_fsm_init(&f, 100);
    struct at_digest b = dg("blob");
    assert_false(meta_fsm_blob_known(&f, &b, &size));
    assert_int_equal(mount_blob(&f, "1", "dst", "src", "blob"),
                     META_BLOB_UNKNOWN);
    assert_int_equal(blob_stored(&f, "2", "src", "blob", 42), META_OK);
    assert_true(meta_fsm_blob_known(&f, &b, &size));
    assert_int_equal(size, 42);
    assert_true(meta_fsm_blob_linked(&f, "src", &b, &size));
    assert_false(meta_fsm_blob_linked(&f, "dst", &b, NULL));
    assert_int_equal(mount_blob(&f, "3", "dst", "src", "blob"), META_OK);
    assert_true(meta_fsm_blob_linked(&f, "dst", &b, NULL));
    assert_int_equal(unlink_blob(&f, "4", "src", "blob"), META_OK);
    assert_false(meta_fsm_repo_exists(&f, "src"));
    assert_int_equal(unlink_blob(&f, "5", "src", "blob"), META_BLOB_NOT_LINKED);
    assert_int_equal(mount_blob(&f, "6", "x", "src", "blob"),
                     META_BLOB_UNKNOWN);
    /* the blob record stays for GC */
    assert_true(meta_fsm_blob_known(&f, &b, NULL));
    assert_int_equal(unlink_blob(&f, "7", "dst", "blob"), META_OK);
    assert_int_equal(f.repos.len, 0);
    assert_int_equal(f.blobs.len, 1);
    meta_fsm_release(&f);
}

static void test_dedup_and_garbage(void **state)
{
    struct meta_fsm f;
    struct names ns;
    AT_UNUSED(state);
    meta_fsm_init(&f, 3);
    assert_int_equal(put_mf(&f, "same", "a", "m1", "t", NULL, 0, NULL, 0, NULL),
                     META_OK);
    assert_int_equal(del_tag(&f, "del", "a", "t"), META_OK);
    /* a retry of "same" returns the stored result and changes nothing */
    assert_int_equal(put_mf(&f, "same", "a", "m1", "t", NULL, 0, NULL, 0, NULL),
                     META_OK);
    assert_string_equal(tags_of(&f, "a", &ns), "");
    assert_int_equal(del_tag(&f, "del", "a", "t"), META_OK);
    assert_int_equal(del_tag(&f, "del2", "a", "t"), META_TAG_UNKNOWN);
    /* FIFO bound 3: "same" is forgotten after 3 newer ids */
    assert_int_equal(del_tag(&f, "x1", "a", "t"), META_TAG_UNKNOWN);
    assert_int_equal(f.reqs.len, 3);
    assert_int_equal(put_mf(&f, "same", "a", "m1", "t", NULL, 0, NULL, 0, NULL),
                     META_OK);
    assert_string_equal(tags_of(&f, "a", &ns), "t");

    /* garbage is a no-op result, never a failure */
    uint8_t junk[64];
    memset(junk, 0xab, sizeof(junk));
    int res = 0;
    uint64_t count = f.applied_count;
    assert_int_equal(meta_fsm_apply(&f, 99, junk, sizeof(junk), &res), 0);
    assert_int_equal(res, META_INVALID);
    assert_int_equal(meta_fsm_apply(&f, 100, junk, 3, &res), 0);
    assert_int_equal(res, META_INVALID);
    assert_int_equal(f.applied_count, count + 2);
    assert_string_equal(meta_result_str(META_INVALID), "invalid command");

    meta_fsm_release(&f);
}

/* A guarded tag (a pusher without the overwrite right): created when
 * absent, re-pushed to what it points to, never re-pointed; a refused put
 * changes nothing. */
static void test_tag_guard(void **state)
{
    struct meta_fsm f;
    struct at_digest d, m1 = dg("g1"), m2 = dg("g2");
    AT_UNUSED(state);
    meta_fsm_init(&f, 100);
    struct meta_cmd c = manifest_cmd("g", "g1", "t");
    c.put_manifest.tag_guard = true; /* the tag must not exist */
    assert_int_equal(apply_cmd(&f, "g1", &c), META_OK);
    /* another manifest with the same guard: the tag exists now */
    c = manifest_cmd("g", "g2", "t");
    c.put_manifest.tag_guard = true;
    assert_int_equal(apply_cmd(&f, "g2", &c), META_TAG_CONFLICT);
    assert_null(meta_fsm_manifest_find(&f, "g", &m2));
    assert_int_equal(meta_fsm_tag_resolve(&f, "g", "t", &d), 0);
    assert_true(at_digest_equal(&d, &m1));
    /* expecting g1 where g1 is: a re-push of the same manifest is fine */
    c = manifest_cmd("g", "g1", "t");
    c.put_manifest.tag_guard = true;
    c.put_manifest.has_tag_expect = true;
    c.put_manifest.tag_expect = m1;
    assert_int_equal(apply_cmd(&f, "g3", &c), META_OK);
    /* expecting g2 where g1 is: refused */
    c = manifest_cmd("g", "g2", "t");
    c.put_manifest.tag_guard = true;
    c.put_manifest.has_tag_expect = true;
    c.put_manifest.tag_expect = m2;
    assert_int_equal(apply_cmd(&f, "g4", &c), META_TAG_CONFLICT);
    /* without a guard (the overwrite right): re-pointed */
    c = manifest_cmd("g", "g2", "t");
    assert_int_equal(apply_cmd(&f, "g5", &c), META_OK);
    assert_int_equal(meta_fsm_tag_resolve(&f, "g", "t", &d), 0);
    assert_true(at_digest_equal(&d, &m2));
    meta_fsm_release(&f);
}

/* The event queue (events.c): only accepted pushes and deletes, in
 * apply order, a tag delete with the digest it pointed to; nothing while
 * not recording; a restore keeps the queue. */
static void test_events_queue(void **state)
{
    struct meta_fsm f;
    struct meta_event *v;
    uint64_t dropped = 7;
    struct at_digest m1 = dg("e1");
    AT_UNUSED(state);
    meta_fsm_init(&f, 100);
    assert_int_equal(
        put_mf(&f, "q0", "e", "e0", "before", NULL, 0, NULL, 0, NULL), META_OK);
    assert_int_equal(meta__events_take(&f, &v, &dropped), 0);
    assert_int_equal(dropped, 0);
    meta__events_record(&f, true);
    assert_int_equal(put_mf(&f, "q1", "e", "e1", "v1", NULL, 0, NULL, 0, NULL),
                     META_OK);
    assert_int_equal(put_mf(&f, "q2", "e", "e2", NULL, NULL, 0, NULL, 0, NULL),
                     META_OK);
    assert_int_equal(del_tag(&f, "q3", "e", "nope"), META_TAG_UNKNOWN);
    assert_int_equal(del_tag(&f, "q4", "e", "v1"), META_OK);
    assert_int_equal(blob_stored(&f, "q5", "e", "b", 3), META_OK);
    assert_int_equal(del_mf(&f, "q6", "e", "e2"), META_OK);
    size_t n = meta__events_take(&f, &v, &dropped);
    assert_int_equal(n, 4);
    assert_int_equal(dropped, 0);
    assert_int_equal(v[0].kind, META_EVENT_PUSH);
    assert_string_equal(v[0].repo, "e");
    assert_string_equal(v[0].tag, "v1");
    assert_true(at_digest_equal(&v[0].digest, &m1));
    assert_int_equal(v[0].size, 2);
    assert_string_equal(v[0].media_type,
                        "application/vnd.oci.image.manifest.v1+json");
    assert_int_equal(v[1].kind, META_EVENT_PUSH);
    assert_null(v[1].tag);
    assert_int_equal(v[2].kind, META_EVENT_DELETE_TAG);
    assert_string_equal(v[2].tag, "v1");
    assert_true(v[2].has_digest);
    assert_true(at_digest_equal(&v[2].digest, &m1));
    assert_int_equal(v[3].kind, META_EVENT_DELETE_MANIFEST);
    for (size_t i = 1; i < n; i++)
        assert_true(v[i].index > v[i - 1].index);
    meta_events_free(v, n);
    assert_int_equal(meta__events_take(&f, &v, &dropped), 0);
    meta__events_record(&f, false);
    assert_int_equal(put_mf(&f, "q7", "e", "e3", "v3", NULL, 0, NULL, 0, NULL),
                     META_OK);
    assert_int_equal(meta__events_take(&f, &v, &dropped), 0);
    meta_fsm_release(&f);
}

int main(void)
{
    at_log_configure(getenv("META_LOG") ? getenv("META_LOG") : "error");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_manifest_rules),
        cmocka_unit_test(test_blob_rules),
        cmocka_unit_test(test_dedup_and_garbage),
        cmocka_unit_test(test_tag_guard),
        cmocka_unit_test(test_events_queue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
