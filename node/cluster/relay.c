/* Blob relay: a holder's bytes passed through to one client, none kept.
 *
 * Happy path: node_relay_blob lists the holders (holders.h order) and asks
 * the first for GET /_atoll/blobs/<digest> (node_peer_stream). At its first
 * byte the answer begins (node_reply_blob_begin: 200, or 206 for a single
 * Range) as a pushed body (node_http_resp_push_start). Every byte of the
 * blob is hashed; those inside the client's window go out as they arrive,
 * but the last NODE_RELAY_HOLDBACK of the window (all of it when smaller)
 * wait in memory until all size bytes hashed to the digest: no client ever
 * has a complete wrong body. Backpressure: once more than
 * NODE_RELAY_HIGH_WATER bytes wait for the client's socket the transfer
 * pauses (NODE_PEER_PAUSE) until they are written (on_drain). A relay holds
 * at most that, plus one piece and the held-back tail, in memory.
 *
 * Failure modes: a holder unreachable or answering anything but 200 before
 * the answer began -> the next holder; none left -> 503 UNAVAILABLE with
 * Retry-After. Once the answer began (the client has the head, maybe some
 * bytes), any failure closes the client's connection mid-body: the
 * transfer cut, more or fewer bytes than the metadata says, another digest
 * (the holder is then suspect, NODE_HOLDER_SUSPECT_MS). The client goes
 * away -> the transfer is aborted at its next piece. The node stops -> the
 * peer client aborts the transfer (AT_ESHUTDOWN) and the table's api is
 * gone. Before the first byte only the transfer's own bound applies
 * (NODE_FETCH_TRANSFER_MS); after it, the client's write timeout, which
 * each piece restarts.
 *
 * One relay per client: two clients of the same blob make two transfers
 * (a full node is a degraded state; sharing needs a copy somewhere).
 * References: one while the relay is active (until relay_finish), one while
 * its transfer runs; the relay holds one on the table. */
#include "common/compat.h"

#define AT_LOG_COMP "fetch"

#include "common/common.h"
#include "node/cluster/fetch_table.h"
#include "node/cluster/peer.h"
#include "node/cluster/relay.h"
#include "node/reply/reply.h"

struct relay {
    struct node_fetch_table *t; /* one reference */
    struct node_http_req *req;  /* one reference; NULL once let go */
    struct at_digest d;
    char dstr[AT_DIGEST_STR_SIZE];
    uint64_t size;
    struct node_holder *holders; /* owned */
    size_t nholders, cur;
    struct node_peer_req *pr;      /* borrowed while the transfer runs */
    struct node_holder_stat *busy; /* borrowed: counts this transfer */
    struct at_sha256 h;            /* this attempt's bytes */
    uint64_t received;             /* bytes of this attempt */
    uint64_t win_start, win_end;   /* the client's window [start, end) */
    uint64_t hold_from;            /* window bytes from here wait */
    char *tail;                    /* owned: held-back bytes */
    size_t tail_len;
    bool hashing, begun, drain_wait, paused, done;
    unsigned refs;
};

static void relay_unref(struct relay *r)
{
    struct node_fetch_table *t = r->t;

    if (--r->refs > 0)
        return;
    if (r->hashing)
        at_sha256_release(&r->h);
    node_holders_free(r->holders, r->nholders);
    at_free(r->tail);
    at_free(r);
    node_fetch_table_unref(t);
}

/* Let go of the client (its response goes on, or is over). */
static void client_release(struct relay *r)
{
    if (r->req == NULL)
        return;
    node_http_req_set_data(r->req, NULL);
    node_http_req_on_abort(r->req, NULL);
    node_http_req_unref(r->req);
    r->req = NULL;
}

/* The relay is over: answered 503 if nothing was sent, cut if the answer
 * began and is not complete, left to finish its writes otherwise. */
static void relay_finish(struct relay *r, bool complete, const char *why)
{
    if (r->done)
        return;
    r->done = true;
    r->t->relays--;
    if (r->req != NULL && !node_http_req_done(r->req)) {
        if (!r->begun) {
            node_http_resp_header(r->req, "Retry-After", "5");
            node_reply_error(r->req, 503, "UNAVAILABLE",
                             "blob is known but no copy is reachable now: %s",
                             why);
        } else if (!complete) {
            node_http_req_on_abort(r->req, NULL);
            node_http_resp_abort(r->req); /* a short body, never a wrong one */
        }
    }
    client_release(r);
    relay_unref(r);
}

