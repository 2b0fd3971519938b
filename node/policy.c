/* The access policy endpoint (see policy.h): one request object per call.
 *
 * Happy path of a change: AUTH (the cluster secret at once, or Basic
 * credentials verified in the pool; an admin user only) -> BODY (the JSON
 * body, bounded; PUT only) -> PROPOSE (PolicySet through the log) -> DONE
 * (the answer with X-Atoll-Index and the audit line). A read goes AUTH ->
 * READ (the read barrier) -> DONE.
 *
 * Failure modes: no or wrong credentials 401, a non-admin 403, a malformed
 * policy 400 (the message names the rule), no leader or an unknown outcome
 * 503. A client gone mid-body frees the request; gone later, the steps
 * finish and the answer goes nowhere. */
#define AT_LOG_COMP "audit"
#include "common/compat.h"

#include <strings.h>

#include <jansson.h>

#include "node/admin_auth.h"
#include "node/auth/access.h"
#include "node/cluster/peer_api.h"
#include "node/policy.h"

enum pol_state {
    POL_AUTH,
    POL_BODY,
    POL_PROPOSE,
    POL_READ,
    POL_DONE,
};

static const char *const pol_state_name[] = { "auth", "body", "propose", "read",
                                              "done" };

#define TO(s) (1u << (s))
static const unsigned pol_allowed[] = {
    [POL_AUTH] = TO(POL_BODY) | TO(POL_PROPOSE) | TO(POL_READ) | TO(POL_DONE),
    [POL_BODY] = TO(POL_PROPOSE) | TO(POL_DONE),
    [POL_PROPOSE] = TO(POL_DONE),
    [POL_READ] = TO(POL_DONE),
    [POL_DONE] = 0,
};
#undef TO

static const char *const action_names[] = { "pull", "push", "delete",
                                            "overwrite" };

/* One call on /_atoll/policy. */
struct pol {
    struct node_api *api;      /* borrowed */
    struct node_http_req *req; /* one reference until freed */
    enum pol_state state;
    enum node_http_method method;
    char who[NODE_AUTH_NAME_SIZE + 16]; /* for the audit line */
    struct at_buf body;
    json_t *doc;                    /* owned: the rules' strings live here */
    struct meta_policy_rule *rules; /* owned array */
    const char **names;             /* owned array: users then groups */
    size_t nrules;
};

static void pol_move(struct pol *p, enum pol_state to)
{
    if ((pol_allowed[p->state] & (1u << to)) == 0) {
        LOG_ERROR("policy request: illegal move %s -> %s",
                  pol_state_name[p->state], pol_state_name[to]);
        AT_ASSERT(!"illegal policy request move");
    }
    p->state = to;
}

static void pol_done(struct pol *p)
{
    struct node_http_req *req = p->req;

    pol_move(p, POL_DONE);
    at_buf_release(&p->body);
    json_decref(p->doc);
    at_free(p->rules);
    at_free(p->names);
    at_free(p);
    node_http_req_unref(req);
}

static void pol_fail(struct pol *p, int status, const char *code, const char *m)
{
    node_reply_error(p->req, status, code, "%s", m);
    pol_done(p);
}

/* ---- the document ---- */

static void json_names(struct at_buf *b,
                       const char *prefix,
                       const char *const *s,
                       size_t n,
                       size_t *count)
{
    for (size_t i = 0; i < n; i++) {
        char full[META_ACCOUNT_NAME_MAX + 8];
        snprintf(full, sizeof(full), "%s%s", prefix, s[i]);
        at_buf_puts(b, (*count)++ > 0 ? "," : "");
        at_buf_json_str(b, full, strlen(full));
    }
}

