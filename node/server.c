/* The node daemon's wiring: data dir lock, storage, metadata, HTTP.
 *
 * Start order: lock <data_dir>/LOCK, storage_open (blobs, uploads), the
 * peer client, both HTTP listeners (the API answers 503 and the peer API 503
 * until the metadata is open: binding first gives meta_open the real
 * advertised addresses when a port is 0), then meta_open (raft log in
 * raft_dir). With --join and a pristine raft dir (or an unfinished join: the
 * join-pending marker), the node then asks the seed to add it, retrying with
 * backoff. Stop order: API listener first (in-flight requests finish,
 * bounded), then raft (meta_close transfers leadership, using the peer
 * listener and client, which close after it), then storage. */
#define AT_LOG_COMP "node"
#include "common/compat.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "gossip/seal.h"
#include "node/auth/access.h"
#include "node/auth/auth.h"
#include "node/changes.h"
#include "node/cluster/fetch_table.h"
#include "node/cluster/gc.h"
#include "node/cluster/gossip.h"
#include "node/cluster/peer.h"
#include "node/cluster/peer_api.h"
#include "node/cluster/placement.h"
#include "node/cluster/pullthrough.h"
#include "node/cluster/repl_scan.h"
#include "node/cluster/replicate.h"
#include "node/cluster/verify.h"
#include "node/events.h"
#include "node/front.h"
#include "node/gate.h"
#include "node/join.h"
#include "node/loop_lag.h"
#include "node/metrics.h"
#include "node/oci/router.h"
#include "node/replication.h"
#include "node/reply/reply.h"
#include "node/server.h"
#include "node/token.h"
#include "node/upstream.h"
#include "proto/peer.h"

#define REMOVED_MARKER  "removed" /* left by the removed notice (peer) */
#define GOSSIP_LEAVE_MS 2000      /* a graceful stop spreads "left" */

struct node_server {
    uv_loop_t *loop;               /* borrowed */
    const struct node_config *cfg; /* borrowed */
    int lock_fd;
    struct storage store;
    bool store_open;
    struct meta *meta;
    struct node_http_server *http;
    struct node_http_server *peer_http;
    struct node_peer *peer; /* client */
    struct node_peer_api peer_api;
    struct node_gossip *gossip; /* NULL: gossip off, or stopped */
    bool meta_closed;           /* stop: waits for gossip's leave */
    struct node_api api;
    struct node_metrics_http http_durations; /* the API listener's */
    struct node_reply_ctx api_reply;         /* the API listener's */
    char *name;                              /* owned */
    char *raft_dir;                          /* owned */
    char *peer_address; /* owned: advertised host:port of the peer listener */
    char *api_address;  /* owned: advertised host:port of the API */
    char *self_url;     /* owned: this node's API as its own jobs reach it */
    /* join (first start with --join), bootstrap-expect */
    struct node_join join;
    bool stopping;
    void (*stop_cb)(void *data);
    void *stop_data;
};

static int mkdir_p(const char *path)
{
    char *tmp = at_strdup(path);
    int rv = 0;

    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            rv = -errno;
        *p = '/';
    }
    if (rv == 0 && mkdir(tmp, 0755) != 0 && errno != EEXIST)
        rv = -errno;
    free(tmp);
    return rv;
}

static int split_listen(const char *listen, char **host, int *port)
{
    const char *colon = strrchr(listen, ':');
    uint64_t p;

    if (colon == NULL || colon == listen ||
        at_parse_u64(colon + 1, strlen(colon + 1), &p) != 0 || p > 65535)
        return AT_EINVAL;
    *host = at_strndup(listen, (size_t)(colon - listen));
    *port = (int)p;
    return 0;
}

static void server_free(struct node_server *s)
{
    node_loop_lag_close(s->api.loop_lag); /* a start that failed */
    node_peer_api_release(&s->peer_api);
    node_token_close(s->api.token); /* a start that failed */
    node_auth_close(s->api.auth);   /* idem; NULL after a stop */
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s->name);
    free(s->raft_dir);
    free(s->peer_address);
    free(s->api_address);
    at_free(s->self_url);
    free(s);
}

/* The blob store's reserve: reserve_bytes, plus raft_reserve when the raft
 * dir is on the blob store's file system, so that uploads stop before they
 * eat the raft log's own reserve. Else a disk the blobs filled to
 * reserve_bytes leaves raft below its reserve for good, and a leader on it
 * refuses every write of the cluster (a soak run: F9). 0 stays "no check". */
