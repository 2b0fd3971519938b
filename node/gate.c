/* The API listener's gate (see gate.h): one object per request it has to
 * wait for.
 *
 * Happy path: CLASSIFY (what the path and method need; open endpoints and
 * the ones that authenticate themselves go through at once) -> BARRIER
 * (the read barrier: every account and policy change answered before this
 * request started is applied here before deciding, so a change made on
 * one node holds on every node once it has answered) -> VERIFY (Basic
 * credentials through the verifier: its cache, else bcrypt in the pool)
 * or a bearer token of /_atoll/token, checked here) -> DONE (decided: the
 * handler runs, or 401/403 answered here).
 *
 * Failure modes: no barrier (no leader, timeout) 503; credentials that do
 * not verify 401; too many failed logins of a name or from an address 429
 * without a bcrypt (node/auth/limit.h); a client gone while waiting:
 * nothing is answered. */
#define AT_LOG_COMP "auth"
#include "common/compat.h"

#include <strings.h>

#include "node/auth/access.h"
#include "node/auth/jwt.h"
#include "node/cluster/peer_api.h"
#include "node/gate.h"
#include "node/oci/route.h"
#include "node/token.h"

/* What a request needs. */
enum need {
    NEED_NOTHING, /* open, or its handler authenticates itself */
    NEED_CALLER,  /* any valid credentials (GET /v2/, unknown paths) */
    NEED_ADMIN,   /* an admin user or the cluster secret */
    NEED_CATALOG, /* the catalog: filtered by its handler */
    NEED_REPO,    /* action on repo */
};

enum gate_state {
    GATE_BARRIER,
    GATE_VERIFY,
    GATE_DONE,
};

static const char *const gate_state_name[] = { "barrier", "verify", "done" };

#define TO(s) (1u << (s))
static const unsigned gate_allowed[] = {
    [GATE_BARRIER] = TO(GATE_VERIFY) | TO(GATE_DONE),
    [GATE_VERIFY] = TO(GATE_DONE),
    [GATE_DONE] = 0,
};
#undef TO

/* One request the gate waits for. */
struct gate {
    struct node_api *api;      /* borrowed */
    struct node_http_req *req; /* one reference until freed */
    node_gate_pass_cb pass;
    enum gate_state state;
    enum need need;
    unsigned action;
    char *repo; /* owned; NEED_REPO only */
    struct node_caller caller;
    struct node_auth_identity id;
    struct node_jwt_claims *claims;  /* owned: a bearer token's; or NULL */
    char login[NODE_AUTH_NAME_SIZE]; /* the name a password is tried for */
};

static void gate_move(struct gate *g, enum gate_state to)
{
    if ((gate_allowed[g->state] & (1u << to)) == 0) {
        LOG_ERROR("gate: illegal move %s -> %s", gate_state_name[g->state],
                  gate_state_name[to]);
        AT_ASSERT(!"illegal gate move");
    }
    g->state = to;
}

static void gate_free(struct gate *g)
{
    struct node_http_req *req = g->req;

    gate_move(g, GATE_DONE);
    at_free(g->repo);
    at_free(g->claims);
    explicit_bzero(g, sizeof(*g));
    at_free(g);
    node_http_req_unref(req);
}

/* The access log's user of req: the name the caller verified as. The one
 * place that tells the HTTP layer who is asking. */
static void gate_set_user(struct node_http_req *req, const char *name)
{
    node_http_req_set_user(req, name);
}

/* ---- classify ---- */

static bool is_get(enum node_http_method m)
{
    return m == NODE_HTTP_GET || m == NODE_HTTP_HEAD;
}

/* The need of a node endpoint (admin.c's paths). */
static enum need admin_need(const char *path)
{
    if (strcmp(path, "/livez") == 0 || strcmp(path, "/readyz") == 0 ||
        strcmp(path, "/metrics") == 0)
        return NEED_NOTHING;
    /* tokens authenticate their callers themselves (the JWKS is public
     * keys); so do the account, policy and token key endpoints (an admin
     * user or the cluster secret) */
    if (strcmp(path, "/_atoll/token") == 0 ||
        strcmp(path, "/_atoll/token/jwks") == 0 ||
        strncmp(path, "/_atoll/token-keys/", 19) == 0 ||
        strcmp(path, "/_atoll/users") == 0 ||
        strncmp(path, "/_atoll/users/", 14) == 0 ||
        strcmp(path, "/_atoll/robots") == 0 ||
        strncmp(path, "/_atoll/robots/", 15) == 0 ||
        strcmp(path, "/_atoll/policy") == 0)
        return NEED_NOTHING;
    return NEED_ADMIN;
}

