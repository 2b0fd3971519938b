/* The node's gossip membership: gossip/'s SWIM state machine on the loop,
 * over UDP on the peer port's number, every datagram sealed under the
 * keyring derived from the cluster secret; the periodic full-state
 * push-pull over the peer TCP listener; the --join list (IPs and DNS
 * names, re-resolved) retried until some member answers. Everything else
 * in the node asks it who is alive. */
#ifndef NODE_CLUSTER_GOSSIP_H
#define NODE_CLUSTER_GOSSIP_H

#include <uv.h>

#include "gossip/swim.h"
#include "raft/meta.h"

struct node_gossip;
struct node_peer;

struct node_gossip_config {
    const char *name;         /* borrowed: the node's name */
    const char *bind_host;    /* borrowed: the peer listener's host */
    int port;                 /* the peer listener's bound port (UDP too) */
    const char *advertise;    /* borrowed: "host:port" others send UDP to */
    const char *secret;       /* borrowed: the cluster secret (>= 16 bytes) */
    const char *keyring_file; /* borrowed: "" or extra secrets, one a line */
    const char *join;         /* borrowed: "" or the --join list */
    struct gossip_meta meta;  /* what we say about ourselves */
    unsigned probe_interval_ms, probe_timeout_ms, gossip_interval_ms;
    unsigned suspicion_mult, retransmit_mult, push_pull_interval_ms;
    struct node_peer *peer; /* borrowed: client for the TCP push-pull */
    /* optional: every membership event, after the table changed */
    void (*event)(void *data,
                  enum gossip_event ev,
                  const struct gossip_member_info *m);
    /* optional: every 10 s, fill in what changes (free_bytes, load,
     * flags, role) in m, which holds what we last said; a change spreads
     * (free_bytes only when it moved by more than 1%) */
    void (*refresh)(void *data, struct gossip_meta *m);
    void *data; /* for event and refresh */
};

/* Bind UDP, derive the keys, start the timers and (with a join list)
 * start resolving and joining. Returns 0, or AT_EINVAL (secret too short,
 * bad keyring file), AT_EIO (bind failed) with errmsg. */
int node_gossip_start(struct node_gossip **out,
                      uv_loop_t *loop,
                      const struct node_gossip_config *c,
                      char *errmsg);

/* Leave gracefully (others see "left", not "dead"), keep gossiping until
 * the leave spread or timeout_ms passed, close everything, then cb; g is
 * freed before cb runs. leave false: close at once (a crash-like stop for
 * tests, or a node removed from the cluster). */
void node_gossip_stop(struct node_gossip *g,
                      bool leave,
                      unsigned timeout_ms,
                      void (*cb)(void *data),
                      void *data);

/* Say that this node leaves the cluster for good (leave_on_terminate):
 * the next node_gossip_stop(leave true) first spreads that in our
 * metadata, then leaves, so that others' autopilot removes us instead of
 * waiting for us to come back. */
void node_gossip_depart(struct node_gossip *g);

/* Gossip's view of the node named name, for every decision (holder
 * selection, copies, placement, autopilot, the status table). g NULL (no
 * gossip) or a name gossip never heard of: META_LIVE_UNKNOWN. A member
 * that left without saying it departs for good (a graceful stop, likely a
 * restart) is META_LIVE_DEAD here, for every decision, and shows "left"
 * in the members view; META_LIVE_LEFT means left for good. *since_ms
 * (may be NULL): uv_now() when it entered that state. */
enum meta_liveness node_gossip_liveness(const struct node_gossip *g,
                                        const char *name,
                                        uint64_t *since_ms);

/* Our last direct probe's round trip to the member named name, in
 * microseconds; 0 when unknown (no gossip, never probed). */
uint32_t node_gossip_rtt_us(const struct node_gossip *g, const char *name);

/* Every member gossip knows, ourselves included, in name order. m is
 * borrowed for the call. */
void node_gossip_each(const struct node_gossip *g,
                      void (*each)(void *data,
                                   const struct gossip_member_info *m),
                      void *data);

/* Seeds beyond the --join list, for when gossip knows no other live
 * member (a restarted node without --join, or everyone else restarted):
 * the node layer passes the peer addresses of raft's node table as a
 * comma list (copied). Join rounds then retry through them and the join
 * list until another member answers. A no-op while another member is
 * alive, or for g NULL. */
void node_gossip_rejoin(struct node_gossip *g, const char *list);

/* Gossip to the dead: one full-state exchange with a random entry of list
 * (comma-separated peer addresses: the raft members gossip does not see
 * alive). A member declared dead that is in fact up learns it and
 * refutes, and our view learns its newer records: two gossip islands
 * (left by a partition longer than the reap time, or by nodes restarted
 * while the others were away) merge this way. */
void node_gossip_reach(struct node_gossip *g, const char *list);

/* Run cfg->refresh now rather than at the next 10 s tick (the node just
 * joined raft: the in-cluster flag should spread at once). g may be
 * NULL. */
void node_gossip_refresh(struct node_gossip *g);

/* New metadata for ourselves (an incarnation bump spreads it): the role
 * once raft assigned one, the in-cluster flag, free space, load. A no-op
 * when nothing changed. */
void node_gossip_set_meta(struct node_gossip *g, const struct gossip_meta *m);

/* The push-pull server side (POST /_atoll/gossip on the peer listener):
 * merge the peer's GossipState body and answer ours in *out (malloc'd).
 * Returns 0 or AT_EPROTO (malformed body: 400). */
int node_gossip_push_pull(struct node_gossip *g,
                          const void *body,
                          size_t len,
                          uint8_t **out,
                          size_t *outlen);

struct node_gossip_stats {
    uint64_t sent, received;
    uint64_t drop_short, drop_oversize, drop_version, drop_unknown_key;
    uint64_t drop_auth, drop_decode, drop_replay;
    uint64_t drop_stale; /* sequence number over 10 minutes old */
    uint64_t drop_send;  /* not sent: unparsable address, socket full */
    uint64_t push_pulls, push_pull_errors;
    size_t members, alive, suspect, dead, left;
    unsigned health; /* Lifeguard's local health score */
};
void node_gossip_stats_get(const struct node_gossip *g,
                           struct node_gossip_stats *st);

#endif /* NODE_CLUSTER_GOSSIP_H */
