/* Unit tests of raft/: FSM rules, listings, snapshots, a real single node,
 * and a seeded 3-node simulation on libraft's in-memory fixture. */
#include "common/compat.h"

#include <dirent.h>
#include <setjmp.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <raft/fixture.h>

#include "raft/command.h"
#include "raft/fsm.h"
#include "raft/gc.h"
#include "raft/glue.h"
#include "raft/nodes.h"
#include "raft/snapshot.h"

/* ---- helpers ---- */

static struct at_digest dg(const char *s)
{
    struct at_digest d;
    at_digest_of(s, strlen(s), &d);
    return d;
}

static uint64_t next_index = 1;

static int apply_buf(struct meta_fsm *f, void *buf, size_t len)
{
    int res = -1;
    assert_int_equal(len % 8, 0);
    assert_int_equal(meta_fsm_apply(f, next_index++, buf, len, &res), 0);
    free(buf);
    return res;
}

/* Pack c (request id rid) as the node with store "store1" would, and
 * apply it; returns the result. */
static int apply_cmd(struct meta_fsm *f, const char *rid, struct meta_cmd *c)
{
    void *buf;
    size_t len;
    char e[AT_ERRMSG_SIZE];
    c->request_id = rid;
    assert_int_equal(meta__cmd_pack(c, "store1", NULL, &buf, &len, e), 0);
    return apply_buf(f, buf, len);
}

static int blob_stored(struct meta_fsm *f,
                       const char *rid,
                       const char *repo,
                       const char *blob,
                       uint64_t size)
{
    struct meta_cmd c = {
        .kind = META_CMD_BLOB_STORED,
        .blob_stored = { .repo = repo, .digest = dg(blob), .size = size }
    };
    return apply_cmd(f, rid, &c);
}

static int put_mf(struct meta_fsm *f,
                  const char *rid,
                  const char *repo,
                  const char *content,
                  const char *tag,
                  const char **blobs,
                  size_t nblobs,
                  const char **children,
                  size_t nchildren,
                  const char *subject)
{
    struct at_digest b[8], c[8];
    struct meta_cmd cmd = { .kind = META_CMD_PUT_MANIFEST };
    struct meta_manifest_put *p = &cmd.put_manifest;
    for (size_t i = 0; i < nblobs; i++)
        b[i] = dg(blobs[i]);
    for (size_t i = 0; i < nchildren; i++)
        c[i] = dg(children[i]);
    p->repo = repo;
    p->digest = dg(content);
    p->media_type = "application/vnd.oci.image.manifest.v1+json";
    p->bytes = content;
    p->len = strlen(content);
    p->tag = tag;
    p->blobs = b;
    p->nblobs = nblobs;
    p->manifests = c;
    p->nmanifests = nchildren;
    if (subject != NULL) {
        p->has_subject = true;
        p->subject = dg(subject);
        p->artifact_type = "application/x-sig";
        p->annotations_json = "{\"a\":\"b\"}";
    }
    return apply_cmd(f, rid, &cmd);
}

static int del_tag(struct meta_fsm *f,
                   const char *rid,
                   const char *repo,
                   const char *tag)
{
    struct meta_cmd c = { .kind = META_CMD_DELETE_TAG,
                          .delete_tag = { .repo = repo, .tag = tag } };
    return apply_cmd(f, rid, &c);
}

static int del_mf(struct meta_fsm *f,
                  const char *rid,
                  const char *repo,
                  const char *content)
{
    struct meta_cmd c = { .kind = META_CMD_DELETE_MANIFEST,
                          .delete_manifest = { .repo = repo,
                                               .digest = dg(content) } };
    return apply_cmd(f, rid, &c);
}

static int mount(struct meta_fsm *f,
                 const char *rid,
                 const char *repo,
                 const char *from,
                 const char *blob)
{
    struct meta_cmd c = {
        .kind = META_CMD_BLOB_MOUNT,
        .blob_mount = { .repo = repo, .from_repo = from, .digest = dg(blob) }
    };
    return apply_cmd(f, rid, &c);
}

static int unlink_blob(struct meta_fsm *f,
                       const char *rid,
                       const char *repo,
                       const char *blob)
{
    struct meta_cmd c = { .kind = META_CMD_BLOB_UNLINK,
                          .blob_unlink = { .repo = repo, .digest = dg(blob) } };
    return apply_cmd(f, rid, &c);
}

struct names {
    char text[65536];
    size_t n;
};

static void collect(void *data, const char *name)
{
    struct names *ns = data;
    size_t l = strlen(ns->text);
    snprintf(ns->text + l, sizeof(ns->text) - l, "%s%s", ns->n ? "," : "",
             name);
    ns->n++;
}

static const char *tags_of(struct meta_fsm *f,
                           const char *repo,
                           struct names *ns)
{
    memset(ns, 0, sizeof(*ns));
    bool more;
    if (meta_fsm_tags_list(f, repo, NULL, SIZE_MAX, collect, ns, &more) != 0)
        return "<none>";
    return ns->text;
}

static const char *catalog_of(struct meta_fsm *f, struct names *ns)
{
    bool more;
    memset(ns, 0, sizeof(*ns));
    meta_fsm_catalog_list(f, NULL, SIZE_MAX, collect, ns, &more);
    return ns->text;
}

