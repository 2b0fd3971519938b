/* The account endpoints (see accounts.h): one request object per call,
 * moving through its states as its steps complete.
 *
 * Happy path of a change: AUTH (the cluster secret at once, or Basic
 * credentials verified in the pool; an admin user only) -> BODY (the JSON
 * body, bounded) -> HASH (a new password or robot secret hashed in the
 * pool) -> PROPOSE (the command through the log, forwarded by a follower)
 * -> DONE (the answer, with X-Atoll-Index, and the audit line). A listing
 * goes AUTH -> READ (the read barrier) -> DONE; a DELETE has no body.
 *
 * Failure modes: no or unknown credentials 401 with a Basic challenge, too
 * many failed logins for the name or from the address 429 with
 * Retry-After (no bcrypt then: node/auth/limit.h), a non-admin user 403, a
 * malformed body 400, a name taken 409, an unknown one 404, no leader or an
 * unknown outcome 503 (the reply toolkit's). A client gone mid-body aborts the
 * request (its object freed); gone later, the steps finish and the answer goes
 * nowhere. */
#define AT_LOG_COMP "audit"
#include "common/compat.h"

#include <strings.h>

#include <jansson.h>

#include "node/accounts.h"
#include "node/admin_auth.h"
#include "node/auth/auth.h"
#include "node/cluster/peer_api.h"

enum op {
    OP_USERS_LIST,
    OP_USER_ADD,
    OP_USER_PASSWD,
    OP_USER_REMOVE,
    OP_ROBOTS_LIST,
    OP_ROBOT_ADD,
    OP_ROBOT_REMOVE,
};

enum acc_state {
    ACC_AUTH,
    ACC_BODY,
    ACC_HASH,
    ACC_PROPOSE,
    ACC_READ,
    ACC_DONE,
};

static const char *const acc_state_name[] = { "auth",    "body", "hash",
                                              "propose", "read", "done" };

#define TO(s) (1u << (s))
static const unsigned acc_allowed[] = {
    [ACC_AUTH] = TO(ACC_BODY) | TO(ACC_PROPOSE) | TO(ACC_READ) | TO(ACC_DONE),
    [ACC_BODY] = TO(ACC_HASH) | TO(ACC_PROPOSE) | TO(ACC_DONE),
    [ACC_HASH] = TO(ACC_PROPOSE) | TO(ACC_DONE),
    [ACC_PROPOSE] = TO(ACC_DONE),
    [ACC_READ] = TO(ACC_DONE),
    [ACC_DONE] = 0,
};
#undef TO

/* One call on an account endpoint. */
struct acc {
    struct node_api *api;      /* borrowed */
    struct node_http_req *req; /* one reference until freed */
    enum acc_state state;
    enum op op;
    char who[NODE_AUTH_NAME_SIZE + 16]; /* for the audit line */
    struct at_buf body;
    /* the account the call is about */
    char name[META_ACCOUNT_NAME_MAX + 1];
    char password[NODE_AUTH_PASSWORD_MAX + 1]; /* or robot secret; wiped */
    char hash[META_ACCOUNT_HASH_MAX + 1];
    char *groups[META_GROUPS_MAX]; /* owned */
    size_t ngroups;
    bool admin;
    struct meta_robot_perm perms[META_ROBOT_PERMS_MAX]; /* owned globs */
    size_t nperms;
    uint64_t expires_ms;
};

static const char *const action_names[] = { "pull", "push", "delete",
                                            "overwrite" };

static void acc_move(struct acc *a, enum acc_state to)
{
    if ((acc_allowed[a->state] & (1u << to)) == 0) {
        LOG_ERROR("account request: illegal move %s -> %s",
                  acc_state_name[a->state], acc_state_name[to]);
        AT_ASSERT(!"illegal account request move");
    }
    a->state = to;
}

/* The request is answered (or gone): release everything. */
static void acc_done(struct acc *a)
{
    struct node_http_req *req = a->req;

    acc_move(a, ACC_DONE);
    at_buf_release(&a->body);
    for (size_t i = 0; i < a->ngroups; i++)
        at_free(a->groups[i]);
    for (size_t i = 0; i < a->nperms; i++)
        at_free((char *)a->perms[i].repository);
    explicit_bzero(a, sizeof(*a));
    at_free(a);
    node_http_req_unref(req);
}

