/* The changes this node's FSM applies (changes.c): manifest pushes,
 * manifest deletes and tag deletes (raft/events.c's queue), taken after
 * each loop turn and handed, in log order, to every consumer registered:
 * the event stream (events.c) and replication rules run on pushes
 * (replication.c). The FSM queues them only while a consumer is
 * registered. All on the loop thread. */
#ifndef NODE_CHANGES_H
#define NODE_CHANGES_H

#include "node/reply/context.h"

#define NODE_CHANGES_CONSUMERS 4

/* v[0..n) borrowed for the call; dropped: changes the FSM could not queue
 * since the last call (a burst over META_EVENTS_MAX in one turn). */
typedef void (*node_changes_cb)(void *data,
                                const struct meta_event *v,
                                size_t n,
                                uint64_t dropped);

/* Register (api->meta open). false when NODE_CHANGES_CONSUMERS are
 * registered already. */
bool node_changes_add(struct node_api *api, node_changes_cb cb, void *data);
/* Unregister (a no-op when not registered). */
void node_changes_remove(struct node_api *api, node_changes_cb cb, void *data);
/* At stop, after the consumers removed themselves. */
void node_changes_stop(struct node_api *api);

#endif /* NODE_CHANGES_H */
