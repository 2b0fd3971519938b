/* Online garbage collection on a node: candidates from the FSM, GcSweep
 * proposals in batches, and the deletion of local copies (the store's scan
 * and sweep, which run in the thread pool). */
#include "common/compat.h"

#define AT_LOG_COMP "gc"

#include "node/auth/access.h"
#include "node/cluster/gc.h"
#include "node/cluster/peer_api.h"
#include "node/http/url.h"
#include "node/reply/reply.h"

/* Removals without a known cutoff keep files changed in the last hour. */
#define GC_UNKNOWN_CUTOFF_MS (3600u * 1000u)

struct node_gc {
    uv_loop_t *loop;               /* borrowed */
    struct storage *store;         /* borrowed */
    const struct node_config *cfg; /* borrowed */
    struct meta *meta;             /* borrowed; NULL once stopped */
    uv_check_t check;              /* drains swept digests */
    uv_timer_t timer;              /* gc_interval schedule */
    uv_timer_t scan_timer;         /* orphan scan, gc_scan_delay after */
    uint64_t scan_cutoff_ms;       /* ... this wall time (0: none due) */
    bool scan_busy;                /* a scan is in flight */
    unsigned handles;              /* initialized handles not yet closed */
    unsigned work;                 /* pool jobs in flight */
    struct gc_run *run;            /* the run in progress, if any */
    bool started, stopped;
    struct node_gc_stats stats;
};

/* One run: dry or real, from the endpoint (req) or the schedule. */
struct gc_run {
    struct node_gc *g;         /* borrowed */
    struct node_http_req *req; /* one reference; NULL when scheduled */
    bool dry;
    bool untagged; /* untagged manifests first (policy gc_untagged) */
    uint64_t grace_ms, now_ms, t0;
    struct meta_gc_manifest *mcand; /* owned, and each repo string */
    size_t nm, mcap, mnext, mdeleted;
    struct at_digest *cand; /* owned */
    uint64_t *sizes;        /* owned */
    size_t n, cap, next, batches;
    uint64_t bytes;
};

/* ---- local deletions (the store's sweep, in the pool) ---- */

static void gc_maybe_free(struct node_gc *g)
{
    if (g->stopped && g->handles == 0 && g->work == 0 && g->run == NULL)
        at_free(g);
}

/* A swept blob stored again since (a later BlobStored applied): keep it. */
static bool stored_again(void *data, const struct at_digest *d)
{
    struct node_gc *g = data;
    return meta_blob_known(g->meta, d, NULL);
}

static void on_local_swept(void *data, const struct storage_sweep_stats *st)
{
    struct node_gc *g = data;
    g->stats.files_removed += st->removed;
    g->stats.files_kept += st->kept + st->changed;
    g->stats.bytes_freed += st->bytes;
    LOG_INFO("swept blob(s) here: %" PRIu64 " local copies removed (%" PRIu64
             " bytes), %" PRIu64 " stored again, %" PRIu64
             " changed since the sweep",
             st->removed, st->bytes, st->kept, st->changed);
    g->work--;
    gc_maybe_free(g);
}

/* Delete the local copies of rm[0..n) in the pool, except those stored
 * again since (a later BlobStored applied). */
static void queue_deletions(struct node_gc *g,
                            const struct meta_gc_removed *rm,
                            size_t n)
{
    struct storage_sweep_item *items = at_calloc(n, sizeof(*items));
    uint64_t unknown = at_wall_ms();
    unknown =
        unknown > GC_UNKNOWN_CUTOFF_MS ? unknown - GC_UNKNOWN_CUTOFF_MS : 0;
    for (size_t i = 0; i < n; i++) {
        items[i].digest = rm[i].digest;
        items[i].cutoff_ms = rm[i].cutoff_ms != 0 ? rm[i].cutoff_ms : unknown;
    }
    if (storage_blob_sweep(g->store, items, n, stored_again, on_local_swept,
                           g) == 0)
        g->work++;
    at_free(items);
}

