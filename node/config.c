/* Node configuration: one option table drives defaults, YAML, env, flags and
 * usage. */
#include "common/compat.h"

#include <ctype.h>
#include <strings.h>
#include <yaml.h>

#include "common/common.h"
#include "node/config.h"

/* A config file is a handful of lines; anything this big is a mistake. */
#define CONFIG_FILE_MAX ((size_t)1 << 20)

enum opt_type {
    OPT_STRING,
    OPT_SIZE,
    OPT_DURATION,
    OPT_UINT,
    OPT_BOOL,
};

struct opt {
    const char *key;  /* YAML key */
    const char *flag; /* command-line flag */
    const char *env;  /* environment variable */
    enum opt_type type;
    size_t offset; /* into struct node_config */
    const char *def;
    const char *help;
    bool secret;  /* never print the value */
    bool no_yaml; /* not settable from the file (e.g. the file itself) */
    /* Extra validation of a string value; NULL = none. */
    int (*check)(const char *value, char *why, size_t whylen);
};

static int check_listen(const char *v, char *why, size_t whylen);
static int check_log_level(const char *v, char *why, size_t whylen);
static int check_log_format(const char *v, char *why, size_t whylen);
static int check_join(const char *v, char *why, size_t whylen);
static int check_role(const char *v, char *why, size_t whylen);
static int check_advertise(const char *v, char *why, size_t whylen);
static int check_read_consistency(const char *v, char *why, size_t whylen);
static int check_min_copies(const char *v, char *why, size_t whylen);
static int check_auth(const char *v, char *why, size_t whylen);
static int check_challenge(const char *v, char *why, size_t whylen);

#define F(field) offsetof(struct node_config, field)

/* The one table. Flags and env names follow from the key (data_dir ->
 * --data-dir, ATOLL_DATA_DIR); a unit test checks that they do. */
