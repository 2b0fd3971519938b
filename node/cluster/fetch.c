/* Lazy peer blob fetch: one transfer per digest from a holder into a storage
 * upload session, shared by every request waiting for that blob and streamed
 * to them while it runs.
 *
 * Happy path: node_fetch_blob finds no fetch for the digest, lists the
 * holders (meta_blob_holders, ordered by node_holder_rank (holders.h): gossip's
 * alive first, its suspects and holders that gave bad bytes lately after them,
 * dead or left ones last, never skipped since gossip may be wrong; then
 * same region first; then the nearer by gossip RTT; then least loaded,
 * i.e. fewest transfers this node runs from each), creates an upload
 * session and streams GET /_atoll/blobs/<digest> from the first holder
 * into it, pausing the transfer while the session has too much queued
 * (storage_upload_busy -> on_drain -> node_peer_resume). The clients are served
 * from the session's data file, not from memory: a tick timer (and every chunk)
 * computes how much of the file is written and raises each client's send limit
 * (node_http_resp_stream_limit), so a slow client reads at its own pace without
 * holding back the transfer or the others, and a late joiner starts at offset 0
 * of the same file. Every streaming client gets 200 with the full
 * Content-Length from the metadata, but the last FETCH_HOLDBACK bytes (the
 * whole blob when smaller) only once the sha256 matched and every byte is in
 * the data file: for blobs from FETCH_EARLY_MIN on, as soon as the upload's
 * hash chain covered them (storage_upload_hash_watch: one sha256 pass, the
 * commit reuses it); smaller ones once storage_upload_commit verified, fsynced
 * and renamed. A Range GET waits for the commit and is served from the blob
 * file (HEAD never comes here: blobs.c answers it from the metadata). Then a
 * BlobStored command records this node as a holder.
 *
 * Failure modes: a holder unreachable, answering anything but 200, sending
 * more or fewer bytes than the metadata size, or bytes with another digest
 * (AT_EDIGEST: the holder is marked suspect for NODE_HOLDER_SUSPECT_MS) ->
 * every client already streaming is aborted (connection closed mid-body: never
 * a complete wrong 200), the session is canceled and the next holder is tried
 * for the others; none left -> every waiter gets 503 UNAVAILABLE with
 * Retry-After (never 404: the blob is known). Below the free-space reserve
 * no fetch starts: a GET is relayed (relay.h: the bytes pass through, no
 * copy kept), node_fetch_start refuses (AT_ENOSPC). Waiters not yet answered
 * NODE_FETCH_WAIT_MS after the fetch started get a 503 while the transfer goes
 * on for the cache. A client that disconnects is removed from the waiters.
 * Shutdown: the peer client aborts the transfer (AT_ESHUTDOWN), api->stopping
 * stops further holders, node_fetch_table_close detaches the table so late
 * storage callbacks never touch the api.
 *
 * A fetch may have no waiter at all (node_fetch_start: a copy asked for by
 * min_copies replication).
 *
 * Every async step holds a reference on its fetch (transfer, drain, commit,
 * metadata write, tick timer, plus one while the fetch is active); the fetch
 * holds one on the table. */
#include "common/compat.h"

#define AT_LOG_COMP "fetch"

#include <unistd.h>

#include "common/common.h"
#include "node/cluster/fetch.h"
#include "node/cluster/fetch_table.h"
#include "node/cluster/peer.h"
#include "node/cluster/pullthrough.h"
#include "node/cluster/relay.h"
#include "node/cluster/verify.h"
#include "node/reply/reply.h"

#define FETCH_HOLDBACK (64 * 1024) /* sent only once the digest matched */
/* Blobs from this size on are verified while they arrive (on_hashed): their
 * tail goes out before the commit's fdatasync. Smaller ones wait for the
 * commit (short for them), so their GET returns once the copy is kept. */
#define FETCH_EARLY_MIN ((uint64_t)8 << 20)
#define FETCH_TICK_MS   20 /* how often clients' limits move */

enum fetch_state {
    FETCH_DOWNLOADING,
    FETCH_COMMITTING,
    FETCH_DONE,
};

struct fetch;

