/* The API listener's gate (see gate.h): one object per request it has to
 * wait for.
 *
 * Happy path: CLASSIFY (what the path and method need; open endpoints and
 * the ones that authenticate themselves go through at once) -> BARRIER
 * (the read barrier: every account and policy change answered before this
 * request started is applied here before deciding, so a change made on
 * one node holds on every node once it has answered) -> VERIFY (Basic
 * credentials through the verifier: its cache, else bcrypt in the pool)
 * -> DONE (decided: the handler runs, or 401/403 answered here).
 *
 * Failure modes: no barrier (no leader, timeout) 503; credentials that do
 * not verify 401; a client gone while waiting: nothing is answered. */
#define AT_LOG_COMP "auth"
#include "common/compat.h"

#include <strings.h>

#include "node/auth/access.h"
#include "node/cluster/peer_api.h"
#include "node/gate.h"
#include "node/oci/route.h"

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
    explicit_bzero(g, sizeof(*g));
    at_free(g);
    node_http_req_unref(req);
}

/* The access log's user of req: the name the caller verified as. The one
 * place that tells the HTTP layer who is asking. */
static void gate_set_user(struct node_http_req *req, const char *name)
{
    AT_UNUSED(req);
    AT_UNUSED(name);
}

/* ---- classify ---- */

static bool is_get(enum node_http_method m)
{
    return m == NODE_HTTP_GET || m == NODE_HTTP_HEAD;
}

/* The need of a node endpoint (admin.c's paths). */
static enum need admin_need(const char *path, enum node_http_method m)
{
    if (strcmp(path, "/livez") == 0 || strcmp(path, "/readyz") == 0 ||
        strcmp(path, "/metrics") == 0)
        return NEED_NOTHING;
    /* read-only cluster views: names, addresses and indexes, no secret;
     * `atoll status` and `atoll members` read them without one */
    if (is_get(m) && (strcmp(path, "/_atoll/members") == 0 ||
                      strcmp(path, "/_atoll/status") == 0))
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
        g->need = admin_need(path, m);
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

static void refuse(struct gate *g, bool known, const char *why)
{
    struct node_http_req *req = g->req;

    LOG_INFO("%s %s from %s refused (%s): %s", node_http_req_method_str(req),
             node_http_req_path(req), node_http_req_peer(req),
             known ? g->caller.name : "anonymous", why);
    if (!known) {
        node_access_challenge(req);
        node_reply_error(req, 401, "UNAUTHORIZED", "authentication required");
    } else {
        node_reply_error(req, 403, "DENIED",
                         "requested access to the "
                         "resource is denied");
    }
}

/* The caller is known: let the request in, or answer. */
static void decide(struct gate *g)
{
    const struct node_caller *c = &g->caller;
    bool known = c->kind != NODE_CALLER_ANONYMOUS;
    bool ok;

    switch (g->need) {
    case NEED_CALLER:
        ok = known;
        break;
    case NEED_ADMIN:
        ok = c->admin;
        break;
    case NEED_CATALOG:
        ok = node_access_pulls_any(g->api, c);
        break;
    case NEED_REPO:
        ok = (node_access_actions(g->api, c, g->repo) & g->action) == g->action;
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
    node_access_attach(g->api, g->req, c);
    if (known)
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

static void on_verified(void *data,
                        int status,
                        const struct node_auth_identity *id)
{
    struct gate *g = data;

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

/* A Bearer value that is not the cluster secret: a token. Tokens are
 * issued by /_atoll/token; until their verifier is wired here, none is
 * valid. Returns 0 with *id filled, or AT_EINVAL. */
static int bearer_verify(struct gate *g,
                         const char *token,
                         struct node_auth_identity *id)
{
    AT_UNUSED(g);
    AT_UNUSED(token);
    AT_UNUSED(id);
    return AT_EINVAL; /* HOOK: token verification */
}

/* Who is asking; then decide. Frees g, or hands it to the verifier (which
 * frees it). */
static void identify(struct gate *g)
{
    const char *h = node_http_req_header(g->req, "authorization");
    char user[NODE_AUTH_NAME_SIZE];
    char password[NODE_AUTH_PASSWORD_MAX + 1];
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
        } else if (bearer_verify(g, h + 7, &g->id) == 0) {
            identified(g, &g->id);
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
    gate_move(g, GATE_VERIFY);
    rv = node_auth_verify(g->api->auth, user, password, &g->id, on_verified, g);
    explicit_bzero(password, sizeof(password));
    if (rv == NODE_AUTH_PENDING)
        return;
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
    if (status != 0 || g->api->meta == NULL || g->api->auth == NULL) {
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
     * applied here before deciding (read_consistency local: at once) */
    rv = node_api_read_barrier(api, on_barrier, g);
    if (rv != 0) {
        node_reply_error(req, 503, "UNAVAILABLE",
                         "cannot check access consistently: %s",
                         at_strerror(rv));
        gate_free(g);
    }
}
