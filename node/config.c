/* The node's options: the one table (defaults, YAML keys, ATOLL_*
 * variables, flags, help) and the checks of string values. Loading them
 * is config_load.c's. */
#include "common/compat.h"

#include <ctype.h>
#include <strings.h>

#include "common/common.h"
#include "node/config.h"

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
static int check_events_url(const char *v, char *why, size_t whylen);

#define F(field) offsetof(struct node_config, field)

/* The one table. Flags and env names follow from the key (data_dir ->
 * --data-dir, ATOLL_DATA_DIR); a unit test checks that they do. */
const struct node_opt node_opts[] = {
    { "config", "--config", "ATOLL_CONFIG", NODE_OPT_STRING, F(config_file), "",
      "YAML file with any of the keys below (a flat mapping)", false, true,
      NULL },
    { "listen", "--listen", "ATOLL_LISTEN", NODE_OPT_STRING, F(listen),
      "127.0.0.1:5000", "address:port of the OCI API (port 0 = any)", false,
      false, check_listen },
    { "tls_cert", "--tls-cert", "ATOLL_TLS_CERT", NODE_OPT_STRING, F(tls_cert),
      "",
      "PEM file with the API's certificate and its chain: the API then "
      "serves HTTPS only (re-read on SIGHUP and when it changes)",
      false, false, NULL },
    { "tls_key", "--tls-key", "ATOLL_TLS_KEY", NODE_OPT_STRING, F(tls_key), "",
      "PEM file with the private key of tls_cert (not encrypted)", false, false,
      NULL },
    { "peer_tls_ca", "--peer-tls-ca", "ATOLL_PEER_TLS_CA", NODE_OPT_STRING,
      F(peer_tls_ca), "",
      "PEM file of the cluster CA: with peer_tls_cert and peer_tls_key, all "
      "node-to-node traffic runs over mutual TLS, peers need a certificate "
      "from this CA (atoll cert)",
      false, false, NULL },
    { "peer_tls_cert", "--peer-tls-cert", "ATOLL_PEER_TLS_CERT",
      NODE_OPT_STRING, F(peer_tls_cert), "",
      "PEM file with this node's peer certificate (server and client), "
      "signed by peer_tls_ca (re-read on SIGHUP and when it changes)",
      false, false, NULL },
    { "peer_tls_key", "--peer-tls-key", "ATOLL_PEER_TLS_KEY", NODE_OPT_STRING,
      F(peer_tls_key), "", "PEM file with the private key of peer_tls_cert",
      false, false, NULL },
    { "data_dir", "--data-dir", "ATOLL_DATA_DIR", NODE_OPT_STRING, F(data_dir),
      "./data", "directory for blobs and uploads", false, false, NULL },
    { "raft_dir", "--raft-dir", "ATOLL_RAFT_DIR", NODE_OPT_STRING, F(raft_dir),
      "", "directory for the raft log; empty = <data_dir>/raft", false, false,
      NULL },
    { "name", "--name", "ATOLL_NAME", NODE_OPT_STRING, F(name), "",
      "node name, unique in the cluster; empty = hostname", false, false,
      NULL },
    { "log_level", "--log-level", "ATOLL_LOG_LEVEL", NODE_OPT_STRING,
      F(log_level), "info", "log levels, e.g. info or warn,raft:debug", false,
      false, check_log_level },
    { "log_format", "--log-format", "ATOLL_LOG_FORMAT", NODE_OPT_STRING,
      F(log_format), "text",
      "text, or json: every log line one JSON object (time, level, "
      "component, caller, msg and the line's fields)",
      false, false, check_log_format },
    { "access_log", "--access-log", "ATOLL_ACCESS_LOG", NODE_OPT_BOOL,
      F(access_log), "true",
      "one line per API request at info, component access (method, path, "
      "status, bytes, user, duration, request id, remote address)",
      false, false, NULL },
    { "reserve_bytes", "--reserve-bytes", "ATOLL_RESERVE_BYTES", NODE_OPT_SIZE,
      F(reserve_bytes), "1GiB",
      "refuse blob uploads when free disk space drops below this", false, false,
      NULL },
    { "raft_reserve", "--raft-reserve", "ATOLL_RAFT_RESERVE", NODE_OPT_SIZE,
      F(raft_reserve_bytes), "64MiB",
      "the leader refuses writes (507) while the raft dir's file system has "
      "less free space than this, and takes them again when space returns "
      "(0: no check; libraft must never meet a full disk)",
      false, false, NULL },
    { "upload_ttl", "--upload-ttl", "ATOLL_UPLOAD_TTL", NODE_OPT_DURATION,
      F(upload_ttl_ms), "24h", "purge upload sessions idle for this long",
      false, false, NULL },
    { "max_manifest_bytes", "--max-manifest-bytes", "ATOLL_MAX_MANIFEST_BYTES",
      NODE_OPT_SIZE, F(max_manifest_bytes), "4MiB",
      "largest manifest accepted on push", false, false, NULL },
    { "header_timeout", "--header-timeout", "ATOLL_HEADER_TIMEOUT",
      NODE_OPT_DURATION, F(header_timeout_ms), "30s",
      "time allowed to receive request headers", false, false, NULL },
    { "idle_timeout", "--idle-timeout", "ATOLL_IDLE_TIMEOUT", NODE_OPT_DURATION,
      F(idle_timeout_ms), "60s",
      "close keep-alive connections idle for this long", false, false, NULL },
    { "body_timeout", "--body-timeout", "ATOLL_BODY_TIMEOUT", NODE_OPT_DURATION,
      F(body_timeout_ms), "60s",
      "longest pause between two reads of a request body", false, false, NULL },
    { "write_timeout", "--write-timeout", "ATOLL_WRITE_TIMEOUT",
      NODE_OPT_DURATION, F(write_timeout_ms), "60s",
      "longest wait for a client to accept response bytes", false, false,
      NULL },
    { "shutdown_grace", "--shutdown-grace", "ATOLL_SHUTDOWN_GRACE",
      NODE_OPT_DURATION, F(shutdown_grace_ms), "10s",
      "time given to in-flight requests on shutdown", false, false, NULL },
    { "election_timeout", "--election-timeout", "ATOLL_ELECTION_TIMEOUT",
      NODE_OPT_DURATION, F(election_timeout_ms), "1000ms",
      "raft election timeout", false, false, NULL },
    { "heartbeat_timeout", "--heartbeat-timeout", "ATOLL_HEARTBEAT_TIMEOUT",
      NODE_OPT_DURATION, F(heartbeat_timeout_ms), "100ms",
      "raft heartbeat interval (must be below election_timeout)", false, false,
      NULL },
    { "leader_wait", "--leader-wait", "ATOLL_LEADER_WAIT", NODE_OPT_DURATION,
      F(leader_wait_ms), "5s",
      "a write or consistent read that finds no leader (an election under "
      "way) waits this long for one before failing with 503 (0s: fails at "
      "once)",
      false, false, NULL },
    { "snapshot_threshold", "--snapshot-threshold", "ATOLL_SNAPSHOT_THRESHOLD",
      NODE_OPT_UINT, F(snapshot_threshold), "16384",
      "raft entries between snapshots", false, false, NULL },
    { "snapshot_trailing", "--snapshot-trailing", "ATOLL_SNAPSHOT_TRAILING",
      NODE_OPT_UINT, F(snapshot_trailing), "4096",
      "raft entries kept after a snapshot", false, false, NULL },
    { "snapshot_fetch", "--snapshot-fetch", "ATOLL_SNAPSHOT_FETCH",
      NODE_OPT_BOOL, F(snapshot_fetch), "true",
      "a node that fell behind fetches the leader's snapshot file from its "
      "peer listener (false: the leader sends the file's bytes inside "
      "raft, as releases before did)",
      false, false, NULL },
    { "peer_listen", "--peer-listen", "ATOLL_PEER_LISTEN", NODE_OPT_STRING,
      F(peer_listen), "127.0.0.1:5001",
      "address:port of the node-to-node listener (raft, forwarded writes, "
      "join); advertised to the other nodes",
      false, false, check_listen },
    { "join", "--join", "ATOLL_JOIN", NODE_OPT_STRING, F(join), "",
      "comma-separated peer addresses host:port (IPs or DNS names, a name "
      "resolving to every member) of cluster members to join on first start, "
      "retried until one answers; empty = bootstrap a new cluster",
      false, false, check_join },
    { "bootstrap_expect", "--bootstrap-expect", "ATOLL_BOOTSTRAP_EXPECT",
      NODE_OPT_UINT, F(bootstrap_expect), "0",
      "with join: nodes started at once wait until this many of them see "
      "each other through gossip, then exactly one bootstraps the cluster "
      "and the others join it (0 = off)",
      false, false, NULL },
    { "cluster_secret", "--cluster-secret", "ATOLL_CLUSTER_SECRET",
      NODE_OPT_STRING, F(cluster_secret), "",
      "shared secret every node presents on the peer listener", true, false,
      NULL },
    { "cluster_secret_file", "--cluster-secret-file",
      "ATOLL_CLUSTER_SECRET_FILE", NODE_OPT_STRING, F(cluster_secret_file), "",
      "file holding the cluster secret (used when cluster_secret is empty)",
      false, false, NULL },
    { "role", "--role", "ATOLL_ROLE", NODE_OPT_STRING, F(role), "voter",
      "voter (may vote, up to target_voters), standby (never votes) or edge "
      "(a standby at a remote site: never votes, local reads by default)",
      false, false, check_role },
    { "read_consistency", "--read-consistency", "ATOLL_READ_CONSISTENCY",
      NODE_OPT_STRING, F(read_consistency), "",
      "linearizable (reads ask the leader) or local (answer from local "
      "state; clients may send X-Atoll-Min-Index); empty = local for "
      "role edge, else linearizable",
      false, false, check_read_consistency },
    { "target_voters", "--target-voters", "ATOLL_TARGET_VOTERS", NODE_OPT_UINT,
      F(target_voters), "3",
      "voters the leader promotes joining nodes to (1, 3 or 5)", false, false,
      NULL },
    { "region", "--region", "ATOLL_REGION", NODE_OPT_STRING, F(region), "",
      "region label of this node (peer selection)", false, false, NULL },
    { "zone", "--zone", "ATOLL_ZONE", NODE_OPT_STRING, F(zone), "",
      "zone label of this node (shown in the members view; gossip spreads "
      "it)",
      false, false, NULL },
    { "advertise", "--advertise", "ATOLL_ADVERTISE", NODE_OPT_STRING,
      F(advertise), "",
      "host name or IP the other nodes use to reach this node's API and "
      "peer ports; empty = the listen host, or the machine's hostname when "
      "listening on 0.0.0.0 or ::",
      false, false, check_advertise },
    { "min_copies", "--min-copies", "ATOLL_MIN_COPIES", NODE_OPT_STRING,
      F(min_copies), "auto",
      "stores that must hold every blob of a manifest before its PUT "
      "answers 201: 1..16, or auto (2 when the cluster has 2+ nodes)",
      false, false, check_min_copies },
    { "copy_wait", "--copy-wait", "ATOLL_COPY_WAIT", NODE_OPT_DURATION,
      F(copy_wait_ms), "30s",
      "how long a manifest PUT waits for min_copies before a 503", false, false,
      NULL },
    { "force_new_cluster", "--force-new-cluster", "ATOLL_FORCE_NEW_CLUSTER",
      NODE_OPT_BOOL, F(force_new_cluster), "false",
      "recovery after losing quorum: rewrite the raft configuration so that "
      "this node is the only voter, then serve (use once, on the survivor "
      "with the longest log; see docs/cluster.md)",
      false, false, NULL },
    { "gc_grace", "--gc-grace", "ATOLL_GC_GRACE", NODE_OPT_DURATION,
      F(gc_grace_ms), "1h",
      "garbage collection keeps unreferenced blobs younger than this", false,
      false, NULL },
    { "gc_interval", "--gc-interval", "ATOLL_GC_INTERVAL", NODE_OPT_DURATION,
      F(gc_interval_ms), "0s",
      "run garbage collection this often on the leader (0s = only on "
      "'atoll gc')",
      false, false, NULL },
    { "gc_scan_delay", "--gc-scan-delay", "ATOLL_GC_SCAN_DELAY",
      NODE_OPT_DURATION, F(gc_scan_delay_ms), "30s",
      "after a start or a snapshot install, wait this long, then delete "
      "local blob copies older than that moment that no record knows",
      false, false, NULL },
    { "gc_untagged", "--gc-untagged", "ATOLL_GC_UNTAGGED", NODE_OPT_BOOL,
      F(gc_untagged), "false",
      "garbage collection also deletes untagged manifests older than the "
      "grace (kept: children of an index, subjects of referrers and "
      "referrers of a live subject)",
      false, false, NULL },
    { "gossip", "--gossip", "ATOLL_GOSSIP", NODE_OPT_BOOL, F(gossip), "true",
      "run SWIM membership over UDP on the peer port's number (needs a "
      "cluster secret; false: liveness from timeouts only, no autopilot)",
      false, false, NULL },
    { "gossip_probe_interval", "--gossip-probe-interval",
      "ATOLL_GOSSIP_PROBE_INTERVAL", NODE_OPT_DURATION,
      F(gossip_probe_interval_ms), "1s",
      "gossip: one probe of a random member per interval", false, false, NULL },
    { "gossip_probe_timeout", "--gossip-probe-timeout",
      "ATOLL_GOSSIP_PROBE_TIMEOUT", NODE_OPT_DURATION,
      F(gossip_probe_timeout_ms), "500ms",
      "gossip: wait this long for a direct ack before asking others "
      "(below gossip_probe_interval; raise both on WAN links)",
      false, false, NULL },
    { "gossip_interval", "--gossip-interval", "ATOLL_GOSSIP_INTERVAL",
      NODE_OPT_DURATION, F(gossip_interval_ms), "200ms",
      "gossip: push queued updates to 3 random members this often", false,
      false, NULL },
    { "gossip_suspicion_mult", "--gossip-suspicion-mult",
      "ATOLL_GOSSIP_SUSPICION_MULT", NODE_OPT_UINT, F(gossip_suspicion_mult),
      "4",
      "gossip: a suspect is declared dead after at least this x log10(N) "
      "probe intervals (at most 6 times that without confirmations)",
      false, false, NULL },
    { "gossip_retransmit_mult", "--gossip-retransmit-mult",
      "ATOLL_GOSSIP_RETRANSMIT_MULT", NODE_OPT_UINT, F(gossip_retransmit_mult),
      "4", "gossip: each update is piggybacked this x log10(N+1) times", false,
      false, NULL },
    { "gossip_push_pull_interval", "--gossip-push-pull-interval",
      "ATOLL_GOSSIP_PUSH_PULL_INTERVAL", NODE_OPT_DURATION,
      F(gossip_push_pull_interval_ms), "30s",
      "gossip: exchange the whole member table with a random member over "
      "the peer TCP listener this often (anti-entropy)",
      false, false, NULL },
    { "gossip_keyring_file", "--gossip-keyring-file",
      "ATOLL_GOSSIP_KEYRING_FILE", NODE_OPT_STRING, F(gossip_keyring_file), "",
      "file with up to 3 more secrets, one per line, whose gossip keys open "
      "packets but never seal (rotating the cluster secret without downtime)",
      false, false, NULL },
    { "leave_on_terminate", "--leave-on-terminate", "ATOLL_LEAVE_ON_TERMINATE",
      NODE_OPT_BOOL, F(leave_on_terminate), "false",
      "on SIGTERM leave the cluster for good: others' autopilot removes this "
      "node (false: a stop is a restart to come; others see it left and "
      "treat it like a failure, replacing it after autopilot_dead_after)",
      false, false, NULL },
    { "autopilot", "--autopilot", "ATOLL_AUTOPILOT", NODE_OPT_BOOL,
      F(autopilot), "true",
      "the leader promotes stable nodes to voter, replaces voters dead "
      "longer than autopilot_dead_after and removes nodes that left",
      false, false, NULL },
    { "autopilot_dead_after", "--autopilot-dead-after",
      "ATOLL_AUTOPILOT_DEAD_AFTER", NODE_OPT_DURATION,
      F(autopilot_dead_after_ms), "2m",
      "autopilot: a voter gossip has seen dead this long is replaced by a "
      "healthy standby (same region first) and demoted",
      false, false, NULL },
    { "autopilot_stabilization", "--autopilot-stabilization",
      "ATOLL_AUTOPILOT_STABILIZATION", NODE_OPT_DURATION,
      F(autopilot_stabilization_ms), "10s",
      "autopilot: a node becomes a voter only after being alive and caught "
      "up this long",
      false, false, NULL },
    { "autopilot_max_lag", "--autopilot-max-lag", "ATOLL_AUTOPILOT_MAX_LAG",
      NODE_OPT_UINT, F(autopilot_max_lag), "250",
      "autopilot: a node at most this many log entries behind is caught up",
      false, false, NULL },
    { "autopilot_reap_after", "--autopilot-reap-after",
      "ATOLL_AUTOPILOT_REAP_AFTER", NODE_OPT_DURATION,
      F(autopilot_reap_after_ms), "72h",
      "autopilot: a standby or edge node gossip has seen dead this long is "
      "removed from the cluster (0s: never); with auto_rejoin it joins "
      "again when it comes back",
      false, false, NULL },
    { "auto_rejoin", "--auto-rejoin", "ATOLL_AUTO_REJOIN", NODE_OPT_BOOL,
      F(auto_rejoin), "false",
      "a node the cluster removed while it was away (marker 'removed' in "
      "its raft dir) starts again as a new member: its raft dir is moved "
      "aside and it joins through --join (its blobs stay)",
      false, false, NULL },
    { "bcrypt_cost", "--bcrypt-cost", "ATOLL_BCRYPT_COST", NODE_OPT_UINT,
      F(bcrypt_cost), "10",
      "bcrypt cost of new password and robot secret hashes (4-31; each "
      "step doubles the time of a login that is not cached)",
      false, false, NULL },
    { "htpasswd", "--htpasswd", "ATOLL_HTPASSWD", NODE_OPT_STRING, F(htpasswd),
      "",
      "htpasswd file of users local to this node (bcrypt entries only), "
      "read at start and on SIGHUP",
      false, false, NULL },
    { "auth_cache_ttl", "--auth-cache-ttl", "ATOLL_AUTH_CACHE_TTL",
      NODE_OPT_DURATION, F(auth_cache_ttl_ms), "60s",
      "how long verified credentials are remembered (0s: bcrypt on every "
      "request)",
      false, false, NULL },
    { "token_issuer", "--token-issuer", "ATOLL_TOKEN_ISSUER", NODE_OPT_STRING,
      F(token_issuer), "atoll",
      "issuer (iss) of the bearer tokens of /_atoll/token; the same on "
      "every node",
      false, false, NULL },
    { "token_service", "--token-service", "ATOLL_TOKEN_SERVICE",
      NODE_OPT_STRING, F(token_service), "atoll",
      "service name of the bearer tokens (their aud, and service= in "
      "challenges); the same on every node",
      false, false, NULL },
    { "token_realm", "--token-realm", "ATOLL_TOKEN_REALM", NODE_OPT_STRING,
      F(token_realm), "",
      "token endpoint URL announced in Bearer challenges; empty: "
      "<scheme>://<Host header>/_atoll/token",
      false, false, NULL },
    { "token_ttl", "--token-ttl", "ATOLL_TOKEN_TTL", NODE_OPT_DURATION,
      F(token_ttl_ms), "300s", "lifetime of bearer tokens (at least 60s)",
      false, false, NULL },
    { "auth", "--auth", "ATOLL_AUTH", NODE_OPT_STRING, F(auth), "auto",
      "access control on the API: auto (on once a user, robot account, "
      "htpasswd user or policy exists), on, or off",
      false, false, check_auth },
    { "auth_challenge", "--auth-challenge", "ATOLL_AUTH_CHALLENGE",
      NODE_OPT_STRING, F(auth_challenge), "basic",
      "the challenge of the registry API's 401: basic (clients send their "
      "credentials on every request), or bearer (clients fetch a token "
      "from /_atoll/token, per the distribution token spec)",
      false, false, check_challenge },
    /* events (issue 17) */
    { "events_url", "--events-url", "ATOLL_EVENTS_URL", NODE_OPT_STRING,
      F(events_url), "",
      "webhook receivers of the event stream (pushes, deletes, and pulls "
      "with events_pull), http:// or https:// URLs separated by commas: "
      "CloudEvents JSON POSTed in commit order by the leader",
      false, false, check_events_url },
    { "events_secret_file", "--events-secret-file", "ATOLL_EVENTS_SECRET_FILE",
      NODE_OPT_STRING, F(events_secret_file), "",
      "file whose first line signs every event: header "
      "X-Atoll-Signature-256: sha256=<hex HMAC-SHA256 of the body>",
      false, false, NULL },
    { "events_tls_ca", "--events-tls-ca", "ATOLL_EVENTS_TLS_CA",
      NODE_OPT_STRING, F(events_tls_ca), "",
      "PEM file of the CAs trusted for https receivers (\"\": the "
      "system's)",
      false, false, NULL },
    { "events_pull", "--events-pull", "ATOLL_EVENTS_PULL", NODE_OPT_BOOL,
      F(events_pull), "false",
      "also send an event for each manifest GET (from the node serving it)",
      false, false, NULL },
    { "events_queue", "--events-queue", "ATOLL_EVENTS_QUEUE", NODE_OPT_UINT,
      F(events_queue), "10000",
      "events waiting per receiver; when full the oldest is dropped "
      "(atoll_events_dropped_total)",
      false, false, NULL },
    { "events_timeout", "--events-timeout", "ATOLL_EVENTS_TIMEOUT",
      NODE_OPT_DURATION, F(events_timeout_ms), "5s",
      "time limit of one delivery attempt (then retried with backoff)", false,
      false, NULL },
};