static void scan_schedule(struct node_gc *g);

/* After every loop iteration: hand what GcSweeps removed to the pool. */
static void on_check(uv_check_t *h)
{
    struct node_gc *g = h->data;
    struct meta_gc_removed *rm = NULL;
    if (g->meta == NULL || g->store == NULL || storage_closed(g->store))
        return;
    if (meta_gc_take_scan(g->meta))
        scan_schedule(g);
    size_t n = meta_gc_take_removed(g->meta, &rm);
    if (n > 0)
        queue_deletions(g, rm, n);
    at_free(rm);
}

/* ---- orphan scan ----
 * After a start or a snapshot install a node may hold copies of blobs whose
 * records are gone (a sweep it applied but did not finish deleting before a
 * crash, or sweeps it only learnt about through a snapshot). gc_scan_delay
 * after that moment (so that every BlobStored in flight then has applied),
 * the pool lists the files changed before it, the loop passes a read
 * barrier and keeps the digests no record knows, and the pool deletes them
 * (rechecking the ctime). */

struct gc_scan {
    struct node_gc *g; /* borrowed; lives while work > 0 */
    uint64_t cutoff_ms;
    struct at_digest *found; /* owned: files changed before the cutoff */
    size_t n;
    bool truncated;
};

#define GC_SCAN_MAX ((size_t)1 << 22) /* files listed per scan */

static void scan_free(struct gc_scan *sc)
{
    struct node_gc *g = sc->g;
    at_free(sc->found);
    at_free(sc);
    g->scan_busy = false;
    g->work--;
    gc_maybe_free(g);
}

static void on_scan_barrier(void *data, int status)
{
    struct gc_scan *sc = data;
    struct node_gc *g = sc->g;
    if (status == 0 && g->meta != NULL && g->store != NULL &&
        !storage_closed(g->store)) {
        struct meta_gc_removed *rm = at_calloc(sc->n + 1, sizeof(*rm));
        size_t k = 0;
        for (size_t i = 0; i < sc->n; i++) {
            if (meta_blob_known(g->meta, &sc->found[i], NULL))
                continue;
            rm[k].digest = sc->found[i];
            rm[k++].cutoff_ms = sc->cutoff_ms;
        }
        LOG_INFO(
            "store scan: %zu file(s) before the cutoff, %zu without a "
            "record%s",
            sc->n, k, sc->truncated ? " (listing truncated)" : "");
        if (k > 0)
            queue_deletions(g, rm, k);
        at_free(rm);
    } else if (status != 0 && !g->stopped) {
        LOG_WARN("store scan skipped: %s", at_strerror(status));
    }
    scan_free(sc);
}

static void on_scanned(void *data,
                       int status,
                       struct at_digest *found,
                       size_t n,
                       bool truncated)
{
    struct gc_scan *sc = data;
    struct node_gc *g = sc->g;
    AT_UNUSED(status); /* an unreadable store lists nothing: no scan */
    sc->found = found;
    sc->n = n;
    sc->truncated = truncated;
    if (g->meta == NULL || sc->n == 0) {
        scan_free(sc);
        return;
    }
    int rv = meta_read_barrier(g->meta, on_scan_barrier, sc);
    if (rv != 0)
        on_scan_barrier(sc, rv);
}

static void on_scan_timer(uv_timer_t *t)
{
    struct node_gc *g = t->data;
    if (g->meta == NULL || g->store == NULL || storage_closed(g->store) ||
        g->scan_cutoff_ms == 0)
        return;
    if (g->scan_busy) { /* try again once the running scan is done */
        uv_timer_start(&g->scan_timer, on_scan_timer, 1000, 0);
        return;
    }
    struct gc_scan *sc = at_calloc(1, sizeof(*sc));
    sc->g = g;
    sc->cutoff_ms = g->scan_cutoff_ms;
    g->scan_cutoff_ms = 0;
    g->scan_busy = true;
    g->work++;
    if (storage_blob_scan(g->store, sc->cutoff_ms, GC_SCAN_MAX, on_scanned,
                          sc) != 0)
        scan_free(sc);
}