static const struct opt opts[] = {
    { "config", "--config", "ATOLL_CONFIG", OPT_STRING, F(config_file), "",
      "YAML file with any of the keys below (a flat mapping)", false, true,
      NULL },
    { "listen", "--listen", "ATOLL_LISTEN", OPT_STRING, F(listen),
      "127.0.0.1:5000", "address:port of the OCI API (port 0 = any)", false,
      false, check_listen },
    { "tls_cert", "--tls-cert", "ATOLL_TLS_CERT", OPT_STRING, F(tls_cert), "",
      "PEM file with the API's certificate and its chain: the API then "
      "serves HTTPS only (re-read on SIGHUP and when it changes)",
      false, false, NULL },
    { "tls_key", "--tls-key", "ATOLL_TLS_KEY", OPT_STRING, F(tls_key), "",
      "PEM file with the private key of tls_cert (not encrypted)", false, false,
      NULL },
    { "peer_tls_ca", "--peer-tls-ca", "ATOLL_PEER_TLS_CA", OPT_STRING,
      F(peer_tls_ca), "",
      "PEM file of the cluster CA: with peer_tls_cert and peer_tls_key, all "
      "node-to-node traffic runs over mutual TLS, peers need a certificate "
      "from this CA (atoll cert)",
      false, false, NULL },
    { "peer_tls_cert", "--peer-tls-cert", "ATOLL_PEER_TLS_CERT", OPT_STRING,
      F(peer_tls_cert), "",
      "PEM file with this node's peer certificate (server and client), "
      "signed by peer_tls_ca (re-read on SIGHUP and when it changes)",
      false, false, NULL },
    { "peer_tls_key", "--peer-tls-key", "ATOLL_PEER_TLS_KEY", OPT_STRING,
      F(peer_tls_key), "", "PEM file with the private key of peer_tls_cert",
      false, false, NULL },
    { "data_dir", "--data-dir", "ATOLL_DATA_DIR", OPT_STRING, F(data_dir),
      "./data", "directory for blobs and uploads", false, false, NULL },
    { "raft_dir", "--raft-dir", "ATOLL_RAFT_DIR", OPT_STRING, F(raft_dir), "",
      "directory for the raft log; empty = <data_dir>/raft", false, false,
      NULL },
    { "name", "--name", "ATOLL_NAME", OPT_STRING, F(name), "",
      "node name, unique in the cluster; empty = hostname", false, false,
      NULL },
    { "log_level", "--log-level", "ATOLL_LOG_LEVEL", OPT_STRING, F(log_level),
      "info", "log levels, e.g. info or warn,raft:debug", false, false,
      check_log_level },
    { "log_format", "--log-format", "ATOLL_LOG_FORMAT", OPT_STRING,
      F(log_format), "text",
      "text, or json: every log line one JSON object (time, level, "
      "component, caller, msg and the line's fields)",
      false, false, check_log_format },
    { "access_log", "--access-log", "ATOLL_ACCESS_LOG", OPT_BOOL, F(access_log),
      "true",
      "one line per API request at info, component access (method, path, "
      "status, bytes, user, duration, request id, remote address)",
      false, false, NULL },
    { "reserve_bytes", "--reserve-bytes", "ATOLL_RESERVE_BYTES", OPT_SIZE,
      F(reserve_bytes), "1GiB",
      "refuse blob uploads when free disk space drops below this", false, false,
      NULL },
    { "raft_reserve", "--raft-reserve", "ATOLL_RAFT_RESERVE", OPT_SIZE,
      F(raft_reserve_bytes), "64MiB",
      "the leader refuses writes (507) while the raft dir's file system has "
      "less free space than this, and takes them again when space returns "
      "(0: no check; libraft must never meet a full disk)",
      false, false, NULL },
    { "upload_ttl", "--upload-ttl", "ATOLL_UPLOAD_TTL", OPT_DURATION,
      F(upload_ttl_ms), "24h", "purge upload sessions idle for this long",
      false, false, NULL },
    { "max_manifest_bytes", "--max-manifest-bytes", "ATOLL_MAX_MANIFEST_BYTES",
      OPT_SIZE, F(max_manifest_bytes), "4MiB",
      "largest manifest accepted on push", false, false, NULL },
    { "header_timeout", "--header-timeout", "ATOLL_HEADER_TIMEOUT",
      OPT_DURATION, F(header_timeout_ms), "30s",
      "time allowed to receive request headers", false, false, NULL },
    { "idle_timeout", "--idle-timeout", "ATOLL_IDLE_TIMEOUT", OPT_DURATION,
      F(idle_timeout_ms), "60s",
      "close keep-alive connections idle for this long", false, false, NULL },
    { "body_timeout", "--body-timeout", "ATOLL_BODY_TIMEOUT", OPT_DURATION,
      F(body_timeout_ms), "60s",
      "longest pause between two reads of a request body", false, false, NULL },
    { "write_timeout", "--write-timeout", "ATOLL_WRITE_TIMEOUT", OPT_DURATION,
      F(write_timeout_ms), "60s",
      "longest wait for a client to accept response bytes", false, false,
      NULL },
    { "shutdown_grace", "--shutdown-grace", "ATOLL_SHUTDOWN_GRACE",
      OPT_DURATION, F(shutdown_grace_ms), "10s",
      "time given to in-flight requests on shutdown", false, false, NULL },
    { "election_timeout", "--election-timeout", "ATOLL_ELECTION_TIMEOUT",
      OPT_DURATION, F(election_timeout_ms), "1000ms", "raft election timeout",
      false, false, NULL },
    { "heartbeat_timeout", "--heartbeat-timeout", "ATOLL_HEARTBEAT_TIMEOUT",
      OPT_DURATION, F(heartbeat_timeout_ms), "100ms",
      "raft heartbeat interval (must be below election_timeout)", false, false,
      NULL },
    { "leader_wait", "--leader-wait", "ATOLL_LEADER_WAIT", OPT_DURATION,
      F(leader_wait_ms), "5s",
      "a write or consistent read that finds no leader (an election under "
      "way) waits this long for one before failing with 503 (0s: fails at "
      "once)",
      false, false, NULL },
    { "snapshot_threshold", "--snapshot-threshold", "ATOLL_SNAPSHOT_THRESHOLD",
      OPT_UINT, F(snapshot_threshold), "16384",
      "raft entries between snapshots", false, false, NULL },
    { "snapshot_trailing", "--snapshot-trailing", "ATOLL_SNAPSHOT_TRAILING",
      OPT_UINT, F(snapshot_trailing), "4096",
      "raft entries kept after a snapshot", false, false, NULL },
    { "snapshot_fetch", "--snapshot-fetch", "ATOLL_SNAPSHOT_FETCH", OPT_BOOL,
      F(snapshot_fetch), "true",
      "a node that fell behind fetches the leader's snapshot file from its "
      "peer listener (false: the leader sends the file's bytes inside "
      "raft, as releases before did)",
      false, false, NULL },
    { "peer_listen", "--peer-listen", "ATOLL_PEER_LISTEN", OPT_STRING,
      F(peer_listen), "127.0.0.1:5001",
      "address:port of the node-to-node listener (raft, forwarded writes, "
      "join); advertised to the other nodes",
      false, false, check_listen },
    { "join", "--join", "ATOLL_JOIN", OPT_STRING, F(join), "",
      "comma-separated peer addresses host:port (IPs or DNS names, a name "
      "resolving to every member) of cluster members to join on first start, "
      "retried until one answers; empty = bootstrap a new cluster",
      false, false, check_join },
    { "bootstrap_expect", "--bootstrap-expect", "ATOLL_BOOTSTRAP_EXPECT",
      OPT_UINT, F(bootstrap_expect), "0",
      "with join: nodes started at once wait until this many of them see "
      "each other through gossip, then exactly one bootstraps the cluster "
      "and the others join it (0 = off)",
      false, false, NULL },
    { "cluster_secret", "--cluster-secret", "ATOLL_CLUSTER_SECRET", OPT_STRING,
      F(cluster_secret), "",
      "shared secret every node presents on the peer listener", true, false,
      NULL },
    { "cluster_secret_file", "--cluster-secret-file",
      "ATOLL_CLUSTER_SECRET_FILE", OPT_STRING, F(cluster_secret_file), "",
      "file holding the cluster secret (used when cluster_secret is empty)",
      false, false, NULL },
    { "role", "--role", "ATOLL_ROLE", OPT_STRING, F(role), "voter",
      "voter (may vote, up to target_voters), standby (never votes) or edge "
      "(a standby at a remote site: never votes, local reads by default)",
      false, false, check_role },
    { "read_consistency", "--read-consistency", "ATOLL_READ_CONSISTENCY",
      OPT_STRING, F(read_consistency), "",
      "linearizable (reads ask the leader) or local (answer from local "
      "state; clients may send X-Atoll-Min-Index); empty = local for "
      "role edge, else linearizable",
      false, false, check_read_consistency },
    { "target_voters", "--target-voters", "ATOLL_TARGET_VOTERS", OPT_UINT,
      F(target_voters), "3",
      "voters the leader promotes joining nodes to (1, 3 or 5)", false, false,
      NULL },
    { "region", "--region", "ATOLL_REGION", OPT_STRING, F(region), "",
      "region label of this node (peer selection)", false, false, NULL },
    { "zone", "--zone", "ATOLL_ZONE", OPT_STRING, F(zone), "",
      "zone label of this node (shown in the members view; gossip spreads "
      "it)",
      false, false, NULL },
    { "advertise", "--advertise", "ATOLL_ADVERTISE", OPT_STRING, F(advertise),
      "",
      "host name or IP the other nodes use to reach this node's API and "
      "peer ports; empty = the listen host, or the machine's hostname when "
      "listening on 0.0.0.0 or ::",
      false, false, check_advertise },
    { "min_copies", "--min-copies", "ATOLL_MIN_COPIES", OPT_STRING,
      F(min_copies), "auto",
      "stores that must hold every blob of a manifest before its PUT "
      "answers 201: 1..16, or auto (2 when the cluster has 2+ nodes)",
      false, false, check_min_copies },
    { "copy_wait", "--copy-wait", "ATOLL_COPY_WAIT", OPT_DURATION,
      F(copy_wait_ms), "30s",
      "how long a manifest PUT waits for min_copies before a 503", false, false,
      NULL },
    { "force_new_cluster", "--force-new-cluster", "ATOLL_FORCE_NEW_CLUSTER",
      OPT_BOOL, F(force_new_cluster), "false",
      "recovery after losing quorum: rewrite the raft configuration so that "
      "this node is the only voter, then serve (use once, on the survivor "
      "with the longest log; see docs/cluster.md)",
      false, false, NULL },
    { "gc_grace", "--gc-grace", "ATOLL_GC_GRACE", OPT_DURATION, F(gc_grace_ms),
      "1h", "garbage collection keeps unreferenced blobs younger than this",
      false, false, NULL },
    { "gc_interval", "--gc-interval", "ATOLL_GC_INTERVAL", OPT_DURATION,
      F(gc_interval_ms), "0s",
      "run garbage collection this often on the leader (0s = only on "
      "'atoll gc')",
      false, false, NULL },
    { "gc_scan_delay", "--gc-scan-delay", "ATOLL_GC_SCAN_DELAY", OPT_DURATION,
      F(gc_scan_delay_ms), "30s",
      "after a start or a snapshot install, wait this long, then delete "
      "local blob copies older than that moment that no record knows",
      false, false, NULL },
    { "gc_untagged", "--gc-untagged", "ATOLL_GC_UNTAGGED", OPT_BOOL,
      F(gc_untagged), "false",
      "garbage collection also deletes untagged manifests older than the "
      "grace (kept: children of an index, subjects of referrers and "
      "referrers of a live subject)",
      false, false, NULL },
    { "gossip", "--gossip", "ATOLL_GOSSIP", OPT_BOOL, F(gossip), "true",
      "run SWIM membership over UDP on the peer port's number (needs a "
      "cluster secret; false: liveness from timeouts only, no autopilot)",
      false, false, NULL },
    { "gossip_probe_interval", "--gossip-probe-interval",
      "ATOLL_GOSSIP_PROBE_INTERVAL", OPT_DURATION, F(gossip_probe_interval_ms),
      "1s", "gossip: one probe of a random member per interval", false, false,
      NULL },
    { "gossip_probe_timeout", "--gossip-probe-timeout",
      "ATOLL_GOSSIP_PROBE_TIMEOUT", OPT_DURATION, F(gossip_probe_timeout_ms),
      "500ms",
      "gossip: wait this long for a direct ack before asking others "
      "(below gossip_probe_interval; raise both on WAN links)",
      false, false, NULL },
    { "gossip_interval", "--gossip-interval", "ATOLL_GOSSIP_INTERVAL",
      OPT_DURATION, F(gossip_interval_ms), "200ms",
      "gossip: push queued updates to 3 random members this often", false,
      false, NULL },
    { "gossip_suspicion_mult", "--gossip-suspicion-mult",
      "ATOLL_GOSSIP_SUSPICION_MULT", OPT_UINT, F(gossip_suspicion_mult), "4",
      "gossip: a suspect is declared dead after at least this x log10(N) "
      "probe intervals (at most 6 times that without confirmations)",
      false, false, NULL },
    { "gossip_retransmit_mult", "--gossip-retransmit-mult",
      "ATOLL_GOSSIP_RETRANSMIT_MULT", OPT_UINT, F(gossip_retransmit_mult), "4",
      "gossip: each update is piggybacked this x log10(N+1) times", false,
      false, NULL },
    { "gossip_push_pull_interval", "--gossip-push-pull-interval",
      "ATOLL_GOSSIP_PUSH_PULL_INTERVAL", OPT_DURATION,
      F(gossip_push_pull_interval_ms), "30s",
      "gossip: exchange the whole member table with a random member over "
      "the peer TCP listener this often (anti-entropy)",
      false, false, NULL },
    { "gossip_keyring_file", "--gossip-keyring-file",
      "ATOLL_GOSSIP_KEYRING_FILE", OPT_STRING, F(gossip_keyring_file), "",
      "file with up to 3 more secrets, one per line, whose gossip keys open "
      "packets but never seal (rotating the cluster secret without downtime)",
      false, false, NULL },
    { "leave_on_terminate", "--leave-on-terminate", "ATOLL_LEAVE_ON_TERMINATE",
      OPT_BOOL, F(leave_on_terminate), "false",
      "on SIGTERM leave the cluster for good: others' autopilot removes this "
      "node (false: a stop is a restart to come; others see it left and "
      "treat it like a failure, replacing it after autopilot_dead_after)",
      false, false, NULL },
    { "autopilot", "--autopilot", "ATOLL_AUTOPILOT", OPT_BOOL, F(autopilot),
      "true",
      "the leader promotes stable nodes to voter, replaces voters dead "
      "longer than autopilot_dead_after and removes nodes that left",
      false, false, NULL },
    { "autopilot_dead_after", "--autopilot-dead-after",
      "ATOLL_AUTOPILOT_DEAD_AFTER", OPT_DURATION, F(autopilot_dead_after_ms),
      "2m",
      "autopilot: a voter gossip has seen dead this long is replaced by a "
      "healthy standby (same region first) and demoted",
      false, false, NULL },
    { "autopilot_stabilization", "--autopilot-stabilization",
      "ATOLL_AUTOPILOT_STABILIZATION", OPT_DURATION,
      F(autopilot_stabilization_ms), "10s",
      "autopilot: a node becomes a voter only after being alive and caught "
      "up this long",
      false, false, NULL },
    { "autopilot_max_lag", "--autopilot-max-lag", "ATOLL_AUTOPILOT_MAX_LAG",
      OPT_UINT, F(autopilot_max_lag), "250",
      "autopilot: a node at most this many log entries behind is caught up",
      false, false, NULL },
    { "autopilot_reap_after", "--autopilot-reap-after",
      "ATOLL_AUTOPILOT_REAP_AFTER", OPT_DURATION, F(autopilot_reap_after_ms),
      "72h",
      "autopilot: a standby or edge node gossip has seen dead this long is "
      "removed from the cluster (0s: never); with auto_rejoin it joins "
      "again when it comes back",
      false, false, NULL },
    { "auto_rejoin", "--auto-rejoin", "ATOLL_AUTO_REJOIN", OPT_BOOL,
      F(auto_rejoin), "false",
      "a node the cluster removed while it was away (marker 'removed' in "
      "its raft dir) starts again as a new member: its raft dir is moved "
      "aside and it joins through --join (its blobs stay)",
      false, false, NULL },
    { "bcrypt_cost", "--bcrypt-cost", "ATOLL_BCRYPT_COST", OPT_UINT,
      F(bcrypt_cost), "10",
      "bcrypt cost of new password and robot secret hashes (4-31; each "
      "step doubles the time of a login that is not cached)",
      false, false, NULL },
    { "htpasswd", "--htpasswd", "ATOLL_HTPASSWD", OPT_STRING, F(htpasswd), "",
      "htpasswd file of users local to this node (bcrypt entries only), "
      "read at start and on SIGHUP",
      false, false, NULL },
    { "auth_cache_ttl", "--auth-cache-ttl", "ATOLL_AUTH_CACHE_TTL",
      OPT_DURATION, F(auth_cache_ttl_ms), "60s",
      "how long verified credentials are remembered (0s: bcrypt on every "
      "request)",
      false, false, NULL },
    { "token_issuer", "--token-issuer", "ATOLL_TOKEN_ISSUER", OPT_STRING,
      F(token_issuer), "atoll",
      "issuer (iss) of the bearer tokens of /_atoll/token; the same on "
      "every node",
      false, false, NULL },
    { "token_service", "--token-service", "ATOLL_TOKEN_SERVICE", OPT_STRING,
      F(token_service), "atoll",
      "service name of the bearer tokens (their aud, and service= in "
      "challenges); the same on every node",
      false, false, NULL },
    { "token_realm", "--token-realm", "ATOLL_TOKEN_REALM", OPT_STRING,
      F(token_realm), "",
      "token endpoint URL announced in Bearer challenges; empty: "
      "<scheme>://<Host header>/_atoll/token",
      false, false, NULL },
    { "token_ttl", "--token-ttl", "ATOLL_TOKEN_TTL", OPT_DURATION,
      F(token_ttl_ms), "300s", "lifetime of bearer tokens (at least 60s)",
      false, false, NULL },
    { "auth", "--auth", "ATOLL_AUTH", OPT_STRING, F(auth), "auto",
      "access control on the API: auto (on once a user, robot account, "
      "htpasswd user or policy exists), on, or off",
      false, false, check_auth },
    { "auth_challenge", "--auth-challenge", "ATOLL_AUTH_CHALLENGE", OPT_STRING,
      F(auth_challenge), "basic",
      "the challenge of the registry API's 401: basic (clients send their "
      "credentials on every request), or bearer (clients fetch a token "
      "from /_atoll/token, per the distribution token spec)",
      false, false, check_challenge },
};

