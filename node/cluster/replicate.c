/* min_copies durability: asks for blob copies, the manifest PUT's wait for
 * them, and the peer endpoint that starts a copy (the leader's scan that
 * asks for the copies still missing is repl_scan.c).
 *
 * Happy path: an upload commits (BlobStored applied) -> node_replicate_blob
 * picks a target (a node of the node table not holding the blob and not
 * dead or left in gossip's view; alive before suspect, same region first)
 * and asks it for a copy on its peer listener (replicate, a
 * PeerReplicate body); the target answers 202 and runs
 * a background fetch (node_fetch_start) from the holders it knows, then
 * records itself with a BlobStored command. The manifest PUT that follows calls
 * node_copies_wait, which usually finds every blob with its copies already
 * (or polls the metadata every NODE_REPLICATE_TICK_MS until it does).
 *
 * Failure modes: the target has not applied the BlobStored yet (it catches
 * up with a read barrier first; 409 if the blob is still unknown: asked
 * again after ASK_RETRY_MS, up to ASK_RETRIES times), is down or refuses
 * (next target), or its fetch fails (the waiting PUT asks again every
 * NODE_REPLICATE_KICK_MS; the leader's scan every NODE_REPL_SCAN_MS).
 * A PUT still short of copies after copy_wait gets 503 naming the blob.
 * A node removed from the cluster no longer counts as a holder (the node
 * table filters meta_blob_holders): the leader's scan asks new copies.
 *
 * Lifetime: struct node_repl is refcounted by the api (until
 * node_replicate_close) and by every ask and wait; once
 * detached (api NULL) each of them ends at its next callback. */
#include "common/compat.h"

#define AT_LOG_COMP "replicate"

#include "common/common.h"
#include "node/cluster/fetch.h"
#include "node/cluster/fetch_table.h"
#include "node/cluster/holders.h"
#include "node/cluster/peer.h"
#include "node/cluster/replicate.h"
#include "node/reply/reply.h"
#include "proto/peer.h"

#define ASK_RETRY_MS 200
#define ASK_RETRIES  50

struct node_repl {
    struct node_api *api; /* borrowed; NULL once closed */
    struct at_map asks;   /* raw digest -> struct repl_ask (borrowed) */
    unsigned refs;
};

struct repl_target {
    char *name; /* owned */
    char *addr; /* owned */
    int group;  /* 0 same region, 1 other, +2 gossip suspects it */
};

/* One ask for a copy of one blob, tried on one target after the other. */
struct repl_ask {
    struct node_repl *r; /* one reference */
    struct at_digest d;
    char dstr[AT_DIGEST_STR_SIZE];
    char *repo; /* owned */
    uint64_t size;
    struct repl_target *targets; /* owned */
    size_t ntargets, cur;
    unsigned retries; /* 409 answers from the current target */
    uv_timer_t timer; /* between retries; closed at the end */
};

/* A manifest PUT waiting for copies. */
struct copies_wait {
    struct node_repl *r; /* one reference */
    char *repo;          /* owned */
    struct at_digest *digests;
    size_t n;
    node_copies_cb cb;
    void *data;
    uint64_t deadline_ms, next_kick_ms;
    uv_timer_t timer;
};

static void repl_unref(struct node_repl *r)
{
    if (--r->refs > 0)
        return;
    at_map_release(&r->asks);
    at_free(r);
}

/* see replicate.h */
void node_replicate_close(struct node_repl *r)
{
    if (r == NULL)
        return;
    if (r->api != NULL)
        r->api->repl = NULL;
    r->api = NULL;
    repl_unref(r);
}

static struct node_repl *repl_get(struct node_api *api)
{
    struct node_repl *r = api->repl;

    if (r == NULL) {
        r = at_calloc(1, sizeof(*r));
        at_map_init(&r->asks);
        r->api = api;
        r->refs = 1;
        api->repl = r;
    }
    return r;
}

static bool usable(const struct node_api *api)
{
    return api != NULL && !api->stopping && api->meta != NULL &&
           api->peer != NULL;
}

/* ---- counting ---- */

/* Stores: nodes of the node table (they have a peer address) that are in
 * the raft configuration (after --force-new-cluster the lost nodes stay in
 * the table until removed, but are out of the configuration). */
static void count_each(void *data, const struct meta_node *n)
{
    unsigned *count = data;

    if (n->peer_address != NULL && n->peer_address[0] != '\0' && n->role >= 0)
        (*count)++;
}

