/* Blob holders as this node sees them: the order in which a transfer tries
 * them, and what this node remembers of each (bad bytes lately, transfers
 * running from it). Shared by the fetch (fetch.h: a copy kept here) and
 * the relay (relay.h: bytes passed on to one client, none kept). */
#ifndef NODE_HOLDERS_H
#define NODE_HOLDERS_H

#include "node/cluster/peer.h"
#include "node/reply/context.h"

#define NODE_HOLDER_SUSPECT_MS 300000 /* a holder that gave bad bytes */

/* How much a node is to be trusted as a source or target of blob bytes,
 * lower first: NODE_RANK_OK; NODE_RANK_SUSPECT when gossip suspects it or
 * it gave bad bytes lately (bad_bytes); NODE_RANK_GONE when gossip sees it
 * dead or left. Without gossip every node is OK (but for bad_bytes). */
enum node_rank { NODE_RANK_OK = 0, NODE_RANK_SUSPECT, NODE_RANK_GONE };
enum node_rank node_holder_rank(const struct node_api *api,
                                const char *name,
                                bool bad_bytes);

/* A holder as the order below sees it. */
struct node_holder_key {
    enum node_rank rank;
    int group;       /* 0: same region as this node */
    uint32_t rtt_us; /* gossip's round trip; 0 = unknown */
    unsigned load;   /* transfers this node runs from it */
};

/* Holder order: true when holder a is tried before b: lower rank first,
 * then same-region group 0 first, then the nearer (both round trips
 * known and a's under half of b's: noise of a millisecond or two on a LAN
 * does not reorder), then fewer running transfers. Exposed for unit
 * tests. */
bool node_holder_before(const struct node_holder_key *a,
                        const struct node_holder_key *b);

/* What this node remembers of one holder (by name). */
struct node_holder_stat {
    uint64_t suspect_until; /* at_now_ms() before which it goes last */
    unsigned transfers;     /* transfers running from it */
};

/* Holder name -> struct node_holder_stat (owned). Zeroed is not ready:
 * node_holder_stats_init. */
struct node_holder_stats {
    struct at_map m;
};
void node_holder_stats_init(struct node_holder_stats *s);
void node_holder_stats_release(struct node_holder_stats *s);
/* name's entry, created empty when missing. Valid until the release. */
struct node_holder_stat *node_holder_stat_get(struct node_holder_stats *s,
                                              const char *name);
/* name gave bytes that are not the blob: it goes last for
 * NODE_HOLDER_SUSPECT_MS. */
void node_holder_mark_suspect(struct node_holder_stats *s, const char *name);

/* One holder of a blob, to ask for its bytes. A pull-through cache's blob
 * also has a source that holds nothing yet (pullthrough.h): the upstream
 * itself (upstream: addr is only for logs), or the leader, asked on path
 * so that it fetches from the upstream. */
struct node_holder {
    char *name; /* owned */
    char *addr; /* owned: peer host:port */
    char *path; /* owned: the peer path to GET; NULL: the blob's */
    bool upstream;
    struct node_holder_key key;
};

/* The holders of d known to the metadata (meta_blob_holders) that have a
 * peer address, in the order a transfer tries them (node_holder_before;
 * ties keep the metadata's order, by name): none is left out, since gossip
 * may be wrong. Returns how many; *out (NULL when none) is freed with
 * node_holders_free. */
size_t node_holders_list(struct node_api *api,
                         const struct node_holder_stats *s,
                         const struct at_digest *d,
                         struct node_holder **out);
void node_holders_free(struct node_holder *v, size_t n);

/* Ask holder h for the bytes of blob dstr (GET /_atoll/blobs/<digest>,
 * streamed: node_peer_stream with timeout_ms, on_data, done, data, *pr)
 * and count the transfer on h's stat: *busy is set to it on success, to be
 * given back with node_holder_transfer_end when done runs. Returns
 * node_peer_stream's result (done never runs unless 0). */
int node_holder_stream(struct node_api *api,
                       struct node_holder_stats *s,
                       const struct node_holder *h,
                       const char *dstr,
                       uint64_t timeout_ms,
                       node_peer_data_cb on_data,
                       node_peer_cb done,
                       void *data,
                       struct node_peer_req **pr,
                       struct node_holder_stat **busy);
/* The transfer counted in *busy is over (no-op when NULL); *busy = NULL. */
void node_holder_transfer_end(struct node_holder_stat **busy);

#endif /* NODE_HOLDERS_H */
