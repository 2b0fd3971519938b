/* atoll replication get|set FILE|run NAME|status: the replication
 * endpoints of a node's API (replication.h) from the command line, as an
 * admin user (--user, with --user-password-file) or with the cluster
 * secret (--cluster-secret-file, default $ATOLL_CLUSTER_SECRET_FILE). */
#include "common/compat.h"

#include "node/cli.h"
#include "node/replication_rules.h"

static int usage(void)
{
    fprintf(stderr,
            "usage: atoll replication get [AUTH]          the rules\n"
            "       atoll replication set FILE [AUTH]     (JSON or YAML, "
            "docs/replication.md; '-': stdin)\n"
            "       atoll replication run NAME [AUTH]     run rule NAME now\n"
            "       atoll replication status [AUTH]       each rule's last "
            "run\n"
            "AUTH: [--addr API_HOST:PORT] and --user ADMIN "
            "--user-password-file FILE,\n"
            "      or --cluster-secret-file FILE (default "
            "$ATOLL_CLUSTER_SECRET_FILE)\n");
    return 2;
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= NODE_REPL_NAME_MAX &&
           strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

/* see cli.h */
int node_cli_replication(int argc, char **argv)
{
    struct node_cli_auth auth;
    const char *arg = NULL;
    char *authz, *body = NULL, *answer = NULL, *path = NULL;
    const char *method = "GET";
    int want = 200, status;

    node_cli_auth_init(&auth);
    if (argc < 1)
        return usage();
    for (int i = 1; i < argc; i++) {
        if (node_cli_auth_flag(argc, argv, &i, &auth))
            continue;
        if ((argv[i][0] != '-' || strcmp(argv[i], "-") == 0) && arg == NULL)
            arg = argv[i];
        else
            return usage();
    }
    const char *action = argv[0];
    if (strcmp(action, "get") == 0 && arg == NULL) {
        path = at_strdup("/_atoll/replication");
    } else if (strcmp(action, "status") == 0 && arg == NULL) {
        path = at_strdup("/_atoll/replication/status");
    } else if (strcmp(action, "set") == 0 && arg != NULL) {
        char errmsg[AT_ERRMSG_SIZE] = "";
        body = node_cli_read_json(arg, NODE_REPL_MAX_JSON, errmsg);
        if (body == NULL) {
            fprintf(stderr, "atoll replication: %s\n", errmsg);
            return 1;
        }
        method = "PUT";
        path = at_strdup("/_atoll/replication");
    } else if (strcmp(action, "run") == 0 && arg != NULL && name_ok(arg)) {
        method = "POST";
        want = 202;
        path = at_asprintf("/_atoll/replication/run?rule=%s", arg);
    } else {
        return usage();
    }
    authz = node_cli_authorization(&auth, "atoll replication");
    if (authz == NULL) {
        free(body);
        at_free(path);
        return 1;
    }
    status = node_cli_http(method, auth.addr, path, authz, body, &answer);
    node_cli_wipe_free(authz);
    free(body);
    at_free(path);
    if (status != want) {
        fprintf(stderr, "atoll replication %s: %s%s%s\n", action,
                status < 0      ? node_cli_why(status)
                : status == 401 ? "authentication failed"
                : status == 403 ? "only an admin user may do this"
                : status == 404 ? "no such rule"
                                : "failed",
                answer != NULL ? ": " : "", answer != NULL ? answer : "");
        free(answer);
        return 1;
    }
    fputs(answer != NULL ? answer : "", stdout);
    free(answer);
    return 0;
}
