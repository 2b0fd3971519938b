/* The leader's side of sending a snapshot to a node that fell behind
 * (snapsend.c): libraft 0.15 reads the snapshot with io->snapshot_get and
 * sends its one buffer as it is. Ours is a descriptor of a snapshot file
 * (snapfile.h) the other node does not have, so the descriptor is
 * expanded into the file's bytes, read in the thread pool; any other
 * snapshot passes through untouched. The receiver restores the bytes as
 * any snapshot (its libraft stores them whole). */
#ifndef META_SNAPSEND_H
#define META_SNAPSEND_H

#include <raft.h>

/* io->snapshot_get on inner, with descriptors expanded from files in dir
 * (NULL: passed through). The same contract as inner's: 0 and cb later
 * (with the snapshot, or NULL and a failure: RAFT_IOERR when the file
 * cannot be read or does not match its descriptor), or an error now. */
int meta__snapsend_get(struct raft_io *inner,
                       const char *dir,
                       struct raft_io_snapshot_get *req,
                       raft_io_snapshot_get_cb cb);

#endif /* META_SNAPSEND_H */
