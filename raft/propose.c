/* Writes: proposing a command here on the leader or through the forward
 * hook to the leader, the request ids, and what each outcome means.
 *
 * Happy path: meta_propose checks or makes the request id, packs the
 * command (command.c) into a buffer of logmem.h (freed with raft_free)
 * and, on the leader, raft_apply's it; the apply callback maps libraft's
 * status to AT_E*. A follower sends the packed command through
 * hooks->forward, then waits until it has applied the index the leader
 * answers, so what it wrote is visible here when cb runs.
 *
 * No leader: with leader_wait_ms, a write that finds no leader known, or
 * whose forward failed (AT_ENOTLEADER: never reached one; AT_EUNKNOWN: the
 * leader died with it), is parked with its packed command and proposed again
 * from the tick once a leader is known (here or elsewhere), until its deadline;
 * a failover then looks like a slow write. The request id makes a second
 * proposal of the same command harmless in any case. Once an attempt may
 * have been applied, the writer never hears a definite refusal
 * (fwd_status).
 *
 * Failure modes: not leader (AT_ENOTLEADER, nothing proposed), leadership
 * lost or I/O error after proposing (AT_EUNKNOWN: retry with the same
 * request id), closing (AT_ESHUTDOWN). Test builds (early-ack) acknowledge
 * before the commit. */
#include "common/compat.h"

#include <sys/random.h>

#define AT_LOG_COMP "raft"

#include "common/testbug.h"
#include "raft/propose.h"

#include "raft/command.h"
#include "raft/disk.h"
#include "raft/internal.h"
#include "raft/logmem.h"
#include "raft/read.h"

struct meta_write {
    struct raft_apply req; /* req.data points back here */
    struct meta *m;        /* borrowed */
    meta_write_cb cb;
    void *data;
    bool push;  /* committed: meta__commit_push (someone waits for
                   its apply on a follower) */
    bool early; /* test builds: acknowledged already (early-ack) */
};

/* A write forwarded to the leader, then waiting for the local apply. */
struct meta_fwd {
    struct at_list link; /* in m->fwds while the forward hook has not
                            answered */
    struct meta *m;      /* borrowed; NULL once orphaned by meta_close */
    void *buf;           /* owned (meta__logmem_alloc; raft_free) */
    size_t len;
    meta_write_cb cb;
    void *data;
    int result;
    uint64_t index;
    uint64_t deadline; /* uv_now ms: parked until then at most */
    int fail;          /* parked only to be answered with it (AT_ENOSPC) */
    bool maybe; /* an earlier attempt may have been applied (AT_EUNKNOWN) */
};

/* Test builds (early-ack): an acknowledgement given before commit, sent by
 * an apply waiter for index 0 (answered on the next loop turn). */
struct meta_early {
    meta_write_cb cb;
    void *data;
    uint64_t index;
};

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
    bool push = w->push && status == 0;
    bool early = w->early;
    at_free(w);
    if (!early)
        cb(data, st, res, index);
    if (push)
        meta__commit_push(m);
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

/* Propose a packed command here (buf from meta__logmem_alloc; ownership
 * taken). push: once it commits, push the commit index to the followers
 * at once (meta__commit_push), for a follower waiting to apply it. */
