/* Client subcommands (status, members, gc): small blocking HTTP/1.1 requests to
 * a node's API or peer listener. */
#include "common/compat.h"

#include <jansson.h>
#include <time.h>

#include "common/common.h"
#include "node/cli.h"
#include "proto/peer.h"

/* method path on host:port with an optional Bearer secret and JSON body
 * (node_cli_http). */
static int http_call(const char *method,
                     const char *addr,
                     const char *path,
                     const char *secret,
                     const char *json,
                     char **body)
{
    char *authz = secret != NULL ? at_asprintf("Bearer %s", secret) : NULL;
    int status = node_cli_http(method, addr, path, authz, json, body);

    if (authz != NULL) {
        explicit_bzero(authz, strlen(authz));
        free(authz);
    }
    return status;
}

/* The cluster secret for reads of the cluster views (status, members),
 * which want an admin once access control is on: --cluster-secret-file,
 * else $ATOLL_CLUSTER_SECRET_FILE; NULL without either. */
static char *view_secret;

static void view_secret_load(const char *file)
{
    if (file == NULL)
        file = getenv("ATOLL_CLUSTER_SECRET_FILE");
    if (file != NULL && file[0] != '\0' && view_secret == NULL)
        view_secret = node_cli_read_secret(file);
}

static int http_get(const char *addr, const char *path, char **body)
{
    return http_call("GET", addr, path, view_secret, NULL, body);
}

/* see cli.h */
const char *node_cli_default_addr(void)
{
    const char *addr = getenv("ATOLL_ADDR");

    return addr != NULL ? addr : "127.0.0.1:5000";
}

static int get_status; /* get_json's last HTTP status or AT_E* */

static json_t *get_json(const char *addr, const char *path)
{
    char *body = NULL;
    json_error_t jerr;
    json_t *doc = NULL;
    int status = http_get(addr, path, &body);

    get_status = status;
    if (status == 200 && body != NULL)
        doc = json_loads(body, 0, &jerr);
    free(body);
    return doc;
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "";
}

static uint64_t jnum(json_t *o, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(o, key));
    return v > 0 ? (uint64_t)v : 0;
}

/* A member's gossip round trip as text ("-" when none yet). */
static void rtt_text(json_t *o, char *out, size_t size)
{
    json_t *v = json_object_get(o, "rtt_ms");

    if (json_is_number(v))
        snprintf(out, size, "%.1fms", json_number_value(v));
    else
        snprintf(out, size, "-");
}

/* The members table; with details, each member's own status too. */
static int print_members(const char *addr, bool details)
{
    json_t *doc = get_json(addr, "/_atoll/members");
    json_t *nodes, *n;
    uint64_t leader_commit = 0;
    size_t i;

    if (doc == NULL) {
        if (get_status < 0)
            fprintf(stderr, "atoll: %s\n", node_cli_why(get_status));
        else
            fprintf(stderr, "atoll: cannot read the members of '%s'\n", addr);
        return 1;
    }
    nodes = json_object_get(doc, "nodes");
    if (details) {
        json_array_foreach(nodes, i, n)
        {
            if (!json_is_true(json_object_get(n, "leader")))
                continue;
            json_t *st = get_json(jstr(n, "api_address"), "/_atoll/status");
            leader_commit = st != NULL ? jnum(st, "commit_index") : 0;
            json_decref(st);
        }
        printf("%-20s %-8s %-6s %-8s %-10s %-10s %-6s %-7s %-7s %s\n", "NAME",
               "ROLE", "LEADER", "TERM", "COMMIT", "APPLIED", "LAG", "UNDER",
               "COPYING", "API");
    } else {
        printf("%-20s %-20s %-8s %-6s %-8s %-8s %-10s %-22s %-22s %s\n", "NAME",
               "ID", "ROLE", "LEADER", "STATE", "RTT", "VERSION", "PEER", "API",
               "REGION");
    }
    json_array_foreach(nodes, i, n)
    {
        bool is_leader = json_is_true(json_object_get(n, "leader"));
        if (!details) {
            char rtt[32];
            const char *state = jstr(n, "gossip");
            rtt_text(n, rtt, sizeof(rtt));
            printf("%-20s %-20" PRIu64
                   " %-8s %-6s %-8s %-8s %-10s %-22s %-22s %s\n",
                   jstr(n, "name"), jnum(n, "id"), jstr(n, "role"),
                   is_leader ? "*" : "", state[0] != '\0' ? state : "-", rtt,
                   jstr(n, "version")[0] != '\0' ? jstr(n, "version") : "-",
                   jstr(n, "peer_address"), jstr(n, "api_address"),
                   jstr(n, "region"));
            continue;
        }
        json_t *st = get_json(jstr(n, "api_address"), "/_atoll/status");
        if (st == NULL) {
            printf("%-20s %-8s %-6s %-8s %-10s %-10s %-6s %-7s %-7s %s\n",
                   jstr(n, "name"), jstr(n, "role"), is_leader ? "*" : "", "-",
                   "-", "-", "-", "-", "-", "unreachable");
            continue;
        }
        uint64_t applied = jnum(st, "applied_index");
        /* UNDER: blobs short of min_copies (the leader's scan); COPYING:
         * copies this node is asking for or making */
        printf("%-20s %-8s %-6s %-8" PRIu64 " %-10" PRIu64 " %-10" PRIu64
               " %-6" PRIu64 " %-7" PRIu64 " %-7" PRIu64 " %s\n",
               jstr(n, "name"), jstr(n, "role"), is_leader ? "*" : "",
               jnum(st, "term"), jnum(st, "commit_index"), applied,
               leader_commit > applied ? leader_commit - applied : 0,
               jnum(st, "under_replicated"), jnum(st, "copies_in_flight"),
               jstr(n, "api_address"));
        json_decref(st);
    }
    json_decref(doc);
    return 0;
}