struct fetch_waiter {
    struct fetch *f;           /* borrowed */
    struct node_http_req *req; /* one reference */
    bool stream;               /* a plain GET: streamed while downloading */
    bool started;              /* its response streams from the data file */
    struct at_list link;       /* in f->waiters */
};

struct fetch {
    struct node_fetch_table *t; /* one reference */
    enum fetch_state state;
    struct at_digest d;
    char dstr[AT_DIGEST_STR_SIZE];
    char *repo; /* owned */
    uint64_t size;
    struct node_holder *holders; /* owned array */
    size_t nholders;
    size_t cur;                    /* index of the holder being tried */
    struct storage_upload *u;      /* one reference, NULL between attempts */
    struct node_peer_req *pr;      /* borrowed while the transfer runs */
    struct node_holder_stat *busy; /* borrowed: stat counting this transfer */
    uint64_t received;             /* bytes of this attempt */
    uint64_t started_ms;
    unsigned pauses; /* transfer paused for the disk (for logs) */
    bool drain_pending, paused, in_map, background, waited_out;
    bool prepared;          /* the upstream's GET is ready (pullthrough.h) */
    struct at_list waiters; /* owned: struct fetch_waiter */
    uv_timer_t timer;       /* tick: client limits, wait bound */
    unsigned refs;
    /* Early verification of this attempt (blobs from FETCH_EARLY_MIN on):
     * a storage_upload_hash_watch on the session reports, from the
     * upload's own hash chain (no second pass over the bytes), when all of
     * them are hashed and in the data file, so the held-back tail goes out
     * as soon as the digest matches, not after the commit's fdatasync. The
     * commit reuses that digest before the copy is kept. */
    bool verified; /* this attempt's bytes match the digest, on file */
    bool mismatch; /* the watch found another digest: attempt is failing */
};

static void fetch_unref(struct fetch *f)
{
    struct node_fetch_table *t = f->t;

    if (--f->refs > 0)
        return;
    node_holders_free(f->holders, f->nholders);
    at_free(f->repo);
    at_free(f);
    node_fetch_table_unref(t);
}

/* ---- waiters ---- */

static struct fetch_waiter *waiter_first(const struct fetch *f)
{
    struct at_list *l = at_list_first(&f->waiters);

    return l != NULL ? AT_LIST_ENTRY(l, struct fetch_waiter, link) : NULL;
}

static void waiter_free(struct fetch_waiter *w)
{
    at_list_remove(&w->link);
    node_http_req_set_data(w->req, NULL);
    node_http_req_on_abort(w->req, NULL);
    node_http_req_unref(w->req);
    at_free(w);
}

/* The client went away: the fetch goes on for the others and the cache. */
static void waiter_on_abort(struct node_http_req *req)
{
    struct fetch_waiter *w = node_http_req_data(req);

    if (w == NULL)
        return;
    LOG_DEBUG("blob '%s': a waiting client went away", w->f->dstr);
    waiter_free(w);
}

/* Close the connection of every client whose body is streaming: this
 * attempt's bytes are not to be trusted (or never complete). */
static void abort_streams(struct fetch *f)
{
    struct at_list *l, *next;

    AT_LIST_FOREACH_SAFE (l, next, &f->waiters) {
        struct fetch_waiter *w = AT_LIST_ENTRY(l, struct fetch_waiter, link);

        if (w->started) {
            node_http_req_on_abort(w->req, NULL);
            node_http_resp_abort(w->req);
            waiter_free(w);
        }
    }
}

/* Answer 503 to every waiter not answered yet (all of them unless only). */
static void fail_waiters(struct fetch *f, const char *why)
{
    struct fetch_waiter *w;

    abort_streams(f);
    while ((w = waiter_first(f)) != NULL) {
        struct node_http_req *req = w->req;

        if (!node_http_req_done(req)) {
            node_http_resp_header(req, "Retry-After", "5");
            node_reply_error(req, 503, "UNAVAILABLE",
                             "blob is known but no copy is reachable now: %s",
                             why);
        }
        waiter_free(w);
    }
}

/* The blob is committed: complete the streams, serve the others. The
 * commit just checked the file against the digest: that is noted once
 * for the file, so that no later GET hashes it again, the streaming
 * clients' included (they took their bytes as they arrived and open no
 * file of their own). */
