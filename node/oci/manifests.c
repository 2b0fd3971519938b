/* Manifests: PUT (validate, then the PutManifest command), GET/HEAD by tag
 * (after a read barrier: tags are linearizable) or by digest (local: bytes
 * are immutable), DELETE by digest or tag. */
#define AT_LOG_COMP "api"
#include "common/compat.h"

#include "node/auth/access.h"
#include "node/cluster/pullthrough.h"
#include "node/cluster/replicate.h"
#include "node/oci/handlers.h"
#include "node/oci/manifest_parse.h"
#include "node/oci/names.h"
#include "node/reply/reply.h"

struct mreq {
    struct node_api *api;
    struct node_http_req *req;
    char *name; /* owned */
    char *tag;  /* owned or NULL */
    bool by_digest;
    struct at_digest digest;
    struct at_buf body;
    bool too_big;
    bool body_open;
    struct node_manifest_info info;
    bool has_info;
    /* hashing and parsing of large manifests happen in the pool */
    uv_work_t work;
    char *content_type; /* owned copy for the worker, or NULL */
    struct at_digest actual;
    int parse_rv;
    char errmsg[AT_ERRMSG_SIZE];
    /* without the overwrite right: the tag as seen, guarded in the
     * command (a push racing this one cannot be re-pointed by it) */
    bool tag_guard;
    bool has_tag_expect;
    struct at_digest tag_expect;
    bool refs_fresh;     /* references checked after a read barrier */
    bool upstream_asked; /* a pull-through cache's: the upstream was asked */
    bool upstream_have;  /* and something was cached then */
};

/* Manifests above this size are hashed and parsed off the loop thread. */
#define INLINE_PARSE_MAX (64 * 1024)

static void mreq_free(struct mreq *m)
{
    free(m->name);
    free(m->tag);
    free(m->content_type);
    at_buf_release(&m->body);
    if (m->has_info)
        node_manifest_info_release(&m->info);
    free(m);
}

static struct mreq *mreq_new(struct node_api *api,
                             struct node_http_req *req,
                             const char *name)
{
    struct mreq *m = at_calloc(1, sizeof(*m));

    m->api = api;
    m->req = req;
    m->name = at_strdup(name);
    at_buf_init(&m->body, api->cfg->max_manifest_bytes);
    node_http_req_ref(req);
    return m;
}

static void mreq_done(struct mreq *m)
{
    node_http_req_unref(m->req);
    mreq_free(m);
}

/* Parse the reference: a tag or a digest. Returns false after replying. */
static bool parse_ref(struct node_http_req *req,
                      const char *ref,
                      char **tag,
                      bool *by_digest,
                      struct at_digest *d)
{
    size_t n = strlen(ref);
    int rv;

    *tag = NULL;
    *by_digest = false;
    if (memchr(ref, ':', n) != NULL) {
        rv = at_digest_parse(ref, n, d);
        if (rv != 0) {
            node_reply_error(req, 400, "DIGEST_INVALID",
                             rv == AT_EUNSUPPORTED
                                 ? "unsupported digest algorithm"
                                 : "invalid digest '%s'",
                             ref);
            return false;
        }
        *by_digest = true;
        return true;
    }
    if (!node_tag_valid(ref, n)) {
        /* distribution-spec conformance: an invalid reference is simply not
         * found. */
        node_reply_error(req, 404, "MANIFEST_UNKNOWN", "manifest unknown");
        return false;
    }
    *tag = at_strdup(ref);
    return true;
}

/* ---- GET / HEAD ---- */

static void send_manifest(struct node_http_req *req,
                          struct meta *meta,
                          const struct meta_manifest *mf)
{
    char dstr[AT_DIGEST_STR_SIZE];
    void *body = NULL;

    /* the body is read (from the FSM's body file: page cache) only for a
     * GET; a HEAD needs its length alone */
    if (node_http_req_method(req) != NODE_HTTP_HEAD && mf->bytes == NULL) {
        body = at_malloc(mf->len + 1);
        if (meta_manifest_read(meta, mf, body) != 0) {
            at_free(body);
            node_reply_error(req, 500, "UNKNOWN",
                             "cannot read the manifest body");
            return;
        }
    }
    at_digest_format(&mf->digest, dstr);
    node_reply_begin(req, 200);
    node_http_resp_header(req, "Content-Type", "%s", mf->media_type);
    node_http_resp_header(req, "Docker-Content-Digest", "%s", dstr);
    node_http_resp_header(req, "ETag", "\"%s\"", dstr);
    node_http_resp_send(req, body != NULL ? body : mf->bytes, mf->len);
    at_free(body);
}

