/* Opening and closing a meta: the raft directory with its node-id and
 * peers cache files, libraft's uv io on atoll's transport, the tracer, the
 * loop handles, and the orderly close.
 *
 * Happy path: meta_open creates the directory, reads (or derives and
 * writes) the node id, initializes libraft's uv io on atoll's transport,
 * bootstraps a one-voter configuration on first start (RAFT_CANTBOOTSTRAP
 * later is expected) and starts raft; the single voter elects itself.
 * meta_close answers what is pending with AT_ESHUTDOWN, hands leadership
 * over when it leads other voters (bounded by 2 s), closes raft, then its
 * handles, frees the meta and calls back.
 *
 * Failure modes: a bad config (AT_EINVAL), the directory or its files
 * (AT_EIO, AT_ECORRUPT), libraft refusing to start (AT_EIO, AT_ECORRUPT):
 * nothing is left open. */
#include "common/compat.h"

#include <sys/stat.h>

#define AT_LOG_COMP "raft"

#include "raft/autopilot.h"
#include "raft/heap.h"
#include "raft/internal.h"
#include "raft/member.h"
#include "raft/nodes.h"
#include "raft/propose.h"
#include "raft/read.h"

#define META_HINTS_MAX 4096 /* peer address hints kept in memory */

static void tracer_emit(struct raft_tracer *t,
                        const char *file,
                        int line,
                        const char *message)
{
    AT_UNUSED(t);
    if (at_log_enabled(AT_LOG_COMP, AT_LOG_LEVEL_DEBUG))
        at_log_write(AT_LOG_COMP, AT_LOG_LEVEL_DEBUG, file, line, "libraft",
                     "%s", message);
}

static int mkdir_p(const char *dir, char *errmsg)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s", dir);
    if (n <= 0 || (size_t)n >= sizeof(path)) {
        at_errmsg_printf(errmsg, "bad raft dir");
        return AT_EINVAL;
    }
    for (char *p = path + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) {
            at_errmsg_printf(errmsg, "mkdir '%s': %s", path, strerror(errno));
            return at_err_from_errno(-errno);
        }
        *p = '/';
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
        at_errmsg_printf(errmsg, "mkdir '%s': %s", path, strerror(errno));
        return at_err_from_errno(-errno);
    }
    return 0;
}

static void peers_cache_clear(struct meta *m)
{
    const char *k;
    void *v;
    for (size_t i = 0; at_map_next(&m->peers_cache, &i, &k, &v);)
        at_free(v);
    at_map_release(&m->peers_cache);
    at_map_init(&m->peers_cache);
}

/* Everything m owns, not m itself. */
static void meta_release(struct meta *m)
{
    meta__xfers_free(m);
    meta__autopilot_free(m->ap);
    meta_fsm_release(&m->fsm);
    peers_cache_clear(m);
    at_map_release(&m->peers_cache);
    at_free(m->name);
    at_free(m->address);
    at_free(m->store_id);
    at_free(m->dir);
    at_free(m->peer_address);
    at_free(m->api_address);
    at_free(m->region);
    if (m->secret != NULL) {
        memset(m->secret, 0, strlen(m->secret));
        at_free(m->secret);
        m->secret = NULL;
    }
}

/* A meta whose raft never started (its io may be closed at once). */
static void meta_free(struct meta *m)
{
    meta_release(m);
    at_free(m);
}

/* F7 (jepsen-style/FINDINGS.md): once raft_close's callback has run,
 * libraft 0.15's uv io may still call its close callback again, at any
 * later loop turn: uvMaybeFireCloseCb() does not wait for the close of a
 * segment writer that had a write in the pool (nor for peer
 * connections), and that close calls it once more. It then reads its own
 * struct and, through the commit guard (which lets raft's callback run
 * once), ours: the io, the guard and the raft live in struct meta. So
 * neither is freed while the process lives: the io is not closed
 * (raft_uv_close only frees that struct) and the meta's husk, everything
 * it owned released, is kept on this list, where leak checkers see it.
 * One per closed meta: once per process in production. */
static struct meta *graveyard;

static void meta_bury(struct meta *m)
{
    meta_release(m);
    m->buried_next = graveyard;
    graveyard = m;
}