/* ---- FSM rules ---- */

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
    assert_int_equal(mount(&f, "1", "dst", "src", "blob"), META_BLOB_UNKNOWN);
    assert_int_equal(blob_stored(&f, "2", "src", "blob", 42), META_OK);
    assert_true(meta_fsm_blob_known(&f, &b, &size));
    assert_int_equal(size, 42);
    assert_true(meta_fsm_blob_linked(&f, "src", &b, &size));
    assert_false(meta_fsm_blob_linked(&f, "dst", &b, NULL));
    assert_int_equal(mount(&f, "3", "dst", "src", "blob"), META_OK);
    assert_true(meta_fsm_blob_linked(&f, "dst", &b, NULL));
    assert_int_equal(unlink_blob(&f, "4", "src", "blob"), META_OK);
    assert_false(meta_fsm_repo_exists(&f, "src"));
    assert_int_equal(unlink_blob(&f, "5", "src", "blob"), META_BLOB_NOT_LINKED);
    assert_int_equal(mount(&f, "6", "x", "src", "blob"), META_BLOB_UNKNOWN);
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

    /* request ids: printable, bounded */
    assert_true(meta__request_id_ok("abc-123"));
    assert_false(meta__request_id_ok(""));
    assert_false(meta__request_id_ok("a b"));
    char longid[80];
    memset(longid, 'x', sizeof(longid) - 1);
    longid[79] = '\0';
    assert_false(meta__request_id_ok(longid));
    longid[64] = '\0';
    assert_true(meta__request_id_ok(longid));
    meta_fsm_release(&f);
}

