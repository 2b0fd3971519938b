/* The node's metrics in Prometheus' text format (see metrics.h): every
 * family gets # HELP and # TYPE, counters end in _total, units are base
 * units (bytes, seconds), so `promtool check metrics` passes. */
#include "common/compat.h"

#include "node/auth/auth.h"
#include "node/cluster/fetch.h"
#include "node/cluster/fetch_table.h"
#include "node/cluster/gc.h"
#include "node/cluster/gossip.h"
#include "node/cluster/peer_api.h"
#include "node/cluster/pullthrough.h"
#include "node/cluster/replicate.h"
#include "node/cluster/verify.h"
#include "node/events.h"
#include "node/metrics.h"
#include "node/replication.h"

#include "node/loop_lag.h"

static void head(struct at_buf *b,
                 const char *name,
                 const char *type,
                 const char *help)
{
    at_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(struct at_buf *b,
                    const char *name,
                    const char *help,
                    uint64_t v)
{
    head(b, name, "counter", help);
    at_buf_printf(b, "%s %" PRIu64 "\n", name, v);
}

static void gauge(struct at_buf *b,
                  const char *name,
                  const char *help,
                  uint64_t v)
{
    head(b, name, "gauge", help);
    at_buf_printf(b, "%s %" PRIu64 "\n", name, v);
}

/* One labelled sample of a family whose head is written; the label value
 * escaped as the text format wants (backslash, quote, newline). */
static void sample(struct at_buf *b,
                   const char *name,
                   const char *label,
                   const char *value,
                   uint64_t v)
{
    at_buf_printf(b, "%s{%s=\"", name, label);
    for (const char *p = value; *p != '\0'; p++) {
        if (*p == '\\' || *p == '"')
            at_buf_printf(b, "\\%c", *p);
        else if (*p == '\n')
            at_buf_puts(b, "\\n");
        else
            at_buf_printf(b, "%c", *p);
    }
    at_buf_printf(b, "\"} %" PRIu64 "\n", v);
}

/* Gossip's counters (nothing when gossip is off). */
static void gossip_metrics(const struct node_gossip *g, struct at_buf *b)
{
    static const char *drop = "atoll_gossip_packets_dropped_total";
    static const char *members = "atoll_gossip_members";
    struct node_gossip_stats st;

    if (g == NULL)
        return;
    node_gossip_stats_get(g, &st);
    head(b, members, "gauge", "Members gossip knows, by state.");
    sample(b, members, "state", "alive", st.alive);
    sample(b, members, "state", "suspect", st.suspect);
    sample(b, members, "state", "dead", st.dead);
    sample(b, members, "state", "left", st.left);
    head(b, drop, "counter", "Gossip packets dropped unparsed, by reason.");
    sample(b, drop, "reason", "short", st.drop_short);
    sample(b, drop, "reason", "oversize", st.drop_oversize);
    sample(b, drop, "reason", "version", st.drop_version);
    sample(b, drop, "reason", "unknown_key", st.drop_unknown_key);
    sample(b, drop, "reason", "auth", st.drop_auth);
    sample(b, drop, "reason", "decode", st.drop_decode);
    sample(b, drop, "reason", "replay", st.drop_replay);
    sample(b, drop, "reason", "stale", st.drop_stale);
    sample(b, drop, "reason", "send", st.drop_send);
    counter(b, "atoll_gossip_packets_sent_total", "Gossip packets sent.",
            st.sent);
    counter(b, "atoll_gossip_packets_received_total",
            "Gossip packets received.", st.received);
    counter(b, "atoll_gossip_push_pulls_total",
            "Gossip full state exchanges (push-pull) done.", st.push_pulls);
    counter(b, "atoll_gossip_push_pull_errors_total",
            "Gossip full state exchanges that failed.", st.push_pull_errors);
    gauge(b, "atoll_gossip_health",
          "Lifeguard local health score (0 is healthy).", st.health);
}

static void peer_lag(void *data, const struct meta_peer_progress *p)
{
    struct at_buf *b = data;

    sample(b, "atoll_raft_peer_lag_entries", "peer", p->name, p->lag);
}

/* Voters of the configuration and the ones autopilot sees alive and
 * caught up. Only a leader whose autopilot runs (gossip on) has that view:
 * elsewhere both series are absent, so a cluster has one of each and a
 * former leader never exports a stale count. */
static void voter_metrics(struct meta *m, struct at_buf *b)
{
    struct meta_autopilot_status ap;
    uint64_t voters = 0, healthy = 0;

    meta_autopilot_status(m, &ap);
    if (!ap.leader || !ap.enabled || ap.nnodes == 0)
        return;
    for (size_t i = 0; i < ap.nnodes; i++) {
        if (ap.nodes[i].role != 1) /* meta.h roles: 1 voter */
            continue;
        voters++;
        healthy += ap.nodes[i].healthy;
    }
    gauge(b, "atoll_raft_voters",
          "On the leader: voters in the raft configuration.", voters);
    gauge(b, "atoll_raft_voters_healthy",
          "On the leader: voters autopilot sees alive and caught up.", healthy);
}

/* The raft series; per-peer lag and voter counts on the leader only. */
static void raft_metrics(struct meta *m, struct at_buf *b)
{
    struct meta_status st;

    meta_status_get(m, &st);
    gauge(b, "atoll_raft_term", "Current raft term.", st.term);
    gauge(b, "atoll_raft_commit_index", "Last committed raft log index.",
          st.commit_index);
    gauge(b, "atoll_raft_applied_index",
          "Last raft log index applied to this node's state.",
          st.applied_index);
    gauge(b, "atoll_raft_last_index", "Last raft log index on this node.",
          st.last_index);
    gauge(b, "atoll_raft_state",
          "Raft state: 0 unavailable, 1 follower, 2 candidate, 3 leader.",
          (uint64_t)st.state);
    gauge(b, "atoll_raft_is_leader", "1 when this node is the raft leader.",
          st.state == 3);
    counter(b, "atoll_raft_leader_changes_total",
            "Changes of the raft leader this node saw.", st.leader_changes);
    counter(b, "atoll_raft_guard_held_total",
            "AppendEntries results held back from this node as a new leader "
            "until an entry of its term was stored (Figure 8 guard).",
            st.guard_held);
    counter(b, "atoll_raft_guard_dropped_total",
            "AppendEntries results the guard dropped (hold queue full).",
            st.guard_dropped);
    counter(b, "atoll_raft_guard_barriers_total",
            "Barriers this node appended on winning an election.",
            st.guard_barriers);
    head(b, "atoll_raft_peer_lag_entries", "gauge",
         "On the leader: log entries each other server is behind.");
    meta_peer_progress_each(m, peer_lag, b);
    voter_metrics(m, b);
    gauge(b, "atoll_repositories", "Repositories in the registry.", st.repos);
    gauge(b, "atoll_tags", "Tags in the registry.", st.tags);
    gauge(b, "atoll_manifests", "Manifests in the registry.", st.manifests);
    gauge(b, "atoll_blobs", "Blobs recorded in the registry.", st.blobs);
    head(b, "atoll_manifest_body_bytes", "gauge",
         "Manifest bodies in this node's body file: live, or dead (deleted, "
         "reclaimed at the next restart or snapshot install).");
    sample(b, "atoll_manifest_body_bytes", "state", "live", st.body_live);
    sample(b, "atoll_manifest_body_bytes", "state", "dead", st.body_dead);
    gauge(b, "atoll_manifest_bodies_in_memory",
          "1 when manifest bodies are kept on the heap (no body file could "
          "be opened in the raft dir), else 0.",
          st.body_in_file ? 0 : 1);
}

/* API counters kept in struct node_api. */
/* The event stream to webhooks (node/events.c): all zero without one. */
static void events_metrics(struct node_api *api, struct at_buf *b)
{
    struct node_webhook_stats st;
    uint64_t lost = 0, mark = 0;

    node_events_stats(api, &st, &lost, &mark);
    counter(b, "atoll_events_sent_total",
            "Events a webhook receiver took (2xx), all receivers.", st.sent);
    counter(b, "atoll_events_retries_total",
            "Event deliveries that failed and were tried again.", st.retries);
    counter(b, "atoll_events_dropped_total",
            "Events given up: a receiver's queue full (the oldest goes), "
            "refused with a 4xx, or queued faster than this node took "
            "them from the log.",
            st.dropped + lost);
    gauge(b, "atoll_events_queued", "Events waiting for a receiver.",
          st.queued);
    gauge(b, "atoll_events_delivered_index",
          "The log index up to which every receiver is done, as the leader "
          "last recorded it (a new leader sends again what is past it).",
          mark);
}

/* Pull-through caches (node/cluster/pullthrough.c): asks of this node. */
static void pullthrough_metrics(struct node_api *api, struct at_buf *b)
{
    struct node_pt_counts c;

    node_pullthrough_counts(api, &c);
    counter(b, "atoll_pullthrough_asks_total",
            "Manifest GETs under a pull-through prefix that asked the "
            "upstream (through the leader), joined asks included.",
            c.asks);
    counter(b, "atoll_pullthrough_fresh_total",
            "Manifest GETs under a pull-through prefix served from the "
            "cache without asking (a digest, or a tag within its ttl).",
            c.fresh_hits);
    counter(b, "atoll_pullthrough_upstream_ok_total",
            "Asks of the upstream that ended well (one per repo:ref at a "
            "time).",
            c.imports);
    counter(b, "atoll_pullthrough_upstream_failed_total",
            "Asks of the upstream that failed (the cache was served when "
            "it had the manifest).",
            c.failures);
}

/* Replication jobs run here (node/replication.c: on the leader). */
static void replication_metrics(struct node_api *api, struct at_buf *b)
{
    struct node_replication_counts c;

    node_replication_counts(api, &c);
    counter(b, "atoll_replication_runs_ok_total",
            "Replication jobs this node ran that ended without an error.",
            c.runs_ok);
    counter(b, "atoll_replication_runs_failed_total",
            "Replication jobs this node ran that ended with an error "
            "(see atoll replication status).",
            c.runs_failed);
    counter(b, "atoll_replication_bytes_total",
            "Blob bytes replication jobs copied.", c.bytes);
    counter(b, "atoll_replication_manifests_total",
            "Manifests replication jobs copied.", c.manifests);
    gauge(b, "atoll_replication_jobs_running",
          "Replication jobs running on this node.", c.running);
}

static void api_metrics(struct node_api *api, struct at_buf *b)
{
    static const char *classes[] = {
        "other", "1xx", "2xx", "3xx", "4xx", "5xx"
    };
    static const char *req = "atoll_http_requests_total";
    static const char *gate = "atoll_gate_decisions_total";

    head(b, req, "counter", "Answers sent, by status class.");
    for (size_t i = 0; i < AT_ARRAY_SIZE(classes); i++)
        sample(b, req, "class", classes[i], api->status_counts[i]);
    head(b, gate, "counter", "Decisions of the API's gate, by result.");
    sample(b, gate, "result", "allowed", api->gate_allowed);
    sample(b, gate, "result", "401", api->gate_401);
    sample(b, gate, "result", "403", api->gate_403);
    sample(b, gate, "result", "429", api->gate_429);
    sample(b, gate, "result", "503", api->gate_503);
    node_metrics_http_text(api->http_durations, b);
    counter(b, "atoll_http_body_bytes_in_total", "Request body bytes received.",
            api->bytes_in);
    counter(b, "atoll_blob_bytes_out_total", "Blob bytes sent to clients.",
            api->bytes_out);
    counter(b, "atoll_blobs_committed_total", "Blob uploads committed.",
            api->blobs_committed);
    counter(b, "atoll_manifests_put_total", "Manifests stored.",
            api->manifests_put);
    events_metrics(api, b);
    replication_metrics(api, b);
    pullthrough_metrics(api, b);
}

/* Storage, blob transfers between nodes, replication and GC. */
static void store_metrics(struct node_api *api, struct at_buf *b)
{
    struct node_gc_stats gs;
    uint64_t under = 0, copying = 0;
    unsigned active = 0, background = 0;

    if (api->store != NULL && !storage_closed(api->store)) {
        (void)storage_space_ok(api->store); /* refreshes free_bytes */
        gauge(b, "atoll_storage_free_bytes",
              "Free bytes on the store's filesystem (measured at most 1 s "
              "ago).",
              api->store->free_bytes);
        gauge(b, "atoll_storage_upload_sessions",
              "Blob upload sessions open on this node.",
              api->store->uploads.len);
    }
    counter(b, "atoll_peer_blob_fetches_total",
            "Blob transfers started from another node.",
            api->peer_blob_fetches);
    counter(b, "atoll_peer_blob_relays_total",
            "Blob transfers from another node passed on to a client with no "
            "copy kept (below the free-space reserve).",
            api->peer_blob_relays);
    counter(b, "atoll_peer_blob_serves_total", "Blobs sent to other nodes.",
            api->peer_api != NULL ? api->peer_api->blob_serves : 0);
    counter(b, "atoll_peer_snapshot_serves_total",
            "Snapshot files sent to nodes that fetch them.",
            api->peer_api != NULL ? api->peer_api->snapshot_serves : 0);
    counter(b, "atoll_blob_verify_hashes_total",
            "Local blob files hashed before a serve (once per change of the "
            "file; not after an upload or fetch, which hashed it already).",
            node_verify_hashes(api));
    node_fetch_counts(api, &active, &background);
    gauge(b, "atoll_fetches_active", "Blob fetches from other nodes running.",
          active);
    gauge(b, "atoll_fetches_background",
          "Blob fetches running with no client waiting (copies).", background);
    gauge(b, "atoll_relays_active",
          "Blob relays running (no copy kept: below the reserve).",
          api->fetches != NULL ? api->fetches->relays : 0);
    node_replicate_counts(api, &under, &copying);
    gauge(b, "atoll_under_replicated_blobs",
          "Blobs short of min_copies at the leader's last scan.", under);
    gauge(b, "atoll_copies_in_flight",
          "Blob copies asked from here or fetching here.", copying);
    node_gc_stats_get(api->gc, &gs);
    counter(b, "atoll_gc_runs_total", "GC sweeps finished on this node.",
            gs.runs);
    counter(b, "atoll_gc_blobs_swept_total",
            "Blob records this node's GC sweeps deleted.", gs.swept);
    counter(b, "atoll_gc_manifests_swept_total",
            "Untagged manifests this node's GC sweeps deleted.",
            gs.manifests_swept);
    counter(b, "atoll_gc_files_removed_total", "Local blob files GC deleted.",
            gs.files_removed);
    counter(b, "atoll_gc_files_kept_total",
            "Local blob files GC kept (changed or stored again).",
            gs.files_kept);
    counter(b, "atoll_gc_bytes_freed_total",
            "Bytes of the local blob files GC deleted.", gs.bytes_freed);
}

static void auth_metrics(struct node_auth *auth, struct at_buf *b)
{
    struct node_auth_stats as;
    struct node_auth_limit_stats ls;

    node_auth_stats_get(auth, &as);
    node_auth_limit_stats_get(node_auth_limiter(auth), &ls);
    counter(b, "atoll_auth_bcrypts_total", "bcrypt runs.", as.bcrypts);
    counter(b, "atoll_auth_cache_hits_total",
            "Credentials verified from the cache.", as.cache_hits);
    counter(b, "atoll_auth_verified_total", "Credential checks passed.",
            as.verified);
    counter(b, "atoll_auth_refused_total", "Credential checks failed.",
            as.refused);
    gauge(b, "atoll_auth_cached_credentials", "Credentials in the cache.",
          as.cached);
    counter(b, "atoll_auth_login_failures_total", "Failed logins counted.",
            ls.failures);
    counter(b, "atoll_auth_limited_total",
            "Logins refused for too many failures.", ls.refused);
    gauge(b, "atoll_auth_limit_tracked",
          "Names and addresses the failed-login limiter remembers.",
          ls.tracked);
}

/* see metrics.h */
void node_metrics_text(struct node_api *api, struct at_buf *b)
{
    api_metrics(api, b);
    if (api->meta != NULL)
        raft_metrics(api->meta, b);
    store_metrics(api, b);
    gossip_metrics(api->peer_api != NULL ? api->peer_api->gossip : NULL, b);
    if (api->auth != NULL)
        auth_metrics(api->auth, b);
    if (api->loop_lag != NULL)
        node_loop_lag_text(api->loop_lag, b);
    node_metrics_process_text(b);
}
