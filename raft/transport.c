/* atoll's struct raft_uv_transport: a stub for a one-voter cluster.
 *
 * init records the id and address; listen succeeds without a socket;
 * connect fails on the next loop iteration with RAFT_NOCONNECTION (raft
 * retries later); close cancels pending connects (RAFT_CANCELED) and calls
 * its callback once every handle is closed. No handle exists before the
 * first connect or close, so a failed raft_init leaves nothing to close. */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include "raft/internal.h"

struct meta_pending_connect {
    uv_timer_t timer;
    struct meta_transport *tr;   /* borrowed */
    struct raft_uv_connect *req; /* borrowed; NULL once answered */
    raft_uv_connect_cb cb;
    struct meta_pending_connect *next, *prev;
};

static void maybe_closed(struct meta_transport *tr)
{
    if (tr->closing && tr->closing_handles == 0 && tr->close_cb != NULL) {
        raft_uv_transport_close_cb cb = tr->close_cb;
        tr->close_cb = NULL;
        cb(&tr->t);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    struct meta_transport *tr = h->data;
    if (h != (uv_handle_t *)&tr->close_timer) {
        struct meta_pending_connect *pc =
            AT_CONTAINER_OF(h, struct meta_pending_connect, timer);
        at_free(pc);
    }
    tr->closing_handles--;
    maybe_closed(tr);
}

static void pending_finish(struct meta_pending_connect *pc, int status)
{
    struct meta_transport *tr = pc->tr;
    if (pc->prev != NULL)
        pc->prev->next = pc->next;
    else
        tr->pending = pc->next;
    if (pc->next != NULL)
        pc->next->prev = pc->prev;
    uv_timer_stop(&pc->timer);
    struct raft_uv_connect *req = pc->req;
    pc->req = NULL;
    pc->timer.data = tr;
    tr->closing_handles++;
    uv_close((uv_handle_t *)&pc->timer, on_handle_closed);
    pc->cb(req, NULL, status);
}

static void on_connect_timer(uv_timer_t *t)
{
    struct meta_pending_connect *pc =
        AT_CONTAINER_OF(t, struct meta_pending_connect, timer);
    pending_finish(pc, RAFT_NOCONNECTION);
}

static int tr_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    struct meta_transport *tr = t->impl;
    tr->id = id;
    snprintf(tr->address, sizeof(tr->address), "%s", address);
    return 0;
}

static int tr_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    AT_UNUSED(t);
    AT_UNUSED(cb);
    return 0;
}

static int tr_connect(struct raft_uv_transport *t,
                      struct raft_uv_connect *req,
                      raft_id id,
                      const char *address,
                      raft_uv_connect_cb cb)
{
    struct meta_transport *tr = t->impl;
    if (tr->closing)
        return RAFT_CANCELED;
    LOG_DEBUG("connect to %llu '%s': no transport yet", (unsigned long long)id,
              address);
    struct meta_pending_connect *pc = at_calloc(1, sizeof(*pc));
    pc->tr = tr;
    pc->req = req;
    pc->cb = cb;
    uv_timer_init(tr->loop, &pc->timer);
    uv_timer_start(&pc->timer, on_connect_timer, 0, 0);
    pc->next = tr->pending;
    if (pc->next != NULL)
        pc->next->prev = pc;
    tr->pending = pc;
    return 0;
}

static void tr_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    struct meta_transport *tr = t->impl;
    AT_ASSERT(!tr->closing);
    tr->closing = true;
    tr->close_cb = cb;
    while (tr->pending != NULL)
        pending_finish(tr->pending, RAFT_CANCELED);
    /* one handle of our own, so the callback always runs asynchronously */
    uv_timer_init(tr->loop, &tr->close_timer);
    tr->close_timer.data = tr;
    tr->closing_handles++;
    uv_close((uv_handle_t *)&tr->close_timer, on_handle_closed);
}

/* see internal.h */
void meta__transport_init(struct meta_transport *tr, uv_loop_t *loop)
{
    memset(tr, 0, sizeof(*tr));
    tr->loop = loop;
    tr->t.impl = tr;
    tr->t.init = tr_init;
    tr->t.listen = tr_listen;
    tr->t.connect = tr_connect;
    tr->t.close = tr_close;
}
