/* libraft wiring of the metadata FSM: open/close, writes, read barriers.
 *
 * Happy path: meta_open creates the directory, initializes libraft's uv io
 * on atoll's transport, bootstraps a one-voter configuration on first start
 * (RAFT_CANTBOOTSTRAP later is expected) and starts raft; the single voter
 * elects itself. Writes pack a padded command into a raft_malloc'd buffer
 * and raft_apply it; the apply callback maps libraft's status to AT_E*.
 * Reads first call meta_read_barrier: the first batch of reads in a term
 * waits for a raft_barrier (it commits an entry of the term, so the commit
 * index covers every earlier term); later batches only confirm leadership
 * by asking the other voters their term (no log write, no fsync), then
 * wait until the commit index taken before asking is applied. A single
 * voter that already committed a barrier in its term and has applied
 * everything answers on the next loop iteration without touching the disk.
 *
 * Failure modes: not leader (AT_ENOTLEADER, nothing proposed), leadership
 * lost or I/O error after proposing (AT_EUNKNOWN: retry with the same
 * request id), closing (AT_ESHUTDOWN). */
#include "common/compat.h"

#include <sys/random.h>
#include <sys/stat.h>

#define AT_LOG_COMP "raft"

#include "common/testbug.h"
#include "raft/internal.h"

#define META_WAIT_MS   10000 /* bound on waiting for a local apply */
#define META_HINTS_MAX 4096  /* peer address hints kept in memory */

struct meta_read {
    struct at_list link; /* in m->ready, waiting, inflight or a round */
    meta_read_cb cb;
    void *data;
};

struct meta_write {
    struct raft_apply req; /* req.data points back here */
    struct meta *m;        /* borrowed */
    meta_write_cb cb;
    void *data;
    bool forwarded; /* a follower waits for its own apply of it */
    bool early;     /* test builds: acknowledged already (early-ack) */
};

/* A write forwarded to the leader, then waiting for the local apply. */
struct meta_fwd {
    struct at_list link; /* in m->fwds while the forward hook has not
                            answered */
    struct meta *m;      /* borrowed; NULL once orphaned by meta_close */
    void *buf;           /* owned (raft_malloc) */
    size_t len;
    meta_write_cb cb;
    void *data;
    int result;
    uint64_t index;
};

/* A follower read: read index from the leader, then the local apply. */
struct meta_rix {
    struct at_list link; /* in m->rix_wait, then in its batch's members */
    meta_read_cb cb;
    void *data;
};

/* One read-index RPC and the follower reads it serves. */
struct meta_rix_batch {
    struct at_list link;    /* in m->rixs while the hook has not answered */
    struct meta *m;         /* borrowed; NULL once orphaned by meta_close */
    struct at_list members; /* struct meta_rix */
};

/* One leadership confirmation round (see confirm_start): the reads it
 * serves and the answers to its term queries. It is the cb_data of its
 * queries, so it lives until every query has answered. */
struct meta_round {
    struct at_list link;  /* in m->rounds while m is set */
    struct meta *m;       /* borrowed; NULL once orphaned by meta_close */
    struct at_list reads; /* struct meta_read, served when decided */
    uint64_t term, commit;
    unsigned need, acks, left; /* left: queries not answered yet */
    bool decided;
};
#define META_ROUNDS_MAX 1 /* undecided rounds at once */
#define META_RIX_MAX    2 /* read-index RPCs in flight from a follower */

/* Test builds (early-ack): an acknowledgement given before commit, sent by
 * an apply waiter for index 0 (answered on the next loop turn). */
struct meta_early {
    meta_write_cb cb;
    void *data;
    uint64_t index;
};

/* meta_wait_applied waiters. */
struct meta_waiter {
    struct at_list link; /* in m->waiters */
    uint64_t index;
    uint64_t deadline; /* uv_now() ms */
    meta_index_cb cb;
    void *data;
};

/* A queued membership change (one at a time through libraft). */
enum meta_change_kind { CHANGE_JOIN, CHANGE_REMOVE, CHANGE_PROMOTE };
struct meta_change {
    struct at_list link; /* in m->changes; the first one is in flight */
    struct meta *m;      /* borrowed */
    enum meta_change_kind kind;
    int step;
    uint64_t id;
    char *name;         /* owned */
    char *peer_address; /* owned */
    char *api_address;  /* owned */
    char *region;       /* owned */
    bool standby;
    void (*cb)(void *data, int status);
    void *data;
    struct raft_change req;
};

/* A leadership transfer. libraft sends its TimeoutNow with the raft_io_send
 * inside the request, and that send can still be queued in the io (the
 * target unreachable) when the transfer ends: the struct is only freed with
 * the meta, after raft_close has closed the io. */
struct meta_xfer {
    struct raft_transfer req;
    struct at_list link; /* in m->xfers_done once ended */
    struct meta *m;      /* borrowed */
    void (*cb)(void *data, int status);
    void *data;
};

struct meta {
    uv_loop_t *loop; /* borrowed */
    uint64_t id;
    char *name;         /* owned */
    char *address;      /* owned */
    char *store_id;     /* owned */
    char *dir;          /* owned */
    char *peer_address; /* owned, "" if none */
    char *api_address;  /* owned, "" if none */
    char *region;       /* owned, "" if none */
    char *secret;       /* owned, never logged */
    bool standby;
    unsigned target_voters;
    const struct meta_hooks *hooks; /* borrowed */
    void *hooks_data;               /* borrowed */
    struct at_map peers_cache;      /* name -> owned "host:port" (peers file) */
    uint64_t peers_written;         /* fsm.nodes_version last written */
    uv_timer_t tick;                /* membership, self record, timeouts */
    uv_check_t check;       /* wakes apply waiters after each loop iteration */
    struct at_list waiters; /* struct meta_waiter (owned) */
    struct at_list fwds;    /* struct meta_fwd in the forward hook */
    struct at_list rixs;    /* struct meta_rix_batch in the read-index hook */
    /* follower reads waiting for the next read-index RPC (struct meta_rix) */
    struct at_list rix_wait;
    unsigned rix_inflight;  /* read-index RPCs in flight */
    struct at_list changes; /* struct meta_change queue; the first one is
                               in flight if change_busy */
    bool change_busy;
    uint64_t promote_after;    /* uv_now() before which no auto promotion */
    bool self_busy;            /* our own NodeUpsert in flight */
    uint64_t self_retry_after; /* uv_now() before which it is not retried */
    struct at_list xfers_done; /* owned: ended transfers (meta_xfer) */
    uv_timer_t close_timer;
    bool close_xfer_busy;
    bool raft_closing;
    unsigned close_handles;
    struct raft raft;
    struct raft_io io;
    struct meta_transport transport;
    struct raft_tracer tracer;
    struct meta_fsm fsm;
    struct meta_fsm_glue glue;
    uv_idle_t idle;          /* flushes ready reads and starts barriers */
    struct at_list ready;    /* struct meta_read: answer on the next turn */
    struct at_list waiting;  /* struct meta_read: need the next barrier */
    struct at_list inflight; /* struct meta_read: served by the barrier in
                                flight */
    struct raft_barrier barrier;
    bool barrier_busy;
    bool push_pending; /* a barrier must follow the one in flight */
    uint64_t barrier_issue_term;
    uint64_t barrier_ok_term; /* term of the last committed barrier */
    uint64_t pushed_commit;   /* commit index sent with the last barrier */
    /* the last index before the last barrier, whose entry is the next one
     * (see read_index_now) */
    uint64_t barrier_prev;
    /* Leadership confirmation (ReadIndex without a log write): once the
     * leader has committed a barrier in its term, a batch of reads is
     * served by asking every other voter its current term; a majority
     * still in this term proves no other leader can have committed
     * anything newer than the commit index taken when the round began. */
    struct at_list rounds; /* struct meta_round with queries in flight */
    unsigned rounds_open;  /* of which undecided */
    bool was_member;       /* seen in the raft configuration */
    bool was_in_table;     /* seen in the FSM's node table */
    bool removed_logged;
    bool closing;
    void (*close_cb)(void *data);
    void *close_data;
    char errmsg[AT_ERRMSG_SIZE]; /* why the last proposal failed */
};

/* see meta.h */
const char *meta_result_str(int result)
{
    switch (result) {
    case META_OK:
        return "ok";
    case META_BLOB_UNKNOWN:
        return "blob unknown";
    case META_MANIFEST_UNKNOWN:
        return "manifest unknown";
    case META_TAG_UNKNOWN:
        return "tag unknown";
    case META_NAME_UNKNOWN:
        return "repository unknown";
    case META_BLOB_NOT_LINKED:
        return "blob not linked";
    case META_NODE_CONFLICT:
        return "node name taken by another id";
    case META_NODE_UNKNOWN:
        return "node unknown";
    case META_INVALID:
        return "invalid command";
    default:
        return "unknown result";
    }
}

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