static uint64_t blob_reserve(const struct node_server *s)
{
    const struct node_config *cfg = s->cfg;
    struct stat data, raft;
    uint64_t r = cfg->reserve_bytes;

    if (r == 0 || cfg->raft_reserve_bytes == 0 ||
        stat(cfg->data_dir, &data) != 0 || stat(s->raft_dir, &raft) != 0 ||
        data.st_dev != raft.st_dev)
        return r;
    LOG_INFO(
        "the raft dir shares the blob store's file system: uploads "
        "stop at %" PRIu64 " bytes free (reserve_bytes + raft_reserve)",
        r + cfg->raft_reserve_bytes);
    return r + cfg->raft_reserve_bytes;
}

static bool file_in(const char *dir, const char *name)
{
    char *path = at_asprintf("%s/%s", dir, name);
    bool yes = access(path, F_OK) == 0;

    free(path);
    return yes;
}

/* ---- gossip ---- */

static uint64_t free_bytes(const char *dir)
{
    struct statvfs v;

    if (statvfs(dir, &v) != 0)
        return 0;
    return (uint64_t)v.f_bavail * (uint64_t)v.f_frsize;
}

struct peers_list {
    const char *self;
    const struct node_gossip *g;
    struct at_buf b;    /* every other member's peer address */
    struct at_buf gone; /* those gossip does not see alive or suspect */
};

static void peers_each(void *data, const struct meta_node *n)
{
    struct peers_list *pl = data;

    if (n->name == NULL || strcmp(n->name, pl->self) == 0 ||
        n->peer_address == NULL || n->peer_address[0] == '\0')
        return;
    at_buf_printf(&pl->b, "%s%s", pl->b.len > 0 ? "," : "", n->peer_address);
    switch (node_gossip_liveness(pl->g, n->name, NULL)) {
    case META_LIVE_ALIVE:
    case META_LIVE_SUSPECT:
        break;
    default:
        at_buf_printf(&pl->gone, "%s%s", pl->gone.len > 0 ? "," : "",
                      n->peer_address);
    }
}

/* When gossip knows no other live member (a restart without --join, or
 * everyone else restarted), join again through raft's node table; and
 * reach one raft member gossip does not see alive (islands merge). */
static void gossip_rejoin(struct node_server *s)
{
    struct peers_list pl = { .self = s->name, .g = s->gossip };

    if (s->gossip == NULL || s->meta == NULL)
        return;
    at_buf_init(&pl.b, 64 * 1024);
    at_buf_init(&pl.gone, 64 * 1024);
    meta_members(s->meta, peers_each, &pl);
    if (pl.b.len > 0)
        node_gossip_rejoin(s->gossip, pl.b.data);
    if (pl.gone.len > 0)
        node_gossip_reach(s->gossip, pl.gone.data);
    at_buf_release(&pl.b);
    at_buf_release(&pl.gone);
}

/* gossip's 10 s refresh of what we say about ourselves */
static void gossip_refresh(void *data, struct gossip_meta *m)
{
    struct node_server *s = data;
    bool in = s->meta != NULL && !node_join_pending(&s->join) &&
              !meta_removed(s->meta);

    gossip_rejoin(s);
    node_peer_tell_strays(&s->peer_api);
    /* removed while up, and it saw it in its log: with auto_rejoin, stop
     * so that the next start joins again */
    if (s->meta != NULL && meta_removed(s->meta) && s->cfg->auto_rejoin &&
        s->cfg->join[0] != '\0')
        node_peer_stop_removed(&s->peer_api); /* once */
    m->free_bytes = free_bytes(s->cfg->data_dir);
    m->load = 0; /* NEEDSWORK: requests in flight once the API counts them */
    m->raft_id = 0;
    if (in) {
        struct meta_status st;
        meta_status_get(s->meta, &st);
        m->flags |= GOSSIP_META_IN_CLUSTER;
        m->raft_id = st.id;
    } else {
        m->flags &= ~GOSSIP_META_IN_CLUSTER;
    }
}

/* Start gossip on the peer listener's port (UDP) when it is on and a
 * cluster secret of at least 16 bytes is set; else say once why not. */