static int propose_local(struct meta *m,
                         void *buf,
                         size_t len,
                         bool push,
                         meta_write_cb cb,
                         void *data)
{
    if (m->closing) {
        at_errmsg_printf(m->errmsg, "closing");
        raft_free(buf);
        return AT_ESHUTDOWN;
    }
    if (!meta__raft_leading(&m->raft)) { /* also: stepping down (guard.h) */
        at_errmsg_printf(m->errmsg, "propose: not leader");
        raft_free(buf);
        return AT_ENOTLEADER;
    }
    struct meta_write *w = at_calloc(1, sizeof(*w));
    w->m = m;
    w->cb = cb;
    w->data = data;
    w->push = push;
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

/* The status f's writer hears: once an attempt may have been applied, a
 * later definite refusal (no leader, raft log disk full) no longer says
 * that nothing happened. Seen in a soak run: a forward committed by a
 * leader that died before answering, then no leader until the deadline,
 * was answered 503 UNAVAILABLE, and a read then returned its value. */
static int fwd_status(const struct meta_fwd *f, int status)
{
    if (f->maybe && (status == AT_ENOTLEADER || status == AT_ENOSPC))
        return AT_EUNKNOWN;
    return status;
}

/* Answer f's writer with status (made fwd_status) and free f. */
static void fwd_answer(struct meta_fwd *f,
                       int status,
                       int result,
                       uint64_t index)
{
    meta_write_cb cb = f->cb;
    void *cbdata = f->data;
    status = fwd_status(f, status);
    fwd_free(f);
    cb(cbdata, status, result, index);
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

/* A parked write proposed here once this node leads: its answer goes
 * through fwd_status too (an earlier attempt may have been applied). */
static void on_parked_applied(void *data,
                              int status,
                              int result,
                              uint64_t index)
{
    fwd_answer(data, status, result, index);
}

/* Park f (no leader to take it now) if its deadline allows: true. */
static bool park(struct meta *m, struct meta_fwd *f)
{
    if (m->closing || m->leader_wait_ms == 0 || uv_now(m->loop) >= f->deadline)
        return false;
    at_list_push_back(&m->parked, &f->link);
    return true;
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
    /* never reached a leader (it failed, or stepped down: nothing was
     * proposed), or lost on the way (it may have been): the next leader
     * takes it, and the request id answers a second proposal of a
     * committed command with the first one's result */
    if (status == AT_EUNKNOWN)
        f->maybe = true;
    if ((status == AT_ENOTLEADER || status == AT_EUNKNOWN) && park(m, f))
        return;
    f->result = result;
    f->index = index;
    if (status == 0)
        status = meta_wait_applied(m, index, META_WAIT_MS, on_fwd_applied, f);
    if (status != 0)
        fwd_answer(f, status, result, index);
}

/* A forwarded (or parked) write of the packed command buf (owned). */
static struct meta_fwd *fwd_new(struct meta *m,
                                void *buf,
                                size_t len,
                                meta_write_cb cb,
                                void *data)
{
    struct meta_fwd *f = at_calloc(1, sizeof(*f));
    f->m = m;
    f->buf = buf;
    f->len = len;
    f->cb = cb;
    f->data = data;
    return f;
}

/* Forward f to leader (f in m->fwds while the hook runs). 0, or the
 * hook's error with f out of every list. */
static int forward(struct meta *m, struct meta_fwd *f, uint64_t leader)
{
    at_list_push_front(&m->fwds, &f->link);
    int rv = m->hooks->forward(m->hooks_data, leader, f->buf, f->len,
                               on_forwarded, f);
    if (rv != 0) {
        at_errmsg_printf(m->errmsg, "forward to the leader: %s",
                         at_strerror(rv));
        at_list_remove(&f->link);
    }
    return rv;
}

/* Propose a packed command (buf as for propose_local): here on
 * the leader, else through the forward hook to the leader, else (no leader
 * known, leader_wait_ms) parked until one is. */
static int propose(struct meta *m,
                   void *buf,
                   size_t len,
                   meta_write_cb cb,
                   void *data)
{
    uint64_t leader = 0;
    struct meta_fwd *f;
    if (!m->closing && raft_state(&m->raft) == RAFT_LEADER &&
        !meta__disk_ok(m)) {
        /* the raft log's disk is below its reserve: refused, answered
         * from the tick (cb never runs inside meta_propose) */
        f = fwd_new(m, buf, len, cb, data);
        f->fail = AT_ENOSPC;
        at_list_push_back(&m->parked, &f->link);
        return 0;
    }
    if (m->closing || raft_state(&m->raft) == RAFT_LEADER || m->hooks == NULL ||
        m->hooks->forward == NULL ||
        (!meta__leader_known(m, &leader) && m->leader_wait_ms == 0))
        return propose_local(m, buf, len, false, cb, data);
    f = fwd_new(m, buf, len, cb, data);
    f->deadline = uv_now(m->loop) + m->leader_wait_ms;
    if (leader == 0) {
        at_list_push_back(&m->parked, &f->link);
        return 0;
    }
    int rv = forward(m, f, leader);
    if (rv == AT_ENOTLEADER && park(m, f))
        return 0;
    if (rv != 0)
        fwd_free(f);
    return rv;
}

/* see propose.h */
void meta__parked_run(struct meta *m)
{
    struct at_list todo;
    struct at_list *e;
    uint64_t leader = 0;
    bool here = raft_state(&m->raft) == RAFT_LEADER;
    if (at_list_empty(&m->parked))
        return;
    if (!here)
        meta__leader_known(m, &leader);
    at_list_init(&todo);
    at_list_move(&m->parked, &todo);
    while ((e = at_list_pop_front(&todo)) != NULL) {
        struct meta_fwd *f = AT_LIST_ENTRY(e, struct meta_fwd, link);
        int rv = AT_ENOTLEADER;
        if (f->fail != 0) {
            rv = f->fail;
        } else if (here) {
            void *buf = f->buf;
            f->buf = NULL; /* propose_local owns it from here */
            rv = propose_local(m, buf, f->len, false, on_parked_applied, f);
            if (rv == 0)
                continue;
        } else if (leader != 0) {
            rv = forward(m, f, leader);
            if (rv == 0)
                continue;
        }
        if (rv == AT_ENOTLEADER && f->fail == 0 && f->buf != NULL && park(m, f))
            continue;
        fwd_answer(f, rv, 0, 0);
    }
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
    if (!meta__disk_ok(m))
        return AT_ENOSPC;
    void *buf = meta__logmem_alloc(len);
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
    int rv = meta__cmd_pack(&cmd, m->store_id, meta__logmem_alloc, &buf, &len,
                            m->errmsg);
    if (rv != 0)
        return rv;
    return propose(m, buf, len, cb, data);
}

/* see propose.h */
int meta__propose_here(struct meta *m,
                       const struct meta_cmd *c,
                       bool push,
                       meta_write_cb cb,
                       void *data)
{
    void *buf = NULL;
    size_t len = 0;
    int rv = meta__cmd_pack(c, m->store_id, meta__logmem_alloc, &buf, &len,
                            m->errmsg);
    if (rv != 0)
        return rv;
    return propose_local(m, buf, len, push, cb, data);
}

/* see propose.h */
void meta__writes_stop(struct meta *m)
{
    struct at_list *e;
    /* forwarded writes: answer now, orphan the hook calls (their late
     * answers are dropped) */
    while ((e = at_list_pop_front(&m->fwds)) != NULL) {
        struct meta_fwd *f = AT_LIST_ENTRY(e, struct meta_fwd, link);
        f->m = NULL;
        f->cb(f->data, AT_ESHUTDOWN, 0, 0);
    }
    /* parked ones: not proposed since they were parked (an earlier
     * attempt may have been: AT_ESHUTDOWN says "outcome unknown") */
    while ((e = at_list_pop_front(&m->parked)) != NULL) {
        fwd_answer(AT_LIST_ENTRY(e, struct meta_fwd, link), AT_ESHUTDOWN, 0, 0);
    }
}
