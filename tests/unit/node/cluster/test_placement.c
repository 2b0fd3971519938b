/* Unit tests of cluster settings in the FSM (SetSetting, snapshots, the
 * local queue of tagged pushes) and of placement rules (parse, match). */
#include "common/compat.h"

#include <setjmp.h>

#include <cmocka.h>

#include "node/cluster/placement.h"
#include "raft/settings.h"
#include "raft/snapshot.h"
#include "tests/unit/raft/fixture.h"

static void *plain_alloc(size_t n)
{
    return at_malloc(n);
}

static int set(struct meta_fsm *f, const char *key, const char *value)
{
    struct meta_cmd c = { .kind = META_CMD_SET_SETTING,
                          .set_setting = { .key = key, .value = value } };
    return apply_cmd(f, NULL, &c);
}

static void manifest(struct meta_fsm *f,
                     const char *repo,
                     const char *tag,
                     const char *layer,
                     struct at_digest *out)
{
    char body[128];
    snprintf(body, sizeof(body), "{\"layer\":\"%s\",\"tag\":\"%s\"}", layer,
             tag != NULL ? tag : "");
    assert_int_equal(put_mf(f, NULL, repo, body, tag, &layer, 1, NULL, 0, NULL),
                     META_OK);
    *out = dg(body);
}

static void test_settings(void **state)
{
    AT_UNUSED(state);
    struct meta_fsm f;
    uint64_t index;
    meta_fsm_init(&f, 16);
    assert_null(meta__setting_get(&f, "placement", &index));
    assert_int_equal(index, 0);
    assert_int_equal(set(&f, "placement", "{\"rules\":[]}"), META_OK);
    assert_string_equal(meta__setting_get(&f, "placement", &index),
                        "{\"rules\":[]}");
    assert_int_equal(index, next_index - 1);
    /* replaced, then removed by an empty value */
    assert_int_equal(set(&f, "placement", "v2"), META_OK);
    assert_string_equal(meta__setting_get(&f, "placement", NULL), "v2");
    assert_int_equal(set(&f, "other_key", "x"), META_OK);
    assert_int_equal(set(&f, "placement", ""), META_OK);
    assert_null(meta__setting_get(&f, "placement", NULL));
    assert_string_equal(meta__setting_get(&f, "other_key", NULL), "x");
    /* bad keys are refused when building the command */
    char errmsg[AT_ERRMSG_SIZE];
    void *buf = NULL;
    size_t len;
    struct meta_cmd bad = { .kind = META_CMD_SET_SETTING,
                            .set_setting = { .key = "Bad-Key", .value = "v" } };
    assert_int_equal(
        meta__cmd_pack(&bad, NULL, plain_alloc, &buf, &len, errmsg), AT_EINVAL);
    bad.set_setting.key = "";
    assert_int_equal(
        meta__cmd_pack(&bad, NULL, plain_alloc, &buf, &len, errmsg), AT_EINVAL);
    /* ... and by apply, whoever built them */
    assert_int_equal(meta__setting_set(&f, 99, "Bad-Key", "v", 1),
                     META_INVALID);

    /* snapshots keep settings and their indexes */
    assert_int_equal(set(&f, "placement", "{\"rules\":[1]}"), META_OK);
    uint64_t want_index = next_index - 1;
    struct meta_fsm g;
    fsm_copy(&f, &g, 16);
    assert_string_equal(meta__setting_get(&g, "placement", &index),
                        "{\"rules\":[1]}");
    assert_int_equal(index, want_index);
    assert_string_equal(meta__setting_get(&g, "other_key", NULL), "x");
    meta_fsm_release(&g);
    meta_fsm_release(&f);
}

struct blob_ctx {
    struct at_digest want;
    unsigned seen;
};

static void each_blob(void *data, const struct at_digest *b, uint64_t size)
{
    struct blob_ctx *c = data;
    assert_true(at_digest_equal(b, &c->want));
    assert_int_equal(size, strlen("layer-1"));
    c->seen++;
}

