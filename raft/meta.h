/* Replicated registry metadata: the FSM, its commands and snapshots, on
 * libraft.
 *
 * Every metadata mutation is a command (protobuf, see proto/) appended to the
 * raft log and applied, in log order, by the FSM on every node. A single node
 * is a cluster of one voter: there is no standalone mode.
 *
 * Threads: everything here runs on the loop given to meta_open(). Read
 * functions return borrowed pointers into the FSM's state that stay valid
 * until control returns to the loop (the next apply may free them): copy what
 * you keep.
 *
 * Prefix: meta_ (libraft owns raft_). */
#ifndef META_H
#define META_H

#include <uv.h>

#include "common/common.h"

#define META_REQUEST_ID_MAX 64 /* request ids: printable ASCII, <= 64 bytes */

struct meta_config {
    const char *dir;     /* borrowed; raft log + snapshots; created */
    const char *name;    /* borrowed; node name (default "atoll") */
    uint64_t id;         /* ignored: the raft id is read from dir/node-id,
                            else 1 for a raft dir created before issue 3,
                            else meta_node_id_from_name(name), and then
                            persisted in dir/node-id */
    const char *address; /* ignored: a node's raft address is its name */
    unsigned election_timeout_ms;  /* default 1000 */
    unsigned heartbeat_timeout_ms; /* default 100 */
    /* Writes and follower reads that find no leader (an election under
     * way) wait for one this long, then fail with AT_ENOTLEADER; 0: they
     * fail at once. */
    unsigned leader_wait_ms;
    /* The leader refuses new proposals (AT_ENOSPC) while the raft dir's
     * file system has less free space than this, and takes them again
     * when space returns; 0: no check. */
    uint64_t raft_reserve_bytes;
    unsigned snapshot_threshold; /* default 16384 entries */
    unsigned snapshot_trailing;  /* default 4096 entries */
    const char *store_id; /* borrowed; this node's blob store id recorded by
                             BlobStored commands (default: name) */

    /* ---- cluster (issue 3) ----
     * A node's raft address is its name; the transport resolves names to the
     * peer host:port recorded in the FSM's node table (and a cache file in
     * dir, for restarts). */
    bool join;                  /* false: bootstrap a one-voter cluster on
                                   first start; true: start with an empty
                                   configuration and wait to be added */
    const char *peer_address;   /* borrowed; "host:port" of this node's peer
                                   listener (advertised to others) */
    const char *api_address;    /* borrowed; "host:port" of the registry API */
    const char *region;         /* borrowed; may be NULL */
    const char *cluster_secret; /* borrowed; authenticates raft connections
                                   (never logged) */
    unsigned target_voters;     /* 3 by default (1, 3 or 5) */
    bool standby;               /* never vote (edge nodes) */
    /* ---- autopilot (issue 13): the leader's management of voters, using
     * hooks->liveness (gossip's view). Without that hook, or with autopilot
     * false, joins are promoted as before and nothing else happens. */
    bool autopilot;
    unsigned autopilot_dead_after_ms;    /* replace a voter dead this long */
    unsigned autopilot_stabilization_ms; /* alive + caught up before voter */
    unsigned autopilot_max_lag;          /* entries behind = caught up */
    unsigned autopilot_reap_after_ms;    /* remove a standby dead this long
                                            (0: never) */
    /* Hooks the node layer provides so that a follower can write and read
     * consistently (both may be NULL: AT_ENOTLEADER on followers). */
    bool force_new_cluster;         /* raft_recover: this node becomes the
                                       only voter (lost quorum, run once) */
    const struct meta_hooks *hooks; /* borrowed */
    void *hooks_data;               /* borrowed */
    /* NULL: raft dials plain TCP. Else (peer mutual TLS) the node opens
     * raft's outgoing connections: see struct meta_transport's dial. */
    int (*dial)(void *data,
                const struct sockaddr *sa,
                const struct sockaddr *bind,
                const char *host,
                uv_stream_t **out);
    void *dial_data; /* borrowed */
    /* true: never fetch snapshot files (say nothing in raft upgrades), so
     * leaders send this node a snapshot's bytes, as releases before did */
    bool no_snapshot_fetch;
};

/* ---- cluster hooks ----
 * forward: send a packed command (see meta_propose_packed) to the leader and
 * call cb with the leader's answer (status as for meta_write_cb, result,
 * index). read_index: ask the leader for a read index (meta_read_index on the
 * leader) and call cb. Both run on the loop thread; cb runs exactly once if
 * they return 0. leader_id is the leader this node believes in. */
typedef void (*meta_forward_cb)(void *cb_data,
                                int status,
                                int result,
                                uint64_t index);
