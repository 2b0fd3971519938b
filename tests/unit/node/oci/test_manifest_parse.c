/* Unit tests of node/oci/manifest_parse.c: manifest and index validation. */
#include "common/compat.h"

#include <setjmp.h>

#include <cmocka.h>

#include "common/common.h"
#include "node/oci/manifest_parse.h"

/* ---- manifests ---- */

#define D_CFG \
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
#define D_L1 \
    "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D_L2 \
    "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D_M1 \
    "sha256:3333333333333333333333333333333333333333333333333333333333333333"
#define D_M2 \
    "sha256:4444444444444444444444444444444444444444444444444444444444444444"

static void assert_digest(const struct at_digest *d, const char *want)
{
    char s[AT_DIGEST_STR_SIZE];
    assert_string_equal(at_digest_format(d, s), want);
}

static int parse(const char *ct,
                 const char *json,
                 struct node_manifest_info *info,
                 char *errmsg)
{
    return node_manifest_parse(ct, json, strlen(json), info, errmsg);
}

static const char oci_manifest[] =
    "{\"schemaVersion\":2,"
    "\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
    "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\","
    "\"digest\":\"" D_CFG
    "\",\"size\":2},"
    "\"layers\":["
    "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
    "\"digest\":\"" D_L1
    "\",\"size\":100},"
    "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
    "\"digest\":\"" D_L2
    "\",\"size\":0,"
    "\"annotations\":{\"org.opencontainers.image.title\":\"x.txt\"}}"
    "]}";

static void test_manifest_oci(void **state)
{
    struct node_manifest_info info;
    char errmsg[AT_ERRMSG_SIZE];
    AT_UNUSED(state);

    assert_int_equal(parse(NODE_MT_OCI_MANIFEST, oci_manifest, &info, errmsg),
                     0);
    assert_string_equal(info.media_type, NODE_MT_OCI_MANIFEST);
    assert_false(info.is_index);
    assert_int_equal(info.nblobs, 3);
    assert_digest(&info.blobs[0], D_CFG);
    assert_digest(&info.blobs[1], D_L1);
    assert_digest(&info.blobs[2], D_L2);
    assert_int_equal(info.nmanifests, 0);
    assert_false(info.has_subject);
    assert_string_equal(info.artifact_type,
                        "application/vnd.oci.image.config.v1+json");
    assert_null(info.annotations_json);
    node_manifest_info_release(&info);
    assert_null(info.media_type);

    /* Content-Type with parameters and spaces, or generic, or absent. */
    assert_int_equal(parse(" application/vnd.oci.image.manifest.v1+JSON ; "
                           "charset=utf-8",
                           oci_manifest, &info, errmsg),
                     0);
    node_manifest_info_release(&info);
    assert_int_equal(parse("application/json", oci_manifest, &info, errmsg), 0);
    node_manifest_info_release(&info);
    assert_int_equal(parse(NULL, oci_manifest, &info, errmsg), 0);
    assert_string_equal(info.media_type, NODE_MT_OCI_MANIFEST);
    node_manifest_info_release(&info);
}

static void test_manifest_infer(void **state)
{
    struct node_manifest_info info;
    char errmsg[AT_ERRMSG_SIZE];
    const char *no_mt_manifest =
        "{\"schemaVersion\":2,"
        "\"config\":{\"mediaType\":\"a/b\",\"digest\":\"" D_CFG
        "\",\"size\":2},\"layers\":[]}";
    const char *no_mt_index = "{\"schemaVersion\":2,\"manifests\":[]}";
    AT_UNUSED(state);

    assert_int_equal(parse(NULL, no_mt_manifest, &info, errmsg), 0);
    assert_string_equal(info.media_type, NODE_MT_OCI_MANIFEST);
    assert_int_equal(info.nblobs, 1);
    node_manifest_info_release(&info);
    assert_int_equal(
        parse("application/octet-stream", no_mt_index, &info, errmsg), 0);
    assert_string_equal(info.media_type, NODE_MT_OCI_INDEX);
    assert_true(info.is_index);
    assert_int_equal(info.nmanifests, 0);
    node_manifest_info_release(&info);
    /* The Content-Type alone decides when mediaType is absent. */
    assert_int_equal(
        parse(NODE_MT_DOCKER_MANIFEST, no_mt_manifest, &info, errmsg), 0);
    assert_string_equal(info.media_type, NODE_MT_DOCKER_MANIFEST);
    node_manifest_info_release(&info);
    /* Nothing to go on. */
    assert_int_equal(parse(NULL, "{\"schemaVersion\":2}", &info, errmsg),
                     AT_EINVAL);
    assert_non_null(strstr(errmsg, "media type"));
}

