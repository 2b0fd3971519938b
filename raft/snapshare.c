/* Snapshot files between nodes, as struct meta offers them: the file a
 * peer asks for (served by the node's peer listener), whether this node
 * fetches files itself, and the wiring of the guard's two sides
 * (snapsend.h: to whom a leader sends descriptors; snaprecv.h: how this
 * node fetches one) to the transport and the node's hook. */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include "raft/internal.h"
#include "raft/meta.h"
#include "raft/snapfile.h"

/* see meta.h */
int meta_snapshot_file_open(struct meta *m,
                            uint64_t index,
                            uint64_t hash,
                            uint64_t *len)
{
    struct meta_snapfile d = { .index = index, .hash = hash };
    if (m->closing)
        return AT_ESHUTDOWN;
    return meta__snapfile_open(m->dir, &d, len);
}

/* see meta.h */
bool meta_snapshot_fetches(const struct meta *m)
{
    return m->guard.recv_env.fetch != NULL;
}

static bool peer_fetches(void *data, raft_id id)
{
    return meta__transport_fetches(data, id);
}

/* The guard's fetch (snaprecv.h) through the node's hook. */
static int fetch(void *data,
                 uint64_t from_id,
                 const char *from_name,
                 const struct meta_snapfile *d,
                 int fd,
                 meta_snapfetch_cb cb,
                 void *arg)
{
    struct meta *m = data;
    if (m->closing)
        return AT_ESHUTDOWN;
    return m->hooks->snapshot_fetch(m->hooks_data, from_id, from_name, d->index,
                                    d->hash, d->len, fd, cb, arg);
}

/* see internal.h */
void meta__snapshare_setup(struct meta *m, const struct meta_config *cfg)
{
    m->guard.snap_dir = m->dir;
    m->guard.recv_env.dir = m->dir;
    m->guard.peer_fetches = peer_fetches;
    m->guard.peer_fetches_data = &m->transport;
    if (m->hooks != NULL && m->hooks->snapshot_fetch != NULL &&
        !cfg->no_snapshot_fetch) {
        m->guard.recv_env.fetch = fetch;
        m->guard.recv_env.fetch_data = m;
    }
}
