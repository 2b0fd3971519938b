/* Blob uploads: POST (session, monolithic, mount), PATCH (streamed or
 * Content-Range chunks), PUT ?digest=, GET status and DELETE.
 *
 * Happy path of one upload request (struct up):
 *   handler: find/create the session, lock it, check Content-Range and free
 *   space, read the body: each piece goes to storage_upload_write(); when the
 *   session's queue is above its high-water mark the parser pauses until the
 *   drain callback.
 *   PATCH end: flush with fdatasync, then 202 (an acknowledged chunk is on
 *   disk).
 *   PUT/POST?digest end: commit (hash check, fsync, rename), then the FSM
 *   command BlobStored, then 201.
 * Failure modes: the client disconnects (abort: the session keeps the bytes
 * written so far and can be resumed; a monolithic POST session is removed),
 * a digest mismatch (400, nothing visible), disk full (507), raft outcome
 * unknown (503). The struct lives until the request and every storage/raft
 * callback it started are done (`pending`). */
#define AT_LOG_COMP "api"
#include "common/compat.h"

#include "node/auth/access.h"
#include "node/cluster/proxy.h"
#include "node/cluster/replicate.h"
#include "node/cluster/verify.h"
#include "node/http/url.h"
#include "node/oci/handlers.h"
#include "node/oci/names.h"
#include "node/reply/reply.h"

#define CHUNK_MIN_LENGTH 65536

enum up_kind { UP_PATCH, UP_PUT, UP_POST };

struct up {
    struct node_api *api;
    struct node_http_req *req;
    enum up_kind kind;
    char *name;               /* owned */
    struct storage_upload *u; /* reference held */
    bool locked;
    bool has_digest;
    struct at_digest expected;
    int pending; /* the request + outstanding callbacks */
    bool drain_wait;
    bool body_open; /* reading the body: holds a pending ref */
    bool replied;
    int error; /* first storage error */
};

/* see uploads.h */
char *node_oci_upload_location(const char *name, const char *id)
{
    return at_asprintf("/v2/%s/blobs/uploads/%s", name, id);
}

static void up_put(struct up *up)
{
    if (--up->pending > 0)
        return;
    if (up->u != NULL) {
        if (up->locked)
            storage_upload_unlock(up->u);
        storage_upload_unref(up->u);
    }
    node_http_req_unref(up->req);
    free(up->name);
    free(up);
}

static bool up_live(struct up *up)
{
    return !up->replied && !node_http_req_done(up->req);
}

static void send_range(struct node_http_req *req, uint64_t size)
{
    if (size == 0)
        node_http_resp_header(req, "Range", "0-0");
    else
        node_http_resp_header(req, "Range", "0-%" PRIu64, size - 1);
}

/* 202/204 with the session's Location, Range and id. */
static void reply_session(struct node_http_req *req,
                          const char *name,
                          struct storage_upload *u,
                          int status)
{
    char *loc = node_oci_upload_location(name, storage_upload_id(u));

    node_reply_begin(req, status);
    node_http_resp_header(req, "Location", "%s", loc);
    node_http_resp_header(req, "Docker-Upload-UUID", "%s",
                          storage_upload_id(u));
    send_range(req, storage_upload_size(u));
    node_http_resp_header(req, "OCI-Chunk-Min-Length", "%d", CHUNK_MIN_LENGTH);
    node_http_resp_send(req, NULL, 0);
    free(loc);
}

static void reply_blob_created(struct node_http_req *req,
                               const char *name,
                               const struct at_digest *d)
{
    char dstr[AT_DIGEST_STR_SIZE];

    at_digest_format(d, dstr);
    node_reply_begin(req, 201);
    node_http_resp_header(req, "Location", "/v2/%s/blobs/%s", name, dstr);
    node_http_resp_header(req, "Docker-Content-Digest", "%s", dstr);
    node_http_resp_send(req, NULL, 0);
}

static void reply_storage_error(struct up *up, int rv)
{
    up->replied = true;
    if (rv == AT_ENOSPC) {
        node_reply_error(up->req, 507, "UNSUPPORTED",
                         "insufficient storage on this node: free space is "
                         "below the reserve");
        /* the session cannot go on: its bytes go now, not after
         * upload_ttl */
        if (up->u != NULL)
            storage_upload_cancel(up->u);
    } else
        node_reply_error(up->req, 500, "UNKNOWN", "storage error: %s",
                         at_strerror(rv));
}

/* ---- body ---- */

