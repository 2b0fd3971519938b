/* libraft wiring of the metadata FSM: open/close, writes, read barriers.
 *
 * Happy path: meta_open creates the directory, initializes libraft's uv io
 * on atoll's transport, bootstraps a one-voter configuration on first start
 * (RAFT_CANTBOOTSTRAP later is expected) and starts raft; the single voter
 * elects itself. Writes pack a padded command into a raft_malloc'd buffer
 * and raft_apply it; the apply callback maps libraft's status to AT_E*.
 * Reads first call meta_read_barrier: one raft_barrier proves leadership
 * for every read waiting in the same window; a single voter that already
 * committed a barrier in its term and has applied everything answers on the
 * next loop iteration without touching the disk.
 *
 * Failure modes: not leader (AT_ENOTLEADER, nothing proposed), leadership
 * lost or I/O error after proposing (AT_EUNKNOWN: retry with the same
 * request id), closing (AT_ESHUTDOWN). */
#include "common/compat.h"

#include <sys/random.h>
#include <sys/stat.h>

#define AT_LOG_COMP "raft"

#include "raft/internal.h"

struct meta_read {
    meta_read_cb cb;
    void *data;
    struct meta_read *next;
};

struct meta_read_list {
    struct meta_read *head, *tail;
};

struct meta_write {
    struct raft_apply req; /* req.data points back here */
    struct meta *m;        /* borrowed */
    meta_write_cb cb;
    void *data;
};

