/* A snapshot's descriptor expanded before libraft sends it. See
 * snapsend.h.
 *
 * Happy path: inner's snapshot_get loads libraft's snapshot (the 32-byte
 * descriptor); the pool reads the file it names into one buffer and
 * checks its hash; back on the loop the descriptor is swapped for the
 * bytes and raft's callback runs.
 *
 * Failure modes: a file missing, short or damaged, or no memory for it:
 * the snapshot is freed and raft's callback gets RAFT_IOERR (it gives up
 * on this send and tries again later, as after any read error); the pool
 * cannot take the work: the same. */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include "raft/snapsend.h"

#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "raft/snapfile.h"

struct snapsend {
    struct raft_io_snapshot_get req; /* ours, to inner */
    struct raft_io_snapshot_get *orig;
    raft_io_snapshot_get_cb cb;
    struct raft_io *inner;
    const char *dir;
    struct raft_snapshot *snapshot;
    struct meta_snapfile d;
    struct raft_io_async_work work;
    void *bytes; /* raft_malloc'd: the file's */
    char errmsg[AT_ERRMSG_SIZE];
};

static void deliver(struct snapsend *s, struct raft_snapshot *snap, int status)
{
    struct raft_io_snapshot_get *orig = s->orig;
    raft_io_snapshot_get_cb cb = s->cb;
    free(s);
    cb(orig, snap, status);
}

static void snapshot_free(struct raft_snapshot *snap)
{
    raft_configuration_close(&snap->configuration);
    for (unsigned i = 0; i < snap->n_bufs; i++)
        raft_free(snap->bufs[i].base);
    raft_free(snap->bufs);
    raft_free(snap);
}

/* In the pool: the file, mapped and checked, copied into raft's memory. */
static int read_work(struct raft_io_async_work *w)
{
    struct snapsend *s = w->data;
    const void *p;
    int rv = meta__snapfile_map(s->dir, &s->d, &p, s->errmsg);
    if (rv != 0)
        return RAFT_IOERR;
    s->bytes = raft_malloc((size_t)s->d.len);
    if (s->bytes != NULL)
        memcpy(s->bytes, p, (size_t)s->d.len);
    else
        at_errmsg_printf(s->errmsg, "no memory for %llu bytes",
                         (unsigned long long)s->d.len);
    meta__snapfile_unmap(p, &s->d);
    return s->bytes != NULL ? 0 : RAFT_NOMEM;
}

static void read_done(struct raft_io_async_work *w, int status)
{
    struct snapsend *s = w->data;
    struct raft_snapshot *snap = s->snapshot;
    if (status != 0) {
        LOG_ERROR("sending snapshot %llu: %s", (unsigned long long)snap->index,
                  s->errmsg);
        snapshot_free(snap);
        deliver(s, NULL, RAFT_IOERR);
        return;
    }
    raft_free(snap->bufs[0].base);
    snap->bufs[0].base = s->bytes;
    snap->bufs[0].len = (size_t)s->d.len;
    LOG_INFO("sending snapshot %llu: %llu bytes read from its file",
             (unsigned long long)snap->index, (unsigned long long)s->d.len);
    deliver(s, snap, 0);
}

static void got(struct raft_io_snapshot_get *req,
                struct raft_snapshot *snap,
                int status)
{
    struct snapsend *s = req->data;
    if (status != 0 || snap == NULL || snap->n_bufs != 1 ||
        !meta__snapfile_desc_decode(snap->bufs[0].base, snap->bufs[0].len,
                                    &s->d)) {
        deliver(s, snap, status);
        return;
    }
    s->snapshot = snap;
    s->work.data = s;
    s->work.work = read_work;
    int rv = s->inner->async_work(s->inner, &s->work, read_done);
    if (rv != 0) {
        at_errmsg_printf(s->errmsg, "no thread pool: %s", raft_strerror(rv));
        read_done(&s->work, RAFT_IOERR);
    }
}

/* see snapsend.h */
int meta__snapsend_get(struct raft_io *inner,
                       const char *dir,
                       struct raft_io_snapshot_get *req,
                       raft_io_snapshot_get_cb cb)
{
    if (dir == NULL || inner->version < 2 || inner->async_work == NULL)
        return inner->snapshot_get(inner, req, cb);
    struct snapsend *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return RAFT_NOMEM;
    s->req.data = s;
    s->orig = req;
    s->cb = cb;
    s->inner = inner;
    s->dir = dir;
    req->cb = cb;
    int rv = inner->snapshot_get(inner, &s->req, got);
    if (rv != 0)
        free(s);
    return rv;
}