/* see cli.h */
char *node_cli_read_secret(const char *file)
{
    char buf[4097];
    size_t n;
    FILE *f = fopen(file, "re");

    if (f == NULL)
        return NULL;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (buf[0] == '\0')
        return NULL;
    return at_strdup(buf);
}

static int members_usage(void)
{
    fprintf(stderr,
            "usage: atoll members [--addr API_HOST:PORT] "
            "[--cluster-secret-file FILE]\n"
            "       atoll members remove NAME --peer PEER_HOST:PORT "
            "--cluster-secret-file FILE\n"
            "       atoll members transfer [NAME] --peer PEER_HOST:PORT "
            "--cluster-secret-file FILE\n"
            "       atoll members handoff [NAME] --peer PEER_HOST:PORT "
            "--cluster-secret-file FILE\n");
    return 2;
}

/* see cli.h */
int node_cli_members(int argc, char **argv)
{
    const char *addr = node_cli_default_addr();
    const char *peer = NULL;
    const char *secret_file = NULL;
    const char *action = NULL;
    const char *name = NULL;
    char *secret = NULL;
    char *body = NULL;
    char *json;
    int status, i = 0;

    if (argc > 0 &&
        (strcmp(argv[0], "remove") == 0 || strcmp(argv[0], "transfer") == 0 ||
         strcmp(argv[0], "handoff") == 0))
        action = argv[i++];
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--addr") == 0 && i + 1 < argc)
            addr = argv[++i];
        else if (strncmp(argv[i], "--addr=", 7) == 0)
            addr = argv[i] + 7;
        else if (strcmp(argv[i], "--peer") == 0 && i + 1 < argc)
            peer = argv[++i];
        else if (strncmp(argv[i], "--peer=", 7) == 0)
            peer = argv[i] + 7;
        else if (strcmp(argv[i], "--cluster-secret-file") == 0 && i + 1 < argc)
            secret_file = argv[++i];
        else if (strncmp(argv[i], "--cluster-secret-file=", 22) == 0)
            secret_file = argv[i] + 22;
        else if (action != NULL && name == NULL && argv[i][0] != '-')
            name = argv[i];
        else
            return members_usage();
    }
    if (action == NULL) {
        view_secret_load(secret_file);
        return print_members(addr, false);
    }
    if (peer == NULL || secret_file == NULL ||
        (strcmp(action, "remove") == 0 && name == NULL))
        return members_usage();
    secret = node_cli_read_secret(secret_file);
    if (secret == NULL) {
        fprintf(stderr, "atoll members: cannot read a secret from '%s'\n",
                secret_file);
        return 1;
    }
    {
        struct at_buf b;
        at_buf_init(&b, 0);
        at_buf_puts(&b, "{\"name\":");
        if (name != NULL)
            at_buf_json_str(&b, name, strlen(name));
        else
            at_buf_puts(&b, "null");
        at_buf_puts(&b, "}");
        json = at_strdup(b.data);
        at_buf_release(&b);
    }
    enum proto_peer_ep ep = strcmp(action, "remove") == 0 ? PROTO_PEER_REMOVE
                            : strcmp(action, "handoff") == 0
                                ? PROTO_PEER_HANDOFF
                                : PROTO_PEER_TRANSFER;
    /* a handoff (a preStop) may meet an election, or another pod's
     * handoff moving leadership: 503s are retried for half a minute */
    for (int tries = 0;; tries++) {
        status =
            http_call("POST", peer, proto_peer_path(ep), secret, json, &body);
        if (status != 503 || ep != PROTO_PEER_HANDOFF || tries >= 60)
            break;
        free(body);
        body = NULL;
        nanosleep(&(struct timespec){ .tv_nsec = 500000000L }, NULL);
    }
    explicit_bzero(secret, strlen(secret));
    free(secret);
    free(json);
    if (status == 409 && strcmp(action, "handoff") == 0) {
        /* a preStop must not fail for it: leadership moved already */
        printf(
            "handoff %s: no standby can take the vote over; it stays a "
            "voter\n",
            name != NULL ? name : "(this node)");
        free(body);
        return 0;
    }
    if (status != 200) {
        fprintf(stderr, "atoll members %s: %s%s%s\n", action,
                status < 0      ? node_cli_why(status)
                : status == 404 ? "no such node"
                : status == 401 ? "wrong cluster secret"
                : status == 426 ? "the node speaks another peer protocol"
                                : "failed",
                body != NULL ? ": " : "", body != NULL ? body : "");
        free(body);
        return 1;
    }
    free(body);
    printf("%s %s: done\n", action,
           name != NULL                     ? name
           : strcmp(action, "handoff") == 0 ? "(this node)"
                                            : "(any voter)");
    return 0;
}

