/* Pull-through caches, the process's side: see upstream.h. */
#include "common/compat.h"

#define AT_LOG_COMP "pullthrough"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "common/common.h"
#include "node/cluster/pullthrough.h"
#include "node/oci/manifest_parse.h"
#include "node/regclient.h"
#include "node/replication_rules.h"
#include "node/upstream.h"

/* One manifest brought from the upstream. */
struct got {
    struct node_regclient_manifest m;
    struct node_manifest_info info;
};

struct imp {
    struct node_upstream *up;      /* borrowed */
    struct at_list link;           /* in up->imps */
    struct node_repl_rules *rules; /* owned: this import's own parse */
    const struct node_repl_rule *rule;
    char *repo;  /* owned: the name here */
    char *urepo; /* owned: the name upstream */
    char *ref;   /* owned; NULL: learn the Authorization line only */
    bool is_tag, has_local, has_blob;
    struct at_digest local, blob;
    node_pt_cb cb;
    void *data;
    pthread_t thread;
    bool started; /* taken from the queue (spawned or failed to) */
    bool spawned; /* thread is to be joined */
    atomic_bool cancel;
    /* the thread's results, read once done (under up->mu) */
    bool done;
    int status;
    char errmsg[AT_ERRMSG_SIZE];
    char *auth, *base; /* owned */
    bool unchanged;    /* the tag still names the cached digest */
    struct got *got;   /* owned: children before their index */
    size_t ngot;
    /* the proposals, on the loop */
    unsigned pending;
    int first_err;
    char perr[AT_ERRMSG_SIZE];
};

struct node_upstream {
    struct node_api *api; /* borrowed */
    uv_async_t async;
    pthread_mutex_t mu;
    struct at_list imps; /* under mu: waiting, running and done */
    unsigned running;
    uint64_t rules_index;
    bool stopping;
};

static void imp_free(struct imp *i)
{
    for (size_t k = 0; k < i->ngot; k++) {
        node_regclient_manifest_release(&i->got[k].m);
        node_manifest_info_release(&i->got[k].info);
    }
    at_free(i->got);
    if (i->auth != NULL)
        explicit_bzero(i->auth, strlen(i->auth));
    at_free(i->auth);
    at_free(i->base);
    at_free(i->repo);
    at_free(i->urepo);
    at_free(i->ref);
    node_repl_rules_free(i->rules);
    at_free(i);
}

/* ---- on the thread ---- */

static bool got_has(const struct imp *i, const struct at_digest *d)
{
    for (size_t k = 0; k < i->ngot; k++)
        if (at_digest_equal(&i->got[k].m.digest, d))
            return true;
    return false;
}

/* ref and, for an index, its children before it (depth: of nesting). */
static int fetch_tree(struct imp *i,
                      struct node_regclient *c,
                      const char *ref,
                      int depth)
{
    struct got g;
    int rv;

    if (i->ngot >= UPSTREAM_MANIFESTS_MAX || depth > 3) {
        at_errmsg_printf(i->errmsg,
                         "over %d manifests, or indexes nested over 3 deep",
                         UPSTREAM_MANIFESTS_MAX);
        return AT_ETOOBIG;
    }
    memset(&g, 0, sizeof(g));
    rv = node_regclient_get_manifest(c, i->urepo, ref, &g.m, i->errmsg);
    if (rv != 0)
        return rv;
    rv = node_manifest_parse(g.m.media_type, g.m.body, g.m.len, &g.info,
                             i->errmsg);
    if (rv != 0) {
        at_errmsg_wrapf(i->errmsg, "manifest %s", ref);
        node_regclient_manifest_release(&g.m);
        return rv;
    }
    for (size_t k = 0; k < g.info.nmanifests && rv == 0; k++) {
        char dstr[AT_DIGEST_STR_SIZE];

        if (!got_has(i, &g.info.manifests[k]))
            rv = fetch_tree(i, c, at_digest_format(&g.info.manifests[k], dstr),
                            depth + 1);
    }
    if (rv != 0) {
        node_regclient_manifest_release(&g.m);
        node_manifest_info_release(&g.info);
        return rv;
    }
    i->got = at_realloc(i->got, (i->ngot + 1) * sizeof(*i->got));
    i->got[i->ngot++] = g;
    return 0;
}

