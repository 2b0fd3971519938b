/* A snapshot the follower fetches itself: see snaprecv.h.
 *
 * Happy path: an InstallSnapshot carrying a descriptor arrives; its file
 * is not here, so a temporary file is created and the node's fetch hook
 * streams the file from the sender into it; the pool checks its length
 * and hash, fsyncs and renames it (meta__snapfile_adopt); back on the
 * loop the message goes to raft as if it had just arrived.
 *
 * Failure modes: no fetch hook, a fetch already in flight, no temporary
 * file, the fetch refused or failed (the sender gone, its file pruned, a
 * short or long body), a length or hash mismatch, no pool: the message is
 * dropped (a lost message; the leader sends the snapshot again) and the
 * temporary file removed. Close detaches the fetch in flight: whatever
 * completes later delivers nothing. */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include "raft/snaprecv.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "common/common.h"

#define ADDRESS_MAX 255

struct meta_snaprecv {
    struct meta_snaprecv **busy;         /* NULL once detached */
    const struct meta_snaprecv_env *env; /* NULL once detached */
    struct raft_io *inner;
    char *dir; /* owned copy */
    struct raft_message msg;
    char address[ADDRESS_MAX + 1];
    struct meta_snapfile d;
    int fd;
    uint64_t t0; /* uv_hrtime at the start */
    struct raft_io_async_work work;
    char errmsg[AT_ERRMSG_SIZE];
};

/* see snaprecv.h */
void meta__snaprecv_drop(struct raft_message *msg)
{
    raft_configuration_close(&msg->install_snapshot.conf);
    raft_free(msg->install_snapshot.data.base);
    msg->install_snapshot.data.base = NULL;
}

/* The end of a fetch: deliver the message when ok, else drop it. */
static void finish(struct meta_snaprecv *r, bool ok)
{
    const struct meta_snaprecv_env *env = r->env;
    if (r->busy != NULL)
        *r->busy = NULL;
    if (ok && env != NULL) {
        r->msg.server_address = r->address;
        env->deliver(env->deliver_data, &r->msg);
    } else {
        meta__snaprecv_drop(&r->msg);
    }
    free(r->dir);
    free(r);
}

/* In the pool: the length and hash checked, the file committed. */
static int adopt_work(struct raft_io_async_work *w)
{
    struct meta_snaprecv *r = w->data;
    return meta__snapfile_adopt(r->dir, &r->d, r->errmsg) == 0 ? 0 : RAFT_IOERR;
}

static void adopted(struct raft_io_async_work *w, int status)
{
    struct meta_snaprecv *r = w->data;
    if (status != 0) {
        LOG_WARN(
            "snapshot %llu fetched from '%s' refused: %s; the leader "
            "sends it again",
            (unsigned long long)r->d.index, r->address, r->errmsg);
        finish(r, false);
        return;
    }
    LOG_INFO(
        "snapshot %llu fetched from '%s': %llu bytes in %llu ms, "
        "checked and stored",
        (unsigned long long)r->d.index, r->address,
        (unsigned long long)r->d.len,
        (unsigned long long)((uv_hrtime() - r->t0) / 1000000));
    finish(r, true);
}

static void fetched(void *arg, int status)
{
    struct meta_snaprecv *r = arg;
    close(r->fd);
    r->fd = -1;
    if (r->env == NULL || status != 0) {
        if (r->env != NULL)
            LOG_WARN(
                "fetching snapshot %llu from '%s': %s; the leader sends "
                "it again",
                (unsigned long long)r->d.index, r->address,
                at_strerror(status));
        meta__snapfile_tmp_remove(r->dir, &r->d);
        finish(r, false);
        return;
    }
    r->work.data = r;
    r->work.work = adopt_work;
    int rv = r->inner->async_work(r->inner, &r->work, adopted);
    if (rv != 0) {
        at_errmsg_printf(r->errmsg, "no thread pool: %s", raft_strerror(rv));
        meta__snapfile_tmp_remove(r->dir, &r->d);
        adopted(&r->work, RAFT_IOERR);
    }
}

/* see snaprecv.h */
void meta__snaprecv(struct meta_snaprecv **busy,
                    const struct meta_snaprecv_env *env,
                    struct raft_message *msg,
                    const struct meta_snapfile *d)
{
    const char *from = msg->server_address != NULL ? msg->server_address : "";
    if (env->fetch == NULL || *busy != NULL) {
        if (env->fetch == NULL)
            LOG_WARN(
                "snapshot %llu from '%s' is a descriptor, and this "
                "node does not fetch: dropped",
                (unsigned long long)d->index, from);
        meta__snaprecv_drop(msg);
        return;
    }
    if (meta__snapfile_exists(env->dir, d)) {
        LOG_INFO("snapshot %llu from '%s': its file is here already",
                 (unsigned long long)d->index, from);
        env->deliver(env->deliver_data, msg);
        return;
    }
    struct meta_snaprecv *r = calloc(1, sizeof(*r));
    char *dir = strdup(env->dir);
    if (r == NULL || dir == NULL) {
        free(r);
        free(dir);
        meta__snaprecv_drop(msg);
        return;
    }
    r->env = env;
    r->inner = env->inner;
    r->dir = dir;
    r->msg = *msg;
    r->msg.server_address = NULL;
    snprintf(r->address, sizeof(r->address), "%s", from);
    r->d = *d;
    r->t0 = uv_hrtime();
    r->fd = meta__snapfile_tmp_open(dir, d, r->errmsg);
    int rv = r->fd;
    if (r->fd >= 0)
        rv = env->fetch(env->fetch_data, msg->server_id, r->address, d, r->fd,
                        fetched, r);
    if (rv != 0) {
        LOG_WARN("snapshot %llu from '%s': cannot fetch: %s",
                 (unsigned long long)d->index, r->address,
                 r->fd < 0 ? r->errmsg : at_strerror(rv));
        if (r->fd >= 0) {
            close(r->fd);
            meta__snapfile_tmp_remove(dir, d);
        }
        finish(r, false);
        return;
    }
    r->busy = busy;
    *busy = r;
    LOG_INFO("fetching snapshot %llu (%llu bytes) from '%s'",
             (unsigned long long)d->index, (unsigned long long)d->len,
             r->address);
}

/* see snaprecv.h */
void meta__snaprecv_detach(struct meta_snaprecv **busy)
{
    struct meta_snaprecv *r = *busy;
    if (r == NULL)
        return;
    r->env = NULL;
    r->busy = NULL;
    *busy = NULL;
}