typedef void (*meta_index_cb)(void *cb_data, int status, uint64_t index);
/* A node as the membership layer (gossip) sees it. */
enum meta_liveness {
    META_LIVE_UNKNOWN = 0, /* not known to gossip (or no gossip) */
    META_LIVE_ALIVE,
    META_LIVE_SUSPECT,
    META_LIVE_DEAD, /* failed: stopped answering */
    META_LIVE_LEFT, /* left on purpose */
};
struct meta_hooks {
    int (*forward)(void *hooks_data,
                   uint64_t leader_id,
                   const void *cmd,
                   size_t len,
                   meta_forward_cb cb,
                   void *cb_data);
    int (*read_index)(void *hooks_data,
                      uint64_t leader_id,
                      meta_index_cb cb,
                      void *cb_data);
    /* Ask voter node_id its current term (meta_term there), passed to cb
     * as the index argument; timeout_ms bounds the exchange. The leader
     * confirms its leadership for reads this way instead of appending a
     * barrier. May be NULL: reads then use barriers only. */
    int (*term)(void *hooks_data,
                uint64_t node_id,
                uint64_t timeout_ms,
                meta_index_cb cb,
                void *cb_data);
    /* The liveness of the node named name and since when it has been in
     * that state (*since_ms, uv_now of the caller's loop; may be NULL).
     * Called on the loop thread, must not block. May be NULL: every node
     * is META_LIVE_UNKNOWN and autopilot stays idle. */
    enum meta_liveness (*liveness)(void *hooks_data,
                                   const char *name,
                                   uint64_t *since_ms);
    /* Fetch the snapshot file (index, hash) of node from_id (raft
     * address from_name) from its peer listener into fd, at its start:
     * exactly len bytes, or a failure. 0, then cb runs once on the loop
     * (status 0: all len bytes written), or an AT_E* and cb never runs.
     * May be NULL: this node does not fetch, and leaders send it the
     * snapshot's bytes (raft/snaprecv.h). */
    int (*snapshot_fetch)(void *hooks_data,
                          uint64_t from_id,
                          const char *from_name,
                          uint64_t index,
                          uint64_t hash,
                          uint64_t len,
                          int fd,
                          void (*cb)(void *cb_data, int status),
                          void *cb_data);
};

/* Business results of a command, decided deterministically by apply. */
enum meta_result {
    META_OK = 0,
    META_BLOB_UNKNOWN,     /* put manifest: a referenced blob not in the repo */
    META_MANIFEST_UNKNOWN, /* put index: a child manifest not in the repo;
                              delete manifest: no such manifest in the repo */
    META_TAG_UNKNOWN,      /* delete tag: no such tag */
    META_NAME_UNKNOWN,     /* the repository does not exist */
    META_BLOB_NOT_LINKED,  /* delete blob: not linked in the repo */
    META_NODE_CONFLICT,    /* node upsert: the name belongs to another id */
    META_NODE_UNKNOWN,     /* node remove: no such node */
    META_ACCOUNT_EXISTS,   /* user/robot create: the name is taken */
    META_ACCOUNT_UNKNOWN,  /* user/robot remove, password: no such name */
    META_ACCOUNT_LIMIT,    /* user/robot create: META_*_MAX reached */
    META_TAG_CONFLICT,     /* put manifest with a tag guard: the tag moved */
    META_INVALID = 100,    /* malformed/unknown command: a no-op */
};

const char *meta_result_str(int result);

struct meta; /* opaque: allocated by meta_open */

/* Open the raft directory, bootstrap a one-voter configuration on first
 * start, start raft. The node becomes leader within the election timeout of
 * the loop running (immediately for a single voter). Returns 0 or AT_E* with
 * *errmsg filled (AT_ERRMSG_SIZE). */
int meta_open(struct meta **out,
              uv_loop_t *loop,
              const struct meta_config *cfg,
              char *errmsg);

/* Close raft (in-flight writes complete with AT_EUNKNOWN/AT_ESHUTDOWN), then
 * call cb. Free after cb. */
void meta_close(struct meta *m, void (*cb)(void *data), void *data);

/* ---- writes ----
 * Every write is one command, a struct meta_cmd, proposed with
 * meta_propose with a request id (NULL: a fresh one is generated). The call
 * itself returns AT_EINVAL (bad request id or fields), AT_ETOOBIG,
 * AT_ENOTLEADER (not leader: nothing proposed) or AT_ESHUTDOWN, and then cb
 * never runs. cb runs exactly once, on the loop thread, if the call
 * returned 0:
 *   status 0            committed and applied here; result = enum meta_result,
 *                       index = the command's log index
 *   status AT_ENOTLEADER not applied (no leader here, retry elsewhere/later)
 *   status AT_EUNKNOWN   proposed, outcome unknown (leadership lost, I/O
 *                       error); retrying with the same request id is safe
 *   status AT_ESHUTDOWN  the node is closing (outcome unknown too)
 * A request id already applied returns the stored result of that application
 * (status 0) without applying again. */
typedef void (*meta_write_cb)(void *data,
                              int status,
                              int result,
                              uint64_t index);

struct meta_node {
    uint64_t id;
    const char *name;
    const char *peer_address;
    const char *api_address;
    const char *region; /* may be "" */
    int role;           /* 0 spare, 1 voter, 2 standby, -1 not in config */
    bool leader;
};

/* The commands, one member of struct meta_cmd each. Pointers are borrowed
 * for the meta_propose call. The proposer stamps the command with its clock
 * (timestamp_ms: PutManifest, BlobStored, BlobMount) and BlobStored with
 * this node's store id (meta_config.store_id). */
enum meta_cmd_kind {
    META_CMD_PUT_MANIFEST = 1,
    META_CMD_BLOB_STORED,
    META_CMD_BLOB_MOUNT,
    META_CMD_BLOB_UNLINK,
    META_CMD_DELETE_MANIFEST,
    META_CMD_DELETE_TAG,
    META_CMD_GC_SWEEP,
    META_CMD_SET_SETTING,
    META_CMD_NODE_UPSERT, /* membership only: meta_member_join */
    META_CMD_NODE_REMOVE, /* membership only: meta_member_remove */
    META_CMD_USER_PUT,
    META_CMD_USER_REMOVE,
    META_CMD_ROBOT_PUT,
    META_CMD_ROBOT_REMOVE,
    META_CMD_TOKEN_KEY_PUT,
    META_CMD_POLICY_SET,
};

