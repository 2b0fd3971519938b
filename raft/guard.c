/* The commit guard: see guard.h for the hole it closes and why holding
 * AppendEntries results back is enough.
 *
 * Happy path: raft_init(r, &g->io) runs inner's init through us; from
 * start on, results reach raft at once, except in the short window after
 * an election, which our barrier closes within one disk write.
 *
 * Failure modes:
 * - the barrier cannot be appended (a leadership transfer in progress,
 *   no memory): tried again at the next receive or tick, results stay
 *   held meanwhile (the old-term entries wait, nothing is lost);
 * - the raft stops leading while results are held: they are delivered
 *   at the next receive, tick or append completion and raft ignores them
 *   by their term (a stale result, as after any step-down);
 * - more than META_GUARD_HELD_MAX results held: the newest is dropped, as
 *   a lost message would be;
 * - close: held results are freed, never delivered; raft's close
 *   callback runs once, though 0.15's uv io may call ours again later
 *   (F7: see g_close_cb); appends the inner io cancels are reported done
 *   (see g_append_cb). */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include "raft/guard.h"

#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "raft/snapfile.h"
#include "raft/snapsend.h"

#define ADDRESS_MAX 255

struct meta_guard_held {
    struct raft_message msg;
    char address[ADDRESS_MAX + 1];
};

/* An append in flight: ours to the inner io, raft's kept aside. */
struct guard_append {
    struct raft_io_append req;
    struct raft_io_append *orig;
    raft_io_append_cb cb;
    struct meta_guard *g;
    raft_term term; /* highest term among its entries */
};

/* The inner io calls back with itself; its data is the raft (libraft
 * sets it through us at raft_init), whose io is our outer one. */
static struct meta_guard *guard_of(struct raft_io *inner)
{
    struct raft *r = inner->data;
    return AT_CONTAINER_OF(r->io, struct meta_guard, io);
}

static struct raft *raft_of(const struct meta_guard *g)
{
    return g->io.data;
}

static int pass_rv(struct meta_guard *g, int rv)
{
    if (rv != 0)
        memcpy(g->io.errmsg, g->inner->errmsg, sizeof(g->io.errmsg));
    return rv;
}

bool meta__guard_holding(const struct meta_guard *g)
{
    const struct raft *r = raft_of(g);
    return r != NULL && raft_state((struct raft *)r) == RAFT_LEADER &&
           g->stored_term < r->current_term;
}

static void on_barrier(struct raft_barrier *req, int status)
{
    AT_UNUSED(status); /* a failed barrier is retried: see maybe_barrier */
    free(req);
}

/* A new leader appends an entry of its term at once (guard.h). */
static void maybe_barrier(struct meta_guard *g)
{
    struct raft *r = raft_of(g);
    if (!meta__guard_holding(g) || g->barrier_term == r->current_term ||
        !meta__raft_leading(r))
        return;
    struct raft_barrier *req = calloc(1, sizeof(*req));
    if (req == NULL)
        return;
    if (raft_barrier(r, req, on_barrier) != 0) {
        free(req);
        return;
    }
    g->barrier_term = r->current_term;
    g->barriers_total++;
}

/* Deliver what is held, in arrival order, once nothing needs holding. */
static void release(struct meta_guard *g)
{
    if (g->n_held == 0 || meta__guard_holding(g))
        return;
    unsigned n = g->n_held;
    g->n_held = 0;
    for (unsigned i = 0; i < n; i++) {
        struct meta_guard_held *h = &g->held[i];
        h->msg.server_address = h->address;
        g->recv(&g->io, &h->msg);
    }
    /* a result cannot make its receiver lead a new term: nothing was
     * held again while delivering */
    AT_ASSERT(g->n_held == 0);
}