/* The action a repository route needs with method m. */
static unsigned route_action(enum node_route r, enum node_http_method m)
{
    if (m == NODE_HTTP_DELETE)
        return META_ACTION_DELETE;
    if (is_get(m))
        return META_ACTION_PULL;
    AT_UNUSED(r);
    return META_ACTION_PUSH; /* POST, PATCH, PUT (and anything else) */
}

static void classify(struct gate *g, const char *path)
{
    enum node_http_method m = node_http_req_method(g->req);
    struct node_route_match rm;

    if (strncmp(path, "/v2", 3) != 0 || (path[3] != '\0' && path[3] != '/')) {
        g->need = admin_need(path);
        return;
    }
    node_route_parse(path, &rm);
    switch (rm.route) {
    case NODE_ROUTE_BASE:
    case NODE_ROUTE_NONE:
        g->need = NEED_CALLER;
        break;
    case NODE_ROUTE_CATALOG:
        g->need = NEED_CATALOG;
        break;
    default:
        if (rm.name == NULL) {
            g->need = NEED_CALLER; /* the handler answers 400 */
            break;
        }
        g->need = NEED_REPO;
        g->action = route_action(rm.route, m);
        g->repo = rm.name;
        rm.name = NULL;
        break;
    }
    node_route_release(&rm);
}

/* ---- decide ---- */

/* The WWW-Authenticate header of a 401 of the registry API: Basic, or
 * with auth_challenge bearer the token endpoint and the scope the
 * request needs (clients then ask /_atoll/token for a token). */
static void challenge(struct gate *g)
{
    const struct node_config *cfg = g->api->cfg;
    const char *scheme = cfg->tls_cert[0] != '\0' ? "https" : "http";
    unsigned actions = 0;
    struct at_buf b;

    if (strcmp(cfg->auth_challenge, "bearer") != 0 || g->api->token == NULL) {
        node_access_challenge(g->req);
        return;
    }
    if (g->need == NEED_REPO)
        actions = g->action & (NODE_JWT_PULL | NODE_JWT_PUSH | NODE_JWT_DELETE);
    else if (g->need == NEED_CATALOG)
        actions = NODE_JWT_ANY;
    /* a push also reads (HEAD of blobs and manifests): ask for both, as
     * distribution does */
    if (actions & NODE_JWT_PUSH)
        actions |= NODE_JWT_PULL;
    at_buf_init(&b, 4096);
    node_token_challenge(g->api->token, &b,
                         node_http_req_header(g->req, "host"), scheme,
                         g->need == NEED_REPO ? g->repo : NULL, actions);
    node_http_resp_header(g->req, "WWW-Authenticate", "%.*s", (int)b.len,
                          b.data != NULL ? b.data : "");
    at_buf_release(&b);
}

static void refuse(struct gate *g, bool known, const char *why)
{
    struct node_http_req *req = g->req;

    LOG_INFO("%s %s from %s refused (%s): %s", node_http_req_method_str(req),
             node_http_req_path(req), node_http_req_peer(req),
             known ? g->caller.name : "anonymous", why);
    if (!known) {
        g->api->gate_401++;
        challenge(g);
        node_reply_error(req, 401, "UNAUTHORIZED", "authentication required");
    } else {
        g->api->gate_403++;
        node_reply_error(req, 403, "DENIED",
                         "requested access to the "
                         "resource is denied");
    }
}

/* The caller is known: let the request in, or answer. */
static void decide(struct gate *g)
{
    const struct node_caller *c = &g->caller;
    const struct node_jwt_claims *tok = g->claims;
    bool known = c->kind != NODE_CALLER_ANONYMOUS || tok != NULL;
    bool ok;

    /* a token says what it was issued for; the policy of now still has
     * to agree (a right revoked since holds at once) */
    switch (g->need) {
    case NEED_CALLER:
        ok = known;
        break;
    case NEED_ADMIN:
        ok = c->admin && tok == NULL; /* tokens are for the registry API */
        break;
    case NEED_CATALOG:
        ok = node_access_pulls_any(g->api, c) &&
             (tok == NULL || node_token_allows(tok, NULL, NODE_JWT_ANY));
        break;
    case NEED_REPO:
        ok = (node_access_actions(g->api, c, g->repo) & g->action) ==
                 g->action &&
             (tok == NULL || node_token_allows(tok, g->repo, g->action));
        break;
    case NEED_NOTHING:
    default:
        ok = true;
        break;
    }
    if (!ok) {
        refuse(g, known,
               g->need == NEED_ADMIN ? "not an admin" : "not allowed");
        return;
    }
    g->api->gate_allowed++;
    node_access_attach(g->api, g->req, c);
    if (c->kind != NODE_CALLER_ANONYMOUS)
        gate_set_user(g->req, c->name);
    g->pass(g->api, g->req);
}