static void on_open_failed_closed(struct raft *r)
{
    meta_bury(r->data);
}

/* Read a small file (< max bytes) into a NUL-terminated buffer. */
static int read_small(const char *path, size_t max, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return errno == ENOENT ? AT_ENOTFOUND : AT_EIO;
    char *buf = at_malloc(max + 1);
    size_t n = fread(buf, 1, max + 1, f);
    bool err = ferror(f) != 0;
    fclose(f);
    if (err || n > max) {
        at_free(buf);
        return err ? AT_EIO : AT_ETOOBIG;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* Write a small file atomically: temp file, fsync, rename. */
static int write_small(const char *dir,
                       const char *name,
                       const char *text,
                       char *errmsg)
{
    char *tmp = at_asprintf("%s/%s.tmp", dir, name);
    char *path = at_asprintf("%s/%s", dir, name);
    int rv = 0;
    FILE *f = fopen(tmp, "wb");
    if (f == NULL) {
        rv = at_err_from_errno(-errno);
        at_errmsg_printf(errmsg, "create '%s': %s", tmp, strerror(errno));
        goto out;
    }
    size_t n = strlen(text);
    bool ok =
        fwrite(text, 1, n, f) == n && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0)
        ok = false;
    if (!ok || rename(tmp, path) != 0) {
        rv = AT_EIO;
        at_errmsg_printf(errmsg, "write '%s': %s", path, strerror(errno));
        unlink(tmp);
    }
out:
    at_free(tmp);
    at_free(path);
    return rv;
}

static bool file_exists(const char *dir, const char *name)
{
    char *path = at_asprintf("%s/%s", dir, name);
    struct stat st;
    bool ok = stat(path, &st) == 0;
    at_free(path);
    return ok;
}

/* The node id: the node-id file, else 1 for a legacy dir holding raft
 * data, else derived from the name; persisted either way. */
static int node_id_load(const char *dir,
                        const char *name,
                        uint64_t *out,
                        char *errmsg)
{
    char *path = at_asprintf("%s/node-id", dir);
    char *text = NULL;
    size_t len = 0;
    int rv = read_small(path, 64, &text, &len);
    at_free(path);
    if (rv == 0) {
        while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
            len--;
        uint64_t id = 0;
        rv = at_parse_u64(text, len, &id);
        at_free(text);
        if (rv != 0 || id == 0) {
            at_errmsg_printf(errmsg, "'%s/node-id': not a node id", dir);
            return AT_ECORRUPT;
        }
        *out = id;
        return 0;
    }
    if (rv != AT_ENOTFOUND) {
        at_errmsg_printf(errmsg, "read '%s/node-id': %s", dir, at_strerror(rv));
        return rv;
    }
    uint64_t id = file_exists(dir, "metadata1") || file_exists(dir, "metadata2")
                      ? 1
                      : meta_node_id_from_name(name);
    char num[32];
    snprintf(num, sizeof(num), "%" PRIu64 "\n", id);
    rv = write_small(dir, "node-id", num, errmsg);
    if (rv != 0)
        return rv;
    *out = id;
    return 0;
}

/* Load the peers cache file: "<name> <host:port>" per line. */
static void peers_load(struct meta *m)
{
    char *path = at_asprintf("%s/peers", m->dir);
    char *text = NULL;
    size_t len = 0;
    int rv = read_small(path, 1u << 20, &text, &len);
    at_free(path);
    if (rv != 0)
        return;
    char *line = text;
    while (line < text + len) {
        char *nl = memchr(line, '\n', (size_t)(text + len - line));
        if (nl == NULL)
            nl = text + len;
        *nl = '\0';
        char *sp = strchr(line, ' ');
        if (sp != NULL && sp != line && strlen(sp + 1) <= META_ADDRESS_MAX &&
            (size_t)(sp - line) <= META_ADDRESS_MAX && sp[1] != '\0') {
            *sp = '\0';
            void *old = at_map_put(&m->peers_cache, line, strlen(line),
                                   at_strdup(sp + 1));
            at_free(old);
        }
        line = nl + 1;
    }
    at_free(text);
}

/* Rewrite the peers file when the node table changed. */
static void peers_save(struct meta *m)
{
    if (m->fsm.nodes_version == m->peers_written)
        return;
    m->peers_written = m->fsm.nodes_version;
    struct at_buf b;
    at_buf_init(&b, 16u << 20);
    const char *k;
    void *v;
    for (size_t i = 0; at_map_next(&m->fsm.nodes, &i, &k, &v);) {
        const struct meta_noderec *n = v;
        if (n->peer_address[0] == '\0')
            continue;
        at_buf_printf(&b, "%s %s\n", n->name, n->peer_address);
    }
    char errmsg[AT_ERRMSG_SIZE] = "";
    if (write_small(m->dir, "peers", b.len ? (const char *)b.data : "",
                    errmsg) != 0)
        LOG_WARN("peers cache: %s", errmsg);
    at_buf_release(&b);
}

/* see transport.h (resolve) */
static int resolve_name(void *data, const char *name, char *out, size_t size)
{
    struct meta *m = data;
    const char *addr = NULL;
    if (strcmp(name, m->name) == 0 && m->peer_address[0] != '\0')
        addr = m->peer_address;
    if (addr == NULL) {
        const struct meta_noderec *n = meta__node_by_name(&m->fsm, name);
        if (n != NULL && n->peer_address[0] != '\0')
            addr = n->peer_address;
    }
    if (addr == NULL)
        addr = at_map_gets(&m->peers_cache, name);
    if (addr == NULL || strlen(addr) >= size)
        return AT_ENOTFOUND;
    snprintf(out, size, "%s", addr);
    return 0;
}

static void on_check(uv_check_t *c)
{
    struct meta *m = c->data;
    if (m->closing)
        return;
    if (!at_list_empty(&m->waiters))
        meta__waiters_run(m, false);
    if (m->fsm.nodes_version != m->peers_written)
        peers_save(m);
}

/* The name of the node cfg describes, or NULL with errmsg filled when cfg
 * cannot be opened. */
static const char *config_check(const struct meta_config *cfg, char *errmsg)
{
    if (cfg->dir == NULL) {
        at_errmsg_printf(errmsg, "meta config needs dir");
        return NULL;
    }
    const char *name = cfg->name != NULL ? cfg->name : "atoll";
    if (name[0] == '\0' || strlen(name) > META_ADDRESS_MAX ||
        strchr(name, ' ') != NULL || strchr(name, '\n') != NULL) {
        at_errmsg_printf(errmsg, "bad node name '%s'", name);
        return NULL;
    }
    const char *opt[] = { cfg->peer_address, cfg->api_address, cfg->region };
    for (size_t i = 0; i < AT_ARRAY_SIZE(opt); i++) {
        if (opt[i] != NULL && strlen(opt[i]) > META_ADDRESS_MAX) {
            at_errmsg_printf(errmsg, "address '%.40s...' too long", opt[i]);
            return NULL;
        }
    }
    return name;
}

/* Our transport: resolves names, dials from our own peer IP. */
static void transport_setup(struct meta *m, uv_loop_t *loop)
{
    meta__transport_init(&m->transport, loop);
    m->transport.secret = m->secret;
    m->transport.resolve = resolve_name;
    snprintf(m->transport.peer_address, sizeof(m->transport.peer_address), "%s",
             m->peer_address);
    m->transport.resolve_data = m;
    {
        char host[META_ADDRESS_MAX + 1];
        unsigned port;
        if (meta__split_hostport(m->peer_address, host, sizeof(host), &port) ==
                0 &&
            strlen(host) < sizeof(m->transport.bind_ip) &&
            strcmp(host, "0.0.0.0") != 0 && strcmp(host, "::") != 0) {
            struct sockaddr_in6 probe6;
            struct sockaddr_in probe4;
            if (uv_ip4_addr(host, 0, &probe4) == 0 ||
                uv_ip6_addr(host, 0, &probe6) == 0)
                snprintf(m->transport.bind_ip, sizeof(m->transport.bind_ip),
                         "%s", host);
        }
    }
}

/* A meta for node id named name, with its FSM, glue, transport, peers
 * cache and tracer; raft is not initialized yet. */
static struct meta *meta_new(uv_loop_t *loop,
                             const struct meta_config *cfg,
                             const char *name,
                             uint64_t id)
{
    struct meta *m = at_calloc(1, sizeof(*m));
    m->loop = loop;
    m->id = id;
    m->name = at_strdup(name);
    m->address = at_strdup(name); /* a node's raft address is its name */
    m->store_id = at_strdup(cfg->store_id != NULL ? cfg->store_id : m->name);
    m->dir = at_strdup(cfg->dir);
    m->peer_address = at_strdup(cfg->peer_address ? cfg->peer_address : "");
    m->api_address = at_strdup(cfg->api_address ? cfg->api_address : "");
    m->region = at_strdup(cfg->region ? cfg->region : "");
    m->secret = at_strdup(cfg->cluster_secret ? cfg->cluster_secret : "");
    m->standby = cfg->standby;
    m->target_voters = cfg->target_voters ? cfg->target_voters : 3;
    m->hooks = cfg->hooks;
    m->hooks_data = cfg->hooks_data;
    m->leader_wait_ms = cfg->leader_wait_ms;
    m->raft_reserve = cfg->raft_reserve_bytes;
    m->ap = meta__autopilot_new(cfg);
    at_map_init(&m->peers_cache);
    struct at_list *lists[] = { &m->parked,  &m->rix_parked, &m->waiters,
                                &m->fwds,    &m->rixs,       &m->rix_wait,
                                &m->changes, &m->xfers_done, &m->ready,
                                &m->waiting, &m->inflight,   &m->rounds };
    for (size_t i = 0; i < AT_ARRAY_SIZE(lists); i++)
        at_list_init(lists[i]);
    meta_fsm_init(&m->fsm, META_REQUESTS_MAX);
    char emsg[AT_ERRMSG_SIZE];
    if (meta_fsm_bodies_open(&m->fsm, cfg->dir, emsg) != 0)
        LOG_WARN("%s: keeping manifest bodies in memory", emsg);
    meta__glue_init(&m->glue, &m->fsm);
    m->glue.raft = &m->raft;
    m->glue.snap_dir = m->dir; /* snapshot files (snapfile.h) */
    transport_setup(m, loop);
    m->transport.dial = cfg->dial;
    m->transport.dial_data = cfg->dial_data;
    peers_load(m);
    m->tracer.impl = m;
    m->tracer.enabled = at_log_enabled(AT_LOG_COMP, AT_LOG_LEVEL_DEBUG);
    m->tracer.emit = tracer_emit;
    return m;
}

/* libraft's uv io and struct raft, with atoll's settings. On error m is
 * freed. */
static int raft_setup(struct meta *m,
                      const struct meta_config *cfg,
                      char *errmsg)
{
    meta__heap_install(); /* big frees off the loop (heap.h) */
    int rv = raft_uv_init(&m->io, m->loop, cfg->dir, &m->transport.t);
    if (rv != 0) {
        at_errmsg_printf(errmsg, "raft io '%s': %s", cfg->dir,
                         m->io.errmsg[0] ? m->io.errmsg : raft_strerror(rv));
        meta_free(m);
        return AT_EIO;
    }
    m->io.version = 2; /* 0.15 bug: async_work is there, version says 1 */
    raft_uv_set_auto_recovery(&m->io, false);
    raft_uv_set_tracer(&m->io, &m->tracer);
    raft_uv_set_connect_retry_delay(&m->io, 500);
    meta__guard_init(&m->guard, &m->io); /* Figure 8: see guard.h */
    meta__snapshare_setup(m, cfg);       /* snapshot files (snapshare.c) */
    rv = raft_init(&m->raft, &m->guard.io, &m->glue.iface, m->id, m->address);
    if (rv != 0) {
        at_errmsg_printf(errmsg, "raft init '%s': %s", cfg->dir,
                         raft_errmsg(&m->raft));
        raft_uv_close(&m->io);
        meta_free(m);
        return AT_EIO;
    }
    m->raft.data = m;
    m->raft.tracer = &m->tracer;
    unsigned election =
        cfg->election_timeout_ms ? cfg->election_timeout_ms : 1000;
    unsigned heartbeat =
        cfg->heartbeat_timeout_ms ? cfg->heartbeat_timeout_ms : 100;
    if (heartbeat >= election)
        heartbeat = election / 2 > 0 ? election / 2 : 1;
    raft_set_election_timeout(&m->raft, election);
    raft_set_heartbeat_timeout(&m->raft, heartbeat);
    /* 0.15 defaults are misleading (trailing is 2048, not 128): be explicit */
    raft_set_snapshot_threshold(
        &m->raft, cfg->snapshot_threshold ? cfg->snapshot_threshold : 16384);
    raft_set_snapshot_trailing(
        &m->raft, cfg->snapshot_trailing ? cfg->snapshot_trailing : 4096);
    /* notes §3: big states need long catch-up rounds; pre-vote keeps a
     * partitioned node from disrupting the cluster when it comes back */
    raft_set_pre_vote(&m->raft, true);
    raft_set_max_catch_up_rounds(&m->raft, 100);
    raft_set_max_catch_up_round_duration(&m->raft, 30000);
    return 0;
}

/* raft_bootstrap or raft_recover with this node as the only voter. */
static int self_voter_config(struct meta *m,
                             int (*op)(struct raft *r,
                                       const struct raft_configuration *conf))
{
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    int rv = raft_configuration_add(&conf, m->id, m->address, RAFT_VOTER);
    if (rv == 0)
        rv = op(&m->raft, &conf);
    raft_configuration_close(&conf);
    return rv;
}

/* Bootstrap (first start), recover (when asked), start raft. On error m is
 * freed once raft has closed. */
static int raft_begin(struct meta *m,
                      const struct meta_config *cfg,
                      char *errmsg)
{
    int rv;
    if (!cfg->join) {
        rv = self_voter_config(m, raft_bootstrap);
        if (rv == RAFT_CANTBOOTSTRAP)
            rv = 0; /* not the first start */
        if (rv != 0) {
            at_errmsg_printf(errmsg, "raft bootstrap '%s': %s", cfg->dir,
                             raft_errmsg(&m->raft));
            raft_close(&m->raft, on_open_failed_closed);
            return AT_EIO;
        }
    }
    if (cfg->force_new_cluster) {
        /* Lost quorum: the survivor with the longest log forces a one-voter
         * configuration (libraft appends it to the log); the other nodes
         * are wiped and join again. */
        rv = self_voter_config(m, raft_recover);
        if (rv != 0) {
            at_errmsg_printf(errmsg, "raft recover '%s': %s", cfg->dir,
                             raft_errmsg(&m->raft));
            raft_close(&m->raft, on_open_failed_closed);
            return AT_EIO;
        }
        LOG_WARN(
            "forced a new one-voter configuration (recovery after lost "
            "quorum): join the other nodes again with empty data dirs");
    }
    rv = raft_start(&m->raft);
    if (rv != 0) {
        at_errmsg_printf(errmsg, "raft start '%s': %s", cfg->dir,
                         raft_errmsg(&m->raft));
        raft_close(&m->raft, on_open_failed_closed);
        return rv == RAFT_CORRUPT ? AT_ECORRUPT : AT_EIO;
    }
    meta__glue_prune(&m->glue); /* files a crash left behind */
    return 0;
}

/* see meta.h */
int meta_open(struct meta **out,
              uv_loop_t *loop,
              const struct meta_config *cfg,
              char *errmsg)
{
    const char *name = config_check(cfg, errmsg);
    if (name == NULL)
        return AT_EINVAL;
    int rv = mkdir_p(cfg->dir, errmsg);
    if (rv != 0)
        return rv;
    uint64_t id = 0;
    rv = node_id_load(cfg->dir, name, &id, errmsg);
    if (rv != 0)
        return rv;
    struct meta *m = meta_new(loop, cfg, name, id);
    rv = raft_setup(m, cfg, errmsg);
    if (rv != 0)
        return rv;
    rv = raft_begin(m, cfg, errmsg);
    if (rv != 0)
        return rv;
    m->peers_written = m->fsm.nodes_version;
    uv_idle_init(loop, &m->idle);
    m->idle.data = m;
    uv_timer_init(loop, &m->tick);
    m->tick.data = m;
    uv_timer_start(&m->tick, meta__on_tick, 100, 100);
    uv_check_init(loop, &m->check);
    m->check.data = m;
    uv_check_start(&m->check, on_check);
    uv_timer_init(loop, &m->close_timer);
    m->close_timer.data = m;
    *out = m;
    return 0;
}

/* see meta.h */
void meta_peer_hint(struct meta *m, const char *name, const char *peer_address)
{
    if (m->closing || !meta__field_ok(name, true) ||
        !meta__field_ok(peer_address, true) || strcmp(name, m->name) == 0)
        return;
    const char *old = at_map_gets(&m->peers_cache, name);
    if (old != NULL && strcmp(old, peer_address) == 0)
        return;
    if (old == NULL && m->peers_cache.len >= META_HINTS_MAX)
        return; /* bounded: names come from the network */
    at_free(at_map_put(&m->peers_cache, name, strlen(name),
                       at_strdup(peer_address)));
}

/* see meta.h */
void meta_raft_accept(struct meta *m,
                      uint64_t id,
                      const char *address,
                      uv_stream_t *stream)
{
    /* id and address come from the peer's headers: bounded, printable */
    /* still accepted while a closing leader hands leadership over */
    bool ok = !m->raft_closing && id != 0 && meta__field_ok(address, true);
    meta__transport_accept(&m->transport, ok ? id : 0, address, stream);
}

/* ---- close ---- */

static void on_handle_closed(uv_handle_t *h)
{
    struct meta *m = h->data;
    if (--m->close_handles > 0)
        return;
    void (*cb)(void *) = m->close_cb;
    void *data = m->close_data;
    meta_bury(m);
    if (cb != NULL)
        cb(data);
}

static void on_raft_closed(struct raft *r)
{
    struct meta *m = r->data;
    /* notes §1 would release the io now (raft_uv_close): not with 0.15's
     * late close callbacks, see meta_bury */
    meta__reads_closed(m);
    meta__changes_stop(m);
    meta__autopilot_handoffs_end(m, AT_ESHUTDOWN);
    m->close_handles = 4;
    uv_close((uv_handle_t *)&m->idle, on_handle_closed);
    uv_close((uv_handle_t *)&m->tick, on_handle_closed);
    uv_close((uv_handle_t *)&m->check, on_handle_closed);
    uv_close((uv_handle_t *)&m->close_timer, on_handle_closed);
}

static void close_now(struct meta *m)
{
    if (m->raft_closing)
        return;
    m->raft_closing = true;
    uv_timer_stop(&m->close_timer);
    raft_close(&m->raft, on_raft_closed);
}

static void on_close_transfer(void *data, int status)
{
    struct meta *m = data;
    m->close_xfer_busy = false;
    LOG_INFO("leadership transfer before close: %s", at_strerror(status));
    close_now(m);
}

static void on_close_timeout(uv_timer_t *t)
{
    struct meta *m = t->data;
    LOG_WARN("leadership transfer before close timed out");
    close_now(m);
}

/* see meta.h: m is freed just before cb runs. A leader with other voters
 * first hands leadership over (bounded by 2 s). */
void meta_close(struct meta *m, void (*cb)(void *data), void *data)
{
    AT_ASSERT(!m->closing);
    bool transfer = raft_state(&m->raft) == RAFT_LEADER &&
                    meta__voters(m) > 1 &&
                    meta__role_of(m, m->id) == RAFT_VOTER &&
                    meta_transfer(m, NULL, on_close_transfer, m) == 0;
    m->closing = true;
    m->close_cb = cb;
    m->close_data = data;
    uv_idle_stop(&m->idle);
    uv_timer_stop(&m->tick);
    uv_check_stop(&m->check);
    meta__reads_stop(m);
    meta__writes_stop(m);
    meta__waiters_run(m, true);
    if (transfer) {
        m->close_xfer_busy = true;
        uv_timer_start(&m->close_timer, on_close_timeout, 2000, 0);
        return;
    }
    close_now(m);
}
