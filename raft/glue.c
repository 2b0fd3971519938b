/* The struct raft_fsm callbacks: libraft's apply/snapshot/restore on a
 * meta_fsm, with libraft 0.15's buffer ownership rules. */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include <uv.h>

#include "raft/internal.h"

static int glue_apply(struct raft_fsm *iface,
                      const struct raft_buffer *buf,
                      void **result)
{
    struct meta_fsm_glue *g = iface->data;
    /* 0.15: inside apply, raft_last_applied() is still index - 1 */
    uint64_t index = raft_last_applied(g->raft) + 1;
    int res = 0;
    meta_fsm_apply(g->fsm, index, buf->base, buf->len, &res);
    *result = (void *)(intptr_t)res;
    if (g->applied != NULL)
        g->applied(g->data, g->fsm);
    return 0;
}

/* Version 1 FSM: raft frees each base and the array after the write. */
static int glue_snapshot(struct raft_fsm *iface,
                         struct raft_buffer *bufs[],
                         unsigned *n_bufs)
{
    struct meta_fsm_glue *g = iface->data;
    char errmsg[AT_ERRMSG_SIZE] = "";
    void *base;
    size_t len;
    uint64_t t0 = uv_hrtime();
    int rv = meta_fsm_snapshot(g->fsm, raft_malloc, &base, &len, errmsg);
    if (rv != 0) {
        LOG_ERROR("snapshot: %s", errmsg);
        return rv == AT_ENOMEM ? RAFT_NOMEM : RAFT_TOOBIG;
    }
    /* NEEDSWORK: encoded synchronously on the loop thread (libraft 0.15
     * version-1 FSM); this line is how the cost is measured. */
    LOG_INFO("snapshot: %zu bytes encoded in %.1f ms on the loop thread", len,
             (double)(uv_hrtime() - t0) / 1e6);
    *bufs = raft_malloc(sizeof(**bufs));
    if (*bufs == NULL) {
        raft_free(base);
        return RAFT_NOMEM;
    }
    (*bufs)[0].base = base;
    (*bufs)[0].len = len;
    *n_bufs = 1;
    return 0;
}

/* On success the FSM owns buf->base; on failure raft frees it. */
static int glue_restore(struct raft_fsm *iface, struct raft_buffer *buf)
{
    struct meta_fsm_glue *g = iface->data;
    char errmsg[AT_ERRMSG_SIZE] = "";
    int rv = meta_fsm_restore(g->fsm, buf->base, buf->len, errmsg);
    if (rv != 0) {
        LOG_ERROR("restore snapshot: %s", errmsg);
        return RAFT_CORRUPT;
    }
    raft_free(buf->base);
    if (g->applied != NULL)
        g->applied(g->data, g->fsm);
    return 0;
}

/* see internal.h */
void meta__glue_init(struct meta_fsm_glue *g, struct meta_fsm *fsm)
{
    memset(g, 0, sizeof(*g));
    g->fsm = fsm;
    g->iface.version = 1;
    g->iface.data = g;
    g->iface.apply = glue_apply;
    g->iface.snapshot = glue_snapshot;
    g->iface.restore = glue_restore;
}