static void up_on_drain(void *data, int status)
{
    struct up *up = data;

    AT_UNUSED(status);
    up->drain_wait = false;
    if (up_live(up))
        node_http_req_resume(up->req);
    up_put(up);
}

static int up_on_body(struct node_http_req *req, const char *p, size_t n)
{
    struct up *up = node_http_req_data(req);
    int rv;

    if (up->replied || up->error != 0)
        return 0;
    rv = storage_upload_write(up->u, p, n);
    if (rv != 0) {
        up->error = rv;
        reply_storage_error(up, rv);
        /* Answered mid-body: neither end nor abort will come (http.h). */
        if (up->body_open) {
            up->body_open = false;
            up_put(up);
        }
        return 0;
    }
    up->api->bytes_in += n;
    if (storage_upload_busy(up->u) && !up->drain_wait) {
        up->drain_wait = true;
        up->pending++;
        storage_upload_on_drain(up->u, up_on_drain, up);
        return NODE_HTTP_PAUSE;
    }
    return 0;
}

/* Body reads go straight into the upload's chunk queue. */
static bool up_body_buf(struct node_http_req *req,
                        size_t want,
                        char **p,
                        size_t *n)
{
    struct up *up = node_http_req_data(req);

    if (up->replied || up->error != 0)
        return false;
    return storage_upload_reserve(up->u, want, p, n) == 0;
}

static void up_on_abort(struct node_http_req *req)
{
    struct up *up = node_http_req_data(req);

    if (!up->body_open)
        return; /* callbacks in flight finish on their own */
    up->body_open = false;
    /* A monolithic POST never gave the client a Location: drop it. */
    if (up->kind == UP_POST && up->u != NULL)
        storage_upload_cancel(up->u);
    up_put(up);
}

static void up_on_stored(void *data, int status, int result, uint64_t index)
{
    struct up *up = data;

    if (up_live(up))
        node_reply_write_index(up->req, status, index);
    if (status == 0 && result == META_OK) /* min_copies: start a copy */
        node_replicate_blob(up->api, up->name, &up->expected);
    if (up_live(up) && !node_reply_write_failed(up->req, status, result)) {
        up->api->blobs_committed++;
        reply_blob_created(up->req, up->name, &up->expected);
    }
    up->replied = true;
    up_put(up);
}

static void up_on_committed(void *data,
                            int status,
                            const struct at_digest *digest,
                            uint64_t size)
{
    struct up *up = data;
    int rv;

    if (status == AT_EDIGEST) {
        if (up_live(up)) {
            up->replied = true;
            node_reply_error(up->req, 400, "DIGEST_INVALID",
                             "provided digest did not match uploaded content");
        }
        if (up->kind == UP_POST)
            storage_upload_cancel(up->u);
        up_put(up);
        return;
    }
    if (status != 0) {
        if (up_live(up))
            reply_storage_error(up, status);
        up_put(up);
        return;
    }
    /* The commit just hashed the file: its first GET need not again
     * (node/cluster/verify.h). */
    {
        int fd = -1;
        uint64_t have = 0;
        if (storage_blob_open(up->api->store, digest, &fd, &have) == 0) {
            node_verify_note(up->api, digest, fd);
            close(fd);
        }
    }
    /* The blob is durable and visible in the store: record it. */
    struct meta_cmd c = {
        .kind = META_CMD_BLOB_STORED,
        .request_id = node_http_req_header(up->req, "x-atoll-request-id"),
        .blob_stored = { .repo = up->name, .digest = *digest, .size = size },
    };
    rv = meta_propose(up->api->meta, &c, up_on_stored, up);
    if (rv != 0) {
        if (up_live(up)) {
            up->replied = true;
            node_reply_error(up->req, 503, "UNAVAILABLE",
                             "cannot record the blob now: %s", at_strerror(rv));
        }
        up_put(up);
    }
}

static void up_on_flushed(void *data, int status)
{
    struct up *up = data;

    if (up_live(up)) {
        if (status != 0) {
            reply_storage_error(up, status);
        } else {
            up->replied = true;
            reply_session(up->req, up->name, up->u, 202);
        }
    }
    up_put(up);
}

static void up_on_end(struct node_http_req *req)
{
    struct up *up = node_http_req_data(req);
    int rv;

    if (!up->body_open)
        return;
    up->body_open = false;
    if (up->replied || up->error != 0 || node_http_req_done(req)) {
        up_put(up);
        return;
    }
    if (up->kind == UP_PATCH)
        rv = storage_upload_flush(up->u, true, up_on_flushed, up);
    else
        rv = storage_upload_commit(up->u, &up->expected, up_on_committed, up);
    if (rv != 0) {
        reply_storage_error(up, rv);
        up_put(up);
    }
}