static void test_manifest_oci_index(void **state)
{
    struct node_manifest_info info;
    char errmsg[AT_ERRMSG_SIZE];
    const char *idx =
        "{\"schemaVersion\":2,"
        "\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
        "\"manifests\":["
        "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
        "\"digest\":\"" D_M1
        "\",\"size\":7143,"
        "\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}},"
        "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
        "\"digest\":\"" D_M2
        "\",\"size\":7682,"
        "\"platform\":{\"architecture\":\"arm64\",\"os\":\"linux\"}},"
        "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
        "\"digest\":\"" D_M1
        "\",\"size\":7143}"
        "],\"annotations\":{\"com.example.key1\":\"value1\","
        "\"a\":\"\\\"q\\\"\"}}";
    AT_UNUSED(state);

    assert_int_equal(parse(NODE_MT_OCI_INDEX, idx, &info, errmsg), 0);
    assert_true(info.is_index);
    assert_string_equal(info.media_type, NODE_MT_OCI_INDEX);
    assert_int_equal(info.nblobs, 0);
    /* Duplicates collapse, first-seen order is kept. */
    assert_int_equal(info.nmanifests, 2);
    assert_digest(&info.manifests[0], D_M1);
    assert_digest(&info.manifests[1], D_M2);
    assert_null(info.artifact_type);
    assert_string_equal(
        info.annotations_json,
        "{\"com.example.key1\":\"value1\",\"a\":\"\\\"q\\\"\"}");
    node_manifest_info_release(&info);
}

static void test_manifest_docker(void **state)
{
    struct node_manifest_info info;
    char errmsg[AT_ERRMSG_SIZE];
    const char *v2 =
        "{\"schemaVersion\":2,"
        "\"mediaType\":\"application/"
        "vnd.docker.distribution.manifest.v2+json\","
        "\"config\":{\"mediaType\":"
        "\"application/vnd.docker.container.image.v1+json\","
        "\"size\":1469,\"digest\":\"" D_CFG
        "\"},"
        "\"layers\":[{\"mediaType\":"
        "\"application/vnd.docker.image.rootfs.diff.tar.gzip\","
        "\"size\":3370706,\"digest\":\"" D_L1
        "\"},"
        "{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\","
        "\"size\":3370706,\"digest\":\"" D_L1 "\"}]}";
    const char *list =
        "{\"schemaVersion\":2,\"mediaType\":"
        "\"application/vnd.docker.distribution.manifest.list.v2+json\","
        "\"manifests\":[{\"mediaType\":"
        "\"application/vnd.docker.distribution.manifest.v2+json\","
        "\"size\":528,\"digest\":\"" D_M1
        "\","
        "\"platform\":{\"architecture\":\"amd64\",\"os\":\"linux\"}}]}";
    AT_UNUSED(state);

    assert_int_equal(parse(NODE_MT_DOCKER_MANIFEST, v2, &info, errmsg), 0);
    assert_string_equal(info.media_type, NODE_MT_DOCKER_MANIFEST);
    assert_false(info.is_index);
    assert_int_equal(info.nblobs, 2); /* the repeated layer counts once */
    assert_digest(&info.blobs[0], D_CFG);
    assert_digest(&info.blobs[1], D_L1);
    assert_string_equal(info.artifact_type,
                        "application/vnd.docker.container.image.v1+json");
    node_manifest_info_release(&info);

    assert_int_equal(parse(NODE_MT_DOCKER_LIST, list, &info, errmsg), 0);
    assert_string_equal(info.media_type, NODE_MT_DOCKER_LIST);
    assert_true(info.is_index);
    assert_int_equal(info.nmanifests, 1);
    assert_digest(&info.manifests[0], D_M1);
    node_manifest_info_release(&info);
}

