/* Snapshot files on the peer listener: GET /_atoll/snapshots/<index>-<hash>
 * sends this node's snapshot file of that index and hash (sendfile) to a
 * node that fetches it instead of receiving it inside raft
 * (raft/snaprecv.h). The name is parsed into two numbers and the path is
 * made from them, never from the request's text. */
#include "common/compat.h"

#define AT_LOG_COMP "peer"

#include "node/cluster/peer_api.h"
#include "node/cluster/peer_internal.h"

/* see peer_internal.h */
void node_peer__snapshot(struct node_peer_api *api,
                         struct node_http_req *req,
                         const char *rest)
{
    uint64_t index, hash, len = 0;

    if (!proto_peer_snapshot_parse(rest, &index, &hash)) {
        node_peer__error(req, 400, "BAD_REQUEST",
                         "a snapshot is named <index>-<hash>, 16 lower-case "
                         "hex digits each");
        return;
    }
    if (api->stopping) {
        node_peer__error(req, 503, "UNAVAILABLE", "node is stopping");
        return;
    }
    int fd = meta_snapshot_file_open(api->meta, index, hash, &len);
    if (fd < 0) {
        node_peer__error(
            req, fd == AT_ENOTFOUND ? 404 : 503,
            fd == AT_ENOTFOUND ? "SNAPSHOT_UNKNOWN" : "UNAVAILABLE",
            fd == AT_ENOTFOUND ? "no such snapshot file here (a newer one "
                                 "replaced it)"
                               : "snapshot file not readable");
        return;
    }
    if (node_http_req_method(req) == NODE_HTTP_GET) {
        api->snapshot_serves++;
        LOG_INFO("sending snapshot file %" PRIu64 " (%" PRIu64
                 " bytes) to peer %s",
                 index, len, node_http_req_peer(req));
    }
    node_http_resp_status(req, 200);
    node_http_resp_header(req, "Content-Type", "application/octet-stream");
    node_http_resp_send_file(req, fd, 0, len);
}