static void serve_waiters(struct fetch *f)
{
    struct node_api *api = f->t->api;
    struct fetch_waiter *w;
    uint64_t noted_size;
    int noted;

    if (api != NULL &&
        storage_blob_open(api->store, &f->d, &noted, &noted_size) == 0) {
        node_verify_note(api, &f->d, noted);
        close(noted);
    }

    while ((w = waiter_first(f)) != NULL) {
        struct node_http_req *req = w->req;
        uint64_t size = 0;
        int fd = -1;
        int rv;

        if (w->started) {
            node_http_resp_stream_limit(req, f->size);
            waiter_free(w);
            continue;
        }
        rv = api != NULL ? storage_blob_open(api->store, &f->d, &fd, &size)
                         : AT_ESHUTDOWN;
        if (node_http_req_done(req)) {
            if (rv == 0)
                close(fd);
        } else if (rv == 0) {
            node_reply_blob(api, req, &f->d, fd, size);
        } else {
            node_http_resp_header(req, "Retry-After", "1");
            node_reply_error(req, 503, "UNAVAILABLE",
                             "blob fetched but not readable: %s",
                             at_strerror(rv));
        }
        waiter_free(w);
    }
}

/* Bytes of this attempt that are in the data file (written, not queued). */
static uint64_t on_file(const struct fetch *f)
{
    uint64_t size, queued;

    if (f->u == NULL)
        return 0;
    size = storage_upload_size(f->u);
    queued = storage_upload_queued(f->u);
    return size > queued ? size - queued : 0;
}

/* Start or move on the streams of this attempt: every streaming client may
 * read what is in the file, short of the held-back tail. */
static void streams_update(struct fetch *f)
{
    struct node_api *api = f->t->api;
    uint64_t written = on_file(f);
    uint64_t limit = f->verified                ? f->size
                     : f->size > FETCH_HOLDBACK ? f->size - FETCH_HOLDBACK
                                                : 0;
    struct at_list *l;

    if (api == NULL || f->state == FETCH_DONE || f->u == NULL || written == 0 ||
        f->mismatch)
        return;
    limit = AT_MIN(limit, written);
    AT_LIST_FOREACH (l, &f->waiters) {
        struct fetch_waiter *w = AT_LIST_ENTRY(l, struct fetch_waiter, link);
        uint64_t start, len;
        int fd;

        if (!w->stream || node_http_req_done(w->req))
            continue;
        if (w->started) {
            node_http_resp_stream_limit(w->req, limit);
            continue;
        }
        if (storage_upload_open_data(f->u, &fd) != 0)
            continue; /* not there yet: next tick */
        w->started = true;
        /* no Range here (w->stream): 200 with all of it */
        node_reply_blob_begin(api, w->req, &f->d, f->size, &start, &len);
        node_http_resp_stream_file(w->req, fd, f->size, limit);
    }
}

/* ---- lifecycle ---- */

static void on_timer_closed(uv_handle_t *h)
{
    fetch_unref(h->data);
}

static void on_tick(uv_timer_t *timer)
{
    struct fetch *f = timer->data;
    struct at_list *l, *next;
    uint64_t now = at_now_ms();

    streams_update(f);
    if (f->waited_out || now - f->started_ms < NODE_FETCH_WAIT_MS)
        return;
    f->waited_out = true;
    AT_LIST_FOREACH_SAFE (l, next, &f->waiters) {
        struct fetch_waiter *w = AT_LIST_ENTRY(l, struct fetch_waiter, link);

        if (w->started)
            continue; /* bytes are flowing: the write timeout guards */
        LOG_WARN("blob '%s': still fetching after %d ms, answering 503",
                 f->dstr, NODE_FETCH_WAIT_MS);
        if (!node_http_req_done(w->req)) {
            node_http_resp_header(w->req, "Retry-After", "5");
            node_reply_error(w->req, 503, "UNAVAILABLE",
                             "blob is known but no copy is reachable now: "
                             "fetch from a peer still in progress");
        }
        waiter_free(w);
    }
}

