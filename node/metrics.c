/* The node's metrics in Prometheus' text format (see metrics.h). */
#include "common/compat.h"

#include "node/auth/auth.h"
#include "node/cluster/gc.h"
#include "node/cluster/gossip.h"
#include "node/cluster/peer_api.h"
#include "node/cluster/replicate.h"
#include "node/metrics.h"

static void counter(struct at_buf *b, const char *name, uint64_t v)
{
    at_buf_printf(b, "# TYPE %s counter\n%s %" PRIu64 "\n", name, name, v);
}

static void gauge(struct at_buf *b, const char *name, uint64_t v)
{
    at_buf_printf(b, "# TYPE %s gauge\n%s %" PRIu64 "\n", name, name, v);
}

/* Gossip's counters (nothing when gossip is off). */
static void gossip_metrics(const struct node_gossip *g, struct at_buf *b)
{
    struct node_gossip_stats st;

    if (g == NULL)
        return;
    node_gossip_stats_get(g, &st);
    at_buf_printf(b,
                  "# TYPE atoll_gossip_members gauge\n"
                  "atoll_gossip_members{state=\"alive\"} %zu\n"
                  "atoll_gossip_members{state=\"suspect\"} %zu\n"
                  "atoll_gossip_members{state=\"dead\"} %zu\n"
                  "atoll_gossip_members{state=\"left\"} %zu\n",
                  st.alive, st.suspect, st.dead, st.left);
    at_buf_printf(
        b,
        "# TYPE atoll_gossip_packets_dropped_total counter\n"
        "atoll_gossip_packets_dropped_total{reason=\"short\"} %" PRIu64
        "\n"
        "atoll_gossip_packets_dropped_total{reason=\"oversize\"} %" PRIu64
        "\n"
        "atoll_gossip_packets_dropped_total{reason=\"version\"} %" PRIu64
        "\n"
        "atoll_gossip_packets_dropped_total{reason=\"unknown_key\"} %" PRIu64
        "\n"
        "atoll_gossip_packets_dropped_total{reason=\"auth\"} %" PRIu64
        "\n"
        "atoll_gossip_packets_dropped_total{reason=\"decode\"} %" PRIu64
        "\n"
        "atoll_gossip_packets_dropped_total{reason=\"replay\"} %" PRIu64
        "\n"
        "atoll_gossip_packets_dropped_total{reason=\"stale\"} %" PRIu64
        "\n"
        "atoll_gossip_packets_dropped_total{reason=\"send\"} %" PRIu64 "\n",
        st.drop_short, st.drop_oversize, st.drop_version, st.drop_unknown_key,
        st.drop_auth, st.drop_decode, st.drop_replay, st.drop_stale,
        st.drop_send);
    counter(b, "atoll_gossip_packets_sent_total", st.sent);
    counter(b, "atoll_gossip_packets_received_total", st.received);
    counter(b, "atoll_gossip_push_pulls_total", st.push_pulls);
    counter(b, "atoll_gossip_push_pull_errors_total", st.push_pull_errors);
    gauge(b, "atoll_gossip_health", st.health);
}

/* see metrics.h */
void node_metrics_text(struct node_api *api, struct at_buf *b)
{
    static const char *classes[] = {
        "other", "1xx", "2xx", "3xx", "4xx", "5xx"
    };
    struct meta_status st;
    struct node_gc_stats gs;
    uint64_t under = 0, copying = 0;

    meta_status_get(api->meta, &st);
    at_buf_puts(b, "# TYPE atoll_http_requests_total counter\n");
    for (size_t i = 0; i < AT_ARRAY_SIZE(classes); i++)
        at_buf_printf(b,
                      "atoll_http_requests_total{class=\"%s\"} %" PRIu64 "\n",
                      classes[i], api->status_counts[i]);
    at_buf_puts(b, "# TYPE atoll_gate_decisions_total counter\n");
    at_buf_printf(b,
                  "atoll_gate_decisions_total{result=\"allowed\"} %" PRIu64
                  "\n"
                  "atoll_gate_decisions_total{result=\"401\"} %" PRIu64
                  "\n"
                  "atoll_gate_decisions_total{result=\"403\"} %" PRIu64
                  "\n"
                  "atoll_gate_decisions_total{result=\"429\"} %" PRIu64
                  "\n"
                  "atoll_gate_decisions_total{result=\"503\"} %" PRIu64 "\n",
                  api->gate_allowed, api->gate_401, api->gate_403,
                  api->gate_429, api->gate_503);
    counter(b, "atoll_http_body_bytes_in_total", api->bytes_in);
    counter(b, "atoll_blob_bytes_out_total", api->bytes_out);
    counter(b, "atoll_blobs_committed_total", api->blobs_committed);
    counter(b, "atoll_manifests_put_total", api->manifests_put);
    gauge(b, "atoll_raft_applied_index", st.applied_index);
    gauge(b, "atoll_raft_commit_index", st.commit_index);
    gauge(b, "atoll_raft_term", st.term);
    at_buf_printf(b, "# TYPE atoll_raft_state gauge\natoll_raft_state %d\n",
                  st.state);
    gauge(b, "atoll_repositories", st.repos);
    gauge(b, "atoll_tags", st.tags);
    gauge(b, "atoll_manifests", st.manifests);
    gauge(b, "atoll_blobs", st.blobs);
    counter(b, "atoll_peer_blob_fetches_total", api->peer_blob_fetches);
    counter(b, "atoll_peer_blob_serves_total",
            api->peer_api != NULL ? api->peer_api->blob_serves : 0);
    node_replicate_counts(api, &under, &copying);
    gauge(b, "atoll_under_replicated_blobs", under);
    gauge(b, "atoll_copies_in_flight", copying);
    node_gc_stats_get(api->gc, &gs);
    counter(b, "atoll_gc_blobs_swept_total", gs.swept);
    counter(b, "atoll_gc_files_removed_total", gs.files_removed);
    counter(b, "atoll_gc_bytes_freed_total", gs.bytes_freed);
    gossip_metrics(api->peer_api != NULL ? api->peer_api->gossip : NULL, b);
    if (api->auth != NULL) {
        struct node_auth_stats as;
        struct node_auth_limit_stats ls;

        node_auth_stats_get(api->auth, &as);
        node_auth_limit_stats_get(node_auth_limiter(api->auth), &ls);
        counter(b, "atoll_auth_bcrypts_total", as.bcrypts);
        counter(b, "atoll_auth_cache_hits_total", as.cache_hits);
        counter(b, "atoll_auth_verified_total", as.verified);
        counter(b, "atoll_auth_refused_total", as.refused);
        gauge(b, "atoll_auth_cached_credentials", as.cached);
        counter(b, "atoll_auth_login_failures_total", ls.failures);
        counter(b, "atoll_auth_limited_total", ls.refused);
        gauge(b, "atoll_auth_limit_tracked", ls.tracked);
    }
}