#undef F

static const char *type_meta(enum opt_type t)
{
    switch (t) {
    case OPT_STRING:
        return "STRING";
    case OPT_SIZE:
        return "SIZE";
    case OPT_DURATION:
        return "DURATION";
    case OPT_UINT:
        return "N";
    case OPT_BOOL:
        return "BOOL";
    }
    return "VALUE";
}

static const char *type_hint(enum opt_type t)
{
    switch (t) {
    case OPT_STRING:
        return "want a string";
    case OPT_SIZE:
        return "want a size such as 4096, 64KiB, 4MiB, 1GiB";
    case OPT_DURATION:
        return "want a duration such as 250ms, 30s, 5m, 24h";
    case OPT_UINT:
        return "want a non-negative integer";
    case OPT_BOOL:
        return "want true or false";
    }
    return "want a value";
}

static const char *shown(const struct opt *o, const char *value)
{
    return o->secret ? "***" : value;
}

static int check_listen(const char *v, char *why, size_t whylen)
{
    const char *colon = strrchr(v, ':');
    uint64_t port;

    if (colon == NULL || colon == v) {
        snprintf(why, whylen, "want host:port");
        return AT_EINVAL;
    }
    if (at_parse_u64(colon + 1, strlen(colon + 1), &port) != 0 ||
        port > 65535) {
        snprintf(why, whylen, "bad port: want host:port with port 0-65535");
        return AT_EINVAL;
    }
    return 0;
}

