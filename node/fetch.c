/* Lazy peer blob fetch: one transfer per digest from a holder into a storage
 * upload session, shared by every request waiting for that blob.
 *
 * Happy path: node_fetch_blob finds no fetch for the digest, lists the
 * holders (meta_blob_holders: same region first), creates an upload session
 * and streams GET /_atoll/blobs/<digest> from the first holder into it,
 * pausing the transfer while the session has too much queued
 * (storage_upload_busy -> on_drain -> node_peer_resume). At the end of the
 * transfer, storage_upload_commit verifies the sha256, fsyncs and renames;
 * every waiter is then served from the local file (Range honoured) and
 * meta_blob_stored records this node as a holder.
 *
 * Failure modes: a holder unreachable, answering anything but 200, sending
 * more or fewer bytes than the metadata size, or bytes with another digest
 * (AT_EDIGEST: WARN naming the holder as suspect) -> the session is canceled
 * and the next holder is tried; none left -> every waiter gets 503
 * UNAVAILABLE with Retry-After (never 404: the blob is known). Waiters still
 * waiting NODE_FETCH_WAIT_MS after the fetch started get a 503 while the
 * transfer goes on for the cache. A client that disconnects is removed from
 * the waiters. Shutdown: the peer client aborts the transfer (AT_ESHUTDOWN),
 * api->stopping stops further holders, node_fetch_table_close detaches the
 * table so late storage callbacks never touch the api.
 *
 * Every async step holds a reference on its fetch (transfer, drain, commit,
 * metadata write, wait timer, plus one while the fetch is active); the fetch
 * holds one on the table.
 *
 * NEEDSWORK: the blob is downloaded fully before any waiter is served.
 * Streaming to the waiters while downloading (tee into the cache file and the
 * clients, withholding the last chunk until the digest is verified, see
 * shared/notes/http.md section 4) comes later. */
#include "common/compat.h"

#define AT_LOG_COMP "fetch"

#include <unistd.h>

#include "common/common.h"
#include "node/fetch.h"
#include "node/peer.h"

struct node_fetch_table {
    struct node_api *api;  /* borrowed; NULL once closed */
    struct at_map fetches; /* raw digest -> struct fetch (borrowed) */
    unsigned refs;         /* the api's (until closed) + one per fetch */
};

enum fetch_state {
    FETCH_DOWNLOADING,
    FETCH_COMMITTING,
    FETCH_DONE,
};

struct fetch;

struct fetch_waiter {
    struct fetch *f;           /* borrowed */
    struct node_http_req *req; /* one reference */
    struct fetch_waiter *prev, *next;
};

struct fetch_holder {
    char *name; /* owned */
    char *addr; /* owned: peer host:port */
};

struct fetch {
    struct node_fetch_table *t; /* one reference */
    enum fetch_state state;
    struct at_digest d;
    char dstr[AT_DIGEST_STR_SIZE];
    char *repo; /* owned */
    uint64_t size;
    struct fetch_holder *holders; /* owned array */
    size_t nholders;
    size_t cur;               /* index of the holder being tried */
    struct storage_upload *u; /* one reference, NULL between attempts */
    struct node_peer_req *pr; /* borrowed while the transfer runs */
    uint64_t received;        /* bytes of this attempt */
    unsigned pauses;          /* transfer paused for the disk (for logs) */
    bool drain_pending, paused, in_map;
    struct fetch_waiter *waiters; /* owned list */
    uv_timer_t timer;             /* bounds the waiters' wait */
    unsigned refs;
};

static void table_unref(struct node_fetch_table *t)
{
    if (--t->refs > 0)
        return;
    at_map_release(&t->fetches);
    at_free(t);
}

/* see fetch.h */
void node_fetch_table_close(struct node_fetch_table *t)
{
    if (t == NULL)
        return;
    if (t->api != NULL)
        t->api->fetches = NULL;
    t->api = NULL;
    table_unref(t);
}