static void acc_fail(struct acc *a,
                     int status,
                     const char *code,
                     const char *msg)
{
    node_reply_error(a->req, status, code, "%s", msg);
    acc_done(a);
}

static void reply_json(struct node_http_req *req,
                       int status,
                       const struct at_buf *b)
{
    node_reply_begin(req, status);
    node_http_resp_header(req, "Content-Type", "application/json");
    node_http_resp_header(req, "Cache-Control", "no-store");
    node_http_resp_send(req, b->data, b->len);
}

/* ---- listings ---- */

static void json_strs(struct at_buf *b, const char *const *s, size_t n)
{
    at_buf_puts(b, "[");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            at_buf_puts(b, ",");
        at_buf_json_str(b, s[i], strlen(s[i]));
    }
    at_buf_puts(b, "]");
}

struct list_ctx {
    struct at_buf *b;
    size_t n;
    uint64_t now_ms;
};

static void list_user(void *data, const struct meta_user *u)
{
    struct list_ctx *l = data;

    at_buf_puts(l->b, l->n++ > 0 ? ",{\"name\":" : "{\"name\":");
    at_buf_json_str(l->b, u->name, strlen(u->name));
    at_buf_printf(l->b,
                  ",\"admin\":%s,\"groups\":", u->admin ? "true" : "false");
    json_strs(l->b, u->groups, u->ngroups);
    at_buf_printf(l->b,
                  ",\"created_ms\":%" PRIu64 ",\"source\":\"replicated\"}",
                  u->created_ms);
}

static void list_htpasswd(void *data, const char *name)
{
    struct list_ctx *l = data;

    at_buf_puts(l->b, l->n++ > 0 ? ",{\"name\":" : "{\"name\":");
    at_buf_json_str(l->b, name, strlen(name));
    at_buf_puts(l->b,
                ",\"admin\":false,\"groups\":[],\"source\":"
                "\"htpasswd\"}");
}

static void list_robot(void *data, const struct meta_robot *r)
{
    struct list_ctx *l = data;
    char full[NODE_AUTH_NAME_SIZE];

    snprintf(full, sizeof(full), NODE_AUTH_ROBOT_PREFIX "%s", r->name);
    at_buf_puts(l->b, l->n++ > 0 ? ",{\"name\":" : "{\"name\":");
    at_buf_json_str(l->b, full, strlen(full));
    at_buf_printf(
        l->b,
        ",\"expires_ms\":%" PRIu64
        ",\"expired\":%s,"
        "\"created_ms\":%" PRIu64 ",\"permissions\":[",
        r->expires_ms,
        r->expires_ms != 0 && l->now_ms >= r->expires_ms ? "true" : "false",
        r->created_ms);
    for (size_t i = 0; i < r->nperms; i++) {
        const char *acts[AT_ARRAY_SIZE(action_names)];
        size_t n = 0;
        for (size_t k = 0; k < AT_ARRAY_SIZE(action_names); k++) {
            if (r->perms[i].actions & (1u << k))
                acts[n++] = action_names[k];
        }
        at_buf_puts(l->b, i > 0 ? ",{\"repository\":" : "{\"repository\":");
        at_buf_json_str(l->b, r->perms[i].repository,
                        strlen(r->perms[i].repository));
        at_buf_puts(l->b, ",\"actions\":");
        json_strs(l->b, acts, n);
        at_buf_puts(l->b, "}");
    }
    at_buf_puts(l->b, "]}");
}

static void on_read(void *data, int status)
{
    struct acc *a = data;
    struct at_buf b;
    struct list_ctx l = { &b, 0, at_wall_ms() };

    if (status != 0 || a->api->meta == NULL) {
        node_reply_error(a->req, 503, "UNAVAILABLE",
                         "cannot read consistently: %s", at_strerror(status));
        acc_done(a);
        return;
    }
    at_buf_init(&b, 0);
    if (a->op == OP_USERS_LIST) {
        at_buf_puts(&b, "{\"users\":[");
        meta_users_list(a->api->meta, list_user, &l);
        node_auth_htpasswd_users(a->api->auth, list_htpasswd, &l);
    } else {
        at_buf_puts(&b, "{\"robots\":[");
        meta_robots_list(a->api->meta, list_robot, &l);
    }
    at_buf_puts(&b, "]}\n");
    reply_json(a->req, 200, &b);
    at_buf_release(&b);
    acc_done(a);
}

