/* OCI API routing, error replies, and the listing endpoints (tags, catalog,
 * referrers) plus the small admin endpoints.
 *
 * Listings are linearizable: they wait for a read barrier from the FSM
 * (raft/meta.h) before reading local state. */
#define AT_LOG_COMP "api"
#include "common/compat.h"

#include "node/api.h"
#include "node/gc.h"
#include "node/peer_api.h"
#include "node/placement.h"
#include "node/replicate.h"
#include "node/url.h"

#define MIN_INDEX_WAIT_MS 5000 /* X-Atoll-Min-Index: longest wait, then 503 */

#define LIST_MAX 100000 /* cap of n for tags/list and _catalog */

static const char *mt_index = "application/vnd.oci.image.index.v1+json";

/* ---- replies ---- */

/* Responses by status class (1xx..5xx; [0] other), for /metrics. */
static uint64_t status_counts[6];

/* see api.h */
void node_api_begin(struct node_http_req *req, int status)
{
    struct node_api *api = node_http_req_server_data(req);

    status_counts[status >= 100 && status < 600 ? status / 100 : 0]++;
    node_http_resp_status(req, status);
    node_http_resp_header(req, "Docker-Distribution-API-Version",
                          "registry/2.0");
    if (api != NULL && api->magic == NODE_API_MAGIC && api->meta != NULL) {
        struct meta_status st;
        meta_status_get(api->meta, &st);
        node_http_resp_header(req, "X-Atoll-Applied-Index", "%" PRIu64,
                              st.applied_index);
    }
}

/* see api.h */
void node_api_write_index(struct node_http_req *req, int status, uint64_t index)
{
    if (status == 0 && index > 0)
        node_http_resp_header(req, "X-Atoll-Index", "%" PRIu64, index);
}

/* see api.h */
int node_api_read_barrier(struct node_api *api, meta_read_cb cb, void *data)
{
    if (api->cfg != NULL && api->cfg->read_consistency != NULL &&
        strcmp(api->cfg->read_consistency, "local") == 0) {
        cb(data, 0);
        return 0;
    }
    return meta_read_barrier(api->meta, cb, data);
}

/* see api.h */
void node_api_error(struct node_http_req *req,
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
    at_buf_puts(&b, "{\"errors\":[{\"code\":\"");
    at_buf_puts(&b, code);
    at_buf_puts(&b, "\",\"message\":");
    at_buf_json_str(&b, msg, strlen(msg));
    at_buf_puts(&b, "}]}\n");
    node_api_begin(req, status);
    node_http_resp_header(req, "Content-Type", "application/json");
    node_http_resp_send(req, b.data, b.len);
    at_buf_release(&b);
}

/* see api.h */
bool node_api_write_failed(struct node_http_req *req, int status, int result)
{
    if (status == AT_ENOTLEADER) {
        node_api_error(req, 503, "UNAVAILABLE",
                       "no leader: the write was not applied, retry");
        return true;
    }
    if (status != 0) {
        /* Proposed but unknown: the client may retry with the same
         * X-Atoll-Request-Id (DESIGN.md section 6, C1). */
        node_http_resp_header(req, "X-Atoll-Outcome", "unknown");
        node_api_error(req, 503, "OUTCOME_UNKNOWN",
                       "the write may or may not have been applied (%s); "
                       "retry with the same request id",
                       at_strerror(status));
        return true;
    }
    switch (result) {
    case META_OK:
        return false;
    case META_BLOB_UNKNOWN:
        node_api_error(req, 400, "MANIFEST_BLOB_UNKNOWN",
                       "a blob referenced by the manifest is not in the "
                       "repository");
        return true;
    case META_MANIFEST_UNKNOWN:
        node_api_error(req, 404, "MANIFEST_UNKNOWN", "manifest unknown");
        return true;
    case META_TAG_UNKNOWN:
        node_api_error(req, 404, "MANIFEST_UNKNOWN", "tag unknown");
        return true;
    case META_NAME_UNKNOWN:
        node_api_error(req, 404, "NAME_UNKNOWN", "repository unknown");
        return true;
    case META_BLOB_NOT_LINKED:
        node_api_error(req, 404, "BLOB_UNKNOWN", "blob unknown");
        return true;
    default:
        node_api_error(req, 500, "UNKNOWN", "unexpected result %d", result);
        return true;
    }
}