/* The status document of the leader, per addr's members (NULL: none). */
static json_t *leader_status(const char *addr)
{
    json_t *doc = get_json(addr, "/_atoll/members"), *n, *st = NULL;
    size_t i;

    json_array_foreach(json_object_get(doc, "nodes"), i, n)
    {
        if (json_is_true(json_object_get(n, "leader")) && st == NULL)
            st = get_json(jstr(n, "api_address"), "/_atoll/status");
    }
    json_decref(doc);
    return st;
}

/* wall clock ms as 2026-12-06T07:17:03Z */
static void utc_text(uint64_t ms, char *out, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL ||
        strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, size, "-");
}

/* The autopilot lines of `atoll status`: the leader's view (body is the
 * status of addr; the leader's is asked when addr does not lead). */
static void print_autopilot(const char *addr, const char *body)
{
    json_error_t jerr;
    json_t *doc = json_loads(body, 0, &jerr), *ap, *n;
    size_t i;
    char when[32];

    ap = json_object_get(doc, "autopilot");
    if (ap == NULL || !json_is_true(json_object_get(ap, "enabled"))) {
        printf("autopilot: %s\n",
               ap == NULL ? "unknown"
               : json_is_true(json_object_get(ap, "configured"))
                   ? "idle (configured, but no gossip liveness)"
                   : "off");
        json_decref(doc);
        return;
    }
    if (!json_is_true(json_object_get(ap, "leader"))) {
        json_decref(doc);
        doc = leader_status(addr);
        ap = json_object_get(doc, "autopilot");
    }
    if (ap == NULL) {
        printf("autopilot: on (no leader reachable)\n");
        json_decref(doc);
        return;
    }
    printf("autopilot: on (the leader's view)\n");
    json_array_foreach(json_object_get(ap, "nodes"), i, n)
    {
        uint64_t since = jnum(n, "stable_since_ms");
        if (since != 0)
            utc_text(since, when, sizeof(when));
        printf(
            "  %-20s %-8s %-8s caught up: %-3s healthy: %-3s stable since: "
            "%s\n",
            jstr(n, "name"), jstr(n, "role"), jstr(n, "liveness"),
            json_is_true(json_object_get(n, "caught_up")) ? "yes" : "no",
            json_is_true(json_object_get(n, "healthy")) ? "yes" : "no",
            since != 0 ? when : "-");
    }
    json_array_foreach(json_object_get(ap, "actions"), i, n)
    {
        utc_text(jnum(n, "time_ms"), when, sizeof(when));
        printf("  %s %-8s %-20s %s\n", when, jstr(n, "kind"), jstr(n, "node"),
               jstr(n, "reason"));
    }
    json_decref(doc);
}