static void get_reply(struct mreq *m)
{
    const struct meta_manifest *mf;
    struct at_digest d = m->digest;

    if (m->tag != NULL &&
        meta_tag_resolve(m->api->meta, m->name, m->tag, &d) != 0) {
        node_reply_error(m->req, 404, "MANIFEST_UNKNOWN", "manifest unknown");
        return;
    }
    mf = meta_manifest_find(m->api->meta, m->name, &d);
    if (mf == NULL) {
        node_reply_error(m->req, 404, "MANIFEST_UNKNOWN", "manifest unknown");
        return;
    }
    if (m->api->on_pulled != NULL &&
        node_http_req_method(m->req) == NODE_HTTP_GET)
        m->api->on_pulled(m->api, m->name, m->tag, &d, mf->media_type, mf->len);
    send_manifest(m->req, m->api->meta, mf);
}

static void get_on_barrier(void *data, int status);

/* The upstream was asked (pullthrough.h): read what the leader put in the
 * log once this node has it (a read barrier), or serve what is cached. */
static void get_on_upstream(void *data, int status, const char *errmsg)
{
    struct mreq *m = data;
    int rv;

    if (node_http_req_done(m->req)) {
        mreq_done(m);
        return;
    }
    if (status != 0 && !m->upstream_have) {
        if (status == AT_ENOTFOUND)
            node_reply_error(m->req, 404, "MANIFEST_UNKNOWN",
                             "manifest unknown here and upstream: %s", errmsg);
        else
            node_reply_error(m->req, 503, "UNAVAILABLE",
                             "not cached, and the upstream could not be "
                             "asked: %s",
                             errmsg);
        mreq_done(m);
        return;
    }
    rv = node_api_read_barrier(m->api, get_on_barrier, m);
    if (rv != 0)
        get_on_barrier(m, rv);
}

/* A name under a pull-through prefix: ask the upstream first when
 * nothing is cached, or a tag's check is older than the ttl. True when
 * m now waits for that (get_on_upstream finishes it). */
static bool get_via_upstream(struct mreq *m)
{
    struct at_digest d = m->digest;
    char ref[AT_DIGEST_STR_SIZE];
    bool have;

    /* every manifest GET passes here: names under no prefix leave at
     * once, before any lookup */
    if (m->upstream_asked || m->api->pullthrough == NULL ||
        node_pullthrough_rule(m->api, m->name) == NULL)
        return false;
    m->upstream_asked = true;
    if (m->tag != NULL)
        have = meta_tag_resolve(m->api->meta, m->name, m->tag, &d) == 0;
    else
        have = meta_manifest_find(m->api->meta, m->name, &d) != NULL;
    m->upstream_have = have;
    if (m->tag == NULL)
        at_digest_format(&m->digest, ref);
    return node_pullthrough_manifest(
        m->api, m->name, m->tag != NULL ? m->tag : ref, m->tag != NULL,
        have ? &d : NULL, get_on_upstream, m);
}

static void get_on_barrier(void *data, int status)
{
    struct mreq *m = data;

    if (status == 0 && !node_http_req_done(m->req) && get_via_upstream(m))
        return;
    if (!node_http_req_done(m->req)) {
        if (status != 0)
            node_reply_error(m->req, 503, "UNAVAILABLE",
                             "cannot serve a consistent read: %s",
                             at_strerror(status));
        else
            get_reply(m);
    }
    mreq_done(m);
}

/* ---- DELETE ---- */

static void delete_on_done(void *data, int status, int result, uint64_t index)
{
    struct mreq *m = data;

    node_reply_write_index(m->req, status, index);
    if (!node_http_req_done(m->req) &&
        !node_reply_write_failed(m->req, status, result)) {
        node_reply_begin(m->req, 202);
        node_http_resp_send(m->req, NULL, 0);
    }
    mreq_done(m);
}