static void map_remove(struct fetch *f)
{
    if (!f->in_map)
        return;
    at_map_del(&f->t->fetches, f->d.bytes, AT_DIGEST_LEN);
    f->in_map = false;
    f->t->active--;
    if (f->background)
        f->t->background--;
}

static void upload_drop(struct fetch *f)
{
    f->verified = false;
    f->mismatch = false;
    if (f->u == NULL)
        return;
    storage_upload_cancel(f->u);
    storage_upload_unref(f->u);
    f->u = NULL;
}

/* The fetch is over (waiters served or failed): drop the active reference. */
static void fetch_finish(struct fetch *f, const char *why)
{
    if (f->state == FETCH_DONE)
        return;
    f->state = FETCH_DONE;
    map_remove(f);
    upload_drop(f);
    fail_waiters(f, why);
    uv_timer_stop(&f->timer);
    uv_close((uv_handle_t *)&f->timer, on_timer_closed);
    fetch_unref(f);
}

/* ---- transfer ---- */

static void try_next(struct fetch *f);

static void mark_suspect(struct fetch *f)
{
    node_holder_mark_suspect(&f->t->stats, f->holders[f->cur].name);
}

/* This attempt failed: no client may see its tail; next holder. */
static void attempt_failed(struct fetch *f)
{
    abort_streams(f);
    upload_drop(f);
    f->state = FETCH_DOWNLOADING;
    f->cur++;
    try_next(f);
}

static void on_drain(void *data, int status)
{
    struct fetch *f = data;

    AT_UNUSED(status); /* a write error comes back from the next write */
    f->drain_pending = false;
    streams_update(f);
    if (f->paused && f->pr != NULL) {
        f->paused = false;
        node_peer_resume(f->pr); /* on_data may run in here */
    }
    fetch_unref(f);
}

static int on_data(void *data, const char *p, size_t n)
{
    struct fetch *f = data;
    int rv;

    if (f->t->api == NULL || f->u == NULL)
        return AT_ESHUTDOWN;
    if (f->mismatch)
        return AT_EDIGEST; /* the holder sent other bytes: stop now */
    if (n > f->size - f->received)
        return AT_ETOOBIG; /* more than the metadata says: bad holder */
    if (f->drain_pending) {
        f->pauses += f->paused ? 0 : 1;
        f->paused = true;
        return NODE_PEER_PAUSE;
    }
    rv = storage_upload_write(f->u, p, n);
    if (rv != 0)
        return rv;
    f->received += n;
    if (storage_upload_busy(f->u)) {
        f->drain_pending = true;
        f->refs++;
        storage_upload_on_drain(f->u, on_drain, f);
    }
    return 0;
}

static void on_stored(void *data, int status, int result, uint64_t index)
{
    struct fetch *f = data;

    if (status != 0 || result != META_OK)
        LOG_WARN("blob '%s' fetched but not recorded as held here: %s", f->dstr,
                 status != 0 ? at_strerror(status) : meta_result_str(result));
    else
        LOG_DEBUG("blob '%s' recorded as held here at index %" PRIu64, f->dstr,
                  index);
    fetch_unref(f);
}

static void on_commit(void *data,
                      int status,
                      const struct at_digest *digest,
                      uint64_t size)
{
    struct fetch *f = data;
    struct node_api *api = f->t->api;
    const char *holder = f->holders[f->cur].name;
    int rv;

    AT_UNUSED(digest);
    AT_UNUSED(size);
    if (status == 0) {
        storage_upload_unref(f->u);
        f->u = NULL;
        map_remove(f); /* the local copy answers from now on */
        LOG_INFO("blob '%s' (%" PRIu64
                 " bytes) fetched from '%s' (%u pauses "
                 "for the disk)",
                 f->dstr, f->size, holder, f->pauses);
        serve_waiters(f);
        if (api != NULL && api->meta != NULL && !api->stopping) {
            f->refs++;
            struct meta_cmd c = {
                .kind = META_CMD_BLOB_STORED,
                .blob_stored = { .repo = f->repo,
                                 .digest = f->d,
                                 .size = f->size },
            };
            rv = meta_propose(api->meta, &c, on_stored, f);
            if (rv != 0)
                on_stored(f, rv, 0, 0);
        }
        fetch_finish(f, "fetched");
    } else {
        if (status == AT_EDIGEST) {
            LOG_WARN(
                "blob '%s' from '%s' does not match its digest: holder "
                "'%s' is suspect, trying the next one",
                f->dstr, f->holders[f->cur].addr, holder);
            mark_suspect(f);
        } else {
            LOG_WARN("blob '%s' from '%s': storing failed: %s", f->dstr, holder,
                     at_strerror(status));
        }
        attempt_failed(f);
    }
    fetch_unref(f);
}