static void test_manifest_artifact(void **state)
{
    struct node_manifest_info info;
    char errmsg[AT_ERRMSG_SIZE];
    const char *art =
        "{\"schemaVersion\":2,"
        "\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
        "\"artifactType\":\"application/vnd.example.sbom.v1\","
        "\"config\":{\"mediaType\":\"application/vnd.oci.empty.v1+json\","
        "\"digest\":\"" D_CFG
        "\",\"size\":2,\"data\":\"e30=\"},"
        "\"layers\":[{\"mediaType\":\"application/vnd.example.sbom.v1\","
        "\"digest\":\"" D_L1
        "\",\"size\":1234}],"
        "\"subject\":{\"mediaType\":"
        "\"application/vnd.oci.image.manifest.v1+json\","
        "\"digest\":\"" D_M1
        "\",\"size\":1024},"
        "\"annotations\":{\"org.opencontainers.image.created\":"
        "\"2024-01-01T00:00:00Z\",\"b\":\"1\"}}";
    /* An index may carry a subject and artifactType as well. */
    const char *idx =
        "{\"schemaVersion\":2,"
        "\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
        "\"artifactType\":\"application/vnd.example.set\","
        "\"manifests\":[],"
        "\"subject\":{\"mediaType\":"
        "\"application/vnd.oci.image.manifest.v1+json\","
        "\"digest\":\"" D_M2 "\",\"size\":1}}";
    /* An empty-config artifact without artifactType is not rejected. */
    const char *bare =
        "{\"schemaVersion\":2,"
        "\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
        "\"config\":{\"mediaType\":\"application/vnd.oci.empty.v1+json\","
        "\"digest\":\"" D_CFG "\",\"size\":2},\"layers\":[]}";
    AT_UNUSED(state);

    assert_int_equal(parse(NODE_MT_OCI_MANIFEST, art, &info, errmsg), 0);
    assert_string_equal(info.artifact_type, "application/vnd.example.sbom.v1");
    assert_true(info.has_subject);
    assert_digest(&info.subject, D_M1);
    assert_int_equal(info.nblobs, 2);
    assert_string_equal(info.annotations_json,
                        "{\"org.opencontainers.image.created\":"
                        "\"2024-01-01T00:00:00Z\",\"b\":\"1\"}");
    node_manifest_info_release(&info);

    assert_int_equal(parse(NULL, idx, &info, errmsg), 0);
    assert_true(info.is_index);
    assert_string_equal(info.artifact_type, "application/vnd.example.set");
    assert_true(info.has_subject);
    assert_digest(&info.subject, D_M2);
    node_manifest_info_release(&info);

    assert_int_equal(parse(NULL, bare, &info, errmsg), 0);
    assert_string_equal(info.artifact_type,
                        "application/vnd.oci.empty.v1+json");
    assert_int_equal(info.nblobs, 1);
    node_manifest_info_release(&info);
}

