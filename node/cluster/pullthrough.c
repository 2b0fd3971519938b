/* Pull-through caches, the cluster's side: see pullthrough.h.
 *
 * Happy path: node_pullthrough_manifest finds the rule of the name, and
 * whether there is anything to ask (a tag's last check is in `checked`).
 * One ask per repo:ref runs at a time (`asks`, the later callers wait on
 * it): on the leader it is the importer, elsewhere a GET of the leader's
 * PROTO_PEER_PULLTHROUGH, whose handler is the same ask on the leader. The
 * end of an ask records the check and calls every waiter.
 *
 * Blob GETs from the upstream carry the Authorization line that the
 * importer learnt for that upstream repository (`auths`, with the URL that
 * answered); node_pullthrough_prepare has the importer learn one when
 * there is none, or when a bearer token is older than AUTH_BEARER_MS. */
#include "common/compat.h"

#define AT_LOG_COMP "pullthrough"

#include <ctype.h>
#include <jansson.h>

#include "common/common.h"
#include "node/cluster/peer.h"
#include "node/cluster/pullthrough.h"
#include "node/reply/reply.h"
#include "proto/peer.h"

#define AUTH_BEARER_MS 240000 /* registries' tokens last 5 minutes or more */
#define CHECKED_MAX    100000 /* tag checks remembered (then forgotten) */
#define AUTHS_MAX      10000  /* upstream repositories' lines, likewise */

struct pt_auth {
    char *line; /* "Authorization: ..." or NULL: none needed */
    char *base; /* the upstream URL that answered */
    uint64_t at_ms;
};

struct pt_waiter {
    struct at_list link;
    node_pt_cb cb;
    void *data;
};

struct pt_ask {
    struct node_pullthrough *pt; /* borrowed */
    char *key;                   /* owned: "<repo>@<ref>" (or "#<repo>") */
    char *repo, *ref;            /* owned; ref NULL: an auth ask */
    bool is_tag;
    struct at_list waiters; /* struct pt_waiter */
};

struct node_pullthrough {
    struct node_api *api;       /* borrowed */
    struct node_pt_rule *rules; /* strings owned */
    size_t nrules;
    bool closed; /* node_pullthrough_close ran: freed with the last ask */
    node_pt_import_fn import;
    void (*refresh)(struct node_api *api);
    struct at_map asks;    /* key -> struct pt_ask */
    struct at_map checked; /* "<repo>:<tag>" -> (uintptr_t) at_now_ms() */
    struct at_map auths;   /* "<rule>\n<upstream repo>" -> struct pt_auth */
    struct node_pt_counts counts;
};

static void rules_free(struct node_pullthrough *pt)
{
    for (size_t i = 0; i < pt->nrules; i++) {
        at_free((char *)pt->rules[i].name);
        at_free((char *)pt->rules[i].prefix);
        at_free((char *)pt->rules[i].ca_file);
    }
    at_free(pt->rules);
    pt->rules = NULL;
    pt->nrules = 0;
}

static void auth_free(struct pt_auth *a)
{
    if (a->line != NULL)
        explicit_bzero(a->line, strlen(a->line));
    at_free(a->line);
    at_free(a->base);
    at_free(a);
}

static void auths_clear(struct node_pullthrough *pt)
{
    const char *k;
    void *v;

    for (size_t i = 0; at_map_next(&pt->auths, &i, &k, &v);)
        auth_free(v);
    at_map_release(&pt->auths);
    at_map_init(&pt->auths);
}

static void checked_clear(struct node_pullthrough *pt)
{
    at_map_release(&pt->checked);
    at_map_init(&pt->checked);
}

/* see pullthrough.h */
void node_pullthrough_set(struct node_api *api,
                          const struct node_pt_rule *v,
                          size_t n,
                          node_pt_import_fn import,
                          void (*refresh)(struct node_api *api))
{
    struct node_pullthrough *pt = api->pullthrough;

    if (pt == NULL) {
        pt = at_calloc(1, sizeof(*pt));
        pt->api = api;
        at_map_init(&pt->asks);
        at_map_init(&pt->checked);
        at_map_init(&pt->auths);
        api->pullthrough = pt;
    }
    rules_free(pt);
    /* what was learnt of the old rules' upstreams may not hold */
    auths_clear(pt);
    checked_clear(pt);
    pt->rules = n > 0 ? at_calloc(n, sizeof(*pt->rules)) : NULL;
    for (size_t i = 0; i < n; i++) {
        pt->rules[i] = v[i];
        pt->rules[i].name = at_strdup(v[i].name);
        pt->rules[i].prefix = at_strdup(v[i].prefix);
        pt->rules[i].ca_file =
            v[i].ca_file != NULL ? at_strdup(v[i].ca_file) : NULL;
    }
    pt->nrules = n;
    pt->import = import;
    pt->refresh = refresh;
}