static int start_gossip(struct node_server *s,
                        const char *peer_host,
                        bool has_state,
                        char *errmsg)
{
    const struct node_config *cfg = s->cfg;
    struct node_gossip_config gc;
    int rv;

    if (!cfg->gossip) {
        LOG_INFO("gossip off (gossip: false): membership from raft only");
        return 0;
    }
    if (s->peer_http == NULL)
        return 0; /* said already: single node */
    if (strlen(cfg->cluster_secret) < GOSSIP_SEAL_SECRET_MIN) {
        LOG_INFO("gossip off: the cluster secret is shorter than %d bytes",
                 GOSSIP_SEAL_SECRET_MIN);
        return 0;
    }
    memset(&gc, 0, sizeof(gc));
    gc.name = s->name;
    gc.bind_host = peer_host;
    gc.port = node_http_port(s->peer_http);
    gc.advertise = s->peer_address;
    gc.secret = cfg->cluster_secret;
    gc.keyring_file = cfg->gossip_keyring_file;
    gc.join = cfg->join;
    snprintf(gc.meta.region, sizeof(gc.meta.region), "%s", cfg->region);
    snprintf(gc.meta.zone, sizeof(gc.meta.zone), "%s", cfg->zone);
    snprintf(gc.meta.role, sizeof(gc.meta.role), "%s", cfg->role);
    snprintf(gc.meta.api_addr, sizeof(gc.meta.api_addr), "%s", s->api_address);
    snprintf(gc.meta.peer_addr, sizeof(gc.meta.peer_addr), "%s",
             s->peer_address);
    snprintf(gc.meta.version, sizeof(gc.meta.version), "%s", ATOLL_VERSION);
    gc.meta.free_bytes = free_bytes(cfg->data_dir);
    gc.meta.flags = has_state ? GOSSIP_META_IN_CLUSTER : 0;
    gc.probe_interval_ms = (unsigned)cfg->gossip_probe_interval_ms;
    gc.probe_timeout_ms = (unsigned)cfg->gossip_probe_timeout_ms;
    gc.gossip_interval_ms = (unsigned)cfg->gossip_interval_ms;
    gc.suspicion_mult = (unsigned)cfg->gossip_suspicion_mult;
    gc.retransmit_mult = (unsigned)cfg->gossip_retransmit_mult;
    gc.push_pull_interval_ms = (unsigned)cfg->gossip_push_pull_interval_ms;
    gc.peer = s->peer;
    gc.refresh = gossip_refresh;
    gc.data = s;
    rv = node_gossip_start(&s->gossip, s->loop, &gc, errmsg);
    if (rv != 0)
        return rv;
    s->peer_api.gossip = s->gossip;
    return 0;
}

/* The host:port other nodes reach a listener on: --advertise if set,
 * else the listen host, else (a wildcard listen address) the hostname. */
static char *advertised(const struct node_config *cfg,
                        const char *host,
                        int port)
{
    char name[256];

    if (cfg->advertise != NULL && cfg->advertise[0] != '\0') {
        host = cfg->advertise;
    } else if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 ||
               strcmp(host, "::") == 0) {
        if (gethostname(name, sizeof(name)) != 0)
            snprintf(name, sizeof(name), "localhost");
        name[sizeof(name) - 1] = '\0';
        host = name;
    }
    if (strchr(host, ':') != NULL)
        return at_asprintf("[%s]:%d", host, port);
    return at_asprintf("%s:%d", host, port);
}

/* Remove the files of a raft dir (libraft keeps them flat; the dir itself
 * may be a mount point, so it stays), the removed marker last: a crash
 * half-way leaves it, and the next start wipes again. */
static int wipe_raft_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int rv = 0;

    if (d == NULL)
        return -errno;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            strcmp(e->d_name, REMOVED_MARKER) == 0)
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) != 0 && errno != ENOENT) {
            rv = -errno;
            break;
        }
    }
    closedir(d);
    if (rv == 0) {
        char *marker = at_asprintf("%s/%s", dir, REMOVED_MARKER);
        if (unlink(marker) != 0 && errno != ENOENT)
            rv = -errno;
        free(marker);
    }
    return rv;
}