static void test_manifest_foreign_layers(void **state)
{
    struct node_manifest_info info;
    char errmsg[AT_ERRMSG_SIZE];
    const char *m =
        "{\"schemaVersion\":2,"
        "\"mediaType\":\"application/"
        "vnd.docker.distribution.manifest.v2+json\","
        "\"config\":{\"mediaType\":"
        "\"application/vnd.docker.container.image.v1+json\","
        "\"size\":1,\"digest\":\"" D_CFG
        "\"},"
        "\"layers\":[{\"mediaType\":"
        "\"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip\","
        "\"size\":1000,\"digest\":\"" D_L1
        "\","
        "\"urls\":[\"https://example.com/layer.tar.gz\"]},"
        "{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\","
        "\"size\":10,\"digest\":\"" D_L2 "\"}]}";
    const char *bad_urls =
        "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"a/b\",\"size\":1,"
        "\"digest\":\"" D_CFG
        "\"},\"layers\":[{\"mediaType\":\"a/b\","
        "\"size\":1,\"digest\":\"" D_L1 "\",\"urls\":[1]}]}";
    AT_UNUSED(state);

    assert_int_equal(parse(NULL, m, &info, errmsg), 0);
    assert_int_equal(info.nblobs, 2);
    assert_digest(&info.blobs[0], D_CFG);
    assert_digest(&info.blobs[1], D_L2);
    node_manifest_info_release(&info);

    assert_int_equal(parse(NULL, bad_urls, &info, errmsg), AT_EINVAL);
    assert_non_null(strstr(errmsg, "layers[0].urls[0]"));
}

static void expect_manifest(const char *ct,
                            const char *json,
                            int want_rv,
                            const char *want_msg)
{
    struct node_manifest_info info;
    char errmsg[AT_ERRMSG_SIZE];
    int rv = parse(ct, json, &info, errmsg);

    if (rv != want_rv)
        fail_msg("'%s': rv %d (%s), want %d", json, rv, errmsg, want_rv);
    if (strstr(errmsg, want_msg) == NULL)
        fail_msg("'%s': message '%s' lacks '%s'", json, errmsg, want_msg);
    assert_null(info.media_type);
    assert_null(info.blobs);
    assert_null(info.annotations_json);
}

#define CFG_OK "{\"mediaType\":\"a/b\",\"digest\":\"" D_CFG "\",\"size\":1}"

/* Media types, JSON shape and schema versions. */
static void test_manifest_errors(void **state)
{
    AT_UNUSED(state);

    /* Content-Type and mediaType disagree. */
    expect_manifest(NODE_MT_DOCKER_MANIFEST, oci_manifest, AT_EINVAL,
                    "does not match Content-Type");
    /* schema1, signed or not, by Content-Type, mediaType or shape. */
    expect_manifest("application/vnd.docker.distribution.manifest.v1+prettyjws",
                    "{\"schemaVersion\":1,\"name\":\"x\",\"tag\":\"y\","
                    "\"fsLayers\":[]}",
                    AT_EUNSUPPORTED, "schema1");
    expect_manifest(NULL,
                    "{\"schemaVersion\":1,\"mediaType\":"
                    "\"application/vnd.docker.distribution.manifest.v1+json\"}",
                    AT_EUNSUPPORTED, "schema1");
    expect_manifest(NULL, "{\"schemaVersion\":1,\"fsLayers\":[]}",
                    AT_EUNSUPPORTED, "schema1");
    expect_manifest(NULL,
                    "{\"schemaVersion\":2,\"mediaType\":"
                    "\"application/vnd.oci.artifact.manifest.v1+json\"}",
                    AT_EUNSUPPORTED, "unsupported manifest media type");
    expect_manifest("text/html", "{\"schemaVersion\":2}", AT_EUNSUPPORTED,
                    "'text/html'");
    /* Not JSON, or not an object. */
    expect_manifest(NULL, "", AT_EINVAL, "manifest is not valid JSON");
    expect_manifest(NULL, "{\"schemaVersion\":2,", AT_EINVAL,
                    "manifest is not valid JSON");
    expect_manifest(NULL, "[1,2]", AT_EINVAL, "manifest is not valid JSON");
    expect_manifest(NULL, "\"str\"", AT_EINVAL, "manifest is not valid JSON");
    expect_manifest(NULL, "{} trailing", AT_EINVAL,
                    "manifest is not valid JSON");
    /* Duplicate keys are ambiguous: which one did the client mean? */
    expect_manifest(NULL,
                    "{\"schemaVersion\":2,\"schemaVersion\":2,"
                    "\"manifests\":[]}",
                    AT_EINVAL, "manifest is not valid JSON");
    /* Schema version. */
    expect_manifest(NODE_MT_OCI_INDEX, "{\"schemaVersion\":3,\"manifests\":[]}",
                    AT_EINVAL, "schemaVersion");
    expect_manifest(NODE_MT_OCI_INDEX,
                    "{\"schemaVersion\":\"2\","
                    "\"manifests\":[]}",
                    AT_EINVAL, "schemaVersion");
    expect_manifest(NODE_MT_OCI_INDEX, "{\"manifests\":[]}", AT_EINVAL,
                    "schemaVersion");
    expect_manifest(NULL, "{\"schemaVersion\":2,\"mediaType\":5}", AT_EINVAL,
                    "mediaType must be a string");
}

