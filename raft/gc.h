/* Garbage collection in the FSM (gc.c): candidates, the GcSweep apply and
 * the queue of local copies to delete. */
#ifndef META_GC_H
#define META_GC_H

#include "proto/proto.h"
#include "raft/state.h"

/* Blobs no manifest references whose
 * stored_ms is at least grace_ms before now_ms, in digest order. */
void meta_fsm_gc_candidates(struct meta_fsm *f,
                            uint64_t now_ms,
                            uint64_t grace_ms,
                            meta_blob_cb each,
                            void *data);
/* Untagged manifests collectable by policy (see GcSweep in atoll.proto),
 * at most max of them, ordered so that an index comes before the children
 * it frees (in rounds), then by repository and digest. */
void meta_fsm_gc_manifest_candidates(struct meta_fsm *f,
                                     uint64_t now_ms,
                                     uint64_t grace_ms,
                                     size_t max,
                                     meta_gc_manifest_cb each,
                                     void *data);
/* Apply a GcSweep (timestamp now_ms); returns an enum meta_result. */
int meta__gc_sweep(struct meta_fsm *f,
                   uint64_t now_ms,
                   const Atoll__GcSweep *o);
/* Move the pending removed digests to *out (caller frees); the count. */
size_t meta_fsm_gc_take_removed(struct meta_fsm *f,
                                struct meta_gc_removed **out);
/* Queue a removed digest for local deletion (bounded: drops beyond 1M). */
void meta__gc_removed_push(struct meta_fsm *f,
                           const struct at_digest *d,
                           uint64_t cutoff_ms);
/* Recount every blob's mrefs from the manifests (after a restore). */
void meta__gc_recount(struct meta_fsm *f);

#endif /* META_GC_H */
