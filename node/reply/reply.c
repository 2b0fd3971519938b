/* The reply toolkit (see reply.h): headers every answer carries, OCI
 * errors, write outcomes and blob files. */
#include "common/compat.h"

#include <unistd.h>

#include "node/reply/reply.h"

/* see reply.h */
void node_reply_bind(struct node_http_req *req, struct node_reply_ctx *ctx)
{
    node_http_req_set_context(req, ctx);
}

/* see reply.h */
bool node_reply_relayed(const struct node_http_req *req)
{
    const struct node_reply_ctx *ctx = node_http_req_context(req);
    return ctx != NULL && ctx->relayed;
}

/* see reply.h */
void node_reply_begin(struct node_http_req *req, int status)
{
    struct node_reply_ctx *ctx = node_http_req_context(req);
    struct node_api *api = ctx != NULL ? ctx->api : NULL;

    if (api != NULL)
        api->status_counts[status >= 100 && status < 600 ? status / 100 : 0]++;
    node_http_resp_status(req, status);
    node_http_resp_header(req, "Docker-Distribution-API-Version",
                          "registry/2.0");
    /* A relayed answer goes back through the node the client asked, and
     * this node's index means nothing there. */
    if (api != NULL && api->meta != NULL && !ctx->relayed) {
        struct meta_status st;
        meta_status_get(api->meta, &st);
        node_http_resp_header(req, "X-Atoll-Applied-Index", "%" PRIu64,
                              st.applied_index);
    }
}

/* see reply.h */
void node_reply_write_index(struct node_http_req *req,
                            int status,
                            uint64_t index)
{
    if (status == 0 && index > 0)
        node_http_resp_header(req, "X-Atoll-Index", "%" PRIu64, index);
}

/* see reply.h */
void node_reply_error_doc(struct at_buf *out, const char *code, const char *msg)
{
    at_buf_puts(out, "{\"errors\":[{\"code\":\"");
    at_buf_puts(out, code);
    at_buf_puts(out, "\",\"message\":");
    at_buf_json_str(out, msg, strlen(msg));
    at_buf_puts(out, "}]}\n");
}

/* see reply.h */
void node_reply_error(struct node_http_req *req,
                      int status,
                      const char *code,
                      const char *fmt,
                      ...)
{
    char msg[512];
    struct at_buf b;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    at_buf_init(&b, 0);
    node_reply_error_doc(&b, code, msg);
    node_reply_begin(req, status);
    node_http_resp_header(req, "Content-Type", "application/json");
    node_http_resp_send(req, b.data, b.len);
    at_buf_release(&b);
}

/* see reply.h */
bool node_reply_write_failed(struct node_http_req *req, int status, int result)
{
    if (status == AT_ENOTLEADER) {
        node_reply_error(req, 503, "UNAVAILABLE",
                         "no leader: the write was not applied, retry");
        return true;
    }
    if (status == AT_ENOSPC) {
        node_reply_error(req, 507, "UNSUPPORTED",
                         "insufficient storage for the raft log (free space "
                         "below raft_reserve): the write was not applied, "
                         "retry later");
        return true;
    }
    if (status != 0) {
        /* Proposed but unknown: the client may retry with the same
         * X-Atoll-Request-Id (DESIGN.md section 6, C1). */
        node_http_resp_header(req, "X-Atoll-Outcome", "unknown");
        node_reply_error(req, 503, "OUTCOME_UNKNOWN",
                         "the write may or may not have been applied (%s); "
                         "retry with the same request id",
                         at_strerror(status));
        return true;
    }
    switch (result) {
    case META_OK:
        return false;
    case META_BLOB_UNKNOWN:
        node_reply_error(req, 400, "MANIFEST_BLOB_UNKNOWN",
                         "a blob referenced by the manifest is not in the "
                         "repository");
        return true;
    case META_MANIFEST_UNKNOWN:
        node_reply_error(req, 404, "MANIFEST_UNKNOWN", "manifest unknown");
        return true;
    case META_TAG_UNKNOWN:
        node_reply_error(req, 404, "MANIFEST_UNKNOWN", "tag unknown");
        return true;
    case META_NAME_UNKNOWN:
        node_reply_error(req, 404, "NAME_UNKNOWN", "repository unknown");
        return true;
    case META_BLOB_NOT_LINKED:
        node_reply_error(req, 404, "BLOB_UNKNOWN", "blob unknown");
        return true;
    default:
        node_reply_error(req, 500, "UNKNOWN", "unexpected result %d", result);
        return true;
    }
}

/* see reply.h */
bool node_reply_blob_begin(struct node_api *api,
                           struct node_http_req *req,
                           const struct at_digest *d,
                           uint64_t size,
                           uint64_t *start,
                           uint64_t *len)
{
    char dstr[AT_DIGEST_STR_SIZE];
    uint64_t end = 0;
    const char *range;
    int rv;

    at_digest_format(d, dstr);
    range = node_http_req_header(req, "range");
    rv = range != NULL ? node_http_parse_range(range, size, start, &end)
                       : AT_EINVAL;
    if (rv == AT_ERANGE) {
        node_http_resp_header(req, "Content-Range", "bytes */%" PRIu64, size);
        node_reply_error(req, 416, "RANGE_INVALID",
                         "requested range not satisfiable");
        return false;
    }
    /* A malformed or multi-range header is ignored: 200 with it all. */
    node_reply_begin(req, rv == 0 ? 206 : 200);
    node_http_resp_header(req, "Docker-Content-Digest", "%s", dstr);
    node_http_resp_header(req, "ETag", "\"%s\"", dstr);
    node_http_resp_header(req, "Accept-Ranges", "bytes");
    node_http_resp_header(req, "Content-Type", "application/octet-stream");
    node_http_resp_header(req, "Cache-Control", "max-age=31536000");
    if (rv == 0) {
        node_http_resp_header(req, "Content-Range",
                              "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, *start,
                              end, size);
        *len = end - *start + 1;
    } else {
        *start = 0;
        *len = size;
    }
    if (node_http_req_method(req) == NODE_HTTP_GET)
        api->bytes_out += *len;
    return true;
}

/* see reply.h */
void node_reply_blob(struct node_api *api,
                     struct node_http_req *req,
                     const struct at_digest *d,
                     int fd,
                     uint64_t size)
{
    uint64_t start, len;

    if (!node_reply_blob_begin(api, req, d, size, &start, &len)) {
        close(fd);
        return;
    }
    node_http_resp_send_file(req, fd, start, len);
}