/* A comma-separated list of host:port, at most 32 entries. */
static int check_join(const char *v, char *why, size_t whylen)
{
    unsigned n = 0;

    while (*v != '\0') {
        const char *end = strchr(v, ',');
        size_t len = end != NULL ? (size_t)(end - v) : strlen(v);
        char item[256];

        if (len == 0 || len >= sizeof(item) || ++n > 32) {
            snprintf(why, whylen,
                     "want up to 32 host:port separated by commas");
            return AT_EINVAL;
        }
        memcpy(item, v, len);
        item[len] = '\0';
        if (check_listen(item, why, whylen) != 0)
            return AT_EINVAL;
        v += len + (end != NULL);
        if (end != NULL && *v == '\0') {
            snprintf(why, whylen, "trailing comma");
            return AT_EINVAL;
        }
    }
    return 0;
}

static int check_advertise(const char *v, char *why, size_t whylen)
{
    size_t n = strlen(v);

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (!isalnum(c) && c != '.' && c != '-' && c != ':' && c != '_') {
            snprintf(why, whylen, "want a host name or IP address (no port)");
            return AT_EINVAL;
        }
    }
    if (n > 200) {
        snprintf(why, whylen, "longer than 200 characters");
        return AT_EINVAL;
    }
    return 0;
}