/* Descriptors, subject, artifact type and annotations. */
static void test_manifest_errors_parts(void **state)
{
    AT_UNUSED(state);

    /* Missing or malformed parts. */
    expect_manifest(NODE_MT_OCI_MANIFEST, "{\"schemaVersion\":2,\"layers\":[]}",
                    AT_EINVAL, "config descriptor is required");
    expect_manifest(NODE_MT_OCI_MANIFEST,
                    "{\"schemaVersion\":2,\"config\":" CFG_OK "}", AT_EINVAL,
                    "layers must be an array");
    expect_manifest(NODE_MT_OCI_INDEX, "{\"schemaVersion\":2}", AT_EINVAL,
                    "manifests must be an array");
    expect_manifest(NODE_MT_OCI_MANIFEST,
                    "{\"schemaVersion\":2,\"config\":[],\"layers\":[]}",
                    AT_EINVAL, "config must be a descriptor");
    expect_manifest(NODE_MT_OCI_MANIFEST,
                    "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"a/b\","
                    "\"digest\":\"sha256:123\",\"size\":1},\"layers\":[]}",
                    AT_EINVAL, "config.digest: invalid digest 'sha256:123'");
    expect_manifest(NODE_MT_OCI_MANIFEST,
                    "{\"schemaVersion\":2,\"config\":" CFG_OK
                    ",\"layers\":["
                    "{\"mediaType\":\"a/b\",\"digest\":\"" D_L1
                    "\",\"size\":-1}]}",
                    AT_EINVAL, "layers[0].size must be a non-negative");
    expect_manifest(NODE_MT_OCI_MANIFEST,
                    "{\"schemaVersion\":2,\"config\":" CFG_OK
                    ",\"layers\":["
                    "{\"mediaType\":\"a/b\",\"digest\":\"" D_L1
                    "\",\"size\":1.5}]}",
                    AT_EINVAL, "layers[0].size");
    expect_manifest(NODE_MT_OCI_MANIFEST,
                    "{\"schemaVersion\":2,\"config\":" CFG_OK
                    ",\"layers\":["
                    "{\"digest\":\"" D_L1 "\",\"size\":1}]}",
                    AT_EINVAL, "layers[0].mediaType");
    expect_manifest(NODE_MT_OCI_MANIFEST,
                    "{\"schemaVersion\":2,\"config\":" CFG_OK
                    ",\"layers\":["
                    "{\"mediaType\":\"a/b\",\"size\":1}]}",
                    AT_EINVAL, "layers[0].digest must be a string");
    expect_manifest(
        NODE_MT_OCI_MANIFEST,
        "{\"schemaVersion\":2,\"config\":" CFG_OK
        ",\"layers\":["
        "{\"mediaType\":\"a/b\",\"digest\":\"sha512:"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaa\",\"size\":1}]}",
        AT_EINVAL, "unsupported digest");
    expect_manifest(NODE_MT_OCI_MANIFEST,
                    "{\"schemaVersion\":2,\"config\":" CFG_OK
                    ",\"layers\":["
                    "\"" D_L1 "\"]}",
                    AT_EINVAL, "layers[0] must be a descriptor");
    expect_manifest(NODE_MT_OCI_MANIFEST,
                    "{\"schemaVersion\":2,\"config\":" CFG_OK
                    ",\"layers\":[],\"subject\":{\"mediaType\":\"a/b\"}}",
                    AT_EINVAL, "subject.digest");
    expect_manifest(NODE_MT_OCI_MANIFEST,
                    "{\"schemaVersion\":2,\"config\":" CFG_OK
                    ",\"layers\":[],\"artifactType\":7}",
                    AT_EINVAL, "artifactType must be a string");
    /* Annotations: strings only. */
    expect_manifest(NODE_MT_OCI_MANIFEST,
                    "{\"schemaVersion\":2,\"config\":" CFG_OK
                    ",\"layers\":[],\"annotations\":{\"a\":1}}",
                    AT_EINVAL, "annotations['a'] must be a string");
    expect_manifest(NODE_MT_OCI_MANIFEST,
                    "{\"schemaVersion\":2,\"config\":" CFG_OK
                    ",\"layers\":[],\"annotations\":[]}",
                    AT_EINVAL, "annotations must be an object");
    expect_manifest(NODE_MT_OCI_INDEX,
                    "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":"
                    "\"a/b\",\"digest\":\"" D_M1
                    "\",\"size\":1,"
                    "\"annotations\":{\"k\":null}}]}",
                    AT_EINVAL, "manifests[0].annotations['k']");
}