/* ---- request setup ---- */

static struct up *up_new(struct node_api *api,
                         struct node_http_req *req,
                         enum up_kind kind,
                         const char *name)
{
    struct up *up = at_calloc(1, sizeof(*up));

    up->api = api;
    up->req = req;
    up->kind = kind;
    up->name = at_strdup(name);
    up->pending = 1;
    node_http_req_ref(req);
    node_http_req_set_data(req, up);
    node_http_req_on_abort(req, up_on_abort);
    return up;
}

/* Finish a request that never started reading its body. */
static void up_done_now(struct up *up)
{
    up->replied = true;
    up_put(up);
}

/* Parse the digest query parameter. Returns false after replying. */
static bool parse_digest_param(struct node_http_req *req,
                               bool required,
                               bool *has,
                               struct at_digest *d)
{
    const char *q = node_http_req_query(req);
    char *v = NULL;
    int rv = q != NULL ? node_query_get(q, "digest", &v) : AT_ENOTFOUND;

    *has = false;
    if (rv == AT_ENOTFOUND) {
        if (!required)
            return true;
        node_reply_error(req, 400, "DIGEST_INVALID",
                         "the digest query parameter is required");
        return false;
    }
    if (rv != 0 || at_digest_parse(v, strlen(v), d) != 0) {
        free(v);
        node_reply_error(req, 400, "DIGEST_INVALID", "invalid digest");
        return false;
    }
    free(v);
    *has = true;
    return true;
}

/* Content-Range "<start>-<end>" (the spec's form; "bytes " and "bytes="
 * prefixes are tolerated). 0, or AT_EINVAL. */
static int parse_content_range(const char *v, uint64_t *start, uint64_t *end)
{
    const char *dash;

    if (strncmp(v, "bytes ", 6) == 0 || strncmp(v, "bytes=", 6) == 0)
        v += 6;
    dash = strchr(v, '-');
    if (dash == NULL || at_parse_u64(v, (size_t)(dash - v), start) != 0)
        return AT_EINVAL;
    /* "a-b/total" is tolerated: ignore the total */
    {
        const char *slash = strchr(dash + 1, '/');
        size_t n =
            slash != NULL ? (size_t)(slash - dash - 1) : strlen(dash + 1);
        if (at_parse_u64(dash + 1, n, end) != 0)
            return AT_EINVAL;
    }
    if (*end < *start)
        return AT_EINVAL;
    return 0;
}

/* Checks shared by PATCH and PUT bodies. Returns false after replying. */
static bool check_content_range(struct up *up)
{
    struct node_http_req *req = up->req;
    const char *cr = node_http_req_header(req, "content-range");
    uint64_t start;
    uint64_t end;
    uint64_t size = storage_upload_size(up->u);

    if (cr == NULL)
        return true;
    if (parse_content_range(cr, &start, &end) != 0) {
        node_reply_error(req, 400, "BLOB_UPLOAD_INVALID",
                         "malformed Content-Range");
        return false;
    }
    if (start != size) {
        /* distribution-spec: out-of-order chunks get 416 with the current
         * Range so the client can resume. */
        char *loc =
            node_oci_upload_location(up->name, storage_upload_id(up->u));
        node_http_resp_header(req, "Location", "%s", loc);
        send_range(req, size);
        free(loc);
        node_reply_error(req, 416, "BLOB_UPLOAD_INVALID",
                         "chunk out of order: the upload is at offset %" PRIu64,
                         size);
        return false;
    }
    if (node_http_req_has_length(req) &&
        node_http_req_content_length(req) != end - start + 1) {
        node_reply_error(req, 416, "BLOB_UPLOAD_INVALID",
                         "Content-Length does not match Content-Range");
        return false;
    }
    return true;
}

static void start_body(struct up *up)
{
    up->body_open = true;
    up->pending++;
    if (!node_http_req_has_body(up->req)) {
        up_on_end(up->req);
        return;
    }
    node_http_req_body_buf(up->req, up_body_buf);
    node_http_req_read_body(up->req, up_on_body, up_on_end);
}

static bool space_ok(struct node_api *api, struct node_http_req *req)
{
    if (storage_space_ok(api->store))
        return true;
    node_reply_error(req, 507, "UNSUPPORTED",
                     "insufficient storage: free space is below the reserve");
    return false;
}