static int check_role(const char *v, char *why, size_t whylen)
{
    if (strcmp(v, "voter") == 0 || strcmp(v, "standby") == 0 ||
        strcmp(v, "edge") == 0)
        return 0;
    snprintf(why, whylen, "want voter, standby or edge");
    return AT_EINVAL;
}

static int check_read_consistency(const char *v, char *why, size_t whylen)
{
    if (v[0] == '\0' || strcmp(v, "linearizable") == 0 ||
        strcmp(v, "local") == 0)
        return 0;
    snprintf(why, whylen, "want linearizable or local");
    return AT_EINVAL;
}

static int check_challenge(const char *v, char *why, size_t whylen)
{
    if (strcmp(v, "basic") == 0 || strcmp(v, "bearer") == 0)
        return 0;
    snprintf(why, whylen, "want basic or bearer");
    return AT_EINVAL;
}

static int check_auth(const char *v, char *why, size_t whylen)
{
    if (strcmp(v, "auto") == 0 || strcmp(v, "on") == 0 || strcmp(v, "off") == 0)
        return 0;
    snprintf(why, whylen, "want auto, on or off");
    return AT_EINVAL;
}

static int check_min_copies(const char *v, char *why, size_t whylen)
{
    if (strcmp(v, "auto") == 0)
        return 0;
    if (v[0] >= '1' && v[0] <= '9' &&
        (v[1] == '\0' ||
         (v[0] == '1' && v[1] >= '0' && v[1] <= '6' && v[2] == '\0')))
        return 0;
    snprintf(why, whylen, "want auto or a number from 1 to 16");
    return AT_EINVAL;
}

static bool is_level(const char *s, size_t n)
{
    static const char *names[] = { "debug", "info", "warn", "error", "off" };
    for (size_t i = 0; i < AT_ARRAY_SIZE(names); i++) {
        if (strlen(names[i]) == n && strncasecmp(s, names[i], n) == 0)
            return true;
    }
    return false;
}

static int check_log_format(const char *v, char *why, size_t whylen)
{
    if (strcmp(v, "text") == 0 || strcmp(v, "json") == 0)
        return 0;
    snprintf(why, whylen, "want text or json");
    return AT_EINVAL;
}

/* Mirrors at_log_configure's grammar without touching the global levels. */
static int check_log_level(const char *v, char *why, size_t whylen)
{
    const char *p = v;

    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        const char *colon = memchr(p, ':', len);
        bool ok;

        if (colon == NULL) {
            ok = len == 0 || is_level(p, len);
        } else {
            size_t nlen = (size_t)(colon - p);
            ok = nlen > 0 && nlen < 24 && is_level(colon + 1, len - nlen - 1);
        }
        if (!ok) {
            snprintf(why, whylen,
                     "want debug|info|warn|error|off, optionally with "
                     "component:level items, e.g. warn,raft:debug");
            return AT_EINVAL;
        }
        if (end == NULL)
            break;
        p = end + 1;
    }
    return 0;
}

/* Parse value into the field of c; on failure, errmsg names the option and
 * the source (src, e.g. "flag --listen"). */
static int set_value(struct node_config *c,
                     const struct opt *o,
                     const char *value,
                     const char *src,
                     char *errmsg)
{
    char *base = (char *)c + o->offset;
    char why[160];
    uint64_t u = 0;
    bool b = false;
    int rv = 0;

    why[0] = '\0';
    switch (o->type) {
    case OPT_STRING:
        if (o->check != NULL)
            rv = o->check(value, why, sizeof(why));
        break;
    case OPT_SIZE:
        rv = at_parse_size(value, &u);
        break;
    case OPT_DURATION:
        rv = at_parse_duration_ms(value, &u);
        break;
    case OPT_UINT:
        rv = at_parse_u64(value, strlen(value), &u);
        break;
    case OPT_BOOL:
        rv = at_parse_bool(value, &b);
        break;
    }
    if (rv != 0) {
        at_errmsg_printf(errmsg, "%s: invalid value '%s' for %s: %s", src,
                         shown(o, value), o->key,
                         why[0] != '\0' ? why : type_hint(o->type));
        return AT_EINVAL;
    }
    switch (o->type) {
    case OPT_STRING: {
        char **field = (char **)(void *)base;
        free(*field);
        *field = at_strdup(value);
        break;
    }
    case OPT_SIZE:
    case OPT_DURATION:
    case OPT_UINT:
        memcpy(base, &u, sizeof(u));
        break;
    case OPT_BOOL:
        memcpy(base, &b, sizeof(b));
        break;
    }
    return 0;
}

static const struct opt *find_key(const char *key, size_t len)
{
    for (size_t i = 0; i < AT_ARRAY_SIZE(opts); i++) {
        if (strlen(opts[i].key) == len && memcmp(opts[i].key, key, len) == 0)
            return &opts[i];
    }
    return NULL;
}

static const struct opt *find_flag(const char *flag, size_t len)
{
    for (size_t i = 0; i < AT_ARRAY_SIZE(opts); i++) {
        if (strlen(opts[i].flag) == len && memcmp(opts[i].flag, flag, len) == 0)
            return &opts[i];
    }
    return NULL;
}

static const struct opt *find_env(const char *name, size_t len)
{
    for (size_t i = 0; i < AT_ARRAY_SIZE(opts); i++) {
        if (strlen(opts[i].env) == len && memcmp(opts[i].env, name, len) == 0)
            return &opts[i];
    }
    return NULL;
}

static int read_file(const char *path, char **out, size_t *outlen, char *errmsg)
{
    FILE *f = fopen(path, "rb");
    struct at_buf b;
    char chunk[4096];
    size_t n;
    int rv = 0;

    if (f == NULL) {
        at_errmsg_printf(errmsg, "config file '%s': cannot open: %s", path,
                         strerror(errno));
        return AT_EINVAL;
    }
    at_buf_init(&b, CONFIG_FILE_MAX);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (at_buf_append(&b, chunk, n) != 0) {
            at_errmsg_printf(errmsg, "config file '%s': larger than %zu bytes",
                             path, CONFIG_FILE_MAX);
            rv = AT_EINVAL;
            goto out_close;
        }
    }
    if (ferror(f)) {
        at_errmsg_printf(errmsg, "config file '%s': read error", path);
        rv = AT_EINVAL;
        goto out_close;
    }
    *out = at_buf_take(&b, outlen);