/* The node's name, its lock on the data dir and its raft dir. */
static int open_dirs(struct node_server *s, char *errmsg)
{
    const struct node_config *cfg = s->cfg;
    char hostname[256];
    char *lock_path;
    int rv;

    if (cfg->name != NULL && cfg->name[0] != '\0') {
        s->name = at_strdup(cfg->name);
    } else {
        if (gethostname(hostname, sizeof(hostname)) != 0)
            snprintf(hostname, sizeof(hostname), "atoll");
        hostname[sizeof(hostname) - 1] = '\0';
        s->name = at_strdup(hostname);
    }
    rv = mkdir_p(cfg->data_dir);
    if (rv != 0) {
        at_errmsg_printf(errmsg, "create data dir '%s': %s", cfg->data_dir,
                         strerror(-rv));
        return AT_EIO;
    }
    /* One process per data dir. */
    lock_path = at_asprintf("%s/LOCK", cfg->data_dir);
    s->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        at_errmsg_printf(errmsg, "lock '%s': %s (is another atoll running?)",
                         lock_path, strerror(errno));
        free(lock_path);
        return AT_EBUSY;
    }
    free(lock_path);
    s->raft_dir = cfg->raft_dir != NULL && cfg->raft_dir[0] != '\0'
                      ? at_strdup(cfg->raft_dir)
                      : at_asprintf("%s/raft", cfg->data_dir);
    if (file_in(s->raft_dir, REMOVED_MARKER) && cfg->auto_rejoin &&
        cfg->join[0] != '\0') {
        rv = wipe_raft_dir(s->raft_dir);
        if (rv != 0) {
            at_errmsg_printf(errmsg, "auto_rejoin: wipe raft dir '%s': %s",
                             s->raft_dir, strerror(-rv));
            return AT_EIO;
        }
        LOG_WARN(
            "this node was removed from its cluster while away: "
            "auto_rejoin wiped its raft dir '%s'; it joins again "
            "through --join as a new member (its blobs stay)",
            s->raft_dir);
    }
    if (file_in(s->raft_dir, REMOVED_MARKER)) {
        at_errmsg_printf(errmsg,
                         "this node was removed from its cluster (marker "
                         "'%s/" REMOVED_MARKER
                         "'): to bring it back, wipe "
                         "its data dir and start it with --join",
                         s->raft_dir);
        return AT_EINVAL;
    }
    rv = mkdir_p(s->raft_dir);
    if (rv != 0) {
        at_errmsg_printf(errmsg, "create raft dir '%s': %s", s->raft_dir,
                         strerror(-rv));
        return AT_EIO;
    }
    return 0;
}

/* The handlers' context and the peer listener's, before anything listens
 * (meta stays NULL, so both answer 503, until meta_open returned). */
static void wire_contexts(struct node_server *s)
{
    s->api.loop = s->loop;
    s->api.cfg = s->cfg;
    s->api.store = &s->store;
    s->api.meta = NULL;
    s->api.store_id = s->name;
    s->api.peer = s->peer;
    s->api.peer_api = &s->peer_api;
    s->api.http_durations = &s->http_durations;
    if (s->api.loop_lag == NULL)
        s->api.loop_lag = node_loop_lag_start(s->loop);
    s->api_reply.api = &s->api;
    s->peer_api.loop = s->loop;
    s->peer_api.peer = s->peer;
    s->peer_api.store = &s->store;
    s->peer_api.secret = s->cfg->cluster_secret;
    s->peer_api.node_api = &s->api;
    s->peer_api.relay = node_oci_handle;
    s->peer_api.reply.api = &s->api;
    s->peer_api.reply.relayed = true;
    s->peer_api.raft_dir = s->raft_dir;
}

/* The verifier of credentials, with the htpasswd file read (a bad one
 * stops the start, naming the line). */
static int start_auth(struct node_server *s, char *errmsg)
{
    const struct node_config *cfg = s->cfg;
    struct node_auth_config acfg;

    memset(&acfg, 0, sizeof(acfg));
    acfg.bcrypt_cost = (unsigned)AT_MIN(cfg->bcrypt_cost, 32);
    acfg.cache_ttl_ms = cfg->auth_cache_ttl_ms;
    acfg.htpasswd = cfg->htpasswd;
    acfg.source = node_auth_source_meta(&s->api);
    acfg.reload_on_sighup = true;
    return node_auth_new(&s->api.auth, s->loop, &acfg, errmsg);
}

/* The token service (keys come from the FSM once it is open). */
static int start_token(struct node_server *s, char *errmsg)
{
    struct node_token_config tcfg = {
        .issuer = s->cfg->token_issuer,
        .service = s->cfg->token_service,
        .realm = s->cfg->token_realm,
        .ttl_ms = s->cfg->token_ttl_ms,
        /* tokens grant what the gate would let the caller do */
        .grant = { node_gate_token_grant, &s->api },
    };
    return node_token_new(&s->api.token, &s->api, &tcfg, errmsg);
}

/* Bind the API listener and, with a cluster secret, the peer listener;
 * then the addresses other nodes reach them on are known. */