/* ---- changes ---- */

static const char *op_verb(enum op op)
{
    switch (op) {
    case OP_USER_ADD:
    case OP_ROBOT_ADD:
        return "added";
    case OP_USER_PASSWD:
        return "changed the password of";
    default:
        return "removed";
    }
}

static bool is_robot_op(enum op op)
{
    return op == OP_ROBOTS_LIST || op == OP_ROBOT_ADD || op == OP_ROBOT_REMOVE;
}

static void audit(const struct acc *a, uint64_t index)
{
    bool robot = is_robot_op(a->op);

    if (a->op == OP_USER_ADD)
        LOG_INFO(
            "%s from %s added user '%s' (admin %s, %zu groups) at index "
            "%" PRIu64,
            a->who, node_http_req_peer(a->req), a->name,
            a->admin ? "yes" : "no", a->ngroups, index);
    else if (a->op == OP_ROBOT_ADD)
        LOG_INFO(
            "%s from %s added robot 'robot$%s' (%zu permissions, "
            "expires_ms %" PRIu64 ") at index %" PRIu64,
            a->who, node_http_req_peer(a->req), a->name, a->nperms,
            a->expires_ms, index);
    else
        LOG_INFO("%s from %s %s %s '%s%s' at index %" PRIu64, a->who,
                 node_http_req_peer(a->req), op_verb(a->op),
                 robot ? "robot" : "user", robot ? "robot$" : "", a->name,
                 index);
}

static void on_written(void *data, int status, int result, uint64_t index)
{
    struct acc *a = data;
    struct at_buf b;

    if (status != 0) {
        node_reply_write_failed(a->req, status, result);
        acc_done(a);
        return;
    }
    switch (result) {
    case META_OK:
        break;
    case META_ACCOUNT_EXISTS:
        acc_fail(a, 409, "EXISTS", "an account of that name exists");
        return;
    case META_ACCOUNT_UNKNOWN:
        acc_fail(a, 404, "NOT_FOUND", "no such account");
        return;
    case META_ACCOUNT_LIMIT:
        acc_fail(a, 409, "LIMIT", "too many accounts");
        return;
    default:
        acc_fail(a, 400, "BAD_REQUEST", meta_result_str(result));
        return;
    }
    audit(a, index);
    at_buf_init(&b, 0);
    at_buf_puts(&b, "{\"name\":");
    if (is_robot_op(a->op)) {
        char full[NODE_AUTH_NAME_SIZE];
        snprintf(full, sizeof(full), NODE_AUTH_ROBOT_PREFIX "%s", a->name);
        at_buf_json_str(&b, full, strlen(full));
    } else {
        at_buf_json_str(&b, a->name, strlen(a->name));
    }
    if (a->op == OP_ROBOT_ADD) {
        /* the only time the secret leaves this node */
        at_buf_puts(&b, ",\"secret\":");
        at_buf_json_str(&b, a->password, strlen(a->password));
        at_buf_printf(&b, ",\"expires_ms\":%" PRIu64, a->expires_ms);
    }
    at_buf_printf(&b, ",\"index\":%" PRIu64 "}\n", index);
    node_reply_write_index(a->req, status, index);
    reply_json(a->req,
               a->op == OP_USER_ADD || a->op == OP_ROBOT_ADD ? 201 : 200, &b);
    explicit_bzero(b.data, b.len);
    at_buf_release(&b);
    acc_done(a);
}

