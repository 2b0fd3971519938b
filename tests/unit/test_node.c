/* Unit tests of node/: configuration loading and manifest validation. */
#include "common/compat.h"

#include <fcntl.h>
#include <setjmp.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/common.h"
#include "node/config.h"
#include "node/manifest_parse.h"

/* ---- helpers ---- */

/* Write text to a fresh temp file; returns its path (caller frees+unlinks). */
static char *write_temp(const char *text)
{
    const char *dir = getenv("TMPDIR");
    char *path = at_asprintf("%s/atoll-test-XXXXXX.yaml",
                             dir != NULL && dir[0] != '\0' ? dir : "/tmp");
    int fd = mkstemps(path, 5);
    size_t len = strlen(text);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

static void drop_temp(char *path)
{
    unlink(path);
    free(path);
}

/* Load with argv/envp given as NULL-terminated lists. */
static int load(struct node_config *c,
                const char **argv,
                const char **envp,
                char *errmsg)
{
    int argc = 0;

    while (argv != NULL && argv[argc] != NULL)
        argc++;
    return node_config_load(c, argc, (char **)argv, (char **)envp, errmsg);
}

/* ---- config ---- */

static void test_config_defaults(void **state)
{
    struct node_config c;
    char errmsg[AT_ERRMSG_SIZE];
    /* ATOLL_BIN / ATOLL_BUILD belong to the test runner, not to us. */
    const char *envp[] = { "HOME=/root", "PATH=/bin", "ATOLL_BIN=/x/atoll",
                           "ATOLL_BUILD=/x", NULL };
    AT_UNUSED(state);

    assert_int_equal(load(&c, NULL, envp, errmsg), 0);
    assert_string_equal(c.config_file, "");
    assert_string_equal(c.listen, "127.0.0.1:5000");
    assert_string_equal(c.data_dir, "./data");
    assert_string_equal(c.raft_dir, "");
    assert_string_equal(c.name, "");
    assert_string_equal(c.log_level, "info");
    assert_true(c.reserve_bytes == 1ull << 30);
    assert_true(c.upload_ttl_ms == 24ull * 3600 * 1000);
    assert_true(c.max_manifest_bytes == 4ull << 20);
    assert_true(c.header_timeout_ms == 30000);
    assert_true(c.idle_timeout_ms == 60000);
    assert_true(c.body_timeout_ms == 60000);
    assert_true(c.write_timeout_ms == 60000);
    assert_true(c.shutdown_grace_ms == 10000);
    assert_true(c.election_timeout_ms == 1000);
    assert_true(c.heartbeat_timeout_ms == 100);
    assert_true(c.snapshot_threshold == 16384);
    assert_true(c.snapshot_trailing == 4096);
    node_config_release(&c);
    assert_null(c.listen);
    node_config_release(&c); /* idempotent */

    /* NULL envp is fine too. */
    assert_int_equal(load(&c, NULL, NULL, errmsg), 0);
    node_config_release(&c);
}

static void test_config_precedence(void **state)
{
    struct node_config c;
    char errmsg[AT_ERRMSG_SIZE];
    char *path = write_temp(
        "# atoll config\n"
        "listen: 0.0.0.0:6000\n"
        "data_dir: /yaml/data\n"
        "name: \"from-yaml\"\n"
        "max_manifest_bytes: 8MiB\n"
        "upload_ttl: 2h\n"
        "snapshot_threshold: 100\n"
        "raft_dir: ~\n");
    char *cfg_env = at_asprintf("ATOLL_CONFIG=%s", path);
    const char *env_file_only[] = { cfg_env, NULL };
    const char *envp[] = { cfg_env, "ATOLL_DATA_DIR=/env/data",
                           "ATOLL_NAME=from-env", "OTHER=1", NULL };
    const char *argv[] = { "--name", "from-flag", "--upload-ttl=90m", NULL };
    AT_UNUSED(state);

    /* File over defaults. */
    assert_int_equal(load(&c, NULL, env_file_only, errmsg), 0);
    assert_string_equal(c.config_file, path);
    assert_string_equal(c.listen, "0.0.0.0:6000");
    assert_string_equal(c.data_dir, "/yaml/data");
    assert_string_equal(c.name, "from-yaml");
    assert_string_equal(c.raft_dir, "");
    assert_true(c.max_manifest_bytes == 8ull << 20);
    assert_true(c.upload_ttl_ms == 2ull * 3600 * 1000);
    assert_true(c.snapshot_threshold == 100);
    assert_true(c.snapshot_trailing == 4096);
    node_config_release(&c);

    /* Env over file; flags over env. */
    assert_int_equal(load(&c, argv, envp, errmsg), 0);
    assert_string_equal(c.listen, "0.0.0.0:6000");
    assert_string_equal(c.data_dir, "/env/data");
    assert_string_equal(c.name, "from-flag");
    assert_true(c.upload_ttl_ms == 90ull * 60 * 1000);
    assert_true(c.max_manifest_bytes == 8ull << 20);
    node_config_release(&c);

    /* --config (both spellings) beats ATOLL_CONFIG; the last flag wins. */
    {
        char *other = write_temp("listen: 127.0.0.1:7000\n");
        char *flag = at_asprintf("--config=%s", other);
        const char *a1[] = { "--config", other, NULL };
        const char *a2[] = { flag, "--listen", "127.0.0.1:1",
                             "--listen=127.0.0.1:2", NULL };

        assert_int_equal(load(&c, a1, envp, errmsg), 0);
        assert_string_equal(c.config_file, other);
        assert_string_equal(c.listen, "127.0.0.1:7000");
        assert_string_equal(c.data_dir, "/env/data");
        node_config_release(&c);
        assert_int_equal(load(&c, a2, NULL, errmsg), 0);
        assert_string_equal(c.listen, "127.0.0.1:2");
        node_config_release(&c);
        free(flag);
        drop_temp(other);
    }
    free(cfg_env);
    drop_temp(path);
}

static void test_config_yaml_forms(void **state)
{
    struct node_config c;
    char errmsg[AT_ERRMSG_SIZE];
    const char *argv[] = { "--config", NULL, NULL };
    static const char *ok[] = {
        "",
        "# only a comment\n",
        "---\n",
        "---\nlisten: '[::1]:0'\n...\n",
        "{listen: \"127.0.0.1:0\", log_level: \"warn,raft:debug\"}\n",
        "name:\n",
    };
    AT_UNUSED(state);

    for (size_t i = 0; i < AT_ARRAY_SIZE(ok); i++) {
        char *path = write_temp(ok[i]);
        argv[1] = path;
        if (load(&c, argv, NULL, errmsg) != 0)
            fail_msg("yaml %zu rejected: %s", i, errmsg);
        node_config_release(&c);
        drop_temp(path);
    }
}

static void expect_yaml_error(const char *yaml, const char *want)
{
    struct node_config c;
    char errmsg[AT_ERRMSG_SIZE];
    char *path = write_temp(yaml);
    const char *argv[] = { "--config", path, NULL };
    int rv = load(&c, argv, NULL, errmsg);

    if (rv != AT_EINVAL)
        fail_msg("yaml '%s' accepted (rv %d)", yaml, rv);
    if (strstr(errmsg, want) == NULL)
        fail_msg("yaml '%s': message '%s' lacks '%s'", yaml, errmsg, want);
    if (strstr(errmsg, path) == NULL)
        fail_msg("message '%s' does not name the file", errmsg);
    assert_null(c.listen); /* released on error */
    drop_temp(path);
}

static void test_config_yaml_errors(void **state)
{
    AT_UNUSED(state);

    expect_yaml_error("listen: 127.0.0.1:5000\n\ndat_dir: /x\n",
                      "line 3: unknown key 'dat_dir'");
    expect_yaml_error("max_manifest_bytes: lots\n",
                      "line 1: invalid value 'lots' for max_manifest_bytes");
    expect_yaml_error("header_timeout: 5 parsecs\n", "header_timeout");
    expect_yaml_error("listen: nowhere\n", "listen");
    expect_yaml_error("log_level: chatty\n", "log_level");
    expect_yaml_error("snapshot_threshold: -1\n", "snapshot_threshold");
    expect_yaml_error("data_dir:\n  nested: 1\n", "line 2");
    expect_yaml_error("data_dir: [a, b]\n", "line 1: a sequence");
    expect_yaml_error("- a\n- b\n", "line 1");
    expect_yaml_error("just a scalar\n", "expected a mapping");
    expect_yaml_error("name: a\nname: b\n", "line 2: duplicate key 'name'");
    expect_yaml_error("name: &x a\ndata_dir: *x\n", "line 2: an alias");
    expect_yaml_error("config: other.yaml\n", "unknown key 'config'");
    expect_yaml_error("listen: [\n", "line");
    expect_yaml_error("a: 1\n---\nb: 2\n", "line 1: unknown key 'a'");
    expect_yaml_error("---\nname: a\n---\nname: b\n",
                      "line 3: only one YAML document");
    expect_yaml_error("listen: \"a\tb\n", "line");
    expect_yaml_error("name: \"a\\x00b\"\n",
                      "line 1: value of name contains a NUL");
}

static void expect_error(const char **argv, const char **envp, const char *want)
{
    struct node_config c;
    char errmsg[AT_ERRMSG_SIZE];
    int rv = load(&c, argv, envp, errmsg);

    if (rv != AT_EINVAL)
        fail_msg("accepted (rv %d), want error '%s'", rv, want);
    if (strstr(errmsg, want) == NULL)
        fail_msg("message '%s' lacks '%s'", errmsg, want);
    assert_null(c.listen);
}

static void test_config_errors(void **state)
{
    const char *a_unknown[] = { "--listne", "x", NULL };
    const char *a_unknown_eq[] = { "--bogus=1", NULL };
    const char *a_missing[] = { "--listen", NULL };
    const char *a_positional[] = { "serve", NULL };
    const char *a_single_dash[] = { "-v", NULL };
    const char *a_bad_size[] = { "--reserve-bytes", "1.5GiB", NULL };
    const char *a_bad_port[] = { "--listen=127.0.0.1:70000", NULL };
    const char *a_bad_dur[] = { "--idle-timeout=soon", NULL };
    const char *a_hb[] = { "--heartbeat-timeout=2s", NULL };
    const char *a_zero_mf[] = { "--max-manifest-bytes=0", NULL };
    const char *a_no_file[] = { "--config", "/nonexistent/atoll.yaml", NULL };
    const char *e_bad[] = { "ATOLL_SNAPSHOT_TRAILING=many", NULL };
    AT_UNUSED(state);

    expect_error(a_unknown, NULL, "unknown flag '--listne'");
    expect_error(a_unknown_eq, NULL, "unknown flag '--bogus'");
    expect_error(a_missing, NULL, "flag --listen: missing value");
    expect_error(a_positional, NULL, "unexpected argument 'serve'");
    expect_error(a_single_dash, NULL, "unexpected argument '-v'");
    expect_error(a_bad_size, NULL,
                 "flag --reserve-bytes: invalid value '1.5GiB'");
    expect_error(a_bad_port, NULL, "flag --listen");
    expect_error(a_bad_dur, NULL, "flag --idle-timeout");
    expect_error(a_hb, NULL, "heartbeat_timeout");
    expect_error(a_zero_mf, NULL, "max_manifest_bytes");
    expect_error(a_no_file, NULL, "/nonexistent/atoll.yaml");
    expect_error(NULL, e_bad,
                 "environment variable ATOLL_SNAPSHOT_TRAILING: invalid "
                 "value 'many'");
}

/* Run load with stdout sent to /dev/null (usage goes there). */
static int load_quiet(struct node_config *c, const char **argv, char *errmsg)
{
    int saved;
    int devnull;
    int rv;

    fflush(stdout);
    saved = dup(1);
    devnull = open("/dev/null", O_WRONLY);
    assert_true(saved >= 0 && devnull >= 0);
    dup2(devnull, 1);
    close(devnull);
    rv = load(c, argv, NULL, errmsg);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    return rv;
}

static void test_config_help(void **state)
{
    struct node_config c;
    char errmsg[AT_ERRMSG_SIZE];
    const char *a1[] = { "--help", NULL };
    const char *a2[] = { "--listen", "x:1", "-h", NULL };
    const char *a3[] = { "--bogus", "--help", NULL };
    AT_UNUSED(state);

    assert_int_equal(load_quiet(&c, a1, errmsg), 1);
    assert_null(c.listen);
    assert_int_equal(load_quiet(&c, a2, errmsg), 1);
    assert_int_equal(load_quiet(&c, a3, errmsg), 1);
}

static void test_config_usage(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    /* Every option: flag, env var, YAML key, default. */
    static const char *want[] = {
        "--config",
        "ATOLL_CONFIG",
        "--listen",
        "ATOLL_LISTEN",
        "yaml listen",
        "default 127.0.0.1:5000",
        "--data-dir",
        "ATOLL_DATA_DIR",
        "yaml data_dir",
        "default ./data",
        "--raft-dir",
        "--name",
        "--log-level",
        "ATOLL_LOG_LEVEL",
        "--reserve-bytes",
        "default 1GiB",
        "--upload-ttl",
        "default 24h",
        "--max-manifest-bytes",
        "default 4MiB",
        "--header-timeout",
        "--idle-timeout",
        "--body-timeout",
        "--write-timeout",
        "--shutdown-grace",
        "--election-timeout",
        "--heartbeat-timeout",
        "--snapshot-threshold",
        "ATOLL_SNAPSHOT_TRAILING",
        "yaml snapshot_trailing",
        "default 4096",
        "--help",
    };
    AT_UNUSED(state);

    assert_non_null(f);
    node_config_usage(f);
    fclose(f);
    for (size_t i = 0; i < AT_ARRAY_SIZE(want); i++) {
        if (strstr(text, want[i]) == NULL)
            fail_msg("usage lacks '%s'", want[i]);
    }
    free(text);
}

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

static void test_config_cluster(void **state)
{
    struct node_config c;
    char errmsg[AT_ERRMSG_SIZE];
    char *secret = write_temp("hunter2-file\nignored second line\n");
    const char *argv_file[] = { "--cluster-secret-file",
                                secret,
                                "--join",
                                "10.0.0.1:5001",
                                "--role",
                                "standby",
                                "--read-consistency",
                                "local",
                                "--target-voters",
                                "5",
                                "--region",
                                "eu",
                                NULL };
    const char *argv_both[] = { "--cluster-secret", "from-flag",
                                "--cluster-secret-file", secret, NULL };
    const char *bad_role[] = { "--role", "captain", NULL };
    const char *bad_rc[] = { "--read-consistency", "eventual", NULL };
    const char *bad_tv[] = { "--target-voters", "2", NULL };
    const char *bad_join[] = { "--join", "nohost", NULL };
    const char *bad_secret[] = { "--cluster-secret-file", "/nonexistent/x",
                                 NULL };
    const char *env_secret[] = { "ATOLL_CLUSTER_SECRET=t0ps3cret", NULL };
    const char *bad_level_with_secret[] = { "--log-level", "loud", NULL };
    AT_UNUSED(state);

    assert_int_equal(load(&c, NULL, NULL, errmsg), 0);
    assert_string_equal(c.peer_listen, "127.0.0.1:5001");
    assert_string_equal(c.join, "");
    assert_string_equal(c.cluster_secret, "");
    assert_string_equal(c.role, "voter");
    assert_string_equal(c.read_consistency, "linearizable");
    assert_true(c.target_voters == 3);
    assert_string_equal(c.region, "");
    node_config_release(&c);

    assert_int_equal(load(&c, argv_file, NULL, errmsg), 0);
    assert_string_equal(c.cluster_secret, "hunter2-file");
    assert_string_equal(c.join, "10.0.0.1:5001");
    assert_string_equal(c.role, "standby");
    assert_string_equal(c.read_consistency, "local");
    assert_true(c.target_voters == 5);
    assert_string_equal(c.region, "eu");
    node_config_release(&c);

    /* An explicit secret wins over the file. */
    assert_int_equal(load(&c, argv_both, NULL, errmsg), 0);
    assert_string_equal(c.cluster_secret, "from-flag");
    node_config_release(&c);

    assert_int_equal(load(&c, bad_role, NULL, errmsg), AT_EINVAL);
    assert_non_null(strstr(errmsg, "role"));
    assert_int_equal(load(&c, bad_rc, NULL, errmsg), AT_EINVAL);
    assert_int_equal(load(&c, bad_tv, NULL, errmsg), AT_EINVAL);
    assert_non_null(strstr(errmsg, "target_voters"));
    assert_int_equal(load(&c, bad_join, NULL, errmsg), AT_EINVAL);
    assert_int_equal(load(&c, bad_secret, NULL, errmsg), AT_EINVAL);

    /* The secret never shows up in messages. */
    assert_int_equal(load(&c, bad_level_with_secret, env_secret, errmsg),
                     AT_EINVAL);
    assert_null(strstr(errmsg, "t0ps3cret"));
    drop_temp(secret);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_precedence),
        cmocka_unit_test(test_config_yaml_forms),
        cmocka_unit_test(test_config_yaml_errors),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_config_help),
        cmocka_unit_test(test_config_usage),
        cmocka_unit_test(test_config_cluster),
        cmocka_unit_test(test_manifest_oci),
        cmocka_unit_test(test_manifest_infer),
        cmocka_unit_test(test_manifest_oci_index),
        cmocka_unit_test(test_manifest_docker),
        cmocka_unit_test(test_manifest_artifact),
        cmocka_unit_test(test_manifest_foreign_layers),
        cmocka_unit_test(test_manifest_errors),
        cmocka_unit_test(test_manifest_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