static void identified(struct gate *g, const struct node_auth_identity *id)
{
    struct node_caller *c = &g->caller;

    snprintf(c->name, sizeof(c->name), "%s", id->name);
    c->admin = id->admin;
    switch (id->kind) {
    case NODE_AUTH_ROBOT:
        c->kind = NODE_CALLER_ROBOT;
        break;
    case NODE_AUTH_HTPASSWD:
        c->kind = NODE_CALLER_HTPASSWD;
        break;
    case NODE_AUTH_USER:
    default:
        c->kind = NODE_CALLER_USER;
        break;
    }
    decide(g);
}

static void limit_note(struct gate *g, int status);

static void on_verified(void *data,
                        int status,
                        const struct node_auth_identity *id)
{
    struct gate *g = data;

    limit_note(g, status);
    if (!node_http_req_done(g->req)) {
        if (status == 0) {
            identified(g, id);
        } else {
            snprintf(g->caller.name, sizeof(g->caller.name), "?");
            refuse(g, false, "wrong credentials");
        }
    }
    gate_free(g);
}

/* The caller a token's subject names, as it is now: "" anonymous,
 * "robot$..." a robot account, a replicated user (with its admin flag),
 * else a user of this node's htpasswd file. */
static void caller_of_subject(struct gate *g, const char *sub)
{
    struct node_caller *c = &g->caller;
    const struct meta_user *u;

    snprintf(c->name, sizeof(c->name), "%s", sub);
    if (sub[0] == '\0') {
        c->kind = NODE_CALLER_ANONYMOUS;
    } else if (strncmp(sub, NODE_AUTH_ROBOT_PREFIX,
                       strlen(NODE_AUTH_ROBOT_PREFIX)) == 0) {
        c->kind = NODE_CALLER_ROBOT;
    } else if ((u = meta_user_get(g->api->meta, sub)) != NULL) {
        c->kind = NODE_CALLER_USER;
        c->admin = u->admin;
    } else {
        c->kind = NODE_CALLER_HTPASSWD;
    }
}

/* A Bearer value that is not the cluster secret: a token of
 * /_atoll/token, from any node (the keys are replicated state, and the
 * barrier passed before applied every key made before this request).
 * Returns 0 with the caller and g->claims set, or AT_E*. */
static int bearer_verify(struct gate *g, const char *value)
{
    int rv;

    if (g->api->token == NULL)
        return AT_EINVAL;
    g->claims = at_malloc(sizeof(*g->claims));
    rv = node_token_check(g->api->token, value, g->claims);
    if (rv != 0) {
        at_free(g->claims);
        g->claims = NULL;
        return rv;
    }
    caller_of_subject(g, g->claims->sub);
    return 0;
}

/* Tell the failed-login limits how a verification ended (a shutdown says
 * nothing). */
static void limit_note(struct gate *g, int status)
{
    struct node_auth_limit *lim = node_auth_limiter(g->api->auth);
    const char *peer = node_http_req_peer(g->req);

    if (status == 0)
        node_auth_limit_ok(lim, g->login, peer);
    else if (status == AT_EINVAL)
        node_auth_limit_fail(lim, g->login, peer);
}

/* see gate.h */
unsigned node_gate_token_grant(void *data,
                               const struct node_auth_identity *who,
                               const char *repo,
                               unsigned requested)
{
    struct node_api *api = data;
    struct node_caller c = { .kind = NODE_CALLER_ANONYMOUS };

    if (who != NULL) {
        snprintf(c.name, sizeof(c.name), "%s", who->name);
        c.admin = who->admin;
        c.kind = who->kind == NODE_AUTH_ROBOT      ? NODE_CALLER_ROBOT
                 : who->kind == NODE_AUTH_HTPASSWD ? NODE_CALLER_HTPASSWD
                                                   : NODE_CALLER_USER;
    }
    if (!node_access_on(api))
        return requested; /* access control off: the registry is open */
    if (repo == NULL)
        return node_access_pulls_any(api, &c) ? requested & NODE_JWT_ANY : 0;
    return node_access_actions(api, &c, repo) & requested;
}

/* Who is asking; then decide. Frees g, or hands it to the verifier (which
 * frees it). */
