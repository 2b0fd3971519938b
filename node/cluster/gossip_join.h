/* Gossip's exchanges beyond UDP (see gossip_join.c): the --join rounds
 * and the periodic full-state push-pull over the peer listener. Embedded
 * in the node's gossip runtime (node/cluster/gossip.c), which owns the
 * state machine and closes the two timers. */
#ifndef NODE_CLUSTER_GOSSIP_JOIN_H
#define NODE_CLUSTER_GOSSIP_JOIN_H

#include <uv.h>

#include "common/common.h"
#include "gossip/swim.h"

#define NODE_GOSSIP_JOIN_RETRY_MS 2000
#define NODE_GOSSIP_JOIN_WARN_MS  30000
#define NODE_GOSSIP_PP_TIMEOUT_MS 5000 /* one push-pull exchange */

struct node_peer;
struct node_gossip_join;
struct node_gossip_pp;

struct node_gossip_sync {
    uv_loop_t *loop;        /* borrowed */
    struct gossip *sw;      /* borrowed: the state machine */
    struct node_peer *peer; /* borrowed; NULL: no push-pull */
    const char *name;       /* borrowed: ours */
    const char *addr;       /* borrowed: ours, numeric ip:port */
    char *join;             /* owned: the --join list, "" = none */
    char *extra;            /* owned: more seeds (rejoin), or NULL */
    unsigned push_pull_interval_ms;
    uv_timer_t pp_timer, join_timer; /* closed by the owner */
    struct node_gossip_join *round;  /* borrowed: the resolve in flight */
    struct node_gossip_pp *pp;       /* borrowed: the exchange in flight */
    bool joined, stopping;
    unsigned join_next; /* round-robin over the seeds */
    uint64_t join_started, join_warned;
    uint64_t push_pulls, push_pull_errors;
};

/* Init both timers on loop (the caller closes them) and copy join. */
void node_gossip_sync_init(struct node_gossip_sync *s,
                           uv_loop_t *loop,
                           const char *join);
/* Start joining (with a join list) and the periodic push-pull. */
void node_gossip_sync_start(struct node_gossip_sync *s);
/* Stop the timers; work in flight completes detached and frees itself. */
void node_gossip_sync_stop(struct node_gossip_sync *s);
/* Join again through list (a comma list as --join, copied) on top of the
 * --join list: the node layer's raft peers when no other member is
 * alive. Starts join rounds unless they run already. */
void node_gossip_sync_rejoin(struct node_gossip_sync *s, const char *list);

/* One full-state exchange with addr (a peer listener's "host:port"), unless
 * one is in flight. */
void node_gossip_sync_push_pull(struct node_gossip_sync *s, const char *addr);
/* Free the join copies (after the timers closed). */
void node_gossip_sync_release(struct node_gossip_sync *s);

/* The server side of a push-pull: see node_gossip_push_pull. */
int node_gossip_sync_serve(struct node_gossip_sync *s,
                           const void *body,
                           size_t len,
                           uint8_t **out,
                           size_t *outlen);

/* sw's members as a malloc'd array of exported updates (*n). */
struct gossip_update *node_gossip_sync_export(const struct gossip *sw,
                                              size_t *n);

#endif /* NODE_CLUSTER_GOSSIP_JOIN_H */