/* ---- routing ---- */

static bool segment_is(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

/* see api.h */
void node_route_parse(const char *path, struct node_route_match *m)
{
    const char *p;
    size_t len;
    const char *segs[4];
    size_t segl[4];
    int nseg = 0;
    const char *name_end = NULL;
    const char *arg = NULL;
    size_t argl = 0;
    const char *end;

    memset(m, 0, sizeof(*m));
    if (strcmp(path, "/v2") == 0 || strcmp(path, "/v2/") == 0) {
        m->route = NODE_ROUTE_BASE;
        return;
    }
    if (strncmp(path, "/_atoll/", 8) == 0 || strcmp(path, "/livez") == 0 ||
        strcmp(path, "/readyz") == 0 || strcmp(path, "/metrics") == 0) {
        m->route = NODE_ROUTE_ADMIN;
        return;
    }
    if (strncmp(path, "/v2/", 4) != 0)
        return;
    p = path + 4;
    len = strlen(p);
    if (strcmp(p, "_catalog") == 0) {
        m->route = NODE_ROUTE_CATALOG;
        return;
    }
    /* Collect up to the last four segments, from the end. */
    end = p + len;
    while (nseg < 4) {
        const char *q = end;
        while (q > p && q[-1] != '/')
            q--;
        segs[nseg] = q;
        segl[nseg] = (size_t)(end - q);
        nseg++;
        if (q == p)
            break;
        end = q - 1;
    }
    /* segs[0] is the last segment. Name ends before the matched kind. */
    if (nseg >= 3 && segl[0] == 0 && segment_is(segs[1], segl[1], "uploads") &&
        segment_is(segs[2], segl[2], "blobs")) {
        m->route = NODE_ROUTE_UPLOAD_NEW;
        name_end = segs[2] - 1;
    } else if (nseg >= 3 && segment_is(segs[0], segl[0], "uploads") &&
               segment_is(segs[1], segl[1], "blobs")) {
        m->route = NODE_ROUTE_UPLOAD_NEW;
        name_end = segs[1] - 1;
    } else if (nseg >= 4 && segment_is(segs[1], segl[1], "uploads") &&
               segment_is(segs[2], segl[2], "blobs")) {
        m->route = NODE_ROUTE_UPLOAD;
        name_end = segs[2] - 1;
        arg = segs[0];
        argl = segl[0];
    } else if (nseg >= 3 && segment_is(segs[0], segl[0], "list") &&
               segment_is(segs[1], segl[1], "tags")) {
        m->route = NODE_ROUTE_TAGS;
        name_end = segs[1] - 1;
    } else if (nseg >= 3 && segment_is(segs[1], segl[1], "manifests")) {
        m->route = NODE_ROUTE_MANIFEST;
        name_end = segs[1] - 1;
        arg = segs[0];
        argl = segl[0];
    } else if (nseg >= 3 && segment_is(segs[1], segl[1], "blobs")) {
        m->route = NODE_ROUTE_BLOB;
        name_end = segs[1] - 1;
        arg = segs[0];
        argl = segl[0];
    } else if (nseg >= 3 && segment_is(segs[1], segl[1], "referrers")) {
        m->route = NODE_ROUTE_REFERRERS;
        name_end = segs[1] - 1;
        arg = segs[0];
        argl = segl[0];
    } else {
        return;
    }
    /* Names are matched as sent: a valid name has no '%', and decoding
     * would let "a%2Fb" pass as "a/b". */
    if (name_end <= p) {
        m->name_invalid = true;
    } else {
        m->name = at_strndup(p, (size_t)(name_end - p));
        m->name_invalid = !node_name_valid(m->name, strlen(m->name));
    }
    if (arg != NULL && node_url_decode(arg, argl, &m->arg) != 0)
        m->arg = at_strdup("");
    if (arg != NULL && m->arg == NULL)
        m->arg = at_strdup("");
}

/* see api.h */
void node_route_release(struct node_route_match *m)
{
    free(m->name);
    free(m->arg);
    m->name = NULL;
    m->arg = NULL;
}

/* ---- listings ---- */

enum list_kind { LIST_TAGS, LIST_CATALOG, LIST_REFERRERS };

struct listing {
    struct node_api *api;
    struct node_http_req *req;
    enum list_kind kind;
    char *name; /* owned */
    char *last; /* owned or NULL */
    size_t limit;
    bool has_n;
    struct at_digest subject;
    char *artifact_type; /* owned or NULL: referrers filter */
    struct at_buf out;
    size_t count;
    const char *last_given; /* borrowed from meta until return to loop */
    char *last_copy;        /* owned */
};

static void listing_free(struct listing *l)
{
    free(l->name);
    free(l->last);
    free(l->artifact_type);
    free(l->last_copy);
    at_buf_release(&l->out);
    free(l);
}

static void list_each(void *data, const char *name)
{
    struct listing *l = data;
    if (l->count > 0)
        at_buf_append(&l->out, ",", 1);
    at_buf_json_str(&l->out, name, strlen(name));
    l->count++;
    l->last_given = name;
}

static void referrer_each(void *data, const struct meta_manifest *mf)
{
    struct listing *l = data;
    char dig[AT_DIGEST_STR_SIZE];

    if (l->artifact_type != NULL &&
        (mf->artifact_type == NULL ||
         strcmp(mf->artifact_type, l->artifact_type) != 0))
        return;
    if (l->count > 0)
        at_buf_append(&l->out, ",", 1);
    at_buf_puts(&l->out, "{\"mediaType\":");
    at_buf_json_str(&l->out, mf->media_type, strlen(mf->media_type));
    at_buf_printf(&l->out, ",\"digest\":\"%s\",\"size\":%zu",
                  at_digest_format(&mf->digest, dig), mf->len);
    if (mf->artifact_type != NULL) {
        at_buf_puts(&l->out, ",\"artifactType\":");
        at_buf_json_str(&l->out, mf->artifact_type, strlen(mf->artifact_type));
    }
    if (mf->annotations_json != NULL) {
        at_buf_puts(&l->out, ",\"annotations\":");
        at_buf_puts(&l->out, mf->annotations_json);
    }
    at_buf_puts(&l->out, "}");
    l->count++;
}

static void listing_reply(struct listing *l)
{
    struct node_http_req *req = l->req;
    bool more = false;
    int rv = 0;

    at_buf_init(&l->out, 0);
    switch (l->kind) {
    case LIST_TAGS:
        at_buf_puts(&l->out, "{\"name\":");
        at_buf_json_str(&l->out, l->name, strlen(l->name));
        at_buf_puts(&l->out, ",\"tags\":[");
        rv = meta_tags_list(l->api->meta, l->name, l->last, l->limit, list_each,
                            l, &more);
        if (rv == AT_ENOTFOUND) {
            node_api_error(req, 404, "NAME_UNKNOWN",
                           "repository name not known to registry");
            return;
        }
        break;
    case LIST_CATALOG:
        at_buf_puts(&l->out, "{\"repositories\":[");
        meta_catalog_list(l->api->meta, l->last, l->limit, list_each, l, &more);
        break;
    case LIST_REFERRERS:
        at_buf_printf(&l->out,
                      "{\"schemaVersion\":2,\"mediaType\":\"%s\","
                      "\"manifests\":[",
                      mt_index);
        meta_referrers(l->api->meta, l->name, &l->subject, referrer_each, l);
        break;
    }
    at_buf_puts(&l->out, "]}\n");
    node_api_begin(req, 200);
    if (l->kind == LIST_REFERRERS) {
        node_http_resp_header(req, "Content-Type", "%s", mt_index);
        if (l->artifact_type != NULL)
            node_http_resp_header(req, "OCI-Filters-Applied", "artifactType");
    } else {
        node_http_resp_header(req, "Content-Type", "application/json");
    }
    if (more && l->last_given != NULL) {
        /* distribution-spec "Listing Tags": Link with rel="next". Names and
         * tags need no escaping (their character sets are URL-safe). */
        if (l->kind == LIST_TAGS)
            node_http_resp_header(
                req, "Link", "</v2/%s/tags/list?last=%s&n=%zu>; rel=\"next\"",
                l->name, l->last_given, l->limit);
        else
            node_http_resp_header(req, "Link",
                                  "</v2/_catalog?last=%s&n=%zu>; rel=\"next\"",
                                  l->last_given, l->limit);
    }
    node_http_resp_send(req, l->out.data, l->out.len);
}

static void listing_on_barrier(void *data, int status)
{
    struct listing *l = data;

    if (!node_http_req_done(l->req)) {
        if (status != 0)
            node_api_error(l->req, 503, "UNAVAILABLE",
                           "cannot serve a consistent read: %s",
                           at_strerror(status));
        else
            listing_reply(l);
    }
    node_http_req_unref(l->req);
    listing_free(l);
}

static void listing_start(struct listing *l)
{
    int rv;

    node_http_req_ref(l->req);
    rv = node_api_read_barrier(l->api, listing_on_barrier, l);
    if (rv != 0)
        listing_on_barrier(l, rv);
}

/* Parse n and last. Returns false after replying with an error. */
static bool parse_pagination(struct node_http_req *req, struct listing *l)
{
    const char *q = node_http_req_query(req);
    char *n = NULL;
    uint64_t v;

    l->limit = LIST_MAX;
    if (q == NULL)
        return true;
    if (node_query_get(q, "n", &n) == 0) {
        if (at_parse_u64(n, strlen(n), &v) != 0) {
            free(n);
            node_api_error(req, 400, "PAGINATION_NUMBER_INVALID",
                           "invalid number of results requested");
            return false;
        }
        free(n);
        l->limit = v > LIST_MAX ? LIST_MAX : (size_t)v;
        l->has_n = true;
    }
    if (node_query_get(q, "last", &l->last) == AT_EINVAL) {
        node_api_error(req, 400, "UNSUPPORTED", "malformed last parameter");
        return false;
    }
    return true;
}

static void handle_listing(struct node_api *api,
                           struct node_http_req *req,
                           enum list_kind kind,
                           const char *name,
                           const char *arg)
{
    struct listing *l;
    enum node_http_method m = node_http_req_method(req);

    if (m != NODE_HTTP_GET && m != NODE_HTTP_HEAD) {
        node_api_error(req, 405, "UNSUPPORTED", "method not allowed");
        return;
    }
    l = at_calloc(1, sizeof(*l));
    l->api = api;
    l->req = req;
    l->kind = kind;
    l->name = name != NULL ? at_strdup(name) : NULL;
    at_buf_init(&l->out, 0);
    if (kind == LIST_REFERRERS) {
        const char *q = node_http_req_query(req);
        int rv = at_digest_parse(arg, strlen(arg), &l->subject);
        if (rv != 0) {
            node_api_error(req, 400, "DIGEST_INVALID", "invalid digest '%s'",
                           arg);
            listing_free(l);
            return;
        }
        if (q != NULL &&
            node_query_get(q, "artifactType", &l->artifact_type) == AT_EINVAL) {
            node_api_error(req, 400, "UNSUPPORTED",
                           "malformed artifactType parameter");
            listing_free(l);
            return;
        }
        l->limit = LIST_MAX;
    } else if (!parse_pagination(req, l)) {
        listing_free(l);
        return;
    }
    if (l->has_n && l->limit == 0) {
        /* n=0: an empty page, but still a 404 for an unknown repo. */
        l->limit = 0;
    }
    listing_start(l);
}

/* ---- admin ---- */

static void handle_admin(struct node_api *api, struct node_http_req *req)
{
    const char *path = node_http_req_path(req);
    struct meta_status st;
    struct at_buf b;
    uint64_t under = 0, copying = 0;

    if (strcmp(path, "/livez") == 0) {
        node_api_begin(req, 200);
        node_http_resp_header(req, "Content-Type", "text/plain");
        node_http_resp_send(req, "ok\n", 3);
        return;
    }
    meta_status_get(api->meta, &st);
    if (strcmp(path, "/readyz") == 0) {
        bool ready = st.leader_id != 0 && !api->stopping && !st.removed;
        node_api_begin(req, ready ? 200 : 503);
        node_http_resp_header(req, "Content-Type", "text/plain");
        node_http_resp_send(req, ready ? "ready\n" : "not ready\n",
                            ready ? 6 : 10);
        return;
    }
    at_buf_init(&b, 0);
    if (strcmp(path, "/metrics") == 0) {
        static const char *classes[] = { "other", "1xx", "2xx",
                                         "3xx",   "4xx", "5xx" };
        at_buf_puts(&b, "# TYPE atoll_http_requests_total counter\n");
        for (size_t i = 0; i < AT_ARRAY_SIZE(classes); i++)
            at_buf_printf(
                &b, "atoll_http_requests_total{class=\"%s\"} %" PRIu64 "\n",
                classes[i], status_counts[i]);
        at_buf_printf(&b,
                      "# TYPE atoll_http_body_bytes_in_total counter\n"
                      "atoll_http_body_bytes_in_total %" PRIu64
                      "\n"
                      "# TYPE atoll_blob_bytes_out_total counter\n"
                      "atoll_blob_bytes_out_total %" PRIu64
                      "\n"
                      "# TYPE atoll_blobs_committed_total counter\n"
                      "atoll_blobs_committed_total %" PRIu64
                      "\n"
                      "# TYPE atoll_manifests_put_total counter\n"
                      "atoll_manifests_put_total %" PRIu64
                      "\n"
                      "# TYPE atoll_raft_applied_index gauge\n"
                      "atoll_raft_applied_index %" PRIu64
                      "\n"
                      "# TYPE atoll_raft_commit_index gauge\n"
                      "atoll_raft_commit_index %" PRIu64
                      "\n"
                      "# TYPE atoll_raft_term gauge\n"
                      "atoll_raft_term %" PRIu64
                      "\n"
                      "# TYPE atoll_raft_state gauge\n"
                      "atoll_raft_state %d\n"
                      "# TYPE atoll_repositories gauge\n"
                      "atoll_repositories %" PRIu64
                      "\n"
                      "# TYPE atoll_tags gauge\n"
                      "atoll_tags %" PRIu64
                      "\n"
                      "# TYPE atoll_manifests gauge\n"
                      "atoll_manifests %" PRIu64
                      "\n"
                      "# TYPE atoll_blobs gauge\n"
                      "atoll_blobs %" PRIu64 "\n",
                      api->bytes_in, api->bytes_out, api->blobs_committed,
                      api->manifests_put, st.applied_index, st.commit_index,
                      st.term, st.state, st.repos, st.tags, st.manifests,
                      st.blobs);
        at_buf_printf(&b,
                      "# TYPE atoll_peer_blob_fetches_total counter\n"
                      "atoll_peer_blob_fetches_total %" PRIu64
                      "\n"
                      "# TYPE atoll_peer_blob_serves_total counter\n"
                      "atoll_peer_blob_serves_total %" PRIu64 "\n",
                      api->peer_blob_fetches,
                      api->peer_api != NULL ? api->peer_api->blob_serves : 0);
        node_replicate_counts(api, &under, &copying);
        at_buf_printf(&b,
                      "# TYPE atoll_under_replicated_blobs gauge\n"
                      "atoll_under_replicated_blobs %" PRIu64
                      "\n"
                      "# TYPE atoll_copies_in_flight gauge\n"
                      "atoll_copies_in_flight %" PRIu64 "\n",
                      under, copying);
        {
            struct node_gc_stats gs;
            node_gc_stats_get(api->gc, &gs);
            at_buf_printf(&b,
                          "# TYPE atoll_gc_blobs_swept_total counter\n"
                          "atoll_gc_blobs_swept_total %" PRIu64
                          "\n"
                          "# TYPE atoll_gc_files_removed_total counter\n"
                          "atoll_gc_files_removed_total %" PRIu64
                          "\n"
                          "# TYPE atoll_gc_bytes_freed_total counter\n"
                          "atoll_gc_bytes_freed_total %" PRIu64 "\n",
                          gs.swept, gs.files_removed, gs.bytes_freed);
        }
        node_api_begin(req, 200);
        node_http_resp_header(req, "Content-Type", "text/plain; version=0.0.4");
        node_http_resp_send(req, b.data, b.len);
        at_buf_release(&b);
        return;
    }
    if (strcmp(path, "/_atoll/placement") == 0) {
        at_buf_release(&b);
        node_placement_handle(api, req);
        return;
    }
    if (strcmp(path, "/_atoll/gc") == 0 && api->gc != NULL) {
        at_buf_release(&b);
        node_gc_handle(api->gc, req);
        return;
    }
    if (strcmp(path, "/_atoll/members") == 0) {
        /* Read-only, so also here without the cluster secret. */
        node_peer_members_json(api->meta, &b);
        node_api_begin(req, 200);
        node_http_resp_header(req, "Content-Type", "application/json");
        node_http_resp_send(req, b.data, b.len);
        at_buf_release(&b);
        return;
    }
    if (strcmp(path, "/_atoll/status") == 0) {
        static const char *states[] = { "unavailable", "follower", "candidate",
                                        "leader" };
        at_buf_puts(&b, "{\"name\":");
        at_buf_json_str(&b, st.name, strlen(st.name));
        at_buf_printf(
            &b,
            ",\"id\":%" PRIu64 ",\"state\":\"%s\",\"leader_id\":%" PRIu64
            ",\"term\":%" PRIu64 ",\"commit_index\":%" PRIu64
            ",\"last_index\":%" PRIu64 ",\"applied_index\":%" PRIu64
            ",\"repositories\":%" PRIu64 ",\"tags\":%" PRIu64
            ",\"manifests\":%" PRIu64 ",\"blobs\":%" PRIu64,
            st.id, st.state >= 0 && st.state <= 3 ? states[st.state] : "?",
            st.leader_id, st.term, st.commit_index, st.last_index,
            st.applied_index, st.repos, st.tags, st.manifests, st.blobs);
        node_replicate_counts(api, &under, &copying);
        at_buf_printf(&b,
                      ",\"under_replicated\":%" PRIu64
                      ",\"copies_in_flight\":%" PRIu64 ",\"removed\":%s}\n",
                      under, copying, st.removed ? "true" : "false");
        node_api_begin(req, 200);
        node_http_resp_header(req, "Content-Type", "application/json");
        node_http_resp_send(req, b.data, b.len);
        at_buf_release(&b);
        return;
    }
    at_buf_release(&b);
    node_api_error(req, 404, "NOT_FOUND", "unknown admin endpoint");
}

static void api_dispatch(struct node_api *api, struct node_http_req *req);

struct min_wait {
    struct node_api *api;      /* borrowed */
    struct node_http_req *req; /* one reference */
};

static void min_index_reached(void *data, int status, uint64_t index)
{
    struct min_wait *mw = data;

    AT_UNUSED(index);
    if (!node_http_req_done(mw->req)) {
        if (status != 0)
            node_api_error(mw->req, 503, "UNAVAILABLE",
                           "X-Atoll-Min-Index not reached: %s",
                           at_strerror(status));
        else
            api_dispatch(mw->api, mw->req);
    }
    node_http_req_unref(mw->req);
    free(mw);
}

/* see api.h */
void node_api_handle(void *data, struct node_http_req *req)
{
    struct node_api *api = data;
    const char *min = node_http_req_header(req, "x-atoll-min-index");
    struct meta_status st;
    struct min_wait *mw;
    uint64_t want;
    int rv;

    if (api->meta == NULL) {
        node_api_error(req, 503, "UNAVAILABLE", "node is starting");
        return;
    }
    if (min == NULL) {
        api_dispatch(api, req);
        return;
    }
    /* Read-your-writes on any node: wait until the index a write returned
     * (X-Atoll-Index) is applied here. */
    if (at_parse_u64(min, strlen(min), &want) != 0) {
        node_api_error(req, 400, "UNSUPPORTED", "invalid X-Atoll-Min-Index");
        return;
    }
    meta_status_get(api->meta, &st);
    if (st.applied_index >= want) {
        api_dispatch(api, req);
        return;
    }
    mw = at_calloc(1, sizeof(*mw));
    mw->api = api;
    mw->req = req;
    node_http_req_ref(req);
    rv = meta_wait_applied(api->meta, want, MIN_INDEX_WAIT_MS,
                           min_index_reached, mw);
    if (rv != 0)
        min_index_reached(mw, rv, 0);
}

static void api_dispatch(struct node_api *api, struct node_http_req *req)
{
    struct node_route_match m;
    const char *path = node_http_req_path(req);
    enum node_http_method method = node_http_req_method(req);

    node_route_parse(path, &m);
    if (m.route != NODE_ROUTE_NONE && m.route != NODE_ROUTE_BASE &&
        m.route != NODE_ROUTE_CATALOG && m.route != NODE_ROUTE_ADMIN &&
        m.name_invalid) {
        node_api_error(req, 400, "NAME_INVALID", "invalid repository name");
        node_route_release(&m);
        return;
    }
    switch (m.route) {
    case NODE_ROUTE_BASE:
        if (method != NODE_HTTP_GET && method != NODE_HTTP_HEAD) {
            node_api_error(req, 405, "UNSUPPORTED", "method not allowed");
            break;
        }
        node_api_begin(req, 200);
        node_http_resp_header(req, "Content-Type", "application/json");
        node_http_resp_send(req, "{}", 2);
        break;
    case NODE_ROUTE_CATALOG:
        handle_listing(api, req, LIST_CATALOG, NULL, NULL);
        break;
    case NODE_ROUTE_TAGS:
        handle_listing(api, req, LIST_TAGS, m.name, NULL);
        break;
    case NODE_ROUTE_REFERRERS:
        handle_listing(api, req, LIST_REFERRERS, m.name, m.arg);
        break;
    case NODE_ROUTE_MANIFEST:
        node_api_manifest(api, req, m.name, m.arg);
        break;
    case NODE_ROUTE_BLOB:
        node_api_blob(api, req, m.name, m.arg);
        break;
    case NODE_ROUTE_UPLOAD_NEW:
        node_api_upload_new(api, req, m.name);
        break;
    case NODE_ROUTE_UPLOAD:
        node_api_upload(api, req, m.name, m.arg);
        break;
    case NODE_ROUTE_ADMIN:
        handle_admin(api, req);
        break;
    case NODE_ROUTE_NONE:
    default:
        node_api_error(req, 404, "UNSUPPORTED", "unknown path");
        break;
    }
    node_route_release(&m);
}