static void on_client_abort(struct node_http_req *req)
{
    struct relay *r = node_http_req_data(req);

    if (r == NULL)
        return;
    LOG_DEBUG("blob '%s': the relay's client went away", r->dstr);
    client_release(r);
    if (r->paused && r->pr != NULL) {
        r->paused = false;
        node_peer_resume(r->pr); /* on_data aborts the transfer */
    }
}

static void on_client_drain(struct node_http_req *req)
{
    struct relay *r = node_http_req_data(req);

    if (r == NULL)
        return;
    r->drain_wait = false;
    if (r->paused && r->pr != NULL) {
        r->paused = false;
        node_peer_resume(r->pr); /* on_data may run in here */
    }
}

/* The first byte came: answer with the head, the window and the tail's
 * room. False when the client is gone or the range is unsatisfiable. */
static bool answer_begin(struct relay *r)
{
    struct node_api *api = r->t->api;
    uint64_t start, len;

    if (api == NULL || r->req == NULL || node_http_req_done(r->req))
        return false;
    r->begun = true;
    if (!node_reply_blob_begin(api, r->req, &r->d, r->size, &start, &len))
        return false; /* 416: checked before the transfer, cannot happen */
    r->win_start = start;
    r->win_end = start + len;
    r->hold_from = r->win_end - AT_MIN(len, (uint64_t)NODE_RELAY_HOLDBACK);
    r->tail = at_malloc((size_t)(r->win_end - r->hold_from) + 1);
    node_http_resp_push_start(r->req, len, on_client_drain);
    return true;
}

/* Pass on the part of [off, off + n) of the blob inside the window:
 * pushed before hold_from, kept after it. */
static int pass_on(struct relay *r, uint64_t off, const char *p, size_t n)
{
    uint64_t a = AT_MAX(off, r->win_start);
    uint64_t b = AT_MIN(off + n, r->hold_from);
    size_t unwritten = 0;
    int rv;

    if (a < b) {
        rv = node_http_resp_push(r->req, p + (a - off), (size_t)(b - a),
                                 &unwritten);
        if (rv != 0)
            return rv;
        r->drain_wait = unwritten > NODE_RELAY_HIGH_WATER;
    }
    a = AT_MAX(off, r->hold_from);
    b = AT_MIN(off + n, r->win_end);
    if (a < b) {
        memcpy(r->tail + r->tail_len, p + (a - off), (size_t)(b - a));
        r->tail_len += (size_t)(b - a);
    }
    return 0;
}

static int on_data(void *data, const char *p, size_t n)
{
    struct relay *r = data;
    uint64_t off = r->received;
    int rv;

    if (r->t->api == NULL || r->req == NULL || r->done)
        return AT_ESHUTDOWN;
    if (n > r->size - r->received)
        return AT_ETOOBIG; /* more than the metadata says: bad holder */
    if (r->drain_wait) {
        r->paused = true;
        return NODE_PEER_PAUSE;
    }
    if (!r->begun && !answer_begin(r))
        return AT_ESHUTDOWN;
    at_sha256_update(&r->h, p, n);
    r->received += n;
    rv = pass_on(r, off, p, n);
    return rv == AT_ESHUTDOWN ? rv : rv != 0 ? AT_EIO : 0;
}

static void try_next(struct relay *r);

/* All size bytes came: the tail goes out if they are the blob. */
static void transfer_complete(struct relay *r, const char *holder)
{
    struct at_digest got;
    size_t unwritten;

    at_sha256_final(&r->h, &got);
    r->hashing = false;
    if (!at_digest_equal(&got, &r->d)) {
        LOG_WARN(
            "blob '%s' relayed from '%s' does not match its digest: "
            "holder is suspect, the client's body is cut",
            r->dstr, holder);
        node_holder_mark_suspect(&r->t->stats, holder);
        relay_finish(r, false, "bad bytes");
        return;
    }
    if (!r->begun && !answer_begin(r)) { /* an empty blob */
        relay_finish(r, false, "client gone");
        return;
    }
    if (r->tail_len > 0 && r->req != NULL &&
        node_http_resp_push(r->req, r->tail, r->tail_len, &unwritten) != 0) {
        relay_finish(r, false, "client gone");
        return;
    }
    LOG_INFO("blob '%s' (%" PRIu64 " bytes) relayed from '%s', no copy kept",
             r->dstr, r->size, holder);
    relay_finish(r, true, "relayed");
}

