/* Pull-through caches, the cluster's side (pullthrough.c): which names are
 * under a proxy prefix, asking the leader to bring a manifest from the
 * upstream (once for the whole cluster), when a tag is to be asked again,
 * and where a blob that no node holds yet comes from.
 *
 * Who does what: the leader alone talks to an upstream. A manifest GET on
 * any node that misses (or finds a tag older than the rule's ttl) asks the
 * leader (GET PROTO_PEER_PULLTHROUGH), which runs the process's importer
 * (node/upstream.c): the manifest, its index children and its blobs'
 * links (no holder) go through the log; the asking node then reads it
 * after a read barrier. A blob GET that finds the blob linked but held
 * by no node fetches it (fetch.c) from the leader, whose peer blob
 * endpoint joins its own fetch from the upstream: ten clients on three
 * nodes make one upstream transfer, and each byte is verified on each
 * node before the tail of its answer goes out.
 *
 * Failure modes: concurrent asks of one repo:ref share one (per node,
 * and again on the leader); an upstream that fails or answers 404 leaves
 * what is cached served (a failed ask also counts as a check for the
 * ttl, so an outage does not make every pull wait for it); no leader, or
 * a leader of an older version: the ask fails with AT_ENOTLEADER or
 * AT_EPROTO and what is cached is served. */
#ifndef NODE_PULLTHROUGH_H
#define NODE_PULLTHROUGH_H

#include "node/cluster/peer.h"
#include "node/reply/context.h"

#define NODE_PT_ASK_MS 120000 /* a follower's ask of the leader */

/* One proxy rule as the loop needs it (copied by node_pullthrough_set). */
struct node_pt_rule {
    const char *name;
    const char *prefix;  /* "hub/": hub/x here is x upstream */
    const char *ca_file; /* NULL: the system's CAs */
    bool tls_verify;
    uint64_t ttl_ms;
    uint64_t timeout_ms;
};

/* The process's importer, run on the leader's loop: bring repo:ref (ref a
 * tag or "sha256:...") from the rule's upstream into the metadata, or,
 * with blob set (ref NULL), only learn the Authorization line that GETs
 * blob of repo there (node_pullthrough_set_auth). local: the digest the
 * metadata has for repo:ref now (NULL: none): the importer asks only
 * whether it is still that. cb(data, status, errmsg) later on the loop
 * (never inside the call): 0, AT_ENOTFOUND (not upstream), or another
 * AT_E* with errmsg. Returns 0, or AT_E* and cb never runs. */
typedef void (*node_pt_cb)(void *data, int status, const char *errmsg);
typedef int (*node_pt_import_fn)(struct node_api *api,
                                 const char *rule,
                                 const char *repo,
                                 const char *ref,
                                 const struct at_digest *local,
                                 const struct at_digest *blob,
                                 node_pt_cb cb,
                                 void *data);

/* The rules (none: off) and the importer, replacing the last ones. The
 * Authorization lines learnt stay for the rules that stay. refresh (may
 * be NULL) is called first by every entry point below: the process
 * re-reads the rules there when they changed. */
void node_pullthrough_set(struct node_api *api,
                          const struct node_pt_rule *v,
                          size_t n,
                          node_pt_import_fn import,
                          void (*refresh)(struct node_api *api));

/* The rule whose prefix repo is under, or NULL. Borrowed until the next
 * node_pullthrough_set. */
const struct node_pt_rule *node_pullthrough_rule(struct node_api *api,
                                                 const char *repo);

/* A manifest GET of repo:ref (is_tag: ref is a tag) under a prefix, where
 * the metadata has local (NULL: nothing): false when there is nothing to
 * ask (not under a prefix; a digest it has; a tag checked within the
 * ttl), so the caller serves what it has; else true, and cb(data, status,
 * errmsg) runs later on the loop, once the leader has it in the log (0)
 * or could not (AT_ENOTFOUND: not upstream; other: the upstream or the
 * leader failed). */
bool node_pullthrough_manifest(struct node_api *api,
                               const char *repo,
                               const char *ref,
                               bool is_tag,
                               const struct at_digest *local,
                               node_pt_cb cb,
                               void *data);

/* Where a blob of repo that no holder gave comes from: on the leader, the
 * upstream (*upstream true); else the leader (*name and *addr: its name
 * and peer address, owned by the caller). False when repo is not under a
 * prefix or no leader is known. */
bool node_pullthrough_source(struct node_api *api,
                             const char *repo,
                             bool *upstream,
                             char **name,
                             char **addr);

/* The peer path that asks the leader for blob dstr of repo: the leader
 * joins its fetch from the upstream (node_pullthrough_leads). Caller
 * frees. */
char *node_pullthrough_blob_path(const char *dstr, const char *repo);

/* True on the leader for a blob of repo (under a prefix, linked there)
 * that it does not hold: a peer's GET of it is to be answered by a fetch
 * from the upstream (fetch.h). *size: the metadata's size. */
bool node_pullthrough_leads(struct node_api *api,
                            const char *repo,
                            const struct at_digest *d,
                            uint64_t *size);

/* Ready the upstream GET of blob d of repo: 0 when it can start now (an
 * Authorization line known and fresh, or none needed); else 1 and cb runs
 * once the importer learnt one (or failed); <0: AT_E*. */
int node_pullthrough_prepare(struct node_api *api,
                             const char *repo,
                             const struct at_digest *d,
                             node_pt_cb cb,
                             void *data);

/* Stream blob dstr of repo from the upstream (peer.h's
 * node_peer_stream_url, with the Authorization line learnt). */
int node_pullthrough_stream(struct node_api *api,
                            const char *repo,
                            const char *dstr,
                            uint64_t timeout_ms,
                            node_peer_data_cb on_data,
                            node_peer_cb done,
                            void *data,
                            struct node_peer_req **out);
/* The upstream answered http to a blob GET of repo: a 401 or 403 drops
 * the Authorization line, so the next GET learns a new one. */
void node_pullthrough_answered(struct node_api *api,
                               const char *repo,
                               int http);

/* The importer learnt auth (an "Authorization: ..." line; NULL: none
 * needed) for GETs of repo's upstream name at base (the upstream URL that
 * answered): kept (a bearer token for 4 minutes, Basic until the rules
 * change). */
void node_pullthrough_set_auth(struct node_api *api,
                               const char *repo,
                               const char *base,
                               const char *auth);

/* GET PROTO_PEER_PULLTHROUGH<ref>/<repo> on the peer listener (rest: what
 * follows the path): the leader asks as node_pullthrough_manifest, then
 * answers 200, 404 MANIFEST_UNKNOWN or 503 UNAVAILABLE. */
void node_pullthrough_handle(struct node_api *api,
                             struct node_http_req *req,
                             const char *rest);

/* Counters for /metrics. */
struct node_pt_counts {
    uint64_t asks, imports, failures, fresh_hits;
};
void node_pullthrough_counts(struct node_api *api, struct node_pt_counts *c);

/* Drop everything (at stop): waiters get AT_ESHUTDOWN. */
void node_pullthrough_close(struct node_api *api);

#endif /* NODE_PULLTHROUGH_H */
