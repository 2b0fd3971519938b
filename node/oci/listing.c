/* The listing endpoints: tags, catalog and referrers (see listing.h).
 *
 * Listings are linearizable: they wait for a read barrier from the FSM
 * (raft/meta.h) before reading local state. */
#define AT_LOG_COMP "api"
#include "common/compat.h"

#include "node/auth/access.h"
#include "node/http/url.h"
#include "node/oci/handlers.h"
#include "node/reply/reply.h"

#define LIST_MAX 100000 /* cap of n for tags/list and _catalog */

static const char *mt_index = "application/vnd.oci.image.index.v1+json";

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
    /* the catalog names only what the caller may pull (a page may come
     * out shorter than n; its Link still goes on from the last name) */
    if (l->kind == LIST_CATALOG &&
        !node_access_may(l->req, name, META_ACTION_PULL)) {
        l->last_given = name;
        return;
    }
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
            node_reply_error(req, 404, "NAME_UNKNOWN",
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
    node_reply_begin(req, 200);
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
            node_reply_error(l->req, 503, "UNAVAILABLE",
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
    /* the gate's barrier for this request, or a single voter with nothing
     * pending, is as good as one here */
    if (node_access_fresh(l->req) || node_api_read_now(l->api)) {
        listing_on_barrier(l, 0);
        return;
    }
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
            node_reply_error(req, 400, "PAGINATION_NUMBER_INVALID",
                             "invalid number of results requested");
            return false;
        }
        free(n);
        l->limit = v > LIST_MAX ? LIST_MAX : (size_t)v;
        l->has_n = true;
    }
    if (node_query_get(q, "last", &l->last) == AT_EINVAL) {
        node_reply_error(req, 400, "UNSUPPORTED", "malformed last parameter");
        return false;
    }
    return true;
}

static void listing_handle(struct node_api *api,
                           struct node_http_req *req,
                           enum list_kind kind,
                           const char *name,
                           const char *arg)
{
    struct listing *l;
    enum node_http_method m = node_http_req_method(req);

    if (m != NODE_HTTP_GET && m != NODE_HTTP_HEAD) {
        node_reply_error(req, 405, "UNSUPPORTED", "method not allowed");
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
            node_reply_error(req, 400, "DIGEST_INVALID", "invalid digest '%s'",
                             arg);
            listing_free(l);
            return;
        }
        if (q != NULL &&
            node_query_get(q, "artifactType", &l->artifact_type) == AT_EINVAL) {
            node_reply_error(req, 400, "UNSUPPORTED",
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

/* see listing.h */
void node_oci_catalog(struct node_api *api, struct node_http_req *req)
{
    listing_handle(api, req, LIST_CATALOG, NULL, NULL);
}

/* see listing.h */
void node_oci_tags(struct node_api *api,
                   struct node_http_req *req,
                   const char *name)
{
    listing_handle(api, req, LIST_TAGS, name, NULL);
}

/* see listing.h */
void node_oci_referrers(struct node_api *api,
                        struct node_http_req *req,
                        const char *name,
                        const char *digest)
{
    listing_handle(api, req, LIST_REFERRERS, name, digest);
}