out_close:
    at_buf_release(&b);
    fclose(f);
    return rv;
}

static const char *event_name(yaml_event_type_t t)
{
    switch (t) {
    case YAML_SEQUENCE_START_EVENT:
        return "a sequence";
    case YAML_MAPPING_START_EVENT:
        return "a mapping";
    case YAML_ALIAS_EVENT:
        return "an alias";
    case YAML_SCALAR_EVENT:
        return "a scalar";
    default:
        return "unexpected content";
    }
}

/* Plain ~ / null / empty are YAML nulls: treat them as the empty string. */
static const char *scalar_text(const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;
    if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
        (strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
         strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0))
        return "";
    return v;
}

/* The file is one flat mapping of scalar keys to scalar values (or empty). */
static int load_yaml(struct node_config *c, const char *path, char *errmsg)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    char *text = NULL;
    size_t len = 0;
    char src[AT_ERRMSG_SIZE];
    bool seen[AT_ARRAY_SIZE(opts)];
    /* 0 stream, 1 document, 2 mapping: key, 3 mapping: value, 4 done */
    int state = 0;
    const struct opt *cur = NULL;
    int rv;

    memset(seen, 0, sizeof(seen));
    rv = read_file(path, &text, &len, errmsg);
    if (rv != 0)
        return rv;
    if (!yaml_parser_initialize(&parser)) {
        at_errmsg_printf(errmsg, "config file '%s': yaml init failed", path);
        rv = AT_EINVAL;
        goto out_free_text;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    for (;;) {
        unsigned long line;

        if (!yaml_parser_parse(&parser, &ev)) {
            at_errmsg_printf(
                errmsg, "config file '%s' line %lu: %s", path,
                (unsigned long)parser.problem_mark.line + 1,
                parser.problem != NULL ? parser.problem : "yaml syntax error");
            rv = AT_EINVAL;
            goto out_parser;
        }
        line = (unsigned long)ev.start_mark.line + 1;
        snprintf(src, sizeof(src), "config file '%s' line %lu", path, line);
        switch (ev.type) {
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (state != 0) {
                at_errmsg_printf(errmsg, "%s: only one YAML document allowed",
                                 src);
                rv = AT_EINVAL;
            }
            state = 1;
            break;
        case YAML_STREAM_END_EVENT:
            state = 4;
            break;
        case YAML_MAPPING_START_EVENT:
            if (state == 1) {
                state = 2;
                break;
            }
            at_errmsg_printf(errmsg, "%s: %s", src,
                             state == 3 ? "value must be a scalar, not a "
                                          "mapping"
                                        : "nested mappings are not allowed");
            rv = AT_EINVAL;
            break;
        case YAML_MAPPING_END_EVENT:
            state = 1;
            break;
        case YAML_SCALAR_EVENT:
            if (state == 1) {
                /* "---" or a lone null: an empty configuration. */
                if (scalar_text(&ev)[0] != '\0') {
                    at_errmsg_printf(errmsg,
                                     "%s: expected a mapping of keys to "
                                     "values",
                                     src);
                    rv = AT_EINVAL;
                }
            } else if (state == 2) {
                const char *k = (const char *)ev.data.scalar.value;
                cur = find_key(k, ev.data.scalar.length);
                if (cur == NULL || cur->no_yaml) {
                    at_errmsg_printf(errmsg, "%s: unknown key '%s'", src, k);
                    rv = AT_EINVAL;
                } else if (seen[cur - opts]) {
                    at_errmsg_printf(errmsg, "%s: duplicate key '%s'", src, k);
                    rv = AT_EINVAL;
                } else {
                    seen[cur - opts] = true;
                    state = 3;
                }
            } else if (strlen((const char *)ev.data.scalar.value) !=
                       ev.data.scalar.length) {
                at_errmsg_printf(errmsg, "%s: value of %s contains a NUL byte",
                                 src, cur->key);
                rv = AT_EINVAL;
            } else {
                rv = set_value(c, cur, scalar_text(&ev), src, errmsg);
                state = 2;
            }
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_ALIAS_EVENT:
        default:
            at_errmsg_printf(
                errmsg, "%s: %s is not allowed here%s", src,
                event_name(ev.type),
                state == 3 && cur != NULL ? " (want a scalar)" : "");
            rv = AT_EINVAL;
            break;
        }
        yaml_event_delete(&ev);
        if (rv != 0 || state == 4)
            break;
    }
out_parser:
    yaml_parser_delete(&parser);
out_free_text:
    free(text);
    return rv;
}

/* One flag occurrence, applied after the file and the environment. */
struct flag_set {
    const struct opt *o;
    const char *value; /* borrowed from argv */
};

static bool is_bool_literal(const char *s)
{
    bool b;
    return at_parse_bool(s, &b) == 0;
}

/* Collect flags; returns 1 for --help, 0, or AT_EINVAL. */
static int scan_flags(int argc,
                      char **argv,
                      struct flag_set *sets,
                      size_t *nsets,
                      char *errmsg)
{
    size_t n = 0;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *eq;
        const struct opt *o;
        size_t flen;

        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            at_errmsg_printf(errmsg, "unexpected argument '%s' (see --help)",
                             a);
            return AT_EINVAL;
        }
        eq = strchr(a, '=');
        flen = eq != NULL ? (size_t)(eq - a) : strlen(a);
        o = find_flag(a, flen);
        if (o == NULL) {
            at_errmsg_printf(errmsg, "unknown flag '%.*s' (see --help)",
                             (int)flen, a);
            return AT_EINVAL;
        }
        sets[n].o = o;
        if (eq != NULL) {
            sets[n].value = eq + 1;
        } else if (o->type == OPT_BOOL) {
            /* "--flag" alone means true; "--flag false" also works. */
            if (i + 1 < argc && is_bool_literal(argv[i + 1]))
                sets[n].value = argv[++i];
            else
                sets[n].value = "true";
        } else if (i + 1 < argc) {
            sets[n].value = argv[++i];
        } else {
            at_errmsg_printf(errmsg, "flag %s: missing value", o->flag);
            return AT_EINVAL;
        }
        n++;
    }
    *nsets = n;
    return 0;
}