/* see replicate.h */
unsigned node_copies_min(struct node_api *api)
{
    const char *v = api->cfg != NULL ? api->cfg->min_copies : NULL;
    unsigned nodes = 0;

    if (v != NULL && v[0] >= '1' && v[0] <= '9') {
        unsigned want = (unsigned)(v[0] - '0');
        if (v[1] >= '0' && v[1] <= '9')
            want = want * 10 + (unsigned)(v[1] - '0');
        return AT_MIN(want, NODE_REPLICATE_MAX_COPY);
    }
    if (api->meta == NULL)
        return 1;
    meta_members(api->meta, count_each, &nodes);
    return nodes >= 2 ? 2 : 1;
}

static void holder_count_each(void *data, const struct meta_node *n)
{
    unsigned *count = data;

    if (n->role >= 0) /* a store of the cluster (see count_each) */
        (*count)++;
}

/* see replicate.h */
unsigned node_copies_count(struct node_api *api, const struct at_digest *d)
{
    unsigned count = 0;
    uint64_t size;

    if (api->meta == NULL)
        return 0;
    meta_blob_holders(api->meta, d, holder_count_each, &count);
    if (storage_blob_stat(api->store, d, &size) == 0)
        count++;
    return count;
}

/* ---- asks ---- */

static void ask_on_closed(uv_handle_t *h)
{
    struct repl_ask *a = h->data;
    struct node_repl *r = a->r;

    for (size_t i = 0; i < a->ntargets; i++) {
        at_free(a->targets[i].name);
        at_free(a->targets[i].addr);
    }
    at_free(a->targets);
    at_free(a->repo);
    at_free(a);
    repl_unref(r);
}

static void ask_finish(struct repl_ask *a)
{
    if (at_map_get(&a->r->asks, a->d.bytes, AT_DIGEST_LEN) == a)
        at_map_del(&a->r->asks, a->d.bytes, AT_DIGEST_LEN);
    uv_close((uv_handle_t *)&a->timer, ask_on_closed);
}

static void ask_send(struct repl_ask *a);

static void ask_on_retry(uv_timer_t *t)
{
    ask_send(t->data);
}

static void ask_on_answer(void *data,
                          int status,
                          int http,
                          const char *body,
                          size_t len)
{
    struct repl_ask *a = data;
    struct repl_target *t = &a->targets[a->cur];

    AT_UNUSED(body);
    AT_UNUSED(len);
    if (!usable(a->r->api)) {
        ask_finish(a);
        return;
    }
    if (status == 0 && http == 202) {
        LOG_INFO("blob '%s': '%s' is making a copy", a->dstr, t->name);
        ask_finish(a);
        return;
    }
    if (status == 0 && http == 409 && a->retries < ASK_RETRIES) {
        /* Not applied there yet: the BlobStored is on its way. */
        a->retries++;
        uv_timer_start(&a->timer, ask_on_retry, ASK_RETRY_MS, 0);
        return;
    }
    LOG_WARN("blob '%s': '%s' at %s cannot copy it: %s", a->dstr, t->name,
             t->addr, status != 0 ? at_strerror(status) : "refused");
    a->cur++;
    a->retries = 0;
    ask_send(a);
}

/* Ask the current target, or the next one that takes the request. */
static void ask_send(struct repl_ask *a)
{
    struct node_api *api = a->r->api;
    struct proto_peer_msg m = { .ep = PROTO_PEER_REPLICATE };
    char errmsg[AT_ERRMSG_SIZE];
    struct at_buf b;
    int rv;

    m.u.replicate.repo = a->repo;
    m.u.replicate.digest = a->d;
    m.u.replicate.size = a->size;
    for (; usable(api) && a->cur < a->ntargets; a->cur++, a->retries = 0) {
        struct repl_target *t = &a->targets[a->cur];

        at_buf_init(&b, 0);
        rv = proto_peer_msg_pack(&m, &b, errmsg);
        if (rv == 0)
            rv = node_peer_request(api->peer, "POST", t->addr,
                                   proto_peer_path(PROTO_PEER_REPLICATE),
                                   PROTO_PEER_CONTENT_TYPE, b.data, b.len,
                                   NODE_REPLICATE_ASK_MS, ask_on_answer, a);
        at_buf_release(&b);
        if (rv == 0)
            return;
        LOG_WARN("blob '%s': cannot ask '%s' for a copy: %s", a->dstr, t->name,
                 at_strerror(rv));
    }
    if (usable(api))
        LOG_WARN("blob '%s': no node could take a copy (%zu asked)", a->dstr,
                 a->ntargets);
    ask_finish(a);
}