/* The upload's hash chain covered all f->size bytes of this attempt and
 * they are in the data file (storage_upload_hash_watch). Any other status
 * than 0 and AT_EDIGEST comes from a session already dropped, or one whose
 * error the transfer or the commit reports: nothing to do here. */
static void on_hashed(void *data, int status)
{
    struct fetch *f = data;

    if (status == 0) {
        f->verified = true;
        streams_update(f); /* the tails go out now */
    } else if (status == AT_EDIGEST) {
        /* Whatever state: no client may get the tail. Downloading: the
         * transfer is cut (on_data) and its end fails the attempt.
         * Committing: the commit reuses this digest, fails with AT_EDIGEST,
         * and on_commit fails the attempt (cancels the session). */
        LOG_WARN(
            "blob '%s' from '%s' does not match its digest: holder "
            "'%s' is suspect",
            f->dstr, f->holders[f->cur].addr, f->holders[f->cur].name);
        mark_suspect(f);
        abort_streams(f);
        if (f->state == FETCH_DOWNLOADING)
            f->mismatch = true;
    }
    fetch_unref(f);
}

static void on_transfer_done(void *data,
                             int status,
                             int http,
                             const char *body,
                             size_t len)
{
    struct fetch *f = data;
    struct node_holder *h = &f->holders[f->cur];
    int rv;

    AT_UNUSED(body);
    AT_UNUSED(len);
    f->pr = NULL;
    f->paused = false;
    node_holder_transfer_end(&f->busy);
    if (h->upstream && f->t->api != NULL)
        node_pullthrough_answered(f->t->api, f->repo, http);
    if (f->mismatch) {
        /* on_hashed logged it and marked the holder suspect */
    } else if (status == 0 && http == 200 && f->received == f->size &&
               f->t->api != NULL && !f->t->api->stopping) {
        f->state = FETCH_COMMITTING;
        f->refs++;
        rv = storage_upload_commit(f->u, &f->d, on_commit, f);
        if (rv == 0) {
            fetch_unref(f); /* the transfer's reference */
            return;
        }
        f->refs--;
        f->state = FETCH_DOWNLOADING;
        LOG_WARN("blob '%s' from '%s': commit: %s", f->dstr, h->name,
                 at_strerror(rv));
    } else if (status == AT_ETOOBIG) {
        LOG_WARN("blob '%s' from '%s': more than the %" PRIu64
                 " bytes recorded: holder is suspect",
                 f->dstr, h->name, f->size);
        mark_suspect(f);
    } else if (status != 0) {
        LOG_WARN("blob '%s' from '%s' at %s: %s", f->dstr, h->name, h->addr,
                 at_strerror(status));
    } else if (http != 200) {
        LOG_WARN("blob '%s' from '%s': peer answered %d", f->dstr, h->name,
                 http);
    } else if (f->received != f->size) {
        LOG_WARN("blob '%s' from '%s': got %" PRIu64 " of %" PRIu64
                 " bytes: holder is suspect",
                 f->dstr, h->name, f->received, f->size);
        mark_suspect(f);
    }
    attempt_failed(f);
    fetch_unref(f);
}

static void on_prepared(void *data, int status, const char *errmsg)
{
    struct fetch *f = data;

    if (status != 0 && f->state != FETCH_DONE)
        LOG_WARN("blob '%s': the upstream's GET is not ready: %s", f->dstr,
                 errmsg);
    f->prepared = true; /* failed: the GET says so */
    if (f->state != FETCH_DONE)
        try_next(f);
    fetch_unref(f);
}