static void *imp_run(void *arg)
{
    struct imp *i = arg;
    struct node_regclient *c = NULL;
    const char *base = NULL;
    struct at_digest now;
    uint64_t size;
    int rv;

    rv = node_repl_remote_open(i->rule, &i->cancel, &c, &base, i->errmsg);
    if (rv == 0) {
        i->base = at_strdup(base);
        if (i->ref == NULL) {
            rv = node_regclient_has_blob(c, i->urepo, &i->blob, &size,
                                         i->errmsg);
        } else if (i->is_tag && i->has_local &&
                   node_regclient_resolve(c, i->urepo, i->ref, &now,
                                          i->errmsg) == 0 &&
                   at_digest_equal(&now, &i->local)) {
            i->unchanged = true;
        } else {
            i->errmsg[0] = '\0';
            rv = fetch_tree(i, c, i->ref, 0);
        }
        if (node_regclient_auth(c) != NULL)
            i->auth = at_strdup(node_regclient_auth(c));
        node_regclient_free(c);
    }
    pthread_mutex_lock(&i->up->mu);
    i->status = rv;
    i->done = true;
    pthread_mutex_unlock(&i->up->mu);
    uv_async_send(&i->up->async);
    return NULL;
}

/* ---- on the loop ---- */

/* i is the loop's alone now (out of up->imps). */
static void imp_finish(struct imp *i, int status, const char *errmsg)
{
    i->cb(i->data, status, errmsg);
    imp_free(i);
}

static void on_proposed(void *data, int status, int result, uint64_t index)
{
    struct imp *i = data;

    AT_UNUSED(index);
    if (i->first_err == 0 && (status != 0 || result != META_OK)) {
        i->first_err = status != 0 ? status : AT_EIO;
        at_errmsg_printf(
            i->perr, "storing what came from upstream: %s",
            status != 0 ? at_strerror(status) : meta_result_str(result));
    }
    if (--i->pending == 0)
        imp_finish(i, i->first_err, i->perr);
}

static void propose(struct imp *i, const struct meta_cmd *c)
{
    int rv;

    i->pending++;
    rv = meta_propose(i->up->api->meta, c, on_proposed, i);
    if (rv != 0)
        on_proposed(i, rv, 0, 0);
}

/* What the thread brought, into the log: blob links, then manifests,
 * children first (the FSM wants what a manifest names already there). */
static void imp_store(struct imp *i)
{
    struct meta *meta = i->up->api->meta;
    struct at_digest cur;

    i->pending = 1; /* until every proposal is made */
    for (size_t k = 0; k < i->ngot; k++) {
        const struct got *g = &i->got[k];
        const bool top = k + 1 == i->ngot;
        const char *tag = top && i->is_tag ? i->ref : NULL;

        for (size_t b = 0; b < g->info.nblobs; b++) {
            if (meta_blob_linked(meta, i->repo, &g->info.blobs[b], NULL))
                continue;
            struct meta_cmd c = {
                .kind = META_CMD_BLOB_STORED,
                .blob_stored = { .repo = i->repo,
                                 .digest = g->info.blobs[b],
                                 .size = g->info.blob_sizes[b],
                                 .remote = true },
            };
            propose(i, &c);
        }
        if (meta_manifest_find(meta, i->repo, &g->m.digest) != NULL &&
            (tag == NULL || (meta_tag_resolve(meta, i->repo, tag, &cur) == 0 &&
                             at_digest_equal(&cur, &g->m.digest))))
            continue;
        struct meta_cmd c = { .kind = META_CMD_PUT_MANIFEST };
        node_manifest_put_fill(&c.put_manifest, &g->info, i->repo, &g->m.digest,
                               g->m.body, g->m.len, tag);
        propose(i, &c);
    }
    if (i->ngot > 0)
        LOG_INFO("%s:%s from upstream %s: %zu manifest(s)", i->repo, i->ref,
                 i->base, i->ngot);
    on_proposed(i, 0, META_OK, 0); /* the first pending */
}