static void on_transfer_done(void *data,
                             int status,
                             int http,
                             const char *body,
                             size_t len)
{
    struct relay *r = data;
    struct node_holder *h = &r->holders[r->cur];

    AT_UNUSED(body);
    AT_UNUSED(len);
    r->pr = NULL;
    r->paused = false;
    node_holder_transfer_end(&r->busy);
    if (status == 0 && http == 200 && r->received == r->size) {
        transfer_complete(r, h->name);
    } else if (r->done || r->req == NULL || r->t->api == NULL) {
        relay_finish(r, false, "client gone");
    } else {
        if (status == AT_ETOOBIG || (status == 0 && http == 200)) {
            LOG_WARN("blob '%s' relayed from '%s': %s the %" PRIu64
                     " bytes recorded: holder is suspect",
                     r->dstr, h->name,
                     status == AT_ETOOBIG ? "more than" : "fewer than",
                     r->size);
            node_holder_mark_suspect(&r->t->stats, h->name);
        } else {
            LOG_WARN("blob '%s' relayed from '%s' at %s: %s", r->dstr, h->name,
                     h->addr, status != 0 ? at_strerror(status) : "not 200");
        }
        if (r->begun) {
            relay_finish(r, false, "transfer failed");
        } else {
            r->cur++;
            try_next(r);
        }
    }
    relay_unref(r);
}

/* Ask the next holder that takes the request, or finish with a 503. */
static void try_next(struct relay *r)
{
    struct node_api *api = r->t->api;
    int rv;

    for (; r->cur < r->nholders; r->cur++) {
        struct node_holder *h = &r->holders[r->cur];

        if (api == NULL || api->stopping || api->peer == NULL ||
            r->req == NULL) {
            relay_finish(r, false, "node is stopping");
            return;
        }
        if (r->hashing)
            at_sha256_release(&r->h);
        at_sha256_init(&r->h);
        r->hashing = true;
        r->received = 0;
        r->refs++;
        rv = node_holder_stream(api, &r->t->stats, h, r->dstr,
                                NODE_FETCH_TRANSFER_MS, on_data,
                                on_transfer_done, r, &r->pr, &r->busy);
        if (rv == 0) {
            api->peer_blob_relays++;
            LOG_INFO("relaying blob '%s' (%" PRIu64
                     " bytes) from '%s' at "
                     "%s: below the free-space reserve, no copy is kept",
                     r->dstr, r->size, h->name, h->addr);
            return;
        }
        r->refs--;
        r->pr = NULL;
        LOG_WARN("blob '%s': cannot ask '%s' at %s: %s", r->dstr, h->name,
                 h->addr, at_strerror(rv));
    }
    LOG_WARN("blob '%s': no holder could give it for a relay (%zu tried)",
             r->dstr, r->nholders);
    relay_finish(r, false, "no holder could give it");
}

/* see relay.h */
void node_relay_blob(struct node_api *api,
                     struct node_http_req *req,
                     const char *repo,
                     const struct at_digest *d,
                     uint64_t size)
{
    const char *range = node_http_req_header(req, "range");
    struct relay *r;
    uint64_t start, end;

    AT_UNUSED(repo);
    if (range != NULL &&
        node_http_parse_range(range, size, &start, &end) == AT_ERANGE) {
        node_reply_blob_begin(api, req, d, size, &start, &end); /* 416 */
        return;
    }
    r = at_calloc(1, sizeof(*r));
    r->t = node_fetch_table_get(api);
    r->t->refs++;
    r->t->relays++;
    r->d = *d;
    at_digest_format(d, r->dstr);
    r->size = size;
    r->refs = 1;
    r->req = req;
    node_http_req_ref(req);
    node_http_req_set_data(req, r);
    node_http_req_on_abort(req, on_client_abort);
    r->nholders = node_holders_list(api, &r->t->stats, d, &r->holders);
    try_next(r);
}
