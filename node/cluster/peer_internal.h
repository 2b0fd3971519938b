/* Shared by the peer listener's files (node/cluster/peer_*.c) only: a
 * request whose body is buffered, the answers, and each endpoint's
 * handler. */
#ifndef NODE_PEER_INTERNAL_H
#define NODE_PEER_INTERNAL_H

#include "common/common.h"
#include "node/http/http.h"
#include "proto/peer.h"

struct node_peer_api;

/* One in-flight peer request with a body (peer_front.c reads it). */
struct node_peer_op {
    struct node_peer_api *api; /* borrowed */
    struct node_http_req *req; /* one reference */
    enum proto_peer_ep ep;
    struct at_buf body;        /* bounded by the endpoint's body_max */
    struct proto_peer_msg msg; /* protobuf endpoints: the decoded body */
    bool proxied;       /* arrived from another follower: never proxy again */
    char name[256];     /* join: the joining node's name */
    char notify[256];   /* remove: peer address of the removed node */
    uint64_t notify_id; /* remove: its raft id */
};

/* Free op, its body and its reference to the request. */
void node_peer__op_free(struct node_peer_op *op);

/* ---- answers and shared lookups (peer_reply.c) ---- */

/* An OCI-style error document: {"errors":[{"code","message"}]}. */
void node_peer__error(struct node_http_req *req,
                      int status,
                      const char *code,
                      const char *msg);
/* A body of content_type (no-op once the request is done). */
void node_peer__reply_body(struct node_http_req *req,
                           int status,
                           const char *content_type,
                           const void *body,
                           size_t len);
/* The answer to op in its endpoint's encoding: a PeerReply for a protobuf
 * endpoint, {"status":<r->status>} for a JSON one. */
void node_peer__reply(struct node_peer_op *op,
                      int http,
                      const struct proto_peer_reply *r);
/* The same with nothing but a status. */
void node_peer__reply_status(struct node_peer_op *op, int http, int status);

/* The peer address of node name: address from the node table when it has
 * one, else what a raft dial of that node said (a node that just joined or
 * restarted knows the leader before its node table does). NULL when
 * neither is known; borrowed until the next meta or hint change. */
const char *node_peer__address_of(struct node_peer_api *api,
                                  const char *name,
                                  const char *address);

/* ---- handlers: each answers the request, and frees op when given ---- */

/* peer_raft.c: the upgrade to a raft stream. */
void node_peer__raft(struct node_peer_api *api, struct node_http_req *req);
/* peer_leader.c: forwarded writes, read index, term. */
void node_peer__propose(struct node_peer_op *op);
void node_peer__read_index(struct node_peer_op *op);
void node_peer__term(struct node_peer_op *op);
/* peer_members.c: join, members/remove, transfer (proxied to the leader
 * from a follower), and the notice that this node was removed. */
void node_peer__member_op(struct node_peer_op *op);
void node_peer__removed(struct node_peer_op *op);
/* peer_gossip.c: a push-pull exchange (POST /_atoll/gossip). */
void node_peer__gossip(struct node_peer_op *op);
/* peer_blobs.c: GET/HEAD of a local blob copy. */
/* peer_snapshot.c: GET <PROTO_PEER_SNAPSHOT><index>-<hash> (rest). */
void node_peer__snapshot(struct node_peer_api *api,
                         struct node_http_req *req,
                         const char *rest);
void node_peer__blob(struct node_peer_api *api,
                     struct node_http_req *req,
                     const char *digest);

#endif /* NODE_PEER_INTERNAL_H */
