/* The peer protocol: the table of peer listener endpoints, the protocol
 * version every peer request and answer carries, and bounded pack/unpack of
 * the protobuf bodies of node-to-node calls (C structs only: callers never
 * see protobuf-c).
 *
 * Versions: a request states its version in the PROTO_PEER_VERSION_HEADER
 * header, every protobuf body in its version field, every answer of the
 * peer listener in the same header. A node accepts the versions
 * [PROTO_PEER_VERSION_MIN, PROTO_PEER_VERSION_MAX] and writes
 * PROTO_PEER_VERSION. A request without the header speaks the first peer
 * protocol (JSON and text bodies, before the endpoint table), which no node
 * accepts any more. A later change to a message adds version 3: its release
 * accepts [2, 3] and still writes 2, so it talks to nodes not yet upgraded;
 * once every node runs it, the next release writes 3 (and may raise MIN). */
#ifndef PROTO_PEER_H
#define PROTO_PEER_H

#include "common/common.h"

#define PROTO_PEER_VERSION        2 /* written by this node */
#define PROTO_PEER_VERSION_MIN    2 /* oldest accepted */
#define PROTO_PEER_VERSION_MAX    2 /* newest accepted */
#define PROTO_PEER_VERSION_OLD    1 /* implied by a request without header */
#define PROTO_PEER_VERSION_HEADER "X-Atoll-Peer-Protocol"

#define PROTO_PEER_CONTENT_TYPE "application/x-protobuf"
/* The Upgrade token of a raft connection (libraft's stream, unchanged). */
#define PROTO_PEER_RAFT_UPGRADE "atoll-raft/1"
/* In the raft upgrade's 101 answer: this node fetches snapshot files
 * itself (GET PROTO_PEER_SNAPSHOT from the sender), so a leader may send
 * it a snapshot's descriptor instead of its bytes (the raft module's
 * snapshot fetch). A node without the header gets the bytes. A feature,
 * not a new version: older nodes simply never state it. */
#define PROTO_PEER_SNAPSHOT_HEADER "X-Atoll-Raft-Snapshot"
#define PROTO_PEER_SNAPSHOT_FETCH  "fetch"

#define PROTO_PEER_SMALL_MAX   1024        /* read-index, term, removed */
#define PROTO_PEER_JOIN_MAX    4096        /* join, replicate */
#define PROTO_PEER_JSON_MAX    (64 * 1024) /* operator JSON bodies */
#define PROTO_PEER_PROPOSE_MAX (8 * 1024 * 1024 + 64) /* a packed command */
#define PROTO_PEER_REPLY_MAX   1024                   /* a packed PeerReply */
#define PROTO_PEER_NAME_MAX    200                    /* node name, region */
#define PROTO_PEER_REPO_MAX    255 /* replicate: repository */
#define PROTO_PEER_ROLE_MAX    32  /* join answer: role */
/* a GossipState (the gossip module's GOSSIP_STATE_BYTES_MAX) */
#define PROTO_PEER_GOSSIP_MAX (8u << 20)

/* The peer listener's endpoints. */
enum proto_peer_ep {
    PROTO_PEER_RAFT,        /* upgrade to a raft stream (no body) */
    PROTO_PEER_PROPOSE,     /* PeerPropose -> PeerReply */
    PROTO_PEER_READ_INDEX,  /* PeerReadIndex -> PeerReply */
    PROTO_PEER_TERM,        /* PeerTerm -> PeerReply */
    PROTO_PEER_JOIN,        /* PeerJoin -> PeerReply */
    PROTO_PEER_REMOVED,     /* PeerRemoved -> PeerReply */
    PROTO_PEER_REPLICATE,   /* PeerReplicate -> HTTP status */
    PROTO_PEER_REMOVE,      /* operators: JSON {"name"} -> {"status"} */
    PROTO_PEER_TRANSFER,    /* operators: JSON {"name"|null} -> {"status"} */
    PROTO_PEER_MEMBERS,     /* GET: the members document (JSON) */
    PROTO_PEER_BLOB,        /* GET/HEAD <path><digest>: a blob's bytes */
    PROTO_PEER_RELAY,       /* any method, <path>...: an upload request
                               relayed by another node (X-Atoll-Proxied) */
    PROTO_PEER_GOSSIP,      /* GossipState -> GossipState (push-pull) */
    PROTO_PEER_HANDOFF,     /* operators: JSON {"name"|null} -> {"status"} */
    PROTO_PEER_SNAPSHOT,    /* GET <path><index>-<hash>: a snapshot file */
    PROTO_PEER_PULLTHROUGH, /* GET <path><ref>/<repo>: the leader brings a
                               manifest from a pull-through upstream */
    PROTO_PEER_EP_COUNT
};

/* What a request body is. */
enum proto_peer_body {
    PROTO_PEER_BODY_NONE,     /* none */
    PROTO_PEER_BODY_PROTOBUF, /* the endpoint's Peer* message */
    PROTO_PEER_BODY_JSON,     /* a JSON document */
    PROTO_PEER_BODY_STREAM,   /* streamed through (bounded by its handler) */
    PROTO_PEER_BODY_BYTES,    /* buffered, decoded by its handler */
};

struct proto_peer_endpoint {
    const char *name;   /* for logs */
    const char *path;   /* the path, or its prefix when prefix is set */
    bool prefix;        /* the path is followed by an argument */
    const char *method; /* "POST", or "GET" (HEAD allowed too); NULL: any */
    enum proto_peer_body body;
    size_t body_max; /* bound of a buffered request body */
};

/* The endpoint table, indexed by enum proto_peer_ep. */
extern const struct proto_peer_endpoint
    proto_peer_endpoints[PROTO_PEER_EP_COUNT];