static struct node_pullthrough *pt_of(struct node_api *api)
{
    struct node_pullthrough *pt = api->pullthrough;

    if (pt != NULL && pt->refresh != NULL && !api->stopping)
        pt->refresh(api); /* may replace the rules */
    return api->pullthrough;
}

static const struct node_pt_rule *rule_of(struct node_pullthrough *pt,
                                          const char *repo)
{
    for (size_t i = 0; pt != NULL && i < pt->nrules; i++) {
        size_t n = strlen(pt->rules[i].prefix);
        if (strncmp(repo, pt->rules[i].prefix, n) == 0 && repo[n] != '\0')
            return &pt->rules[i];
    }
    return NULL;
}

/* see pullthrough.h */
const struct node_pt_rule *node_pullthrough_rule(struct node_api *api,
                                                 const char *repo)
{
    return rule_of(pt_of(api), repo);
}

static bool leading(struct node_api *api)
{
    return api->meta != NULL && meta_is_leader(api->meta);
}

/* ---- tag checks ---- */

static char *checked_key(const char *repo, const char *tag)
{
    return at_asprintf("%s:%s", repo, tag);
}

static bool checked_fresh(struct node_pullthrough *pt,
                          const struct node_pt_rule *r,
                          const char *repo,
                          const char *tag)
{
    char *k = checked_key(repo, tag);
    uintptr_t at = (uintptr_t)at_map_gets(&pt->checked, k);

    at_free(k);
    return at != 0 && at_now_ms() - at < r->ttl_ms;
}

static void checked_note(struct node_pullthrough *pt,
                         const char *repo,
                         const char *tag)
{
    char *k = checked_key(repo, tag);

    if (pt->checked.len >= CHECKED_MAX)
        checked_clear(pt); /* a tag forgotten is only asked again */
    at_map_put(&pt->checked, k, strlen(k), (void *)(uintptr_t)at_now_ms());
    at_free(k);
}

/* ---- asks ---- */

static void ask_end(void *data, int status, const char *errmsg)
{
    struct pt_ask *a = data;
    struct node_pullthrough *pt = a->pt;
    struct at_list *l;

    if (a->ref != NULL && status == 0)
        pt->counts.imports++;
    else if (a->ref != NULL)
        pt->counts.failures++;
    if (a->ref != NULL) {
        if (status != 0 && status != AT_ESHUTDOWN)
            LOG_WARN("%s:%s from upstream: %s", a->repo, a->ref,
                     errmsg != NULL && errmsg[0] != '\0' ? errmsg
                                                         : at_strerror(status));
        /* a failure counts as a check too: an outage is met once per ttl,
         * not by every pull */
        if (a->is_tag && status != AT_ESHUTDOWN)
            checked_note(pt, a->repo, a->ref);
    }
    at_map_del(&pt->asks, a->key, strlen(a->key));
    while ((l = at_list_pop_front(&a->waiters)) != NULL) {
        struct pt_waiter *w = AT_LIST_ENTRY(l, struct pt_waiter, link);
        w->cb(w->data, status, errmsg != NULL ? errmsg : "");
        at_free(w);
    }
    at_free(a->key);
    at_free(a->repo);
    at_free(a->ref);
    at_free(a);
    if (pt->closed && pt->asks.len == 0) {
        at_map_release(&pt->asks);
        at_free(pt);
    }
}

/* The leader's answer to a follower's ask. */
static void ask_on_leader(void *data,
                          int status,
                          int http,
                          const char *body,
                          size_t len)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    int rv = status;

    if (status == 0 && http != 200) {
        json_t *doc = json_loadb(body, len, 0, NULL);
        const char *msg = json_string_value(json_object_get(
            json_array_get(json_object_get(doc, "errors"), 0), "message"));
        at_errmsg_printf(errmsg, "leader: %s",
                         msg != NULL ? msg : "refused the ask");
        json_decref(doc);
        rv = http == 404 ? AT_ENOTFOUND : AT_EIO;
    } else if (status != 0) {
        at_errmsg_printf(errmsg, "leader: %s", at_strerror(status));
    }
    ask_end(data, rv, errmsg);
}