struct targets_ctx {
    struct repl_ask *a;
    struct node_api *api;
    struct at_map holders; /* names holding the blob */
    const char *region;
    size_t cap;
};

static void holder_name_each(void *data, const struct meta_node *n)
{
    struct targets_ctx *tc = data;

    if (n->name != NULL)
        at_map_put(&tc->holders, n->name, strlen(n->name), (void *)1);
}

static void target_each(void *data, const struct meta_node *n)
{
    struct targets_ctx *tc = data;
    struct repl_ask *a = tc->a;
    struct repl_target *t;

    if (n->name == NULL || n->peer_address == NULL ||
        n->peer_address[0] == '\0' || n->role < 0 ||
        (tc->api->store_id != NULL &&
         strcmp(n->name, tc->api->store_id) == 0) ||
        at_map_gets(&tc->holders, n->name) != NULL)
        return;
    /* gossip sees it dead or left: it would only time out */
    enum node_rank rank = node_holder_rank(tc->api, n->name, false);
    if (rank == NODE_RANK_GONE)
        return;
    if (a->ntargets == tc->cap) {
        tc->cap = tc->cap == 0 ? 4 : tc->cap * 2;
        a->targets = at_realloc(a->targets, tc->cap * sizeof(*a->targets));
    }
    t = &a->targets[a->ntargets++];
    t->name = at_strdup(n->name);
    t->addr = at_strdup(n->peer_address);
    /* alive in the same region, alive elsewhere, then suspects */
    t->group = (rank == NODE_RANK_SUSPECT ? 2 : 0) +
               (tc->region[0] != '\0' && n->region != NULL &&
                        strcmp(n->region, tc->region) == 0
                    ? 0
                    : 1);
}

/* By group (see target_each); meta_members already sorts by name (stable). */
static void targets_sort(struct repl_ask *a)
{
    for (size_t i = 1; i < a->ntargets; i++) {
        struct repl_target t = a->targets[i];
        size_t j = i;

        while (j > 0 && a->targets[j - 1].group > t.group) {
            a->targets[j] = a->targets[j - 1];
            j--;
        }
        a->targets[j] = t;
    }
}

/* see replicate.h */
void node_replicate_blob(struct node_api *api,
                         const char *repo,
                         const struct at_digest *d)
{
    struct node_repl *r;
    struct repl_ask *a;
    struct targets_ctx tc;
    uint64_t size = 0;
    unsigned want;

    if (!usable(api))
        return;
    want = node_copies_min(api);
    if (want <= 1 || !meta_blob_known(api->meta, d, &size) ||
        node_copies_count(api, d) >= want)
        return;
    r = repl_get(api);
    if (at_map_get(&r->asks, d->bytes, AT_DIGEST_LEN) != NULL)
        return;
    a = at_calloc(1, sizeof(*a));
    a->r = r;
    r->refs++;
    a->d = *d;
    at_digest_format(d, a->dstr);
    a->repo = at_strdup(repo);
    a->size = size;
    uv_timer_init(api->loop, &a->timer);
    a->timer.data = a;
    memset(&tc, 0, sizeof(tc));
    tc.a = a;
    tc.api = api;
    tc.region =
        api->cfg != NULL && api->cfg->region != NULL ? api->cfg->region : "";
    at_map_init(&tc.holders);
    meta_blob_holders(api->meta, d, holder_name_each, &tc);
    meta_members(api->meta, target_each, &tc);
    at_map_release(&tc.holders);
    targets_sort(a);
    at_map_put(&r->asks, d->bytes, AT_DIGEST_LEN, a);
    LOG_DEBUG("blob '%s': asking for a copy (%zu candidates)", a->dstr,
              a->ntargets);
    ask_send(a);
}

/* ---- waiting for copies ---- */

static void wait_on_closed(uv_handle_t *h)
{
    struct copies_wait *w = h->data;
    struct node_repl *r = w->r;

    at_free(w->digests);
    at_free(w->repo);
    at_free(w);
    repl_unref(r);
}

/* Index of the first blob short of copies, or n. */
static size_t first_short(struct node_api *api,
                          const struct at_digest *d,
                          size_t n,
                          unsigned want,
                          unsigned *have)
{
    for (size_t i = 0; i < n; i++) {
        *have = node_copies_count(api, &d[i]);
        if (*have < want)
            return i;
    }
    return n;
}

static void kick_short(struct node_api *api,
                       const char *repo,
                       const struct at_digest *d,
                       size_t n,
                       unsigned want)
{
    for (size_t i = 0; i < n; i++)
        if (node_copies_count(api, &d[i]) < want)
            node_replicate_blob(api, repo, &d[i]);
}