static void fetch_unref(struct fetch *f)
{
    struct node_fetch_table *t = f->t;

    if (--f->refs > 0)
        return;
    for (size_t i = 0; i < f->nholders; i++) {
        at_free(f->holders[i].name);
        at_free(f->holders[i].addr);
    }
    at_free(f->holders);
    at_free(f->repo);
    at_free(f);
    table_unref(t);
}

/* ---- waiters ---- */

static void waiter_free(struct fetch_waiter *w)
{
    struct fetch *f = w->f;

    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        f->waiters = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
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

static void fail_waiters(struct fetch *f, const char *why)
{
    while (f->waiters != NULL) {
        struct node_http_req *req = f->waiters->req;

        if (!node_http_req_done(req)) {
            node_http_resp_header(req, "Retry-After", "5");
            node_api_error(req, 503, "UNAVAILABLE",
                           "blob is known but no copy is reachable now: %s",
                           why);
        }
        waiter_free(f->waiters);
    }
}

static void serve_waiters(struct fetch *f)
{
    struct node_api *api = f->t->api;

    while (f->waiters != NULL) {
        struct node_http_req *req = f->waiters->req;
        uint64_t size = 0;
        int fd = -1;
        int rv = api != NULL ? storage_blob_open(api->store, &f->d, &fd, &size)
                             : AT_ESHUTDOWN;

        if (node_http_req_done(req)) {
            if (rv == 0)
                close(fd);
        } else if (rv == 0) {
            node_blob_send(api, req, &f->d, fd, size);
        } else {
            node_http_resp_header(req, "Retry-After", "1");
            node_api_error(req, 503, "UNAVAILABLE",
                           "blob fetched but not readable: %s",
                           at_strerror(rv));
        }
        waiter_free(f->waiters);
    }
}

/* ---- lifecycle ---- */

static void on_timer_closed(uv_handle_t *h)
{
    fetch_unref(h->data);
}

static void on_wait_timeout(uv_timer_t *timer)
{
    struct fetch *f = timer->data;

    if (f->waiters != NULL)
        LOG_WARN("blob '%s': still fetching after %d ms, answering 503",
                 f->dstr, NODE_FETCH_WAIT_MS);
    fail_waiters(f, "fetch from a peer still in progress");
}

static void map_remove(struct fetch *f)
{
    if (!f->in_map)
        return;
    at_map_del(&f->t->fetches, f->d.bytes, AT_DIGEST_LEN);
    f->in_map = false;
}

static void upload_drop(struct fetch *f)
{
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

static void on_drain(void *data, int status)
{
    struct fetch *f = data;

    AT_UNUSED(status); /* a write error comes back from the next write */
    f->drain_pending = false;
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
            rv = meta_blob_stored(api->meta, NULL, f->repo, &f->d, f->size,
                                  on_stored, f);
            if (rv != 0)
                on_stored(f, rv, 0, 0);
        }
        fetch_finish(f, "fetched");
    } else {
        if (status == AT_EDIGEST)
            LOG_WARN(
                "blob '%s' from '%s' does not match its digest: holder "
                "'%s' is suspect, trying the next one",
                f->dstr, f->holders[f->cur].addr, holder);
        else
            LOG_WARN("blob '%s' from '%s': storing failed: %s", f->dstr, holder,
                     at_strerror(status));
        upload_drop(f);
        f->state = FETCH_DOWNLOADING;
        f->cur++;
        try_next(f);
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
    struct fetch_holder *h = &f->holders[f->cur];
    int rv;

    AT_UNUSED(body);
    AT_UNUSED(len);
    f->pr = NULL;
    f->paused = false;
    if (status == 0 && http == 200 && f->received == f->size &&
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
    }
    upload_drop(f);
    f->cur++;
    try_next(f);
    fetch_unref(f);
}

/* Start a transfer from the next holder that accepts one, or finish. */
static void try_next(struct fetch *f)
{
    struct node_api *api = f->t->api;
    char *path;
    int rv;

    for (; f->cur < f->nholders; f->cur++) {
        struct fetch_holder *h = &f->holders[f->cur];

        if (api == NULL || api->stopping || api->peer == NULL) {
            fetch_finish(f, "node is stopping");
            return;
        }
        rv = storage_upload_create(api->store, f->repo, &f->u);
        if (rv != 0) {
            LOG_WARN("blob '%s': cannot store a fetched copy: %s", f->dstr,
                     at_strerror(rv));
            fetch_finish(f, "no local space for a copy");
            return;
        }
        f->received = 0;
        f->paused = false;
        f->refs++;
        path = at_asprintf("/_atoll/blobs/%s", f->dstr);
        rv = node_peer_stream(api->peer, h->addr, path, NODE_FETCH_TRANSFER_MS,
                              on_data, on_transfer_done, f, &f->pr);
        at_free(path);
        if (rv == 0) {
            api->peer_blob_fetches++;
            LOG_INFO("fetching blob '%s' (%" PRIu64 " bytes) from '%s' at %s",
                     f->dstr, f->size, h->name, h->addr);
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

struct holders_ctx {
    struct fetch *f;
    size_t cap;
};

static void holder_each(void *data, const struct meta_node *n)
{
    struct holders_ctx *hc = data;
    struct fetch *f = hc->f;

    if (n->name == NULL || n->peer_address == NULL ||
        n->peer_address[0] == '\0')
        return;
    if (f->nholders == hc->cap) {
        hc->cap = hc->cap == 0 ? 4 : hc->cap * 2;
        f->holders = at_realloc(f->holders, hc->cap * sizeof(*f->holders));
    }
    f->holders[f->nholders].name = at_strdup(n->name);
    f->holders[f->nholders].addr = at_strdup(n->peer_address);
    f->nholders++;
}

static struct fetch *fetch_new(struct node_fetch_table *t,
                               const char *repo,
                               const struct at_digest *d,
                               uint64_t size)
{
    struct fetch *f = at_calloc(1, sizeof(*f));
    struct holders_ctx hc = { f, 0 };

    f->t = t;
    t->refs++;
    f->d = *d;
    at_digest_format(d, f->dstr);
    f->repo = at_strdup(repo);
    f->size = size;
    f->state = FETCH_DOWNLOADING;
    f->refs = 2; /* active + timer */
    meta_blob_holders(t->api->meta, d, holder_each, &hc);
    uv_timer_init(t->api->loop, &f->timer);
    f->timer.data = f;
    uv_timer_start(&f->timer, on_wait_timeout, NODE_FETCH_WAIT_MS, 0);
    at_map_put(&t->fetches, d->bytes, AT_DIGEST_LEN, f);
    f->in_map = true;
    return f;
}

/* see fetch.h */
void node_fetch_blob(struct node_api *api,
                     struct node_http_req *req,
                     const char *repo,
                     const struct at_digest *d,
                     uint64_t size)
{
    struct node_fetch_table *t = api->fetches;
    struct fetch_waiter *w;
    struct fetch *f;
    bool created = false;

    if (api->peer == NULL || api->stopping || api->meta == NULL) {
        node_http_resp_header(req, "Retry-After", "1");
        node_api_error(req, 503, "UNAVAILABLE",
                       "blob is known but no copy is reachable now");
        return;
    }
    if (t == NULL) {
        t = at_calloc(1, sizeof(*t));
        at_map_init(&t->fetches);
        t->api = api;
        t->refs = 1;
        api->fetches = t;
    }
    f = at_map_get(&t->fetches, d->bytes, AT_DIGEST_LEN);
    if (f == NULL) {
        f = fetch_new(t, repo, d, size);
        created = true;
    } else {
        LOG_DEBUG("blob '%s': joining the fetch in progress", f->dstr);
    }
    w = at_calloc(1, sizeof(*w));
    w->f = f;
    w->req = req;
    node_http_req_ref(req);
    w->next = f->waiters;
    if (f->waiters != NULL)
        f->waiters->prev = w;
    f->waiters = w;
    node_http_req_set_data(req, w);
    node_http_req_on_abort(req, waiter_on_abort);
    if (created)
        try_next(f);
}