/* Start ask a: the importer here, or the leader's. 0 or AT_E*. */
static int ask_start(struct node_pullthrough *pt,
                     struct pt_ask *a,
                     const struct node_pt_rule *r,
                     const struct at_digest *local,
                     const struct at_digest *blob)
{
    struct node_api *api = pt->api;
    struct meta_node leader;
    char *path;
    int rv;

    if (leading(api)) {
        if (pt->import == NULL)
            return AT_ESHUTDOWN;
        return pt->import(api, r->name, a->repo, a->ref, local, blob, ask_end,
                          a);
    }
    if (a->ref == NULL)
        return AT_ENOTLEADER; /* only the leader GETs from the upstream */
    if (api->peer == NULL || api->meta == NULL ||
        !meta_leader(api->meta, &leader) || leader.peer_address == NULL ||
        leader.peer_address[0] == '\0')
        return AT_ENOTLEADER;
    path = at_asprintf("%s%s/%s", proto_peer_path(PROTO_PEER_PULLTHROUGH),
                       a->ref, a->repo);
    rv = node_peer_request(api->peer, "GET", leader.peer_address, path, NULL,
                           NULL, 0, NODE_PT_ASK_MS, ask_on_leader, a);
    at_free(path);
    return rv;
}

/* Join or start the ask of key. Returns 0 (cb will run) or AT_E*. */
static int ask(struct node_pullthrough *pt,
               const struct node_pt_rule *r,
               const char *repo,
               const char *ref,
               bool is_tag,
               const struct at_digest *local,
               const struct at_digest *blob,
               node_pt_cb cb,
               void *data)
{
    char *key = ref != NULL ? at_asprintf("%s@%s", repo, ref)
                            : at_asprintf("#%s", repo);
    struct pt_ask *a = at_map_gets(&pt->asks, key);
    struct pt_waiter *w;
    int rv;

    if (ref != NULL)
        pt->counts.asks++;
    if (a == NULL) {
        a = at_calloc(1, sizeof(*a));
        a->pt = pt;
        a->key = key;
        a->repo = at_strdup(repo);
        a->ref = ref != NULL ? at_strdup(ref) : NULL;
        a->is_tag = is_tag;
        at_list_init(&a->waiters);
        rv = ask_start(pt, a, r, local, blob);
        if (rv != 0) {
            at_free(a->key);
            at_free(a->repo);
            at_free(a->ref);
            at_free(a);
            return rv;
        }
        at_map_put(&pt->asks, key, strlen(key), a);
    } else {
        at_free(key);
    }
    w = at_calloc(1, sizeof(*w));
    w->cb = cb;
    w->data = data;
    at_list_push_back(&a->waiters, &w->link);
    return 0;
}

/* A failure to start, reported on the loop like any outcome. */
struct pt_late {
    uv_timer_t timer;
    node_pt_cb cb;
    void *data;
    int status;
};

static void late_closed(uv_handle_t *h)
{
    at_free(h->data);
}

static void late_fire(uv_timer_t *t)
{
    struct pt_late *l = t->data;

    l->cb(l->data, l->status, at_strerror(l->status));
    uv_close((uv_handle_t *)t, late_closed);
}

static void fail_later(struct node_api *api, node_pt_cb cb, void *data, int rv)
{
    struct pt_late *l = at_calloc(1, sizeof(*l));

    l->cb = cb;
    l->data = data;
    l->status = rv;
    uv_timer_init(api->loop, &l->timer);
    l->timer.data = l;
    uv_timer_start(&l->timer, late_fire, 0, 0);
}

/* see pullthrough.h */
bool node_pullthrough_manifest(struct node_api *api,
                               const char *repo,
                               const char *ref,
                               bool is_tag,
                               const struct at_digest *local,
                               node_pt_cb cb,
                               void *data)
{
    struct node_pullthrough *pt = pt_of(api);
    const struct node_pt_rule *r = rule_of(pt, repo);
    int rv;

    if (r == NULL || api->stopping)
        return false;
    if (local != NULL && (!is_tag || checked_fresh(pt, r, repo, ref))) {
        pt->counts.fresh_hits++;
        return false;
    }
    rv = ask(pt, r, repo, ref, is_tag, local, NULL, cb, data);
    if (rv != 0)
        fail_later(api, cb, data, rv);
    return true;
}