static void hold(struct meta_guard *g, const struct raft_message *msg)
{
    if (g->held == NULL) {
        g->held = calloc(META_GUARD_HELD_MAX, sizeof(*g->held));
        if (g->held == NULL) {
            g->dropped_total++;
            return;
        }
    }
    if (g->n_held == META_GUARD_HELD_MAX) {
        g->dropped_total++;
        return;
    }
    struct meta_guard_held *h = &g->held[g->n_held++];
    h->msg = *msg;
    snprintf(h->address, sizeof(h->address), "%s",
             msg->server_address != NULL ? msg->server_address : "");
    h->msg.server_address = NULL;
    g->held_total++;
}

/* ---- the callbacks the inner io calls ---- */

/* msg's data is the descriptor of a snapshot file (snapfile.h): *d. */
static bool is_descriptor(const struct meta_guard *g,
                          const struct raft_message *msg,
                          struct meta_snapfile *d)
{
    const struct raft_buffer *b = &msg->install_snapshot.data;
    return msg->type == RAFT_IO_INSTALL_SNAPSHOT && g->snap_dir != NULL &&
           meta__snapfile_desc_decode(b->base, b->len, d);
}

static void g_recv(struct raft_io *inner, struct raft_message *msg)
{
    struct meta_guard *g = guard_of(inner);
    struct meta_snapfile d;
    if (is_descriptor(g, msg, &d)) {
        /* raft sees it once the file is here (snaprecv.h) */
        meta__snaprecv(&g->fetching, &g->recv_env, msg, &d);
        return;
    }
    if (msg->type == RAFT_IO_APPEND_ENTRIES_RESULT && meta__guard_holding(g)) {
        hold(g, msg);
        maybe_barrier(g);
        return;
    }
    release(g);
    g->recv(&g->io, msg);
    maybe_barrier(g); /* the vote that made us leader arrives here */
}

/* A fetched snapshot's InstallSnapshot, to raft as if it had just come
 * (snaprecv.h). */
static void g_deliver(void *data, struct raft_message *msg)
{
    struct meta_guard *g = data;
    g->recv(&g->io, msg);
}

static void g_tick(struct raft_io *inner)
{
    struct meta_guard *g = guard_of(inner);
    g->tick(&g->io);
    maybe_barrier(g); /* an election won without a vote (one voter) */
    release(g);
}

/* At close, libraft 0.15's uv io cancels every append still pending, one
 * callback each. Given a failure, the leader's append callback releases
 * its entries and then truncates the log from its first index: with two
 * pending, the second releases entries the first one's truncate already
 * dropped, and walks freed memory (notes: raft-0.15 pitfall 2; fixed
 * upstream in 0.17.1; seen as a graceful stop's segfault,
 * jepsen-style/FINDINGS.md). Once close has begun, a cancelled append is
 * reported as done: raft is unavailable by then, so its callback only
 * releases the entries, and nothing of the log outlives the close. */
static void g_append_cb(struct raft_io_append *req, int status)
{
    struct guard_append *a = req->data;
    struct meta_guard *g = a->g;
    struct raft_io_append *orig = a->orig;
    raft_io_append_cb cb = a->cb;
    raft_term term = a->term;
    free(a);
    if (g->closing && status == RAFT_CANCELED) {
        LOG_DEBUG("raft io: an append cancelled at close, released");
        cb(orig, 0);
        return;
    }
    if (status == 0 && term > g->stored_term)
        g->stored_term = term;
    cb(orig, status);
    release(g);
}

/* libraft 0.15's uv io may call its close callback more than once: its
 * uvMaybeFireCloseCb() does not wait for an alive segment's writer with
 * a write still in the pool, whose close calls it again, loop turns later
 * (F7). raft's own close callback runs once; later calls are counted. */
static void g_close_cb(struct raft_io *inner)
{
    struct meta_guard *g = guard_of(inner);
    g->close_calls++;
    if (g->close_calls > 1) {
        LOG_DEBUG("raft io: close callback again (%u), ignored (F7)",
                  g->close_calls);
        return;
    }
    free(g->held);
    g->held = NULL;
    g->n_held = 0;
    if (g->close_cb != NULL)
        g->close_cb(&g->io);
}

/* ---- the methods raft calls, forwarded ---- */

