/* The leader's side of sending a snapshot to a node that fell behind
 * (snapsend.c). libraft 0.15 reads the snapshot with io->snapshot_get and
 * sends its one buffer as an InstallSnapshot. Ours is a 32-byte
 * descriptor of a snapshot file (snapfile.h). A node that says it fetches
 * snapshot files (snaprecv.h) gets the descriptor as it is and fetches
 * the file from our peer listener; for any other node (an older release,
 * or one started with snapshot_fetch off) the descriptor is expanded into
 * the file's bytes, read in the thread pool, just before the message is
 * written, and the receiver restores them as any snapshot. */
#ifndef META_SNAPSEND_H
#define META_SNAPSEND_H

#include <raft.h>

/* io->send on inner of msg, an InstallSnapshot whose data is the
 * descriptor of a file in dir, with the file's bytes in its place. The
 * same contract as inner's send: 0 and cb later (RAFT_IOERR when the file
 * cannot be read or does not match its descriptor, else inner's status),
 * or an error now. msg is copied (its address too); its configuration
 * and descriptor are raft's and stay valid until cb (libraft frees the
 * snapshot they belong to there). */
int meta__snapsend_expand(struct raft_io *inner,
                          const char *dir,
                          struct raft_io_send *req,
                          const struct raft_message *msg,
                          raft_io_send_cb cb);

#endif /* META_SNAPSEND_H */