static void rule_json(struct at_buf *b, const struct meta_policy_rule *r)
{
    size_t n = 0;

    at_buf_puts(b, "{\"repository\":");
    at_buf_json_str(b, r->repository, strlen(r->repository));
    at_buf_puts(b, ",\"subjects\":[");
    if (r->anonymous)
        json_names(b, "", (const char *const[]){ "anonymous" }, 1, &n);
    if (r->authenticated)
        json_names(b, "", (const char *const[]){ "authenticated" }, 1, &n);
    json_names(b, "user:", r->users, r->nusers, &n);
    json_names(b, "group:", r->groups, r->ngroups, &n);
    at_buf_puts(b, "],\"actions\":[");
    n = 0;
    for (size_t k = 0; k < AT_ARRAY_SIZE(action_names); k++) {
        if (r->actions & (1u << k)) {
            at_buf_puts(b, n++ > 0 ? ",\"" : "\"");
            at_buf_puts(b, action_names[k]);
            at_buf_puts(b, "\"");
        }
    }
    at_buf_puts(b, "]}");
}

static void reply_json(struct node_http_req *req, const struct at_buf *b)
{
    node_reply_begin(req, 200);
    node_http_resp_header(req, "Content-Type", "application/json");
    node_http_resp_header(req, "Cache-Control", "no-store");
    node_http_resp_send(req, b->data, b->len);
}

static void on_read(void *data, int status)
{
    struct pol *p = data;
    const struct meta_policy *pol;
    struct at_buf b;

    if (status != 0 || p->api->meta == NULL) {
        node_reply_error(p->req, 503, "UNAVAILABLE",
                         "cannot read consistently: %s", at_strerror(status));
        pol_done(p);
        return;
    }
    pol = meta_policy_get(p->api->meta);
    at_buf_init(&b, 0);
    at_buf_printf(&b, "{\"set\":%s,\"index\":%" PRIu64 ",\"rules\":[",
                  pol != NULL ? "true" : "false", pol != NULL ? pol->index : 0);
    for (size_t i = 0; pol != NULL && i < pol->nrules; i++) {
        if (i > 0)
            at_buf_puts(&b, ",");
        rule_json(&b, &pol->rules[i]);
    }
    at_buf_puts(&b, "]}\n");
    reply_json(p->req, &b);
    at_buf_release(&b);
    pol_done(p);
}

/* ---- a change ---- */

static void on_written(void *data, int status, int result, uint64_t index)
{
    struct pol *p = data;
    struct at_buf b;

    if (status != 0) {
        node_reply_write_failed(p->req, status, result);
        pol_done(p);
        return;
    }
    if (result != META_OK) {
        pol_fail(p, 400, "BAD_REQUEST", meta_result_str(result));
        return;
    }
    if (p->method == NODE_HTTP_DELETE)
        LOG_INFO("%s from %s removed the access policy at index %" PRIu64,
                 p->who, node_http_req_peer(p->req), index);
    else
        LOG_INFO(
            "%s from %s set the access policy (%zu rules) at index "
            "%" PRIu64,
            p->who, node_http_req_peer(p->req), p->nrules, index);
    at_buf_init(&b, 0);
    at_buf_printf(&b, "{\"rules\":%zu,\"index\":%" PRIu64 "}\n", p->nrules,
                  index);
    node_reply_write_index(p->req, status, index);
    reply_json(p->req, &b);
    at_buf_release(&b);
    pol_done(p);
}

static void propose(struct pol *p)
{
    struct meta_cmd c = { .request_id = node_http_req_header(
                              p->req, "x-atoll-request-id") };
    int rv;

    pol_move(p, POL_PROPOSE);
    c.kind = META_CMD_POLICY_SET;
    c.policy_set.rules = p->rules;
    c.policy_set.nrules = p->nrules;
    c.policy_set.reset = p->method == NODE_HTTP_DELETE;
    if (p->api->meta == NULL) {
        pol_fail(p, 503, "UNAVAILABLE", "node is stopping");
        return;
    }
    rv = meta_propose(p->api->meta, &c, on_written, p);
    if (rv == 0)
        return;
    if (rv == AT_EINVAL || rv == AT_ETOOBIG)
        node_reply_error(p->req, 400, "BAD_REQUEST", "%s",
                         meta_errmsg(p->api->meta));
    else
        node_reply_write_failed(p->req, rv, 0);
    pol_done(p);
}

