/* The leader's min_copies scan: see repl_scan.h.
 *
 * Happy path: the timer fires; this node leads and min_copies is above
 * one, so a walk starts (a zeroed cursor, an empty set of digests seen)
 * and each turn visits NODE_REPL_SCAN_BUDGET blob links: a blob not seen
 * yet with fewer live holders than wanted is counted and, when it has a
 * holder to copy from, asked for; the timer comes back 1 ms later for the
 * next piece. At the walk's end the count is published and the timer
 * waits NODE_REPL_SCAN_MS. The count goes to api->under_replicated.
 *
 * Failure modes: leadership lost or min_copies lowered mid-walk: the walk
 * is dropped and the count is 0; writes between pieces: the walk may miss
 * or repeat a blob (meta.h), the next walk sees it. */
#include "common/compat.h"

#define AT_LOG_COMP "replicate"

#include "common/common.h"
#include "node/cluster/repl_scan.h"
#include "node/cluster/replicate.h"
#include "node/reply/reply.h"

struct node_repl_scan {
    struct node_api *api; /* borrowed */
    uv_timer_t timer;
    bool walking;
    struct meta_blob_walk cursor;
    struct at_map seen; /* raw digests met in this walk */
    unsigned want;
    uint64_t under, asked; /* this walk's */
};

static void scan_each(void *data,
                      const char *repo,
                      const struct at_digest *d,
                      uint64_t size)
{
    struct node_repl_scan *s = data;
    AT_UNUSED(size);
    if (at_map_get(&s->seen, d->bytes, AT_DIGEST_LEN) != NULL)
        return;
    at_map_put(&s->seen, d->bytes, AT_DIGEST_LEN, (void *)1);
    unsigned have = node_copies_count(s->api, d);
    if (have >= s->want)
        return;
    s->under++;
    if (have > 0) {
        node_replicate_blob(s->api, repo, d);
        s->asked++;
    }
}

static void walk_end(struct node_repl_scan *s)
{
    if (s->walking)
        at_map_release(&s->seen);
    s->walking = false;
    s->cursor = (struct meta_blob_walk){ 0, 0 };
}

/* Leading, with copies to keep: the number wanted, else 0. */
static unsigned wanted(struct node_repl_scan *s)
{
    struct node_api *api = s->api;
    struct meta_node leader;
    struct meta_status st;
    if (api->meta == NULL || api->peer == NULL || api->stopping)
        return 0;
    meta_status_get(api->meta, &st);
    if (!meta_leader(api->meta, &leader) || leader.id != st.id)
        return 0;
    unsigned want = node_copies_min(api);
    return want > 1 ? want : 0;
}

static void on_tick(uv_timer_t *t)
{
    struct node_repl_scan *s = t->data;
    unsigned want = wanted(s);
    if (want == 0 || (s->walking && want != s->want)) {
        walk_end(s);
        s->api->under_replicated = 0;
        return;
    }
    if (!s->walking) {
        s->walking = true;
        s->want = want;
        s->under = s->asked = 0;
        at_map_init(&s->seen);
    }
    if (!meta_referenced_blobs_step(s->api->meta, &s->cursor,
                                    NODE_REPL_SCAN_BUDGET, scan_each, s)) {
        uv_timer_start(t, on_tick, 1, NODE_REPL_SCAN_MS); /* next piece */
        return;
    }
    if (s->under > 0 || s->api->under_replicated > 0)
        LOG_INFO("scan: %" PRIu64 " blobs short of %u copies, %" PRIu64
                 " asked for a copy",
                 s->under, s->want, s->asked);
    s->api->under_replicated = s->under;
    walk_end(s);
    uv_timer_start(t, on_tick, NODE_REPL_SCAN_MS, NODE_REPL_SCAN_MS);
}

/* see repl_scan.h */
struct node_repl_scan *node_repl_scan_start(struct node_api *api)
{
    struct node_repl_scan *s = at_calloc(1, sizeof(*s));
    s->api = api;
    if (uv_timer_init(api->loop, &s->timer) != 0) {
        at_free(s);
        return NULL;
    }
    s->timer.data = s;
    uv_timer_start(&s->timer, on_tick, NODE_REPL_SCAN_MS, NODE_REPL_SCAN_MS);
    return s;
}

static void on_closed(uv_handle_t *h)
{
    at_free(h->data);
}

/* see repl_scan.h */
void node_repl_scan_close(struct node_repl_scan *s)
{
    if (s == NULL)
        return;
    walk_end(s);
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, on_closed);
}
