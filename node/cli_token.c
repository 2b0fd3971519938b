/* atoll token rotate and atoll token keys: the token-key endpoints of a
 * node's API (node/token.h) from the command line. A rotation needs an
 * admin user (--user with --user-password-file) or the cluster secret
 * (--cluster-secret-file, default $ATOLL_CLUSTER_SECRET_FILE); listing
 * the public keys needs nothing. */
#include "common/compat.h"

#include <jansson.h>

#include "common/common.h"
#include "node/cli.h"

struct opts {
    const char *action;
    struct node_cli_auth auth;
};

static int usage(void)
{
    fprintf(stderr,
            "usage: atoll token rotate [--addr API_HOST:PORT] (--user ADMIN "
            "--user-password-file FILE | --cluster-secret-file FILE)\n"
            "       atoll token keys [--addr API_HOST:PORT]\n"
            "rotate: a new key signs tokens from now on; the older kept "
            "keys still verify\n");
    return 2;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    memset(o, 0, sizeof(*o));
    node_cli_auth_init(&o->auth);
    if (argc < 1)
        return -1;
    o->action = argv[0];
    for (int i = 1; i < argc; i++) {
        if (!node_cli_auth_flag(argc, argv, &i, &o->auth))
            return -1;
    }
    return 0;
}

static int rotate(const struct opts *o)
{
    char *authz = node_cli_authorization(&o->auth, "atoll token");
    char *answer = NULL;
    json_t *doc = NULL;
    int status;

    if (authz == NULL)
        return 1;
    status = node_cli_http("POST", o->auth.addr, "/_atoll/token-keys/rotate",
                           authz, NULL, &answer);
    node_cli_wipe_free(authz);
    if (status == 200)
        doc = json_loads(answer != NULL ? answer : "", 0, NULL);
    if (doc == NULL) {
        fprintf(stderr, "atoll token rotate: %s%s%s\n",
                status < 0      ? node_cli_why(status)
                : status == 401 ? "authentication failed"
                : status == 403 ? "only an admin user may do this"
                                : "failed",
                answer != NULL ? ": " : "", answer != NULL ? answer : "");
        free(answer);
        return 1;
    }
    printf("new signing key %s (index %" JSON_INTEGER_FORMAT ")\n",
           json_string_value(json_object_get(doc, "kid")),
           json_integer_value(json_object_get(doc, "index")));
    json_decref(doc);
    free(answer);
    return 0;
}

static int keys(const struct opts *o)
{
    char *answer = NULL;
    int status = node_cli_http("GET", o->auth.addr, "/_atoll/token/jwks", NULL,
                               NULL, &answer);
    json_t *doc = status == 200
                      ? json_loads(answer != NULL ? answer : "", 0, NULL)
                      : NULL;
    json_t *list = json_object_get(doc, "keys"), *k;
    size_t i, n = json_array_size(list);

    if (doc == NULL) {
        fprintf(stderr, "atoll token keys: %s\n",
                status < 0 ? node_cli_why(status) : "failed");
        free(answer);
        return 1;
    }
    json_array_foreach(list, i, k)
    {
        printf("%s%s\n", json_string_value(json_object_get(k, "kid")),
               i + 1 == n ? "  (signs)" : "");
    }
    json_decref(doc);
    free(answer);
    return 0;
}

/* see cli.h */
int node_cli_token(int argc, char **argv)
{
    struct opts o;

    if (parse_opts(argc, argv, &o) != 0)
        return usage();
    if (strcmp(o.action, "rotate") == 0)
        return rotate(&o);
    if (strcmp(o.action, "keys") == 0)
        return keys(&o);
    return usage();
}