/* A scan of the files changed before now, gc_scan_delay from now (a later
 * request postpones a pending one and moves its cutoff). */
static void scan_schedule(struct node_gc *g)
{
    g->scan_cutoff_ms = at_wall_ms();
    uv_timer_start(&g->scan_timer, on_scan_timer, g->cfg->gc_scan_delay_ms, 0);
}

/* ---- runs ---- */

static void run_collect(void *data, const struct at_digest *d, uint64_t size)
{
    struct gc_run *r = data;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 256;
        r->cand = at_realloc(r->cand, r->cap * sizeof(*r->cand));
        r->sizes = at_realloc(r->sizes, r->cap * sizeof(*r->sizes));
    }
    r->cand[r->n] = *d;
    r->sizes[r->n++] = size;
    r->bytes += size;
}

static void run_collect_mf(void *data,
                           const char *repo,
                           const struct at_digest *d)
{
    struct gc_run *r = data;
    if (r->nm == r->mcap) {
        r->mcap = r->mcap ? r->mcap * 2 : 64;
        r->mcand = at_realloc(r->mcand, r->mcap * sizeof(*r->mcand));
    }
    r->mcand[r->nm].repo = at_strdup(repo);
    r->mcand[r->nm++].digest = *d;
}

/* Finish a run: status 0 or an AT_E* code (503). */
static void run_finish(struct gc_run *r, int status)
{
    struct node_gc *g = r->g;
    uint64_t deleted = 0, deleted_bytes = 0;
    if (!r->dry && g->meta != NULL) {
        for (size_t i = 0; i < r->next; i++) {
            if (!meta_blob_known(g->meta, &r->cand[i], NULL)) {
                deleted++;
                deleted_bytes += r->sizes[i];
            }
        }
    }
    uint64_t ms = at_now_ms() - r->t0;
    if (!r->dry) {
        g->stats.runs += status == 0;
        g->stats.swept += deleted;
        g->stats.swept_bytes += deleted_bytes;
        g->stats.manifests_swept += r->mdeleted;
    }
    /* an idle schedule stays quiet */
    int level = r->req == NULL && r->n == 0 && r->nm == 0 && status == 0
                    ? AT_LOG_LEVEL_DEBUG
                    : AT_LOG_LEVEL_INFO;
    AT_LOG_(level,
            "gc%s: %zu untagged manifest(s), %zu deleted; %zu candidate "
            "blob(s), %" PRIu64 " bytes, %" PRIu64 " deleted (%" PRIu64
            " bytes), %zu batch(es), %" PRIu64 " ms%s%s",
            r->dry ? " (dry run)" : "", r->nm, r->mdeleted, r->n, r->bytes,
            deleted, deleted_bytes, r->batches, ms, status != 0 ? ": " : "",
            status != 0 ? at_strerror(status) : "");
    if (r->req != NULL) {
        if (!node_http_req_done(r->req)) {
            if (status != 0) {
                node_reply_error(r->req, 503, "UNAVAILABLE",
                                 "gc: %zu of %zu manifests and %zu of %zu "
                                 "blobs swept: %s",
                                 r->mnext, r->nm, r->next, r->n,
                                 at_strerror(status));
            } else {
                struct at_buf b;
                at_buf_init(&b, 0);
                at_buf_printf(&b,
                              "{\"dry_run\":%s,\"untagged\":%s,"
                              "\"manifests\":%zu,\"manifests_deleted\":%zu,"
                              "\"candidates\":%zu,"
                              "\"bytes\":%" PRIu64 ",\"deleted\":%" PRIu64
                              ",\"deleted_bytes\":%" PRIu64
                              ",\"batches\":%zu,\"ms\":%" PRIu64 "}\n",
                              r->dry ? "true" : "false",
                              r->untagged ? "true" : "false", r->nm,
                              r->mdeleted, r->n, r->bytes, deleted,
                              deleted_bytes, r->batches, ms);
                node_reply_begin(r->req, 200);
                node_http_resp_header(r->req, "Content-Type",
                                      "application/json");
                node_http_resp_send(r->req, b.data, b.len);
                at_buf_release(&b);
            }
        }
        node_http_req_unref(r->req);
    }
    for (size_t i = 0; i < r->nm; i++)
        at_free((char *)r->mcand[i].repo);
    at_free(r->mcand);
    at_free(r->cand);
    at_free(r->sizes);
    at_free(r);
    g->run = NULL;
    gc_maybe_free(g);
}

