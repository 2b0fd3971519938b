/* Replication jobs run by the leader: see replication.h. */
#include "common/compat.h"

#define AT_LOG_COMP "replication"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "common/common.h"
#include "node/changes.h"
#include "node/config.h"
#include "node/copy.h"
#include "node/events.h"
#include "node/regclient.h"
#include "node/replication.h"
#include "node/replication_rules.h"

struct job {
    struct node_replicator *rp;    /* borrowed */
    struct at_list link;           /* in rp->jobs */
    struct node_repl_rules *rules; /* owned: this job's own parse */
    const struct node_repl_rule *rule;
    char *self_url;   /* owned */
    char *self_token; /* owned: the cluster secret, or NULL */
    char *tmp_dir;    /* owned: the data dir (blobs pass through it) */
    pthread_t thread;
    atomic_bool cancel;
    bool done; /* under rp->mu */
    uint64_t started_ms, ended_ms;
    uint64_t repos, failed, manifests, manifests_there, blobs, blobs_there,
        bytes, deleted;
    char error[AT_ERRMSG_SIZE];
};

/* When each rule last started and ended here: the status in the log may
 * lag behind a job that just ended. */
struct mem {
    char name[NODE_REPL_NAME_MAX + 1];
    uint64_t started, ended;
    uint64_t cron_checked; /* the last minute (since the epoch) looked at */
    bool pushed;           /* a change it takes was applied since */
};

struct node_replicator {
    struct node_api *api; /* borrowed */
    uv_timer_t tick;
    uv_async_t async;
    unsigned handles;
    pthread_mutex_t mu;
    struct at_list jobs; /* under mu: running and done-not-reaped */
    unsigned njobs;
    char *self_url;
    struct node_repl_rules *rules; /* owned: of rules_index */
    uint64_t rules_index;
    struct mem mem[NODE_REPL_RULES_MAX];
    struct node_replication_counts counts;
    bool listening; /* registered for the applied changes (changes.h) */
};

/* ---- the job, on its thread ---- */

static void job_say(void *data, const char *line)
{
    struct job *j = data;
    LOG_WARN("rule %s: %s", j->rule->name, line);
}

/* The rule's remote: the first of its URLs that answers. */
static struct node_regclient *remote_open(struct job *j)
{
    struct node_regclient *c = NULL;

    node_repl_remote_open(j->rule, &j->cancel, &c, NULL, j->error);
    return c;
}

/* The repositories on the source side that the rule takes. */
static void repos_of(struct job *j,
                     struct node_regclient *src,
                     char ***out,
                     size_t *n)
{
    const struct node_repl_rule *r = j->rule;
    char errmsg[AT_ERRMSG_SIZE] = "";
    char **all = NULL;
    size_t nall = 0;

    *out = at_calloc(1, sizeof(**out));
    *n = 0;
    if (node_regclient_catalog(src, &all, &nall, errmsg) != 0) {
        /* no catalog (Docker Hub): the plain names of the rule */
        for (size_t i = 0; i < r->nglobs; i++) {
            if (strpbrk(r->globs[i], "*") != NULL)
                continue;
            *out = at_realloc(*out, (*n + 1) * sizeof(**out));
            (*out)[(*n)++] = at_strdup(r->globs[i]);
        }
        if (*n == 0)
            snprintf(j->error, sizeof(j->error), "%s", errmsg);
        return;
    }
    for (size_t i = 0; i < nall; i++) {
        if (node_repl_rule_matches(r, all[i])) {
            *out = at_realloc(*out, (*n + 1) * sizeof(**out));
            (*out)[(*n)++] = all[i];
        } else {
            at_free(all[i]);
        }
    }
    at_free(all);
}

