/* atoll replication list|add FILE|remove NAME|set FILE|run NAME|status:
 * the replication endpoints of a node's API (replication.h) from the
 * command line, as an admin user (--user, with --user-password-file) or
 * with the cluster secret (--cluster-secret-file, default
 * $ATOLL_CLUSTER_SECRET_FILE). add and remove read the rules, change
 * them here and write them back: two admins at once may undo each
 * other's change (the node checks each document as it is set). */
#include "common/compat.h"

#include <jansson.h>

#include "node/cli.h"
#include "node/replication_rules.h"

static int usage(void)
{
    fprintf(stderr,
            "usage: atoll replication list [AUTH]         the rules\n"
            "       atoll replication add FILE [AUTH]     a rule (JSON or "
            "YAML), or a\n"
            "                                             {rules: [...]}; "
            "replaces same names\n"
            "       atoll replication remove NAME [AUTH]\n"
            "       atoll replication set FILE [AUTH]     all the rules "
            "(JSON or YAML,\n"
            "                                             "
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

/* The rules document with the rules of file added (same names replaced)
 * or rule name removed (file NULL). Caller frees; NULL after a message. */
static char *edit(const char *current, const char *file, const char *name)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    json_t *doc = json_loads(current != NULL ? current : "{}", 0, NULL);
    json_t *rules = json_object_get(doc, "rules");
    json_t *add = NULL;
    char *out = NULL;

    if (!json_is_array(rules)) {
        rules = json_array();
        json_object_set_new(doc, "rules", rules);
    }
    if (file != NULL) {
        char *text = node_cli_read_json(file, NODE_REPL_MAX_JSON, errmsg);
        add = text != NULL ? json_loads(text, 0, NULL) : NULL;
        free(text);
        if (json_is_object(add) && json_object_get(add, "rules") == NULL) {
            json_t *one = json_array();
            json_array_append(one, add);
            json_decref(add);
            add = one;
        } else if (json_is_object(add)) {
            json_t *many = json_incref(json_object_get(add, "rules"));
            json_decref(add);
            add = many;
        }
        if (!json_is_array(add)) {
            fprintf(stderr, "atoll replication add: %s\n",
                    errmsg[0] != '\0' ? errmsg
                                      : "want a rule or {\"rules\": [...]}");
            goto out;
        }
    }
    /* drop the rules being replaced or removed */
    size_t before = json_array_size(rules);
    for (size_t i = json_array_size(rules); i-- > 0;) {
        const char *n = json_string_value(
            json_object_get(json_array_get(rules, i), "name"));
        bool drop = n != NULL && name != NULL && strcmp(n, name) == 0;
        for (size_t k = 0; n != NULL && !drop && k < json_array_size(add);
             k++) {
            const char *m = json_string_value(
                json_object_get(json_array_get(add, k), "name"));
            drop = m != NULL && strcmp(m, n) == 0;
        }
        if (drop)
            json_array_remove(rules, i);
    }
    if (name != NULL && json_array_size(rules) == before) {
        fprintf(stderr, "atoll replication remove: no rule named %s\n", name);
        goto out;
    }
    if (add != NULL)
        json_array_extend(rules, add);
    out = json_dumps(doc, JSON_COMPACT);
out:
    json_decref(add);
    json_decref(doc);
    return out;
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
    bool edits = (strcmp(action, "add") == 0 && arg != NULL) ||
                 (strcmp(action, "remove") == 0 && arg != NULL && name_ok(arg));
    if ((strcmp(action, "get") == 0 || strcmp(action, "list") == 0) &&
        arg == NULL) {
        path = at_strdup("/_atoll/replication");
    } else if (edits) {
        method = "PUT";
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
    if (edits) {
        /* read, change here, write back */
        status = node_cli_http("GET", auth.addr, path, authz, NULL, &answer);
        if (status == 200)
            body = edit(answer, strcmp(action, "add") == 0 ? arg : NULL,
                        strcmp(action, "remove") == 0 ? arg : NULL);
        free(answer);
        answer = NULL;
        if (status != 200 || body == NULL) {
            if (status != 200)
                fprintf(stderr, "atoll replication %s: %s\n", action,
                        status < 0 ? node_cli_why(status)
                                   : "cannot read the rules");
            node_cli_wipe_free(authz);
            at_free(path);
            return 1;
        }
    }
    status = node_cli_http(method, auth.addr, path, authz, body, &answer);
    node_cli_wipe_free(authz);
    free(body);
    at_free(path);
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "atoll replication %s", action);
    return node_cli_answer(cmd, status, want, "no such rule", answer);
}