static void test_listing(void **state)
{
    struct meta_fsm f;
    struct names ns;
    bool more;
    AT_UNUSED(state);
    meta_fsm_init(&f, 20000);
    char tag[32], content[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(tag, sizeof(tag), "t%05d", (i * 7919) % 10000);
        snprintf(content, sizeof(content), "m%d", i % 10);
        assert_int_equal(
            put_mf(&f, NULL, "big", content, tag, NULL, 0, NULL, 0, NULL),
            META_OK);
    }
    memset(&ns, 0, sizeof(ns));
    assert_int_equal(
        meta_fsm_tags_list(&f, "big", "t00997", 4, collect, &ns, &more), 0);
    assert_string_equal(ns.text, "t00998,t00999,t01000,t01001");
    assert_true(more);
    memset(&ns, 0, sizeof(ns));
    assert_int_equal(
        meta_fsm_tags_list(&f, "big", "t09997", 4, collect, &ns, &more), 0);
    assert_string_equal(ns.text, "t09998,t09999");
    assert_false(more);
    memset(&ns, 0, sizeof(ns));
    assert_int_equal(
        meta_fsm_tags_list(&f, "big", "t0", 0, collect, &ns, &more), 0);
    assert_int_equal(ns.n, 0);
    assert_true(more);
    assert_int_equal(
        meta_fsm_tags_list(&f, "nope", NULL, 5, collect, &ns, &more),
        AT_ENOTFOUND);

    /* after the first build, listing all 10,000 is well under 1 ms */
    struct timespec t0, t1;
    memset(&ns, 0, sizeof(ns));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t total = 0;
    for (int k = 0; k < 10; k++) {
        struct names *tmp = at_calloc(1, sizeof(*tmp));
        meta_fsm_tags_list(&f, "big", "t00000", 100, collect, tmp, &more);
        total += tmp->n;
        at_free(tmp);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double us = (double)(t1.tv_sec - t0.tv_sec) * 1e6 +
                (double)(t1.tv_nsec - t0.tv_nsec) / 1e3;
    assert_int_equal(total, 1000);
    print_message("# 10 pages of 100 tags: %.1f us\n", us);
    assert_true(us < 5000);

    /* catalog pagination */
    for (int i = 0; i < 50; i++) {
        char repo[32];
        snprintf(repo, sizeof(repo), "repo/%02d", 49 - i);
        assert_int_equal(blob_stored(&f, NULL, repo, "b", 1), META_OK);
    }
    memset(&ns, 0, sizeof(ns));
    meta_fsm_catalog_list(&f, "repo/47", 10, collect, &ns, &more);
    assert_string_equal(ns.text, "repo/48,repo/49");
    assert_false(more);
    memset(&ns, 0, sizeof(ns));
    meta_fsm_catalog_list(&f, NULL, 2, collect, &ns, &more);
    assert_string_equal(ns.text, "big,repo/00");
    assert_true(more);
    meta_fsm_release(&f);
}

static void count_ref(void *data, const struct meta_manifest *mf)
{
    struct names *ns = data;
    char hex[65];
    at_digest_hex(&mf->digest, hex);
    assert_string_equal(mf->artifact_type, "application/x-sig");
    assert_string_equal(mf->annotations_json, "{\"a\":\"b\"}");
    collect(ns, hex);
}

static void test_referrers(void **state)
{
    struct meta_fsm f;
    struct names ns;
    AT_UNUSED(state);
    meta_fsm_init(&f, 100);
    /* the subject need not exist */
    assert_int_equal(
        put_mf(&f, NULL, "a", "sig1", NULL, NULL, 0, NULL, 0, "image"),
        META_OK);
    assert_int_equal(
        put_mf(&f, NULL, "a", "sig2", NULL, NULL, 0, NULL, 0, "image"),
        META_OK);
    assert_int_equal(
        put_mf(&f, NULL, "a", "sig3", NULL, NULL, 0, NULL, 0, "other"),
        META_OK);
    assert_int_equal(
        put_mf(&f, NULL, "b", "sig4", NULL, NULL, 0, NULL, 0, "image"),
        META_OK);
    struct at_digest subj = dg("image");
    memset(&ns, 0, sizeof(ns));
    meta_fsm_referrers(&f, "a", &subj, count_ref, &ns);
    assert_int_equal(ns.n, 2);
    char h1[65], h2[65];
    struct at_digest s1 = dg("sig1"), s2 = dg("sig2");
    at_digest_hex(&s1, h1);
    at_digest_hex(&s2, h2);
    char want[200];
    if (strcmp(h1, h2) < 0)
        snprintf(want, sizeof(want), "%s,%s", h1, h2);
    else
        snprintf(want, sizeof(want), "%s,%s", h2, h1);
    assert_string_equal(ns.text, want);
    memset(&ns, 0, sizeof(ns));
    meta_fsm_referrers(&f, "zz", &subj, count_ref, &ns);
    assert_int_equal(ns.n, 0);
    meta_fsm_release(&f);
}

static void build_state(struct meta_fsm *f)
{
    const char *blobs[] = { "c1", "l1" };
    assert_int_equal(blob_stored(f, "s1", "lib/a", "c1", 5), META_OK);
    assert_int_equal(blob_stored(f, "s2", "lib/a", "l1", 7), META_OK);
    assert_int_equal(mount(f, "s3", "lib/b", "lib/a", "l1"), META_OK);
    assert_int_equal(
        put_mf(f, "s4", "lib/a", "img", "latest", blobs, 2, NULL, 0, NULL),
        META_OK);
    const char *kids[] = { "img" };
    assert_int_equal(
        put_mf(f, "s5", "lib/a", "index", "multi", NULL, 0, kids, 1, NULL),
        META_OK);
    assert_int_equal(
        put_mf(f, "s6", "lib/a", "sig", NULL, NULL, 0, NULL, 0, "img"),
        META_OK);
    assert_int_equal(
        put_mf(f, "s7", "lib/c", "", "empty", NULL, 0, NULL, 0, NULL), META_OK);
}

static void test_snapshot_roundtrip(void **state)
{
    struct meta_fsm f, g;
    struct names n1, n2;
    char e[AT_ERRMSG_SIZE];
    void *buf;
    size_t len;
    AT_UNUSED(state);
    meta_fsm_init(&f, 100);
    build_state(&f);
    assert_int_equal(meta_fsm_snapshot(&f, NULL, &buf, &len, e), 0);
    assert_int_equal(len % 8, 0);

    meta_fsm_init(&g, 100);
    blob_stored(&g, "other", "junk", "j", 1); /* replaced by restore */
    assert_int_equal(meta_fsm_restore(&g, buf, len, e), 0);
    assert_string_equal(catalog_of(&f, &n1), catalog_of(&g, &n2));
    assert_string_equal(n2.text, "lib/a,lib/b,lib/c");
    assert_string_equal(tags_of(&f, "lib/a", &n1), tags_of(&g, "lib/a", &n2));
    assert_string_equal(tags_of(&f, "lib/c", &n1), tags_of(&g, "lib/c", &n2));
    assert_int_equal(f.hash, g.hash);
    assert_int_equal(f.applied_count, g.applied_count);
    assert_int_equal(f.applied_index, g.applied_index);
    assert_int_equal(f.ntags, g.ntags);
    assert_int_equal(f.manifests.len, g.manifests.len);
    assert_int_equal(g.reqs.len, 7);
    struct at_digest sig = dg("sig"), img = dg("img"), l1 = dg("l1");
    const struct meta_manifest *mf = meta_fsm_manifest_find(&g, "lib/a", &sig);
    assert_non_null(mf);
    assert_true(mf->has_subject);
    assert_true(at_digest_equal(&mf->subject, &img));
    assert_string_equal(mf->artifact_type, "application/x-sig");
    uint64_t size = 0;
    assert_true(meta_fsm_blob_linked(&g, "lib/b", &l1, &size));
    assert_int_equal(size, 7);
    /* request ids survive: a retry is still deduplicated */
    assert_int_equal(del_mf(&g, "s4", "lib/a", "img"), META_OK);
    assert_non_null(meta_fsm_manifest_find(&g, "lib/a", &img));
    /* refcounts were rebuilt: deleting everywhere frees the manifest */
    assert_int_equal(del_mf(&g, "d1", "lib/a", "img"), META_OK);
    assert_null(meta_fsm_manifest_find(&g, "lib/a", &img));

    /* corrupt snapshots are refused and leave the state alone */
    uint64_t h = g.hash;
    ((uint8_t *)buf)[0] ^= 0x55; /* magic */
    assert_int_not_equal(meta_fsm_restore(&g, buf, len, e), 0);
    assert_int_not_equal(meta_fsm_restore(&g, buf, len - 8, e), 0);
    assert_int_equal(g.hash, h);
    free(buf);
    meta_fsm_release(&f);
    meta_fsm_release(&g);
}

static int node_up(struct meta_fsm *f,
                   uint64_t id,
                   const char *name,
                   const char *peer,
                   bool standby)
{
    void *buf;
    size_t len;
    char e[AT_ERRMSG_SIZE];
    struct meta_cmd c = { .kind = META_CMD_NODE_UPSERT };
    c.node_upsert.node.id = id;
    c.node_upsert.node.name = name;
    c.node_upsert.node.peer_address = peer;
    c.node_upsert.node.api_address = "127.0.0.1:5000";
    c.node_upsert.node.region = "eu";
    c.node_upsert.standby = standby;
    int rv = meta__cmd_pack(&c, NULL, NULL, &buf, &len, e);
    if (rv != 0)
        return rv;
    return apply_buf(f, buf, len);
}

static int node_rm(struct meta_fsm *f, uint64_t id)
{
    void *buf;
    size_t len;
    char e[AT_ERRMSG_SIZE];
    struct meta_cmd c = { .kind = META_CMD_NODE_REMOVE,
                          .node_remove = { .id = id } };
    int rv = meta__cmd_pack(&c, NULL, NULL, &buf, &len, e);
    if (rv != 0)
        return rv;
    return apply_buf(f, buf, len);
}

static int node_up_raw(struct meta_fsm *f)
{
    return node_up(f, 7, "n7", "127.0.0.1:7000", false) == META_OK ? 0 : -1;
}

static void count_name(void *data, const char *name)
{
    AT_UNUSED(name);
    (*(size_t *)data)++;
}

static void check_tags(struct meta_fsm *f)
{
    struct at_digest m1 = dg("m1"), got;
    size_t want = 0;
    for (int i = 0; i < 1500; i++) {
        char tag[64];
        snprintf(tag, sizeof(tag), "a-rather-long-tag-name-%04d", i);
        bool live = i % 2 == 0 && i % 3 != 0;
        int rv = meta_fsm_tag_resolve(f, "r", tag, &got);
        assert_int_equal(rv, live ? 0 : AT_ENOTFOUND);
        if (live) {
            assert_true(at_digest_equal(&got, &m1));
            want++;
        }
    }
    size_t n = 0;
    bool more;
    assert_int_equal(
        meta_fsm_tags_list(f, "r", NULL, SIZE_MAX, count_name, &n, &more), 0);
    assert_int_equal(n, want);
    assert_int_equal(f->ntags, want);
}

/* The dense tag table: deletes move tags around and compact the name
 * arena; lookups, listings and snapshots stay right. */
static void test_tag_table(void **state)
{
    struct meta_fsm f, g;
    char e[AT_ERRMSG_SIZE];
    void *buf;
    size_t len;
    AT_UNUSED(state);
    meta_fsm_init(&f, 10);
    for (int i = 0; i < 1500; i++) {
        char tag[64];
        snprintf(tag, sizeof(tag), "a-rather-long-tag-name-%04d", i);
        assert_int_equal(put_mf(&f, NULL, "r", i % 2 ? "m2" : "m1", tag, NULL,
                                0, NULL, 0, NULL),
                         META_OK);
    }
    for (int i = 0; i < 1500; i += 3) {
        char tag[64];
        snprintf(tag, sizeof(tag), "a-rather-long-tag-name-%04d", i);
        assert_int_equal(del_tag(&f, NULL, "r", tag), META_OK);
    }
    assert_int_equal(del_mf(&f, NULL, "r", "m2"), META_OK);
    check_tags(&f);
    /* re-adding a deleted tag works after compaction */
    assert_int_equal(put_mf(&f, NULL, "r", "m1", "a-rather-long-tag-name-0003",
                            NULL, 0, NULL, 0, NULL),
                     META_OK);
    assert_int_equal(del_tag(&f, NULL, "r", "a-rather-long-tag-name-0003"),
                     META_OK);
    check_tags(&f);
    assert_int_equal(meta_fsm_snapshot(&f, NULL, &buf, &len, e), 0);
    meta_fsm_init(&g, 10);
    assert_int_equal(meta_fsm_restore(&g, buf, len, e), 0);
    check_tags(&g);
    free(buf);
    meta_fsm_release(&f);
    meta_fsm_release(&g);
}

/* A snapshot job is a copy: changing (even freeing) the state after the
 * take does not change what the job encodes. */
static void test_snapshot_job_isolated(void **state)
{
    struct meta_fsm f, g;
    char e[AT_ERRMSG_SIZE];
    void *want, *got;
    size_t wlen, glen;
    AT_UNUSED(state);
    meta_fsm_init(&f, 4);
    build_state(&f);
    assert_int_equal(node_up_raw(&f), 0);
    assert_int_equal(meta_fsm_snapshot(&f, NULL, &want, &wlen, e), 0);
    struct meta_snap_job *j = meta_snap_job_take(&f);
    /* writes go on: deletes free manifests and tags, new ones realloc,
     * the request ring wraps */
    assert_int_equal(del_mf(&f, "x1", "lib/a", "index"), META_OK);
    assert_int_equal(del_mf(&f, "x2", "lib/a", "img"), META_OK);
    assert_int_equal(blob_stored(&f, "x3", "lib/a", "c1", 5), META_OK);
    assert_int_equal(put_mf(&f, "x4", "lib/d", "", "t", NULL, 0, NULL, 0, NULL),
                     META_OK);
    meta_fsm_release(&f);
    assert_int_equal(meta_snap_job_encode(j, NULL, &got, &glen, e), 0);
    meta_snap_job_free(j);
    assert_int_equal(wlen, glen);
    assert_memory_equal(want, got, wlen);
    meta_fsm_init(&g, 4);
    assert_int_equal(meta_fsm_restore(&g, got, glen, e), 0);
    assert_int_equal(g.ntags, 3);
    assert_int_equal(g.nodes.len, 1);
    meta_fsm_release(&g);
    free(want);
    free(got);
}

/* The node table: upsert, conflicts, remove, snapshots, bad records. */
static void test_node_table(void **state)
{
    struct meta_fsm f, g;
    char e[AT_ERRMSG_SIZE];
    void *buf;
    size_t len;
    AT_UNUSED(state);
    meta_fsm_init(&f, 100);
    assert_int_equal(node_up(&f, 7, "a", "10.0.0.1:5001", false), META_OK);
    assert_int_equal(node_up(&f, 8, "b", "10.0.0.2:5001", true), META_OK);
    uint64_t v = f.nodes_version;
    assert_int_equal(node_up(&f, 8, "b", "10.0.0.2:5001", true), META_OK);
    assert_int_equal(f.nodes_version, v); /* same record: no change */
    assert_int_equal(node_up(&f, 8, "b", "10.0.0.3:5001", true), META_OK);
    assert_true(f.nodes_version > v);
    assert_string_equal(meta__node_find(&f, 8)->peer_address, "10.0.0.3:5001");
    /* a name belongs to one id */
    assert_int_equal(node_up(&f, 9, "a", "10.0.0.9:5001", false),
                     META_NODE_CONFLICT);
    assert_null(meta__node_find(&f, 9));
    assert_int_equal(node_rm(&f, 9), META_NODE_UNKNOWN);
    assert_int_equal(node_up(&f, 10, "c", "", false), META_OK);
    assert_int_equal(node_rm(&f, 10), META_OK);
    assert_null(meta__node_by_name(&f, "c"));
    /* malformed records are refused at pack time */
    assert_int_equal(node_up(&f, 0, "z", "x:1", false), AT_EINVAL);
    assert_int_equal(node_up(&f, 11, "", "x:1", false), AT_EINVAL);
    char longname[300];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(node_up(&f, 11, longname, "x:1", false), AT_EINVAL);
    assert_int_equal(node_rm(&f, 0), AT_EINVAL);

    /* snapshots carry the table */
    assert_int_equal(meta_fsm_snapshot(&f, NULL, &buf, &len, e), 0);
    meta_fsm_init(&g, 100);
    assert_int_equal(meta_fsm_restore(&g, buf, len, e), 0);
    free(buf);
    assert_int_equal(g.nodes.len, 2);
    const struct meta_noderec *b = meta__node_by_name(&g, "b");
    assert_non_null(b);
    assert_int_equal(b->id, 8);
    assert_true(b->standby);
    assert_string_equal(b->region, "eu");
    assert_string_equal(b->api_address, "127.0.0.1:5000");
    assert_int_equal(g.hash, f.hash);
    meta_fsm_release(&f);
    meta_fsm_release(&g);

    /* ids from names: stable, 32-bit, never 0 or 1 */
    assert_int_equal(meta_node_id_from_name("n1"),
                     meta_node_id_from_name("n1"));
    assert_int_not_equal(meta_node_id_from_name("n1"),
                         meta_node_id_from_name("n2"));
    for (int i = 0; i < 1000; i++) {
        char name[16];
        snprintf(name, sizeof(name), "node-%d", i);
        uint64_t id = meta_node_id_from_name(name);
        assert_true(id >= 2 && id <= 0x7fffffffu);
    }
}

static void test_proto_bounds(void **state)
{
    char e[AT_ERRMSG_SIZE];
    void *buf;
    size_t len;
    AT_UNUSED(state);
    struct meta_cmd pm = { .kind = META_CMD_PUT_MANIFEST, .request_id = "r" };
    struct meta_manifest_put *p = &pm.put_manifest;
    p->repo = "a";
    p->media_type = "x";
    p->len = PROTO_MANIFEST_MAX + 1;
    p->bytes = at_calloc(1, p->len);
    assert_int_equal(meta__cmd_pack(&pm, NULL, NULL, &buf, &len, e),
                     AT_ETOOBIG);
    p->len = PROTO_MANIFEST_MAX;
    assert_int_equal(meta__cmd_pack(&pm, NULL, NULL, &buf, &len, e), 0);
    Atoll__Command *c = NULL;
    assert_int_equal(proto_command_unpack(buf, len, &c, e), 0);
    assert_int_equal(c->put_manifest->bytes.len, PROTO_MANIFEST_MAX);
    proto_command_free(c);
    /* truncated, misaligned, bad padding */
    assert_int_equal(proto_command_unpack(buf, len - 8, &c, e), AT_ECORRUPT);
    assert_int_equal(proto_command_unpack(buf, len - 1, &c, e), AT_ECORRUPT);
    free(buf);
    at_free((void *)p->bytes);
    struct meta_cmd dt = { .kind = META_CMD_DELETE_TAG,
                           .request_id = "r",
                           .delete_tag = { .repo = "a", .tag = NULL } };
    assert_int_equal(meta__cmd_pack(&dt, NULL, NULL, &buf, &len, e), AT_EINVAL);
}

/* ---- a real single node on libuv ---- */

struct node_ctx {
    uv_loop_t loop;
    struct meta *m;
    unsigned acked, failed;
    int last_status;
    bool read_done, closed;
};

static void on_write(void *data, int status, int result, uint64_t index)
{
    struct node_ctx *c = data;
    AT_UNUSED(index);
    if (status == 0 && result == META_OK)
        c->acked++;
    else
        c->failed++;
}

static void on_read(void *data, int status)
{
    struct node_ctx *c = data;
    c->last_status = status;
    c->read_done = true;
}

static void on_closed(void *data)
{
    struct node_ctx *c = data;
    c->closed = true;
}

static void run_until(struct node_ctx *c, bool (*done)(struct node_ctx *))
{
    for (int i = 0; i < 100000 && !done(c); i++)
        uv_run(&c->loop, UV_RUN_ONCE);
    assert_true(done(c));
}

static bool is_leader(struct node_ctx *c)
{
    struct meta_status st;
    meta_status_get(c->m, &st);
    return st.state == 3;
}

static bool read_done(struct node_ctx *c)
{
    return c->read_done;
}

static bool closed(struct node_ctx *c)
{
    return c->closed;
}

static unsigned want_acks;
static bool acks_done(struct node_ctx *c)
{
    return c->acked + c->failed >= want_acks;
}

static void node_open(struct node_ctx *c, const char *dir, unsigned threshold)
{
    char e[AT_ERRMSG_SIZE] = "";
    struct meta_config cfg = { 0 };
    cfg.dir = dir;
    cfg.id = 1;
    cfg.address = "127.0.0.1:0";
    cfg.snapshot_threshold = threshold;
    cfg.snapshot_trailing = threshold ? threshold / 2 : 0;
    int rv = meta_open(&c->m, &c->loop, &cfg, e);
    if (rv != 0)
        print_error("meta_open: %s\n", e);
    assert_int_equal(rv, 0);
    run_until(c, is_leader);
    c->read_done = false;
    assert_int_equal(meta_read_barrier(c->m, on_read, c), 0);
    run_until(c, read_done);
    assert_int_equal(c->last_status, 0);
}

static void node_close(struct node_ctx *c)
{
    c->closed = false;
    meta_close(c->m, on_closed, c);
    run_until(c, closed);
    c->m = NULL;
}

/* Entry sizes vary, so unpadded lengths would not be multiples of 8. */
static void node_write_batch(struct node_ctx *c, int base, int n)
{
    want_acks = c->acked + c->failed + (unsigned)n;
    for (int i = base; i < base + n; i++) {
        char repo[32], content[128], tag[32], blob[32];
        snprintf(repo, sizeof(repo), "repo%d", i % 3);
        snprintf(blob, sizeof(blob), "blob%d", i % 3);
        if (i % 10 == 0) {
            struct meta_cmd bs = { .kind = META_CMD_BLOB_STORED,
                                   .blob_stored = { .repo = repo,
                                                    .digest = dg(blob),
                                                    .size = (uint64_t)i } };
            assert_int_equal(meta_propose(c->m, &bs, on_write, c), 0);
            continue;
        }
        snprintf(content, sizeof(content), "{\"n\":%d,\"pad\":\"%.*s\"}", i,
                 i % 13, "xxxxxxxxxxxxx");
        snprintf(tag, sizeof(tag), "tag%03d", i);
        struct meta_cmd pm = { .kind = META_CMD_PUT_MANIFEST };
        struct meta_manifest_put *p = &pm.put_manifest;
        p->repo = repo;
        p->digest = dg(content);
        p->media_type = "application/vnd.oci.image.manifest.v1+json";
        p->bytes = content;
        p->len = strlen(content);
        p->tag = tag;
        assert_int_equal(meta_propose(c->m, &pm, on_write, c), 0);
    }
    run_until(c, acks_done);
}

static void snapshot_state(struct node_ctx *c, char *out, size_t size)
{
    struct names *ns = at_calloc(1, sizeof(*ns));
    bool more;
    meta_catalog_list(c->m, NULL, SIZE_MAX, collect, ns, &more);
    snprintf(out, size, "%s|", ns->text);
    for (int r = 0; r < 3; r++) {
        char repo[32];
        snprintf(repo, sizeof(repo), "repo%d", r);
        memset(ns, 0, sizeof(*ns));
        if (meta_tags_list(c->m, repo, NULL, SIZE_MAX, collect, ns, &more) ==
            0) {
            size_t l = strlen(out);
            snprintf(out + l, size - l, "%s|", ns->text);
        }
    }
    at_free(ns);
}

static bool has_snapshot(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    bool found = false;
    while (d != NULL && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "snapshot-", 9) == 0)
            found = true;
    }
    if (d != NULL)
        closedir(d);
    return found;
}