static void test_manifest_bounds(void **state)
{
    struct node_manifest_info info;
    char errmsg[AT_ERRMSG_SIZE];
    struct at_buf b;
    const char *desc =
        "{\"mediaType\":\"a/b\",\"digest\":\"" D_M1 "\",\"size\":1}";
    AT_UNUSED(state);

    /* 10,000 entries pass, 10,001 fail. */
    for (int n = 10000; n <= 10001; n++) {
        at_buf_init(&b, 0);
        assert_int_equal(at_buf_puts(&b,
                                     "{\"schemaVersion\":2,"
                                     "\"manifests\":["),
                         0);
        for (int i = 0; i < n; i++)
            assert_int_equal(at_buf_printf(&b, "%s%s", i ? "," : "", desc), 0);
        assert_int_equal(at_buf_puts(&b, "]}"), 0);
        if (n == 10000) {
            assert_int_equal(
                node_manifest_parse(NULL, b.data, b.len, &info, errmsg), 0);
            assert_int_equal(info.nmanifests, 1);
            node_manifest_info_release(&info);
        } else {
            assert_int_equal(
                node_manifest_parse(NULL, b.data, b.len, &info, errmsg),
                AT_EINVAL);
            assert_non_null(strstr(errmsg, "at most 10000"));
        }
        at_buf_release(&b);
    }

    /* Deep nesting is an error, not a stack overflow. */
    at_buf_init(&b, 0);
    for (int i = 0; i < 100000; i++)
        assert_int_equal(at_buf_puts(&b, "["), 0);
    assert_int_equal(node_manifest_parse(NULL, b.data, b.len, &info, errmsg),
                     AT_EINVAL);
    at_buf_release(&b);

    /* Not NUL-terminated input: only len bytes are read. */
    {
        char *copy = at_memdup(oci_manifest, sizeof(oci_manifest) - 1);
        assert_int_equal(
            node_manifest_parse(NULL, copy, sizeof(oci_manifest) - 1, &info,
                                errmsg),
            0);
        node_manifest_info_release(&info);
        free(copy);
    }
    /* Embedded NUL bytes in strings are rejected. */
    expect_manifest(NULL, "{\"schemaVersion\":2,\"mediaType\":\"a\\u0000b\"}",
                    AT_EINVAL, "manifest is not valid JSON");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_manifest_oci),
        cmocka_unit_test(test_manifest_infer),
        cmocka_unit_test(test_manifest_oci_index),
        cmocka_unit_test(test_manifest_docker),
        cmocka_unit_test(test_manifest_artifact),
        cmocka_unit_test(test_manifest_foreign_layers),
        cmocka_unit_test(test_manifest_errors),
        cmocka_unit_test(test_manifest_errors_parts),
        cmocka_unit_test(test_manifest_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
