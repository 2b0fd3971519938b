/* The API listener's front (see front.h). */
#include "common/compat.h"

#include "node/admin.h"
#include "node/front.h"
#include "node/gate.h"
#include "node/oci/router.h"

struct min_wait {
    struct node_api *api;      /* borrowed */
    struct node_http_req *req; /* one reference */
};

static void route(struct node_api *api, struct node_http_req *req)
{
    if (node_admin_path(node_http_req_path(req)))
        node_admin_handle(api, req);
    else
        node_oci_handle(api, req);
}

/* Access control first (node/gate.c), then the endpoint. */
static void dispatch(struct node_api *api, struct node_http_req *req)
{
    node_gate_run(api, req, route);
}

static void min_index_reached(void *data, int status, uint64_t index)
{
    struct min_wait *mw = data;

    AT_UNUSED(index);
    if (!node_http_req_done(mw->req)) {
        if (status != 0)
            node_reply_error(mw->req, 503, "UNAVAILABLE",
                             "X-Atoll-Min-Index not reached: %s",
                             at_strerror(status));
        else
            dispatch(mw->api, mw->req);
    }
    node_http_req_unref(mw->req);
    free(mw);
}

/* see front.h */
void node_front_handle(void *data, struct node_http_req *req)
{
    struct node_reply_ctx *ctx = data;
    struct node_api *api = ctx->api;
    const char *min = node_http_req_header(req, "x-atoll-min-index");
    struct meta_status st;
    struct min_wait *mw;
    uint64_t want;
    int rv;

    node_reply_bind(req, ctx);
    if (api->meta == NULL) {
        node_reply_error(req, 503, "UNAVAILABLE", "node is starting");
        return;
    }
    if (min == NULL) {
        dispatch(api, req);
        return;
    }
    /* Read-your-writes on any node: wait until the index a write returned
     * (X-Atoll-Index) is applied here. */
    if (at_parse_u64(min, strlen(min), &want) != 0) {
        node_reply_error(req, 400, "UNSUPPORTED", "invalid X-Atoll-Min-Index");
        return;
    }
    meta_status_get(api->meta, &st);
    if (st.applied_index >= want) {
        dispatch(api, req);
        return;
    }
    mw = at_calloc(1, sizeof(*mw));
    mw->api = api;
    mw->req = req;
    node_http_req_ref(req);
    rv = meta_wait_applied(api->meta, want, NODE_MIN_INDEX_WAIT_MS,
                           min_index_reached, mw);
    if (rv != 0)
        min_index_reached(mw, rv, 0);
}