static void rm_rf(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_single_node_restart(void **state)
{
    struct node_ctx *c = at_calloc(1, sizeof(*c));
    char tmpl[] = "/tmp/atoll-meta-XXXXXX";
    AT_UNUSED(state);
    assert_non_null(mkdtemp(tmpl));
    char dir[300];
    snprintf(dir, sizeof(dir), "%s/raft/sub", tmpl); /* created by open */
    char *before = at_calloc(1, 65536), *after = at_calloc(1, 65536);
    uv_loop_init(&c->loop);

    node_open(c, dir, 0);
    struct meta_cmd bad = { .kind = META_CMD_PUT_MANIFEST,
                            .request_id = "bad id" };
    assert_int_equal(meta_propose(c->m, &bad, on_write, c), AT_EINVAL);
    assert_non_null(strstr(meta_errmsg(c->m), "request id"));
    /* the builder's message reaches the caller */
    bad.request_id = NULL;
    bad.put_manifest.repo = "r";
    bad.put_manifest.media_type = "m";
    bad.put_manifest.len = PROTO_MANIFEST_MAX + 1;
    bad.put_manifest.bytes = "";
    assert_int_equal(meta_propose(c->m, &bad, on_write, c), AT_ETOOBIG);
    assert_non_null(strstr(meta_errmsg(c->m), "bytes over"));
    /* the node table changes through membership only */
    struct meta_cmd nr = { .kind = META_CMD_NODE_REMOVE,
                           .node_remove = { .id = 7 } };
    assert_int_equal(meta_propose(c->m, &nr, on_write, c), AT_EINVAL);
    node_write_batch(c, 0, 200);
    assert_int_equal(c->acked, 200);
    /* a fast read: leader, single voter, everything applied */
    c->read_done = false;
    assert_int_equal(meta_read_barrier(c->m, on_read, c), 0);
    run_until(c, read_done);
    assert_int_equal(c->last_status, 0);
    snapshot_state(c, before, 65536);
    struct meta_status st;
    meta_status_get(c->m, &st);
    assert_int_equal(st.repos, 3);
    assert_int_equal(st.tags, 180);
    assert_int_equal(st.state, 3);
    /* a fresh dir: the id comes from the name, and is persisted */
    assert_int_equal(st.id, meta_node_id_from_name("atoll"));
    assert_int_equal(st.leader_id, st.id);
    node_close(c);
    assert_false(has_snapshot(dir));

    /* reopen: everything is back (lost if entries were not padded) */
    node_open(c, dir, 64);
    snapshot_state(c, after, 65536);
    assert_string_equal(before, after);
    /* more writes with a small threshold: snapshots are taken */
    node_write_batch(c, 200, 200);
    assert_int_equal(c->acked, 400);
    snapshot_state(c, before, 65536);
    meta_status_get(c->m, &st);
    assert_int_equal(st.tags, 360);
    node_close(c);
    assert_true(has_snapshot(dir));

    node_open(c, dir, 64);
    snapshot_state(c, after, 65536);
    assert_string_equal(before, after);
    /* duplicate request id after restart: stored result, no re-apply */
    unsigned acked = c->acked;
    want_acks = c->acked + c->failed + 1;
    struct meta_cmd dt = { .kind = META_CMD_DELETE_TAG,
                           .request_id = "fixed-1",
                           .delete_tag = { .repo = "repo1", .tag = "tag001" } };
    assert_int_equal(meta_propose(c->m, &dt, on_write, c), 0);
    run_until(c, acks_done);
    assert_int_equal(c->acked, acked + 1);
    node_close(c);
    node_open(c, dir, 64);
    want_acks = c->acked + c->failed + 1;
    assert_int_equal(meta_propose(c->m, &dt, on_write, c), 0);
    run_until(c, acks_done);
    assert_int_equal(c->acked, acked + 2); /* META_OK again, not unknown */

    /* several reads share barriers; all answer */
    c->read_done = false;
    for (int i = 0; i < 5; i++)
        assert_int_equal(meta_read_barrier(c->m, on_read, c), 0);
    run_until(c, read_done);
    assert_int_equal(c->last_status, 0);

    /* a write and a read in flight at close complete exactly once */
    want_acks = c->acked + c->failed + 1;
    dt.request_id = NULL;
    dt.delete_tag.repo = "repo2";
    dt.delete_tag.tag = "tag002";
    assert_int_equal(meta_propose(c->m, &dt, on_write, c), 0);
    c->read_done = false;
    assert_int_equal(meta_read_barrier(c->m, on_read, c), 0);
    node_close(c);
    assert_true(acks_done(c));
    assert_true(c->read_done);

    uv_loop_close(&c->loop);
    at_free(before);
    at_free(after);
    at_free(c);
    rm_rf(tmpl);
}

/* ---- seeded simulation on raft_fixture ---- */

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
    struct meta_cmd c = { .request_id = rid };
    if (is_put) {
        snprintf(content, sizeof(content), "manifest-%d%.*s", seq,
                 (int)(rnd(s) % 9), "........");
        struct meta_manifest_put *p = &c.put_manifest;
        c.kind = META_CMD_PUT_MANIFEST;
        p->repo = repo;
        p->digest = dg(content);
        p->media_type = "m";
        p->bytes = content;
        p->len = strlen(content);
        p->tag = tag;
    } else {
        c.kind = META_CMD_DELETE_TAG;
        c.delete_tag.repo = repo;
        c.delete_tag.tag = tag;
    }
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

/* Snapshots taken by a real node while writes stream in (every write is
 * pipelined, the threshold is tiny, so applies run during the pool's
 * encode) restore to exactly the state that was acknowledged. */
static void test_snapshot_during_writes(void **state)
{
    struct node_ctx *c = at_calloc(1, sizeof(*c));
    char tmpl[] = "/tmp/atoll-meta-XXXXXX";
    AT_UNUSED(state);
    assert_non_null(mkdtemp(tmpl));
    char dir[300];
    snprintf(dir, sizeof(dir), "%s/raft", tmpl);
    char *before = at_calloc(1, 65536), *after = at_calloc(1, 65536);
    uv_loop_init(&c->loop);

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
    snapshot_state(c, before, 65536);
    struct meta_status st;
    meta_status_get(c->m, &st);
    node_close(c);
    assert_true(has_snapshot(dir));

    node_open(c, dir, 16);
    snapshot_state(c, after, 65536);
    assert_string_equal(before, after);
    struct meta_status st2;
    meta_status_get(c->m, &st2);
    assert_int_equal(st.tags, st2.tags);
    assert_int_equal(st.repos, st2.repos);
    node_close(c);

    uv_loop_close(&c->loop);
    at_free(before);
    at_free(after);
    at_free(c);
    rm_rf(tmpl);
}

static void test_simulation(void **state)
{
    AT_UNUSED(state);
    const char *env = getenv("META_SIM_SEEDS");
    unsigned long seeds = env != NULL ? strtoul(env, NULL, 10) : 20;
    for (uint64_t seed = 1; seed <= seeds; seed++)
        sim_run(seed);
}

/* ---- garbage collection ---- */

static uint64_t fake_now;

static uint64_t fake_clock(void)
{
    return fake_now;
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

/* The history of test_gc_sweep, replayable on several FSMs. */
static void gc_history(struct meta_fsm *f)
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
    assert_int_equal(del_mf(f, "g7", "r", "m1"), META_OK);
    /* a manifest applied before the sweep keeps its blob */
    const char *a[] = { "a" };
    assert_int_equal(put_mf(f, "g8", "r", "m2", NULL, a, 1, NULL, 0, NULL),
                     META_OK);
    const char *all[] = { "a", "b", "c", "young", "nope", "b" };
    assert_int_equal(gc_sweep(f, "g9", 6000, 2000, all, 6), META_OK);
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
    meta__cmd_clock = fake_clock;
    meta_fsm_init(&f, 100);

    fake_now = 1000;
    blob_stored(&f, "g1", "r", "a", 10);
    blob_stored(&f, "g2", "r", "b", 20);
    blob_stored(&f, "g3", "r", "c", 30);
    blob_stored(&f, "g4", "s", "c", 30);
    const char *ab[] = { "a", "b" };
    assert_int_equal(put_mf(&f, "g5", "r", "m1", "v1", ab, 2, NULL, 0, NULL),
                     META_OK);
    fake_now = 5000;
    blob_stored(&f, "g6", "r", "young", 40);
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
    /* a manifest applied before the sweep keeps its blob */
    const char *a[] = { "a" };
    assert_int_equal(put_mf(&f, "g8", "r", "m2", NULL, a, 1, NULL, 0, NULL),
                     META_OK);
    const char *all[] = { "a", "b", "c", "young", "nope", "b" };
    assert_int_equal(gc_sweep(&f, "g9", 6000, 2000, all, 6), META_OK);
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
    assert_int_equal(mount(&f, "g13", "t", "r", "young"), META_OK);
    assert_int_equal(gc_sweep(&f, "g14", 9000, 2000, y, 1), META_OK);
    assert_true(meta_fsm_blob_known(&f, &dy, NULL));
    assert_int_equal(gc_sweep(&f, "g15", 10000, 2000, y, 1), META_OK);
    assert_false(meta_fsm_blob_known(&f, &dy, NULL));
    assert_false(meta_fsm_repo_exists(&f, "t"));

    meta_fsm_release(&f);
    gc_sweep_replay();
    meta__cmd_clock = at_wall_ms;
}

static void test_gc_snapshot(void **state)
{
    struct meta_fsm f, g;
    struct gc_list l;
    char e[AT_ERRMSG_SIZE];
    void *buf;
    size_t len;
    AT_UNUSED(state);
    meta__cmd_clock = fake_clock;
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
    Atoll__SnapRepo *srp = &sr;
    struct at_digest od = dg("old");
    char *stores[] = { (char *)"store1" };
    ProtobufCBinaryData dig = { AT_DIGEST_LEN, od.bytes };
    s.version = PROTO_SNAPSHOT_VERSION;
    sb.digest = dig;
    sb.size = 5;
    sb.n_stores = 1;
    sb.stores = stores;
    sr.name = (char *)"r";
    sr.n_blobs = 1;
    sr.blobs = &dig;
    s.n_blobs = 1;
    s.blobs = &sbp;
    s.n_repos = 1;
    s.repos = &srp;
    assert_int_equal(proto_snapshot_pack(&s, NULL, &buf, &len, e), 0);
    meta_fsm_init(&g, 100);
    assert_int_equal(meta_fsm_restore(&g, buf, len, e), 0);
    free(buf);
    memset(&l, 0, sizeof(l));
    meta_fsm_gc_candidates(&g, 3600000, 3600000, gc_collect, &l);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.size[0], 5);
    meta_fsm_release(&g);
    meta_fsm_release(&f);
    meta__cmd_clock = at_wall_ms;
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
    meta__cmd_clock = fake_clock;
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
    meta__cmd_clock = at_wall_ms;
}