static void run_next(struct gc_run *r);

/* Candidates in the batch that starts at next of n. */
static size_t batch_len(size_t next, size_t n)
{
    return n - next < NODE_GC_BATCH ? n - next : NODE_GC_BATCH;
}

/* A sweep batch was answered: false (and the run finished) on failure,
 * else the cursor moves past the batch. */
static bool sweep_answered(struct gc_run *r,
                           int status,
                           int result,
                           size_t *next,
                           size_t n)
{
    if (status == 0 && result != META_OK)
        status = AT_EPROTO;
    if (status != 0 || r->g->meta == NULL) {
        run_finish(r, status != 0 ? status : AT_ESHUTDOWN);
        return false;
    }
    *next += batch_len(*next, n);
    return true;
}

static void on_swept(void *data, int status, int result, uint64_t index)
{
    struct gc_run *r = data;
    AT_UNUSED(index);
    if (sweep_answered(r, status, result, &r->next, r->n))
        run_next(r);
}

static void run_next(struct gc_run *r)
{
    struct node_gc *g = r->g;
    if (r->dry || r->next >= r->n) {
        run_finish(r, 0);
        return;
    }
    if (g->meta == NULL) {
        run_finish(r, AT_ESHUTDOWN);
        return;
    }
    size_t batch = batch_len(r->next, r->n);
    r->batches++;
    struct meta_cmd c = {
        .kind = META_CMD_GC_SWEEP,
        .gc_sweep = { .now_ms = r->now_ms,
                      .grace_ms = r->grace_ms,
                      .digests = r->cand + r->next,
                      .ndigests = batch },
    };
    int rv = meta_propose(g->meta, &c, on_swept, r);
    if (rv != 0)
        run_finish(r, rv);
}

/* The blob part of a run (after the manifest part, if any). */
static void run_blobs(struct gc_run *r)
{
    struct node_gc *g = r->g;
    /* manifests the sweeps deleted (applied here when they answered) */
    for (size_t i = 0; !r->dry && i < r->mnext; i++) {
        if (meta_manifest_find(g->meta, r->mcand[i].repo,
                               &r->mcand[i].digest) == NULL)
            r->mdeleted++;
    }
    meta_gc_candidates(g->meta, r->now_ms, r->grace_ms, run_collect, r);
    run_next(r);
}

static void run_next_mf(struct gc_run *r);

static void on_mf_swept(void *data, int status, int result, uint64_t index)
{
    struct gc_run *r = data;
    AT_UNUSED(index);
    if (sweep_answered(r, status, result, &r->mnext, r->nm))
        run_next_mf(r);
}

/* Propose the untagged manifests in batches, then go on with the blobs
 * (those the deleted manifests referenced are unreferenced now). */
