/* Unit tests of node/config.c: flags, environment, YAML, defaults. */
#include "common/compat.h"

#include <fcntl.h>
#include <setjmp.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/common.h"
#include "node/config.h"

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

/* TLS: the certificate and key come as a pair, from any source. */
static void test_config_tls(void **state)
{
    const char *a_pair[] = { "--tls-cert", "/c.pem", "--tls-key=/k.pem", NULL };
    const char *e_pair[] = { "ATOLL_TLS_CERT=/ec.pem", "ATOLL_TLS_KEY=/ek.pem",
                             NULL };
    const char *a_cert[] = { "--tls-cert", "/c.pem", NULL };
    const char *e_key[] = { "ATOLL_TLS_KEY=/k.pem", NULL };
    char *yaml = write_temp("tls_cert: /y.pem\ntls_key: /yk.pem\n");
    const char *a_yaml[] = { "--config", yaml, NULL };
    struct node_config c;
    char errmsg[AT_ERRMSG_SIZE];
    AT_UNUSED(state);

    assert_int_equal(load(&c, NULL, NULL, errmsg), 0);
    assert_string_equal(c.tls_cert, "");
    assert_string_equal(c.tls_key, "");
    node_config_release(&c);
    assert_int_equal(load(&c, a_pair, NULL, errmsg), 0);
    assert_string_equal(c.tls_cert, "/c.pem");
    assert_string_equal(c.tls_key, "/k.pem");
    node_config_release(&c);
    assert_int_equal(load(&c, NULL, e_pair, errmsg), 0);
    assert_string_equal(c.tls_cert, "/ec.pem");
    assert_string_equal(c.tls_key, "/ek.pem");
    node_config_release(&c);
    assert_int_equal(load(&c, a_yaml, NULL, errmsg), 0);
    assert_string_equal(c.tls_cert, "/y.pem");
    assert_string_equal(c.tls_key, "/yk.pem");
    node_config_release(&c);
    expect_error(a_cert, NULL, "tls_cert is set, tls_key is not");
    expect_error(NULL, e_key, "tls_key is set, tls_cert is not");
    drop_temp(yaml);
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

/* The cluster settings a load with argv gives. */
struct cluster_want {
    const char **argv;
    const char *peer_listen, *join, *secret, *role, *consistency;
    unsigned voters;
    const char *region;
};

static void expect_cluster(const struct cluster_want *w)
{
    struct node_config c;
    char errmsg[AT_ERRMSG_SIZE];

    assert_int_equal(load(&c, w->argv, NULL, errmsg), 0);
    assert_string_equal(c.peer_listen, w->peer_listen);
    assert_string_equal(c.join, w->join);
    assert_string_equal(c.cluster_secret, w->secret);
    assert_string_equal(c.role, w->role);
    assert_string_equal(c.read_consistency, w->consistency);
    assert_true(c.target_voters == w->voters);
    assert_string_equal(c.region, w->region);
    node_config_release(&c);
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

    /* the defaults, then a flag for each (the secret from a file) */
    const struct cluster_want loads[] = {
        { NULL, "127.0.0.1:5001", "", "", "voter", "linearizable", 3, "" },
        { argv_file, "127.0.0.1:5001", "10.0.0.1:5001", "hunter2-file",
          "standby", "local", 5, "eu" },
    };
    for (size_t i = 0; i < AT_ARRAY_SIZE(loads); i++)
        expect_cluster(&loads[i]);

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
        cmocka_unit_test(test_config_tls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