static void meta_free(struct meta *m)
{
    struct at_list *e;
    while ((e = at_list_pop_front(&m->xfers_done)) != NULL)
        at_free(AT_LIST_ENTRY(e, struct meta_xfer, link));
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
    }
    at_free(m);
}

static void on_open_failed_closed(struct raft *r)
{
    struct meta *m = r->data;
    raft_uv_close(&m->io);
    meta_free(m);
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

/* see meta.h: stable per name, 32-bit (libraft 0.15's uv client keeps ids
 * in an unsigned int), never 0 nor 1 (1 is the legacy single node) */
uint64_t meta_node_id_from_name(const char *name)
{
    unsigned long long h = raft_digest(name, 0);
    return 2 + (uint64_t)(h % 0x7ffffffdull);
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

/* see internal.h (transport resolve) */
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

static void on_tick(uv_timer_t *t);
static void on_check(uv_check_t *c);

/* see meta.h */
int meta_open(struct meta **out,
              uv_loop_t *loop,
              const struct meta_config *cfg,
              char *errmsg)
{
    if (cfg->dir == NULL) {
        at_errmsg_printf(errmsg, "meta config needs dir");
        return AT_EINVAL;
    }
    const char *name = cfg->name != NULL ? cfg->name : "atoll";
    if (name[0] == '\0' || strlen(name) > META_ADDRESS_MAX ||
        strchr(name, ' ') != NULL || strchr(name, '\n') != NULL) {
        at_errmsg_printf(errmsg, "bad node name '%s'", name);
        return AT_EINVAL;
    }
    const char *opt[] = { cfg->peer_address, cfg->api_address, cfg->region };
    for (size_t i = 0; i < AT_ARRAY_SIZE(opt); i++) {
        if (opt[i] != NULL && strlen(opt[i]) > META_ADDRESS_MAX) {
            at_errmsg_printf(errmsg, "address '%.40s...' too long", opt[i]);
            return AT_EINVAL;
        }
    }
    int rv = mkdir_p(cfg->dir, errmsg);
    if (rv != 0)
        return rv;
    uint64_t id = 0;
    rv = node_id_load(cfg->dir, name, &id, errmsg);
    if (rv != 0)
        return rv;
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
    at_map_init(&m->peers_cache);
    struct at_list *lists[] = { &m->waiters,  &m->fwds,    &m->rixs,
                                &m->rix_wait, &m->changes, &m->xfers_done,
                                &m->ready,    &m->waiting, &m->inflight,
                                &m->rounds };
    for (size_t i = 0; i < AT_ARRAY_SIZE(lists); i++)
        at_list_init(lists[i]);
    meta_fsm_init(&m->fsm, META_REQUESTS_MAX);
    meta__glue_init(&m->glue, &m->fsm);
    m->glue.raft = &m->raft;
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
    peers_load(m);
    m->tracer.impl = m;
    m->tracer.enabled = at_log_enabled(AT_LOG_COMP, AT_LOG_LEVEL_DEBUG);
    m->tracer.emit = tracer_emit;

    rv = raft_uv_init(&m->io, loop, cfg->dir, &m->transport.t);
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
    rv = raft_init(&m->raft, &m->io, &m->glue.iface, m->id, m->address);
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

    if (!cfg->join) {
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        rv = raft_configuration_add(&conf, m->id, m->address, RAFT_VOTER);
        if (rv == 0) {
            rv = raft_bootstrap(&m->raft, &conf);
            if (rv == RAFT_CANTBOOTSTRAP)
                rv = 0; /* not the first start */
        }
        raft_configuration_close(&conf);
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
        struct raft_configuration conf;
        raft_configuration_init(&conf);
        rv = raft_configuration_add(&conf, m->id, m->address, RAFT_VOTER);
        if (rv == 0)
            rv = raft_recover(&m->raft, &conf);
        raft_configuration_close(&conf);
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
    m->peers_written = m->fsm.nodes_version;
    uv_idle_init(loop, &m->idle);
    m->idle.data = m;
    uv_timer_init(loop, &m->tick);
    m->tick.data = m;
    uv_timer_start(&m->tick, on_tick, 100, 100);
    uv_check_init(loop, &m->check);
    m->check.data = m;
    uv_check_start(&m->check, on_check);
    uv_timer_init(loop, &m->close_timer);
    m->close_timer.data = m;
    *out = m;
    return 0;
}

/* ---- reads ---- */

/* Answer every read of l; l is emptied first, so the callbacks may queue
 * new reads anywhere. */
static void reads_finish(struct at_list *l, int status)
{
    struct at_list todo;
    struct at_list *e;
    at_list_init(&todo);
    at_list_move(l, &todo);
    while ((e = at_list_pop_front(&todo)) != NULL) {
        struct meta_read *r = AT_LIST_ENTRY(e, struct meta_read, link);
        r->cb(r->data, status);
        at_free(r);
    }
}

static bool single_voter(struct meta *m)
{
    unsigned voters = 0;
    for (unsigned i = 0; i < m->raft.configuration.n; i++) {
        if (m->raft.configuration.servers[i].role == RAFT_VOTER)
            voters++;
    }
    return voters == 1;
}

static bool read_fast_ok(struct meta *m)
{
    return raft_state(&m->raft) == RAFT_LEADER &&
           m->barrier_ok_term == m->raft.current_term && single_voter(m) &&
           raft_last_applied(&m->raft) == raft_last_index(&m->raft);
}

static int barrier_status(struct meta *m, int status)
{
    if (status == 0)
        return 0;
    if (m->closing || status == RAFT_SHUTDOWN)
        return AT_ESHUTDOWN;
    if (status == RAFT_NOTLEADER || status == RAFT_LEADERSHIPLOST)
        return AT_ENOTLEADER;
    return AT_ETIMEDOUT;
}

static void barrier_start(struct meta *m);
static void on_idle(uv_idle_t *h);
static uint64_t applied(struct meta *m);
static void rix_send(struct meta *m);

static void on_barrier(struct raft_barrier *req, int status)
{
    struct meta *m = req->data;
    m->barrier_busy = false;
    if (status == 0)
        m->barrier_ok_term = m->barrier_issue_term;
    reads_finish(&m->inflight, barrier_status(m, status));
    if (m->closing)
        return;
    if (m->push_pending) {
        m->push_pending = false;
        barrier_start(m);
    } else if (!at_list_empty(&m->waiting)) {
        uv_idle_start(&m->idle, on_idle);
    }
}

/* ---- leadership confirmation for reads ---- */

static void round_free_maybe(struct meta_round *r)
{
    if (!r->decided || r->left > 0)
        return;
    at_list_remove(&r->link);
    at_free(r);
}

/* The reads of a decided round that waited for the local apply. */
static void on_round_applied(void *data, int status, uint64_t index)
{
    struct at_list *reads = data;
    AT_UNUSED(index);
    reads_finish(reads, status);
    at_free(reads);
}

static void round_decide(struct meta_round *r, int status)
{
    struct meta *m = r->m;
    r->decided = true;
    m->rounds_open--;
    if (status == 0 && (raft_state(&m->raft) != RAFT_LEADER ||
                        m->raft.current_term != r->term))
        status = AT_ENOTLEADER;
    if (status == 0 && !at_list_empty(&r->reads) && applied(m) < r->commit) {
        /* answered by the waiter; the round may be freed before */
        struct at_list *reads = at_malloc(sizeof(*reads));
        at_list_init(reads);
        at_list_move(&r->reads, reads);
        status = meta_wait_applied(m, r->commit, META_WAIT_MS, on_round_applied,
                                   reads);
        if (status != 0) {
            at_list_move(reads, &r->reads);
            at_free(reads);
        }
    }
    reads_finish(&r->reads, status);
    if (!at_list_empty(&m->waiting) && !m->closing)
        uv_idle_start(&m->idle, on_idle);
}

static void round_check(struct meta_round *r)
{
    if (r->decided)
        return;
    if (r->acks >= r->need)
        round_decide(r, 0);
    else if (r->acks + r->left < r->need)
        round_decide(r, AT_ENOTLEADER);
}

static void on_term(void *data, int status, uint64_t term)
{
    struct meta_round *r = data;
    AT_ASSERT(r->left > 0);
    r->left--;
    if (r->m != NULL && !r->decided) {
        if (status == 0 && term == r->term)
            r->acks++;
        round_check(r);
    }
    round_free_maybe(r);
}

/* Reads may skip the barrier: a barrier of this term is committed (so the
 * commit index covers every earlier term) and other voters exist to ask. */
static bool confirm_usable(struct meta *m)
{
    return m->hooks != NULL && m->hooks->term != NULL &&
           raft_state(&m->raft) == RAFT_LEADER &&
           m->barrier_ok_term == m->raft.current_term && !single_voter(m);
}

/* Serve the waiting reads with one round: note the commit index, ask every
 * other voter its term; a majority (this node included) in this term
 * confirms this node was leader after every waiting read arrived. Rounds
 * pipeline: reads arriving meanwhile start the next round at once (up to
 * META_ROUNDS_MAX undecided). */
static void confirm_start(struct meta *m)
{
    unsigned voters = 0;
    bool self_voter = false;
    struct meta_round *r = at_calloc(1, sizeof(*r));
    r->m = m;
    at_list_init(&r->reads);
    at_list_move(&m->waiting, &r->reads);
    r->term = m->raft.current_term;
    r->commit = m->raft.commit_index;
    for (unsigned i = 0; i < m->raft.configuration.n; i++) {
        const struct raft_server *sv = &m->raft.configuration.servers[i];
        if (sv->role != RAFT_VOTER)
            continue;
        voters++;
        if (sv->id == m->id)
            self_voter = true;
    }
    r->need = voters / 2 + 1 - (self_voter ? 1 : 0);
    at_list_push_front(&m->rounds, &r->link);
    m->rounds_open++;
    uint64_t timeout = m->raft.election_timeout;
    if (timeout < 500)
        timeout = 500;
    /* left counts the queries sent so far, so an early answer can never
     * see left == 0 while more are to come: answers arrive on later loop
     * turns only (hooks contract) */
    for (unsigned i = 0; i < m->raft.configuration.n; i++) {
        const struct raft_server *sv = &m->raft.configuration.servers[i];
        if (sv->role != RAFT_VOTER || sv->id == m->id)
            continue;
        if (m->hooks->term(m->hooks_data, sv->id, timeout, on_term, r) == 0)
            r->left++;
    }
    round_check(r);
    round_free_maybe(r);
}

/* Start what serves the waiting reads: a confirmation round or a barrier. */
static void reads_start(struct meta *m)
{
    if (at_list_empty(&m->waiting) || m->closing)
        return;
    if (confirm_usable(m)) {
        if (m->rounds_open < META_ROUNDS_MAX)
            confirm_start(m);
    } else if (!m->barrier_busy) {
        barrier_start(m);
    }
}

/* Followers learn the commit index only from the leader's next
 * AppendEntries, which in an idle cluster is the next heartbeat: a follower
 * waiting to apply a forwarded write or to reach a read index would wait up
 * to a heartbeat. Appending a barrier sends that message now (one barrier
 * covers every write committed meanwhile). */
static void commit_push(struct meta *m)
{
    if (m->closing || raft_state(&m->raft) != RAFT_LEADER)
        return;
    if (m->barrier_busy)
        m->push_pending = true;
    else
        barrier_start(m);
}

static void barrier_start(struct meta *m)
{
    AT_ASSERT(!m->barrier_busy);
    if (raft_state(&m->raft) != RAFT_LEADER) {
        reads_finish(&m->waiting, AT_ENOTLEADER);
        return;
    }
    AT_ASSERT(at_list_empty(&m->inflight));
    at_list_move(&m->waiting, &m->inflight);
    m->barrier.data = m;
    m->barrier_issue_term = m->raft.current_term;
    uint64_t commit = m->raft.commit_index;
    uint64_t prev = raft_last_index(&m->raft);
    int rv = raft_barrier(&m->raft, &m->barrier, on_barrier);
    if (rv != 0) {
        reads_finish(&m->inflight, barrier_status(m, rv));
        return;
    }
    m->barrier_busy = true;
    m->pushed_commit = commit;
    m->barrier_prev = prev; /* raft_barrier appended one entry: prev + 1 */
}

/* The read index: the commit index, less our last barrier when that is the
 * only entry committed since the commit index the barrier carried (so the
 * log was fully committed when it was appended: barrier_prev is that
 * commit index, pushed_commit). The
 * barrier changes no state, so the state at barrier_prev is the state at the
 * commit index; and followers know barrier_prev is committed (the barrier's
 * AppendEntries said so) while the barrier's own commit reaches them only
 * with the next AppendEntries, a heartbeat away. Without this, every read
 * index would exceed what was pushed and append another barrier (a log
 * write and fsync on a majority per batch of reads, for ever). The entry
 * after barrier_prev is ours as long as the term has not changed. */
static uint64_t read_index_now(struct meta *m)
{
    uint64_t c = m->raft.commit_index;
    if (c == m->barrier_prev + 1 && m->barrier_prev == m->pushed_commit &&
        m->barrier_issue_term == m->raft.current_term)
        return m->barrier_prev;
    return c;
}

/* ---- apply waiters ---- */

static uint64_t applied(struct meta *m)
{
    return raft_last_applied(&m->raft);
}

/* Answer every waiter whose index is applied or whose deadline passed. */
static void waiters_run(struct meta *m, bool shutdown)
{
    uint64_t now = uv_now(m->loop);
    uint64_t have = applied(m);
    struct at_list done;
    struct at_list *e, *tmp;
    at_list_init(&done);
    AT_LIST_FOREACH_SAFE (e, tmp, &m->waiters) {
        struct meta_waiter *w = AT_LIST_ENTRY(e, struct meta_waiter, link);
        if (shutdown || w->index <= have || now >= w->deadline) {
            at_list_remove(e);
            at_list_push_back(&done, e);
        }
    }
    while ((e = at_list_pop_front(&done)) != NULL) {
        struct meta_waiter *w = AT_LIST_ENTRY(e, struct meta_waiter, link);
        int st = shutdown ? AT_ESHUTDOWN : w->index <= have ? 0 : AT_ETIMEDOUT;
        w->cb(w->data, st, have);
        at_free(w);
    }
}

/* see meta.h */
int meta_wait_applied(struct meta *m,
                      uint64_t index,
                      uint64_t timeout_ms,
                      meta_index_cb cb,
                      void *data)
{
    if (m->closing)
        return AT_ESHUTDOWN;
    struct meta_waiter *w = at_calloc(1, sizeof(*w));
    w->index = index;
    w->deadline = uv_now(m->loop) + timeout_ms;
    w->cb = cb;
    w->data = data;
    at_list_push_front(&m->waiters, &w->link);
    uv_idle_start(&m->idle, on_idle); /* answer soon if already applied */
    return 0;
}

static void on_check(uv_check_t *c)
{
    struct meta *m = c->data;
    if (m->closing)
        return;
    if (!at_list_empty(&m->waiters))
        waiters_run(m, false);
    if (m->fsm.nodes_version != m->peers_written)
        peers_save(m);
}

static void on_idle(uv_idle_t *h)
{
    struct meta *m = h->data;
    uv_idle_stop(h);
    reads_finish(&m->ready, 0);
    if (!at_list_empty(&m->waiters) && !m->closing)
        waiters_run(m, false);
    if (!at_list_empty(&m->rix_wait) && !m->closing)
        rix_send(m);
    reads_start(m);
}

/* ---- follower reads ---- */

static bool leader_known(struct meta *m, uint64_t *leader)
{
    raft_id id = 0;
    const char *addr = NULL;
    raft_leader(&m->raft, &id, &addr);
    *leader = id;
    return id != 0 && id != m->id;
}

static void on_rix_applied(void *data, int status, uint64_t index)
{
    struct meta_rix *x = data;
    AT_UNUSED(index);
    meta_read_cb cb = x->cb;
    void *cbdata = x->data;
    at_free(x);
    cb(cbdata, status);
}

/* Fail every read of l (emptied first: the callbacks may read again). */
static void rix_fail_members(struct at_list *l, int status)
{
    struct at_list todo;
    struct at_list *e;
    at_list_init(&todo);
    at_list_move(l, &todo);
    while ((e = at_list_pop_front(&todo)) != NULL)
        on_rix_applied(AT_LIST_ENTRY(e, struct meta_rix, link), status, 0);
}

static void rix_send(struct meta *m);

static void on_rix_index(void *data, int status, uint64_t index)
{
    struct meta_rix_batch *b = data;
    struct meta *m = b->m;
    struct at_list members;
    struct at_list *e;
    if (m == NULL) { /* meta_close answered already */
        at_free(b);
        return;
    }
    at_list_remove(&b->link);
    m->rix_inflight--;
    at_list_init(&members);
    at_list_move(&b->members, &members);
    at_free(b);
    while ((e = at_list_pop_front(&members)) != NULL) {
        struct meta_rix *x = AT_LIST_ENTRY(e, struct meta_rix, link);
        int st = status;
        if (st == 0)
            st = meta_wait_applied(m, index, META_WAIT_MS, on_rix_applied, x);
        if (st != 0)
            on_rix_applied(x, st, 0);
    }
    if (!at_list_empty(&m->rix_wait) && !m->closing)
        rix_send(m);
}

/* One read-index RPC serves every follower read queued before it was sent;
 * reads arriving meanwhile go in the next one, sent at once while fewer
 * than META_RIX_MAX are in flight (else when one answers). */
static void rix_send(struct meta *m)
{
    uint64_t leader;

    if (at_list_empty(&m->rix_wait) || m->rix_inflight >= META_RIX_MAX)
        return;
    if (m->hooks == NULL || m->hooks->read_index == NULL ||
        !leader_known(m, &leader)) {
        rix_fail_members(&m->rix_wait, AT_ENOTLEADER);
        return;
    }
    struct meta_rix_batch *b = at_calloc(1, sizeof(*b));
    b->m = m;
    at_list_init(&b->members);
    at_list_move(&m->rix_wait, &b->members);
    at_list_push_front(&m->rixs, &b->link);
    m->rix_inflight++;
    int rv = m->hooks->read_index(m->hooks_data, leader, on_rix_index, b);
    if (rv != 0) {
        at_list_remove(&b->link);
        m->rix_inflight--;
        rix_fail_members(&b->members, rv);
        at_free(b);
    }
}

static int read_via_leader(struct meta *m, meta_read_cb cb, void *data)
{
    uint64_t leader;
    if (m->hooks == NULL || m->hooks->read_index == NULL ||
        !leader_known(m, &leader))
        return AT_ENOTLEADER;
    struct meta_rix *x = at_calloc(1, sizeof(*x));
    x->cb = cb;
    x->data = data;
    at_list_push_back(&m->rix_wait, &x->link);
    /* sent from the idle callback: every read of this loop turn rides on
     * the same RPC, and cb never runs inside this call */
    uv_idle_start(&m->idle, on_idle);
    return 0;
}

/* see meta.h */
int meta_read_barrier(struct meta *m, meta_read_cb cb, void *data)
{
    if (m->closing)
        return AT_ESHUTDOWN;
    bool stale = at_test_bug("stale-read"); /* test builds only */
    if (raft_state(&m->raft) != RAFT_LEADER && !stale)
        return read_via_leader(m, cb, data);
    struct meta_read *r = at_calloc(1, sizeof(*r));
    r->cb = cb;
    r->data = data;
    if (read_fast_ok(m) || (stale && raft_state(&m->raft) != RAFT_LEADER)) {
        at_list_push_back(&m->ready, &r->link);
    } else {
        /* reads arriving while a barrier flies wait for the next one */
        at_list_push_back(&m->waiting, &r->link);
    }
    uv_idle_start(&m->idle, on_idle);
    return 0;
}

struct meta_index_req {
    struct meta *m;
    meta_index_cb cb;
    void *data;
    uint64_t index; /* commit index when the request arrived, or 0 */
};

static void on_index_read(void *data, int status)
{
    struct meta_index_req *q = data;
    uint64_t index = status != 0 ? 0 : q->index != 0 ? q->index : applied(q->m);
    meta_index_cb cb = q->cb;
    void *cbdata = q->data;
    at_free(q);
    cb(cbdata, status, index);
}

/* see meta.h: the read index is the commit index when the request arrived
 * (Raft's ReadIndex), valid once the barrier confirms this node is still
 * leader, provided the leader already committed an entry of its term; else
 * the applied index after the barrier. The barrier's AppendEntries carries
 * that commit index to the followers, so the asking follower can apply it
 * without waiting for a heartbeat. */
int meta_read_index(struct meta *m, meta_index_cb cb, void *data)
{
    return meta_read_index_for(m, 0, 0, cb, data);
}

static int role_of(struct meta *m, uint64_t id);

/* Is one other voter's confirmation all a round would need? */
static bool one_other_voter_needed(struct meta *m)
{
    unsigned voters = 0;
    bool self_voter = false;
    for (unsigned i = 0; i < m->raft.configuration.n; i++) {
        const struct raft_server *sv = &m->raft.configuration.servers[i];
        if (sv->role != RAFT_VOTER)
            continue;
        voters++;
        if (sv->id == m->id)
            self_voter = true;
    }
    return self_voter && voters / 2 + 1 == 2;
}

/* see meta.h */
int meta_read_index_for(struct meta *m,
                        uint64_t from_id,
                        uint64_t from_term,
                        meta_index_cb cb,
                        void *data)
{
    if (m->closing)
        return AT_ESHUTDOWN;
    if (raft_state(&m->raft) != RAFT_LEADER)
        return AT_ENOTLEADER;
    struct meta_index_req *q = at_calloc(1, sizeof(*q));
    q->m = m;
    q->cb = cb;
    q->data = data;
    /* The asker was a voter in this term when it sent the request, after
     * its reads began; with this node that is a majority of three that no
     * other leader can have had since: no round needed (see
     * confirm_start). The commit index is taken now, as in a round. */
    if (m->barrier_ok_term == m->raft.current_term && from_id != 0 &&
        from_id != m->id && from_term == m->raft.current_term &&
        role_of(m, from_id) == RAFT_VOTER && one_other_voter_needed(m)) {
        q->index = read_index_now(m);
        if (q->index > m->pushed_commit)
            commit_push(m);
        struct meta_read *r = at_calloc(1, sizeof(*r));
        r->cb = on_index_read;
        r->data = q;
        at_list_push_back(&m->ready, &r->link); /* on the next loop turn */
        uv_idle_start(&m->idle, on_idle);
        return 0;
    }
    if (m->barrier_ok_term == m->raft.current_term) {
        q->index = read_index_now(m);
        /* followers learn a commit index from the next AppendEntries (a
         * heartbeat away when idle): when this one has not been sent with
         * a barrier yet, send one now so the asking follower need not
         * wait for the heartbeat to reach it */
        if (q->index > m->pushed_commit)
            commit_push(m);
    }
    int rv = meta_read_barrier(m, on_index_read, q);
    if (rv != 0)
        at_free(q);
    return rv;
}

/* ---- writes ---- */

static void on_applied(struct raft_apply *req, int status, void *result)
{
    struct meta_write *w = req->data;
    struct meta *m = w->m;
    int st = 0, res = 0;
    if (status == 0)
        res = (int)(intptr_t)result;
    else if (m->closing || status == RAFT_SHUTDOWN)
        st = AT_ESHUTDOWN;
    else
        st = AT_EUNKNOWN;        /* LEADERSHIPLOST, NOSPACE, IOERR, ... */
    uint64_t index = req->index; /* not raft_last_applied: 0.15 lags by 1 */
    meta_write_cb cb = w->cb;
    void *data = w->data;
    bool push = w->forwarded && status == 0;
    bool early = w->early;
    at_free(w);
    if (!early)
        cb(data, st, res, index);
    if (push)
        commit_push(m);
}

static const char *request_id(const char *given, char *gen, size_t size)
{
    if (given != NULL)
        return meta__request_id_ok(given) ? given : NULL;
    uint8_t raw[16];
    size_t got = 0;
    while (got < sizeof(raw)) {
        ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        AT_ASSERT(n > 0); /* getrandom on Linux >= 3.17 does not fail */
        got += (size_t)n;
    }
    static const char hex[] = "0123456789abcdef";
    AT_ASSERT(size > 2 * sizeof(raw));
    for (size_t i = 0; i < sizeof(raw); i++) {
        gen[2 * i] = hex[raw[i] >> 4];
        gen[2 * i + 1] = hex[raw[i] & 15];
    }
    gen[2 * sizeof(raw)] = '\0';
    return gen;
}

/* Test builds (early-ack): acknowledge a write before its commit. */
static void on_early(void *data, int status, uint64_t index)
{
    struct meta_early *e = data;
    AT_UNUSED(index);
    meta_write_cb cb = e->cb;
    void *cbdata = e->data;
    uint64_t idx = e->index;
    at_free(e);
    if (status == 0)
        cb(cbdata, 0, META_OK, idx);
    else
        cb(cbdata, status, 0, 0);
}

/* Propose a packed command here (buf from raft_malloc; ownership taken). */
static int propose_local(struct meta *m,
                         void *buf,
                         size_t len,
                         bool forwarded,
                         meta_write_cb cb,
                         void *data)
{
    if (m->closing) {
        at_errmsg_printf(m->errmsg, "closing");
        raft_free(buf);
        return AT_ESHUTDOWN;
    }
    struct meta_write *w = at_calloc(1, sizeof(*w));
    w->m = m;
    w->cb = cb;
    w->data = data;
    w->forwarded = forwarded;
    w->req.data = w;
    struct raft_buffer b = { buf, len };
    int rv = raft_apply(&m->raft, &w->req, &b, 1, on_applied);
    if (rv != 0) {
        at_errmsg_printf(m->errmsg, "propose: %s", raft_strerror(rv));
        raft_free(buf); /* still ours when raft_apply fails */
        at_free(w);
        if (rv == RAFT_NOTLEADER)
            return AT_ENOTLEADER;
        if (rv == RAFT_SHUTDOWN)
            return AT_ESHUTDOWN;
        return rv == RAFT_NOMEM ? AT_ENOMEM : AT_EIO;
    }
    if (at_test_bug("early-ack")) { /* test builds: ack before commit */
        struct meta_early *e = at_calloc(1, sizeof(*e));
        e->cb = cb;
        e->data = data;
        e->index = raft_last_index(&m->raft);
        if (meta_wait_applied(m, 0, META_WAIT_MS, on_early, e) == 0)
            w->early = true;
        else
            at_free(e);
    }
    return 0;
}

static void fwd_free(struct meta_fwd *f)
{
    raft_free(f->buf);
    at_free(f);
}

static void on_fwd_applied(void *data, int status, uint64_t index)
{
    struct meta_fwd *f = data;
    AT_UNUSED(index);
    /* committed by the leader: a local timeout leaves the outcome unknown
     * to this caller (it did happen, but is not visible here yet) */
    int st = status == 0              ? 0
             : status == AT_ESHUTDOWN ? AT_ESHUTDOWN
                                      : AT_EUNKNOWN;
    meta_write_cb cb = f->cb;
    void *cbdata = f->data;
    int result = f->result;
    uint64_t idx = f->index;
    fwd_free(f);
    cb(cbdata, st, result, idx);
}

static void on_forwarded(void *data, int status, int result, uint64_t index)
{
    struct meta_fwd *f = data;
    struct meta *m = f->m;
    if (m == NULL) { /* meta_close answered already */
        fwd_free(f);
        return;
    }
    at_list_remove(&f->link);
    f->result = result;
    f->index = index;
    if (status == 0)
        status = meta_wait_applied(m, index, META_WAIT_MS, on_fwd_applied, f);
    if (status != 0) {
        meta_write_cb cb = f->cb;
        void *cbdata = f->data;
        fwd_free(f);
        cb(cbdata, status, result, index);
    }
}

/* Propose a packed command (buf from raft_malloc; ownership taken): here on
 * the leader, else through the forward hook to the leader. */
static int propose(struct meta *m,
                   void *buf,
                   size_t len,
                   meta_write_cb cb,
                   void *data)
{
    uint64_t leader;
    if (m->closing || raft_state(&m->raft) == RAFT_LEADER || m->hooks == NULL ||
        m->hooks->forward == NULL || !leader_known(m, &leader))
        return propose_local(m, buf, len, false, cb, data);
    struct meta_fwd *f = at_calloc(1, sizeof(*f));
    f->m = m;
    f->buf = buf;
    f->len = len;
    f->cb = cb;
    f->data = data;
    at_list_push_front(&m->fwds, &f->link);
    int rv =
        m->hooks->forward(m->hooks_data, leader, buf, len, on_forwarded, f);
    if (rv != 0) {
        at_errmsg_printf(m->errmsg, "forward to the leader: %s",
                         at_strerror(rv));
        at_list_remove(&f->link);
        fwd_free(f);
    }
    return rv;
}

/* see meta.h */
int meta_propose_packed(struct meta *m,
                        const void *cmd,
                        size_t len,
                        meta_write_cb cb,
                        void *data)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    Atoll__Command *c = NULL;
    int rv = proto_command_unpack(cmd, len, &c, errmsg);
    if (rv != 0) {
        LOG_DEBUG("forwarded command rejected: %s", errmsg);
        return rv;
    }
    proto_command_free(c);
    if (m->closing)
        return AT_ESHUTDOWN;
    if (raft_state(&m->raft) != RAFT_LEADER)
        return AT_ENOTLEADER;
    void *buf = raft_malloc(len);
    if (buf == NULL)
        return AT_ENOMEM;
    memcpy(buf, cmd, len);
    return propose_local(m, buf, len, true, cb, data);
}

/* see meta.h */
const char *meta_errmsg(const struct meta *m)
{
    return m->errmsg;
}

/* see meta.h */
int meta_propose(struct meta *m,
                 const struct meta_cmd *c,
                 meta_write_cb cb,
                 void *data)
{
    char gen[40];
    struct meta_cmd cmd = *c;
    void *buf = NULL;
    size_t len = 0;
    cmd.request_id = request_id(c->request_id, gen, sizeof(gen));
    if (cmd.request_id == NULL) {
        at_errmsg_printf(m->errmsg,
                         "request id: not 1 to %d printable characters",
                         META_REQUEST_ID_MAX);
        return AT_EINVAL;
    }
    if (c->kind == META_CMD_NODE_UPSERT || c->kind == META_CMD_NODE_REMOVE) {
        at_errmsg_printf(m->errmsg, "the node table changes by membership");
        return AT_EINVAL;
    }
    if (m->closing) {
        at_errmsg_printf(m->errmsg, "closing");
        return AT_ESHUTDOWN;
    }
    int rv =
        meta__cmd_pack(&cmd, m->store_id, raft_malloc, &buf, &len, m->errmsg);
    if (rv != 0)
        return rv;
    return propose(m, buf, len, cb, data);
}

/* Propose c on this node (the leader), never forwarded: membership and
 * this node's own record. push: see propose_local. */
static int propose_here(struct meta *m,
                        const struct meta_cmd *c,
                        bool push,
                        meta_write_cb cb,
                        void *data)
{
    void *buf = NULL;
    size_t len = 0;
    int rv = meta__cmd_pack(c, m->store_id, raft_malloc, &buf, &len, m->errmsg);
    if (rv != 0)
        return rv;
    return propose_local(m, buf, len, push, cb, data);
}

/* see meta.h */
void meta_gc_candidates(struct meta *m,
                        uint64_t now_ms,
                        uint64_t grace_ms,
                        meta_blob_cb each,
                        void *data)
{
    meta_fsm_gc_candidates(&m->fsm, now_ms, grace_ms, each, data);
}

/* see meta.h */
void meta_gc_manifest_candidates(struct meta *m,
                                 uint64_t now_ms,
                                 uint64_t grace_ms,
                                 size_t max,
                                 meta_gc_manifest_cb each,
                                 void *data)
{
    meta_fsm_gc_manifest_candidates(&m->fsm, now_ms, grace_ms, max, each, data);
}

/* see meta.h */
size_t meta_gc_take_removed(struct meta *m, struct meta_gc_removed **out)
{
    return meta_fsm_gc_take_removed(&m->fsm, out);
}

/* see meta.h */
bool meta_gc_take_scan(struct meta *m)
{
    bool want = m->fsm.gc_scan_wanted;
    m->fsm.gc_scan_wanted = false;
    return want;
}

/* see meta.h */
const char *meta_setting_get(struct meta *m, const char *key, uint64_t *index)
{
    return meta__setting_get(&m->fsm, key, index);
}

/* see meta.h */
bool meta_blob_held_here(struct meta *m, const struct at_digest *d)
{
    return meta__blob_held_by(&m->fsm, d, m->store_id);
}

/* see meta.h */
void meta_pushes_record(struct meta *m, bool on)
{
    m->fsm.pushes_record = on;
}

/* see meta.h */
size_t meta_pushes_take(struct meta *m, struct meta_push **out)
{
    return meta__pushes_take(&m->fsm, out);
}

/* see meta.h */
void meta_manifest_blobs(struct meta *m,
                         const char *repo,
                         const struct at_digest *d,
                         void (*each)(void *data,
                                      const struct at_digest *blob,
                                      uint64_t size),
                         void *data)
{
    meta__manifest_blobs(&m->fsm, repo, d, each, data);
}

/* ---- membership ---- */

static int role_of(struct meta *m, uint64_t id)
{
    for (unsigned i = 0; i < m->raft.configuration.n; i++) {
        if (m->raft.configuration.servers[i].id == id)
            return m->raft.configuration.servers[i].role;
    }
    return -1;
}

static unsigned count_voters(struct meta *m)
{
    unsigned n = 0;
    for (unsigned i = 0; i < m->raft.configuration.n; i++) {
        if (m->raft.configuration.servers[i].role == RAFT_VOTER)
            n++;
    }
    return n;
}

static int change_status(struct meta *m, int status)
{
    switch (status) {
    case 0:
    case RAFT_BADROLE: /* already has that role */
        return 0;
    case RAFT_NOTLEADER:
        return AT_ENOTLEADER;
    case RAFT_LEADERSHIPLOST:
        return AT_EUNKNOWN;
    case RAFT_CANTCHANGE:
        return AT_EBUSY;
    case RAFT_NOCONNECTION:
        return AT_ETIMEDOUT; /* catch-up too slow */
    case RAFT_BADID:
        return AT_ENOTFOUND;
    case RAFT_SHUTDOWN:
        return AT_ESHUTDOWN;
    default:
        return m->closing ? AT_ESHUTDOWN : AT_EIO;
    }
}

static void change_free(struct meta_change *c)
{
    at_free(c->name);
    at_free(c->peer_address);
    at_free(c->api_address);
    at_free(c->region);
    at_free(c);
}

static void changes_run(struct meta *m);

/* The head change finished: pop it, answer, start the next one. */
static void change_done(struct meta_change *c, int status)
{
    struct meta *m = c->m;
    AT_ASSERT(at_list_first(&m->changes) == &c->link);
    at_list_remove(&c->link);
    m->change_busy = false;
    if (status != 0)
        LOG_INFO("membership change of '%s' (%" PRIu64 "): %s", c->name, c->id,
                 at_strerror(status));
    if (c->kind == CHANGE_PROMOTE && status != 0)
        m->promote_after = uv_now(m->loop) + 5000;
    if (c->cb != NULL)
        c->cb(c->data, status);
    change_free(c);
    if (!m->closing)
        changes_run(m);
}

static void change_step(struct meta_change *c);

static void on_change_cmd(void *data, int status, int result, uint64_t index)
{
    struct meta_change *c = data;
    AT_UNUSED(index);
    if (status == 0 && result == META_NODE_CONFLICT)
        status = AT_EEXIST;
    if (status != 0) {
        change_done(c, status);
        return;
    }
    c->step++;
    change_step(c);
}

static void on_change_raft(struct raft_change *req, int status)
{
    struct meta_change *c = req->data;
    int st = change_status(c->m, status);
    if (st != 0) {
        change_done(c, st);
        return;
    }
    c->step++;
    change_step(c);
}

/* Run the current step of the head change; each step either finishes the
 * change or starts one asynchronous operation whose callback steps again. */
static void change_step(struct meta_change *c)
{
    struct meta *m = c->m;
    int rv;
    if (m->closing) {
        change_done(c, AT_ESHUTDOWN);
        return;
    }
    if (raft_state(&m->raft) != RAFT_LEADER) {
        change_done(c, AT_ENOTLEADER);
        return;
    }
    c->req.data = c;
    switch (c->kind) {
    case CHANGE_JOIN:
        if (c->step == 0) { /* record the node through the log */
            struct meta_cmd cmd = { .kind = META_CMD_NODE_UPSERT };
            struct meta_node *n = &cmd.node_upsert.node;
            n->id = c->id;
            n->name = c->name;
            n->peer_address = c->peer_address;
            n->api_address = c->api_address;
            n->region = c->region;
            cmd.node_upsert.standby = c->standby;
            const struct meta_noderec *old = meta__node_find(&m->fsm, c->id);
            if (old != NULL && meta__node_equal(old, &cmd.node_upsert)) {
                c->step++;
                change_step(c);
                return;
            }
            rv = propose_here(m, &cmd, true, on_change_cmd, c);
            break;
        }
        if (c->step == 1) { /* add as spare */
            if (role_of(m, c->id) >= 0) {
                c->step++;
                change_step(c);
                return;
            }
            rv = change_status(
                m, raft_add(&m->raft, &c->req, c->id, c->name, on_change_raft));
            break;
        }
        if (c->step == 2) { /* promote */
            int role = role_of(m, c->id);
            int want;
            if (c->standby)
                want = RAFT_STANDBY;
            else if (role == RAFT_VOTER || count_voters(m) < m->target_voters)
                want = RAFT_VOTER;
            else
                want = RAFT_STANDBY;
            if (role == want) {
                change_done(c, 0);
                return;
            }
            rv = change_status(
                m, raft_assign(&m->raft, &c->req, c->id, want, on_change_raft));
            break;
        }
        change_done(c, 0);
        return;
    case CHANGE_REMOVE:
        if (c->step == 0) { /* forget the node, then drop it from raft */
            if (meta__node_find(&m->fsm, c->id) == NULL) {
                c->step++;
                change_step(c);
                return;
            }
            struct meta_cmd cmd = { .kind = META_CMD_NODE_REMOVE };
            cmd.node_remove.id = c->id;
            rv = propose_here(m, &cmd, true, on_change_cmd, c);
            break;
        }
        if (c->step == 1 && role_of(m, c->id) >= 0) {
            rv = change_status(
                m, raft_remove(&m->raft, &c->req, c->id, on_change_raft));
            break;
        }
        change_done(c, 0);
        return;
    case CHANGE_PROMOTE: {
        int want = c->standby ? RAFT_STANDBY : RAFT_VOTER;
        if (c->step == 0 && role_of(m, c->id) >= 0 &&
            role_of(m, c->id) != want) {
            rv = change_status(
                m, raft_assign(&m->raft, &c->req, c->id, want, on_change_raft));
            break;
        }
        change_done(c, 0);
        return;
    }
    default:
        rv = AT_EINVAL;
        break;
    }
    if (rv != 0)
        change_done(c, rv);
}

static void changes_run(struct meta *m)
{
    if (m->change_busy || at_list_empty(&m->changes) || m->closing)
        return;
    m->change_busy = true;
    change_step(
        AT_LIST_ENTRY(at_list_first(&m->changes), struct meta_change, link));
}

static struct meta_change *change_new(struct meta *m,
                                      enum meta_change_kind kind,
                                      uint64_t id,
                                      const char *name)
{
    struct meta_change *c = at_calloc(1, sizeof(*c));
    c->m = m;
    c->kind = kind;
    c->id = id;
    c->name = at_strdup(name != NULL ? name : "");
    c->peer_address = at_strdup("");
    c->api_address = at_strdup("");
    c->region = at_strdup("");
    return c;
}

static void change_enqueue(struct meta *m, struct meta_change *c)
{
    at_list_push_back(&m->changes, &c->link);
    changes_run(m);
}

static bool field_ok(const char *s, bool required)
{
    if (s == NULL)
        return !required;
    size_t n = strlen(s);
    if (n > META_ADDRESS_MAX || (required && n == 0))
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
            return false;
    }
    return true;
}

/* see meta.h: n->id 0 means derived from the name */
int meta_member_join(struct meta *m,
                     const struct meta_node *n,
                     bool standby,
                     void (*cb)(void *data, int status),
                     void *data)
{
    if (m->closing)
        return AT_ESHUTDOWN;
    if (!field_ok(n->name, true) || !field_ok(n->peer_address, true) ||
        !field_ok(n->api_address, false) || !field_ok(n->region, false))
        return AT_EINVAL;
    if (raft_state(&m->raft) != RAFT_LEADER)
        return AT_ENOTLEADER;
    uint64_t id = n->id != 0 ? n->id : meta_node_id_from_name(n->name);
    const struct meta_noderec *byname = meta__node_by_name(&m->fsm, n->name);
    if (byname != NULL && (byname->id != id ||
                           strcmp(byname->peer_address, n->peer_address) != 0))
        return AT_EEXIST;
    const struct meta_noderec *byid = meta__node_find(&m->fsm, id);
    if (byid != NULL && strcmp(byid->name, n->name) != 0)
        return AT_EEXIST;
    struct meta_change *c = change_new(m, CHANGE_JOIN, id, n->name);
    at_free(c->peer_address);
    c->peer_address = at_strdup(n->peer_address);
    if (n->api_address != NULL) {
        at_free(c->api_address);
        c->api_address = at_strdup(n->api_address);
    }
    if (n->region != NULL) {
        at_free(c->region);
        c->region = at_strdup(n->region);
    }
    c->standby = standby;
    c->cb = cb;
    c->data = data;
    change_enqueue(m, c);
    return 0;
}

/* Find a node id by name: the node table, then the raft configuration. */
static uint64_t id_by_name(struct meta *m, const char *name)
{
    const struct meta_noderec *r = meta__node_by_name(&m->fsm, name);
    if (r != NULL)
        return r->id;
    for (unsigned i = 0; i < m->raft.configuration.n; i++) {
        const struct raft_server *s = &m->raft.configuration.servers[i];
        if (s->address != NULL && strcmp(s->address, name) == 0)
            return s->id;
    }
    return 0;
}

/* see meta.h */
int meta_member_remove(struct meta *m,
                       const char *name,
                       void (*cb)(void *data, int status),
                       void *data)
{
    if (m->closing)
        return AT_ESHUTDOWN;
    if (name == NULL)
        return AT_EINVAL;
    if (raft_state(&m->raft) != RAFT_LEADER)
        return AT_ENOTLEADER;
    uint64_t id = id_by_name(m, name);
    if (id == 0)
        return AT_ENOTFOUND;
    struct meta_change *c = change_new(m, CHANGE_REMOVE, id, name);
    c->cb = cb;
    c->data = data;
    change_enqueue(m, c);
    return 0;
}

static void on_transfer(struct raft_transfer *req)
{
    struct meta_xfer *x = req->data;
    struct meta *m = x->m;
    raft_id leader = 0;
    const char *addr = NULL;
    raft_leader(&m->raft, &leader, &addr);
    int st = leader != m->id ? 0 : AT_ETIMEDOUT;
    /* not freed here: its TimeoutNow may still wait in the io's queue */
    at_list_push_front(&m->xfers_done, &x->link);
    if (x->cb != NULL)
        x->cb(x->data, st);
}

/* see meta.h */
int meta_transfer(struct meta *m,
                  const char *name,
                  void (*cb)(void *data, int status),
                  void *data)
{
    if (m->closing)
        return AT_ESHUTDOWN;
    if (raft_state(&m->raft) != RAFT_LEADER)
        return AT_ENOTLEADER;
    uint64_t id = 0;
    if (name != NULL) {
        id = id_by_name(m, name);
        if (id == 0)
            return AT_ENOTFOUND;
        if (role_of(m, id) != RAFT_VOTER || id == m->id)
            return AT_EINVAL;
    }
    struct meta_xfer *x = at_calloc(1, sizeof(*x));
    x->m = m;
    x->cb = cb;
    x->data = data;
    x->req.data = x;
    int rv = raft_transfer(&m->raft, &x->req, id, on_transfer);
    if (rv != 0) {
        at_free(x);
        return rv == RAFT_NOTLEADER ? AT_ENOTLEADER
               : rv == RAFT_BADID   ? AT_EINVAL
                                    : AT_EBUSY;
    }
    return 0;
}

static void on_self_upserted(void *data, int status, int result, uint64_t index)
{
    struct meta *m = data;
    AT_UNUSED(index);
    m->self_busy = false;
    if (status != 0 || result != META_OK) {
        if (!m->closing)
            m->self_retry_after = uv_now(m->loop) + 10000;
        LOG_WARN("record of this node: %s / %s", at_strerror(status),
                 meta_result_str(result));
    }
}

static void on_tick_barrier(void *data, int status)
{
    AT_UNUSED(data);
    AT_UNUSED(status);
}

/* Leader housekeeping: prove leadership after an election, keep our own
 * record up to date, promote standbys/spares while voters are missing. */
static void leader_tick(struct meta *m)
{
    if (m->barrier_ok_term != m->raft.current_term) {
        if (!m->barrier_busy && at_list_empty(&m->waiting))
            meta_read_barrier(m, on_tick_barrier, NULL);
        return;
    }
    if (!m->self_busy && uv_now(m->loop) >= m->self_retry_after) {
        struct meta_cmd cmd = { .kind = META_CMD_NODE_UPSERT };
        struct meta_node *n = &cmd.node_upsert.node;
        n->id = m->id;
        n->name = m->name;
        n->peer_address = m->peer_address;
        n->api_address = m->api_address;
        n->region = m->region;
        cmd.node_upsert.standby = m->standby;
        const struct meta_noderec *r = meta__node_find(&m->fsm, m->id);
        if ((r == NULL || !meta__node_equal(r, &cmd.node_upsert)) &&
            propose_here(m, &cmd, false, on_self_upserted, m) == 0)
            m->self_busy = true;
    }
    if (m->change_busy || !at_list_empty(&m->changes) ||
        uv_now(m->loop) < m->promote_after)
        return;
    bool want_voter = count_voters(m) < m->target_voters;
    for (unsigned i = 0; i < m->raft.configuration.n; i++) {
        const struct raft_server *s = &m->raft.configuration.servers[i];
        const struct meta_noderec *r = meta__node_find(&m->fsm, s->id);
        if (s->role == RAFT_VOTER || r == NULL)
            continue;
        bool voter = !r->standby && want_voter;
        /* spares left by an interrupted join become standbys at least */
        if (!voter && s->role != RAFT_SPARE)
            continue;
        LOG_INFO("assigning '%s' the %s role (%u voters, target %u)", r->name,
                 voter ? "voter" : "standby", count_voters(m),
                 m->target_voters);
        struct meta_change *c = change_new(m, CHANGE_PROMOTE, s->id, r->name);
        c->standby = !voter;
        change_enqueue(m, c);
        return;
    }
}

static void on_tick(uv_timer_t *t)
{
    struct meta *m = t->data;
    if (m->closing)
        return;
    if (!at_list_empty(&m->waiters))
        waiters_run(m, false);
    if (role_of(m, m->id) >= 0)
        m->was_member = true;
    if (meta__node_find(&m->fsm, m->id) != NULL)
        m->was_in_table = true;
    if (meta_removed(m) && !m->removed_logged) {
        m->removed_logged = true;
        LOG_ERROR(
            "this node was removed from the cluster: it serves no "
            "cluster reads or writes any more; stop it, and to bring "
            "it back wipe its data dir and start it with --join");
    }
    if (raft_state(&m->raft) == RAFT_LEADER) {
        leader_tick(m);
    } else if (!at_list_empty(&m->changes) && !m->change_busy) {
        changes_run(m); /* fails them with AT_ENOTLEADER */
    }
}

static const char *server_address(struct meta *m, uint64_t id)
{
    for (unsigned i = 0; i < m->raft.configuration.n; i++) {
        if (m->raft.configuration.servers[i].id == id)
            return m->raft.configuration.servers[i].address;
    }
    return NULL;
}

/* meta.h roles: 0 spare, 1 voter, 2 standby, -1 not in config */
static int public_role(int raft_role)
{
    switch (raft_role) {
    case RAFT_VOTER:
        return 1;
    case RAFT_STANDBY:
        return 2;
    case RAFT_SPARE:
        return 0;
    default:
        return -1;
    }
}

static void fill_node(struct meta *m,
                      uint64_t id,
                      uint64_t leader,
                      struct meta_node *out)
{
    const struct meta_noderec *r = meta__node_find(&m->fsm, id);
    memset(out, 0, sizeof(*out));
    out->id = id;
    if (r != NULL) {
        out->name = r->name;
        out->peer_address = r->peer_address;
        out->api_address = r->api_address;
        out->region = r->region;
    } else {
        const char *a = server_address(m, id);
        out->name = a != NULL ? a : "";
        out->peer_address = "";
        out->api_address = "";
        out->region = "";
        if (id == m->id) {
            out->name = m->name;
            out->peer_address = m->peer_address;
            out->api_address = m->api_address;
            out->region = m->region;
        }
    }
    out->role = public_role(role_of(m, id));
    out->leader = leader != 0 && leader == id;
}

static int cmp_node(const void *a, const void *b)
{
    const struct meta_node *x = a, *y = b;
    return strcmp(x->name, y->name);
}

/* see meta.h: sorted by name */
void meta_members(struct meta *m, meta_node_cb each, void *data)
{
    raft_id leader = 0;
    const char *addr = NULL;
    raft_leader(&m->raft, &leader, &addr);
    size_t cap = m->fsm.nodes.len + m->raft.configuration.n + 1, n = 0;
    struct meta_node *v = at_calloc(cap, sizeof(*v));
    const char *k;
    void *val;
    for (size_t i = 0; at_map_next(&m->fsm.nodes, &i, &k, &val);)
        fill_node(m, ((struct meta_noderec *)val)->id, leader, &v[n++]);
    for (unsigned i = 0; i < m->raft.configuration.n; i++) {
        uint64_t id = m->raft.configuration.servers[i].id;
        if (meta__node_find(&m->fsm, id) == NULL)
            fill_node(m, id, leader, &v[n++]);
    }
    qsort(v, n, sizeof(*v), cmp_node);
    for (size_t i = 0; i < n; i++)
        each(data, &v[i]);
    at_free(v);
}

/* see meta.h */
void meta_blob_holders(struct meta *m,
                       const struct at_digest *d,
                       meta_node_cb each,
                       void *data)
{
    const struct meta_blob *b = meta__blob_get(&m->fsm, d, 0, false);
    raft_id leader = 0;
    const char *addr = NULL;
    struct meta_node *v;
    size_t n = 0;

    if (b == NULL || b->nstores == 0)
        return;
    raft_leader(&m->raft, &leader, &addr);
    v = at_calloc(b->nstores, sizeof(*v));
    for (size_t i = 0; i < b->nstores; i++) {
        const struct meta_noderec *r =
            meta__node_by_name(&m->fsm, b->stores[i]);
        if (r == NULL || strcmp(r->name, m->name) == 0 ||
            strcmp(b->stores[i], m->store_id) == 0)
            continue;
        fill_node(m, r->id, leader, &v[n++]);
    }
    qsort(v, n, sizeof(*v), cmp_node);
    /* same region first, keeping the name order inside each group */
    for (size_t pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            bool local = m->region[0] != '\0' && v[i].region != NULL &&
                         strcmp(v[i].region, m->region) == 0;
            if (local == (pass == 0))
                each(data, &v[i]);
        }
    }
    at_free(v);
}

