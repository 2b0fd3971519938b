/* The raft log's disk reserve (see meta.h, raft_reserve_bytes): the leader
 * refuses new proposals while the file system of the raft dir has less
 * free space than the reserve, so that libraft 0.15 never meets ENOSPC
 * with appends in flight (it crashes then: notes/raft-0.15.md, pitfall 2),
 * and takes them again by itself once space returns. */
#ifndef META_DISK_H
#define META_DISK_H

#include "raft/meta.h"

/* The tick: statvfs the raft dir at most once a second; log the crossing
 * of the reserve once each way (ERROR with the free space going down,
 * INFO coming back). A no-op with no reserve set. */
void meta__disk_refresh(struct meta *m);

/* Room for a new proposal: true with no reserve set, or while the last
 * reading was at or above it. */
bool meta__disk_ok(const struct meta *m);

#endif /* META_DISK_H */