struct meta_manifest_put {
    const char *repo;
    struct at_digest digest;
    const char *media_type;
    const void *bytes; /* exact bytes as pushed; <= 4 MiB */
    size_t len;
    const char *tag;               /* NULL when pushed by digest */
    const struct at_digest *blobs; /* config + layers (+ blob subject? no) */
    size_t nblobs;
    const struct at_digest *manifests; /* index children */
    size_t nmanifests;
    bool has_subject;
    struct at_digest subject;
    const char *artifact_type;    /* effective artifact type, may be NULL */
    const char *annotations_json; /* JSON object text, may be NULL */
    /* guard on tag: when applied, it must point to tag_expect
     * (has_tag_expect), or not exist; else META_TAG_CONFLICT */
    bool tag_guard;
    bool has_tag_expect;
    struct at_digest tag_expect;
};

/* A verified blob copy now lives in this node's store; link it to repo.
 * remote: no copy here; the blob is linked with its size and held by no
 * node yet (a pull-through cache's: its bytes are upstream until a node
 * fetches them and records itself). */
struct meta_blob_stored {
    const char *repo;
    struct at_digest digest;
    uint64_t size;
    bool remote;
};

/* Cross-repository mount: link an existing blob into repo. result
 * META_BLOB_UNKNOWN when the blob is not linked in from_repo. */
struct meta_blob_mount {
    const char *repo;
    const char *from_repo;
    struct at_digest digest;
};

struct meta_blob_unlink {
    const char *repo;
    struct at_digest digest;
};

/* Delete a manifest from a repo, and every tag of that repo pointing at it. */
struct meta_manifest_delete {
    const char *repo;
    struct at_digest digest;
};

struct meta_tag_delete {
    const char *repo;
    const char *tag;
};

/* One GcSweep (see the garbage collection section below): up to
 * PROTO_GC_BATCH_MAX (10000) blob digests and as many untagged manifests
 * (struct meta_gc_manifest), AT_EINVAL beyond; apply re-checks each one at
 * now_ms (wall clock ms) with grace_ms, manifests first. */
struct meta_gc_manifest {
    const char *repo;
    struct at_digest digest;
};
struct meta_gc_sweep {
    uint64_t now_ms;
    uint64_t grace_ms;
    const struct at_digest *digests;
    size_t ndigests;
    const struct meta_gc_manifest *manifests;
    size_t nmanifests;
};

/* A cluster setting (see the cluster settings section below). */
struct meta_setting_set {
    const char *key;
    const char *value;
};

/* The node table (membership): node.role and node.leader are ignored. */
struct meta_node_upsert {
    struct meta_node node;
    bool standby;
};
struct meta_node_remove {
    uint64_t id;
};

/* Accounts (see the accounts section below): a user or robot record. The
 * builder stamps created_ms with the proposer's clock. */
enum meta_put_mode {
    META_PUT_UPSERT = 0, /* create or replace the whole record */
    META_PUT_CREATE,     /* create; META_ACCOUNT_EXISTS if the name is taken */
    META_PUT_PASSWORD,   /* users only: replace the hash of an existing user
                            (META_ACCOUNT_UNKNOWN if none), keep the rest */
};
struct meta_user_put {
    const char *name;
    const char *password_hash; /* crypt(3) string, never a password */
    const char *const *groups; /* ngroups names */
    size_t ngroups;
    bool admin;
    enum meta_put_mode mode;
};
struct meta_robot_perm {
    const char *repository; /* glob: "*" one level, "**" any */
    unsigned actions;       /* META_ACTION_* bits */
};
struct meta_robot_put {
    const char *name;        /* without "robot$" */
    const char *secret_hash; /* crypt(3) string */
    uint64_t expires_ms;     /* wall clock ms; 0: never */
    const struct meta_robot_perm *perms;
    size_t nperms;
    enum meta_put_mode mode; /* META_PUT_UPSERT or META_PUT_CREATE */
};
struct meta_account_remove {
    const char *name;
};
/* A token signing key (see the token keys section below). */
struct meta_token_key_put {
    const char *kid; /* meta_token_kid_ok */
    const char *pem; /* private key, PEM; never logged */
    bool if_none; /* only if there is no key yet (else META_ACCOUNT_EXISTS) */
};
struct meta_policy_rule; /* see the access policy section below */
/* Replace the access policy by nrules rules (reset: remove it). */
struct meta_policy_set {
    const struct meta_policy_rule *rules;
    size_t nrules;
    bool reset;
};

struct meta_cmd {
    enum meta_cmd_kind kind; /* says which member of the union is set */
    const char *request_id;  /* printable ASCII, <= 64 bytes; NULL: fresh */
    union {
        struct meta_manifest_put put_manifest;
        struct meta_blob_stored blob_stored;
        struct meta_blob_mount blob_mount;
        struct meta_blob_unlink blob_unlink;
        struct meta_manifest_delete delete_manifest;
        struct meta_tag_delete delete_tag;
        struct meta_gc_sweep gc_sweep;
        struct meta_setting_set set_setting;
        struct meta_node_upsert node_upsert;
        struct meta_node_remove node_remove;
        struct meta_user_put user_put;
        struct meta_account_remove user_remove;
        struct meta_robot_put robot_put;
        struct meta_account_remove robot_remove;
        struct meta_token_key_put token_key_put;
        struct meta_policy_set policy_set;
    };
};

/* Propose c (borrowed for the call): on the leader here, on a follower
 * through hooks->forward, answered as described above. Node table commands
 * are refused (AT_EINVAL): membership goes through meta_member_join and
 * meta_member_remove. When it returns non-zero, meta_errmsg(m) says why. */
int meta_propose(struct meta *m,
                 const struct meta_cmd *c,
                 meta_write_cb cb,
                 void *data);

/* Why the last proposal on m that failed did (meta_propose, or the
 * NodeUpsert/NodeRemove of a membership change): borrowed until the next
 * call on m; "" if none failed yet. */
const char *meta_errmsg(const struct meta *m);