/* Start a transfer from the next holder that accepts one, or finish. */
static void try_next(struct fetch *f)
{
    struct node_api *api = f->t->api;
    int rv;

    for (; f->cur < f->nholders; f->cur++) {
        struct node_holder *h = &f->holders[f->cur];

        if (api == NULL || api->stopping || api->peer == NULL) {
            fetch_finish(f, "node is stopping");
            return;
        }
        if (h->upstream && !f->prepared) {
            f->refs++;
            rv = node_pullthrough_prepare(api, f->repo, &f->d, on_prepared, f);
            if (rv == 1)
                return; /* on_prepared comes back here */
            f->refs--;
            f->prepared = true;
        }
        rv = storage_upload_create(api->store, f->repo, &f->u);
        if (rv != 0) {
            LOG_WARN("blob '%s': cannot store a fetched copy: %s", f->dstr,
                     at_strerror(rv));
            fetch_finish(f, "no local space for a copy");
            return;
        }
        /* big blobs are verified on the fly by the upload's own hash
         * chain (on_hashed): only their commit waits for the disk */
        if (f->size >= FETCH_EARLY_MIN) {
            storage_upload_no_throttle(f->u);
            f->refs++;
            rv = storage_upload_hash_watch(f->u, f->size, &f->d, on_hashed, f);
            if (rv != 0) {
                f->refs--; /* the commit still verifies */
                LOG_WARN("blob '%s': no early verification: %s", f->dstr,
                         at_strerror(rv));
            }
        }
        f->received = 0;
        f->paused = false;
        f->refs++;
        if (h->upstream)
            rv = node_pullthrough_stream(api, f->repo, f->dstr,
                                         NODE_FETCH_TRANSFER_MS, on_data,
                                         on_transfer_done, f, &f->pr);
        else
            rv = node_holder_stream(api, &f->t->stats, h, f->dstr,
                                    NODE_FETCH_TRANSFER_MS, on_data,
                                    on_transfer_done, f, &f->pr, &f->busy);
        if (rv == 0) {
            api->peer_blob_fetches++;
            LOG_INFO("fetching blob '%s' (%" PRIu64 " bytes) from '%s' at %s%s",
                     f->dstr, f->size, h->name, h->addr,
                     h->key.rank != NODE_RANK_OK
                         ? " (suspect or down, no other left)"
                         : "");
            return;
        }
        f->refs--;
        f->pr = NULL;
        LOG_WARN("blob '%s': cannot ask '%s' at %s: %s", f->dstr, h->name,
                 h->addr, at_strerror(rv));
        upload_drop(f);
    }
    LOG_WARN(
        "blob '%s' is linked in '%s' but no holder could give it (%zu "
        "tried)",
        f->dstr, f->repo, f->nholders);
    fetch_finish(f, "no holder could give it");
}

/* A pull-through cache's blob: after its holders (none, usually), the
 * leader, which fetches it from the upstream; on the leader, the upstream
 * itself. */
static void add_upstream(struct fetch *f, struct node_api *api)
{
    struct node_holder *h;
    bool upstream;
    char *name, *addr;

    if (!node_pullthrough_source(api, f->repo, &upstream, &name, &addr))
        return;
    f->holders =
        at_realloc(f->holders, (f->nholders + 1) * sizeof(*f->holders));
    h = &f->holders[f->nholders++];
    memset(h, 0, sizeof(*h));
    h->upstream = upstream;
    h->name = upstream ? at_strdup("upstream") : name;
    h->addr = upstream ? at_strdup("the pull-through upstream") : addr;
    if (!upstream)
        h->path = node_pullthrough_blob_path(f->dstr, f->repo);
}

static struct fetch *fetch_new(struct node_fetch_table *t,
                               const char *repo,
                               const struct at_digest *d,
                               uint64_t size)
{
    struct fetch *f = at_calloc(1, sizeof(*f));

    f->t = t;
    t->refs++;
    f->d = *d;
    at_digest_format(d, f->dstr);
    f->repo = at_strdup(repo);
    f->size = size;
    f->state = FETCH_DOWNLOADING;
    at_list_init(&f->waiters);
    f->refs = 2; /* active + timer */
    f->started_ms = at_now_ms();
    f->nholders = node_holders_list(t->api, &t->stats, d, &f->holders);
    add_upstream(f, t->api);
    uv_timer_init(t->api->loop, &f->timer);
    f->timer.data = f;
    uv_timer_start(&f->timer, on_tick, FETCH_TICK_MS, FETCH_TICK_MS);
    at_map_put(&t->fetches, d->bytes, AT_DIGEST_LEN, f);
    f->in_map = true;
    t->active++;
    return f;
}

