/* The local queue of changes applied here, for the node's event stream
 * (events.c): each accepted PutManifest, DeleteManifest and DeleteTag, in
 * log order, while the node records them (meta_events_record). Local:
 * never in a snapshot, and what a restore replaces is not replayed. */
#ifndef META_EVENTS_H
#define META_EVENTS_H

#include "proto/proto.h"
#include "raft/state.h"

/* Changes waiting for the node to take them; more are counted as dropped
 * (the node takes them every loop turn, so this is a burst of applies in
 * one turn). */
#define META_EVENTS_MAX 100000

/* Before c applies at index (when recording): what a DeleteTag's tag
 * points to now, for the event. */
void meta__events_before(struct meta_fsm *f, const Atoll__Command *c);
/* After c applied with result res: queue it when it changed something. */
void meta__events_after(struct meta_fsm *f,
                        uint64_t index,
                        const Atoll__Command *c,
                        int res);
void meta__events_release(struct meta_fsm *f);
/* meta_events_record and meta_events_take (meta.h), on the FSM. */
void meta__events_record(struct meta_fsm *f, bool on);
size_t meta__events_take(struct meta_fsm *f,
                         struct meta_event **out,
                         uint64_t *dropped);

#endif /* META_EVENTS_H */
