/* A snapshot the follower fetches itself (snaprecv.c).
 *
 * A leader sends a node that says it can fetch (the upgrade answer's
 * PROTO_PEER_SNAPSHOT_HEADER, raft/transport.c) the snapshot's 32-byte
 * descriptor (snapfile.h) instead of the file's bytes: libraft 0.15 sends
 * a snapshot as one message, which at a million tags is an 800 MB write
 * on the leader's loop and 800 MB of heap on both ends. The follower's
 * guard takes that InstallSnapshot before libraft sees it, has the node
 * fetch the file from the sender's peer listener (sendfile there,
 * written to a temporary file here), checks its length and hash, commits
 * it, and only then hands the message on: libraft stores the descriptor
 * and the restore maps the file, as for a snapshot of our own.
 *
 * libraft is told nothing until the file is here: a fetch that fails
 * drops the message, as a lost message, and the leader sends the
 * snapshot again after its install timeout. (Failing libraft's own
 * install instead would be unsafe in 0.15: replicationInstallSnapshot has
 * already moved the log to the snapshot's index, and a later message for
 * the same index is taken as done.) One fetch at a time: an
 * InstallSnapshot that arrives meanwhile is dropped. */
#ifndef META_SNAPRECV_H
#define META_SNAPRECV_H

#include <raft.h>

#include "raft/snapfile.h"

/* Fetch d's file from node from_id (raft address from_name) into fd (at
 * its start; at most d->len bytes). 0, then cb runs once on the loop
 * (status 0: d->len bytes written), or an AT_E* and cb never runs. */
typedef void (*meta_snapfetch_cb)(void *arg, int status);
typedef int (*meta_snapfetch_fn)(void *data,
                                 uint64_t from_id,
                                 const char *from_name,
                                 const struct meta_snapfile *d,
                                 int fd,
                                 meta_snapfetch_cb cb,
                                 void *arg);

struct meta_snaprecv_env {
    struct raft_io *inner; /* its async_work: the pool */
    const char *dir;       /* the raft dir (snapshot files) */
    meta_snapfetch_fn fetch;
    void *fetch_data;
    /* hand msg to raft (its recv callback), with ownership */
    void (*deliver)(void *data, struct raft_message *msg);
    void *deliver_data;
};

struct meta_snaprecv;

/* msg: an InstallSnapshot whose data decodes as d; it is taken (its data
 * and configuration are freed or delivered). *busy is the fetch in
 * flight (NULL: none); env must outlive it or be detached first. */
void meta__snaprecv(struct meta_snaprecv **busy,
                    const struct meta_snaprecv_env *env,
                    struct raft_message *msg,
                    const struct meta_snapfile *d);

/* At close: the fetch in flight (if any) delivers nothing; it frees its
 * message and itself once its callbacks have run. */
void meta__snaprecv_detach(struct meta_snaprecv **busy);

/* Free an InstallSnapshot message not handed to raft. */
void meta__snaprecv_drop(struct raft_message *msg);

#endif /* META_SNAPRECV_H */