/* ---- garbage collection (issue 4) ----
 * meta_gc_candidates: every blob no manifest references whose last
 * BlobStored/BlobMount is at least grace_ms before now_ms (wall clock ms),
 * in digest order (local state). A GcSweep (META_CMD_GC_SWEEP) of up to
 * PROTO_GC_BATCH_MAX (10000) digests is proposed like any write (forwarded
 * by a follower); apply re-checks each digest in log order and deletes the
 * records of those still unreferenced and old enough (result META_OK).
 * meta_gc_take_removed hands over the digests whose records were deleted
 * on this node since the last call (GcSweep applies, snapshot installs):
 * the node deletes its local copies. *out is owned by the caller
 * (at_free); returns the count. */
typedef void (*meta_blob_cb)(void *data,
                             const struct at_digest *d,
                             uint64_t size);
struct meta_gc_removed {
    struct at_digest digest;
    /* the removed record's stored_ms (else the sweep's timestamp_ms -
     * grace_ms): a local file changed after it belongs to a re-upload
     * whose BlobStored is still in flight (keep it); 0 when unknown */
    uint64_t cutoff_ms;
};
void meta_gc_candidates(struct meta *m,
                        uint64_t now_ms,
                        uint64_t grace_ms,
                        meta_blob_cb each,
                        void *data);
size_t meta_gc_take_removed(struct meta *m, struct meta_gc_removed **out);
/* Untagged manifests (policy gc_untagged): meta_gc_manifest_candidates
 * lists up to max manifests that, in their repository, have no tag, are no
 * child of an index, are the subject of no manifest, are no referrer of a
 * subject still there, and were last pushed at least grace_ms before now_ms
 * (local state; an index before the children it frees). The repo string is
 * borrowed for the call. A GcSweep with manifests re-checks each one in
 * order and deletes those still collectable from their repository (as a
 * DeleteManifest would); their blobs are left to a later blob sweep. */
typedef void (*meta_gc_manifest_cb)(void *data,
                                    const char *repo,
                                    const struct at_digest *d);
void meta_gc_manifest_candidates(struct meta *m,
                                 uint64_t now_ms,
                                 uint64_t grace_ms,
                                 size_t max,
                                 meta_gc_manifest_cb each,
                                 void *data);
/* True once after each snapshot install: a node that installs a snapshot
 * right after a restart does not know which records it lost, so it scans
 * its store for copies without a record (the node layer). */
bool meta_gc_take_scan(struct meta *m);

/* ---- cluster settings ----
 * A small map replicated through the log (SetSetting, META_CMD_SET_SETTING),
 * e.g. "placement". key: [a-z_]{1,64}; value: up to 64 KiB, no NUL; ""
 * removes the key. meta_setting_get: the value applied here (borrowed until
 * the next apply) or NULL, and the log index of its last change (0 when
 * unset). */
const char *meta_setting_get(struct meta *m, const char *key, uint64_t *index);

/* ---- accounts: users and robot accounts ----
 * Replicated records (UserPut, UserRemove, RobotPut, RobotRemove commands,
 * in snapshots), so that one change holds on every node. A password or
 * robot secret never reaches this module: the proposer hashes it (bcrypt,
 * in the node's thread pool) and proposes the hash. The reads below return
 * records borrowed until control returns to the loop; a record's index is
 * the log index of its last change, so a cache keyed by (name, index) is
 * invalidated by any change of the record. */
#define META_ACCOUNT_NAME_MAX 64    /* user, robot and group names */
#define META_ACCOUNT_HASH_MAX 128   /* crypt(3) strings */
#define META_GROUPS_MAX       32    /* groups of a user */
#define META_USERS_MAX        10000 /* users in the cluster */
#define META_ROBOTS_MAX       10000 /* robot accounts in the cluster */
#define META_ROBOT_PERMS_MAX  64    /* permissions of a robot */
#define META_GLOB_MAX         255   /* a permission's repository glob */
#define META_ACTION_PULL      1u
#define META_ACTION_PUSH      2u
#define META_ACTION_DELETE    4u
#define META_ACTION_OVERWRITE 8u /* re-point an existing tag */
#define META_ACTIONS_ALL      15u

/* User and group names: [A-Za-z0-9][A-Za-z0-9._@-]{0,63} (no ':' for
 * Basic auth, no '$' so that no user looks like a robot). */
bool meta_user_name_ok(const char *name);
/* Robot names (without "robot$"): [a-z0-9][a-z0-9._-]{0,63}. */
bool meta_robot_name_ok(const char *name);
/* A crypt(3) string: "$" then [A-Za-z0-9./$], 20..128 bytes. */
bool meta_account_hash_ok(const char *hash);
/* A repository glob: 1..255 bytes of [a-z0-9._/-] and '*'. */
bool meta_repo_glob_ok(const char *glob);

struct meta_user {
    const char *name;
    const char *password_hash;
    const char *const *groups;
    size_t ngroups;
    bool admin;
    uint64_t created_ms;
    uint64_t index; /* log index of its last change */
};
struct meta_robot {
    const char *name; /* without "robot$" */
    const char *secret_hash;
    uint64_t expires_ms; /* 0: never */
    const struct meta_robot_perm *perms;
    size_t nperms;
    uint64_t created_ms;
    uint64_t index; /* log index of its last change */
};
typedef void (*meta_user_cb)(void *data, const struct meta_user *u);
typedef void (*meta_robot_cb)(void *data, const struct meta_robot *r);
/* The user or robot applied here, or NULL. */
const struct meta_user *meta_user_get(struct meta *m, const char *name);
const struct meta_robot *meta_robot_get(struct meta *m, const char *name);
/* Every user (robot) applied here, sorted by name. */
void meta_users_list(struct meta *m, meta_user_cb each, void *data);
void meta_robots_list(struct meta *m, meta_robot_cb each, void *data);

