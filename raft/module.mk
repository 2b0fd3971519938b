RAFT_SRCS := raft/fsm.c raft/state.c raft/snapshot.c raft/meta.c raft/transport.c raft/command.c raft/glue.c raft/nodes.c raft/gc.c raft/settings.c
RAFT_ALLOW := common proto storage raft