/* see meta.h */
bool meta_leader(struct meta *m, struct meta_node *out)
{
    raft_id leader = 0;
    const char *addr = NULL;
    raft_leader(&m->raft, &leader, &addr);
    if (leader == 0)
        return false;
    fill_node(m, leader, leader, out);
    if (out->name[0] == '\0' && addr != NULL)
        out->name = addr;
    return true;
}

/* see meta.h */
void meta_peer_hint(struct meta *m, const char *name, const char *peer_address)
{
    if (m->closing || !field_ok(name, true) || !field_ok(peer_address, true) ||
        strcmp(name, m->name) == 0)
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
    bool ok = !m->raft_closing && id != 0 && field_ok(address, true);
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
    meta_free(m);
    if (cb != NULL)
        cb(data);
}

static void on_raft_closed(struct raft *r)
{
    struct meta *m = r->data;
    /* notes §1: only after raft_close's callback, release the io; the
     * transport's own close already ran inside raft_close */
    raft_uv_close(&m->io);
    reads_finish(&m->inflight, AT_ESHUTDOWN);
    reads_finish(&m->waiting, AT_ESHUTDOWN);
    reads_finish(&m->ready, AT_ESHUTDOWN);
    waiters_run(m, true);
    struct at_list *e;
    while ((e = at_list_first(&m->changes)) != NULL) {
        m->change_busy = true;
        change_done(AT_LIST_ENTRY(e, struct meta_change, link), AT_ESHUTDOWN);
    }
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
                    count_voters(m) > 1 && role_of(m, m->id) == RAFT_VOTER &&
                    meta_transfer(m, NULL, on_close_transfer, m) == 0;
    m->closing = true;
    m->close_cb = cb;
    m->close_data = data;
    uv_idle_stop(&m->idle);
    uv_timer_stop(&m->tick);
    uv_check_stop(&m->check);
    reads_finish(&m->ready, AT_ESHUTDOWN);
    reads_finish(&m->waiting, AT_ESHUTDOWN);
    struct at_list *e;
    while ((e = at_list_pop_front(&m->rounds)) != NULL) {
        /* orphaned: late answers only free them */
        struct meta_round *r = AT_LIST_ENTRY(e, struct meta_round, link);
        if (!r->decided) {
            reads_finish(&r->reads, AT_ESHUTDOWN);
            r->decided = true;
        }
        r->m = NULL;
        round_free_maybe(r);
    }
    m->rounds_open = 0;
    /* forwarded writes and follower reads: answer now, orphan the hook
     * calls (their late answers are dropped) */
    while ((e = at_list_pop_front(&m->fwds)) != NULL) {
        struct meta_fwd *f = AT_LIST_ENTRY(e, struct meta_fwd, link);
        f->m = NULL;
        f->cb(f->data, AT_ESHUTDOWN, 0, 0);
    }
    while ((e = at_list_pop_front(&m->rixs)) != NULL) {
        struct meta_rix_batch *b =
            AT_LIST_ENTRY(e, struct meta_rix_batch, link);
        b->m = NULL;
        rix_fail_members(&b->members, AT_ESHUTDOWN);
    }
    rix_fail_members(&m->rix_wait, AT_ESHUTDOWN);
    waiters_run(m, true);
    if (transfer) {
        m->close_xfer_busy = true;
        uv_timer_start(&m->close_timer, on_close_timeout, 2000, 0);
        return;
    }
    close_now(m);
}

