/* Unit tests of raft/state.c: sorted listings, referrers, and the dense
 * tag table under deletes. */
#include "common/compat.h"

#include <setjmp.h>
#include <time.h>

#include <cmocka.h>

#include "raft/snapshot.h"
#include "tests/unit/raft/helpers.h"

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

    /* pages after the first build come from the sorted index (the time
     * is printed; how fast it must be is the benchmark's business, not a
     * unit test's: sanitizers and a busy machine make any bound flaky) */
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

    /* catalog pagination */
    for (int i = 0; i < 50; i++) {
        char repo[32];
        snprintf(repo, sizeof(repo), "repo/%02d", 49 - i);
        assert_int_equal(blob_stored(&f, NULL, repo, "b", 1), META_OK);
    }
    /* blobs alone: not in the catalog */
    memset(&ns, 0, sizeof(ns));
    meta_fsm_catalog_list(&f, "repo/47", 10, collect, &ns, &more);
    assert_string_equal(ns.text, "");
    for (int i = 0; i < 50; i++) {
        char repo[32];
        snprintf(repo, sizeof(repo), "repo/%02d", 49 - i);
        assert_int_equal(
            put_mf(&f, NULL, repo, "m", "t", NULL, 0, NULL, 0, NULL), META_OK);
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
    /* the subject need not exist; repo, referrer, subject */
    static const char *const refs[][3] = { { "a", "sig1", "image" },
                                           { "a", "sig2", "image" },
                                           { "a", "sig3", "other" },
                                           { "b", "sig4", "image" } };
    for (size_t i = 0; i < AT_ARRAY_SIZE(refs); i++)
        assert_int_equal(put_mf(&f, NULL, refs[i][0], refs[i][1], NULL, NULL, 0,
                                NULL, 0, refs[i][2]),
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

/* A manifest record is one allocation: its digests, its body when not in
 * a body file, and its annotations, which only a manifest with a subject
 * keeps (the referrers listing is their one reader). */
static void test_manifest_record(void **state)
{
    struct meta_fsm f;
    AT_UNUSED(state);
    meta_fsm_init(&f, 100);
    struct at_digest d = dg("m"), subj = dg("subject");
    static const char ann[] = "{\"org.example\":\"x\"}";
    static const char body[] = "{\"schemaVersion\":2}";
    const char *mt = "application/vnd.oci.image.manifest.v1+json";

    struct meta_mf *plain =
        meta__mf_new(&f, &d, body, strlen(body), mt, NULL, ann, NULL, 2, 1);
    assert_null(plain->pub.annotations_json);
    assert_null(plain->pub.subject);
    assert_ptr_equal(meta__mf_children(plain), meta__mf_blobs(plain) + 2);
    assert_memory_equal(plain->pub.bytes, body, sizeof(body));

    struct meta_mf *ref = meta__mf_new(&f, &d, body, strlen(body), mt,
                                       "application/example", ann, &subj, 1, 0);
    assert_non_null(ref->pub.annotations_json);
    assert_string_equal(ref->pub.annotations_json, ann);
    assert_true(at_digest_equal(ref->pub.subject, &subj));
    assert_memory_equal(ref->pub.bytes, body, sizeof(body));
    /* no pointers to its own tail: 16 bytes a record less than before */
    assert_true(sizeof(struct meta_mf) <= 112);
    meta__mf_free(&f, plain);
    meta__mf_free(&f, ref);
    meta_fsm_release(&f);
}

static bool not_secret(void *data, const char *repo)
{
    (*(int *)data)++;
    return strncmp(repo, "secret/", 7) != 0;
}

/* The source of a mount without from: a repository that links the blob
 * and that the caller may pull. */
static void test_blob_source(void **state)
{
    struct meta_fsm f;
    int asked = 0;
    AT_UNUSED(state);
    meta_fsm_init(&f, 100);
    assert_int_equal(blob_stored(&f, "r1", "secret/a", "b1", 10), META_OK);
    assert_int_equal(blob_stored(&f, "r2", "lib/a", "b1", 10), META_OK);
    assert_int_equal(blob_stored(&f, "r3", "secret/b", "b2", 10), META_OK);
    struct at_digest b1 = dg("b1"), b2 = dg("b2"), b3 = dg("b3");
    const char *src = meta_fsm_blob_source(&f, &b1, not_secret, &asked);
    assert_non_null(src);
    assert_string_equal(src, "lib/a");
    asked = 0;
    assert_null(meta_fsm_blob_source(&f, &b2, not_secret, &asked));
    assert_int_equal(asked, 1); /* only the repository that links it */
    asked = 0;
    assert_null(meta_fsm_blob_source(&f, &b3, not_secret, &asked));
    assert_int_equal(asked, 0);
    meta_fsm_release(&f);
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
    fsm_copy(&f, &g, 10);
    check_tags(&g);
    meta_fsm_release(&f);
    meta_fsm_release(&g);
}

/* The tag index under churn: tags come and go for many rounds (tombstones
 * pile up and are reclaimed), every lookup answers the tag's own digest,
 * and the index stays about the size of the live tags. */
static void test_tag_index_churn(void **state)
{
    struct meta_fsm f;
    struct at_digest got;
    char tag[32], content[32];
    const int live = 300;
    AT_UNUSED(state);
    meta_fsm_init(&f, 10);
    for (int i = 0; i < 40 * live; i++) {
        snprintf(tag, sizeof(tag), "t%d", i);
        snprintf(content, sizeof(content), "m%d", i % 7);
        assert_int_equal(
            put_mf(&f, NULL, "r", content, tag, NULL, 0, NULL, 0, NULL),
            META_OK);
        if (i >= live) { /* the oldest live tag goes */
            snprintf(tag, sizeof(tag), "t%d", i - live);
            assert_int_equal(del_tag(&f, NULL, "r", tag), META_OK);
        }
    }
    for (int i = 0; i < 40 * live; i++) {
        snprintf(tag, sizeof(tag), "t%d", i);
        snprintf(content, sizeof(content), "m%d", i % 7);
        int rv = meta_fsm_tag_resolve(&f, "r", tag, &got);
        if (i < 39 * live) {
            assert_int_equal(rv, AT_ENOTFOUND);
        } else {
            assert_int_equal(rv, 0);
            struct at_digest want = dg(content);
            assert_memory_equal(&got, &want, sizeof(got));
        }
    }
    struct meta_repo *r = meta__repo_get(&f, "r", false);
    assert_int_equal(r->tags.len, live);
    assert_true(r->tags.cap <= 4 * (size_t)live);
    size_t n = 0;
    bool more;
    assert_int_equal(
        meta_fsm_tags_list(&f, "r", NULL, 100000, count_name, &n, &more), 0);
    assert_int_equal(n, live);
    meta_fsm_release(&f);
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The names a listing should give: the live tags, sorted, joined. */
static const char *want_tags(bool *live, int n, char *out, size_t size)
{
    static char names[512][16];
    const char *v[512];
    int k = 0;
    for (int i = 0; i < n; i++)
        if (live[i]) {
            snprintf(names[k], sizeof(names[k]), "x%03d", (i * 37) % n);
            v[k] = names[k];
            k++;
        }
    qsort(v, (size_t)k, sizeof(v[0]), str_cmp);
    out[0] = '\0';
    for (int i = 0; i < k; i++)
        snprintf(out + strlen(out), size - strlen(out), "%s%s", i ? "," : "",
                 v[i]);
    return out;
}

/* Sorted tag lists kept in order write by write (not re-sorted): random
 * sets and deletes, each followed by a full listing and a paged one, both
 * equal to the live tags sorted; the catalog likewise as repositories
 * enter and leave it; and after a restore, sorted once at the first
 * list, then kept. */
static void test_sorted_lists_incremental(void **state)
{
    struct meta_fsm f, g;
    struct names ns, ns2;
    enum { N = 200 };
    bool live[N] = { false };
    static char want[65536];
    char tag[16], content[16], e[AT_ERRMSG_SIZE];
    AT_UNUSED(state);
    meta_fsm_init(&f, 10);
    srand(7);
    for (int op = 0; op < 3000; op++) {
        int i = rand() % N;
        /* names not in insertion order: x000, x037, x074, ... */
        snprintf(tag, sizeof(tag), "x%03d", (i * 37) % N);
        snprintf(content, sizeof(content), "m%d", rand() % 5);
        if (live[i] && rand() % 2 == 0) {
            assert_int_equal(del_tag(&f, NULL, "r", tag), META_OK);
            live[i] = false;
        } else {
            assert_int_equal(
                put_mf(&f, NULL, "r", content, tag, NULL, 0, NULL, 0, NULL),
                META_OK);
            live[i] = true;
        }
        /* still in order after the write, before any listing */
        assert_true(meta__repo_get(&f, "r", false)->sorted_ok);
        want_tags(live, N, want, sizeof(want));
        assert_string_equal(tags_of(&f, "r", &ns), want);
        /* paged by 7 from the start: the same names */
        memset(&ns2, 0, sizeof(ns2));
        char last[16] = "";
        bool more = true;
        while (more) {
            size_t before = ns2.n;
            assert_int_equal(meta_fsm_tags_list(&f, "r", last[0] ? last : NULL,
                                                7, collect, &ns2, &more),
                             0);
            if (ns2.n == before)
                break;
            const char *end = strrchr(ns2.text, ',');
            snprintf(last, sizeof(last), "%s", end ? end + 1 : ns2.text);
        }
        assert_string_equal(ns2.text, want);
    }
    /* the catalog as repositories come and go */
    const char *repos[] = { "m/b", "a/z", "k", "a/a", "zz" };
    for (int i = 0; i < 5; i++)
        assert_int_equal(
            put_mf(&f, NULL, repos[i], "c", "t", NULL, 0, NULL, 0, NULL),
            META_OK);
    assert_string_equal(catalog_of(&f, &ns), "a/a,a/z,k,m/b,r,zz");
    assert_int_equal(del_mf(&f, NULL, "k", "c"), META_OK);
    assert_true(f.sorted_repos_ok); /* kept, not to be re-sorted */
    assert_string_equal(catalog_of(&f, &ns), "a/a,a/z,m/b,r,zz");
    assert_int_equal(put_mf(&f, NULL, "b", "c", "t", NULL, 0, NULL, 0, NULL),
                     META_OK);
    assert_true(f.sorted_repos_ok);
    assert_string_equal(catalog_of(&f, &ns), "a/a,a/z,b,m/b,r,zz");

    void *buf;
    size_t len;
    assert_int_equal(meta_fsm_snapshot(&f, NULL, &buf, &len, e), 0);
    meta_fsm_init(&g, 10);
    assert_int_equal(meta_fsm_restore(&g, buf, len, e), 0);
    free(buf);
    assert_false(meta__repo_get(&g, "r", false)->sorted_ok);
    assert_string_equal(tags_of(&g, "r", &ns), want);
    assert_true(meta__repo_get(&g, "r", false)->sorted_ok);
    assert_int_equal(put_mf(&g, NULL, "r", "c", "a0", NULL, 0, NULL, 0, NULL),
                     META_OK);
    assert_int_equal(strncmp(tags_of(&g, "r", &ns2), "a0,", 3), 0);
    assert_string_equal(catalog_of(&g, &ns), "a/a,a/z,b,m/b,r,zz");
    meta_fsm_release(&f);
    meta_fsm_release(&g);
}

int main(void)
{
    at_log_configure(getenv("META_LOG") ? getenv("META_LOG") : "error");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listing),
        cmocka_unit_test(test_referrers),
        cmocka_unit_test(test_manifest_record),
        cmocka_unit_test(test_blob_source),
        cmocka_unit_test(test_tag_table),
        cmocka_unit_test(test_tag_index_churn),
        cmocka_unit_test(test_sorted_lists_incremental),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