static void do_delete(struct mreq *m)
{
    const char *rid = node_http_req_header(m->req, "x-atoll-request-id");
    int rv;

    struct meta_cmd c = { .request_id = rid };

    if (m->tag != NULL) {
        c.kind = META_CMD_DELETE_TAG;
        c.delete_tag.repo = m->name;
        c.delete_tag.tag = m->tag;
    } else {
        c.kind = META_CMD_DELETE_MANIFEST;
        c.delete_manifest.repo = m->name;
        c.delete_manifest.digest = m->digest;
    }
    rv = meta_propose(m->api->meta, &c, delete_on_done, m);
    if (rv != 0) {
        node_reply_error(m->req, rv == AT_EINVAL ? 400 : 503,
                         rv == AT_EINVAL ? "UNSUPPORTED" : "UNAVAILABLE",
                         "cannot delete: %s", at_strerror(rv));
        mreq_done(m);
    }
}

/* ---- PUT ---- */

static void put_on_done(void *data, int status, int result, uint64_t index)
{
    struct mreq *m = data;
    char dstr[AT_DIGEST_STR_SIZE];
    char sstr[AT_DIGEST_STR_SIZE];

    if (node_http_req_done(m->req)) {
        mreq_done(m);
        return;
    }
    if (result == META_TAG_CONFLICT && status == 0) {
        node_reply_error(m->req, 403, "DENIED",
                         "tag '%s' was pointed to another manifest meanwhile: "
                         "re-pointing it needs the overwrite right",
                         m->tag != NULL ? m->tag : "");
        mreq_done(m);
        return;
    }
    if (result == META_MANIFEST_UNKNOWN && status == 0) {
        /* An index child missing from the repository. */
        node_reply_error(m->req, 400, "MANIFEST_BLOB_UNKNOWN",
                         "a manifest referenced by the index is not in the "
                         "repository");
        mreq_done(m);
        return;
    }
    if (!node_reply_write_failed(m->req, status, result)) {
        m->api->manifests_put++;
        at_digest_format(&m->digest, dstr);
        node_reply_begin(m->req, 201);
        node_http_resp_header(m->req, "Location", "/v2/%s/manifests/%s",
                              m->name, dstr);
        node_http_resp_header(m->req, "Docker-Content-Digest", "%s", dstr);
        node_http_resp_header(m->req, "X-Atoll-Index", "%" PRIu64, index);
        if (m->info.has_subject)
            node_http_resp_header(m->req, "OCI-Subject", "%s",
                                  at_digest_format(&m->info.subject, sstr));
        node_http_resp_send(m->req, NULL, 0);
    }
    mreq_done(m);
}

static int put_on_body(struct node_http_req *req, const char *p, size_t n)
{
    struct mreq *m = node_http_req_data(req);

    if (m->too_big)
        return 0;
    if (at_buf_append(&m->body, p, n) != 0) {
        m->too_big = true;
        node_http_resp_close(req);
        node_reply_error(req, 413, "SIZE_INVALID",
                         "manifest larger than %" PRIu64 " bytes",
                         m->api->cfg->max_manifest_bytes);
        /* Answered mid-body: neither end nor abort will come (http.h). */
        if (m->body_open) {
            m->body_open = false;
            mreq_done(m);
        }
    }
    return 0;
}

/* Every referenced blob and child manifest must be in the repository; the
 * FSM checks again at apply time (a concurrent delete may win). The first
 * one missing from this node's state: false, with *kind and *d. */
static bool refs_present(struct mreq *m,
                         const char **kind,
                         const struct at_digest **d)
{
    for (size_t i = 0; i < m->info.nblobs; i++) {
        if (!meta_blob_linked(m->api->meta, m->name, &m->info.blobs[i], NULL)) {
            *kind = "blob";
            *d = &m->info.blobs[i];
            return false;
        }
    }
    for (size_t i = 0; i < m->info.nmanifests; i++) {
        if (meta_manifest_find(m->api->meta, m->name, &m->info.manifests[i]) ==
            NULL) {
            *kind = "manifest";
            *d = &m->info.manifests[i];
            return false;
        }
    }
    return true;
}

static void refs_missing_reply(struct mreq *m,
                               const char *kind,
                               const struct at_digest *d)
{
    char s[AT_DIGEST_STR_SIZE];
    node_reply_error(m->req, 400, "MANIFEST_BLOB_UNKNOWN",
                     "%s unknown to registry: %s", kind,
                     at_digest_format(d, s));
}

