/* What read.c offers the other parts of struct meta: the commit push, the
 * apply waiters, and the reads' part of closing. */
#ifndef META_READ_H
#define META_READ_H

#include "raft/meta.h"

/* Followers learn the commit index only from the leader's next
 * AppendEntries, which in an idle cluster is the next heartbeat: a follower
 * waiting to apply a forwarded write or to reach a read index would wait up
 * to a heartbeat. On the leader, append a barrier that sends that message
 * now (one barrier covers every write committed meanwhile; one in flight
 * is followed by another). */
void meta__commit_push(struct meta *m);

/* The tick: send the parked follower reads (no leader when they came, or
 * their read-index RPC failed) once a leader is known; answer those past
 * their deadline with AT_ENOTLEADER (AT_ESHUTDOWN when closing). */
void meta__rix_parked_run(struct meta *m);

/* Answer the apply waiters (meta_wait_applied) whose index is applied or
 * whose deadline passed; every one, with AT_ESHUTDOWN, when shutdown. */
void meta__waiters_run(struct meta *m, bool shutdown);

/* meta_close: answer the queued reads, the undecided rounds and the
 * follower reads with AT_ESHUTDOWN, orphaning the hook calls in flight. */
void meta__reads_stop(struct meta *m);

/* Once raft has closed: answer what is left (the last barrier's reads, the
 * apply waiters) with AT_ESHUTDOWN. */
void meta__reads_closed(struct meta *m);

#endif /* META_READ_H */