/* see meta.h */
uint64_t meta_term(struct meta *m)
{
    return m->raft.current_term;
}

/* ---- local reads ---- */

/* see meta.h */
bool meta_repo_exists(struct meta *m, const char *repo)
{
    return meta_fsm_repo_exists(&m->fsm, repo);
}

/* see meta.h */
int meta_tag_resolve(struct meta *m,
                     const char *repo,
                     const char *tag,
                     struct at_digest *out)
{
    return meta_fsm_tag_resolve(&m->fsm, repo, tag, out);
}

/* see meta.h */
const struct meta_manifest *meta_manifest_find(struct meta *m,
                                               const char *repo,
                                               const struct at_digest *d)
{
    return meta_fsm_manifest_find(&m->fsm, repo, d);
}

/* see meta.h */
bool meta_blob_linked(struct meta *m,
                      const char *repo,
                      const struct at_digest *d,
                      uint64_t *size)
{
    return meta_fsm_blob_linked(&m->fsm, repo, d, size);
}

/* see meta.h */
bool meta_blob_known(struct meta *m, const struct at_digest *d, uint64_t *size)
{
    return meta_fsm_blob_known(&m->fsm, d, size);
}

/* see meta.h */
int meta_tags_list(struct meta *m,
                   const char *repo,
                   const char *last,
                   size_t limit,
                   meta_name_cb each,
                   void *data,
                   bool *more)
{
    return meta_fsm_tags_list(&m->fsm, repo, last, limit, each, data, more);
}

