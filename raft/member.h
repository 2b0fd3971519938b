/* What member.c offers the other parts of struct meta. */
#ifndef META_MEMBER_H
#define META_MEMBER_H

#include <uv.h>

#include "raft/meta.h"

/* The tick timer's callback (every 100 ms): apply waiters' deadlines, the
 * removed-node check, and on the leader its housekeeping (a barrier after
 * an election, its own record, promotions); on a follower, queued changes
 * fail with AT_ENOTLEADER. */
void meta__on_tick(uv_timer_t *t);

/* A node name or address from the network: at most 255 bytes, no space or
 * control character; required: not empty (NULL: !required). */
bool meta__field_ok(const char *s, bool required);

/* Once raft has closed: answer the queued membership changes with
 * AT_ESHUTDOWN. */
void meta__changes_stop(struct meta *m);

/* Free the ended leadership transfers (only once the raft io is closed:
 * their TimeoutNow may wait in its queue until then). */
void meta__xfers_free(struct meta *m);

#endif /* META_MEMBER_H */