static void test_pushes(void **state)
{
    AT_UNUSED(state);
    struct meta_fsm f;
    struct meta_push *p;
    struct at_digest m1, m2, m3;
    meta_fsm_init(&f, 16);
    assert_int_equal(
        blob_stored(&f, NULL, "prod/app", "layer-1", strlen("layer-1")),
        META_OK);
    /* recording off: nothing queued */
    manifest(&f, "prod/app", "v1", "layer-1", &m1);
    assert_int_equal(meta__pushes_take(&f, &p), 0);
    meta_pushes_free(p, 0);
    f.pushes_record = true;
    manifest(&f, "prod/app", "v2", "layer-1", &m2);
    manifest(&f, "prod/app", NULL, "layer-1", &m3); /* untagged: not queued */
    size_t n = meta__pushes_take(&f, &p);
    assert_int_equal(n, 1);
    assert_string_equal(p[0].repo, "prod/app");
    assert_true(at_digest_equal(&p[0].manifest, &m2));
    meta_pushes_free(p, n);
    assert_int_equal(meta__pushes_take(&f, &p), 0);
    meta_pushes_free(p, 0);
    /* the blobs of a manifest */
    struct blob_ctx c = { dg("layer-1"), 0 };
    meta__manifest_blobs(&f, "prod/app", &m2, each_blob, &c);
    assert_int_equal(c.seen, 1);
    meta_fsm_release(&f);
}

static void test_rules(void **state)
{
    AT_UNUSED(state);
    char errmsg[AT_ERRMSG_SIZE];
    struct node_placement *p = NULL;
    const char *good =
        "{\"rules\":[{\"repositories\":\"prod/*\",\"regions\":[\"eu\",\"us\"]},"
        "{\"repositories\":\"edge/cache\",\"regions\":[\"edge-1\"]}]}";
    assert_int_equal(node_placement_parse(good, strlen(good), &p, errmsg), 0);
    assert_int_equal(node_placement_count(p), 2);
    assert_true(node_placement_wants(p, "prod/app", "eu"));
    assert_true(
        node_placement_wants(p, "prod/team/app", "us")); /* '*' crosses / */
    assert_false(node_placement_wants(p, "prod/app", "edge-1"));
    assert_false(node_placement_wants(p, "dev/app", "eu"));
    assert_true(node_placement_wants(p, "edge/cache", "edge-1"));
    assert_false(node_placement_wants(p, "edge/cache2", "edge-1"));
    assert_false(node_placement_wants(p, "prod/app", ""));
    node_placement_free(p);

    const char *empty = "{\"rules\":[]}";
    assert_int_equal(node_placement_parse(empty, strlen(empty), &p, errmsg), 0);
    assert_int_equal(node_placement_count(p), 0);
    node_placement_free(p);

    static const char *bad[] = {
        "",
        "[]",
        "{\"rules\":{}}",
        "{\"rules\":[],\"x\":1}",
        "{\"rules\":[{\"repositories\":\"a\"}]}",
        "{\"rules\":[{\"repositories\":\"a\",\"regions\":[]}]}",
        "{\"rules\":[{\"repositories\":\"\",\"regions\":[\"eu\"]}]}",
        "{\"rules\":[{\"repositories\":\"A B\",\"regions\":[\"eu\"]}]}",
        "{\"rules\":[{\"repositories\":\"a\",\"regions\":[\"e u\"]}]}",
        "{\"rules\":[{\"repositories\":\"a\",\"regions\":[7]}]}",
        "{\"rules\":[{\"repositories\":\"a\",\"regions\":[\"eu\"],\"x\":1}]}",
        "{\"rules\":[1]}",
        "{\"rules\":[],\"rules\":[]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        p = NULL;
        assert_int_equal(
            node_placement_parse(bad[i], strlen(bad[i]), &p, errmsg),
            AT_EINVAL);
        assert_null(p);
        assert_true(errmsg[0] != '\0');
    }
    /* too many regions in one rule */
    char big[2048];
    size_t o = (size_t)snprintf(
        big, sizeof(big), "{\"rules\":[{\"repositories\":\"a\",\"regions\":[");
    for (int i = 0; i <= NODE_PLACEMENT_MAX_REGIONS; i++)
        o += (size_t)snprintf(big + o, sizeof(big) - o, "%s\"r%d\"",
                              i ? "," : "", i);
    snprintf(big + o, sizeof(big) - o, "]}]}");
    assert_int_equal(node_placement_parse(big, strlen(big), &p, errmsg),
                     AT_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_pushes),
        cmocka_unit_test(test_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
