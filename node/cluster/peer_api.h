/* The peer listener (node-to-node: raft connections, forwarded writes, read
 * index, join, membership, blobs, relayed uploads) and the meta hooks that
 * call it on the leader. Implemented by peer_front.c (the front: auth,
 * routing, bodies), peer_raft.c, peer_leader.c, peer_members.c,
 * peer_blobs.c and peer_hooks.c (the client side). */
#ifndef NODE_PEER_API_H
#define NODE_PEER_API_H

#include "common/common.h"
#include "node/cluster/peer.h"
#include "node/http/http.h"
#include "node/reply/reply.h"
#include "raft/meta.h"
#include "storage/storage.h"

struct node_api;
struct node_gossip;

#define NODE_PEER_TIMEOUT_MS 10000 /* forwarded calls */
#define NODE_PEER_HANDOFF_MS 40000 /* a forwarded handoff (it waits 30 s) */

/* Everything the peer handlers reach; owned by node/server.c. */
struct node_peer_api {
    uv_loop_t *loop; /* borrowed */
    /* borrowed: the peer listener when peer traffic is mutual TLS (its
     * files dial the upload relay, node_http_dial_tls); NULL: plain */
    struct node_http_server *tls_server;
    struct meta *meta;      /* borrowed; NULL until meta_open returned */
    struct node_peer *peer; /* borrowed: client for proxying to the leader */
    /* borrowed: gossip membership; NULL when off (or once stopped) */
    struct node_gossip *gossip;
    const char *secret;    /* borrowed; "" or NULL: every request is 401 */
    struct storage *store; /* borrowed: GET /_atoll/blobs/<digest> */
    /* borrowed: the node's handler context (blob serving, copies) */
    struct node_api *node_api;
    /* serves /v2/ requests relayed with X-Atoll-Proxied (the OCI router,
     * wired by node/server.c); NULL: 404 */
    void (*relay)(struct node_api *api, struct node_http_req *req);
    /* bound to every request here: answers made with the reply toolkit
     * count in node_api's counters and are marked relayed */
    struct node_reply_ctx reply;
    uint64_t blob_serves;     /* blobs sent to peers, for /metrics */
    uint64_t snapshot_serves; /* snapshot files sent to peers */
    /* borrowed: where the removed notice leaves its marker file */
    const char *raft_dir;
    bool stopping;
    bool removed_stop; /* node_peer_stop_removed ran: one SIGTERM only */
    /* name -> owned "host:port" from X-Atoll-Peer-Address of raft dials:
     * reaches the leader before this node's FSM has its node table (after
     * a restart or a join). Zeroed = empty. */
    struct at_map peer_hints;
    /* peers refused for their peer protocol version (rate-limited log) */
    struct node_peer_warn warns[NODE_PEER_WARN_SLOTS];
};

/* Free the peer hints (the struct itself is the caller's). */
void node_peer_api_release(struct node_peer_api *api);

/* The handler given to node_http_start for --peer-listen: checks the
 * cluster secret (401) and the peer protocol version (426 and a
 * rate-limited WARN naming the peer), then serves the endpoint of
 * proto/peer.h's table. Every answer states this node's peer protocol
 * version. */
void node_peer_api_handle(void *data, struct node_http_req *req);

/* The tls_refused callback of the peer listener (data: the api): a peer
 * refused at the TLS layer (no certificate, one from another CA, plain
 * HTTP on the mutual TLS port, or, dialing, a server certificate that
 * fails) gets one WARN line naming its address and why, at most one per
 * host per rate-limit period (the count of the quiet ones follows). */
void node_peer_tls_refused(void *data, const char *peer, const char *why);

/* True when value is exactly "Bearer <secret>" (constant time in the
 * secret's length; false when secret is empty). */
bool node_peer_auth_ok(const char *value, const char *secret);

/* The members document: {"leader":"<name>"|null,"nodes":[{"name","id",
 * "peer_address","api_address","region","role","leader"}]}; with gossip
 * (g may be NULL) each node also has "gossip" (alive|suspect|dead|left|
 * unknown), "rtt_ms" (null before the first probe), "version", "zone"
 * and "gossip_role", and live members gossip knows that have no raft
 * state yet (joining) follow with "role":"none" and "id":0. */
void node_peer_members_json(struct meta *m,
                            const struct node_gossip *g,
                            struct at_buf *out);

/* Tell the node at peer address addr that the cluster removed raft id
 * id (POST /_atoll/removed; the node checks the id is its own, leaves
 * its marker and stops). Fire and forget: a failure is logged at INFO. */
void node_peer_tell_removed(struct node_peer_api *api,
                            const char *addr,
                            uint64_t id);

/* This node was removed from the cluster: leave the marker 'removed' in
 * the raft dir (a restart refuses to serve, or with auto_rejoin joins
 * afresh), log it, and stop gracefully (SIGTERM to this process). */
void node_peer_stop_removed(struct node_peer_api *api);

/* The leader, from gossip's view (every refresh): a live member that
 * says it is in the cluster, with a raft id the cluster no longer has
 * (removed while it was away, e.g. reaped by autopilot after a scale
 * down), is told it was removed. A no-op off the leader or without
 * gossip. */
void node_peer_tell_strays(struct node_peer_api *api);

/* meta hooks (hooks_data: struct node_peer_api *): forward -> propose and
 * read_index -> read-index, both to the peer address of the leader from
 * meta_leader; term -> term on the voter asked. */
extern const struct meta_hooks node_peer_hooks;

#endif /* NODE_PEER_API_H */
