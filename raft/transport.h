/* atoll's raft transport (transport.c): raft connections as HTTP upgrades
 * on the peer port, authenticated with the cluster secret. */
#ifndef META_TRANSPORT_H
#define META_TRANSPORT_H

#include <raft.h>
#include <raft/uv.h>

#include "common/common.h"

#define META_ADDRESS_MAX 255 /* node names and host:port addresses */

struct meta_dial;
/* What a peer's last upgrade answer said of it (transport.c). */
#define META_TRANSPORT_PEERS_MAX 64
struct meta_transport_peer {
    raft_id id;
    bool fetches; /* fetches snapshot files itself (snaprecv.h) */
};
struct meta_transport {
    struct raft_uv_transport t; /* t.impl points back here */
    uv_loop_t *loop;            /* borrowed */
    raft_id id;
    char address[256];      /* our name (raft address) */
    char bind_ip[64];       /* outgoing source IP, "" for any */
    char peer_address[256]; /* ours, sent as X-Atoll-Peer-Address */
    const char *secret;     /* borrowed; cluster secret, never logged */
    unsigned handshake_timeout_ms;
    /* name -> "host:port" of its peer listener; 0 or AT_ENOTFOUND */
    int (*resolve)(void *data, const char *name, char *out, size_t size);
    void *resolve_data;
    /* NULL: plain TCP. Else (peer mutual TLS) opens the connection to sa,
     * from bind (NULL: any), whose peer must prove to be host: 0 with *out
     * (malloc'd so that raft_free frees it, not reading) or a negative UV
     * error. The upgrade is written to it at once; a failed connection or
     * handshake shows as the end of its input. */
    int (*dial)(void *data,
                const struct sockaddr *sa,
                const struct sockaddr *bind,
                const char *host,
                uv_stream_t **out);
    void *dial_data;
    raft_uv_accept_cb accept_cb; /* set by listen */
    struct at_list dials;        /* struct meta_dial: handshakes in flight */
    raft_uv_transport_close_cb close_cb;
    unsigned closing_handles; /* dials not yet freed + the close timer */
    bool closing;
    uv_timer_t close_timer; /* only initialized by close */
    /* per peer, from its last upgrade answer; the oldest entry is reused */
    struct meta_transport_peer peers[META_TRANSPORT_PEERS_MAX];
    unsigned n_peers, next_peer;
};
void meta__transport_init(struct meta_transport *tr, uv_loop_t *loop);
/* Hand an inbound raft stream to libraft (or close it when not listening). */
void meta__transport_accept(struct meta_transport *tr,
                            uint64_t id,
                            const char *address,
                            uv_stream_t *stream);
/* Does node id fetch snapshot files itself? What its last upgrade answer
 * said (PROTO_PEER_SNAPSHOT_HEADER); false for a node not dialled yet. */
bool meta__transport_fetches(const struct meta_transport *tr, raft_id id);
/* "host:port" / "[v6]:port" -> host (NUL-terminated, < size) and port. */
int meta__split_hostport(const char *addr,
                         char *host,
                         size_t size,
                         unsigned *port);

#endif /* META_TRANSPORT_H */