static void propose(struct acc *a)
{
    struct meta_cmd c = { .request_id = node_http_req_header(
                              a->req, "x-atoll-request-id") };
    int rv;

    acc_move(a, ACC_PROPOSE);
    switch (a->op) {
    case OP_USER_ADD:
    case OP_USER_PASSWD:
        c.kind = META_CMD_USER_PUT;
        c.user_put.name = a->name;
        c.user_put.password_hash = a->hash;
        c.user_put.groups = (const char *const *)a->groups;
        c.user_put.ngroups = a->ngroups;
        c.user_put.admin = a->admin;
        c.user_put.mode =
            a->op == OP_USER_ADD ? META_PUT_CREATE : META_PUT_PASSWORD;
        break;
    case OP_ROBOT_ADD:
        c.kind = META_CMD_ROBOT_PUT;
        c.robot_put.name = a->name;
        c.robot_put.secret_hash = a->hash;
        c.robot_put.expires_ms = a->expires_ms;
        c.robot_put.perms = a->perms;
        c.robot_put.nperms = a->nperms;
        c.robot_put.mode = META_PUT_CREATE;
        break;
    case OP_USER_REMOVE:
        c.kind = META_CMD_USER_REMOVE;
        c.user_remove.name = a->name;
        break;
    default:
        c.kind = META_CMD_ROBOT_REMOVE;
        c.robot_remove.name = a->name;
        break;
    }
    if (a->api->meta == NULL) {
        acc_fail(a, 503, "UNAVAILABLE", "node is stopping");
        return;
    }
    rv = meta_propose(a->api->meta, &c, on_written, a);
    if (rv == 0)
        return;
    if (rv == AT_EINVAL || rv == AT_ETOOBIG)
        node_reply_error(a->req, 400, "BAD_REQUEST", "%s",
                         meta_errmsg(a->api->meta));
    else
        node_reply_write_failed(a->req, rv, 0);
    acc_done(a);
}

static void on_hashed(void *data, int status, const char *hash)
{
    struct acc *a = data;

    if (status != 0 || strlen(hash) >= sizeof(a->hash)) {
        acc_fail(a, 503, "UNAVAILABLE", "cannot hash the secret");
        return;
    }
    memcpy(a->hash, hash, strlen(hash) + 1);
    propose(a);
}

/* ---- the body ---- */

/* A name field: a user name, or a robot name with or without "robot$". */
static bool take_name(struct acc *a, json_t *v)
{
    const char *s = json_string_value(v);
    size_t plen = strlen(NODE_AUTH_ROBOT_PREFIX);

    if (s == NULL || strlen(s) != json_string_length(v))
        return false;
    if (is_robot_op(a->op) && strncmp(s, NODE_AUTH_ROBOT_PREFIX, plen) == 0)
        s += plen;
    if (is_robot_op(a->op) ? !meta_robot_name_ok(s) : !meta_user_name_ok(s))
        return false;
    snprintf(a->name, sizeof(a->name), "%s", s);
    return true;
}

static const char *take_user(struct acc *a, json_t *doc)
{
    json_t *pw = json_object_get(doc, "password");
    json_t *admin = json_object_get(doc, "admin");
    json_t *groups = json_object_get(doc, "groups");
    size_t n = json_string_length(pw);
    json_t *g;
    size_t i;

    if (!json_is_string(pw) || n < NODE_ACCOUNTS_PASSWORD_MIN ||
        n > NODE_AUTH_PASSWORD_MAX || strlen(json_string_value(pw)) != n)
        return "password: want 8 to 72 bytes";
    memcpy(a->password, json_string_value(pw), n + 1);
    if (a->op == OP_USER_PASSWD)
        return NULL;
    if (admin != NULL && !json_is_boolean(admin))
        return "admin: want true or false";
    a->admin = json_is_true(admin);
    if (groups != NULL &&
        (!json_is_array(groups) || json_array_size(groups) > META_GROUPS_MAX))
        return "groups: want a list of at most 32 names";
    json_array_foreach(groups, i, g)
    {
        if (!json_is_string(g) || !meta_user_name_ok(json_string_value(g)))
            return "groups: each a name of letters, digits and ._@-";
        a->groups[a->ngroups++] = at_strdup(json_string_value(g));
    }
    return NULL;
}

static const char *take_perm(struct acc *a, json_t *p)
{
    json_t *repo = json_object_get(p, "repository");
    json_t *acts = json_object_get(p, "actions");
    unsigned bits = 0;
    json_t *v;
    size_t i;

    if (!json_is_string(repo) || !meta_repo_glob_ok(json_string_value(repo)))
        return "permissions: repository must be a glob of a-z0-9._/- and *";
    if (!json_is_array(acts) || json_array_size(acts) == 0)
        return "permissions: actions must be a non-empty list";
    json_array_foreach(acts, i, v)
    {
        const char *s = json_string_value(v);
        size_t k = 0;
        while (s != NULL && k < AT_ARRAY_SIZE(action_names) &&
               strcmp(s, action_names[k]) != 0)
            k++;
        if (s == NULL || k == AT_ARRAY_SIZE(action_names))
            return "permissions: actions are pull, push, delete, overwrite";
        bits |= 1u << k;
    }
    a->perms[a->nperms].repository = at_strdup(json_string_value(repo));
    a->perms[a->nperms++].actions = bits;
    return NULL;
}

