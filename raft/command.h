/* Builders of packed raft commands (command.c). */
#ifndef META_COMMAND_H
#define META_COMMAND_H

#include "proto/proto.h"
#include "raft/meta.h"

/* Pack a command into a buffer from alloc.
 * Its request_id must be NULL ("": no deduplication) or valid (see
 * meta__request_id_ok). PutManifest, BlobStored and BlobMount carry
 * meta__cmd_clock() as timestamp_ms (tests replace it), UserPut and
 * RobotPut as created_ms; BlobStored carries store. Returns 0, AT_EINVAL
 * or AT_ETOOBIG with errmsg filled. */
extern uint64_t (*meta__cmd_clock)(void);
bool meta__request_id_ok(const char *id);
int meta__cmd_pack(const struct meta_cmd *c,
                   const char *store,
                   proto_alloc_fn alloc,
                   void **out,
                   size_t *len,
                   char *errmsg);

#endif /* META_COMMAND_H */
