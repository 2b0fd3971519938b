/* atoll users and atoll robots: the account endpoints of a node's API
 * (node/accounts.h) from the command line. Passwords come from a prompt
 * on the terminal without echo, or from the first line of stdin
 * (--password-stdin); a robot's secret is printed once, alone on stdout,
 * so that it can go straight into a file or a Secret. */
#include "common/compat.h"

#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "node/cli.h"
#include "raft/meta.h"

#define PASSWORD_SIZE 80 /* the longest bcrypt takes is 72 bytes */

struct opts {
    const char *action;
    const char *name;
    struct node_cli_auth auth;
    const char *expires;
    bool password_stdin;
    bool admin;
    const char *groups[META_GROUPS_MAX];
    size_t ngroups;
    const char *perms[META_ROBOT_PERMS_MAX];
    size_t nperms;
};

static int usage(bool robots)
{
    if (robots)
        fprintf(stderr,
                "usage: atoll robots list [AUTH]\n"
                "       atoll robots add NAME --permission GLOB:ACTIONS... "
                "[--expires DURATION|never] [AUTH]\n"
                "       atoll robots remove NAME [AUTH]\n"
                "ACTIONS: pull,push,delete,overwrite; GLOB: '*' one level, "
                "'**' any (e.g. 'lib/**:pull,push')\n");
    else
        fprintf(stderr,
                "usage: atoll users list [AUTH]\n"
                "       atoll users add NAME [--admin] [--group G]... "
                "[--password-stdin] [AUTH]\n"
                "       atoll users passwd NAME [--password-stdin] [AUTH]\n"
                "       atoll users remove NAME [AUTH]\n");
    fprintf(stderr,
            "AUTH: [--addr API_HOST:PORT] and --user ADMIN "
            "[--user-password-file FILE] (else a prompt),\n"
            "      or --cluster-secret-file FILE (default "
            "$ATOLL_CLUSTER_SECRET_FILE)\n");
    return 2;
}

static int parse_opts(int argc, char **argv, bool robots, struct opts *o)
{
    const char *v;

    memset(o, 0, sizeof(*o));
    node_cli_auth_init(&o->auth);
    if (argc < 1)
        return -1;
    o->action = argv[0];
    for (int i = 1; i < argc; i++) {
        if (node_cli_auth_flag(argc, argv, &i, &o->auth))
            continue;
        if (strcmp(argv[i], "--password-stdin") == 0 && !robots)
            o->password_stdin = true;
        else if (strcmp(argv[i], "--admin") == 0 && !robots)
            o->admin = true;
        else if (!robots && (v = node_cli_flag(argc, argv, &i, "--group")) &&
                 o->ngroups < META_GROUPS_MAX)
            o->groups[o->ngroups++] = v;
        else if (robots && (v = node_cli_flag(argc, argv, &i, "--expires")))
            o->expires = v;
        else if (robots &&
                 (v = node_cli_flag(argc, argv, &i, "--permission")) != NULL &&
                 o->nperms < META_ROBOT_PERMS_MAX)
            o->perms[o->nperms++] = v;
        else if (argv[i][0] != '-' && o->name == NULL)
            o->name = argv[i];
        else
            return -1;
    }
    return 0;
}

/* ---- passwords ---- */

static void chomp(char *s)
{
    s[strcspn(s, "\r\n")] = '\0';
}

/* One line from the terminal, not echoed. */
/* The new password of a user: stdin's first line, or asked twice. */
static int new_password(const struct opts *o, char *out, size_t size)
{
    char again[PASSWORD_SIZE];
    char text[160];
    int rv;

    if (o->password_stdin) {
        if (fgets(out, (int)size, stdin) == NULL) {
            fprintf(stderr, "atoll users: no password on stdin\n");
            return AT_EINVAL;
        }
        chomp(out);
        return 0;
    }
    snprintf(text, sizeof(text), "New password for '%s': ", o->name);
    rv = node_cli_prompt(text, out, size);
    if (rv == 0)
        rv = node_cli_prompt("Retype it: ", again, sizeof(again));
    if (rv == 0 && strcmp(out, again) != 0) {
        fprintf(stderr, "atoll users: the passwords differ\n");
        rv = AT_EINVAL;
    }
    explicit_bzero(again, sizeof(again));
    return rv;
}

/* ---- calls ---- */

/* Send the call; on anything but 2xx say why on stderr and return NULL,
 * else the parsed answer (caller decrefs). */