/* expires_in: absent or "never", seconds, or a duration string; the
 * proposer's clock makes it a time. */
static const char *take_expiry(struct acc *a, json_t *exp)
{
    static const char why[] =
        "expires_in: want a duration (30s, 12h, 90d), seconds, or never";
    uint64_t ms = 0;

    a->expires_ms = 0;
    if (exp == NULL ||
        (json_is_string(exp) && strcmp(json_string_value(exp), "never") == 0))
        return NULL;
    if (json_is_integer(exp)) {
        json_int_t v = json_integer_value(exp);
        if (v <= 0 || v > (json_int_t)1 << 40)
            return why;
        ms = (uint64_t)v * 1000;
    } else if (!json_is_string(exp) ||
               at_parse_duration_ms(json_string_value(exp), &ms) != 0 ||
               ms == 0 || ms > (uint64_t)1 << 50) {
        return why;
    }
    a->expires_ms = at_wall_ms() + ms;
    return NULL;
}

static const char *take_robot(struct acc *a, json_t *doc)
{
    json_t *perms = json_object_get(doc, "permissions");
    const char *why = take_expiry(a, json_object_get(doc, "expires_in"));
    json_t *p;
    size_t i;

    if (why != NULL)
        return why;
    if (!json_is_array(perms) || json_array_size(perms) == 0 ||
        json_array_size(perms) > META_ROBOT_PERMS_MAX)
        return "permissions: want a list of 1 to 64 permissions";
    json_array_foreach(perms, i, p)
    {
        why = take_perm(a, p);
        if (why != NULL)
            return why;
    }
    node_auth_secret_new(a->password);
    return NULL;
}

/* The whole body is here: parse it, then hash or propose. */
static void body_run(struct acc *a)
{
    json_error_t jerr;
    json_t *doc = json_loadb(a->body.data != NULL ? a->body.data : "",
                             a->body.len, JSON_REJECT_DUPLICATES, &jerr);
    const char *why = NULL;
    int rv;

    if (a->body.data != NULL)
        explicit_bzero(a->body.data, a->body.len);
    if (!json_is_object(doc))
        why = "want a JSON object";
    else if (!take_name(a, json_object_get(doc, "name")))
        why = is_robot_op(a->op) ? "name: want [a-z0-9][a-z0-9._-]{0,63}"
                                 : "name: want [A-Za-z0-9][A-Za-z0-9._@-]"
                                   "{0,63}";
    else if (a->op == OP_USER_ADD || a->op == OP_USER_PASSWD)
        why = take_user(a, doc);
    else if (a->op == OP_ROBOT_ADD)
        why = take_robot(a, doc);
    json_decref(doc);
    if (why != NULL) {
        acc_fail(a, 400, "BAD_REQUEST", why);
        return;
    }
    if (a->op == OP_USER_REMOVE || a->op == OP_ROBOT_REMOVE) {
        propose(a);
        return;
    }
    acc_move(a, ACC_HASH);
    rv = node_auth_hash(a->api->auth, a->password, on_hashed, a);
    if (rv != 0)
        acc_fail(a, 503, "UNAVAILABLE", "cannot hash the secret");
}

static int on_body(struct node_http_req *req, const char *p, size_t n)
{
    struct acc *a = node_http_req_data(req);

    if (a != NULL && at_buf_append(&a->body, p, n) != 0) {
        node_http_req_set_data(req, NULL);
        node_http_req_on_abort(req, NULL);
        acc_fail(a, 413, "BAD_REQUEST", "body over 64 KiB");
    }
    return 0;
}

static void on_end(struct node_http_req *req)
{
    struct acc *a = node_http_req_data(req);

    if (a == NULL)
        return;
    node_http_req_set_data(req, NULL);
    node_http_req_on_abort(req, NULL);
    body_run(a);
}

static void on_abort(struct node_http_req *req)
{
    struct acc *a = node_http_req_data(req);

    if (a == NULL)
        return;
    node_http_req_set_data(req, NULL);
    acc_done(a);
}

/* ---- who is asking ---- */

