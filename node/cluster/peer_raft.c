/* The raft upgrade on the peer listener: an authenticated HTTP upgrade
 * whose stream is handed to libraft (raft/transport.c dials it). */
#include "common/compat.h"

#define AT_LOG_COMP "peer"

#include "node/cluster/peer_api.h"
#include "node/cluster/peer_internal.h"

struct raft_accept {
    struct node_peer_api *api; /* borrowed */
    uint64_t id;
    char address[256];
    char peer_address[256]; /* X-Atoll-Peer-Address, may be "" */
    char peer[64];
};

#define PEER_HINTS_MAX 1024

static void hint_put(struct node_peer_api *api,
                     const char *name,
                     const char *addr)
{
    const char *old = at_map_gets(&api->peer_hints, name);

    if (old != NULL && strcmp(old, addr) == 0)
        return;
    if (old == NULL && api->peer_hints.len >= PEER_HINTS_MAX)
        return;
    at_free(at_map_put(&api->peer_hints, name, strlen(name), at_strdup(addr)));
}

static void on_stream_closed(uv_handle_t *h)
{
    at_free(h);
}

static void on_raft_upgraded(void *data, uv_stream_t *stream)
{
    struct raft_accept *ra = data;

    if (stream == NULL) {
        LOG_INFO("raft connection from %s failed during the upgrade", ra->peer);
    } else if (ra->api->stopping || ra->api->meta == NULL) {
        uv_close((uv_handle_t *)stream, on_stream_closed);
    } else {
        LOG_DEBUG("raft connection from node %" PRIu64 " '%s' (%s)", ra->id,
                  ra->address, ra->peer);
        if (ra->peer_address[0] != '\0') {
            meta_peer_hint(ra->api->meta, ra->address, ra->peer_address);
            hint_put(ra->api, ra->address, ra->peer_address);
        }
        meta_raft_accept(ra->api->meta, ra->id, ra->address, stream);
    }
    at_free(ra);
}

/* see peer_internal.h */
void node_peer__raft(struct node_peer_api *api, struct node_http_req *req)
{
    const char *up = node_http_req_header(req, "upgrade");
    const char *idh = node_http_req_header(req, "x-atoll-raft-id");
    const char *addr = node_http_req_header(req, "x-atoll-raft-address");
    const char *paddr = node_http_req_header(req, "x-atoll-peer-address");
    struct raft_accept *ra;
    uint64_t id = 0;
    bool addr_ok = addr != NULL && addr[0] != '\0' && strlen(addr) < 256;

    for (const char *p = addr; addr_ok && *p != '\0'; p++)
        if ((unsigned char)*p <= ' ' || *p == 127)
            addr_ok = false;
    if (up == NULL || strcasecmp(up, PROTO_PEER_RAFT_UPGRADE) != 0 ||
        idh == NULL || at_parse_u64(idh, strlen(idh), &id) != 0 || id == 0 ||
        !addr_ok || node_http_req_has_body(req)) {
        LOG_WARN("bad raft upgrade request from %s", node_http_req_peer(req));
        node_http_resp_close(req);
        node_peer__error(req, 400, "BAD_REQUEST", "bad raft upgrade request");
        return;
    }
    if (api->stopping || api->meta == NULL) {
        node_http_resp_close(req);
        node_peer__error(req, 503, "UNAVAILABLE", "node is stopping");
        return;
    }
    ra = at_calloc(1, sizeof(*ra));
    ra->api = api;
    ra->id = id;
    snprintf(ra->address, sizeof(ra->address), "%s", addr);
    if (paddr != NULL && strlen(paddr) < sizeof(ra->peer_address))
        snprintf(ra->peer_address, sizeof(ra->peer_address), "%s", paddr);
    snprintf(ra->peer, sizeof(ra->peer), "%s", node_http_req_peer(req));
    /* a leader may send us snapshot descriptors: we fetch the files */
    if (meta_snapshot_fetches(api->meta))
        node_http_resp_header(req, PROTO_PEER_SNAPSHOT_HEADER, "%s",
                              PROTO_PEER_SNAPSHOT_FETCH);
    node_http_req_upgrade(req, PROTO_PEER_RAFT_UPGRADE, on_raft_upgraded, ra);
}