/* One subject of a rule into r (names borrowed from the document). */
static bool take_subject(struct pol *p,
                         struct meta_policy_rule *r,
                         const char *s,
                         size_t *nnames)
{
    bool user = strncmp(s, "user:", 5) == 0;
    bool group = strncmp(s, "group:", 6) == 0;
    const char *name = user ? s + 5 : s + 6;

    if (strcmp(s, "anonymous") == 0)
        return (r->anonymous = true);
    if (strcmp(s, "authenticated") == 0)
        return (r->authenticated = true);
    if ((!user && !group) || !meta_user_name_ok(name))
        return false;
    if ((user ? r->nusers : r->ngroups) >= META_POLICY_SUBJECTS_MAX)
        return false;
    p->names[(*nnames)++] = name;
    if (user)
        r->nusers++;
    else
        r->ngroups++;
    return true;
}

/* Rule i of the document into p->rules[i]: NULL, or what is wrong. */
static const char *take_rule(struct pol *p, json_t *o, size_t *nnames)
{
    struct meta_policy_rule *r = &p->rules[p->nrules];
    const char *repo = json_string_value(json_object_get(o, "repository"));
    json_t *subjects = json_object_get(o, "subjects");
    json_t *acts = json_object_get(o, "actions");
    size_t first = *nnames, nu = 0;
    json_t *v;
    size_t i;

    if (repo == NULL || !meta_repo_glob_ok(repo))
        return "repository: want a glob of a-z0-9._/- and *";
    if (!json_is_array(subjects) || json_array_size(subjects) == 0 ||
        json_array_size(subjects) > 2 * META_POLICY_SUBJECTS_MAX + 2)
        return "subjects: want a non-empty list";
    if (!json_is_array(acts))
        return "actions: want a list (empty: none)";
    r->repository = repo;
    /* users first, then groups: two passes over the subjects */
    for (int pass = 0; pass < 2; pass++) {
        json_array_foreach(subjects, i, v)
        {
            const char *s = json_string_value(v);
            bool is_group = s != NULL && strncmp(s, "group:", 6) == 0;
            if (s == NULL)
                return "subjects: want strings";
            if ((pass == 0) == is_group)
                continue;
            if (!take_subject(p, r, s, nnames))
                return "subjects: each anonymous, authenticated, "
                       "user:NAME or group:NAME (at most 32 of each)";
        }
        if (pass == 0)
            nu = *nnames - first;
    }
    r->users = p->names + first;
    r->groups = p->names + first + nu;
    json_array_foreach(acts, i, v)
    {
        const char *s = json_string_value(v);
        size_t k = 0;
        while (s != NULL && k < AT_ARRAY_SIZE(action_names) &&
               strcmp(s, action_names[k]) != 0)
            k++;
        if (s == NULL || k == AT_ARRAY_SIZE(action_names))
            return "actions: each pull, push, delete or overwrite";
        r->actions |= 1u << k;
    }
    p->nrules++;
    return NULL;
}

static void body_run(struct pol *p)
{
    json_error_t jerr;
    json_t *rules, *o;
    size_t i, nnames = 0;
    char why[160];

    p->doc = json_loadb(p->body.data != NULL ? p->body.data : "", p->body.len,
                        JSON_REJECT_DUPLICATES, &jerr);
    rules = json_object_get(p->doc, "rules");
    if (!json_is_object(p->doc) || !json_is_array(rules) ||
        json_array_size(rules) > META_POLICY_RULES_MAX) {
        pol_fail(p, 400, "BAD_REQUEST",
                 "want a JSON object {\"rules\":[...]} of at most 1000 rules");
        return;
    }
    p->rules = at_calloc(json_array_size(rules) + 1, sizeof(*p->rules));
    p->names =
        at_calloc(json_array_size(rules) * 2 * META_POLICY_SUBJECTS_MAX + 1,
                  sizeof(*p->names));
    json_array_foreach(rules, i, o)
    {
        const char *bad =
            json_is_object(o) ? take_rule(p, o, &nnames) : "want an object";
        if (bad != NULL) {
            snprintf(why, sizeof(why), "rule %zu: %s", i + 1, bad);
            pol_fail(p, 400, "BAD_REQUEST", why);
            return;
        }
    }
    propose(p);
}

