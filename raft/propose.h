/* What propose.c offers the other parts of struct meta. */
#ifndef META_PROPOSE_H
#define META_PROPOSE_H

#include "raft/meta.h"

/* Propose c on this node, never forwarded (membership and this node's own
 * record: the leader's business). Its request id may be NULL (no
 * deduplication). push: once committed, push the commit index to the
 * followers at once. Returns 0 (cb runs as for meta_propose) or AT_E*
 * with meta_errmsg(m) filled (cb never runs). */
int meta__propose_here(struct meta *m,
                       const struct meta_cmd *c,
                       bool push,
                       meta_write_cb cb,
                       void *data);

/* The tick: propose the parked writes (no leader when they came) once a
 * leader is known, here or through the forward hook; answer those past
 * their deadline with AT_ENOTLEADER. */
void meta__parked_run(struct meta *m);

/* meta_close: answer the forwarded and parked writes with AT_ESHUTDOWN,
 * orphaning the forward hook calls in flight. */
void meta__writes_stop(struct meta *m);

#endif /* META_PROPOSE_H */
