/* Request rates per remote host (ratelimit.c), shared by every thread of
 * the process: replication jobs, pull-through imports and atoll copy
 * that talk to one registry together keep under the rate its rules ask
 * (zot's reqPerSec; Docker Hub's 429s come from bursts of tag listings).
 *
 * A request to a host at rate r per second is spaced 1/r s after the
 * one before it to that host, whichever thread made it: each call takes
 * the next free slot and sleeps until it. Hosts are remembered in a table
 * of NODE_RATE_HOSTS (the least recently used is forgotten: its next
 * request goes at once). */
#ifndef NODE_RATELIMIT_H
#define NODE_RATELIMIT_H

#include <stdatomic.h>

#include "common/common.h"

#define NODE_RATE_HOSTS 64
#define NODE_RATE_MAX   10000.0 /* requests per second: above, none */

/* Wait until a request to host (a URL's host[:port]) may go at rate per
 * second (0 or less: at once). Returns 0, or AT_ECANCELED when cancel
 * (may be NULL) was set while waiting (the slot stays taken). */
int node_rate_wait(const char *host, double rate, const atomic_bool *cancel);

/* The host[:port] of url ("scheme://host[:port]/...") into out (size
 * bytes, truncated). */
void node_rate_host_of(const char *url, char *out, size_t size);

#endif /* NODE_RATELIMIT_H */