/* see meta.h */
void meta_catalog_list(struct meta *m,
                       const char *last,
                       size_t limit,
                       meta_name_cb each,
                       void *data,
                       bool *more)
{
    meta_fsm_catalog_list(&m->fsm, last, limit, each, data, more);
}

/* see meta.h */
void meta_referrers(struct meta *m,
                    const char *repo,
                    const struct at_digest *subject,
                    meta_manifest_cb each,
                    void *data)
{
    meta_fsm_referrers(&m->fsm, repo, subject, each, data);
}

/* see meta.h */
void meta_status_get(struct meta *m, struct meta_status *st)
{
    raft_id leader = 0;
    const char *addr = NULL;
    memset(st, 0, sizeof(*st));
    st->id = m->id;
    st->name = m->name;
    st->state = raft_state(&m->raft);
    raft_leader(&m->raft, &leader, &addr);
    st->leader_id = leader;
    st->term = m->raft.current_term;
    st->commit_index = m->raft.commit_index;
    st->last_index = raft_last_index(&m->raft);
    st->applied_index = raft_last_applied(&m->raft);
    st->repos = m->fsm.repos.len;
    st->tags = m->fsm.ntags;
    st->manifests = m->fsm.manifests.len;
    st->blobs = m->fsm.blobs.len;
    st->removed = meta_removed(m);
}

/* see meta.h */
bool meta_removed(struct meta *m)
{
    /* a removed node may never get the configuration without it (the
     * leader stops sending it entries), but the NodeRemove that comes
     * first reaches it while it is still a member */
    return (m->was_member && m->raft.configuration.n > 0 &&
            role_of(m, m->id) < 0) ||
           (m->was_in_table && meta__node_find(&m->fsm, m->id) == NULL);
}

/* see meta.h */
void meta_referenced_blobs(struct meta *m, meta_ref_blob_cb each, void *data)
{
    const char *rk, *mk;
    void *rv, *mv;

    for (size_t i = 0; at_map_next(&m->fsm.repos, &i, &rk, &rv);) {
        struct meta_repo *repo = rv;
        for (size_t j = 0; at_map_next(&repo->manifests, &j, &mk, &mv);) {
            const struct meta_mf *mf = mv;
            for (size_t k = 0; k < mf->nblobs; k++) {
                const struct meta_blob *b =
                    meta__blob_get(&m->fsm, &mf->blobs[k], 0, false);
                each(data, repo->name, &mf->blobs[k], b != NULL ? b->size : 0);
            }
        }
    }
}