static int start_listeners(struct node_server *s,
                           const char *host,
                           int port,
                           const char *peer_host,
                           int peer_port,
                           char *errmsg)
{
    const struct node_config *cfg = s->cfg;
    struct node_http_config hcfg;
    int rv;

    memset(&hcfg, 0, sizeof(hcfg));
    hcfg.host = host;
    hcfg.port = port;
    hcfg.header_timeout_ms = cfg->header_timeout_ms;
    hcfg.idle_timeout_ms = cfg->idle_timeout_ms;
    hcfg.body_timeout_ms = cfg->body_timeout_ms;
    hcfg.write_timeout_ms = cfg->write_timeout_ms;
    hcfg.shutdown_grace_ms = cfg->shutdown_grace_ms;
    if (cfg->tls_cert[0] != '\0') {
        hcfg.tls_cert = cfg->tls_cert;
        hcfg.tls_key = cfg->tls_key;
    }
    rv = node_http_start(&s->http, s->loop, &hcfg, node_front_handle,
                         &s->api_reply, errmsg);
    if (rv != 0) {
        at_errmsg_wrapf(errmsg, "listen on '%s'", cfg->listen);
        return rv;
    }
    /* request durations for /metrics, then the access log (when on) */
    node_http_on_done(s->http, node_metrics_on_done, &s->api);
    /* Without a secret every peer request would be refused: a single node
     * then has no peer listener at all. */
    if (cfg->cluster_secret[0] != '\0') {
        hcfg.host = peer_host;
        hcfg.port = peer_port;
        hcfg.tls_cert = hcfg.tls_key = NULL;
        if (cfg->peer_tls_ca[0] != '\0') {
            hcfg.tls_cert = cfg->peer_tls_cert;
            hcfg.tls_key = cfg->peer_tls_key;
            hcfg.tls_ca = cfg->peer_tls_ca;
            hcfg.tls_refused = node_peer_tls_refused;
            hcfg.tls_refused_data = &s->peer_api;
        }
        rv = node_http_start(&s->peer_http, s->loop, &hcfg,
                             node_peer_api_handle, &s->peer_api, errmsg);
        if (rv != 0) {
            at_errmsg_wrapf(errmsg, "listen on peer address '%s'",
                            cfg->peer_listen);
            return rv;
        }
        peer_port = node_http_port(s->peer_http);
        if (cfg->peer_tls_ca[0] != '\0')
            s->peer_api.tls_server = s->peer_http;
    } else {
        LOG_INFO("no cluster_secret: no peer listener, single node only");
    }
    s->api_address = advertised(cfg, host, node_http_port(s->http));
    /* this node's own API, for its replication jobs: loopback unless the
     * listener is bound to one address */
    bool any = host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 ||
               strcmp(host, "::") == 0;
    s->self_url = at_asprintf(
        "%s://%s%s%s:%d", cfg->tls_cert[0] != '\0' ? "https" : "http",
        !any && strchr(host, ':') != NULL ? "[" : "", any ? "127.0.0.1" : host,
        !any && strchr(host, ':') != NULL ? "]" : "", node_http_port(s->http));
    s->peer_address = advertised(cfg, peer_host, peer_port);
    return 0;
}

/* Raft's outgoing connections over peer mutual TLS. */
static int peer_tls_dial(void *data,
                         const struct sockaddr *sa,
                         const struct sockaddr *bind,
                         const char *host,
                         uv_stream_t **out)
{
    struct node_server *s = data;

    return node_http_dial_tls(s->peer_http, sa, bind, host, out);
}

/* Open the raft log and the FSM (join: empty, to be added by a member;
 * else bootstrap a one-voter cluster, or reopen what is there), then start
 * what needs them. */
