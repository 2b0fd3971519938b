/* The event loop's lateness. See loop_lag.h. */
#include "common/compat.h"

#define AT_LOG_COMP "node"

#include <sys/resource.h>
#include <time.h>

#include "node/loop_lag.h"

static const double bounds[NODE_LOOP_LAG_BUCKETS] = { 0.005, 0.01, 0.025,
                                                      0.05,  0.1,  0.25,
                                                      0.5,   1,    2.5 };

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The loop thread's page faults so far (minor and major). */
static uint64_t thread_faults(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) != 0)
        return 0;
    return (uint64_t)ru.ru_minflt + (uint64_t)ru.ru_majflt;
}

/* see loop_lag.h */
void node_loop_lag_record(struct node_loop_lag *l,
                          uint64_t late_ns,
                          uint64_t cpu_ns,
                          uint64_t interval_ns,
                          uint64_t faults)
{
    double s = (double)late_ns / 1e9;
    size_t b = 0;
    while (b < NODE_LOOP_LAG_BUCKETS && s > bounds[b])
        b++;
    l->count[b]++;
    l->sum_s += s;
    if (s > l->max_s)
        l->max_s = s;
    if (late_ns < (uint64_t)NODE_LOOP_LAG_STALL_MS * 1000000u)
        return;
    /* busy: the thread ran most of the interval */
    bool busy = cpu_ns * 4 >= interval_ns * 3;
    if (busy)
        l->stalls_busy++;
    else
        l->stalls_waiting++;
    l->stall_faults += faults;
    uint64_t now = l->last_ns;
    if (late_ns >= (uint64_t)NODE_LOOP_LAG_WARN_MS * 1000000u &&
        (l->last_log_ns == 0 || now - l->last_log_ns >= 10000000000u)) {
        l->last_log_ns = now;
        LOG_WARN(
            "the event loop was %.0f ms late (its thread ran %.0f of the "
            "last %.0f ms, with %" PRIu64
            " page faults: %s); requests "
            "waited as long",
            (double)late_ns / 1e6, (double)cpu_ns / 1e6,
            (double)interval_ns / 1e6, faults,
            busy ? "busy on the loop"
                 : "not running: CPU starvation or a blocking call");
    }
}

static void on_tick(uv_timer_t *t)
{
    struct node_loop_lag *l = t->data;
    uint64_t now = uv_hrtime();
    uint64_t cpu = thread_cpu_ns();
    uint64_t interval = now - l->last_ns;
    uint64_t due = (uint64_t)NODE_LOOP_LAG_TICK_MS * 1000000u;
    uint64_t late = interval > due ? interval - due : 0;
    uint64_t ran = cpu >= l->last_cpu_ns ? cpu - l->last_cpu_ns : 0;
    uint64_t faults = thread_faults();
    uint64_t faulted = faults >= l->last_faults ? faults - l->last_faults : 0;
    l->last_ns = now;
    l->last_cpu_ns = cpu;
    l->last_faults = faults;
    node_loop_lag_record(l, late, ran, interval, faulted);
}

/* see loop_lag.h */
struct node_loop_lag *node_loop_lag_start(uv_loop_t *loop)
{
    struct node_loop_lag *l = at_calloc(1, sizeof(*l));
    if (uv_timer_init(loop, &l->timer) != 0) {
        at_free(l);
        return NULL;
    }
    l->timer.data = l;
    l->last_ns = uv_hrtime();
    l->last_cpu_ns = thread_cpu_ns();
    l->last_faults = thread_faults();
    /* a repeating timer: each tick is due one period after the last ran */
    uv_timer_start(&l->timer, on_tick, NODE_LOOP_LAG_TICK_MS,
                   NODE_LOOP_LAG_TICK_MS);
    uv_unref((uv_handle_t *)&l->timer); /* never keeps the loop alive */
    return l;
}

static void on_closed(uv_handle_t *h)
{
    at_free(h->data);
}

/* see loop_lag.h */
void node_loop_lag_close(struct node_loop_lag *l)
{
    if (l == NULL || l->closing)
        return;
    l->closing = true;
    uv_timer_stop(&l->timer);
    uv_close((uv_handle_t *)&l->timer, on_closed);
}

/* see loop_lag.h */
void node_loop_lag_text(const struct node_loop_lag *l, struct at_buf *b)
{
    uint64_t cum = 0;
    at_buf_printf(b,
                  "# HELP atoll_loop_lag_seconds How late the event loop's "
                  "%d ms timer fired: how long requests waited behind it.\n"
                  "# TYPE atoll_loop_lag_seconds histogram\n",
                  NODE_LOOP_LAG_TICK_MS);
    for (size_t i = 0; i < NODE_LOOP_LAG_BUCKETS; i++) {
        cum += l->count[i];
        at_buf_printf(b,
                      "atoll_loop_lag_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                      bounds[i], cum);
    }
    cum += l->count[NODE_LOOP_LAG_BUCKETS];
    at_buf_printf(b,
                  "atoll_loop_lag_seconds_bucket{le=\"+Inf\"} %" PRIu64
                  "\n"
                  "atoll_loop_lag_seconds_sum %.6f\n"
                  "atoll_loop_lag_seconds_count %" PRIu64 "\n",
                  cum, l->sum_s, cum);
    at_buf_printf(b,
                  "# HELP atoll_loop_lag_max_seconds The longest lateness "
                  "of the event loop since the start.\n"
                  "# TYPE atoll_loop_lag_max_seconds gauge\n"
                  "atoll_loop_lag_max_seconds %.6f\n",
                  l->max_s);
    at_buf_printf(b,
                  "# HELP atoll_loop_stalls_total Turns of the event loop "
                  "late by %d ms or more: busy (a long callback) or "
                  "waiting (the thread did not run).\n"
                  "# TYPE atoll_loop_stalls_total counter\n"
                  "atoll_loop_stalls_total{kind=\"busy\"} %" PRIu64
                  "\n"
                  "atoll_loop_stalls_total{kind=\"waiting\"} %" PRIu64 "\n",
                  NODE_LOOP_LAG_STALL_MS, l->stalls_busy, l->stalls_waiting);
    at_buf_printf(b,
                  "# HELP atoll_loop_stall_faults_total Page faults the "
                  "event loop's thread took during those late turns (the "
                  "copy-on-write after a snapshot's fork shows here).\n"
                  "# TYPE atoll_loop_stall_faults_total counter\n"
                  "atoll_loop_stall_faults_total %" PRIu64 "\n",
                  l->stall_faults);
}