static void start_waiting(struct node_upstream *up);

static void on_async(uv_async_t *a)
{
    struct node_upstream *up = a->data;
    struct at_list *l, *next;
    struct at_list done;

    at_list_init(&done);
    pthread_mutex_lock(&up->mu);
    AT_LIST_FOREACH_SAFE (l, next, &up->imps) {
        struct imp *i = AT_LIST_ENTRY(l, struct imp, link);
        if (i->started && i->done) {
            at_list_remove(&i->link);
            at_list_push_back(&done, &i->link);
            if (i->spawned)
                up->running--;
        }
    }
    pthread_mutex_unlock(&up->mu);
    while ((l = at_list_pop_front(&done)) != NULL) {
        struct imp *i = AT_LIST_ENTRY(l, struct imp, link);
        if (i->spawned)
            pthread_join(i->thread, NULL);
        if (i->base != NULL && i->status == 0)
            node_pullthrough_set_auth(up->api, i->repo, i->base, i->auth);
        if (i->status != 0 || up->stopping || up->api->meta == NULL)
            imp_finish(i, up->stopping ? AT_ESHUTDOWN : i->status, i->errmsg);
        else if (i->ref == NULL || i->unchanged)
            imp_finish(i, 0, "");
        else
            imp_store(i);
    }
    start_waiting(up);
}

static void start_waiting(struct node_upstream *up)
{
    struct at_list *l;

    pthread_mutex_lock(&up->mu);
    AT_LIST_FOREACH (l, &up->imps) {
        struct imp *i = AT_LIST_ENTRY(l, struct imp, link);
        if (up->running >= UPSTREAM_THREADS || up->stopping)
            break;
        if (i->started)
            continue;
        i->started = true;
        if (pthread_create(&i->thread, NULL, imp_run, i) != 0) {
            i->done = true; /* reaped as failed, not joined */
            i->status = AT_ENOMEM;
            at_errmsg_printf(i->errmsg, "cannot start a thread");
            continue;
        }
        i->spawned = true;
        up->running++;
    }
    pthread_mutex_unlock(&up->mu);
}

/* see pullthrough.h: node_pt_import_fn */
static int import(struct node_api *api,
                  const char *rule,
                  const char *repo,
                  const char *ref,
                  const struct at_digest *local,
                  const struct at_digest *blob,
                  node_pt_cb cb,
                  void *data)
{
    struct node_upstream *up = api->upstream;
    char errmsg[AT_ERRMSG_SIZE];
    const char *doc;
    struct imp *i;

    if (up == NULL || up->stopping || api->meta == NULL)
        return AT_ESHUTDOWN;
    doc = meta_setting_get(api->meta, "replication", NULL);
    i = at_calloc(1, sizeof(*i));
    if (doc == NULL ||
        node_repl_rules_parse(doc, strlen(doc), &i->rules, errmsg) != 0 ||
        (i->rule = node_repl_rules_find(i->rules, rule)) == NULL ||
        !i->rule->proxy) {
        node_repl_rules_free(i->rules);
        at_free(i);
        return AT_ENOTFOUND;
    }
    i->up = up;
    i->repo = at_strdup(repo);
    i->urepo = at_strdup(repo + strlen(i->rule->strip_prefix));
    i->ref = ref != NULL ? at_strdup(ref) : NULL;
    i->is_tag = ref != NULL && strchr(ref, ':') == NULL;
    i->has_local = local != NULL;
    if (local != NULL)
        i->local = *local;
    i->has_blob = blob != NULL;
    if (blob != NULL)
        i->blob = *blob;
    i->cb = cb;
    i->data = data;
    atomic_init(&i->cancel, false);
    if (!node_repl_rule_matches(i->rule, i->urepo)) {
        imp_free(i);
        return AT_ENOTFOUND; /* not a repository the rule takes */
    }
    pthread_mutex_lock(&up->mu);
    at_list_push_back(&up->imps, &i->link);
    pthread_mutex_unlock(&up->mu);
    /* cb never runs inside this call: the thread reports through the
     * async, and a failed start goes the same way */
    start_waiting(up);
    uv_async_send(&up->async);
    return 0;
}

