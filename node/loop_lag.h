/* The event loop's lateness (loop_lag.c): a timer every
 * NODE_LOOP_LAG_TICK_MS measures how late it fires, which is how long
 * every request waited behind whatever held the loop. Each late turn is
 * told apart by the loop thread's own CPU time over it: busy (a long
 * callback on the loop) or waiting (the thread did not run: CPU
 * starvation, or a blocking call). /metrics shows the histogram and the
 * stall counts; a turn late by NODE_LOOP_LAG_WARN_MS or more is logged (at
 * most one line per 10 s). */
#ifndef NODE_LOOP_LAG_H
#define NODE_LOOP_LAG_H

#include <stdint.h>
#include <uv.h>

#include "common/common.h"

#define NODE_LOOP_LAG_TICK_MS  50
#define NODE_LOOP_LAG_STALL_MS 100 /* counted as a stall */
#define NODE_LOOP_LAG_WARN_MS  250 /* logged */
#define NODE_LOOP_LAG_BUCKETS  9   /* 5 ms .. 2.5 s, then +Inf */

struct node_loop_lag {
    uv_timer_t timer;
    uint64_t last_ns;     /* uv_hrtime of the last tick */
    uint64_t last_cpu_ns; /* the loop thread's CPU time then */
    uint64_t last_faults; /* and its page faults */
    uint64_t last_log_ns;
    uint64_t count[NODE_LOOP_LAG_BUCKETS + 1]; /* per bucket, not cumulative */
    double sum_s, max_s;
    uint64_t stalls_busy, stalls_waiting;
    uint64_t stall_faults; /* page faults during the stalls */
    bool closing;
};

/* A monitor on loop, started; NULL when the timer cannot be made. */
struct node_loop_lag *node_loop_lag_start(uv_loop_t *loop);

/* Stop and free it (once its handle is closed). NULL: no-op. */
void node_loop_lag_close(struct node_loop_lag *l);

/* Account one tick: late_ns past its due time, the loop thread having run
 * cpu_ns and taken faults page faults over the interval_ns since the
 * previous tick (tests call it directly). */
void node_loop_lag_record(struct node_loop_lag *l,
                          uint64_t late_ns,
                          uint64_t cpu_ns,
                          uint64_t interval_ns,
                          uint64_t faults);

/* Append atoll_loop_lag_seconds (histogram), atoll_loop_lag_max_seconds,
 * atoll_loop_stalls_total{kind} and atoll_loop_stall_faults_total to
 * out. */
void node_loop_lag_text(const struct node_loop_lag *l, struct at_buf *out);

#endif /* NODE_LOOP_LAG_H */