/* ---- mount ---- */

struct mount {
    struct node_http_req *req;
    char *name;
    struct at_digest d;
};

static void mount_on_done(void *data, int status, int result, uint64_t index)
{
    struct mount *mt = data;

    node_reply_write_index(mt->req, status, index);
    if (!node_http_req_done(mt->req) &&
        !node_reply_write_failed(mt->req, status, result))
        reply_blob_created(mt->req, mt->name, &mt->d);
    node_http_req_unref(mt->req);
    free(mt->name);
    free(mt);
}

static bool may_pull(void *data, const char *repo)
{
    return node_access_may(data, repo, META_ACTION_PULL);
}

/* Try ?mount=&from=, or ?mount= alone. Returns true when it took the
 * request. */
static bool try_mount(struct node_api *api,
                      struct node_http_req *req,
                      const char *name)
{
    const char *q = node_http_req_query(req);
    char *mount = NULL;
    char *from = NULL;
    struct at_digest d;
    struct mount *mt;
    bool took = false;

    if (q == NULL || node_query_get(q, "mount", &mount) != 0)
        return false;
    if (at_digest_parse(mount, strlen(mount), &d) != 0) {
        node_reply_error(req, 400, "DIGEST_INVALID", "invalid mount digest");
        took = true;
        goto out;
    }
    /* a mount reads the blob in from: without pull there, a session
     * (202) as for any blob the caller cannot mount. Without from (OCI
     * 1.1's automatic mount), from is any repository the caller may pull
     * that links the blob. */
    const char *src = NULL;
    if (node_query_get(q, "from", &from) == 0) {
        if (node_name_valid(from, strlen(from)) &&
            node_access_may(req, from, META_ACTION_PULL) &&
            meta_blob_linked(api->meta, from, &d, NULL))
            src = from;
    } else {
        /* a blob here already needs no source */
        src = meta_blob_linked(api->meta, name, &d, NULL)
                  ? name
                  : meta_blob_source(api->meta, &d, may_pull, req);
    }
    if (src == NULL)
        goto out; /* cannot mount: fall back to a session (202) */
    if (meta_blob_linked(api->meta, name, &d, NULL)) {
        reply_blob_created(req, name, &d);
        took = true;
        goto out;
    }
    mt = at_calloc(1, sizeof(*mt));
    mt->req = req;
    mt->name = at_strdup(name);
    mt->d = d;
    node_http_req_ref(req);
    struct meta_cmd c = {
        .kind = META_CMD_BLOB_MOUNT,
        .request_id = node_http_req_header(req, "x-atoll-request-id"),
        .blob_mount = { .repo = name, .from_repo = src, .digest = d },
    };
    if (meta_propose(api->meta, &c, mount_on_done, mt) != 0) {
        node_http_req_unref(req);
        free(mt->name);
        free(mt);
        goto out; /* fall back to a session */
    }
    took = true;
out:
    free(mount);
    free(from);
    return took;
}

/* see uploads.h */
void node_oci_upload_new(struct node_api *api,
                         struct node_http_req *req,
                         const char *name)
{
    struct storage_upload *u = NULL;
    struct at_digest d;
    bool has_digest;
    struct up *up;
    int rv;

    if (node_http_req_method(req) != NODE_HTTP_POST) {
        node_reply_error(req, 405, "UNSUPPORTED", "method not allowed");
        return;
    }
    if (try_mount(api, req, name))
        return;
    if (!parse_digest_param(req, false, &has_digest, &d))
        return;
    if (!space_ok(api, req))
        return;
    rv = storage_upload_create(api->store, name, &u);
    if (rv != 0) {
        if (rv == AT_ENOSPC)
            node_reply_error(req, 507, "UNSUPPORTED",
                             "insufficient storage on this node");
        else
            node_reply_error(req, 500, "UNKNOWN", "cannot create upload: %s",
                             storage_errmsg(api->store));
        return;
    }
    if (!has_digest) {
        reply_session(req, name, u, 202);
        storage_upload_unref(u);
        return;
    }
    /* Monolithic upload: POST ?digest= with the whole blob. */
    up = up_new(api, req, UP_POST, name);
    up->u = u;
    up->has_digest = true;
    up->expected = d;
    if (storage_upload_try_lock(u))
        up->locked = true;
    start_body(up);
    up_put(up); /* the handler's own reference; callbacks hold theirs */
}

/* ---- owner of an upload (uploads behind a load balancer) ---- */

