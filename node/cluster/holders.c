/* Blob holders: their order and what this node remembers of each. See
 * holders.h. */
#include "common/compat.h"

#define AT_LOG_COMP "fetch"

#include "common/common.h"
#include "node/cluster/gossip.h"
#include "node/cluster/holders.h"
#include "node/cluster/peer_api.h"
#include "proto/peer.h"

/* see holders.h */
enum node_rank node_holder_rank(const struct node_api *api,
                                const char *name,
                                bool bad_bytes)
{
    const struct node_gossip *g =
        api->peer_api != NULL ? api->peer_api->gossip : NULL;

    switch (node_gossip_liveness(g, name, NULL)) {
    case META_LIVE_DEAD:
    case META_LIVE_LEFT:
        return NODE_RANK_GONE;
    case META_LIVE_SUSPECT:
        return NODE_RANK_SUSPECT;
    default:
        return bad_bytes ? NODE_RANK_SUSPECT : NODE_RANK_OK;
    }
}

/* see holders.h */
bool node_holder_before(const struct node_holder_key *a,
                        const struct node_holder_key *b)
{
    if (a->rank != b->rank)
        return a->rank < b->rank;
    if (a->group != b->group)
        return a->group < b->group;
    if (a->rtt_us != 0 && b->rtt_us != 0 &&
        (a->rtt_us < b->rtt_us / 2 || b->rtt_us < a->rtt_us / 2))
        return a->rtt_us < b->rtt_us;
    return a->load < b->load;
}

/* see holders.h */
void node_holder_stats_init(struct node_holder_stats *s)
{
    at_map_init(&s->m);
}

/* see holders.h */
void node_holder_stats_release(struct node_holder_stats *s)
{
    const char *k;
    void *v;

    for (size_t i = 0; at_map_next(&s->m, &i, &k, &v);)
        at_free(v);
    at_map_release(&s->m);
}

/* see holders.h */
struct node_holder_stat *node_holder_stat_get(struct node_holder_stats *s,
                                              const char *name)
{
    struct node_holder_stat *hs = at_map_gets(&s->m, name);

    if (hs == NULL) {
        hs = at_calloc(1, sizeof(*hs));
        at_map_put(&s->m, name, strlen(name), hs);
    }
    return hs;
}

/* see holders.h */
void node_holder_mark_suspect(struct node_holder_stats *s, const char *name)
{
    node_holder_stat_get(s, name)->suspect_until =
        at_now_ms() + NODE_HOLDER_SUSPECT_MS;
}

struct list_ctx {
    struct node_api *api;
    const struct node_holder_stats *s;
    struct node_holder *v;
    size_t n, cap;
    const char *region; /* borrowed: this node's */
    uint64_t now;
};

static void holder_each(void *data, const struct meta_node *n)
{
    struct list_ctx *lc = data;
    const struct node_holder_stat *hs;
    struct node_holder *h;

    if (n->name == NULL || n->peer_address == NULL ||
        n->peer_address[0] == '\0')
        return;
    if (lc->n == lc->cap) {
        lc->cap = lc->cap == 0 ? 4 : lc->cap * 2;
        lc->v = at_realloc(lc->v, lc->cap * sizeof(*lc->v));
    }
    h = &lc->v[lc->n++];
    memset(h, 0, sizeof(*h));
    h->name = at_strdup(n->name);
    h->addr = at_strdup(n->peer_address);
    h->key.group = lc->region[0] != '\0' && n->region != NULL &&
                           strcmp(n->region, lc->region) == 0
                       ? 0
                       : 1;
    hs = at_map_gets(&lc->s->m, n->name);
    h->key.load = hs != NULL ? hs->transfers : 0;
    h->key.rank = node_holder_rank(lc->api, n->name,
                                   hs != NULL && hs->suspect_until > lc->now);
    h->key.rtt_us = node_gossip_rtt_us(
        lc->api->peer_api != NULL ? lc->api->peer_api->gossip : NULL, n->name);
}

/* see holders.h: a stable insertion sort (a handful of holders) */
size_t node_holders_list(struct node_api *api,
                         const struct node_holder_stats *s,
                         const struct at_digest *d,
                         struct node_holder **out)
{
    struct list_ctx lc = {
        .api = api,
        .s = s,
        .region = api->cfg != NULL && api->cfg->region != NULL
                      ? api->cfg->region
                      : "",
        .now = at_now_ms(),
    };

    meta_blob_holders(api->meta, d, holder_each, &lc);
    for (size_t i = 1; i < lc.n; i++) {
        struct node_holder h = lc.v[i];
        size_t j = i;

        while (j > 0 && node_holder_before(&h.key, &lc.v[j - 1].key)) {
            lc.v[j] = lc.v[j - 1];
            j--;
        }
        lc.v[j] = h;
    }
    *out = lc.v;
    return lc.n;
}

/* see holders.h */
void node_holders_free(struct node_holder *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        at_free(v[i].name);
        at_free(v[i].addr);
        at_free(v[i].path);
    }
    at_free(v);
}

/* see holders.h */
int node_holder_stream(struct node_api *api,
                       struct node_holder_stats *s,
                       const struct node_holder *h,
                       const char *dstr,
                       uint64_t timeout_ms,
                       node_peer_data_cb on_data,
                       node_peer_cb done,
                       void *data,
                       struct node_peer_req **pr,
                       struct node_holder_stat **busy)
{
    char *path =
        h->path != NULL
            ? at_strdup(h->path)
            : at_asprintf("%s%s", proto_peer_path(PROTO_PEER_BLOB), dstr);
    int rv = node_peer_stream(api->peer, h->addr, path, timeout_ms, on_data,
                              done, data, pr);

    at_free(path);
    if (rv == 0) {
        *busy = node_holder_stat_get(s, h->name);
        (*busy)->transfers++;
    }
    return rv;
}

/* see holders.h */
void node_holder_transfer_end(struct node_holder_stat **busy)
{
    if (*busy != NULL && (*busy)->transfers > 0)
        (*busy)->transfers--;
    *busy = NULL;
}