/* ---- token signing keys ----
 * The keys that sign bearer tokens (TokenKeyPut, META_CMD_TOKEN_KEY_PUT,
 * in snapshots), replicated so that every node verifies every node's
 * tokens. The private key is in the log and in snapshots as PEM: who can
 * read a raft directory can sign tokens. Apply appends a key and keeps
 * the newest META_TOKEN_KEYS_KEEP; the newest one signs, the others still
 * verify until they drop out. A put with if_none is refused
 * (META_ACCOUNT_EXISTS) when a key exists, so that nodes making the first
 * key at once agree on one; a kid already kept is refused the same way.
 * Apply checks shapes only (kid characters, PEM size and armour): the
 * node checks that the PEM holds a key of that kid when it loads it. */
#define META_TOKEN_KEYS_KEEP 3
#define META_TOKEN_KID_MAX   64
#define META_TOKEN_PEM_MAX   4096
/* [A-Za-z0-9_-]{1,64} */
bool meta_token_kid_ok(const char *kid);
struct meta_token_key {
    const char *kid;
    const char *pem;
    uint64_t created_ms;
    uint64_t index; /* log index of its TokenKeyPut */
};
typedef void (*meta_token_key_cb)(void *data, const struct meta_token_key *k);
/* Each key applied here, oldest first (the last one signs), borrowed for
 * the call; returns how many. */
size_t meta_token_keys_list(struct meta *m, meta_token_key_cb each, void *data);
/* Changes whenever the key set does: the log index of the newest key (0
 * without keys). */
uint64_t meta_token_keys_version(struct meta *m);

/* ---- access policy ----
 * Which callers may pull, push, delete or overwrite (META_ACTION_*) which
 * repositories: a list of rules replaced as a whole by PolicySet
 * (META_CMD_POLICY_SET), in snapshots. A rule names callers (users,
 * groups, anonymous callers, every authenticated caller) and a repository
 * glob (a star matches within one path level, two stars across levels). Among
 * the rules whose glob matches the repository and that name the caller, the
 * ones with the longest glob decide: their actions, added up (a rule with
 * no action denies). No rule: nothing allowed. Admin users and robot
 * accounts are not decided by the policy (the node's gate). */
#define META_POLICY_RULES_MAX    1000 /* rules of a policy */
#define META_POLICY_SUBJECTS_MAX 32   /* users, and groups, of one rule */

struct meta_policy_rule {
    const char *repository;   /* glob (meta_repo_glob_ok) */
    const char *const *users; /* nusers user names */
    size_t nusers;
    const char *const *groups; /* ngroups group names */
    size_t ngroups;
    bool anonymous;     /* callers without credentials */
    bool authenticated; /* every caller with valid credentials */
    unsigned actions;   /* META_ACTION_* bits; 0: none */
};
struct meta_policy {
    const struct meta_policy_rule *rules;
    size_t nrules;
    uint64_t index; /* log index of the PolicySet that set it */
};
/* Who asks, for a decision. */
struct meta_caller {
    const char *user;          /* NULL: anonymous */
    const char *const *groups; /* ngroups, borrowed */
    size_t ngroups;
};

/* Does glob match the whole repository name repo? A star matches any
 * run of characters but '/', two stars any run at all (so a glob "a/"
 * then two stars matches "a/b" and "a/b/c", not "a"). Linear in the
 * product of the lengths. */
bool meta_repo_glob_match(const char *glob, const char *repo);
/* The actions rules[0..n) allow caller c on repo (longest match, see
 * above). Pure: for tests and for the gate. */
unsigned meta_policy_decide(const struct meta_policy_rule *rules,
                            size_t n,
                            const struct meta_caller *c,
                            const char *repo);
/* The policy applied here (borrowed until control returns to the loop),
 * or NULL when none was ever set (or the last PolicySet reset it). */
const struct meta_policy *meta_policy_get(struct meta *m);
/* True once any user, robot account or policy is applied here: the node's
 * access control turns itself on (auth auto). */
bool meta_access_defined(struct meta *m);

/* Tagged pushes applied here (PutManifest with a tag) while recording is
 * on (local: the placement prefetcher turns it on when a rule names this
 * node's region). take hands the queue over (free with meta_pushes_free). */
struct meta_push {
    char *repo; /* owned */
    struct at_digest manifest;
};
void meta_pushes_record(struct meta *m, bool on);
size_t meta_pushes_take(struct meta *m, struct meta_push **out);
void meta_pushes_free(struct meta_push *p, size_t n);

/* Changes applied here (manifest pushes, manifest and tag deletes), in
 * log order, while recording is on (local: the node's event stream turns
 * it on when webhooks are configured). take hands them over, oldest
 * first (free with meta_events_free), and says how many were dropped
 * since the last take (META_EVENTS_MAX waiting). */
enum meta_event_kind {
    META_EVENT_PUSH,            /* PutManifest: by tag, or by digest */
    META_EVENT_DELETE_MANIFEST, /* and every tag that pointed to it */
    META_EVENT_DELETE_TAG,
};
struct meta_event {
    enum meta_event_kind kind;
    uint64_t index;          /* its log entry */
    uint64_t time_ms;        /* the proposer's clock */
    char *repo;              /* owned */
    char *tag;               /* owned; NULL: none */
    char *media_type;        /* owned; NULL: not known (deletes) */
    bool has_digest;         /* a tag delete of a tag not found: false */
    struct at_digest digest; /* the manifest (a tag delete: its target) */
    uint64_t size;           /* a push: the manifest's bytes */
};
void meta_events_record(struct meta *m, bool on);
size_t meta_events_take(struct meta *m,
                        struct meta_event **out,
                        uint64_t *dropped);
