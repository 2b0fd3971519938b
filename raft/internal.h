/* Private interface of the raft/ module for meta.c: every part of the FSM
 * and of the libraft wiring. */
#ifndef META_INTERNAL_H
#define META_INTERNAL_H

#include "raft/command.h"
#include "raft/fsm.h"
#include "raft/gc.h"
#include "raft/glue.h"
#include "raft/nodes.h"
#include "raft/settings.h"
#include "raft/snapshot.h"
#include "raft/transport.h"

#endif /* META_INTERNAL_H */