/* The path of ep (a prefix for PROTO_PEER_BLOB and PROTO_PEER_RELAY).
 * ep must be a valid endpoint. */
const char *proto_peer_path(enum proto_peer_ep ep);

/* The endpoint path names: an exact path, else the first prefix it starts
 * with; *rest (rest may be NULL) gets the text after a prefix ("" for an
 * exact path). Returns PROTO_PEER_EP_COUNT when none matches. */
enum proto_peer_ep proto_peer_find(const char *path, const char **rest);

/* A snapshot file's name on PROTO_PEER_SNAPSHOT: the path
 * "<prefix><index>-<hash>" (16 lower-case hex digits each) into out
 * (PROTO_PEER_SNAPSHOT_PATH_SIZE), and its argument parsed back: true with
 * *index and *hash for exactly that form (nothing else, so a path can
 * never name another file). */
#define PROTO_PEER_SNAPSHOT_PATH_SIZE 64
void proto_peer_snapshot_path(uint64_t index,
                              uint64_t hash,
                              char out[PROTO_PEER_SNAPSHOT_PATH_SIZE]);
bool proto_peer_snapshot_parse(const char *rest,
                               uint64_t *index,
                               uint64_t *hash);

/* True when method ("GET", ...) is allowed on ep. */
bool proto_peer_method_ok(enum proto_peer_ep ep, const char *method);

/* The version a header value states: PROTO_PEER_VERSION_OLD for NULL (no
 * header), the number for decimal digits in 1..65535, else 0 (malformed). */
unsigned proto_peer_version_of(const char *value);

/* When line[0..n) is the version header ("X-Atoll-Peer-Protocol: 2", the
 * name in any case, CRLF or not): true, with the version it states in *v
 * (0 when malformed). False for any other line. */
bool proto_peer_version_line(const char *line, size_t n, unsigned *v);
/* True when v is in [PROTO_PEER_VERSION_MIN, PROTO_PEER_VERSION_MAX]. */
bool proto_peer_version_ok(unsigned v);

/* ---- request bodies ---- */

struct proto_peer_join {
    uint64_t id;              /* 0: the leader derives it from the name */
    const char *name;         /* 1..PROTO_PEER_NAME_MAX bytes */
    const char *peer_address; /* 1..PROTO_ADDRESS_MAX bytes */
    const char *api_address;  /* up to PROTO_ADDRESS_MAX bytes (NULL: "") */
    const char *region;       /* up to PROTO_PEER_NAME_MAX bytes (NULL: "") */
    bool standby;
};

/* One request body; ep says which member of u is used (PROTO_PEER_TERM
 * has no field). Strings are printable (no control characters). */
struct proto_peer_msg {
    enum proto_peer_ep ep;
    union {
        struct {
            const void *command; /* borrowed: a packed command */
            size_t len;          /* 1..PROTO_COMMAND_MAX */
        } propose;
        struct {
            uint64_t from_id, from_term; /* 0: not counted */
        } read_index;
        struct proto_peer_join join;
        struct {
            const char *repo; /* 1..PROTO_PEER_REPO_MAX bytes */
            struct at_digest digest;
            uint64_t size;
        } replicate;
        struct {
            uint64_t id; /* non-zero */
        } removed;
    } u;
    void *decoded; /* owned after unpack: what the pointers borrow from */
};

/* Pack m as the body of m->ep (version PROTO_PEER_VERSION), appended to
 * out. Returns 0, AT_EINVAL (malformed fields, or ep has no protobuf
 * body; errmsg says which), AT_ETOOBIG (over out's bound). */
int proto_peer_msg_pack(const struct proto_peer_msg *m,
                        struct at_buf *out,
                        char *errmsg);

/* Unpack and check a body of endpoint ep into *out; out's pointers borrow
 * from out->decoded until proto_peer_msg_release. Returns 0, AT_ETOOBIG
 * (over the endpoint's body_max), AT_EPROTO (undecodable, a version not
 * accepted, malformed fields; errmsg says which). On failure *out holds
 * nothing to release. Never crashes on arbitrary bytes. */
int proto_peer_msg_unpack(enum proto_peer_ep ep,
                          const void *buf,
                          size_t len,
                          struct proto_peer_msg *out,
                          char *errmsg);

/* Free what an unpacked message owns (no-op for a packed-side struct). */
void proto_peer_msg_release(struct proto_peer_msg *m);

/* ---- answers ---- */

/* The answer to propose, read-index, term, join and removed (fields that
 * do not apply are 0 / NULL). */
struct proto_peer_reply {
    int status;       /* 0 or a negative AT_E* code */
    int result;       /* propose: the command's business result */
    uint64_t index;   /* propose: log index; read-index: the read index */
    uint64_t term;    /* term: the voter's current term */
    uint64_t id;      /* join: the node's raft id */
    const char *role; /* join: up to PROTO_PEER_ROLE_MAX bytes, or NULL */
    void *decoded;    /* owned after unpack: what role borrows from */
};

/* Pack r (version PROTO_PEER_VERSION), appended to out. Returns 0 or
 * AT_EINVAL (a positive status, a bad role). */
int proto_peer_reply_pack(const struct proto_peer_reply *r,
                          struct at_buf *out,
                          char *errmsg);

/* Unpack and check an answer (bounded by PROTO_PEER_REPLY_MAX). Returns 0,
 * AT_ETOOBIG, AT_EPROTO; release as for proto_peer_msg_unpack. */
int proto_peer_reply_unpack(const void *buf,
                            size_t len,
                            struct proto_peer_reply *out,
                            char *errmsg);
void proto_peer_reply_release(struct proto_peer_reply *r);

#endif /* PROTO_PEER_H */