void meta_events_free(struct meta_event *c, size_t n);
/* The strings of one event (not the event itself). */
void meta_events_free_one(struct meta_event *e);
/* Is this node's store recorded as holding blob d? */
bool meta_blob_held_here(struct meta *m, const struct at_digest *d);
/* Every blob (digest, size) of manifest d in repo, and of its children
 * when d is an index (one level), each blob once per child at most. */
void meta_manifest_blobs(struct meta *m,
                         const char *repo,
                         const struct at_digest *d,
                         void (*each)(void *data,
                                      const struct at_digest *blob,
                                      uint64_t size),
                         void *data);

/* ---- linearizable read barrier ----
 * cb(data, 0) once this node has applied everything committed before the
 * call (a leader proves leadership with a raft_barrier shared by every read
 * waiting in the same window; a single voter with nothing pending answers on
 * the next loop iteration). AT_ENOTLEADER / AT_ETIMEDOUT / AT_ESHUTDOWN
 * otherwise. */
typedef void (*meta_read_cb)(void *data, int status);
int meta_read_barrier(struct meta *m, meta_read_cb cb, void *data);
/* True when a read barrier would pass at once: this node is the only
 * voter, leads, and has applied everything in its log. A caller may then
 * read local state without meta_read_barrier (and its loop turn). */
bool meta_read_now(struct meta *m);

/* ---- reads of local applied state ---- */

struct meta_manifest {
    struct at_digest digest;
    const char *media_type;
    /* the body when it is in memory, else NULL: meta_manifest_read copies
     * it (from the FSM's body file) in either case */
    const uint8_t *bytes;
    size_t len;
    const char *artifact_type;       /* NULL if none */
    const char *annotations_json;    /* NULL if none */
    const struct at_digest *subject; /* NULL if none */
};

bool meta_repo_exists(struct meta *m, const char *repo);
/* 0 or AT_ENOTFOUND. */
int meta_tag_resolve(struct meta *m,
                     const char *repo,
                     const char *tag,
                     struct at_digest *out);
/* The manifest if it is in repo, else NULL. */
const struct meta_manifest *meta_manifest_find(struct meta *m,
                                               const char *repo,
                                               const struct at_digest *d);
/* Copy mf's len bytes into buf. 0, or AT_EIO when the body file cannot
 * be read (mf from meta_manifest_find, before any other call into m). */
int meta_manifest_read(struct meta *m,
                       const struct meta_manifest *mf,
                       void *buf);
/* Blob linked in repo (pushed, mounted or referenced there). */
bool meta_blob_linked(struct meta *m,
                      const char *repo,
                      const struct at_digest *d,
                      uint64_t *size);
/* A manifest of repo references blob d; *by (may be NULL) names one. A
 * blob delete refuses such a blob: unlinking it would break the image. */
bool meta_blob_used(struct meta *m,
                    const char *repo,
                    const struct at_digest *d,
                    struct at_digest *by);
/* A repository that links blob d and that ok() accepts (asked of a
 * bounded number of them), or NULL: the source of a mount without
 * `from`. The name lives until the next apply (use it at once). */
const char *meta_blob_source(struct meta *m,
                             const struct at_digest *d,
                             bool (*ok)(void *data, const char *repo),
                             void *data);
/* Blob known anywhere in the cluster (some store holds it). */
bool meta_blob_known(struct meta *m, const struct at_digest *d, uint64_t *size);

/* Sorted listings. each() is called for up to limit names strictly after
 * `last` (NULL: from the start), in lexical order; *more is set when names
 * remain after the last one given. tags: AT_ENOTFOUND if the repo is
 * unknown. catalog: repositories holding at least one manifest (blobs
 * alone, as in a push under way or after the last manifest's delete, are
 * not listed). */
typedef void (*meta_name_cb)(void *data, const char *name);
int meta_tags_list(struct meta *m,
                   const char *repo,
                   const char *last,
                   size_t limit,
                   meta_name_cb each,
                   void *data,
                   bool *more);
void meta_catalog_list(struct meta *m,
                       const char *last,
                       size_t limit,
                       meta_name_cb each,
                       void *data,
                       bool *more);

/* Every manifest in repo whose subject is *subject, in digest order. */
typedef void (*meta_manifest_cb)(void *data, const struct meta_manifest *mf);
void meta_referrers(struct meta *m,
                    const char *repo,
                    const struct at_digest *subject,
                    meta_manifest_cb each,
                    void *data);

/* ---- cluster operations ---- */

/* Leader side of a forwarded write: cmd is the packed command a follower's
 * forward hook sent (validated: AT_EPROTO/AT_ECORRUPT for garbage). Applies
 * it like meta_propose does (dedup by its request id included). */
int meta_propose_packed(struct meta *m,
                        const void *cmd,
                        size_t len,
                        meta_write_cb cb,
                        void *data);

/* Leader side of a follower read: prove leadership (shared batched barrier)
 * and answer with the index a follower must reach (the leader's applied
 * index once the barrier applied). AT_ENOTLEADER on followers.
 * On a follower, meta_read_barrier itself goes through hooks->read_index
 * then waits (<= 10 s, AT_ETIMEDOUT) for the local apply; writes go
 * through hooks->forward then wait (<= 10 s, else AT_EUNKNOWN). */
int meta_read_index(struct meta *m, meta_index_cb cb, void *data);
/* meta_read_index for a read-index request from node from_id, which was in
 * raft term from_term when it sent the request (after the reads it serves
 * arrived there). When from_id is another voter in this leader's term, it
 * counts as one confirmation of this node's leadership for that request:
 * with three voters no other voter needs to be asked (one round trip per
 * follower read). from_id 0: meta_read_index. */
