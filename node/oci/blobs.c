/* Blob reads (GET/HEAD with ranges, sent with sendfile) and blob deletes.
 *
 * A blob is served only when the FSM says it is linked in the repository
 * (pushed, mounted or referenced there). When this node does not hold the
 * bytes, HEAD answers from the metadata and GET fetches the blob from a
 * holder first (node/cluster/fetch.c); a blob the cluster knows but no holder
 * can give is a retryable 503, never a 404 (DESIGN.md section 6, C3). */
#define AT_LOG_COMP "api"
#include "common/compat.h"

#include <fcntl.h>
#include <unistd.h>

#include "node/cluster/fetch.h"
#include "node/cluster/verify.h"
#include "node/oci/handlers.h"
#include "node/reply/reply.h"

struct blob_delete {
    struct node_http_req *req;
};

static void blob_on_unlinked(void *data, int status, int result, uint64_t index)
{
    struct blob_delete *bd = data;

    node_reply_write_index(bd->req, status, index);
    if (!node_http_req_done(bd->req) &&
        !node_reply_write_failed(bd->req, status, result)) {
        node_reply_begin(bd->req, 202);
        node_http_resp_send(bd->req, NULL, 0);
    }
    node_http_req_unref(bd->req);
    free(bd);
}

static void blob_delete(struct node_api *api,
                        struct node_http_req *req,
                        const char *name,
                        const struct at_digest *d)
{
    struct blob_delete *bd;
    int rv;

    if (!meta_blob_linked(api->meta, name, d, NULL)) {
        node_reply_error(req, 404, "BLOB_UNKNOWN", "blob unknown to registry");
        return;
    }
    struct at_digest by;
    if (meta_blob_used(api->meta, name, d, &by)) {
        /* distribution unlinks it and breaks the image; 405 is what the
         * conformance suite's clean-up accepts of a registry that
         * refuses */
        char hex[AT_DIGEST_HEX_LEN + 1];
        at_digest_hex(&by, hex);
        node_reply_error(req, 405, "DENIED",
                         "blob is referenced by manifest sha256:%s of this "
                         "repository: delete that manifest first",
                         hex);
        return;
    }
    bd = at_calloc(1, sizeof(*bd));
    bd->req = req;
    node_http_req_ref(req);
    struct meta_cmd c = {
        .kind = META_CMD_BLOB_UNLINK,
        .request_id = node_http_req_header(req, "x-atoll-request-id"),
        .blob_unlink = { .repo = name, .digest = *d },
    };
    rv = meta_propose(api->meta, &c, blob_on_unlinked, bd);
    if (rv != 0) {
        node_http_req_unref(req);
        free(bd);
        if (rv == AT_EINVAL)
            node_reply_error(req, 400, "UNSUPPORTED", "invalid request id");
        else
            node_reply_error(req, 503, "UNAVAILABLE", "cannot delete now: %s",
                             at_strerror(rv));
    }
}

/* A local blob on its way out, waiting for node_verify_then. */
struct blob_get {
    struct node_api *api;
    struct at_digest d;
    char *repo; /* owned */
};

static void blob_get_free(void *data)
{
    struct blob_get *g = data;
    free(g->repo);
    free(g);
}

static void blob_get_serve(struct node_http_req *req,
                           int fd,
                           uint64_t size,
                           void *data)
{
    struct blob_get *g = data;
    node_reply_blob(g->api, req, &g->d, fd, size);
}

static void blob_get_bad(struct node_http_req *req, int status, void *data)
{
    struct blob_get *g = data;
    uint64_t size = 0;

    if (status == AT_EDIGEST && !g->api->stopping &&
        meta_blob_linked(g->api->meta, g->repo, &g->d, &size)) {
        /* the local copy was corrupt (and is gone): as if never held */
        node_fetch_blob(g->api, req, g->repo, &g->d, size);
        return;
    }
    node_http_resp_header(req, "Retry-After", "1");
    node_reply_error(req, 503, "UNAVAILABLE", "blob not readable now: %s",
                     at_strerror(status));
}

/* see blobs.h */
void node_oci_blob(struct node_api *api,
                   struct node_http_req *req,
                   const char *name,
                   const char *digest)
{
    enum node_http_method method = node_http_req_method(req);
    struct at_digest d;
    char dstr[AT_DIGEST_STR_SIZE];
    uint64_t size = 0;
    int fd = -1;
    int rv;

    if (method != NODE_HTTP_GET && method != NODE_HTTP_HEAD &&
        method != NODE_HTTP_DELETE) {
        node_reply_error(req, 405, "UNSUPPORTED", "method not allowed");
        return;
    }
    rv = at_digest_parse(digest, strlen(digest), &d);
    if (rv != 0) {
        node_reply_error(req, 400, "DIGEST_INVALID",
                         rv == AT_EUNSUPPORTED ? "unsupported digest algorithm"
                                               : "invalid digest");
        return;
    }
    if (method == NODE_HTTP_DELETE) {
        blob_delete(api, req, name, &d);
        return;
    }
    if (!meta_blob_linked(api->meta, name, &d, &size)) {
        node_reply_error(req, 404, "BLOB_UNKNOWN", "blob unknown to registry");
        return;
    }
    rv = storage_blob_open(api->store, &d, &fd, &size);
    if (rv == AT_ENOTFOUND && method == NODE_HTTP_HEAD) {
        /* Known to the cluster: the metadata has everything HEAD needs. */
        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            node_reply_blob(api, req, &d, fd, size);
            return;
        }
    } else if (rv == AT_ENOTFOUND) {
        node_fetch_blob(api, req, name, &d, size);
        return;
    } else if (rv == 0 && method == NODE_HTTP_HEAD) {
        node_reply_blob(api, req, &d, fd, size);
        return;
    } else if (rv == 0) {
        /* never bytes that differ from the digest: verified once per
         * change of the file (node/cluster/verify.h) */
        struct blob_get *g = at_calloc(1, sizeof(*g));
        g->api = api;
        g->d = d;
        g->repo = at_strdup(name);
        node_verify_then(api, req, &d, fd, size, blob_get_serve, blob_get_bad,
                         g, blob_get_free);
        return;
    }
    /* Known to the cluster but not readable here. */
    LOG_WARN("blob '%s' is linked in '%s' but not readable locally: %s",
             at_digest_format(&d, dstr), name, at_strerror(rv));
    node_http_resp_header(req, "Retry-After", "1");
    node_reply_error(req, 503, "UNAVAILABLE",
                     "blob is known but no copy is reachable now");
}