/* Digest and validation of the body: runs inline for small manifests, in
 * the pool for large ones. Touches only m's own fields. */
static void put_parse(struct mreq *m)
{
    const char *body = m->body.data != NULL ? m->body.data : "";

    at_digest_of(body, m->body.len, &m->actual);
    m->parse_rv = node_manifest_parse(m->content_type, body, m->body.len,
                                      &m->info, m->errmsg);
}

static void put_parse_work(uv_work_t *w)
{
    put_parse(w->data);
}

static void put_after_parse(struct mreq *m);

static void put_parse_done(uv_work_t *w, int status)
{
    struct mreq *m = w->data;

    AT_UNUSED(status);
    put_after_parse(m);
}

static void put_on_end(struct node_http_req *req)
{
    struct mreq *m = node_http_req_data(req);
    const char *ct = node_http_req_header(req, "content-type");

    if (!m->body_open)
        return;
    m->body_open = false;
    if (m->too_big || node_http_req_done(req)) {
        mreq_done(m);
        return;
    }
    m->content_type = ct != NULL ? at_strdup(ct) : NULL;
    if (m->body.len > INLINE_PARSE_MAX) {
        m->work.data = m;
        if (uv_queue_work(m->api->loop, &m->work, put_parse_work,
                          put_parse_done) == 0)
            return;
    }
    put_parse(m);
    put_after_parse(m);
}

static void put_propose(struct mreq *m);

static void put_on_copies(void *data, int status, const char *why)
{
    struct mreq *m = data;

    if (node_http_req_done(m->req)) {
        mreq_done(m);
        return;
    }
    if (status != 0 || m->api->meta == NULL) {
        node_http_resp_header(m->req, "Retry-After", "5");
        node_reply_error(m->req, 503, "UNAVAILABLE",
                         "not enough copies of the manifest's blobs: %s",
                         why != NULL ? why : "node is stopping");
        mreq_done(m);
        return;
    }
    put_propose(m);
}

/* A PUT by tag that re-points an existing tag to another manifest needs
 * the overwrite right besides push (the gate checked push). Without it,
 * the tag must be absent or already point to this manifest, and the
 * command carries that as a guard: a push racing this one that creates
 * the tag first makes this one fail (META_TAG_CONFLICT), not overwrite. */
static bool may_point_tag(struct mreq *m)
{
    struct at_digest cur;
    bool exists;

    if (m->tag == NULL ||
        node_access_may(m->req, m->name, META_ACTION_OVERWRITE))
        return true;
    exists = meta_tag_resolve(m->api->meta, m->name, m->tag, &cur) == 0;
    if (exists && !at_digest_equal(&cur, &m->digest))
        return false;
    m->tag_guard = true;
    m->has_tag_expect = exists;
    if (exists)
        m->tag_expect = cur;
    return true;
}

static void put_on_refs_barrier(void *data, int status);
static void put_after_refs(struct mreq *m);

static void put_after_parse(struct mreq *m)
{
    struct node_http_req *req = m->req;

    if (m->parse_rv == 0)
        m->has_info = true;
    if (node_http_req_done(req)) {
        mreq_done(m);
        return;
    }
    if (m->by_digest && !at_digest_equal(&m->actual, &m->digest)) {
        node_reply_error(req, 400, "DIGEST_INVALID",
                         "the digest in the URL does not match the manifest");
        mreq_done(m);
        return;
    }
    m->digest = m->actual;
    if (m->parse_rv != 0) {
        node_reply_error(req, 400, "MANIFEST_INVALID", "%s", m->errmsg);
        mreq_done(m);
        return;
    }
    const char *kind;
    const struct at_digest *d;
    if (!refs_present(m, &kind, &d)) {
        /* pushed through another node, the blob may not be in this
         * node's state yet: look again at the leader's commit index
         * (read your writes across nodes behind one Service) */
        if (!m->refs_fresh && !node_api_read_now(m->api)) {
            m->refs_fresh = true;
            if (node_api_read_barrier(m->api, put_on_refs_barrier, m) == 0)
                return;
        }
        refs_missing_reply(m, kind, d);
        mreq_done(m);
        return;
    }
    put_after_refs(m);
}