static void wait_on_tick(uv_timer_t *t)
{
    struct copies_wait *w = t->data;
    struct node_api *api = w->r->api;
    char why[256];
    char dstr[AT_DIGEST_STR_SIZE];
    unsigned want, have = 0;
    uint64_t now = at_now_ms();
    size_t i;

    if (api == NULL || api->stopping || api->meta == NULL) {
        w->cb(w->data, AT_ESHUTDOWN, "node is stopping");
        goto done;
    }
    want = node_copies_min(api);
    i = first_short(api, w->digests, w->n, want, &have);
    if (i == w->n) {
        w->cb(w->data, 0, NULL);
        goto done;
    }
    if (now >= w->deadline_ms) {
        snprintf(why, sizeof(why), "blob %s has %u of %u required copies",
                 at_digest_format(&w->digests[i], dstr), have, want);
        LOG_WARN("manifest in '%s': %s after %" PRIu64 " ms", w->repo, why,
                 api->cfg->copy_wait_ms);
        w->cb(w->data, AT_ETIMEDOUT, why);
        goto done;
    }
    if (now >= w->next_kick_ms) {
        w->next_kick_ms = now + NODE_REPLICATE_KICK_MS;
        kick_short(api, w->repo, w->digests, w->n, want);
    }
    return;

done:
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, wait_on_closed);
}

/* see replicate.h */
void node_copies_wait(struct node_api *api,
                      const char *repo,
                      const struct at_digest *digests,
                      size_t n,
                      node_copies_cb cb,
                      void *data)
{
    struct copies_wait *w;
    struct node_repl *r;
    unsigned want, have = 0;
    uint64_t now = at_now_ms();

    if (api->meta == NULL || api->stopping) {
        cb(data, AT_ESHUTDOWN, "node is stopping");
        return;
    }
    want = node_copies_min(api);
    if (want <= 1 || first_short(api, digests, n, want, &have) == n) {
        cb(data, 0, NULL);
        return;
    }
    r = repl_get(api);
    w = at_calloc(1, sizeof(*w));
    w->r = r;
    r->refs++;
    w->repo = at_strdup(repo);
    w->digests = at_malloc(n * sizeof(*digests));
    memcpy(w->digests, digests, n * sizeof(*digests));
    w->n = n;
    w->cb = cb;
    w->data = data;
    w->deadline_ms = now + api->cfg->copy_wait_ms;
    w->next_kick_ms = now + NODE_REPLICATE_KICK_MS;
    kick_short(api, repo, digests, n, want);
    uv_timer_init(api->loop, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, wait_on_tick, NODE_REPLICATE_TICK_MS,
                   NODE_REPLICATE_TICK_MS);
}

/* ---- peer endpoint ---- */

struct repl_req {
    struct node_api *api; /* borrowed */
    struct at_buf body;
};

static void repl_reply(struct node_http_req *req,
                       int status,
                       const char *code,
                       const char *msg)
{
    if (status == 202) {
        node_http_resp_status(req, 202);
        node_http_resp_header(req, "Content-Type", "application/json");
        node_http_resp_send(req, "{\"status\":0}\n", 13);
        return;
    }
    node_reply_error(req, status, code, "%s", msg);
}

/* A copy request waiting for this node to catch up (see repl_run). */
struct repl_late {
    struct node_api *api;      /* borrowed; checked with usable() */
    struct node_http_req *req; /* one reference */
    char *repo;                /* owned */
    struct at_digest d;
};

/* Start the copy, or say why not. */
static void repl_start(struct node_api *api,
                       struct node_http_req *req,
                       const char *repo,
                       const struct at_digest *d,
                       bool caught_up)
{
    uint64_t size = 0;
    int rv;

    if (!meta_blob_linked(api->meta, repo, d, &size)) {
        repl_reply(req, 409, "BLOB_UNKNOWN",
                   caught_up ? "blob not in this repository"
                             : "blob not known here yet");
        return;
    }
    rv = node_fetch_start(api, repo, d, size);
    if (rv == 0)
        repl_reply(req, 202, NULL, NULL);
    else if (rv == AT_ENOSPC)
        repl_reply(req, 507, "UNSUPPORTED", "not enough free space for a copy");
    else
        repl_reply(req, 503, "UNAVAILABLE", at_strerror(rv));
}

static void repl_on_caught_up(void *data, int status)
{
    struct repl_late *l = data;

    if (!node_http_req_done(l->req)) {
        if (!usable(l->api))
            repl_reply(l->req, 503, "UNAVAILABLE", "node is stopping");
        else
            repl_start(l->api, l->req, l->repo, &l->d, status == 0);
    }
    node_http_req_unref(l->req);
    at_free(l->repo);
    at_free(l);
}

