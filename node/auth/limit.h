/* Failed-login limits: after too many wrong passwords for one user name, or
 * from one source address, within a window, further attempts are refused
 * at once, without bcrypt, until the window ends. Refusing early is the
 * point: each verification costs a bcrypt, the CPU an attacker wants to
 * burn, and guessing gets slow.
 *
 * Callers: check before verifying, then report the outcome (fail or ok).
 * Threads: one loop; no locking. */
#ifndef NODE_AUTH_LIMIT_H
#define NODE_AUTH_LIMIT_H

#include "common/common.h"

#define NODE_AUTH_LIMIT_ENTRIES   4096
#define NODE_AUTH_LIMIT_USER_MAX  10
#define NODE_AUTH_LIMIT_ADDR_MAX  30
#define NODE_AUTH_LIMIT_WINDOW_MS 60000
#define NODE_AUTH_LIMIT_KEY_MAX   128 /* longer names and addresses are cut */

struct node_auth_limit;

struct node_auth_limit_config {
    unsigned user_max;  /* failures per user name and window; 0: default */
    unsigned addr_max;  /* failures per address and window; 0: default */
    uint64_t window_ms; /* 0: default */
    size_t entries;     /* keys remembered, the oldest go first; 0: default */
    uint64_t (*clock)(void); /* monotonic ms; NULL: at_now_ms */
};

/* A limiter (cfg may be NULL: every default). Free with
 * node_auth_limit_free (NULL is a no-op). */
struct node_auth_limit *node_auth_limit_new(
    const struct node_auth_limit_config *cfg);
void node_auth_limit_free(struct node_auth_limit *l);

/* May user (a name as given, or NULL when none is known) try a password
 * from addr ("ip" or "ip:port", "[v6]:port"; the port is ignored; NULL:
 * none)? 0, or AT_EAGAIN when the user's or the address's failures in
 * the current window reached the limit (counted in the stats; the attempt
 * itself is not a failure). */
int node_auth_limit_check(struct node_auth_limit *l,
                          const char *user,
                          const char *addr);
/* Seconds until check would let user and addr try again (at least 1),
 * for Retry-After; 0 when it would now. */
uint64_t node_auth_limit_retry_after(struct node_auth_limit *l,
                                     const char *user,
                                     const char *addr);
/* A verification of user from addr failed: one more failure for each. */
void node_auth_limit_fail(struct node_auth_limit *l,
                          const char *user,
                          const char *addr);
/* A verification of user from addr succeeded: the user's failures are
 * forgotten, the address's are not. */
void node_auth_limit_ok(struct node_auth_limit *l,
                        const char *user,
                        const char *addr);

struct node_auth_limit_stats {
    uint64_t refused;  /* checks that answered AT_EAGAIN */
    uint64_t failures; /* failures reported */
    size_t tracked;    /* keys remembered now */
};
void node_auth_limit_stats_get(const struct node_auth_limit *l,
                               struct node_auth_limit_stats *st);

#endif /* NODE_AUTH_LIMIT_H */
