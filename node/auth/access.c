/* Access decisions and the callers of requests in flight (see access.h).
 *
 * The callers live in a table keyed by the request's address, each entry
 * holding a reference on its request so that the address cannot be reused
 * while the entry exists. Entries of finished requests are dropped a few
 * at a time as new ones come (and all at node stop): the table holds about
 * the requests in flight. */
#define AT_LOG_COMP "auth"
#include "common/compat.h"

#include "node/auth/access.h"
#include "node/reply/reply.h"

#define SWEEP_STEP 4 /* entries looked at per new entry */

struct access_rec {
    struct at_list link;       /* in the table's list, oldest first */
    struct node_http_req *req; /* one reference */
    struct node_caller caller;
};

struct node_access {
    struct at_map recs; /* request address -> struct access_rec (owned) */
    struct at_list list;
};

/* see access.h */
bool node_access_on(struct node_api *api)
{
    const char *mode = api->cfg != NULL ? api->cfg->auth : NULL;
    struct node_auth_stats st;

    if (mode == NULL || strcmp(mode, "off") == 0)
        return false;
    if (strcmp(mode, "on") == 0)
        return true;
    if (api->meta != NULL && meta_access_defined(api->meta))
        return true;
    if (api->auth == NULL)
        return false;
    node_auth_stats_get(api->auth, &st);
    return st.htpasswd > 0;
}

static unsigned robot_actions(struct node_api *api,
                              const char *name,
                              const char *repo)
{
    size_t plen = strlen(NODE_AUTH_ROBOT_PREFIX);
    const struct meta_robot *r;
    unsigned actions = 0;

    if (strncmp(name, NODE_AUTH_ROBOT_PREFIX, plen) != 0)
        return 0;
    r = meta_robot_get(api->meta, name + plen);
    /* past its expiry: nothing, also for a token issued before it */
    if (r != NULL && r->expires_ms != 0 && at_wall_ms() >= r->expires_ms)
        return 0;
    for (size_t i = 0; r != NULL && i < r->nperms; i++) {
        if (meta_repo_glob_match(r->perms[i].repository, repo))
            actions |= r->perms[i].actions;
    }
    return actions;
}

/* see access.h */
unsigned node_access_actions(struct node_api *api,
                             const struct node_caller *c,
                             const char *repo)
{
    const struct meta_policy *p;
    struct meta_caller mc = { 0 };
    const struct meta_user *u;

    if (c->admin || c->kind == NODE_CALLER_CLUSTER)
        return META_ACTIONS_ALL;
    if (api->meta == NULL)
        return 0;
    if (c->kind == NODE_CALLER_ROBOT)
        return robot_actions(api, c->name, repo);
    u = c->kind == NODE_CALLER_USER ? meta_user_get(api->meta, c->name) : NULL;
    if (c->kind == NODE_CALLER_USER && u == NULL)
        return 0; /* removed since it was verified */
    p = meta_policy_get(api->meta);
    if (p == NULL)
        return c->kind == NODE_CALLER_ANONYMOUS ? 0 : META_ACTIONS_ALL;
    if (c->kind != NODE_CALLER_ANONYMOUS) {
        mc.user = c->name;
        if (u != NULL) {
            mc.groups = u->groups;
            mc.ngroups = u->ngroups;
        }
    }
    return meta_policy_decide(p->rules, p->nrules, &mc, repo);
}

/* see access.h */
bool node_access_pulls_any(struct node_api *api, const struct node_caller *c)
{
    const struct meta_policy *p;

    if (c->kind != NODE_CALLER_ANONYMOUS)
        return true;
    p = api->meta != NULL ? meta_policy_get(api->meta) : NULL;
    for (size_t i = 0; p != NULL && i < p->nrules; i++) {
        if (p->rules[i].anonymous &&
            (p->rules[i].actions & META_ACTION_PULL) != 0)
            return true;
    }
    return false;
}

/* ---- callers of requests ---- */

static void rec_drop(struct node_access *t, struct access_rec *r)
{
    at_map_del(&t->recs, &r->req, sizeof(r->req));
    at_list_remove(&r->link);
    node_http_req_unref(r->req);
    at_free(r);
}

/* Drop up to SWEEP_STEP finished entries, oldest first; live ones go to
 * the back. */
static void sweep(struct node_access *t)
{
    for (int i = 0; i < SWEEP_STEP; i++) {
        struct at_list *e = at_list_pop_front(&t->list);
        if (e == NULL)
            return;
        struct access_rec *r = AT_LIST_ENTRY(e, struct access_rec, link);
        at_list_init(&r->link);
        if (node_http_req_done(r->req))
            rec_drop(t, r);
        else
            at_list_push_back(&t->list, &r->link);
    }
}

/* see access.h */
void node_access_attach(struct node_api *api,
                        struct node_http_req *req,
                        const struct node_caller *c)
{
    struct node_access *t = api->access;
    struct access_rec *r;

    if (t == NULL) {
        t = api->access = at_calloc(1, sizeof(*t));
        at_map_init(&t->recs);
        at_list_init(&t->list);
    }
    sweep(t);
    r = at_map_get(&t->recs, &req, sizeof(req));
    if (r == NULL) {
        r = at_calloc(1, sizeof(*r));
        r->req = req;
        node_http_req_ref(req);
        at_map_put(&t->recs, &req, sizeof(req), r);
        at_list_push_back(&t->list, &r->link);
    }
    r->caller = *c;
}

/* see access.h */
const struct node_caller *node_access_caller(const struct node_http_req *req)
{
    const struct node_reply_ctx *ctx = node_http_req_context(req);
    const struct node_access *t;
    const struct access_rec *r;

    if (ctx == NULL || ctx->relayed || ctx->api == NULL)
        return NULL;
    t = ctx->api->access;
    r = t != NULL ? at_map_get(&t->recs, &req, sizeof(req)) : NULL;
    return r != NULL ? &r->caller : NULL;
}

/* see access.h */
bool node_access_may(const struct node_http_req *req,
                     const char *repo,
                     unsigned action)
{
    const struct node_caller *c = node_access_caller(req);
    const struct node_reply_ctx *ctx = node_http_req_context(req);

    if (c == NULL)
        return true;
    return (node_access_actions(ctx->api, c, repo) & action) == action;
}

/* see access.h */
bool node_access_admin(const struct node_http_req *req)
{
    const struct node_caller *c = node_access_caller(req);

    return c != NULL && c->admin;
}

/* see access.h */
bool node_access_fresh(const struct node_http_req *req)
{
    const struct node_caller *c = node_access_caller(req);

    return c != NULL && c->fresh;
}

/* see access.h */
void node_access_challenge(struct node_http_req *req)
{
    node_http_resp_header(req, "WWW-Authenticate", "Basic realm=\"atoll\"");
}

/* see access.h */
void node_access_close(struct node_api *api)
{
    struct node_access *t = api->access;
    struct at_list *e;

    if (t == NULL)
        return;
    while ((e = at_list_pop_front(&t->list)) != NULL) {
        struct access_rec *r = AT_LIST_ENTRY(e, struct access_rec, link);
        at_list_init(&r->link);
        rec_drop(t, r);
    }
    at_map_release(&t->recs);
    at_free(t);
    api->access = NULL;
}
