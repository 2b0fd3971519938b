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
    const char *addr;
    const char *secret_file;
    const char *user;
    const char *user_password_file;
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

static const char *flag_value(int argc, char **argv, int *i, const char *flag)
{
    size_t n = strlen(flag);

    if (strcmp(argv[*i], flag) == 0 && *i + 1 < argc)
        return argv[++*i];
    if (strncmp(argv[*i], flag, n) == 0 && argv[*i][n] == '=')
        return argv[*i] + n + 1;
    return NULL;
}

static int parse(int argc, char **argv, struct popts *o)
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
        else if (argv[i][0] != '-' || strcmp(argv[i], "-") == 0) {
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

static void wipe_free(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

/* The Authorization value (caller wipes and frees), or NULL with a message
 * on stderr. */
static char *authorization(const struct popts *o)
{
    const char *file = o->user != NULL ? o->user_password_file : o->secret_file;
    char *secret, *pair;
    struct at_buf b;

    if (file == NULL || file[0] == '\0') {
        fprintf(stderr,
                "atoll policy: want --user ADMIN "
                "--user-password-file FILE or --cluster-secret-file "
                "FILE\n");
        return NULL;
    }
    secret = node_cli_read_secret(file);
    if (secret == NULL) {
        fprintf(stderr, "atoll policy: cannot read '%s'\n", file);
        return NULL;
    }
    if (o->user == NULL) {
        pair = at_asprintf("Bearer %s", secret);
        wipe_free(secret);
        return pair;
    }
    pair = at_asprintf("%s:%s", o->user, secret);
    wipe_free(secret);
    at_buf_init(&b, 0);
    at_buf_puts(&b, "Basic ");
    base64(pair, &b);
    wipe_free(pair);
    return at_buf_take(&b, NULL);
}

/* The policy file's text (caller frees), or NULL. */
static char *read_text(const char *file)
{
    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
    struct at_buf b;
    char chunk[8192];
    size_t n;

    if (f == NULL)
        return NULL;
    at_buf_init(&b, NODE_POLICY_BODY_MAX);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (at_buf_append(&b, chunk, n) != 0)
            break;
    }
    if (f != stdin)
        fclose(f);
    at_buf_append(&b, "", 1);
    return at_buf_take(&b, NULL);
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
    if (o.file != NULL && (body = read_text(o.file)) == NULL) {
        fprintf(stderr, "atoll policy: cannot read '%s'\n", o.file);
        return 1;
    }
    /* JSON starts with '{'; anything else is read as YAML */
    if (body != NULL && body[strspn(body, " \t\r\n")] != '{') {
        char errmsg[AT_ERRMSG_SIZE] = "";
        char *json = node_cli_yaml_to_json(body, errmsg);

        free(body);
        if (json == NULL) {
            fprintf(stderr, "atoll policy: '%s': %s\n", o.file, errmsg);
            return 1;
        }
        body = json;
    }
    authz = authorization(&o);
    if (authz == NULL) {
        free(body);
        return 1;
    }
    status =
        node_cli_http(method, o.addr, "/_atoll/policy", authz, body, &answer);
    wipe_free(authz);
    free(body);
    if (status != 200) {
        fprintf(stderr, "atoll policy %s: %s%s%s\n", o.action,
                status < 0      ? at_strerror(status)
                : status == 401 ? "authentication failed"
                : status == 403 ? "only an admin user may do this"
                                : "failed",
                answer != NULL ? ": " : "", answer != NULL ? answer : "");
        free(answer);
        return 1;
    }
    fputs(answer != NULL ? answer : "", stdout);
    free(answer);
    return 0;
}