const size_t node_nopts = sizeof(node_opts) / sizeof(node_opts[0]);

#undef F

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
/* A comma list of 1 to max items, each shorter than itemmax and passed to
 * check (NUL-terminated); what says what an item is, for the message. */
static int check_list(const char *v,
                      unsigned max,
                      size_t itemmax,
                      const char *what,
                      int (*check)(const char *item, char *why, size_t whylen),
                      char *why,
                      size_t whylen)
{
    unsigned n = 0;

    while (*v != '\0') {
        const char *end = strchr(v, ',');
        size_t len = end != NULL ? (size_t)(end - v) : strlen(v);
        char *item;
        int rv;

        if (len == 0 || len >= itemmax || ++n > max) {
            snprintf(why, whylen, "want up to %u %s separated by commas", max,
                     what);
            return AT_EINVAL;
        }
        item = at_strndup(v, len);
        rv = check(item, why, whylen);
        at_free(item);
        if (rv != 0)
            return AT_EINVAL;
        v += len + (end != NULL);
        if (end != NULL && *v == '\0') {
            snprintf(why, whylen, "trailing comma");
            return AT_EINVAL;
        }
    }
    return 0;
}

static int check_join(const char *v, char *why, size_t whylen)
{
    return check_list(v, 32, 256, "host:port", check_listen, why, whylen);
}

static int check_url(const char *v, char *why, size_t whylen)
{
    if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) {
        snprintf(why, whylen, "a URL starts with http:// or https://");
        return AT_EINVAL;
    }
    for (const char *p = v; *p != '\0'; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            snprintf(why, whylen, "no spaces or control characters in a URL");
            return AT_EINVAL;
        }
    }
    return 0;
}

static int check_events_url(const char *v, char *why, size_t whylen)
{
    return check_list(v, 8, 2049, "URLs", check_url, why, whylen);
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