/* Re-read the proxy rules when the document changed. */
static void refresh(struct node_api *api)
{
    struct node_upstream *up = api->upstream;
    struct node_repl_rules *rules = NULL;
    struct node_pt_rule v[NODE_REPL_RULES_MAX];
    char errmsg[AT_ERRMSG_SIZE];
    uint64_t index = 0;
    size_t n = 0;
    const char *doc;

    if (up == NULL || api->meta == NULL)
        return;
    doc = meta_setting_get(api->meta, "replication", &index);
    if (index == up->rules_index)
        return;
    up->rules_index = index;
    if (doc != NULL &&
        node_repl_rules_parse(doc, strlen(doc), &rules, errmsg) != 0)
        LOG_WARN("rules at index %" PRIu64 " ignored: %s", index, errmsg);
    for (size_t k = 0; rules != NULL && k < rules->n; k++) {
        const struct node_repl_rule *r = &rules->v[k];
        if (!r->proxy)
            continue;
        v[n++] = (struct node_pt_rule){
            .name = r->name,
            .prefix = r->strip_prefix,
            .ca_file = r->ca_file,
            .tls_verify = r->tls_verify,
            .ttl_ms = r->ttl_ms,
            .timeout_ms = r->timeout_ms,
        };
    }
    node_pullthrough_set(api, v, n, import, refresh); /* copies */
    node_repl_rules_free(rules);
}

static void on_closed(uv_handle_t *h)
{
    struct node_upstream *up = h->data;

    pthread_mutex_destroy(&up->mu);
    at_free(up);
}

/* see upstream.h */
void node_upstream_start(struct node_api *api)
{
    struct node_upstream *up;

    if (api->upstream != NULL)
        return;
    up = at_calloc(1, sizeof(*up));
    up->api = api;
    up->rules_index = UINT64_MAX;
    pthread_mutex_init(&up->mu, NULL);
    at_list_init(&up->imps);
    AT_ASSERT(uv_async_init(api->loop, &up->async, on_async) == 0);
    up->async.data = up;
    uv_unref((uv_handle_t *)&up->async);
    api->upstream = up;
    node_pullthrough_set(api, NULL, 0, import, refresh);
}

/* see upstream.h */
void node_upstream_stop(struct node_api *api)
{
    struct node_upstream *up = api->upstream;
    struct at_list *l;

    if (up == NULL)
        return;
    pthread_mutex_lock(&up->mu);
    up->stopping = true;
    AT_LIST_FOREACH (l, &up->imps) {
        struct imp *i = AT_LIST_ENTRY(l, struct imp, link);
        atomic_store(&i->cancel, true);
        if (!i->started) {
            i->started = i->done = true; /* never ran: nothing to join */
            i->status = AT_ESHUTDOWN;
        }
    }
    pthread_mutex_unlock(&up->mu);
    /* wait for the threads (a cancelled request ends within a curl
     * callback), then end every import */
    for (;;) {
        bool all;
        pthread_mutex_lock(&up->mu);
        all = true;
        AT_LIST_FOREACH (l, &up->imps) {
            struct imp *i = AT_LIST_ENTRY(l, struct imp, link);
            all = all && i->done;
        }
        pthread_mutex_unlock(&up->mu);
        if (all)
            break;
        struct timespec ts = { 0, 5000000 };
        nanosleep(&ts, NULL);
    }
    on_async(&up->async);
    api->upstream = NULL;
    uv_close((uv_handle_t *)&up->async, on_closed);
}