/* Authenticated: list, read the body, or (DELETE) propose at once. */
static void authorized(struct acc *a, const char *path_name)
{
    int rv;

    if (a->op == OP_USERS_LIST || a->op == OP_ROBOTS_LIST) {
        acc_move(a, ACC_READ);
        rv = node_api_read_barrier(a->api, on_read, a);
        if (rv != 0) {
            node_reply_error(a->req, 503, "UNAVAILABLE",
                             "cannot read consistently: %s", at_strerror(rv));
            acc_done(a);
        }
        return; /* on_read may have answered already: a is gone then */
    }
    if (path_name != NULL) {
        json_t *v = json_string(path_name);
        bool ok = v != NULL && take_name(a, v);
        json_decref(v);
        if (!ok) {
            acc_fail(a, 400, "BAD_REQUEST", "bad account name");
            return;
        }
        propose(a);
        return;
    }
    if (!node_http_req_has_body(a->req) ||
        (node_http_req_has_length(a->req) &&
         node_http_req_content_length(a->req) > NODE_ACCOUNTS_BODY_MAX)) {
        acc_fail(a, 400, "BAD_REQUEST", "want a JSON body of at most 64 KiB");
        return;
    }
    acc_move(a, ACC_BODY);
    at_buf_init(&a->body, NODE_ACCOUNTS_BODY_MAX);
    node_http_req_set_data(a->req, a);
    node_http_req_on_abort(a->req, on_abort);
    node_http_req_read_body(a->req, on_body, on_end);
}

/* The admin check's answer: an admin goes further. The path's name is
 * found again from the request (the request outlives the check). */
static void on_admin(void *data, int status, const struct node_admin_who *w)
{
    struct acc *a = data;
    const char *path = node_http_req_path(a->req);
    const char *slash = strchr(path + strlen("/_atoll/"), '/');

    if (status != 0) {
        acc_done(a); /* answered, or the client is gone */
        return;
    }
    snprintf(a->who, sizeof(a->who), "%s", w->text);
    authorized(a, node_http_req_method(a->req) == NODE_HTTP_DELETE && slash
                      ? slash + 1
                      : NULL);
}

/* ---- routing ---- */

/* see accounts.h */
bool node_accounts_path(const char *path)
{
    return strcmp(path, "/_atoll/users") == 0 ||
           strncmp(path, "/_atoll/users/", 14) == 0 ||
           strcmp(path, "/_atoll/robots") == 0 ||
           strncmp(path, "/_atoll/robots/", 15) == 0;
}

/* The operation of method on path; -1 (404) or -2 (405). */
static int route(enum node_http_method m, const char *path)
{
    bool robots = strncmp(path, "/_atoll/robots", 14) == 0;
    const char *rest = path + (robots ? 14 : 13);

    if (rest[0] == '\0') {
        if (m == NODE_HTTP_GET || m == NODE_HTTP_HEAD)
            return robots ? OP_ROBOTS_LIST : OP_USERS_LIST;
        return m == NODE_HTTP_POST ? (robots ? OP_ROBOT_ADD : OP_USER_ADD) : -2;
    }
    rest++; /* the '/' */
    if (m == NODE_HTTP_DELETE)
        return strchr(rest, '/') != NULL || rest[0] == '\0'
                   ? -1
                   : (robots ? OP_ROBOT_REMOVE : OP_USER_REMOVE);
    if (strcmp(rest, "remove") == 0)
        return m == NODE_HTTP_POST ? (robots ? OP_ROBOT_REMOVE : OP_USER_REMOVE)
                                   : -2;
    if (!robots && strcmp(rest, "passwd") == 0)
        return m == NODE_HTTP_POST ? OP_USER_PASSWD : -2;
    return -1;
}

/* see accounts.h */
void node_accounts_handle(struct node_api *api, struct node_http_req *req)
{
    int op = route(node_http_req_method(req), node_http_req_path(req));
    struct acc *a;

    if (op == -1) {
        node_reply_error(req, 404, "NOT_FOUND", "unknown account endpoint");
        return;
    }
    if (op == -2) {
        node_reply_error(req, 405, "UNSUPPORTED", "method not allowed here");
        return;
    }
    if (api->auth == NULL || api->meta == NULL) {
        node_reply_error(req, 503, "UNAVAILABLE", "node is starting");
        return;
    }
    a = at_calloc(1, sizeof(*a));
    a->api = api;
    a->req = req;
    a->state = ACC_AUTH;
    a->op = (enum op)op;
    node_http_req_ref(req);
    node_admin_auth(api, req, "manage accounts", on_admin, a);
}