static void put_on_refs_barrier(void *data, int status)
{
    struct mreq *m = data;
    const char *kind;
    const struct at_digest *d;

    if (node_http_req_done(m->req)) {
        mreq_done(m);
        return;
    }
    if (status != 0) {
        node_reply_error(m->req, 503, "UNAVAILABLE",
                         "cannot check the manifest's references: %s",
                         at_strerror(status));
        mreq_done(m);
        return;
    }
    if (!refs_present(m, &kind, &d)) {
        refs_missing_reply(m, kind, d);
        mreq_done(m);
        return;
    }
    put_after_refs(m);
}

/* References present: the tag right, then the copies, then the
 * proposal. */
static void put_after_refs(struct mreq *m)
{
    struct node_http_req *req = m->req;

    if (!may_point_tag(m)) {
        node_reply_error(req, 403, "DENIED",
                         "tag '%s' points to another manifest: re-pointing "
                         "it needs the overwrite right",
                         m->tag);
        mreq_done(m);
        return;
    }
    /* Durability (DESIGN.md section 7): every blob on min_copies stores
     * before the manifest makes them reachable. */
    node_copies_wait(m->api, m->name, m->info.blobs, m->info.nblobs,
                     put_on_copies, m);
}

static void put_propose(struct mreq *m)
{
    struct node_http_req *req = m->req;
    struct meta_cmd c = { .kind = META_CMD_PUT_MANIFEST };
    struct meta_manifest_put *p = &c.put_manifest;
    int rv;

    node_manifest_put_fill(p, &m->info, m->name, &m->digest, m->body.data,
                           m->body.len, m->tag);
    p->tag_guard = m->tag_guard;
    p->has_tag_expect = m->has_tag_expect;
    p->tag_expect = m->tag_expect;
    c.request_id = node_http_req_header(req, "x-atoll-request-id");
    rv = meta_propose(m->api->meta, &c, put_on_done, m);
    if (rv != 0) {
        node_reply_error(req, rv == AT_EINVAL ? 400 : 503,
                         rv == AT_EINVAL ? "MANIFEST_INVALID" : "UNAVAILABLE",
                         "cannot store the manifest: %s", at_strerror(rv));
        mreq_done(m);
    }
}

static void put_on_abort(struct node_http_req *req)
{
    struct mreq *m = node_http_req_data(req);

    if (!m->body_open)
        return;
    m->body_open = false;
    mreq_done(m);
}

/* see manifests.h */
void node_oci_manifest(struct node_api *api,
                       struct node_http_req *req,
                       const char *name,
                       const char *ref)
{
    enum node_http_method method = node_http_req_method(req);
    struct mreq *m;
    int rv;

    if (method != NODE_HTTP_GET && method != NODE_HTTP_HEAD &&
        method != NODE_HTTP_PUT && method != NODE_HTTP_DELETE) {
        node_reply_error(req, 405, "UNSUPPORTED", "method not allowed");
        return;
    }
    m = mreq_new(api, req, name);
    if (!parse_ref(req, ref, &m->tag, &m->by_digest, &m->digest)) {
        mreq_done(m);
        return;
    }
    switch (method) {
    case NODE_HTTP_GET:
    case NODE_HTTP_HEAD:
        if (m->by_digest) {
            /* Bytes named by their digest never change: local read. */
            if (get_via_upstream(m))
                return;
            get_reply(m);
            mreq_done(m);
            return;
        }
        /* the gate's barrier for this request, or a single voter with
         * nothing pending, is as good as one here */
        if (node_access_fresh(req) || node_api_read_now(api)) {
            get_on_barrier(m, 0);
            return;
        }
        rv = node_api_read_barrier(api, get_on_barrier, m);
        if (rv != 0)
            get_on_barrier(m, rv);
        return;
    case NODE_HTTP_DELETE:
        do_delete(m);
        return;
    default:
        break;
    }
    /* PUT */
    if (node_http_req_has_length(req) &&
        node_http_req_content_length(req) > api->cfg->max_manifest_bytes) {
        node_http_resp_close(req);
        node_reply_error(req, 413, "SIZE_INVALID",
                         "manifest larger than %" PRIu64 " bytes",
                         api->cfg->max_manifest_bytes);
        mreq_done(m);
        return;
    }
    node_http_req_set_data(req, m);
    node_http_req_on_abort(req, put_on_abort);
    m->body_open = true;
    if (!node_http_req_has_body(req)) {
        put_on_end(req);
        return;
    }
    node_http_req_read_body(req, put_on_body, put_on_end);
}
