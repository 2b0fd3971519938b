/* Gossip's small tables on the node side: numeric "ip:port" addresses
 * <-> sockaddr, and the replay windows of the senders we hear from. */
#ifndef NODE_CLUSTER_GOSSIP_ADDR_H
#define NODE_CLUSTER_GOSSIP_ADDR_H

#include <uv.h>

#include "common/common.h"
#include "gossip/msg.h"
#include "gossip/seal.h"

/* Parse "a.b.c.d:port" or "[v6]:port" (numeric only, port 1..65535)
 * into *sa. Returns 0 or AT_EINVAL. */
int node_gossip_addr_parse(const char *s, struct sockaddr_storage *sa);

/* Format sa as "a.b.c.d:port" or "[v6]:port" into out (size bytes); an
 * IPv4-mapped IPv6 address (a dual-stack socket's IPv4 sender) as IPv4.
 * Returns 0 or AT_EINVAL (not IPv4/IPv6, out too short). */
int node_gossip_addr_format(const struct sockaddr *sa, char *out, size_t size);

/* Split "host:port" / "[v6]:port" (host may be a DNS name) into host
 * (hostsize bytes) and *port (1..65535). Returns 0 or AT_EINVAL. */
int node_gossip_hostport_split(const char *s,
                               char *host,
                               size_t hostsize,
                               int *port);

/* One sender's window, in the table by name and in its LRU list. */
struct node_gossip_replay_entry {
    struct at_list lru; /* in the table's lru, most recent last */
    struct gossip_replay w;
    char name[GOSSIP_NAME_MAX];
};

/* Replay windows by sender name, at most max of them: the least recently
 * heard of is forgotten first (its next packet starts a fresh window,
 * still bounded by the receiver's staleness check). */
struct node_gossip_replays {
    struct at_map by_name; /* name -> owned node_gossip_replay_entry */
    struct at_list lru;
    size_t max;
    uint64_t evicted;
};

void node_gossip_replays_init(struct node_gossip_replays *t, size_t max);
void node_gossip_replays_release(struct node_gossip_replays *t);

/* gossip_replay_check of seq in name's window (created on first use,
 * evicting the least recently used past max). Call it only for a packet
 * that opened. Returns 0 or AT_EPROTO (seen before, or too old). */
int node_gossip_replays_check(struct node_gossip_replays *t,
                              const char *name,
                              uint64_t seq);

#endif /* NODE_CLUSTER_GOSSIP_ADDR_H */
