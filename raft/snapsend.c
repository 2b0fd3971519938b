/* A snapshot's descriptor expanded before it is sent. See snapsend.h.
 *
 * Happy path: the pool reads the file the descriptor names into one
 * buffer (raft_malloc'd) and checks its hash; back on the loop the
 * message, with the bytes as its data, goes to inner's send; when that
 * completes the buffer is freed (off the loop, heap.h) and raft's
 * callback runs.
 *
 * Failure modes: a file missing, short or damaged, or no memory for it,
 * or no pool: raft's callback gets RAFT_IOERR (libraft aborts this send
 * and tries again later, as after any failed send); inner's send refuses
 * the message: raft's callback gets that status. */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include "raft/snapsend.h"

#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "raft/snapfile.h"

#define ADDRESS_MAX 255

struct snapsend {
    struct raft_io_send req; /* ours, to inner */
    struct raft_io_send *orig;
    raft_io_send_cb cb;
    struct raft_io *inner;
    const char *dir;
    struct raft_message msg; /* raft's, copied; data swapped */
    char address[ADDRESS_MAX + 1];
    struct meta_snapfile d;
    struct raft_io_async_work work;
    void *bytes; /* raft_malloc'd: the file's */
    char errmsg[AT_ERRMSG_SIZE];
};

static void deliver(struct snapsend *s, int status)
{
    struct raft_io_send *orig = s->orig;
    raft_io_send_cb cb = s->cb;
    raft_free(s->bytes); /* a big block: freed off the loop (heap.h) */
    free(s);
    cb(orig, status);
}

static void sent(struct raft_io_send *req, int status)
{
    deliver(req->data, status);
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
    if (status != 0) {
        LOG_ERROR("sending snapshot %llu: %s", (unsigned long long)s->d.index,
                  s->errmsg);
        deliver(s, RAFT_IOERR);
        return;
    }
    LOG_INFO(
        "sending snapshot %llu to node %llu: %llu bytes read from its "
        "file (it does not fetch files)",
        (unsigned long long)s->d.index, (unsigned long long)s->msg.server_id,
        (unsigned long long)s->d.len);
    s->msg.server_address = s->address;
    s->msg.install_snapshot.data.base = s->bytes;
    s->msg.install_snapshot.data.len = (size_t)s->d.len;
    s->req.data = s;
    int rv = s->inner->send(s->inner, &s->req, &s->msg, sent);
    if (rv != 0)
        deliver(s, rv);
}

/* see snapsend.h */
int meta__snapsend_expand(struct raft_io *inner,
                          const char *dir,
                          struct raft_io_send *req,
                          const struct raft_message *msg,
                          raft_io_send_cb cb)
{
    const struct raft_buffer *data = &msg->install_snapshot.data;
    if (inner->version < 2 || inner->async_work == NULL)
        return inner->send(inner, req, msg, cb); /* no pool: as it is */
    struct snapsend *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return RAFT_NOMEM;
    if (!meta__snapfile_desc_decode(data->base, data->len, &s->d)) {
        free(s);
        return RAFT_INVALID;
    }
    s->orig = req;
    s->cb = cb;
    s->inner = inner;
    s->dir = dir;
    s->msg = *msg;
    snprintf(s->address, sizeof(s->address), "%s",
             msg->server_address != NULL ? msg->server_address : "");
    s->msg.server_address = NULL;
    req->cb = cb;
    s->work.data = s;
    s->work.work = read_work;
    int rv = inner->async_work(inner, &s->work, read_done);
    if (rv != 0)
        free(s);
    return rv;
}
