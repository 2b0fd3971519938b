/* The FSM's node table (nodes.c): raft id -> name, addresses, region. */
#ifndef META_NODES_H
#define META_NODES_H

#include "proto/proto.h"
#include "raft/state.h"

void meta__nodes_release(struct meta_fsm *f);
struct meta_noderec *meta__node_find(const struct meta_fsm *f, uint64_t id);
struct meta_noderec *meta__node_by_name(const struct meta_fsm *f,
                                        const char *name);
/* Does n hold what u would write? */
bool meta__node_equal(const struct meta_noderec *n,
                      const struct meta_node_upsert *u);
/* Apply helpers: return an enum meta_result. */
int meta__node_upsert(struct meta_fsm *f, const Atoll__NodeUpsert *o);
int meta__node_remove(struct meta_fsm *f, uint64_t id);

#endif /* META_NODES_H */