static json_t *call(const char *cmd,
                    const struct opts *o,
                    const char *method,
                    const char *path,
                    json_t *body)
{
    char *authz = node_cli_authorization(&o->auth, cmd);
    char *json = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    char *answer = NULL;
    json_t *doc = NULL;
    int status;

    if (authz == NULL) {
        node_cli_wipe_free(json);
        return NULL;
    }
    status = node_cli_http(method, o->auth.addr, path, authz, json, &answer);
    node_cli_wipe_free(authz);
    node_cli_wipe_free(json);
    if (status >= 200 && status < 300)
        doc = json_loads(answer != NULL ? answer : "", 0, NULL);
    if (doc == NULL)
        fprintf(stderr, "atoll %s: %s%s%s\n", cmd,
                status < 0      ? node_cli_why(status)
                : status == 401 ? "authentication failed (--user ADMIN or "
                                  "--cluster-secret-file FILE)"
                : status == 403 ? "only an admin user may do this"
                : status == 404 ? "no such account"
                : status == 409 ? "an account of that name exists"
                                : "failed",
                answer != NULL ? ": " : "", answer != NULL ? answer : "");
    node_cli_wipe_free(answer);
    return doc;
}

static const char *when(uint64_t ms, char *out, size_t size)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms == 0 || gmtime_r(&t, &tm) == NULL)
        snprintf(out, size, "-");
    else
        strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return out;
}

static uint64_t num(json_t *o, const char *key)
{
    json_int_t v = json_integer_value(json_object_get(o, key));
    return v > 0 ? (uint64_t)v : 0;
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "";
}

/* A JSON list of strings, comma-joined into b. */
static void joined(json_t *list, struct at_buf *b)
{
    json_t *v;
    size_t i;

    json_array_foreach(list, i, v)
    {
        if (i > 0)
            at_buf_puts(b, ",");
        at_buf_puts(b,
                    json_string_value(v) != NULL ? json_string_value(v) : "?");
    }
}

static int users_list(const struct opts *o)
{
    json_t *doc = call("users list", o, "GET", "/_atoll/users", NULL);
    json_t *u;
    size_t i;
    char t[32];

    if (doc == NULL)
        return 1;
    printf("%-24s %-5s %-10s %-20s %s\n", "NAME", "ADMIN", "SOURCE", "CREATED",
           "GROUPS");
    json_array_foreach(json_object_get(doc, "users"), i, u)
    {
        struct at_buf g;
        at_buf_init(&g, 0);
        joined(json_object_get(u, "groups"), &g);
        printf("%-24s %-5s %-10s %-20s %s\n", str(u, "name"),
               json_is_true(json_object_get(u, "admin")) ? "yes" : "no",
               str(u, "source"), when(num(u, "created_ms"), t, sizeof(t)),
               g.data != NULL ? g.data : "");
        at_buf_release(&g);
    }
    json_decref(doc);
    return 0;
}

static int users_change(const struct opts *o)
{
    bool add = strcmp(o->action, "add") == 0;
    bool passwd = strcmp(o->action, "passwd") == 0;
    char pw[PASSWORD_SIZE] = "";
    json_t *body, *doc;

    if (o->name == NULL)
        return usage(false);
    if ((add || passwd) && new_password(o, pw, sizeof(pw)) != 0)
        return 1;
    body = json_pack("{s:s}", "name", o->name);
    if (add || passwd)
        json_object_set_new(body, "password", json_string(pw));
    explicit_bzero(pw, sizeof(pw));
    if (add) {
        json_t *groups = json_array();
        for (size_t i = 0; i < o->ngroups; i++)
            json_array_append_new(groups, json_string(o->groups[i]));
        json_object_set_new(body, "groups", groups);
        json_object_set_new(body, "admin", json_boolean(o->admin));
    }
    doc = call(add      ? "users add"
               : passwd ? "users passwd"
                        : "users remove",
               o, "POST",
               add      ? "/_atoll/users"
               : passwd ? "/_atoll/users/passwd"
                        : "/_atoll/users/remove",
               body);
    json_decref(body);
    if (doc == NULL)
        return 1;
    printf("user '%s' %s (index %" PRIu64 ")\n", o->name,
           add      ? "added"
           : passwd ? "has a new password"
                    : "removed",
           num(doc, "index"));
    json_decref(doc);
    return 0;
}