static void run_next_mf(struct gc_run *r)
{
    struct node_gc *g = r->g;
    if (g->meta == NULL) {
        run_finish(r, AT_ESHUTDOWN);
        return;
    }
    if (r->dry || r->mnext >= r->nm) {
        run_blobs(r);
        return;
    }
    size_t batch = batch_len(r->mnext, r->nm);
    r->batches++;
    struct meta_cmd c = {
        .kind = META_CMD_GC_SWEEP,
        .gc_sweep = { .now_ms = r->now_ms,
                      .grace_ms = r->grace_ms,
                      .manifests = r->mcand + r->mnext,
                      .nmanifests = batch },
    };
    int rv = meta_propose(g->meta, &c, on_mf_swept, r);
    if (rv != 0)
        run_finish(r, rv);
}

static void on_barrier(void *data, int status)
{
    struct gc_run *r = data;
    struct node_gc *g = r->g;
    if (status == 0 && g->meta == NULL)
        status = AT_ESHUTDOWN;
    if (status != 0) {
        run_finish(r, status);
        return;
    }
    /* candidates from the state this node has applied (everything
     * committed before the run started) */
    r->now_ms = at_wall_ms();
    if (r->untagged)
        meta_gc_manifest_candidates(g->meta, r->now_ms, r->grace_ms,
                                    NODE_GC_MANIFESTS_MAX, run_collect_mf, r);
    run_next_mf(r);
}

/* Start a run; 0, AT_EBUSY (one at a time) or AT_ESHUTDOWN. */
static int run_start(struct node_gc *g,
                     struct node_http_req *req,
                     bool dry,
                     bool untagged,
                     uint64_t grace_ms)
{
    if (g->meta == NULL || g->stopped)
        return AT_ESHUTDOWN;
    if (g->run != NULL)
        return AT_EBUSY;
    struct gc_run *r = at_calloc(1, sizeof(*r));
    r->g = g;
    r->req = req;
    r->dry = dry;
    r->untagged = untagged;
    r->grace_ms = grace_ms;
    r->t0 = at_now_ms();
    if (req != NULL)
        node_http_req_ref(req);
    g->run = r;
    int rv = meta_read_barrier(g->meta, on_barrier, r);
    if (rv != 0) {
        if (req != NULL)
            node_http_req_unref(req);
        at_free(r);
        g->run = NULL;
        return rv;
    }
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    struct node_gc *g = t->data;
    if (g->meta == NULL)
        return;
    if (!meta_is_leader(g->meta) || g->run != NULL) /* the leader runs it */
        return;
    int rv =
        run_start(g, NULL, false, g->cfg->gc_untagged, g->cfg->gc_grace_ms);
    if (rv != 0)
        LOG_WARN("scheduled gc not started: %s", at_strerror(rv));
}

