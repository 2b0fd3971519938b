/* Joining a cluster on a node's first start (--join), and the
 * --bootstrap-expect wait that comes before it.
 *
 * Join: POST a PeerJoin to an entry of the --join list (round-robin over
 * retries, with backoff) until a member answers 200 (the leader added this
 * node) or refuses for good (409 name taken, 401 wrong secret, 400). The
 * raft dir holds the join-pending marker meanwhile, so a node stopped in
 * the middle joins again at its next start.
 *
 * Bootstrap-expect: the metadata is not open yet. Every EXPECT_TICK_MS the
 * gossip table goes through node_boot_decide (node/cluster/bootstrap.h):
 * BOOTSTRAP opens the metadata as a new one-voter cluster and removes the
 * marker; JOIN opens it empty and joins through the member gossip named,
 * then the list; WAIT logs why every 10 s. */
#ifndef NODE_JOIN_H
#define NODE_JOIN_H

#include <uv.h>

#include "node/cluster/bootstrap.h"
#include "node/config.h"
#include "raft/meta.h"

struct node_peer;
struct node_gossip;

struct node_join {
    /* set by the caller before node_join_init; borrowed */
    uv_loop_t *loop;
    const struct node_config *cfg;
    struct node_peer *peer;
    const char *name, *peer_address, *api_address, *raft_dir;
    struct node_gossip *gossip; /* may be NULL */
    struct meta *meta;          /* set once the metadata is open */
    /* bootstrap-expect decided: open the metadata, as a new cluster
     * (join false) or empty to join one; 0 or AT_E* with errmsg (then
     * the node cannot go on: it stops) */
    int (*open)(void *data, bool join, char *errmsg);
    /* the node cannot go on (open failed, the join was refused or given
     * up): exit non-zero */
    void (*fatal)(void *data);
    void *data;
    /* private */
    uv_timer_t timer;
    bool joining;   /* a PeerJoin is to be made or in flight */
    bool expecting; /* bootstrap-expect: waiting to decide */
    bool stopping;
    unsigned attempts;
    uint64_t backoff;
    unsigned next;          /* round-robin over the --join list */
    char target[256];       /* the entry asked last */
    char first[256];        /* bootstrap-expect: join through it first */
    struct node_boot boot;  /* bootstrap-expect's decision state */
    uint64_t expect_logged; /* when WAIT was last logged */
    void (*close_cb)(void *data);
    void *close_data;
};

/* Whether a node starting with this raft dir must join (with a --join
 * list): the dir never held raft state, or a join was left unfinished. */
bool node_join_needed(const char *raft_dir);

/* Set (on) or remove the join-pending marker; 0 or -errno. */
int node_join_marker(const char *raft_dir, bool on);

/* Set up the timer (the fields above set). Always pair with
 * node_join_close. */
void node_join_init(struct node_join *j);

/* The metadata is open and empty: start asking to join. */
void node_join_start(struct node_join *j);

/* --bootstrap-expect: the metadata stays closed until gossip shows enough
 * nodes; then j->open and, to join, node_join_start. */
void node_join_expect(struct node_join *j);

/* Still joining or waiting to bootstrap: not in a cluster yet. */
bool node_join_pending(const struct node_join *j);

/* Stop retrying and waiting (at the start of a node's stop); the
 * PeerJoin in flight (if any) is ignored when it answers. */
void node_join_stop(struct node_join *j);

/* After node_join_stop, once nothing may call back into j (the peer
 * client closed): close the timer, then cb. */
void node_join_close(struct node_join *j, void (*cb)(void *data), void *data);

#endif /* NODE_JOIN_H */
