/* --bootstrap-expect: nodes started at once with the same --join list
 * find each other through gossip, and exactly one of them bootstraps the
 * cluster while the others join it. The decision only, as a function of
 * gossip's member table and the clock, so it can be tested without a
 * network; node/server.c acts on it.
 *
 * The rules, evaluated again on every call:
 *   1. A live member that says it is in a cluster (GOSSIP_META_IN_CLUSTER)
 *      means the cluster exists: join it, through that member (a member
 *      that may vote first, then any).
 *   2. Otherwise count the candidates: live members (alive or suspect,
 *      ourselves included) whose role is "voter". Fewer than expect: wait.
 *   3. The candidate set must have stayed the same for settle_ms: nodes
 *      started together learn about each other within a few gossip
 *      rounds, and a lower-named node that shows up late restarts the
 *      wait instead of racing.
 *   4. Then the candidate with the lowest name bootstraps a one-voter
 *      cluster and says so in its metadata; the others keep waiting until
 *      they see that (rule 1). A bootstrapper that dies before anyone saw
 *      its flag drops out of the set and the next lowest takes over.
 *
 * The window left: rule 1 relies on the flag spreading before the settle
 * time of a node that arrives late; with settle_ms at several gossip
 * intervals that is many dissemination rounds. */
#ifndef NODE_CLUSTER_BOOTSTRAP_H
#define NODE_CLUSTER_BOOTSTRAP_H

#include <stddef.h>

#include "gossip/swim.h"

enum node_boot_decision {
    NODE_BOOT_WAIT = 0,
    NODE_BOOT_BOOTSTRAP, /* we are the one: bootstrap a one-voter cluster */
    NODE_BOOT_JOIN,      /* a cluster exists: join through join_addr */
};

struct node_boot {
    unsigned expect;    /* --bootstrap-expect */
    uint64_t settle_ms; /* the candidate set unchanged this long */
    char self[GOSSIP_NAME_MAX];
    bool self_votes; /* our role is "voter" */
    /* state between calls */
    uint64_t set_hash;     /* of the sorted candidate names */
    uint64_t stable_since; /* when that set was first seen */
};

/* Set up b for node self (role "voter", "standby" or "edge"). */
void node_boot_init(struct node_boot *b,
                    const char *self,
                    const char *role,
                    unsigned expect,
                    uint64_t settle_ms);

/* Decide with the n members m (gossip's table, ourselves included, any
 * order) at now_ms. NODE_BOOT_JOIN sets join_addr (a peer "host:port",
 * GOSSIP_ADDR_MAX bytes). why (whylen bytes, may be NULL) says what we
 * are waiting for, for the log. */
enum node_boot_decision node_boot_decide(struct node_boot *b,
                                         const struct gossip_member_info *m,
                                         size_t n,
                                         uint64_t now_ms,
                                         char *join_addr,
                                         char *why,
                                         size_t whylen);

#endif /* NODE_CLUSTER_BOOTSTRAP_H */
