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
    const char *addr;
    const char *secret_file;
    const char *user;
    const char *user_password_file;
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

static const char *flag_value(int argc, char **argv, int *i, const char *flag)
{
    size_t n = strlen(flag);

    if (strcmp(argv[*i], flag) == 0 && *i + 1 < argc)
        return argv[++*i];
    if (strncmp(argv[*i], flag, n) == 0 && argv[*i][n] == '=')
        return argv[*i] + n + 1;
    return NULL;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    const char *v;

    memset(o, 0, sizeof(*o));
    o->addr = node_cli_default_addr();
    o->secret_file = getenv("ATOLL_CLUSTER_SECRET_FILE");
    if (argc < 1)
        return -1;
    o->action = argv[0];
    for (int i = 1; i < argc; i++) {
        if ((v = flag_value(argc, argv, &i, "--addr")) != NULL)
            o->addr = v;
        else if ((v = flag_value(argc, argv, &i, "--cluster-secret-file")))
            o->secret_file = v;
        else if ((v = flag_value(argc, argv, &i, "--user")) != NULL)
            o->user = v;
        else if ((v = flag_value(argc, argv, &i, "--user-password-file")))
            o->user_password_file = v;
        else
            return -1;
    }
    return 0;
}

static void base64(const char *in, struct at_buf *out)
{
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(in);

    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)(unsigned char)in[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)in[i + 2];
        char q[4] = { abc[v >> 18 & 63], abc[v >> 12 & 63],
                      i + 1 < n ? abc[v >> 6 & 63] : '=',
                      i + 2 < n ? abc[v & 63] : '=' };
        at_buf_append(out, q, 4);
    }
}

/* The Authorization value (caller wipes and frees), or NULL with a
 * message. */
static char *authorization(const struct opts *o)
{
    const char *file = o->user != NULL ? o->user_password_file : o->secret_file;
    char *secret, *pair;
    struct at_buf b;

    if (file == NULL || file[0] == '\0') {
        fprintf(stderr,
                "atoll token: want --user ADMIN "
                "--user-password-file FILE or --cluster-secret-file "
                "FILE\n");
        return NULL;
    }
    secret = node_cli_read_secret(file);
    if (secret == NULL) {
        fprintf(stderr, "atoll token: cannot read a secret from '%s'\n", file);
        return NULL;
    }
    if (o->user == NULL) {
        pair = at_asprintf("Bearer %s", secret);
    } else {
        char *up = at_asprintf("%s:%s", o->user, secret);
        at_buf_init(&b, 0);
        at_buf_puts(&b, "Basic ");
        base64(up, &b);
        explicit_bzero(up, strlen(up));
        free(up);
        pair = at_buf_take(&b, NULL);
    }
    explicit_bzero(secret, strlen(secret));
    free(secret);
    return pair;
}

static int rotate(const struct opts *o)
{
    char *authz = authorization(o);
    char *answer = NULL;
    json_t *doc = NULL;
    int status;

    if (authz == NULL)
        return 1;
    status = node_cli_http("POST", o->addr, "/_atoll/token-keys/rotate", authz,
                           NULL, &answer);
    explicit_bzero(authz, strlen(authz));
    free(authz);
    if (status == 200)
        doc = json_loads(answer != NULL ? answer : "", 0, NULL);
    if (doc == NULL) {
        fprintf(stderr, "atoll token rotate: %s%s%s\n",
                status < 0      ? at_strerror(status)
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
    int status = node_cli_http("GET", o->addr, "/_atoll/token/jwks", NULL, NULL,
                               &answer);
    json_t *doc = status == 200
                      ? json_loads(answer != NULL ? answer : "", 0, NULL)
                      : NULL;
    json_t *list = json_object_get(doc, "keys"), *k;
    size_t i, n = json_array_size(list);

    if (doc == NULL) {
        fprintf(stderr, "atoll token keys: %s\n",
                status < 0 ? at_strerror(status) : "failed");
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