static void test_gc_untagged_snapshot(void **state)
{
    struct meta_fsm f, g;
    struct mf_list l;
    char e[AT_ERRMSG_SIZE];
    void *buf;
    size_t len;
    AT_UNUSED(state);
    meta__cmd_clock = fake_clock;
    meta_fsm_init(&f, 100);
    untagged_history(&f);
    assert_int_equal(meta_fsm_snapshot(&f, NULL, &buf, &len, e), 0);
    meta_fsm_init(&g, 100);
    assert_int_equal(meta_fsm_restore(&g, buf, len, e), 0);
    free(buf);
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
    Atoll__SnapRepo *srp = &sr;
    struct at_digest md = dg("{}");
    ProtobufCBinaryData dig = { AT_DIGEST_LEN, md.bytes };
    s.version = PROTO_SNAPSHOT_VERSION;
    sm.digest = dig;
    sm.media_type = (char *)"application/vnd.oci.image.manifest.v1+json";
    sm.bytes.data = (uint8_t *)"{}";
    sm.bytes.len = 2;
    sr.name = (char *)"r";
    sr.n_manifests = 1;
    sr.manifests = &dig;
    s.n_manifests = 1;
    s.manifests = &smp;
    s.n_repos = 1;
    s.repos = &srp;
    assert_int_equal(proto_snapshot_pack(&s, NULL, &buf, &len, e), 0);
    meta_fsm_init(&g, 100);
    assert_int_equal(meta_fsm_restore(&g, buf, len, e), 0);
    free(buf);
    memset(&l, 0, sizeof(l));
    meta_fsm_gc_manifest_candidates(&g, 3600000, 3600000, 100, mf_collect, &l);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.m[0].repo, "r");
    assert_true(at_digest_equal(&l.m[0].digest, &md));
    meta_fsm_release(&g);
    meta__cmd_clock = at_wall_ms;
}

int main(void)
{
    at_log_configure(getenv("META_LOG") ? getenv("META_LOG") : "error");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_manifest_rules),
        cmocka_unit_test(test_blob_rules),
        cmocka_unit_test(test_dedup_and_garbage),
        cmocka_unit_test(test_listing),
        cmocka_unit_test(test_referrers),
        cmocka_unit_test(test_snapshot_roundtrip),
        cmocka_unit_test(test_snapshot_job_isolated),
        cmocka_unit_test(test_tag_table),
        cmocka_unit_test(test_node_table),
        cmocka_unit_test(test_proto_bounds),
        cmocka_unit_test(test_single_node_restart),
        cmocka_unit_test(test_snapshot_during_writes),
        cmocka_unit_test(test_simulation),
        cmocka_unit_test(test_gc_sweep),
        cmocka_unit_test(test_gc_snapshot),
        cmocka_unit_test(test_gc_untagged),
        cmocka_unit_test(test_gc_untagged_snapshot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
