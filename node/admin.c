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
#include "node/replication.h"
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

static void json_member(struct at_buf *b, const char *key, const char *v)
{
    at_buf_printf(b, "\"%s\":", key);
    at_buf_json_str(b, v, strlen(v));
}

/* ,"autopilot":{enabled, leader, actions (oldest first), nodes} */
static void autopilot_json(struct node_api *api, struct at_buf *b)
{
    static const char *lives[] = { "unknown", "alive", "suspect", "dead",
                                   "left" };
    static const char *roles[] = { "spare", "voter", "standby" };
    struct meta_autopilot_status ap;

    meta_autopilot_status(api->meta, &ap);
    at_buf_printf(b,
                  ",\"autopilot\":{\"enabled\":%s,\"configured\":%s,\"leader\":"
                  "%s,\"actions\":[",
                  ap.enabled ? "true" : "false",
                  ap.configured ? "true" : "false",
                  ap.leader ? "true" : "false");
    for (size_t i = 0; i < ap.nactions; i++) {
        const struct meta_autopilot_action *a = &ap.actions[i];
        at_buf_printf(b, "%s{\"time_ms\":%" PRIu64 ",", i ? "," : "",
                      a->time_ms);
        json_member(b, "kind", a->kind);
        at_buf_puts(b, ",");
        json_member(b, "node", a->node);
        at_buf_puts(b, ",");
        json_member(b, "reason", a->reason);
        at_buf_puts(b, "}");
    }
    at_buf_puts(b, "],\"nodes\":[");
    for (size_t i = 0; i < ap.nnodes; i++) {
        const struct meta_autopilot_node *n = &ap.nodes[i];
        at_buf_puts(b, i ? ",{" : "{");
        json_member(b, "name", n->name);
        at_buf_printf(b,
                      ",\"liveness\":\"%s\",\"role\":\"%s\",\"caught_up\":%s"
                      ",\"healthy\":%s,\"stable_since_ms\":%" PRIu64 "}",
                      (unsigned)n->liveness < 5 ? lives[n->liveness] : "?",
                      n->role >= 0 && n->role <= 2 ? roles[n->role] : "?",
                      n->caught_up ? "true" : "false",
                      n->healthy ? "true" : "false", n->stable_since_ms);
    }
    at_buf_puts(b, "]}");
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
                  ",\"copies_in_flight\":%" PRIu64 ",\"removed\":%s",
                  under, copying, st.removed ? "true" : "false");
    autopilot_json(api, b);
    at_buf_puts(b, "}\n");
}

static void probe(struct node_api *api, struct node_http_req *req, bool live)
{
    struct meta_status st;
    bool ok = live;

    if (!live) {
        meta_status_get(api->meta, &st);
        ok = st.leader_fresh && !api->stopping && !st.removed;
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
    if (node_replication_path(path)) {
        node_replication_handle(api, req);
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