struct meta {
    uv_loop_t *loop; /* borrowed */
    uint64_t id;
    char *name;     /* owned */
    char *address;  /* owned */
    char *store_id; /* owned */
    struct raft raft;
    struct raft_io io;
    struct meta_transport transport;
    struct raft_tracer tracer;
    struct meta_fsm fsm;
    struct meta_fsm_glue glue;
    uv_idle_t idle;                /* flushes ready reads and starts barriers */
    struct meta_read_list ready;   /* answer on the next iteration */
    struct meta_read_list waiting; /* need the next barrier */
    struct meta_read_list inflight; /* served by the barrier in flight */
    struct raft_barrier barrier;
    bool barrier_busy;
    uint64_t barrier_issue_term;
    uint64_t barrier_ok_term; /* term of the last committed barrier */
    bool closing;
    void (*close_cb)(void *data);
    void *close_data;
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

static void meta_free(struct meta *m)
{
    meta_fsm_release(&m->fsm);
    at_free(m->name);
    at_free(m->address);
    at_free(m->store_id);
    at_free(m);
}

static void on_open_failed_closed(struct raft *r)
{
    struct meta *m = r->data;
    raft_uv_close(&m->io);
    meta_free(m);
}

/* see meta.h */
int meta_open(struct meta **out,
              uv_loop_t *loop,
              const struct meta_config *cfg,
              char *errmsg)
{
    if (cfg->dir == NULL || cfg->id == 0 || cfg->address == NULL) {
        at_errmsg_printf(errmsg, "meta config needs dir, id and address");
        return AT_EINVAL;
    }
    int rv = mkdir_p(cfg->dir, errmsg);
    if (rv != 0)
        return rv;
    struct meta *m = at_calloc(1, sizeof(*m));
    m->loop = loop;
    m->id = cfg->id;
    m->name = at_strdup(cfg->name != NULL ? cfg->name : "atoll");
    m->address = at_strdup(cfg->address);
    m->store_id = at_strdup(cfg->store_id != NULL ? cfg->store_id : m->name);
    meta_fsm_init(&m->fsm, META_REQUESTS_MAX);
    meta__glue_init(&m->glue, &m->fsm);
    m->glue.raft = &m->raft;
    meta__transport_init(&m->transport, loop);
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
    raft_uv_set_auto_recovery(&m->io, false);
    raft_uv_set_tracer(&m->io, &m->tracer);
    rv = raft_init(&m->raft, &m->io, &m->glue.iface, cfg->id, cfg->address);
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

    struct raft_configuration conf;
    raft_configuration_init(&conf);
    rv = raft_configuration_add(&conf, cfg->id, cfg->address, RAFT_VOTER);
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
    rv = raft_start(&m->raft);
    if (rv != 0) {
        at_errmsg_printf(errmsg, "raft start '%s': %s", cfg->dir,
                         raft_errmsg(&m->raft));
        raft_close(&m->raft, on_open_failed_closed);
        return rv == RAFT_CORRUPT ? AT_ECORRUPT : AT_EIO;
    }
    uv_idle_init(loop, &m->idle);
    m->idle.data = m;
    *out = m;
    return 0;
}

/* ---- reads ---- */

static void list_push(struct meta_read_list *l, struct meta_read *r)
{
    r->next = NULL;
    if (l->tail != NULL)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
}

static struct meta_read *list_take(struct meta_read_list *l)
{
    struct meta_read *h = l->head;
    l->head = l->tail = NULL;
    return h;
}

static void reads_finish(struct meta_read *r, int status)
{
    while (r != NULL) {
        struct meta_read *next = r->next;
        r->cb(r->data, status);
        at_free(r);
        r = next;
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

static void on_barrier(struct raft_barrier *req, int status)
{
    struct meta *m = req->data;
    m->barrier_busy = false;
    if (status == 0)
        m->barrier_ok_term = m->barrier_issue_term;
    reads_finish(list_take(&m->inflight), barrier_status(m, status));
    if (!m->closing && m->waiting.head != NULL)
        barrier_start(m);
}

static void barrier_start(struct meta *m)
{
    AT_ASSERT(!m->barrier_busy);
    if (raft_state(&m->raft) != RAFT_LEADER) {
        reads_finish(list_take(&m->waiting), AT_ENOTLEADER);
        return;
    }
    m->inflight = m->waiting;
    m->waiting.head = m->waiting.tail = NULL;
    m->barrier.data = m;
    m->barrier_issue_term = m->raft.current_term;
    int rv = raft_barrier(&m->raft, &m->barrier, on_barrier);
    if (rv != 0) {
        reads_finish(list_take(&m->inflight), barrier_status(m, rv));
        return;
    }
    m->barrier_busy = true;
}

static void on_idle(uv_idle_t *h)
{
    struct meta *m = h->data;
    uv_idle_stop(h);
    reads_finish(list_take(&m->ready), 0);
    if (m->waiting.head != NULL && !m->barrier_busy && !m->closing)
        barrier_start(m);
}

/* see meta.h */
int meta_read_barrier(struct meta *m, meta_read_cb cb, void *data)
{
    if (m->closing)
        return AT_ESHUTDOWN;
    if (raft_state(&m->raft) != RAFT_LEADER)
        return AT_ENOTLEADER;
    struct meta_read *r = at_calloc(1, sizeof(*r));
    r->cb = cb;
    r->data = data;
    if (read_fast_ok(m)) {
        list_push(&m->ready, r);
    } else {
        /* reads arriving while a barrier flies wait for the next one */
        list_push(&m->waiting, r);
    }
    uv_idle_start(&m->idle, on_idle);
    return 0;
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
    at_free(w);
    cb(data, st, res, index);
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

/* Propose a packed command (buf from raft_malloc; ownership taken). */
static int propose(struct meta *m,
                   int rv,
                   void *buf,
                   size_t len,
                   meta_write_cb cb,
                   void *data)
{
    if (rv != 0)
        return rv;
    if (m->closing) {
        raft_free(buf);
        return AT_ESHUTDOWN;
    }
    struct meta_write *w = at_calloc(1, sizeof(*w));
    w->m = m;
    w->cb = cb;
    w->data = data;
    w->req.data = w;
    struct raft_buffer b = { buf, len };
    rv = raft_apply(&m->raft, &w->req, &b, 1, on_applied);
    if (rv != 0) {
        raft_free(buf); /* still ours when raft_apply fails */
        at_free(w);
        if (rv == RAFT_NOTLEADER)
            return AT_ENOTLEADER;
        if (rv == RAFT_SHUTDOWN)
            return AT_ESHUTDOWN;
        return rv == RAFT_NOMEM ? AT_ENOMEM : AT_EIO;
    }
    return 0;
}

#define WRITE_PROLOGUE                                             \
    char gen[40];                                                  \
    char errmsg[AT_ERRMSG_SIZE];                                   \
    const char *rid = request_id(request_id_in, gen, sizeof(gen)); \
    void *buf = NULL;                                              \
    size_t len = 0;                                                \
    if (rid == NULL)                                               \
        return AT_EINVAL;                                          \
    if (m->closing)                                                \
    return AT_ESHUTDOWN

/* see meta.h */
int meta_put_manifest(struct meta *m,
                      const char *request_id_in,
                      const struct meta_manifest_put *p,
                      meta_write_cb cb,
                      void *data)
{
    WRITE_PROLOGUE;
    int rv = meta__cmd_put_manifest(rid, p, raft_malloc, &buf, &len, errmsg);
    return propose(m, rv, buf, len, cb, data);
}

/* see meta.h */
int meta_blob_stored(struct meta *m,
                     const char *request_id_in,
                     const char *repo,
                     const struct at_digest *d,
                     uint64_t size,
                     meta_write_cb cb,
                     void *data)
{
    WRITE_PROLOGUE;
    int rv = meta__cmd_blob_stored(rid, repo, d, size, m->store_id, raft_malloc,
                                   &buf, &len, errmsg);
    return propose(m, rv, buf, len, cb, data);
}

/* see meta.h */
int meta_blob_mount(struct meta *m,
                    const char *request_id_in,
                    const char *repo,
                    const char *from_repo,
                    const struct at_digest *d,
                    meta_write_cb cb,
                    void *data)
{
    WRITE_PROLOGUE;
    int rv = meta__cmd_blob_mount(rid, repo, from_repo, d, raft_malloc, &buf,
                                  &len, errmsg);
    return propose(m, rv, buf, len, cb, data);
}

/* see meta.h */
int meta_blob_unlink(struct meta *m,
                     const char *request_id_in,
                     const char *repo,
                     const struct at_digest *d,
                     meta_write_cb cb,
                     void *data)
{
    WRITE_PROLOGUE;
    int rv =
        meta__cmd_blob_unlink(rid, repo, d, raft_malloc, &buf, &len, errmsg);
    return propose(m, rv, buf, len, cb, data);
}

/* see meta.h */
int meta_delete_manifest(struct meta *m,
                         const char *request_id_in,
                         const char *repo,
                         const struct at_digest *d,
                         meta_write_cb cb,
                         void *data)
{
    WRITE_PROLOGUE;
    int rv = meta__cmd_delete_manifest(rid, repo, d, raft_malloc, &buf, &len,
                                       errmsg);
    return propose(m, rv, buf, len, cb, data);
}

/* see meta.h */
int meta_delete_tag(struct meta *m,
                    const char *request_id_in,
                    const char *repo,
                    const char *tag,
                    meta_write_cb cb,
                    void *data)
{
    WRITE_PROLOGUE;
    int rv =
        meta__cmd_delete_tag(rid, repo, tag, raft_malloc, &buf, &len, errmsg);
    return propose(m, rv, buf, len, cb, data);
}

/* ---- close ---- */

static void on_idle_closed(uv_handle_t *h)
{
    struct meta *m = h->data;
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
    reads_finish(list_take(&m->inflight), AT_ESHUTDOWN);
    reads_finish(list_take(&m->waiting), AT_ESHUTDOWN);
    reads_finish(list_take(&m->ready), AT_ESHUTDOWN);
    uv_close((uv_handle_t *)&m->idle, on_idle_closed);
}

/* see meta.h: m is freed just before cb runs */
void meta_close(struct meta *m, void (*cb)(void *data), void *data)
{
    AT_ASSERT(!m->closing);
    m->closing = true;
    m->close_cb = cb;
    m->close_data = data;
    uv_idle_stop(&m->idle);
    reads_finish(list_take(&m->ready), AT_ESHUTDOWN);
    reads_finish(list_take(&m->waiting), AT_ESHUTDOWN);
    raft_close(&m->raft, on_raft_closed);
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
}