static int g_init(struct raft_io *io, raft_id id, const char *address)
{
    struct meta_guard *g = AT_CONTAINER_OF(io, struct meta_guard, io);
    g->inner->data = io->data; /* the raft: see guard_of */
    return pass_rv(g, g->inner->init(g->inner, id, address));
}

static void g_close(struct raft_io *io, raft_io_close_cb cb)
{
    struct meta_guard *g = AT_CONTAINER_OF(io, struct meta_guard, io);
    g->close_cb = cb;
    g->closing = true;
    meta__snaprecv_detach(&g->fetching);
    g->inner->close(g->inner, g_close_cb);
}

static int g_load(struct raft_io *io,
                  raft_term *term,
                  raft_id *voted_for,
                  struct raft_snapshot **snapshot,
                  raft_index *start_index,
                  struct raft_entry *entries[],
                  size_t *n_entries)
{
    struct meta_guard *g = AT_CONTAINER_OF(io, struct meta_guard, io);
    return pass_rv(g, g->inner->load(g->inner, term, voted_for, snapshot,
                                     start_index, entries, n_entries));
}

static int g_start(struct raft_io *io,
                   unsigned msecs,
                   raft_io_tick_cb tick,
                   raft_io_recv_cb recv)
{
    struct meta_guard *g = AT_CONTAINER_OF(io, struct meta_guard, io);
    g->tick = tick;
    g->recv = recv;
    return pass_rv(g, g->inner->start(g->inner, msecs, g_tick, g_recv));
}

static int g_bootstrap(struct raft_io *io,
                       const struct raft_configuration *conf)
{
    struct meta_guard *g = AT_CONTAINER_OF(io, struct meta_guard, io);
    return pass_rv(g, g->inner->bootstrap(g->inner, conf));
}

static int g_recover(struct raft_io *io, const struct raft_configuration *conf)
{
    struct meta_guard *g = AT_CONTAINER_OF(io, struct meta_guard, io);
    return pass_rv(g, g->inner->recover(g->inner, conf));
}

static int g_set_term(struct raft_io *io, raft_term term)
{
    struct meta_guard *g = AT_CONTAINER_OF(io, struct meta_guard, io);
    return pass_rv(g, g->inner->set_term(g->inner, term));
}

static int g_set_vote(struct raft_io *io, raft_id server_id)
{
    struct meta_guard *g = AT_CONTAINER_OF(io, struct meta_guard, io);
    return pass_rv(g, g->inner->set_vote(g->inner, server_id));
}

static int g_send(struct raft_io *io,
                  struct raft_io_send *req,
                  const struct raft_message *message,
                  raft_io_send_cb cb)
{
    struct meta_guard *g = AT_CONTAINER_OF(io, struct meta_guard, io);
    struct meta_snapfile d;
    if (is_descriptor(g, message, &d)) {
        if (g->peer_fetches == NULL ||
            !g->peer_fetches(g->peer_fetches_data, message->server_id))
            return pass_rv(g, meta__snapsend_expand(g->inner, g->snap_dir, req,
                                                    message, cb));
        LOG_INFO(
            "sending snapshot %llu to node %llu as its descriptor: it "
            "fetches the file (%llu bytes) from this node",
            (unsigned long long)d.index, (unsigned long long)message->server_id,
            (unsigned long long)d.len);
    }
    return pass_rv(g, g->inner->send(g->inner, req, message, cb));
}

static int g_append(struct raft_io *io,
                    struct raft_io_append *req,
                    const struct raft_entry entries[],
                    unsigned n,
                    raft_io_append_cb cb)
{
    struct meta_guard *g = AT_CONTAINER_OF(io, struct meta_guard, io);
    struct guard_append *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        snprintf(io->errmsg, sizeof(io->errmsg), "out of memory");
        return RAFT_NOMEM;
    }
    a->req.data = a;
    a->orig = req;
    a->cb = cb;
    a->g = g;
    for (unsigned i = 0; i < n; i++)
        if (entries[i].term > a->term)
            a->term = entries[i].term;
    req->cb = cb;
    int rv = g->inner->append(g->inner, &a->req, entries, n, g_append_cb);
    if (rv != 0)
        free(a);
    return pass_rv(g, rv);
}