static void identify(struct gate *g)
{
    const char *h = node_http_req_header(g->req, "authorization");
    char user[NODE_AUTH_NAME_SIZE];
    char password[NODE_AUTH_PASSWORD_MAX + 1];
    struct node_auth_limit *lim;
    int rv;

    if (h == NULL) {
        decide(g); /* anonymous */
        gate_free(g);
        return;
    }
    if (strncasecmp(h, "Bearer ", 7) == 0) {
        if (node_peer_auth_ok(h, g->api->cfg->cluster_secret)) {
            g->caller.kind = NODE_CALLER_CLUSTER;
            g->caller.admin = true;
            snprintf(g->caller.name, sizeof(g->caller.name), "%s",
                     "the cluster secret");
            decide(g);
        } else if (bearer_verify(g, h) == 0) {
            decide(g);
        } else {
            refuse(g, false, "invalid bearer token");
        }
        gate_free(g);
        return;
    }
    if (node_auth_basic_parse(h, user, sizeof(user), password,
                              sizeof(password)) != 0) {
        refuse(g, false, "malformed credentials");
        gate_free(g);
        return;
    }
    lim = node_auth_limiter(g->api->auth);
    if (node_auth_limit_check(lim, user, node_http_req_peer(g->req)) != 0) {
        explicit_bzero(password, sizeof(password));
        LOG_INFO("%s %s from %s refused: too many failed logins",
                 node_http_req_method_str(g->req), node_http_req_path(g->req),
                 node_http_req_peer(g->req));
        node_http_resp_header(
            g->req, "Retry-After", "%" PRIu64,
            node_auth_limit_retry_after(lim, user, node_http_req_peer(g->req)));
        g->api->gate_429++;
        node_reply_error(g->req, 429, "TOOMANYREQUESTS",
                         "too many failed logins; retry later");
        gate_free(g);
        return;
    }
    snprintf(g->login, sizeof(g->login), "%s", user);
    gate_move(g, GATE_VERIFY);
    rv = node_auth_verify(g->api->auth, user, password, &g->id, on_verified, g);
    explicit_bzero(password, sizeof(password));
    if (rv == NODE_AUTH_PENDING)
        return;
    limit_note(g, rv);
    if (rv == 0)
        identified(g, &g->id);
    else
        refuse(g, false, "wrong credentials");
    gate_free(g);
}

static void on_barrier(void *data, int status)
{
    struct gate *g = data;

    if (node_http_req_done(g->req)) {
        gate_free(g);
        return;
    }
    /* No barrier (no leader: an election, or this node cut off from the
     * majority): reads decide with the accounts and policy applied here,
     * so that a site cut off keeps serving pulls of what it holds (a
     * change made meanwhile holds once the node hears from the leader);
     * writes and admin calls could not be served anyway. */
    if (status != 0 && g->api->meta != NULL && g->api->auth != NULL &&
        (g->need == NEED_CALLER ||
         (g->need == NEED_REPO && g->action == META_ACTION_PULL))) {
        LOG_DEBUG(
            "%s %s: no read barrier (%s); deciding with the local "
            "state",
            node_http_req_method_str(g->req), node_http_req_path(g->req),
            at_strerror(status));
        identify(g);
        return;
    }
    g->caller.fresh = status == 0;
    if (status != 0 || g->api->meta == NULL || g->api->auth == NULL) {
        g->api->gate_503++;
        node_reply_error(g->req, 503, "UNAVAILABLE",
                         "cannot check access consistently: %s",
                         at_strerror(status != 0 ? status : AT_ESHUTDOWN));
        gate_free(g);
        return;
    }
    identify(g);
}

/* see gate.h */
void node_gate_run(struct node_api *api,
                   struct node_http_req *req,
                   node_gate_pass_cb pass)
{
    struct gate *g;
    int rv;

    if (!node_access_on(api)) {
        pass(api, req);
        return;
    }
    g = at_calloc(1, sizeof(*g));
    g->api = api;
    g->req = req;
    g->pass = pass;
    g->state = GATE_BARRIER;
    node_http_req_ref(req);
    classify(g, node_http_req_path(req));
    if (g->need == NEED_NOTHING) {
        gate_free(g);
        pass(api, req);
        return;
    }
    /* every account and policy change answered before this request is
     * applied here before deciding (read_consistency local, or a single
     * voter with nothing pending: at once, without a loop turn) */
    if (node_api_read_now(api)) {
        g->caller.fresh = true;
        identify(g);
        return;
    }
    rv = node_api_read_barrier(api, on_barrier, g);
    if (rv != 0) {
        api->gate_503++;
        node_reply_error(req, 503, "UNAVAILABLE",
                         "cannot check access consistently: %s",
                         at_strerror(rv));
        gate_free(g);
    }
}