/* see gc.h */
void node_gc_handle(struct node_gc *g, struct node_http_req *req)
{
    const char *query = node_http_req_query(req);
    char *v = NULL;
    bool dry = false;
    bool untagged = g->cfg->gc_untagged;
    uint64_t grace = g->cfg->gc_grace_ms;
    int rv;

    if (node_http_req_method(req) != NODE_HTTP_POST) {
        node_reply_error(req, 405, "UNSUPPORTED", "POST /_atoll/gc");
        return;
    }
    /* an admin user the gate let in, or the cluster secret */
    if (!node_access_admin(req) && g->cfg->cluster_secret != NULL &&
        g->cfg->cluster_secret[0] != '\0' &&
        !node_peer_auth_ok(node_http_req_header(req, "authorization"),
                           g->cfg->cluster_secret)) {
        LOG_WARN("gc requested by %s without a valid cluster secret",
                 node_http_req_peer(req));
        node_reply_error(req, 401, "UNAUTHORIZED",
                         "missing or wrong cluster secret");
        return;
    }
    if (query != NULL) {
        rv = node_query_get(query, "dry_run", &v);
        if (rv == 0) {
            rv = v[0] == '\0' ? (dry = true, 0) : at_parse_bool(v, &dry);
            free(v);
        }
        if (rv != 0 && rv != AT_ENOTFOUND) {
            node_reply_error(req, 400, "UNSUPPORTED", "bad dry_run parameter");
            return;
        }
        v = NULL;
        rv = node_query_get(query, "grace", &v);
        if (rv == 0) {
            rv = at_parse_duration_ms(v, &grace);
            free(v);
        }
        if (rv != 0 && rv != AT_ENOTFOUND) {
            node_reply_error(req, 400, "UNSUPPORTED", "bad grace parameter");
            return;
        }
        v = NULL;
        rv = node_query_get(query, "untagged", &v);
        if (rv == 0) {
            rv = v[0] == '\0' ? (untagged = true, 0)
                              : at_parse_bool(v, &untagged);
            free(v);
        }
        if (rv != 0 && rv != AT_ENOTFOUND) {
            node_reply_error(req, 400, "UNSUPPORTED", "bad untagged parameter");
            return;
        }
    }
    rv = run_start(g, req, dry, untagged, grace);
    if (rv == 0) {
        const char *u = node_http_req_user(req);
        LOG_AUDIT(
            "%s%s%s from %s started a garbage collection (dry_run %s, "
            "untagged %s, grace %" PRIu64 " ms)",
            u != NULL ? "user '" : "",
            u != NULL ? u
            : g->cfg->cluster_secret != NULL &&
                    g->cfg->cluster_secret[0] != '\0'
                ? "the cluster secret"
                : "anyone",
            u != NULL ? "'" : "", node_http_req_peer(req), dry ? "yes" : "no",
            untagged ? "yes" : "no", grace);
    }
    if (rv == AT_EBUSY)
        node_reply_error(req, 409, "UNSUPPORTED",
                         "a garbage collection is already running here");
    else if (rv != 0)
        node_reply_error(req, 503, "UNAVAILABLE", "gc: %s", at_strerror(rv));
}

/* see gc.h */
struct node_gc *node_gc_new(uv_loop_t *loop,
                            struct storage *store,
                            const struct node_config *cfg)
{
    struct node_gc *g = at_calloc(1, sizeof(*g));
    g->loop = loop;
    g->store = store;
    g->cfg = cfg;
    return g;
}

/* see gc.h */
void node_gc_start(struct node_gc *g, struct meta *m)
{
    if (g == NULL || g->started)
        return;
    g->started = true;
    g->meta = m;
    uv_check_init(g->loop, &g->check);
    g->check.data = g;
    uv_check_start(&g->check, on_check);
    uv_unref((uv_handle_t *)&g->check);
    g->handles++;
    uv_timer_init(g->loop, &g->timer);
    g->timer.data = g;
    g->handles++;
    uv_timer_init(g->loop, &g->scan_timer);
    g->scan_timer.data = g;
    g->handles++;
    scan_schedule(g); /* copies a crash left behind */
    if (g->cfg->gc_interval_ms > 0)
        uv_timer_start(&g->timer, on_timer, g->cfg->gc_interval_ms,
                       g->cfg->gc_interval_ms);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct node_gc *g = h->data;
    g->handles--;
    gc_maybe_free(g);
}

/* see gc.h */
void node_gc_stop(struct node_gc *g)
{
    if (g == NULL || g->stopped)
        return;
    /* drain what was swept so far, then forget meta and storage */
    if (g->started)
        on_check(&g->check);
    g->stopped = true;
    g->meta = NULL;
    g->store = NULL;
    if (g->started) {
        uv_close((uv_handle_t *)&g->check, on_handle_closed);
        uv_close((uv_handle_t *)&g->timer, on_handle_closed);
        uv_close((uv_handle_t *)&g->scan_timer, on_handle_closed);
    }
    gc_maybe_free(g);
}

/* see gc.h */
void node_gc_stats_get(const struct node_gc *g, struct node_gc_stats *out)
{
    if (g == NULL)
        memset(out, 0, sizeof(*out));
    else
        *out = g->stats;
}