static int open_meta(struct node_server *s, bool join, char *errmsg)
{
    const struct node_config *cfg = s->cfg;
    struct meta_config mcfg;
    int rv;

    memset(&mcfg, 0, sizeof(mcfg));
    mcfg.dir = s->raft_dir;
    mcfg.name = s->name;
    mcfg.id = 0; /* meta: the node-id file, 1 for a legacy dir, or new */
    mcfg.address = s->name;
    mcfg.election_timeout_ms = (unsigned)cfg->election_timeout_ms;
    mcfg.heartbeat_timeout_ms = (unsigned)cfg->heartbeat_timeout_ms;
    mcfg.raft_reserve_bytes = cfg->raft_reserve_bytes;
    mcfg.leader_wait_ms =
        cfg->leader_wait_ms > 600000 ? 600000 : (unsigned)cfg->leader_wait_ms;
    mcfg.snapshot_threshold = (unsigned)cfg->snapshot_threshold;
    mcfg.snapshot_trailing = (unsigned)cfg->snapshot_trailing;
    mcfg.no_snapshot_fetch = !cfg->snapshot_fetch;
    mcfg.join = join;
    mcfg.peer_address = s->peer_address;
    mcfg.api_address = s->api_address;
    mcfg.region = cfg->region;
    mcfg.cluster_secret = cfg->cluster_secret;
    mcfg.target_voters = (unsigned)cfg->target_voters;
    mcfg.force_new_cluster = cfg->force_new_cluster;
    mcfg.standby = strcmp(cfg->role, "voter") != 0; /* standby, edge */
    mcfg.autopilot = cfg->autopilot;
    mcfg.autopilot_dead_after_ms = (unsigned)cfg->autopilot_dead_after_ms;
    mcfg.autopilot_stabilization_ms = (unsigned)cfg->autopilot_stabilization_ms;
    mcfg.autopilot_max_lag = (unsigned)cfg->autopilot_max_lag;
    mcfg.autopilot_reap_after_ms = cfg->autopilot_reap_after_ms > UINT_MAX
                                       ? UINT_MAX
                                       : (unsigned)cfg->autopilot_reap_after_ms;
    mcfg.hooks = &node_peer_hooks;
    mcfg.hooks_data = &s->peer_api;
    if (cfg->peer_tls_ca[0] != '\0' && s->peer_http != NULL) {
        mcfg.dial = peer_tls_dial;
        mcfg.dial_data = s;
    }
    rv = meta_open(&s->meta, s->loop, &mcfg, errmsg);
    if (rv != 0) {
        at_errmsg_wrapf(errmsg, "open metadata in '%s'", s->raft_dir);
        return rv;
    }
    s->api.meta = s->meta;
    s->peer_api.meta = s->meta;
    gossip_rejoin(s); /* a restart without --join: through raft's peers */
    s->api.gc = node_gc_new(s->loop, &s->store, cfg);
    node_gc_start(s->api.gc, s->meta);
    /* Upload ids carry this node's raft id (known once meta is open, before
     * the API answers anything but 503) so that any node can relay a
     * request for them to their owner (node/cluster/proxy.c). */
    {
        struct meta_status st;
        char tag[17];
        meta_status_get(s->meta, &st);
        snprintf(tag, sizeof(tag), "%016" PRIx64, st.id);
        rv = storage_node_tag_set(&s->store, tag);
        AT_ASSERT(rv == 0); /* 16 hex digits are a valid tag */
    }
    s->join.meta = s->meta;
    if (s->peer_http != NULL)
        LOG_INFO(
            "node '%s' serving on %s (peer %s), data in '%s', raft in "
            "'%s'",
            s->name, s->api_address, s->peer_address, cfg->data_dir,
            s->raft_dir);
    else
        LOG_INFO(
            "node '%s' serving on %s (single node), data in '%s', raft "
            "in '%s'",
            s->name, s->api_address, cfg->data_dir, s->raft_dir);
    s->api.repl_scan = node_repl_scan_start(&s->api);
    node_placement_start(&s->api);
    node_replication_start(&s->api, s->self_url);
    rv = node_events_start(&s->api, s->name, errmsg);
    if (rv == 0) /* a failed start exits: nothing of it to free then */
        node_upstream_start(&s->api);
    return rv;
}

/* bootstrap-expect decided (node/join.c) */
static int join_open(void *data, bool join, char *errmsg)
{
    struct node_server *s = data;

    if (s->stopping) {
        at_errmsg_printf(errmsg, "stopping");
        return AT_ESHUTDOWN;
    }
    return open_meta(s, join, errmsg);
}

static void join_fatal(void *data)
{
    AT_UNUSED(data);
    at_log_flush();
    /* as a start that fails: nothing to save yet, and nothing to tear
     * down (no atexit handlers: requests in flight are not leaks) */
    _exit(1);
}

/* The join machinery's borrowed context (node/join.h). */
static void join_setup(struct node_server *s)
{
    struct node_join *j = &s->join;

    j->loop = s->loop;
    j->cfg = s->cfg;
    j->peer = s->peer;
    j->name = s->name;
    j->peer_address = s->peer_address;
    j->api_address = s->api_address;
    j->raft_dir = s->raft_dir;
    j->gossip = s->gossip;
    j->open = join_open;
    j->fatal = join_fatal;
    j->data = s;
    node_join_init(j);
}

