/* The Figure 8 schedule on libraft 0.15 as shipped, without atoll's commit
 * guard: the violation happens and is asserted (F6). The guarded build is
 * test_figure8; this one keeps showing that the guard is what closes it,
 * and fails the day a libraft upgrade fixes replicationQuorum (then drop
 * the guard: see raft/guard.h). */
#define FIG8_EXPECT_VIOLATION 1
#include "tests/unit/raft/test_figure8.c"