int meta_read_index_for(struct meta *m,
                        uint64_t from_id,
                        uint64_t from_term,
                        meta_index_cb cb,
                        void *data);
/* This node's current raft term (answers a leader's hooks->term query). */
uint64_t meta_term(struct meta *m);

/* Wait until this node has applied index (or timeout_ms passes:
 * AT_ETIMEDOUT; AT_ESHUTDOWN on close). cb(data, status, applied index)
 * runs once, never inside the call. */
int meta_wait_applied(struct meta *m,
                      uint64_t index,
                      uint64_t timeout_ms,
                      meta_index_cb cb,
                      void *data);

/* Raft connections arrive on the node's peer listener: after it has checked
 * the cluster secret and answered the upgrade, it hands the stream over.
 * Takes ownership of stream (allocated with malloc, as libraft frees it). */
void meta_raft_accept(struct meta *m,
                      uint64_t id,
                      const char *address,
                      uv_stream_t *stream);

/* The dialer of a raft connection also sends "X-Atoll-Peer-Address:
 * host:port" (its own peer listener). The peer listener passes it here,
 * with X-Atoll-Raft-Address, before meta_raft_accept: a node that just
 * joined knows nobody's address until it has applied the node table, yet
 * must answer the leader's first messages. Ignored for malformed values;
 * the node table wins over hints. */
void meta_peer_hint(struct meta *m, const char *name, const char *peer_address);

/* The snapshot file (index, hash) in the raft dir, opened for reading for
 * a peer that fetches it (the peer listener sends it): the fd with *len
 * its length, or a negative AT_ENOTFOUND (no such file: pruned, or never
 * ours), AT_EIO, AT_ESHUTDOWN. The name is made from the two numbers. */
int meta_snapshot_file_open(struct meta *m,
                            uint64_t index,
                            uint64_t hash,
                            uint64_t *len);

/* This node fetches snapshot files itself: its raft upgrade answers say
 * so (proto/peer.h PROTO_PEER_SNAPSHOT_HEADER). */
bool meta_snapshot_fetches(const struct meta *m);

typedef void (*meta_node_cb)(void *data, const struct meta_node *n);

/* The raft id a node named name gets on first start: stable, in
 * 2..2^31-1 (libraft 0.15's uv transport keeps peer ids in an unsigned
 * int). */
uint64_t meta_node_id_from_name(const char *name);

/* Every node of the FSM's node table (plus configuration members missing
 * from it), with its raft role, sorted by name. */
void meta_members(struct meta *m, meta_node_cb each, void *data);
/* The nodes of the node table whose name is a store id holding blob d
 * (BlobStored), this node excluded: same-region nodes first (this
 * node's region), then the others, each group sorted by name. Nothing when
 * the blob is unknown. n and its strings are borrowed for the call. */
void meta_blob_holders(struct meta *m,
                       const struct at_digest *d,
                       meta_node_cb each,
                       void *data);
/* The blobs some manifest references (config and layers), walked a
 * bounded piece at a time for the leader's min_copies scan (the node
 * layer): each(data, repo, digest, size) for a blob linked in repo and
 * referenced by at least one manifest (of any repository: PutManifest
 * needs its blobs linked in its own, so every referenced blob is met),
 * once per repository linking it. Local state, no order. A zeroed cursor
 * starts a walk; each step visits at most budget links (and repositories)
 * and returns true once the walk is at its end (the cursor is zeroed for
 * the next one). Writes between steps are fine: the walk keeps slot
 * positions, not pointers, so it may miss or repeat what moved meanwhile
 * (the next walk sees it), never reads freed memory. The cost of a step
 * is its budget, whatever the state's size; the walk is O(repositories +
 * links), not O(manifests). */
struct meta_blob_walk {
    size_t repo; /* slot of the repository being walked */
    size_t link; /* slot within its blob links */
};
typedef void (*meta_ref_blob_cb)(void *data,
                                 const char *repo,
                                 const struct at_digest *d,
                                 uint64_t size);
bool meta_referenced_blobs_step(struct meta *m,
                                struct meta_blob_walk *w,
                                size_t budget,
                                meta_ref_blob_cb each,
                                void *data);
/* The node this node believes is leader; false if none known. */
bool meta_leader(struct meta *m, struct meta_node *out);

/* Leader only: record a joining node (name, id, addresses) through the log,
 * add it to the raft configuration as spare, then promote it (voter up to
 * target_voters, else standby; standby when asked; with autopilot on, a
 * standby that the leader's housekeeping makes a voter once it has been
 * alive and caught up for the stabilization time). cb(data, status) when
 * the node has this role. n->id 0: meta_node_id_from_name(n->name) (what a
 * node with a fresh raft dir uses); n->role and n->leader are ignored.
 * Changes run one at a time (queued). Returns AT_EINVAL (name or
 * peer_address missing, fields over 255 bytes or with spaces), AT_EEXIST
 * (the name is recorded with another id or peer address -> 409),
 * AT_ENOTLEADER. cb status: 0, AT_ETIMEDOUT (catch-up too slow: the node
 * stays a spare, retried by the leader's housekeeping), AT_ENOTLEADER /
 * AT_EUNKNOWN (leadership lost), AT_ESHUTDOWN. Joining again with the same
 * name and address is a no-op that answers 0. */
int meta_member_join(struct meta *m,
                     const struct meta_node *n,
                     bool standby,
                     void (*cb)(void *data, int status),
                     void *data);
/* Leader only: remove a node (by name) from the node table, then from the
 * configuration (queued like joins). AT_ENOTFOUND for an unknown name.
 * Removing the leader itself makes it step down once committed. When the
 * voters fall under target_voters, the leader promotes a non-standby
 * standby/spare on its own (one change at a time, retried every 5 s). */
