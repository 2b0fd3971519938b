/* The table of blob transfers this node runs from holders: fetches (one
 * per digest, fetch.h), relays (one per client, relay.h) and what this node
 * remembers of the holders. It belongs to the api (api->fetches, made on
 * first use) and outlives it while transfers finish: each one holds a
 * reference, and finds t->api NULL once the node closed the table. */
#ifndef NODE_FETCH_TABLE_H
#define NODE_FETCH_TABLE_H

#include "node/cluster/holders.h"

#define NODE_FETCH_TRANSFER_MS 600000 /* one transfer from one holder */

struct node_fetch_table {
    struct node_api *api;  /* borrowed; NULL once closed */
    struct at_map fetches; /* raw digest -> struct fetch (borrowed) */
    struct node_holder_stats stats;
    unsigned active;     /* fetches in the map */
    unsigned background; /* of which started by node_fetch_start */
    unsigned relays;     /* relays running */
    unsigned refs;       /* the api's (until closed) + one per transfer */
};

/* api's table, made on first use. Take a reference for a transfer with
 * t->refs++, give it back with node_fetch_table_unref. */
struct node_fetch_table *node_fetch_table_get(struct node_api *api);
void node_fetch_table_unref(struct node_fetch_table *t);

/* Detach the table from api (api->fetches may be NULL): transfers in
 * flight finish without touching api again and the table is freed with
 * the last one. Call once the peer client is closed, before the store
 * is. */
void node_fetch_table_close(struct node_fetch_table *t);

/* Fetches running now, and how many of them have no client (copies). */
void node_fetch_counts(const struct node_api *api,
                       unsigned *active,
                       unsigned *background);

#endif /* NODE_FETCH_TABLE_H */