static void sleep_cancellable(struct job *j, uint64_t ms)
{
    for (uint64_t t = 0; t < ms && !atomic_load(&j->cancel); t += 50) {
        struct timespec ts = { 0, 50 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
}

static void job_copy(struct job *j,
                     struct node_regclient *local,
                     struct node_regclient *remote)
{
    const struct node_repl_rule *r = j->rule;
    struct node_regclient *src = r->push ? local : remote;
    struct node_regclient *dst = r->push ? remote : local;
    char **repos = NULL;
    size_t n = 0;

    repos_of(j, src, &repos, &n);
    for (size_t i = 0; i < n && !atomic_load(&j->cancel); i++) {
        char *mapped = node_repl_rule_map(r, repos[i]);
        struct node_copy e = {
            .src = src,
            .dst = dst,
            .src_repo = repos[i],
            .dst_repo = mapped,
            .include = r->has_include ? &r->include : NULL,
            .exclude = r->has_exclude ? &r->exclude : NULL,
            .semver = r->has_semver ? &r->semver : NULL,
            .delete_missing = r->deletes,
            .cancel = &j->cancel,
            .tmp_dir = j->tmp_dir,
            .say = job_say,
            .say_data = j,
        };
        int rv = node_copy_repo(&e);
        /* a transport failure is tried again twice, after 1 s then 4 s
         * (what arrived is skipped): a blip does not fail the run */
        for (unsigned k = 0; rv == AT_EIO && k < 2 && !atomic_load(&j->cancel);
             k++) {
            sleep_cancellable(j, k == 0 ? 1000 : 4000);
            e.errmsg[0] = '\0';
            rv = node_copy_repo(&e);
        }
        j->repos++;
        j->manifests += e.manifests;
        j->manifests_there += e.manifests_there;
        j->blobs += e.blobs;
        j->blobs_there += e.blobs_there;
        j->bytes += e.bytes;
        j->deleted += e.deleted;
        if (rv != 0 && rv != AT_ECANCELED) {
            j->failed++;
            if (j->error[0] == '\0')
                snprintf(j->error, sizeof(j->error), "%s: %s", repos[i],
                         e.errmsg[0] != '\0' ? e.errmsg : at_strerror(rv));
        }
        at_free(mapped);
    }
    for (size_t i = 0; i < n; i++)
        at_free(repos[i]);
    at_free(repos);
}

static void *job_run(void *data)
{
    struct job *j = data;
    struct node_replicator *rp = j->rp;
    char errmsg[AT_ERRMSG_SIZE] = "";
    struct node_regclient *local = NULL;
    struct node_regclient *remote = remote_open(j);
    struct node_regclient_opts o = {
        .base = j->self_url,
        .tls_verify = false, /* this node itself, on loopback */
        .timeout_ms = j->rule->timeout_ms,
        .bearer = j->self_token,
        .cancel = &j->cancel,
    };

    if (remote != NULL && node_regclient_new(&local, &o, errmsg) != 0)
        snprintf(j->error, sizeof(j->error), "%s", errmsg);
    if (remote != NULL && local != NULL)
        job_copy(j, local, remote);
    node_regclient_free(local);
    node_regclient_free(remote);
    j->ended_ms = at_wall_ms();
    pthread_mutex_lock(&rp->mu);
    j->done = true;
    pthread_mutex_unlock(&rp->mu);
    uv_async_send(&rp->async);
    return NULL;
}

/* ---- on the loop ---- */

static struct mem *mem_of(struct node_replicator *rp, const char *name)
{
    struct mem *free_slot = NULL;
    for (size_t i = 0; i < AT_ARRAY_SIZE(rp->mem); i++) {
        if (strcmp(rp->mem[i].name, name) == 0)
            return &rp->mem[i];
        if (free_slot == NULL && rp->mem[i].name[0] == '\0')
            free_slot = &rp->mem[i];
    }
    if (free_slot == NULL)
        free_slot = &rp->mem[0];
    memset(free_slot, 0, sizeof(*free_slot));
    snprintf(free_slot->name, sizeof(free_slot->name), "%s", name);
    return free_slot;
}

static bool running(struct node_replicator *rp, const char *name)
{
    struct at_list *l;
    bool found = false;
    pthread_mutex_lock(&rp->mu);
    AT_LIST_FOREACH (l, &rp->jobs) {
        struct job *j = AT_LIST_ENTRY(l, struct job, link);
        if (!j->done && strcmp(j->rule->name, name) == 0)
            found = true;
    }
    pthread_mutex_unlock(&rp->mu);
    return found;
}

static void cancel_all(struct node_replicator *rp)
{
    struct at_list *l;
    pthread_mutex_lock(&rp->mu);
    AT_LIST_FOREACH (l, &rp->jobs) {
        struct job *j = AT_LIST_ENTRY(l, struct job, link);
        atomic_store(&j->cancel, true);
    }
    pthread_mutex_unlock(&rp->mu);
}

static uint64_t status_ms(json_t *status, const char *name, const char *key)
{
    json_t *v = json_object_get(json_object_get(status, name), key);
    return json_is_integer(v) && json_integer_value(v) > 0
               ? (uint64_t)json_integer_value(v)
               : 0;
}

static uint64_t run_asked(struct node_api *api, const char *name)
{
    char key[64];
    uint64_t ms = 0;
    snprintf(key, sizeof(key), "replication_run_%s", name);
    const char *v = meta_setting_get(api->meta, key, NULL);
    if (v == NULL || at_parse_u64(v, strlen(v), &ms) != 0)
        return 0;
    return ms;
}

static void job_free(struct job *j)
{
    node_repl_rules_free(j->rules);
    at_free(j->self_url);
    at_free(j->tmp_dir);
    if (j->self_token != NULL)
        explicit_bzero(j->self_token, strlen(j->self_token));
    at_free(j->self_token);
    at_free(j);
}

/* Did the rule's schedule fire in a minute after its last start, among
 * the minutes not looked at yet (from its last start, a day at most,
 * when this node has not looked before: a new leader)? */
static bool schedule_fired(struct mem *m,
                           const struct node_repl_rule *r,
                           uint64_t started,
                           uint64_t now)
{
    uint64_t now_min = now / 60000;
    if (m->cron_checked == 0)
        m->cron_checked =
            started > 0 ? AT_MAX(started / 60000, now_min - 1440) : now_min;
    bool fired = false;
    for (uint64_t t = m->cron_checked + 1; t <= now_min && !fired; t++) {
        if (t * 60000 > started &&
            node_cron_matches(&r->schedule, (time_t)(t * 60)))
            fired = true;
        m->cron_checked = t;
    }
    return fired;
}

static void job_start(struct node_replicator *rp, const char *doc, size_t i)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    struct job *j = at_calloc(1, sizeof(*j));
    const char *secret = rp->api->cfg->cluster_secret;

    if (node_repl_rules_parse(doc, strlen(doc), &j->rules, errmsg) != 0 ||
        i >= j->rules->n) {
        node_repl_rules_free(j->rules);
        at_free(j);
        return;
    }
    j->rp = rp;
    j->rule = &j->rules->v[i];
    j->self_url = at_strdup(rp->self_url);
    j->tmp_dir = at_strdup(rp->api->cfg->data_dir);
    j->self_token =
        secret != NULL && secret[0] != '\0' ? at_strdup(secret) : NULL;
    j->started_ms = at_wall_ms();
    struct mem *m = mem_of(rp, j->rule->name);
    m->started = j->started_ms;
    m->pushed = false;
    pthread_mutex_lock(&rp->mu);
    at_list_push_back(&rp->jobs, &j->link);
    rp->njobs++;
    pthread_mutex_unlock(&rp->mu);
    if (pthread_create(&j->thread, NULL, job_run, j) != 0) {
        LOG_ERROR("rule %s: no thread for its job", j->rule->name);
        pthread_mutex_lock(&rp->mu);
        at_list_remove(&j->link);
        rp->njobs--;
        pthread_mutex_unlock(&rp->mu);
        job_free(j);
        return;
    }
    LOG_INFO("rule %s: job started (%s %s)", j->rule->name,
             j->rule->push ? "push to" : "pull from", j->rule->urls[0]);
}

/* Applied changes (on the loop): a push rule with on_push that takes one
 * is due. */
static void on_changes(void *data,
                       const struct meta_event *v,
                       size_t n,
                       uint64_t dropped)
{
    struct node_replicator *rp = data;
    (void)dropped;
    if (rp->rules == NULL || !meta_is_leader(rp->api->meta))
        return;
    for (size_t i = 0; i < rp->rules->n; i++) {
        const struct node_repl_rule *r = &rp->rules->v[i];
        if (!r->on_push)
            continue;
        for (size_t k = 0; k < n; k++) {
            bool del = v[k].kind != META_EVENT_PUSH;
            if (node_repl_rule_matches(r, v[k].repo) &&
                (v[k].tag == NULL || node_repl_rule_tag(r, v[k].tag)) &&
                (!del || r->deletes)) {
                mem_of(rp, r->name)->pushed = true;
                break;
            }
        }
    }
}

/* Listen to the applied changes while a rule wants them. A rule with
 * on_push that is new (or changed) runs once at once: pushes applied
 * before this node listened are caught up. */
static void listen_update(struct node_replicator *rp)
{
    bool want = false;
    for (size_t i = 0; rp->rules != NULL && i < rp->rules->n; i++) {
        if (rp->rules->v[i].on_push) {
            want = true;
            mem_of(rp, rp->rules->v[i].name)->pushed = true;
        }
    }
    if (want && !rp->listening)
        rp->listening = node_changes_add(rp->api, on_changes, rp);
    else if (!want && rp->listening) {
        node_changes_remove(rp->api, on_changes, rp);
        rp->listening = false;
    }
}

static void on_tick(uv_timer_t *t)
{
    struct node_replicator *rp = t->data;
    struct node_api *api = rp->api;
    uint64_t index = 0;
    char errmsg[AT_ERRMSG_SIZE] = "";

    if (api->meta == NULL || api->stopping)
        return;
    if (!meta_is_leader(api->meta)) {
        cancel_all(rp);
        return;
    }
    const char *doc = meta_setting_get(api->meta, "replication", &index);
    if (index != rp->rules_index) {
        node_repl_rules_free(rp->rules);
        rp->rules = NULL;
        rp->rules_index = index;
        if (doc != NULL &&
            node_repl_rules_parse(doc, strlen(doc), &rp->rules, errmsg) != 0)
            LOG_WARN("rules at index %" PRIu64 " ignored: %s", index, errmsg);
        listen_update(rp);
    }
    if (rp->rules == NULL || doc == NULL)
        return;
    const char *sv = meta_setting_get(api->meta, "replication_status", NULL);
    json_t *status = sv != NULL ? json_loads(sv, 0, NULL) : NULL;
    uint64_t now = at_wall_ms();
    for (size_t i = 0; i < rp->rules->n && rp->njobs < NODE_REPL_JOBS_MAX;
         i++) {
        const struct node_repl_rule *r = &rp->rules->v[i];
        if (r->proxy || running(rp, r->name))
            continue; /* a cache, not a job; no pile-up */
        struct mem *m = mem_of(rp, r->name);
        uint64_t started =
            AT_MAX(m->started, status_ms(status, r->name, "started"));
        uint64_t ended = AT_MAX(m->ended, status_ms(status, r->name, "ended"));
        bool due = m->pushed || run_asked(api, r->name) > started ||
                   (r->interval_ms > 0 && now >= ended + r->interval_ms) ||
                   (r->has_schedule && schedule_fired(m, r, started, now));
        if (due)
            job_start(rp, doc, i);
    }
    json_decref(status);
}

static void on_status_set(void *data, int status, int result, uint64_t index)
{
    (void)data;
    (void)index;
    if (status != 0 || result != META_OK)
        LOG_WARN("a job's status not recorded: %s",
                 status != 0 ? at_strerror(status) : meta_result_str(result));
}

/* Record a finished job's result in the status, through the log. */
static void record(struct node_replicator *rp, struct job *j)
{
    struct node_api *api = rp->api;
    const char *sv = meta_setting_get(api->meta, "replication_status", NULL);
    json_t *status = sv != NULL ? json_loads(sv, 0, NULL) : NULL;
    bool ok = j->error[0] == '\0' && j->failed == 0;

    if (!json_is_object(status)) {
        json_decref(status);
        status = json_object();
    }
    json_t *o = json_pack(
        "{s:I, s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:s}",
        "started", (json_int_t)j->started_ms, "ended", (json_int_t)j->ended_ms,
        "result", ok ? "ok" : "failed", "repositories", (json_int_t)j->repos,
        "manifests", (json_int_t)j->manifests, "blobs", (json_int_t)j->blobs,
        "bytes", (json_int_t)j->bytes, "manifests_there",
        (json_int_t)j->manifests_there, "blobs_there",
        (json_int_t)j->blobs_there, "deleted", (json_int_t)j->deleted, "failed",
        (json_int_t)j->failed, "error", j->error);
    char *one = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    if (one != NULL)
        node_events_replication(api, j->rule->name, one);
    free(one);
    json_object_set_new(status, j->rule->name, o);
    /* rules gone from the document leave the status too */
    const char *key;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(status, tmp, key, v)
    {
        if (node_repl_rules_find(rp->rules, key) == NULL &&
            strcmp(key, j->rule->name) != 0)
            json_object_del(status, key);
    }
    char *value = json_dumps(status, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(status);
    if (value != NULL && strlen(value) < 64 * 1024) {
        struct meta_cmd c = {
            .kind = META_CMD_SET_SETTING,
            .set_setting = { .key = "replication_status", .value = value },
        };
        if (meta_propose(api->meta, &c, on_status_set, NULL) != 0)
            LOG_WARN("rule %s: status not recorded: %s", j->rule->name,
                     meta_errmsg(api->meta));
    }
    free(value);
    if (ok)
        rp->counts.runs_ok++;
    else
        rp->counts.runs_failed++;
    rp->counts.bytes += j->bytes;
    rp->counts.manifests += j->manifests;
    rp->counts.blobs += j->blobs;
    LOG_INFO("rule %s: %s in %.1f s: %" PRIu64 " repositories, %" PRIu64
             " manifests and %" PRIu64 " blobs (%" PRIu64
             " bytes) copied, %" PRIu64 " and %" PRIu64
             " there already, %" PRIu64 " tags deleted, %" PRIu64
             " repositories failed%s%s",
             j->rule->name, ok ? "done" : "failed",
             (double)(j->ended_ms - j->started_ms) / 1000.0, j->repos,
             j->manifests, j->blobs, j->bytes, j->manifests_there,
             j->blobs_there, j->deleted, j->failed, ok ? "" : ": ", j->error);
}

/* Jobs that ended: joined, and (if still leading and not stopped) their
 * result recorded. */
static void reap(struct node_replicator *rp, bool all)
{
    for (;;) {
        struct job *j = NULL;
        struct at_list *l;
        pthread_mutex_lock(&rp->mu);
        AT_LIST_FOREACH (l, &rp->jobs) {
            struct job *x = AT_LIST_ENTRY(l, struct job, link);
            if (x->done || all) {
                j = x;
                break;
            }
        }
        if (j != NULL) {
            at_list_remove(&j->link);
            rp->njobs--;
        }
        pthread_mutex_unlock(&rp->mu);
        if (j == NULL)
            return;
        pthread_join(j->thread, NULL);
        mem_of(rp, j->rule->name)->ended = j->ended_ms;
        if (!all && !atomic_load(&j->cancel) && rp->api->meta != NULL &&
            meta_is_leader(rp->api->meta))
            record(rp, j);
        job_free(j);
    }
}

static void on_async(uv_async_t *a)
{
    reap(a->data, false);
}

static void on_closed(uv_handle_t *h)
{
    struct node_replicator *rp = h->data;
    if (--rp->handles > 0)
        return;
    pthread_mutex_destroy(&rp->mu);
    node_repl_rules_free(rp->rules);
    at_free(rp->self_url);
    at_free(rp);
}

/* see replication.h */
void node_replication_start(struct node_api *api, const char *self_url)
{
    struct node_replicator *rp;

    if (api->replication != NULL)
        return;
    rp = at_calloc(1, sizeof(*rp));
    rp->api = api;
    rp->self_url = at_strdup(self_url);
    pthread_mutex_init(&rp->mu, NULL);
    at_list_init(&rp->jobs);
    AT_ASSERT(uv_timer_init(api->loop, &rp->tick) == 0);
    AT_ASSERT(uv_async_init(api->loop, &rp->async, on_async) == 0);
    rp->tick.data = rp;
    rp->async.data = rp;
    rp->handles = 2;
    uv_timer_start(&rp->tick, on_tick, NODE_REPL_TICK_MS, NODE_REPL_TICK_MS);
    uv_unref((uv_handle_t *)&rp->tick);
    uv_unref((uv_handle_t *)&rp->async);
    api->replication = rp;
}

/* see replication.h */
void node_replication_stop(struct node_api *api)
{
    struct node_replicator *rp = api->replication;
    if (rp == NULL)
        return;
    api->replication = NULL;
    if (rp->listening)
        node_changes_remove(api, on_changes, rp);
    cancel_all(rp);
    reap(rp, true); /* a cancelled job stops within a callback of curl */
    uv_timer_stop(&rp->tick);
    uv_close((uv_handle_t *)&rp->tick, on_closed);
    uv_close((uv_handle_t *)&rp->async, on_closed);
}

/* see replication.h */
bool node_replication_running(struct node_api *api, const char *name)
{
    return api->replication != NULL && running(api->replication, name);
}

/* see replication.h */
void node_replication_counts(struct node_api *api,
                             struct node_replication_counts *c)
{
    struct node_replicator *rp = api->replication;
    memset(c, 0, sizeof(*c));
    if (rp == NULL)
        return;
    *c = rp->counts;
    pthread_mutex_lock(&rp->mu);
    c->running = rp->njobs;
    pthread_mutex_unlock(&rp->mu);
}
