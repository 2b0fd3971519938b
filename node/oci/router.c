/* The OCI API's router: a /v2/ path to its handler (see router.h). */
#define AT_LOG_COMP "api"
#include "common/compat.h"

#include "node/cluster/pullthrough.h"
#include "node/oci/handlers.h"
#include "node/oci/route.h"
#include "node/oci/router.h"
#include "node/reply/reply.h"

static void base(struct node_http_req *req)
{
    enum node_http_method method = node_http_req_method(req);

    if (method != NODE_HTTP_GET && method != NODE_HTTP_HEAD) {
        node_reply_error(req, 405, "UNSUPPORTED", "method not allowed");
        return;
    }
    node_reply_begin(req, 200);
    node_http_resp_header(req, "Content-Type", "application/json");
    node_http_resp_send(req, "{}", 2);
}

/* A write under a pull-through prefix: refused (405 UNSUPPORTED), as
 * distribution's proxy does; a DELETE evicts from the cache. */
static bool proxy_refused(struct node_api *api,
                          struct node_http_req *req,
                          const struct node_route_match *m)
{
    const struct node_pt_rule *r;

    if (api->pullthrough == NULL || m->name == NULL ||
        (m->route != NODE_ROUTE_UPLOAD_NEW && m->route != NODE_ROUTE_UPLOAD &&
         (m->route != NODE_ROUTE_MANIFEST ||
          node_http_req_method(req) != NODE_HTTP_PUT)))
        return false;
    r = node_pullthrough_rule(api, m->name);
    if (r == NULL)
        return false;
    node_reply_error(req, 405, "UNSUPPORTED",
                     "repository '%s' is under '%s', a pull-through cache "
                     "(replication rule %s): pushes are refused",
                     m->name, r->prefix, r->name);
    return true;
}

/* see router.h */
void node_oci_handle(struct node_api *api, struct node_http_req *req)
{
    struct node_route_match m;

    node_route_parse(node_http_req_path(req), &m);
    if (m.route != NODE_ROUTE_NONE && m.route != NODE_ROUTE_BASE &&
        m.route != NODE_ROUTE_CATALOG && m.name_invalid) {
        node_reply_error(req, 400, "NAME_INVALID", "invalid repository name");
        node_route_release(&m);
        return;
    }
    if (proxy_refused(api, req, &m)) {
        node_route_release(&m);
        return;
    }
    switch (m.route) {
    case NODE_ROUTE_BASE:
        base(req);
        break;
    case NODE_ROUTE_CATALOG:
        node_oci_catalog(api, req);
        break;
    case NODE_ROUTE_TAGS:
        node_oci_tags(api, req, m.name);
        break;
    case NODE_ROUTE_REFERRERS:
        node_oci_referrers(api, req, m.name, m.arg);
        break;
    case NODE_ROUTE_MANIFEST:
        node_oci_manifest(api, req, m.name, m.arg);
        break;
    case NODE_ROUTE_BLOB:
        node_oci_blob(api, req, m.name, m.arg);
        break;
    case NODE_ROUTE_UPLOAD_NEW:
        node_oci_upload_new(api, req, m.name);
        break;
    case NODE_ROUTE_UPLOAD:
        node_oci_upload(api, req, m.name, m.arg);
        break;
    case NODE_ROUTE_NONE:
    default:
        node_reply_error(req, 404, "UNSUPPORTED", "unknown path");
        break;
    }
    node_route_release(&m);
}
