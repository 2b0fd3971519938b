/* The node's own endpoints on the API listener (see admin.h). */
#include "common/compat.h"

#include "node/accounts.h"
#include "node/admin.h"
#include "node/cluster/gc.h"
#include "node/cluster/peer_api.h"
#include "node/cluster/placement.h"
#include "node/cluster/replicate.h"
#include "node/metrics.h"
#include "node/policy.h"
#include "node/reply/reply.h"
#include "node/token.h"

/* see admin.h */
bool node_admin_path(const char *path)
{
    return strncmp(path, "/_atoll/", 8) == 0 || strcmp(path, "/livez") == 0 ||
           strcmp(path, "/readyz") == 0 || strcmp(path, "/metrics") == 0;
}

static void reply_text(struct node_http_req *req,
                       int status,
                       const char *type,
                       const struct at_buf *b)
{
    node_reply_begin(req, status);
    node_http_resp_header(req, "Content-Type", "%s", type);
    node_http_resp_send(req, b->data, b->len);
}

static void status_json(struct node_api *api, struct at_buf *b)
{
    static const char *states[] = { "unavailable", "follower", "candidate",
                                    "leader" };
    struct meta_status st;
    uint64_t under = 0, copying = 0;

    meta_status_get(api->meta, &st);
    at_buf_puts(b, "{\"name\":");
    at_buf_json_str(b, st.name, strlen(st.name));
    at_buf_printf(b,
                  ",\"id\":%" PRIu64 ",\"state\":\"%s\",\"leader_id\":%" PRIu64
                  ",\"term\":%" PRIu64 ",\"commit_index\":%" PRIu64
                  ",\"last_index\":%" PRIu64 ",\"applied_index\":%" PRIu64
                  ",\"repositories\":%" PRIu64 ",\"tags\":%" PRIu64
                  ",\"manifests\":%" PRIu64 ",\"blobs\":%" PRIu64,
                  st.id,
                  st.state >= 0 && st.state <= 3 ? states[st.state] : "?",
                  st.leader_id, st.term, st.commit_index, st.last_index,
                  st.applied_index, st.repos, st.tags, st.manifests, st.blobs);
    node_replicate_counts(api, &under, &copying);
    at_buf_printf(b,
                  ",\"under_replicated\":%" PRIu64
                  ",\"copies_in_flight\":%" PRIu64 ",\"removed\":%s}\n",
                  under, copying, st.removed ? "true" : "false");
}

static void probe(struct node_api *api, struct node_http_req *req, bool live)
{
    struct meta_status st;
    bool ok = live;

    if (!live) {
        meta_status_get(api->meta, &st);
        ok = st.leader_id != 0 && !api->stopping && !st.removed;
    }
    node_reply_begin(req, ok ? 200 : 503);
    node_http_resp_header(req, "Content-Type", "text/plain");
    if (live)
        node_http_resp_send(req, "ok\n", 3);
    else
        node_http_resp_send(req, ok ? "ready\n" : "not ready\n", ok ? 6 : 10);
}

/* see admin.h */
void node_admin_handle(struct node_api *api, struct node_http_req *req)
{
    const char *path = node_http_req_path(req);
    struct at_buf b;

    if (strcmp(path, "/livez") == 0 || strcmp(path, "/readyz") == 0) {
        probe(api, req, path[1] == 'l');
        return;
    }
    if (strcmp(path, "/_atoll/placement") == 0) {
        node_placement_handle(api, req);
        return;
    }
    if (strcmp(path, "/_atoll/gc") == 0 && api->gc != NULL) {
        node_gc_handle(api->gc, req);
        return;
    }
    if (strcmp(path, "/_atoll/policy") == 0) {
        node_policy_handle(api, req);
        return;
    }
    if (node_accounts_path(path)) {
        node_accounts_handle(api, req);
        return;
    }
    if (node_token_path(path)) {
        node_token_handle(api, req);
        return;
    }
    at_buf_init(&b, 0);
    if (strcmp(path, "/metrics") == 0) {
        node_metrics_text(api, &b);
        reply_text(req, 200, "text/plain; version=0.0.4", &b);
    } else if (strcmp(path, "/_atoll/members") == 0) {
        /* Read-only, so also here without the cluster secret. */
        node_peer_members_json(
            api->meta, api->peer_api != NULL ? api->peer_api->gossip : NULL,
            &b);
        reply_text(req, 200, "application/json", &b);
    } else if (strcmp(path, "/_atoll/status") == 0) {
        status_json(api, &b);
        reply_text(req, 200, "application/json", &b);
    } else {
        node_reply_error(req, 404, "NOT_FOUND", "unknown admin endpoint");
    }
    at_buf_release(&b);
}