/* see server.h */
int node_server_start(struct node_server **out,
                      uv_loop_t *loop,
                      const struct node_config *cfg,
                      char *errmsg)
{
    struct node_server *s = at_calloc(1, sizeof(*s));
    struct storage_config scfg;
    char *host = NULL;
    char *peer_host = NULL;
    int port = 0;
    int peer_port = 0;
    bool join_needed = false;
    int rv;

    s->loop = loop;
    s->cfg = cfg;
    s->lock_fd = -1;
    if (split_listen(cfg->listen, &host, &port) != 0) {
        at_errmsg_printf(errmsg, "invalid listen address '%s'", cfg->listen);
        rv = AT_EINVAL;
        goto err;
    }
    if (split_listen(cfg->peer_listen, &peer_host, &peer_port) != 0) {
        at_errmsg_printf(errmsg, "invalid peer_listen address '%s'",
                         cfg->peer_listen);
        rv = AT_EINVAL;
        goto err;
    }
    rv = open_dirs(s, errmsg);
    if (rv != 0)
        goto err;

    memset(&scfg, 0, sizeof(scfg));
    scfg.dir = cfg->data_dir;
    scfg.node_tag = NULL;
    scfg.reserve_bytes = blob_reserve(s);
    scfg.upload_ttl_ms = cfg->upload_ttl_ms;
    rv = storage_open(&s->store, loop, &scfg);
    if (rv != 0) {
        at_errmsg_printf(errmsg, "open storage: %s", storage_errmsg(&s->store));
        goto err;
    }
    s->store_open = true;

    rv = node_peer_new(&s->peer, loop, cfg->cluster_secret, peer_host, errmsg);
    if (rv != 0)
        goto err_after_storage;
    if (cfg->peer_tls_ca[0] != '\0')
        node_peer_set_tls(s->peer, cfg->peer_tls_ca, cfg->peer_tls_cert,
                          cfg->peer_tls_key);
    wire_contexts(s);
    if (cfg->cluster_secret[0] == '\0' && cfg->peer_tls_ca[0] != '\0') {
        at_errmsg_printf(errmsg,
                         "peer_tls_ca needs cluster_secret (or "
                         "cluster_secret_file): the secret still "
                         "authenticates every peer request");
        rv = AT_EINVAL;
        goto err_after_storage;
    }
    if (cfg->cluster_secret[0] == '\0' && cfg->join[0] != '\0') {
        at_errmsg_printf(errmsg,
                         "join needs cluster_secret (or "
                         "cluster_secret_file)");
        rv = AT_EINVAL;
        goto err_after_storage;
    }
    rv = start_auth(s, errmsg);
    if (rv == 0)
        rv = start_token(s, errmsg);
    if (rv != 0)
        goto err_after_storage;
    rv = start_listeners(s, host, port, peer_host, peer_port, errmsg);
    if (rv != 0)
        goto err_after_storage;

    join_needed = cfg->join[0] != '\0' && node_join_needed(s->raft_dir);
    /* without a join to make, meta_open bootstraps or reopens raft */
    rv = start_gossip(s, peer_host, !join_needed, errmsg);
    if (rv != 0)
        goto err_after_storage;
    if (join_needed && cfg->bootstrap_expect > 0 && s->gossip == NULL) {
        at_errmsg_printf(errmsg,
                         "bootstrap_expect needs gossip (gossip: "
                         "true and a cluster secret of 16 bytes or "
                         "more)");
        rv = AT_EINVAL;
        goto err_after_storage;
    }
    if (join_needed && node_join_marker(s->raft_dir, true) != 0) {
        at_errmsg_printf(errmsg, "create the join-pending marker in '%s': %s",
                         s->raft_dir, strerror(errno));
        rv = AT_EIO;
        goto err_after_storage;
    }
    join_setup(s);
    if (join_needed && cfg->bootstrap_expect > 0) {
        /* the metadata opens once gossip has shown enough nodes */
        LOG_INFO("node '%s' up on %s (peer %s), waiting to bootstrap or join",
                 s->name, s->api_address, s->peer_address);
        node_join_expect(&s->join);
    } else {
        rv = open_meta(s, cfg->join[0] != '\0', errmsg);
        if (rv != 0)
            goto err_after_storage;
        if (join_needed)
            node_join_start(&s->join);
    }
    free(host);
    free(peer_host);
    *out = s;
    return 0;

    /* A failed start exits the process: listeners and the peer client are
     * left to the process exit (stopping them needs the loop to run), and
     * the raft directory is simply left as is. */
err_after_storage:
    storage_close(&s->store);
err:
    free(host);
    free(peer_host);
    server_free(s);
    return rv;
}

