/* Request rates per remote host: see ratelimit.h. */
#include "common/compat.h"

#include <pthread.h>
#include <time.h>

#include "node/ratelimit.h"

struct slot {
    char host[256];   /* "" = free */
    uint64_t next_us; /* the next request's earliest time (monotonic) */
    uint64_t used_us; /* last use, for the LRU */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct slot slots[NODE_RATE_HOSTS];

static uint64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* host's slot, or the least recently used one made host's. Under mu. */
static struct slot *slot_of(const char *host)
{
    struct slot *lru = &slots[0];

    for (size_t i = 0; i < NODE_RATE_HOSTS; i++) {
        if (strcmp(slots[i].host, host) == 0)
            return &slots[i];
        if (slots[i].used_us < lru->used_us)
            lru = &slots[i];
    }
    snprintf(lru->host, sizeof(lru->host), "%s", host);
    lru->next_us = 0;
    return lru;
}

/* see ratelimit.h */
void node_rate_host_of(const char *url, char *out, size_t size)
{
    const char *p = strstr(url, "://");
    size_t n;

    p = p != NULL ? p + 3 : url;
    n = strcspn(p, "/?#");
    snprintf(out, size, "%.*s", (int)AT_MIN(n, size - 1), p);
}

/* see ratelimit.h */
int node_rate_wait(const char *host, double rate, const atomic_bool *cancel)
{
    uint64_t now, at, gap;
    struct slot *s;

    if (rate <= 0 || rate > NODE_RATE_MAX)
        return 0;
    gap = (uint64_t)(1e6 / rate);
    pthread_mutex_lock(&mu);
    now = now_us();
    s = slot_of(host);
    at = AT_MAX(now, s->next_us);
    s->next_us = at + gap;
    s->used_us = now;
    pthread_mutex_unlock(&mu);
    /* sleep in slices of at most 50 ms, to see a cancel */
    while ((now = now_us()) < at) {
        uint64_t d = AT_MIN(at - now, 50000u);
        struct timespec ts = { (time_t)(d / 1000000u),
                               (long)(d % 1000000u) * 1000 };

        if (cancel != NULL && atomic_load(cancel))
            return AT_ECANCELED;
        nanosleep(&ts, NULL);
    }
    return 0;
}