/* see cli.h */
int node_cli_status(int argc, char **argv)
{
    const char *addr = node_cli_default_addr();
    char *body = NULL;
    int status;

    const char *secret_file = NULL;
    bool json = false;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--addr") == 0 && i + 1 < argc) {
            addr = argv[++i];
        } else if (strncmp(argv[i], "--addr=", 7) == 0) {
            addr = argv[i] + 7;
        } else if (strcmp(argv[i], "--cluster-secret-file") == 0 &&
                   i + 1 < argc) {
            secret_file = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else {
            fprintf(stderr,
                    "usage: atoll status [--addr HOST:PORT] "
                    "[--cluster-secret-file FILE] [--json]\n");
            return 2;
        }
    }
    view_secret_load(secret_file);
    status = http_get(addr, "/_atoll/status", &body);
    if (status != 200) {
        if (status < 0)
            fprintf(stderr, "atoll status: %s\n", node_cli_why(status));
        else
            fprintf(stderr, "atoll status: '%s' answered HTTP %d\n", addr,
                    status);
        free(body);
        return 1;
    }
    if (json) { /* the node's status document, for scripts */
        fputs(body, stdout);
        printf("\n");
        free(body);
        return 0;
    }
    print_autopilot(addr, body);
    free(body);
    return print_members(addr, true);
}

static int gc_usage(void)
{
    fprintf(stderr,
            "usage: atoll gc [--addr API_HOST:PORT] [--dry-run] "
            "[--grace DURATION] [--untagged[=true|false]] "
            "[--cluster-secret-file FILE]\n");
    return 2;
}

/* see cli.h */
int node_cli_gc(int argc, char **argv)
{
    const char *addr = node_cli_default_addr();
    const char *grace = NULL;
    const char *secret_file = getenv("ATOLL_CLUSTER_SECRET_FILE");
    char *secret = NULL;
    char *body = NULL;
    bool dry = false;
    const char *untagged = NULL; /* NULL: the node's gc_untagged */
    uint64_t ms;
    int status;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--addr") == 0 && i + 1 < argc)
            addr = argv[++i];
        else if (strncmp(argv[i], "--addr=", 7) == 0)
            addr = argv[i] + 7;
        else if (strcmp(argv[i], "--dry-run") == 0)
            dry = true;
        else if (strcmp(argv[i], "--untagged") == 0 ||
                 strcmp(argv[i], "--untagged=true") == 0)
            untagged = "true";
        else if (strcmp(argv[i], "--untagged=false") == 0)
            untagged = "false";
        else if (strcmp(argv[i], "--grace") == 0 && i + 1 < argc)
            grace = argv[++i];
        else if (strncmp(argv[i], "--grace=", 8) == 0)
            grace = argv[i] + 8;
        else if (strcmp(argv[i], "--cluster-secret-file") == 0 && i + 1 < argc)
            secret_file = argv[++i];
        else if (strncmp(argv[i], "--cluster-secret-file=", 22) == 0)
            secret_file = argv[i] + 22;
        else
            return gc_usage();
    }
    if (grace != NULL && at_parse_duration_ms(grace, &ms) != 0) {
        fprintf(stderr, "atoll gc: bad duration '%s'\n", grace);
        return 2;
    }
    if (secret_file != NULL && secret_file[0] != '\0') {
        secret = node_cli_read_secret(secret_file);
        if (secret == NULL) {
            fprintf(stderr, "atoll gc: cannot read a secret from '%s'\n",
                    secret_file);
            return 1;
        }
    }
    /* the duration goes as milliseconds: no escaping needed */
    char *path =
        grace != NULL
            ? at_asprintf("/_atoll/gc?dry_run=%s&grace=%" PRIu64 "ms%s%s",
                          dry ? "true" : "false", ms,
                          untagged != NULL ? "&untagged=" : "",
                          untagged != NULL ? untagged : "")
            : at_asprintf("/_atoll/gc?dry_run=%s%s%s", dry ? "true" : "false",
                          untagged != NULL ? "&untagged=" : "",
                          untagged != NULL ? untagged : "");
    status = http_call("POST", addr, path, secret, NULL, &body);
    free(path);
    if (secret != NULL) {
        explicit_bzero(secret, strlen(secret));
        free(secret);
    }
    if (status != 200) {
        fprintf(stderr, "atoll gc: %s%s%s\n",
                status < 0      ? node_cli_why(status)
                : status == 401 ? "wrong or missing cluster secret "
                                  "(--cluster-secret-file)"
                : status == 409 ? "a garbage collection is already running"
                                : "failed",
                body != NULL ? ": " : "", body != NULL ? body : "");
        free(body);
        return 1;
    }
    fputs(body, stdout);
    free(body);
    return 0;
}
