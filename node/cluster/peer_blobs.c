/* Blob serving on the peer listener: GET/HEAD of a local blob copy for a
 * node that fetches it (node/cluster/fetch.c), verified before it is sent. */
#include "common/compat.h"

#define AT_LOG_COMP "peer"

#include "node/cluster/fetch.h"
#include "node/cluster/peer_api.h"
#include "node/cluster/peer_internal.h"
#include "node/cluster/pullthrough.h"
#include "node/cluster/verify.h"

/* GET /_atoll/blobs/<digest>: the local copy, for a node that fetches a blob
 * it knows from the metadata but does not hold (node/cluster/fetch.c). */
struct peer_blob {
    struct node_peer_api *api;
    struct at_digest d;
};

static void peer_blob_serve(struct node_http_req *req,
                            int fd,
                            uint64_t size,
                            void *data)
{
    struct peer_blob *pb = data;
    char dstr[AT_DIGEST_STR_SIZE];

    if (node_http_req_method(req) == NODE_HTTP_GET) {
        pb->api->blob_serves++;
        LOG_INFO("serving blob '%s' (%" PRIu64 " bytes) to peer %s",
                 at_digest_format(&pb->d, dstr), size, node_http_req_peer(req));
    }
    node_http_resp_status(req, 200);
    node_http_resp_header(req, "Docker-Content-Digest", "%s",
                          at_digest_format(&pb->d, dstr));
    node_http_resp_header(req, "Content-Type", "application/octet-stream");
    node_http_resp_send_file(req, fd, 0, size);
}

static void peer_blob_bad(struct node_http_req *req, int status, void *data)
{
    AT_UNUSED(data);
    if (status == AT_EDIGEST)
        node_peer__error(req, 404, "BLOB_UNKNOWN",
                         "this node's copy was corrupt and is removed");
    else
        node_peer__error(req, 503, "UNAVAILABLE", "blob not readable now");
}

/* see peer_internal.h */
void node_peer__blob(struct node_peer_api *api,
                     struct node_http_req *req,
                     const char *digest)
{
    /* "<digest>/<repo>": a pull-through cache's blob, which the leader
     * fetches from the upstream when no node holds it yet */
    const char *repo = strchr(digest, '/');
    size_t dlen = repo != NULL ? (size_t)(repo - digest) : strlen(digest);
    struct at_digest d;
    uint64_t size = 0;
    int fd = -1;
    int rv;

    if (repo != NULL)
        repo++;
    if (at_digest_parse(digest, dlen, &d) != 0) {
        node_peer__error(req, 400, "DIGEST_INVALID", "invalid digest");
        return;
    }
    if (api->store == NULL || api->stopping) {
        node_peer__error(req, 503, "UNAVAILABLE", "node is stopping");
        return;
    }
    rv = storage_blob_open(api->store, &d, &fd, &size);
    if (rv == AT_ENOTFOUND && repo != NULL && api->node_api != NULL &&
        node_http_req_method(req) == NODE_HTTP_GET &&
        node_pullthrough_leads(api->node_api, repo, &d, &size)) {
        node_fetch_blob(api->node_api, req, repo, &d, size);
        return;
    }
    if (rv != 0) {
        node_peer__error(req, rv == AT_ENOTFOUND ? 404 : 503,
                         rv == AT_ENOTFOUND ? "BLOB_UNKNOWN" : "UNAVAILABLE",
                         rv == AT_ENOTFOUND ? "blob not held by this node"
                                            : "blob not readable");
        return;
    }
    if (node_http_req_method(req) == NODE_HTTP_GET && api->node_api != NULL) {
        /* verified before a byte goes out (node/cluster/verify.h); the fetching
         * node checks the digest too, but a bad copy is better dropped
         * here at once */
        struct peer_blob *pb = at_calloc(1, sizeof(*pb));
        pb->api = api;
        pb->d = d;
        node_verify_then(api->node_api, req, &d, fd, size, peer_blob_serve,
                         peer_blob_bad, pb, free);
        return;
    }
    peer_blob_serve(req, fd, size, &(struct peer_blob){ api, d });
}