static void repl_run(struct node_api *api,
                     struct node_http_req *req,
                     const char *body,
                     size_t len)
{
    struct proto_peer_msg m;
    char errmsg[AT_ERRMSG_SIZE];
    const struct at_digest *d;
    const char *repo;

    if (api->stopping || api->meta == NULL) {
        repl_reply(req, 503, "UNAVAILABLE", "node is stopping");
        return;
    }
    if (proto_peer_msg_unpack(PROTO_PEER_REPLICATE, body, len, &m, errmsg) !=
        0) {
        repl_reply(req, 400, "UNSUPPORTED", errmsg);
        return;
    }
    repo = m.u.replicate.repo;
    d = &m.u.replicate.digest;
    if (meta_blob_linked(api->meta, repo, d, NULL)) {
        repl_start(api, req, repo, d, true);
        proto_peer_msg_release(&m);
        return;
    }
    /* The asker applied the BlobStored before asking, but this node may
     * not have learned of its commit yet (a heartbeat away when the leader
     * wrote it). A read barrier brings it here now: one round trip, rather
     * than the asker's retry ASK_RETRY_MS later. */
    struct repl_late *l = at_calloc(1, sizeof(*l));
    l->api = api;
    l->req = req;
    l->repo = at_strdup(repo);
    l->d = *d;
    proto_peer_msg_release(&m);
    node_http_req_ref(req);
    if (meta_read_barrier(api->meta, repl_on_caught_up, l) != 0) {
        node_http_req_unref(req);
        at_free(l->repo);
        at_free(l);
        repl_reply(req, 409, "BLOB_UNKNOWN", "blob not known here yet");
    }
}

static void repl_req_free(struct repl_req *rr)
{
    at_buf_release(&rr->body);
    at_free(rr);
}

static int repl_on_body(struct node_http_req *req, const char *p, size_t n)
{
    struct repl_req *rr = node_http_req_data(req);

    if (rr == NULL)
        return 0;
    if (at_buf_append(&rr->body, p, n) != 0) {
        node_http_req_set_data(req, NULL);
        node_http_req_on_abort(req, NULL);
        repl_reply(req, 413, "SIZE_INVALID", "body too large");
        repl_req_free(rr);
        node_http_req_unref(req);
    }
    return 0;
}

static void repl_on_end(struct node_http_req *req)
{
    struct repl_req *rr = node_http_req_data(req);

    if (rr == NULL)
        return;
    node_http_req_set_data(req, NULL);
    node_http_req_on_abort(req, NULL);
    repl_run(rr->api, req, rr->body.data != NULL ? rr->body.data : "",
             rr->body.len);
    repl_req_free(rr);
    node_http_req_unref(req);
}

static void repl_on_abort(struct node_http_req *req)
{
    struct repl_req *rr = node_http_req_data(req);

    if (rr == NULL)
        return;
    node_http_req_set_data(req, NULL);
    repl_req_free(rr);
    node_http_req_unref(req);
}

/* see replicate.h */
void node_replicate_handle(struct node_api *api, struct node_http_req *req)
{
    size_t max = proto_peer_endpoints[PROTO_PEER_REPLICATE].body_max;
    struct repl_req *rr;

    if (node_http_req_method(req) != NODE_HTTP_POST) {
        repl_reply(req, 405, "UNSUPPORTED", "method not allowed");
        return;
    }
    if (!node_http_req_has_body(req) ||
        (node_http_req_has_length(req) &&
         node_http_req_content_length(req) > max)) {
        repl_reply(req, 400, "UNSUPPORTED", "want a PeerReplicate body");
        return;
    }
    rr = at_calloc(1, sizeof(*rr));
    rr->api = api;
    at_buf_init(&rr->body, max);
    node_http_req_ref(req);
    node_http_req_set_data(req, rr);
    node_http_req_on_abort(req, repl_on_abort);
    node_http_req_read_body(req, repl_on_body, repl_on_end);
}

/* ---- counts ---- */

/* see replicate.h */
void node_replicate_counts(struct node_api *api,
                           uint64_t *under_replicated,
                           uint64_t *copies_in_flight)
{
    unsigned active = 0, background = 0;

    node_fetch_counts(api, &active, &background);
    *under_replicated = api->under_replicated; /* repl_scan.c */
    *copies_in_flight =
        background + (api->repl != NULL ? api->repl->asks.len : 0);
}