/* see cli.h */
int node_cli_users(int argc, char **argv)
{
    struct opts o;

    if (parse_opts(argc, argv, false, &o) != 0)
        return usage(false);
    if (strcmp(o.action, "list") == 0 && o.name == NULL)
        return users_list(&o);
    if (strcmp(o.action, "add") == 0 || strcmp(o.action, "passwd") == 0 ||
        strcmp(o.action, "remove") == 0)
        return users_change(&o);
    return usage(false);
}

static int robots_list(const struct opts *o)
{
    json_t *doc = call("robots list", o, "GET", "/_atoll/robots", NULL);
    json_t *r, *p;
    size_t i, k;
    char t[32];

    if (doc == NULL)
        return 1;
    printf("%-30s %-20s %s\n", "NAME", "EXPIRES", "PERMISSIONS");
    json_array_foreach(json_object_get(doc, "robots"), i, r)
    {
        struct at_buf b;
        at_buf_init(&b, 0);
        json_array_foreach(json_object_get(r, "permissions"), k, p)
        {
            at_buf_printf(&b, "%s%s:", k > 0 ? " " : "", str(p, "repository"));
            joined(json_object_get(p, "actions"), &b);
        }
        printf("%-30s %-20s %s\n", str(r, "name"),
               json_is_true(json_object_get(r, "expired")) ? "expired"
               : num(r, "expires_ms") == 0
                   ? "never"
                   : when(num(r, "expires_ms"), t, sizeof(t)),
               b.data != NULL ? b.data : "");
        at_buf_release(&b);
    }
    json_decref(doc);
    return 0;
}

/* "GLOB:ACTIONS" as {"repository", "actions"}; NULL if malformed. */
static json_t *permission(const char *spec)
{
    const char *colon = strrchr(spec, ':');
    json_t *acts, *p;
    char *list, *save = NULL;

    if (colon == NULL || colon == spec || colon[1] == '\0')
        return NULL;
    acts = json_array();
    list = at_strdup(colon + 1);
    for (char *a = strtok_r(list, ",", &save); a != NULL;
         a = strtok_r(NULL, ",", &save))
        json_array_append_new(acts, json_string(a));
    free(list);
    p = json_object();
    json_object_set_new(p, "repository",
                        json_stringn(spec, (size_t)(colon - spec)));
    json_object_set_new(p, "actions", acts);
    return p;
}

static int robots_add(const struct opts *o)
{
    json_t *perms = json_array();
    json_t *body, *doc;
    char t[32];

    if (o->name == NULL || o->nperms == 0) {
        json_decref(perms);
        return usage(true);
    }
    for (size_t i = 0; i < o->nperms; i++) {
        json_t *p = permission(o->perms[i]);
        if (p == NULL) {
            fprintf(stderr,
                    "atoll robots add: bad permission '%s' (want "
                    "GLOB:ACTIONS, e.g. 'lib/**:pull,push')\n",
                    o->perms[i]);
            json_decref(perms);
            return 2;
        }
        json_array_append_new(perms, p);
    }
    body = json_pack("{s:s,s:o}", "name", o->name, "permissions", perms);
    if (o->expires != NULL)
        json_object_set_new(body, "expires_in", json_string(o->expires));
    doc = call("robots add", o, "POST", "/_atoll/robots", body);
    json_decref(body);
    if (doc == NULL)
        return 1;
    fprintf(stderr,
            "robot '%s' added, expires %s; its secret follows, shown only "
            "this once\n",
            str(doc, "name"),
            num(doc, "expires_ms") == 0
                ? "never"
                : when(num(doc, "expires_ms"), t, sizeof(t)));
    printf("%s\n", str(doc, "secret"));
    json_decref(doc);
    return 0;
}

/* see cli.h */
int node_cli_robots(int argc, char **argv)
{
    struct opts o;
    json_t *body, *doc;

    if (parse_opts(argc, argv, true, &o) != 0)
        return usage(true);
    if (strcmp(o.action, "list") == 0 && o.name == NULL)
        return robots_list(&o);
    if (strcmp(o.action, "add") == 0)
        return robots_add(&o);
    if (strcmp(o.action, "remove") != 0 || o.name == NULL)
        return usage(true);
    body = json_pack("{s:s}", "name", o.name);
    doc = call("robots remove", &o, "POST", "/_atoll/robots/remove", body);
    json_decref(body);
    if (doc == NULL)
        return 1;
    printf("robot '%s' removed (index %" PRIu64 ")\n", str(doc, "name"),
           num(doc, "index"));
    json_decref(doc);
    return 0;
}