/* ---- blobs ---- */

/* see pullthrough.h */
bool node_pullthrough_source(struct node_api *api,
                             const char *repo,
                             bool *upstream,
                             char **name,
                             char **addr)
{
    struct node_pullthrough *pt = pt_of(api);
    struct meta_node leader;

    *upstream = false;
    *name = *addr = NULL;
    if (rule_of(pt, repo) == NULL || api->meta == NULL)
        return false;
    if (leading(api)) {
        *upstream = true;
        return true;
    }
    if (!meta_leader(api->meta, &leader) || leader.peer_address == NULL ||
        leader.peer_address[0] == '\0' || leader.name == NULL)
        return false;
    *name = at_strdup(leader.name);
    *addr = at_strdup(leader.peer_address);
    return true;
}

/* see pullthrough.h */
char *node_pullthrough_blob_path(const char *dstr, const char *repo)
{
    return at_asprintf("%s%s/%s", proto_peer_path(PROTO_PEER_BLOB), dstr, repo);
}

/* see pullthrough.h */
bool node_pullthrough_leads(struct node_api *api,
                            const char *repo,
                            const struct at_digest *d,
                            uint64_t *size)
{
    struct node_pullthrough *pt = pt_of(api);

    return rule_of(pt, repo) != NULL && leading(api) &&
           meta_blob_linked(api->meta, repo, d, size);
}

static char *auth_key(const struct node_pt_rule *r, const char *repo)
{
    return at_asprintf("%s\n%s", r->name, repo + strlen(r->prefix));
}

static struct pt_auth *auth_of(struct node_pullthrough *pt,
                               const struct node_pt_rule *r,
                               const char *repo)
{
    char *k = auth_key(r, repo);
    struct pt_auth *a = at_map_gets(&pt->auths, k);

    at_free(k);
    return a;
}

/* see pullthrough.h */
int node_pullthrough_prepare(struct node_api *api,
                             const char *repo,
                             const struct at_digest *d,
                             node_pt_cb cb,
                             void *data)
{
    struct node_pullthrough *pt = pt_of(api);
    const struct node_pt_rule *r = rule_of(pt, repo);
    struct pt_auth *a;
    int rv;

    if (r == NULL)
        return AT_ENOTFOUND;
    a = auth_of(pt, r, repo);
    if (a != NULL &&
        (a->line == NULL || strncmp(a->line, "Authorization: Basic", 20) == 0 ||
         at_now_ms() - a->at_ms < AUTH_BEARER_MS))
        return 0;
    rv = ask(pt, r, repo, NULL, false, NULL, d, cb, data);
    return rv == 0 ? 1 : rv;
}

/* see pullthrough.h */
int node_pullthrough_stream(struct node_api *api,
                            const char *repo,
                            const char *dstr,
                            uint64_t timeout_ms,
                            node_peer_data_cb on_data,
                            node_peer_cb done,
                            void *data,
                            struct node_peer_req **out)
{
    struct node_pullthrough *pt = pt_of(api);
    const struct node_pt_rule *r = rule_of(pt, repo);
    struct pt_auth *a = r != NULL ? auth_of(pt, r, repo) : NULL;
    struct node_peer_url u;
    char *url;
    int rv;

    if (a == NULL || api->peer == NULL)
        return AT_ENOTFOUND;
    url = at_asprintf("%s/v2/%s/blobs/%s", a->base, repo + strlen(r->prefix),
                      dstr);
    u = (struct node_peer_url){
        .url = url,
        .auth = a->line,
        .ca_file = r->ca_file,
        .tls_verify = r->tls_verify,
    };
    rv = node_peer_stream_url(api->peer, &u, timeout_ms, on_data, done, data,
                              out);
    at_free(url);
    return rv;
}

/* see pullthrough.h */
void node_pullthrough_answered(struct node_api *api, const char *repo, int http)
{
    struct node_pullthrough *pt = api->pullthrough;
    const struct node_pt_rule *r = rule_of(pt, repo);
    char *k;

    if (r == NULL || (http != 401 && http != 403))
        return;
    k = auth_key(r, repo);
    struct pt_auth *a = at_map_del(&pt->auths, k, strlen(k));
    if (a != NULL)
        auth_free(a);
    at_free(k);
}