static void on_recorded(void *data, int status, int result, uint64_t index)
{
    AT_UNUSED(data);
    AT_UNUSED(index);
    if (status != 0 || result != META_OK)
        LOG_WARN("recording a local blob as held here failed: %s",
                 status != 0 ? at_strerror(status) : meta_result_str(result));
}

/* Record a blob this node holds but the metadata does not list it for. */
static void record_local(struct node_api *api,
                         const char *repo,
                         const struct at_digest *d,
                         uint64_t size)
{
    char dstr[AT_DIGEST_STR_SIZE];
    struct meta_cmd c = {
        .kind = META_CMD_BLOB_STORED,
        .blob_stored = { .repo = repo, .digest = *d, .size = size },
    };
    int rv = meta_propose(api->meta, &c, on_recorded, NULL);
    if (rv != 0)
        LOG_WARN("blob '%s' is held here but cannot be recorded now: %s",
                 at_digest_format(d, dstr), at_strerror(rv));
    else
        LOG_INFO("blob '%s' is held here: recording it",
                 at_digest_format(d, dstr));
}

/* see fetch.h */
int node_fetch_start(struct node_api *api,
                     const char *repo,
                     const struct at_digest *d,
                     uint64_t size)
{
    struct node_fetch_table *t;
    struct fetch *f;
    uint64_t have;

    if (api->peer == NULL || api->stopping || api->meta == NULL)
        return AT_ESHUTDOWN;
    if (storage_blob_stat(api->store, d, &have) == 0) {
        /* local, but maybe never recorded (the BlobStored after a fetch
         * can fail, e.g. during a leader change): record it now, or asks
         * for copies would wait on it forever */
        if (!meta_blob_held_here(api->meta, d))
            record_local(api, repo, d, have);
        return 0;
    }
    t = node_fetch_table_get(api);
    if (at_map_get(&t->fetches, d->bytes, AT_DIGEST_LEN) != NULL)
        return 0;
    if (!storage_space_ok(api->store))
        return AT_ENOSPC;
    f = fetch_new(t, repo, d, size);
    f->background = true;
    t->background++;
    try_next(f);
    return 0;
}

/* see fetch.h */
void node_fetch_blob(struct node_api *api,
                     struct node_http_req *req,
                     const char *repo,
                     const struct at_digest *d,
                     uint64_t size)
{
    struct node_fetch_table *t;
    struct fetch_waiter *w;
    struct fetch *f;
    bool created = false;

    if (api->peer == NULL || api->stopping || api->meta == NULL) {
        node_http_resp_header(req, "Retry-After", "1");
        node_reply_error(req, 503, "UNAVAILABLE",
                         "blob is known but no copy is reachable now");
        return;
    }
    t = node_fetch_table_get(api);
    f = at_map_get(&t->fetches, d->bytes, AT_DIGEST_LEN);
    if (f == NULL) {
        if (!storage_space_ok(api->store)) {
            /* A copy would eat the reserve: the bytes pass through. */
            node_relay_blob(api, req, repo, d, size);
            return;
        }
        f = fetch_new(t, repo, d, size);
        created = true;
    } else {
        LOG_DEBUG("blob '%s': joining the fetch in progress", f->dstr);
    }
    w = at_calloc(1, sizeof(*w));
    w->f = f;
    w->req = req;
    w->stream = node_http_req_method(req) == NODE_HTTP_GET &&
                node_http_req_header(req, "range") == NULL;
    node_http_req_ref(req);
    at_list_push_front(&f->waiters, &w->link);
    node_http_req_set_data(req, w);
    node_http_req_on_abort(req, waiter_on_abort);
    if (created)
        try_next(f);
    else
        streams_update(f);
}
