/* The table of blob transfers. See fetch_table.h. */
#include "common/compat.h"

#include "common/common.h"
#include "node/cluster/fetch_table.h"

/* see fetch_table.h */
struct node_fetch_table *node_fetch_table_get(struct node_api *api)
{
    struct node_fetch_table *t = api->fetches;

    if (t == NULL) {
        t = at_calloc(1, sizeof(*t));
        at_map_init(&t->fetches);
        node_holder_stats_init(&t->stats);
        t->api = api;
        t->refs = 1;
        api->fetches = t;
    }
    return t;
}

/* see fetch_table.h */
void node_fetch_table_unref(struct node_fetch_table *t)
{
    if (--t->refs > 0)
        return;
    node_holder_stats_release(&t->stats);
    at_map_release(&t->fetches);
    at_free(t);
}

/* see fetch_table.h */
void node_fetch_table_close(struct node_fetch_table *t)
{
    if (t == NULL)
        return;
    if (t->api != NULL)
        t->api->fetches = NULL;
    t->api = NULL;
    node_fetch_table_unref(t);
}

/* see fetch_table.h */
void node_fetch_counts(const struct node_api *api,
                       unsigned *active,
                       unsigned *background)
{
    const struct node_fetch_table *t = api->fetches;

    *active = t != NULL ? t->active : 0;
    *background = t != NULL ? t->background : 0;
}
