RAFT_SRCS := raft/bodies.c raft/state.c raft/nodes.c raft/settings.c raft/users.c raft/token_keys.c raft/policy.c raft/gc.c raft/fsm.c raft/snapshot.c raft/snapflat.c raft/snapfork.c raft/command.c raft/glue.c raft/guard.c raft/transport.c raft/read.c raft/propose.c raft/member.c raft/autopilot.c raft/disk.c raft/local.c raft/open.c
RAFT_ALLOW := common proto storage raft