static void on_join_closed(void *data)
{
    struct node_server *s = data;
    void (*cb)(void *) = s->stop_cb;
    void *cb_data = s->stop_data;

    node_fetch_table_close(s->api.fetches);
    node_pullthrough_close(&s->api);
    node_replicate_close(s->api.repl);
    node_repl_scan_close(s->api.repl_scan);
    s->api.repl_scan = NULL;
    node_verify_close(s->api.verify);
    s->api.verify = NULL;
    storage_close(&s->store);
    LOG_INFO("node '%s' stopped", s->name);
    server_free(s);
    if (cb != NULL)
        cb(cb_data);
}

static void on_peer_closed(void *data)
{
    struct node_server *s = data;

    node_join_close(&s->join, on_join_closed, s);
}

static void on_peer_http_stopped(void *data)
{
    struct node_server *s = data;

    node_peer_close(s->peer, on_peer_closed, s);
}

/* Gossip's leave went out (or timed out): the peer listener and client
 * may close once raft is closed too. */
static void on_gossip_stopped(void *data)
{
    struct node_server *s = data;

    s->gossip = NULL;
    s->peer_api.gossip = NULL;
    if (s->meta_closed && s->peer_http != NULL)
        node_http_stop(s->peer_http, on_peer_http_stopped, s);
    else if (s->meta_closed)
        on_peer_http_stopped(s);
}

static void on_meta_closed(void *data)
{
    struct node_server *s = data;

    s->peer_api.meta = NULL;
    s->peer_api.stopping = true;
    s->meta_closed = true;
    if (s->gossip != NULL)
        return; /* on_gossip_stopped goes on */
    if (s->peer_http != NULL)
        node_http_stop(s->peer_http, on_peer_http_stopped, s);
    else
        on_peer_http_stopped(s);
}

static void on_http_stopped(void *data)
{
    struct node_server *s = data;

    /* meta_close hands leadership over first: raft keeps its connections,
     * forwarded calls still use the peer client. */
    node_gc_stop(s->api.gc); /* frees itself once idle */
    s->api.gc = NULL;
    node_placement_stop(&s->api);
    node_events_stop(&s->api);
    node_replication_stop(&s->api);
    node_upstream_stop(&s->api);
    node_changes_stop(&s->api);
    node_access_close(&s->api);
    node_auth_close(s->api.auth); /* frees itself once the pool is done */
    s->api.auth = NULL;
    node_token_close(s->api.token); /* freed once its requests end */
    s->api.token = NULL;
    s->api.meta = NULL;
    if (s->meta != NULL)
        meta_close(s->meta, on_meta_closed, s);
    else
        on_meta_closed(s); /* stopped while waiting to bootstrap */
}

/* see server.h */
void node_server_reload(struct node_server *s)
{
    char errmsg[AT_ERRMSG_SIZE];

    if (s->stopping)
        return;
    if (s->cfg->tls_cert[0] == '\0' && s->cfg->peer_tls_ca[0] == '\0') {
        LOG_INFO("reload: nothing to re-read (no tls_cert, no peer_tls_ca)");
        return;
    }
    /* Each logs its outcome. */
    if (s->cfg->tls_cert[0] != '\0')
        node_http_reload_tls(s->http, errmsg);
    if (s->cfg->peer_tls_ca[0] != '\0' && s->peer_http != NULL)
        node_http_reload_tls(s->peer_http, errmsg);
}

/* see server.h */
void node_server_stop(struct node_server *s, void (*cb)(void *data), void *data)
{
    s->stop_cb = cb;
    s->stop_data = data;
    s->stopping = true;
    s->api.stopping = true;
    node_loop_lag_close(s->api.loop_lag);
    s->api.loop_lag = NULL;
    node_join_stop(&s->join); /* no more tries; closed at the end */
    LOG_INFO("node '%s' stopping: finishing in-flight requests", s->name);
    /* others show "left", not dead; a removed node just goes quiet */
    if (s->gossip != NULL && s->cfg->leave_on_terminate)
        node_gossip_depart(s->gossip);
    if (s->gossip != NULL)
        node_gossip_stop(s->gossip, s->meta == NULL || !meta_removed(s->meta),
                         GOSSIP_LEAVE_MS, on_gossip_stopped, s);
    node_http_stop(s->http, on_http_stopped, s);
}
