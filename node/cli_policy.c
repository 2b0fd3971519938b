/* atoll policy get|set|reset: the access policy endpoint of a node's API
 * (node/policy.h) from the command line, as an admin user (--user, with
 * --user-password-file) or with the cluster secret (--cluster-secret-file,
 * default $ATOLL_CLUSTER_SECRET_FILE). */
#include "common/compat.h"

#include "node/cli.h"
#include "node/policy.h"

struct popts {
    const char *action;
    const char *file;
    struct node_cli_auth auth;
};

static int usage(void)
{
    fprintf(stderr,
            "usage: atoll policy get [AUTH]\n"
            "       atoll policy set FILE [AUTH]   (JSON or YAML, "
            "docs/security.md; "
            "'-': stdin)\n"
            "       atoll policy reset [AUTH]      (back to the default)\n"
            "AUTH: [--addr API_HOST:PORT] and --user ADMIN "
            "--user-password-file FILE,\n"
            "      or --cluster-secret-file FILE (default "
            "$ATOLL_CLUSTER_SECRET_FILE)\n");
    return 2;
}

static int parse(int argc, char **argv, struct popts *o)
{
    memset(o, 0, sizeof(*o));
    node_cli_auth_init(&o->auth);
    if (argc < 1)
        return -1;
    o->action = argv[0];
    for (int i = 1; i < argc; i++) {
        if (node_cli_auth_flag(argc, argv, &i, &o->auth))
            continue;
        if (argv[i][0] != '-' || strcmp(argv[i], "-") == 0) {
            if (o->file != NULL)
                return -1;
            o->file = argv[i];
        } else {
            return -1;
        }
    }
    if (strcmp(o->action, "set") == 0 ? o->file == NULL : o->file != NULL)
        return -1;
    return 0;
}

/* see cli.h */
int node_cli_policy(int argc, char **argv)
{
    struct popts o;
    char *authz, *body = NULL, *answer = NULL;
    const char *method;
    int status;

    if (parse(argc, argv, &o) != 0)
        return usage();
    if (strcmp(o.action, "get") == 0)
        method = "GET";
    else if (strcmp(o.action, "set") == 0)
        method = "PUT";
    else if (strcmp(o.action, "reset") == 0)
        method = "DELETE";
    else
        return usage();
    if (o.file != NULL) {
        char errmsg[AT_ERRMSG_SIZE] = "";
        body = node_cli_read_json(o.file, NODE_POLICY_BODY_MAX, errmsg);
        if (body == NULL) {
            fprintf(stderr, "atoll policy: %s\n", errmsg);
            return 1;
        }
    }
    authz = node_cli_authorization(&o.auth, "atoll policy");
    if (authz == NULL) {
        free(body);
        return 1;
    }
    status = node_cli_http(method, o.auth.addr, "/_atoll/policy", authz, body,
                           &answer);
    node_cli_wipe_free(authz);
    free(body);
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "atoll policy %s", o.action);
    return node_cli_answer(cmd, status, 200, NULL, answer);
}