static int check_config(const struct node_config *c, char *errmsg)
{
    if (c->heartbeat_timeout_ms == 0 ||
        c->heartbeat_timeout_ms >= c->election_timeout_ms) {
        at_errmsg_printf(errmsg,
                         "heartbeat_timeout (%" PRIu64
                         "ms) must be above 0 and below election_timeout "
                         "(%" PRIu64 "ms)",
                         c->heartbeat_timeout_ms, c->election_timeout_ms);
        return AT_EINVAL;
    }
    if (c->max_manifest_bytes == 0) {
        at_errmsg_printf(errmsg, "max_manifest_bytes must be above 0");
        return AT_EINVAL;
    }
    if ((c->tls_cert[0] == '\0') != (c->tls_key[0] == '\0')) {
        at_errmsg_printf(errmsg,
                         "tls_cert and tls_key go together: %s is "
                         "set, %s is not",
                         c->tls_cert[0] != '\0' ? "tls_cert" : "tls_key",
                         c->tls_cert[0] != '\0' ? "tls_key" : "tls_cert");
        return AT_EINVAL;
    }
    if ((c->peer_tls_ca[0] == '\0') != (c->peer_tls_cert[0] == '\0') ||
        (c->peer_tls_ca[0] == '\0') != (c->peer_tls_key[0] == '\0')) {
        at_errmsg_printf(errmsg,
                         "peer_tls_ca, peer_tls_cert and peer_tls_key "
                         "go together: give all three or none");
        return AT_EINVAL;
    }
    if (c->data_dir[0] == '\0') {
        at_errmsg_printf(errmsg, "data_dir must not be empty");
        return AT_EINVAL;
    }
    if (c->target_voters != 1 && c->target_voters != 3 &&
        c->target_voters != 5) {
        at_errmsg_printf(errmsg,
                         "target_voters must be 1, 3 or 5 (got %" PRIu64 ")",
                         c->target_voters);
        return AT_EINVAL;
    }
    if (c->bootstrap_expect > 5 ||
        (c->bootstrap_expect > 0 && c->join[0] == '\0')) {
        at_errmsg_printf(errmsg,
                         "bootstrap_expect must be 0 to 5 and needs "
                         "join (the addresses of the nodes)");
        return AT_EINVAL;
    }
    if (c->gossip_probe_timeout_ms == 0 ||
        c->gossip_probe_timeout_ms >= c->gossip_probe_interval_ms ||
        c->gossip_interval_ms == 0 || c->gossip_suspicion_mult == 0 ||
        c->gossip_retransmit_mult == 0) {
        at_errmsg_printf(errmsg,
                         "gossip_probe_timeout must be above 0 and below "
                         "gossip_probe_interval; gossip_interval, "
                         "gossip_suspicion_mult and gossip_retransmit_mult "
                         "above 0");
        return AT_EINVAL;
    }
    if (c->token_ttl_ms < 60000) {
        at_errmsg_printf(errmsg, "token_ttl must be at least 60s");
        return AT_EINVAL;
    }
    if (c->bcrypt_cost < 4 || c->bcrypt_cost > 31) {
        at_errmsg_printf(errmsg,
                         "bcrypt_cost must be 4 to 31 (got %" PRIu64 ")",
                         c->bcrypt_cost);
        return AT_EINVAL;
    }
    return 0;
}