enum owner_kind { OWNER_LOCAL, OWNER_PEER, OWNER_UNKNOWN };

struct owner_find {
    uint64_t id;
    char *peer_address; /* owned */
};

static void owner_each(void *data, const struct meta_node *n)
{
    struct owner_find *of = data;

    if (n->id == of->id && of->peer_address == NULL &&
        n->peer_address != NULL && n->peer_address[0] != '\0')
        of->peer_address = at_strdup(n->peer_address);
}

/* Which node owns upload id: ids without a tag and ids with this node's tag
 * are local; a tag is the owner's raft id in hex (node/server.c), mapped to
 * its peer address by the node table. *addr: owned, for OWNER_PEER. */
static enum owner_kind upload_owner(struct node_api *api,
                                    const char *id,
                                    char **addr)
{
    const char *dash = strchr(id, '-');
    const char *tag = api->store->node_tag;
    struct owner_find of;
    size_t n;
    uint64_t v = 0;

    *addr = NULL;
    if (dash == NULL)
        return OWNER_LOCAL;
    n = (size_t)(dash - id);
    if (tag != NULL && strlen(tag) == n && memcmp(tag, id, n) == 0)
        return OWNER_LOCAL;
    if (n != 16)
        return OWNER_UNKNOWN;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;
        if (d < 0)
            return OWNER_UNKNOWN;
        v = v << 4 | (uint64_t)d;
    }
    memset(&of, 0, sizeof(of));
    of.id = v;
    meta_members(api->meta, owner_each, &of);
    if (of.peer_address == NULL)
        return OWNER_UNKNOWN;
    *addr = of.peer_address;
    return OWNER_PEER;
}

/* A request that came through the peer listener (relayed by another node)
 * is never relayed again. */
static bool via_peer(struct node_http_req *req)
{
    return node_reply_relayed(req) ||
           node_http_req_header(req, "x-atoll-proxied") != NULL;
}

/* see uploads.h */
void node_oci_upload(struct node_api *api,
                     struct node_http_req *req,
                     const char *name,
                     const char *id)
{
    enum node_http_method method = node_http_req_method(req);
    struct storage_upload *u = NULL;
    struct up *up;
    char *owner = NULL;

    if (storage_upload_id_valid(id, strlen(id)) && !via_peer(req)) {
        switch (upload_owner(api, id, &owner)) {
        case OWNER_PEER:
            node_proxy_upload(api, req, owner);
            free(owner);
            return;
        case OWNER_UNKNOWN:
            node_reply_error(req, 404, "BLOB_UPLOAD_UNKNOWN",
                             "blob upload unknown to registry (its node is not "
                             "a member)");
            return;
        case OWNER_LOCAL:
            break;
        }
    }
    if (storage_upload_find(api->store, id, &u) != 0 ||
        strcmp(storage_upload_repo(u), name) != 0) {
        if (u != NULL)
            storage_upload_unref(u);
        node_reply_error(req, 404, "BLOB_UPLOAD_UNKNOWN",
                         "blob upload unknown to registry");
        return;
    }
    switch (method) {
    case NODE_HTTP_GET:
    case NODE_HTTP_HEAD:
        reply_session(req, name, u, 204);
        storage_upload_unref(u);
        return;
    case NODE_HTTP_DELETE:
        storage_upload_cancel(u);
        storage_upload_unref(u);
        node_reply_begin(req, 204);
        node_http_resp_send(req, NULL, 0);
        return;
    case NODE_HTTP_PATCH:
    case NODE_HTTP_PUT:
        break;
    default:
        storage_upload_unref(u);
        node_reply_error(req, 405, "UNSUPPORTED", "method not allowed");
        return;
    }
    up = up_new(api, req, method == NODE_HTTP_PATCH ? UP_PATCH : UP_PUT, name);
    up->u = u;
    if (!storage_upload_try_lock(u)) {
        node_reply_error(req, 409, "BLOB_UPLOAD_INVALID",
                         "another request is writing to this upload");
        up_done_now(up);
        return;
    }
    up->locked = true;
    if (up->kind == UP_PUT &&
        !parse_digest_param(req, true, &up->has_digest, &up->expected)) {
        up_done_now(up);
        return;
    }
    if (!check_content_range(up)) {
        up_done_now(up);
        return;
    }
    if (node_http_req_has_body(req) && !space_ok(api, req)) {
        up_done_now(up);
        return;
    }
    start_body(up);
    up_put(up);
}