/* see pullthrough.h */
void node_pullthrough_set_auth(struct node_api *api,
                               const char *repo,
                               const char *base,
                               const char *auth)
{
    struct node_pullthrough *pt = api->pullthrough;
    const struct node_pt_rule *r = rule_of(pt, repo);
    struct pt_auth *a, *old;
    char *k;

    if (r == NULL || base == NULL)
        return;
    a = at_calloc(1, sizeof(*a));
    a->line = auth != NULL ? at_strdup(auth) : NULL;
    a->base = at_strdup(base);
    a->at_ms = at_now_ms();
    if (pt->auths.len >= AUTHS_MAX)
        auths_clear(pt); /* a line forgotten is only learnt again */
    k = auth_key(r, repo);
    old = at_map_put(&pt->auths, k, strlen(k), a);
    if (old != NULL)
        auth_free(old);
    at_free(k);
}

/* ---- the leader's endpoint ---- */

static void handle_done(void *data, int status, const char *errmsg)
{
    struct node_http_req *req = data;

    if (!node_http_req_done(req)) {
        if (status == 0) {
            node_reply_begin(req, 200);
            node_http_resp_header(req, "Content-Type", "application/json");
            node_http_resp_send(req, "{}", 2);
        } else if (status == AT_ENOTFOUND) {
            node_reply_error(req, 404, "MANIFEST_UNKNOWN", "%s", errmsg);
        } else {
            node_reply_error(req, 503, "UNAVAILABLE", "%s", errmsg);
        }
    }
    node_http_req_unref(req);
}

/* A tag as the distribution spec has it: [A-Za-z0-9_][A-Za-z0-9._-]{0,127}. */
static bool tag_ok(const char *t)
{
    size_t n = strlen(t);

    if (n == 0 || n > 128 || !(isalnum((unsigned char)t[0]) || t[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)t[i]) || t[i] == '_' || t[i] == '.' ||
              t[i] == '-'))
            return false;
    return true;
}

/* see pullthrough.h */
void node_pullthrough_handle(struct node_api *api,
                             struct node_http_req *req,
                             const char *rest)
{
    const char *slash = strchr(rest, '/');
    char ref[256];
    const char *repo;
    struct at_digest d;
    bool is_tag, have;

    if (slash == NULL || slash == rest ||
        (size_t)(slash - rest) >= sizeof(ref) || slash[1] == '\0' ||
        strlen(slash + 1) > 255) {
        node_reply_error(req, 400, "NAME_INVALID", "want <ref>/<repository>");
        return;
    }
    snprintf(ref, sizeof(ref), "%.*s", (int)(slash - rest), rest);
    repo = slash + 1;
    if (!leading(api)) {
        node_reply_error(req, 503, "UNAVAILABLE", "not the leader");
        return;
    }
    is_tag = strchr(ref, ':') == NULL;
    if (is_tag ? !tag_ok(ref) : at_digest_parse(ref, strlen(ref), &d) != 0) {
        node_reply_error(req, 400, is_tag ? "TAG_INVALID" : "DIGEST_INVALID",
                         "invalid reference");
        return;
    }
    if (is_tag)
        have = meta_tag_resolve(api->meta, repo, ref, &d) == 0;
    else
        have = meta_manifest_find(api->meta, repo, &d) != NULL;
    node_http_req_ref(req);
    if (!node_pullthrough_manifest(api, repo, ref, is_tag, have ? &d : NULL,
                                   handle_done, req))
        handle_done(req,
                    rule_of(api->pullthrough, repo) != NULL ? 0 : AT_ENOTFOUND,
                    "not under a pull-through prefix");
}

/* see pullthrough.h */
void node_pullthrough_counts(struct node_api *api, struct node_pt_counts *c)
{
    struct node_pullthrough *pt = api->pullthrough;

    memset(c, 0, sizeof(*c));
    if (pt != NULL)
        *c = pt->counts;
}

/* see pullthrough.h */
void node_pullthrough_close(struct node_api *api)
{
    struct node_pullthrough *pt = api->pullthrough;

    if (pt == NULL)
        return;
    api->pullthrough = NULL;
    rules_free(pt);
    auths_clear(pt);
    at_map_release(&pt->auths);
    at_map_release(&pt->checked);
    pt->import = NULL;
    pt->refresh = NULL;
    if (pt->asks.len > 0) {
        /* their importer or peer request still ends them (AT_ESHUTDOWN):
         * the last one frees pt */
        pt->closed = true;
        return;
    }
    at_map_release(&pt->asks);
    at_free(pt);
}