int meta_member_remove(struct meta *m,
                       const char *name,
                       void (*cb)(void *data, int status),
                       void *data);
/* Leader only: transfer leadership (name NULL: a healthy voter that is not
 * handing its vote over, per autopilot; else any up-to-date voter).
 * cb status 0 when another node leads afterwards, else AT_ETIMEDOUT.
 * AT_ENOTFOUND (unknown name), AT_EINVAL (not a voter, or self). */
int meta_transfer(struct meta *m,
                  const char *name,
                  void (*cb)(void *data, int status),
                  void *data);

/* Leader only, autopilot on: node name (not this node) hands its vote
 * over before it stops (a pod's preStop): a healthy, stable standby that
 * may vote is promoted (same region first), then name is demoted to
 * standby, keeping live voters a majority on the way. cb status: 0 once
 * name is not a voter (at once if it was none), AT_EAGAIN when no
 * standby alive may vote, AT_ETIMEDOUT after 30 s, AT_ENOTLEADER when
 * leadership is lost, AT_ESHUTDOWN on close. Returns AT_ENOTLEADER,
 * AT_EUNSUPPORTED (autopilot off), AT_ENOTFOUND (unknown name), AT_EINVAL
 * (this node: transfer leadership first), AT_EBUSY (8 waiting). */
int meta_member_handoff(struct meta *m,
                        const char *name,
                        void (*cb)(void *data, int status),
                        void *data);

/* ---- autopilot (issue 13) ----
 * The leader manages voters with gossip's view (hooks->liveness):
 * a node becomes a voter once alive and caught up for the stabilization
 * time, a voter dead for autopilot_dead_after_ms is replaced by a healthy
 * standby (promoted first, the dead one demoted to standby once that
 * committed), a node that left is removed. meta_autopilot_status tells
 * what it did last and, on the leader, how it sees each member. */
#define META_AUTOPILOT_ACTIONS 16 /* remembered actions */
struct meta_autopilot_action {
    uint64_t time_ms; /* wall clock ms */
    const char *kind; /* "promote" | "demote" | "remove" */
    const char *node; /* the node acted on */
    /* e.g. "to voter to replace 'n1' (dead 125s, region eu)" */
    const char *reason;
};
struct meta_autopilot_node {
    const char *name;
    enum meta_liveness liveness; /* gossip's view (this node: ALIVE) */
    int role;                    /* as struct meta_node's role */
    bool caught_up;              /* within autopilot_max_lag entries */
    bool healthy;                /* alive and caught up */
    uint64_t stable_since_ms;    /* wall clock ms healthy since; 0: not
                                    healthy, or the leader (always stable) */
};
struct meta_autopilot_status {
    bool enabled;    /* autopilot on and a liveness hook */
    bool configured; /* meta_config.autopilot (idle without the hook) */
    bool leader;     /* nodes is filled on the leader only */
    /* borrowed until control returns to the loop; oldest first */
    const struct meta_autopilot_action *actions;
    size_t nactions;
    const struct meta_autopilot_node *nodes; /* in configuration order */
    size_t nnodes;
};
/* The autopilot's state on this node (actions: the ones it took while it
 * led). Never fails. */
void meta_autopilot_status(struct meta *m, struct meta_autopilot_status *out);

struct meta_status {
    uint64_t id;
    const char *name;
    int state; /* 0 unavailable, 1 follower, 2 candidate, 3 leader */
    uint64_t leader_id;
    uint64_t term;
    uint64_t commit_index;
    uint64_t last_index;
    uint64_t applied_index;
    uint64_t repos, tags, manifests, blobs;
    /* the manifest body file (bodies.h): bytes of bodies still referenced,
     * of bodies dropped since it was started; in_file false: the bodies
     * are on the heap (no file could be opened) */
    uint64_t body_live, body_dead;
    bool body_in_file;
    bool removed; /* meta_removed */
    /* times this node saw the leader change to another known leader
     * (sampled every 100 ms by its housekeeping tick), for /metrics */
    uint64_t leader_changes;
    /* a leader is known and heard from: this node leads, or follows one
     * that reached it within the election timeout (libraft itself waits
     * 1 to 2 election timeouts before it gives a silent leader up) */
    bool leader_fresh;
    /* the commit guard (raft/guard.h): AppendEntries results held back
     * from this node as a new leader, dropped from a full hold queue, and
     * barriers it appended on winning an election */
    uint64_t guard_held, guard_dropped, guard_barriers;
};
void meta_status_get(struct meta *m, struct meta_status *st);
/* This node leads now (meta_status_get's state 3, without the rest). */
bool meta_is_leader(struct meta *m);

/* One other server of the raft configuration as the leader sees it:
 * match_index is the last entry it acknowledged (0: none yet in this
 * term), lag = last_index - match_index. name is borrowed for the call
 * (its node record's name, or its raft address without one). */
struct meta_peer_progress {
    uint64_t id;
    const char *name;
    uint64_t match_index;
    uint64_t lag;
};
typedef void (*meta_peer_progress_cb)(void *data,
                                      const struct meta_peer_progress *p);
/* On the leader: call each once per other server of the configuration,
 * spares included (they get no entries), in configuration order, synchronously.
 * Elsewhere (or without progress yet) it calls nothing. Cheap: reads libraft's
 * progress array, no I/O. */
void meta_peer_progress_each(struct meta *m,
                             meta_peer_progress_cb each,
                             void *data);
/* This node was in the raft configuration and has been removed from it
 * (atoll members remove): it gets no more log entries. */
bool meta_removed(struct meta *m);
/* Is raft id id a member: in the raft configuration or the node table? */
bool meta_is_member(struct meta *m, uint64_t id);

#endif /* META_H */