static int on_body(struct node_http_req *req, const char *d, size_t n)
{
    struct pol *p = node_http_req_data(req);

    if (p != NULL && at_buf_append(&p->body, d, n) != 0) {
        node_http_req_set_data(req, NULL);
        node_http_req_on_abort(req, NULL);
        pol_fail(p, 413, "BAD_REQUEST", "body over 1 MiB");
    }
    return 0;
}

static void on_end(struct node_http_req *req)
{
    struct pol *p = node_http_req_data(req);

    if (p == NULL)
        return;
    node_http_req_set_data(req, NULL);
    node_http_req_on_abort(req, NULL);
    body_run(p);
}

static void on_abort(struct node_http_req *req)
{
    struct pol *p = node_http_req_data(req);

    if (p == NULL)
        return;
    node_http_req_set_data(req, NULL);
    pol_done(p);
}

/* ---- who is asking ---- */

static void authorized(struct pol *p)
{
    int rv;

    if (p->method == NODE_HTTP_GET || p->method == NODE_HTTP_HEAD) {
        pol_move(p, POL_READ);
        rv = node_api_read_barrier(p->api, on_read, p);
        if (rv != 0) {
            node_reply_error(p->req, 503, "UNAVAILABLE",
                             "cannot read consistently: %s", at_strerror(rv));
            pol_done(p);
        }
        return;
    }
    if (p->method == NODE_HTTP_DELETE) {
        propose(p);
        return;
    }
    if (!node_http_req_has_body(p->req) ||
        (node_http_req_has_length(p->req) &&
         node_http_req_content_length(p->req) > NODE_POLICY_BODY_MAX)) {
        pol_fail(p, 400, "BAD_REQUEST", "want a JSON body of at most 1 MiB");
        return;
    }
    pol_move(p, POL_BODY);
    at_buf_init(&p->body, NODE_POLICY_BODY_MAX);
    node_http_req_set_data(p->req, p);
    node_http_req_on_abort(p->req, on_abort);
    node_http_req_read_body(p->req, on_body, on_end);
}

/* The admin check's answer: an admin goes further. */
static void on_admin(void *data, int status, const struct node_admin_who *w)
{
    struct pol *p = data;

    if (status != 0) {
        pol_done(p); /* answered, or the client is gone */
        return;
    }
    snprintf(p->who, sizeof(p->who), "%s", w->text);
    authorized(p);
}

/* see policy.h */
void node_policy_handle(struct node_api *api, struct node_http_req *req)
{
    enum node_http_method m = node_http_req_method(req);
    struct pol *p;

    if (m != NODE_HTTP_GET && m != NODE_HTTP_HEAD && m != NODE_HTTP_PUT &&
        m != NODE_HTTP_DELETE) {
        node_reply_error(req, 405, "UNSUPPORTED", "GET, PUT or DELETE");
        return;
    }
    if (api->auth == NULL || api->meta == NULL) {
        node_reply_error(req, 503, "UNAVAILABLE", "node is starting");
        return;
    }
    p = at_calloc(1, sizeof(*p));
    p->api = api;
    p->req = req;
    p->state = POL_AUTH;
    p->method = m;
    node_http_req_ref(req);
    node_admin_auth(api, req, "manage the policy", on_admin, p);
}