/* cluster_secret_file -> cluster_secret (first line, at most 4 KiB). */
static int load_secret_file(struct node_config *c, char *errmsg)
{
    char buf[4097];
    size_t n;
    FILE *f;

    if (c->cluster_secret[0] != '\0' || c->cluster_secret_file[0] == '\0')
        return 0;
    f = fopen(c->cluster_secret_file, "re");
    if (f == NULL) {
        at_errmsg_printf(errmsg, "cluster_secret_file '%s': %s",
                         c->cluster_secret_file, strerror(errno));
        return AT_EINVAL;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (buf[0] == '\0' || n == sizeof(buf) - 1) {
        at_errmsg_printf(errmsg,
                         "cluster_secret_file '%s': want one line of 1 to "
                         "4096 bytes",
                         c->cluster_secret_file);
        return AT_EINVAL;
    }
    free(c->cluster_secret);
    c->cluster_secret = at_strdup(buf);
    explicit_bzero(buf, sizeof(buf));
    return 0;
}

/* ATOLL_* variables that atoll's own tooling sets (tests/run.py exports them
 * to every process it starts) and that are not settings. Any other unknown
 * ATOLL_* variable is an error: a misspelt setting must not be ignored. */
static bool is_tool_env(const char *name, size_t len)
{
    /* ATOLL_MALLOC_HUGEPAGES is read by main before any config
     * (docs/configuration.md); the others are the CLI's and tests' */
    static const char *tool[] = { "ATOLL_BIN", "ATOLL_BUILD", "ATOLL_ADDR",
                                  "ATOLL_MALLOC_HUGEPAGES", "ATOLL_KEEP_TMP" };
    for (size_t i = 0; i < AT_ARRAY_SIZE(tool); i++) {
        if (strlen(tool[i]) == len && memcmp(tool[i], name, len) == 0)
            return true;
    }
    return false;
}

/* The flag and env names must follow from the key: data_dir -> --data-dir,
 * ATOLL_DATA_DIR. Checked once per load; a mismatch is a bug in the table. */
static bool table_ok(void)
{
    for (size_t i = 0; i < AT_ARRAY_SIZE(opts); i++) {
        const struct opt *o = &opts[i];
        size_t n = strlen(o->key);

        if (strlen(o->flag) != n + 2 || strlen(o->env) != n + 6 ||
            memcmp(o->flag, "--", 2) != 0 || memcmp(o->env, "ATOLL_", 6) != 0)
            return false;
        for (size_t j = 0; j < n; j++) {
            char k = o->key[j];
            if (o->flag[2 + j] != (k == '_' ? '-' : k) ||
                o->env[6 + j] != (char)toupper((unsigned char)k))
                return false;
        }
    }
    return true;
}

/* see config.h */
int node_config_load(struct node_config *c,
                     int argc,
                     char **argv,
                     char **envp,
                     char *errmsg)
{
    struct flag_set *sets = NULL;
    size_t nsets = 0;
    const char *file = NULL;
    char src[AT_ERRMSG_SIZE];
    int rv;

    memset(c, 0, sizeof(*c));
    errmsg[0] = '\0';
    AT_ASSERT(table_ok());
    for (size_t i = 0; i < AT_ARRAY_SIZE(opts); i++) {
        rv = set_value(c, &opts[i], opts[i].def, "default", errmsg);
        AT_ASSERT(rv == 0); /* the table's defaults must parse */
    }

    if (argc < 0)
        argc = 0;
    sets = at_calloc((size_t)argc + 1, sizeof(*sets));
    rv = scan_flags(argc, argv, sets, &nsets, errmsg);
    if (rv == 1) {
        node_config_usage(stdout);
        goto out_release;
    }
    if (rv != 0)
        goto out_release;

    /* The file named by the last --config flag, else ATOLL_CONFIG. */
    for (size_t i = 0; i < nsets; i++) {
        if (sets[i].o->offset == offsetof(struct node_config, config_file))
            file = sets[i].value;
    }
    for (size_t i = 0; file == NULL && envp != NULL && envp[i] != NULL; i++) {
        if (strncmp(envp[i], "ATOLL_CONFIG=", 13) == 0)
            file = envp[i] + 13;
    }
    if (file != NULL && file[0] != '\0') {
        rv = set_value(c, &opts[0], file, "config", errmsg);
        if (rv != 0)
            goto out_release;
        rv = load_yaml(c, file, errmsg);
        if (rv != 0)
            goto out_release;
    }

    for (size_t i = 0; envp != NULL && envp[i] != NULL; i++) {
        const char *e = envp[i];
        const char *eq = strchr(e, '=');
        const struct opt *o;
        size_t nlen;

        if (strncmp(e, "ATOLL_", 6) != 0 || eq == NULL)
            continue;
        nlen = (size_t)(eq - e);
        o = find_env(e, nlen);
        if (o == NULL) {
            /* Other tools share the ATOLL_ prefix (ATOLL_ADDR for the CLI,
             * test runners): an unknown variable is worth a warning, not a
             * refusal to start. */
            if (!is_tool_env(e, nlen))
                fprintf(stderr,
                        "atoll: ignoring unknown environment variable "
                        "'%.*s'\n",
                        (int)nlen, e);
            continue;
        }
        if (o == &opts[0])
            continue; /* ATOLL_CONFIG: handled above */
        snprintf(src, sizeof(src), "environment variable %s", o->env);
        rv = set_value(c, o, eq + 1, src, errmsg);
        if (rv != 0)
            goto out_release;
    }

    for (size_t i = 0; i < nsets; i++) {
        if (sets[i].o == &opts[0])
            continue;
        snprintf(src, sizeof(src), "flag %s", sets[i].o->flag);
        rv = set_value(c, sets[i].o, sets[i].value, src, errmsg);
        if (rv != 0)
            goto out_release;
    }

    rv = check_config(c, errmsg);
    if (rv == 0)
        rv = load_secret_file(c, errmsg);
    if (rv == 0 && c->read_consistency[0] == '\0') {
        /* by role: an edge site answers from what it has */
        free(c->read_consistency);
        c->read_consistency =
            at_strdup(strcmp(c->role, "edge") == 0 ? "local" : "linearizable");
    }
    if (rv != 0)
        goto out_release;
    free(sets);
    return 0;

out_release:
    free(sets);
    node_config_release(c);
    return rv;
}

/* see config.h */
void node_config_release(struct node_config *c)
{
    for (size_t i = 0; i < AT_ARRAY_SIZE(opts); i++) {
        if (opts[i].type == OPT_STRING) {
            char **field = (char **)(void *)((char *)c + opts[i].offset);
            free(*field);
            *field = NULL;
        }
    }
    memset(c, 0, sizeof(*c));
}

/* see config.h */
void node_config_usage(FILE *f)
{
    fprintf(f,
            "usage: atoll serve [--key value | --key=value]...\n"
            "\n"
            "Every option can be set, from lowest to highest precedence, by\n"
            "its default, a key in the YAML config file (--config FILE or\n"
            "ATOLL_CONFIG), an ATOLL_* environment variable, or a flag.\n"
            "Sizes take units (4096, 64KiB, 4MiB, 1GiB); durations too\n"
            "(250ms, 30s, 5m, 24h; a bare number is seconds).\n"
            "\n"
            "Options:\n");
    for (size_t i = 0; i < AT_ARRAY_SIZE(opts); i++) {
        const struct opt *o = &opts[i];
        char left[64];

        snprintf(left, sizeof(left), "%s %s", o->flag, type_meta(o->type));
        fprintf(f, "  %-26s %s\n", left, o->help);
        fprintf(f, "  %-26s env %s", "", o->env);
        if (!o->no_yaml)
            fprintf(f, ", yaml %s", o->key);
        if (o->def[0] != '\0')
            fprintf(f, ", default %s", shown(o, o->def));
        else
            fprintf(f, ", default empty");
        fprintf(f, "\n");
    }
    fprintf(f, "  %-26s %s\n", "-h, --help", "print this help and exit");
}
