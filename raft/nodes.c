/* The FSM's node table (raft id -> name, peer/API addresses, region) and
 * the raft id a name gets. */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include <raft.h>

#include "raft/nodes.h"

/* see meta.h: stable per name, 32-bit (libraft 0.15's uv client keeps ids
 * in an unsigned int), never 0 nor 1 (1 is the legacy single node) */
uint64_t meta_node_id_from_name(const char *name)
{
    unsigned long long h = raft_digest(name, 0);
    return 2 + (uint64_t)(h % 0x7ffffffdull);
}

static void noderec_free(struct meta_noderec *n)
{
    at_free(n->name);
    at_free(n->peer_address);
    at_free(n->api_address);
    at_free(n->region);
    at_free(n);
}

/* see nodes.h */
void meta__nodes_release(struct meta_fsm *f)
{
    const char *k;
    void *v;
    for (size_t i = 0; at_map_next(&f->nodes, &i, &k, &v);)
        noderec_free(v);
    at_map_release(&f->nodes);
}

/* see nodes.h */
struct meta_noderec *meta__node_find(const struct meta_fsm *f, uint64_t id)
{
    return at_map_get(&f->nodes, &id, sizeof(id));
}

/* see nodes.h */
struct meta_noderec *meta__node_by_name(const struct meta_fsm *f,
                                        const char *name)
{
    const char *k;
    void *v;
    for (size_t i = 0; at_map_next(&f->nodes, &i, &k, &v);) {
        struct meta_noderec *n = v;
        if (strcmp(n->name, name) == 0)
            return n;
    }
    return NULL;
}

static bool same(const char *a, const char *b)
{
    return strcmp(a != NULL ? a : "", b != NULL ? b : "") == 0;
}

/* see nodes.h */
bool meta__node_equal(const struct meta_noderec *n,
                      const struct meta_node_upsert *u)
{
    const struct meta_node *o = &u->node;
    return n->id == o->id && same(n->name, o->name) &&
           same(n->peer_address, o->peer_address) &&
           same(n->api_address, o->api_address) && same(n->region, o->region) &&
           n->standby == u->standby;
}

/* see nodes.h: a name held by another id is a conflict (the other
 * record must be removed first) */
int meta__node_upsert(struct meta_fsm *f, const Atoll__NodeUpsert *o)
{
    struct meta_noderec *byname = meta__node_by_name(f, o->name);
    if (byname != NULL && byname->id != o->id)
        return META_NODE_CONFLICT;
    struct meta_noderec *n = meta__node_find(f, o->id);
    struct meta_node_upsert u = { .standby = o->standby };
    u.node.id = o->id;
    u.node.name = o->name;
    u.node.peer_address = o->peer_address;
    u.node.api_address = o->api_address;
    u.node.region = o->region;
    if (n != NULL && meta__node_equal(n, &u))
        return META_OK;
    if (n == NULL) {
        n = at_calloc(1, sizeof(*n));
        n->id = o->id;
        at_map_put(&f->nodes, &n->id, sizeof(n->id), n);
    } else {
        at_free(n->name);
        at_free(n->peer_address);
        at_free(n->api_address);
        at_free(n->region);
    }
    n->name = at_strdup(o->name);
    n->peer_address = at_strdup(o->peer_address != NULL ? o->peer_address : "");
    n->api_address = at_strdup(o->api_address != NULL ? o->api_address : "");
    n->region = at_strdup(o->region != NULL ? o->region : "");
    n->standby = o->standby;
    f->nodes_version++;
    return META_OK;
}

/* see nodes.h */
int meta__node_remove(struct meta_fsm *f, uint64_t id)
{
    struct meta_noderec *n = at_map_del(&f->nodes, &id, sizeof(id));
    if (n == NULL)
        return META_NODE_UNKNOWN;
    noderec_free(n);
    f->nodes_version++;
    return META_OK;
}
