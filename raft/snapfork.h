/* Snapshots encoded by a forked child (snapfork.c): the loop thread pays
 * for one fork(2), not for a copy of the state, at any state size.
 *
 * fork gives the child the state exactly as it is at that instant (the
 * pages are shared copy-on-write: the parent's later applies copy only the
 * pages they touch); the child encodes it (ATS2, straight from the frozen
 * state) and writes the encoding into a pipe; the parent reads it, on any
 * thread, into a buffer for libraft. This is what Redis does for its RDB files.
 */
#ifndef META_SNAPFORK_H
#define META_SNAPFORK_H

#include <sys/types.h>

#include "proto/proto.h"
#include "raft/state.h"

struct meta_snapfile;

struct meta_snap_fork {
    pid_t pid; /* the child; 0 when none */
    int fd;    /* read end of its pipe; -1 when none */
    /* after a collect: the child's private memory at its end (KiB: what it
     * allocated plus the shared pages it copied), 0 when unknown */
    uint64_t private_kb;
};

/* On the loop thread, between applies: fork a child that encodes f,
 * into the pipe (dir NULL: collect with meta_snap_fork_collect) or into
 * the snapshot file of index in dir (snapfile.h: collect with
 * meta_snap_fork_collect_file). Returns 0, or AT_ENOMEM / AT_EIO (pipe or
 * fork failed: errno in errmsg; the caller encodes another way). The
 * child blocks every signal, dies with its parent (PR_SET_PDEATHSIG) and
 * never returns: it _exits. */
int meta_snap_fork_start(struct meta_snap_fork *sf,
                         const struct meta_fsm *f,
                         const char *dir,
                         uint64_t index,
                         char *errmsg);

/* Any thread, once: read the child's encoding into one buffer from alloc
 * (caller owns; release frees it on failure; NULL, NULL: malloc, free),
 * then reap the child. Returns 0, the child's own encode
 * error (AT_ETOOBIG, ...), AT_EIO when the child died or wrote less than
 * it announced, AT_ENOMEM when alloc failed. The child is gone on
 * return, whatever the result. */
int meta_snap_fork_collect(struct meta_snap_fork *sf,
                           proto_alloc_fn alloc,
                           void (*release)(void *p),
                           void **out,
                           size_t *len,
                           char *errmsg);

/* Any thread, once, for a child started with a dir: wait until it wrote
 * its file (the temporary one: commit it with meta__snapfile_commit),
 * then reap it; fills d's len and hash (index is the caller's). Returns
 * 0, the child's own error (AT_ETOOBIG, AT_ENOSPC, AT_EIO: no file), or
 * AT_EIO when the child died. */
int meta_snap_fork_collect_file(struct meta_snap_fork *sf,
                                struct meta_snapfile *d,
                                char *errmsg);

/* Kill and reap a child not collected (no-op when none). */
void meta_snap_fork_abort(struct meta_snap_fork *sf);

#endif /* META_SNAPFORK_H */