static int g_truncate(struct raft_io *io, raft_index index)
{
    struct meta_guard *g = AT_CONTAINER_OF(io, struct meta_guard, io);
    return pass_rv(g, g->inner->truncate(g->inner, index));
}

static int g_snapshot_put(struct raft_io *io,
                          unsigned trailing,
                          struct raft_io_snapshot_put *req,
                          const struct raft_snapshot *snapshot,
                          raft_io_snapshot_put_cb cb)
{
    struct meta_guard *g = AT_CONTAINER_OF(io, struct meta_guard, io);
    /* trailing 0: a snapshot the leader sent (an install, not one of ours);
     * said here, where it starts, as the restore's line says where it ends */
    struct meta_snapfile d;
    if (trailing == 0 && snapshot->n_bufs == 1 &&
        meta__snapfile_desc_decode(snapshot->bufs[0].base,
                                   snapshot->bufs[0].len, &d)) {
        LOG_INFO("installing snapshot %llu from its file (%llu bytes)",
                 (unsigned long long)snapshot->index,
                 (unsigned long long)d.len);
    } else if (trailing == 0) {
        size_t len = 0;
        for (unsigned i = 0; i < snapshot->n_bufs; i++)
            len += snapshot->bufs[i].len;
        LOG_INFO(
            "installing a snapshot of %zu bytes at index %llu sent by "
            "the leader",
            len, (unsigned long long)snapshot->index);
    }
    return pass_rv(
        g, g->inner->snapshot_put(g->inner, trailing, req, snapshot, cb));
}

static int g_snapshot_get(struct raft_io *io,
                          struct raft_io_snapshot_get *req,
                          raft_io_snapshot_get_cb cb)
{
    struct meta_guard *g = AT_CONTAINER_OF(io, struct meta_guard, io);
    /* a descriptor of ours is expanded, if at all, when it is sent
     * (g_send) */
    return pass_rv(g, g->inner->snapshot_get(g->inner, req, cb));
}

static raft_time g_time(struct raft_io *io)
{
    struct meta_guard *g = AT_CONTAINER_OF(io, struct meta_guard, io);
    return g->inner->time(g->inner);
}

static int g_random(struct raft_io *io, int min, int max)
{
    struct meta_guard *g = AT_CONTAINER_OF(io, struct meta_guard, io);
    return g->inner->random(g->inner, min, max);
}

static int g_async_work(struct raft_io *io,
                        struct raft_io_async_work *req,
                        raft_io_async_work_cb cb)
{
    struct meta_guard *g = AT_CONTAINER_OF(io, struct meta_guard, io);
    return pass_rv(g, g->inner->async_work(g->inner, req, cb));
}

void meta__guard_init(struct meta_guard *g, struct raft_io *inner)
{
    memset(g, 0, sizeof(*g));
    g->inner = inner;
    g->io.version = inner->version;
    g->io.impl = inner->impl; /* raft/fixture.h reads raft->io->impl */
    g->io.init = g_init;
    g->io.close = g_close;
    g->io.load = g_load;
    g->io.start = g_start;
    g->io.bootstrap = g_bootstrap;
    g->io.recover = g_recover;
    g->io.set_term = g_set_term;
    g->io.set_vote = g_set_vote;
    g->io.send = g_send;
    g->io.append = g_append;
    g->io.truncate = g_truncate;
    g->io.snapshot_put = g_snapshot_put;
    g->io.snapshot_get = g_snapshot_get;
    g->io.time = g_time;
    g->io.random = g_random;
    g->io.async_work = inner->async_work != NULL ? g_async_work : NULL;
    g->recv_env.inner = inner;
    g->recv_env.deliver = g_deliver;
    g->recv_env.deliver_data = g;
}

void meta__guard_attach(struct meta_guard *g, struct raft *r)
{
    meta__guard_init(g, r->io);
    g->io.data = r;
    g->inner->data = r;
    r->io = &g->io;
}
