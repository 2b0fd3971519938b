/* Authentication: who is asking. Verifies user names and passwords
 * (bcrypt, in the thread pool) against the replicated accounts (users,
 * robot accounts "robot$<name>") and a node-local htpasswd file, and
 * remembers verified credentials briefly; makes the hashes that new
 * accounts store; parses Basic credentials.
 *
 * What a caller may do once it knows who is asking (policies) is not
 * decided here.
 *
 * Threads: every call on the loop given to node_auth_new; bcrypt runs in
 * libuv's pool. Passwords and secrets are copied only into the pool jobs
 * that need them and wiped when those end; none is logged. */
#ifndef NODE_AUTH_H
#define NODE_AUTH_H

#include <uv.h>

#include "node/auth/limit.h"
#include "node/reply/context.h"

#define NODE_AUTH_PASSWORD_MAX 72 /* bcrypt reads no further: refused */
#define NODE_AUTH_ROBOT_PREFIX "robot$"
/* "robot$" + a robot name, or a user name, plus NUL */
#define NODE_AUTH_NAME_SIZE   (6 + META_ACCOUNT_NAME_MAX + 1)
#define NODE_AUTH_SECRET_SIZE 44 /* a robot secret: 43 chars + NUL */
#define NODE_AUTH_PENDING     1  /* node_auth_verify: the answer comes later */

struct node_auth;

/* One account as its source holds it. */
struct node_auth_record {
    const char *hash;    /* borrowed for the call: crypt(3) string */
    uint64_t version;    /* changes whenever the record changes */
    bool admin;          /* users only */
    uint64_t expires_ms; /* robots only: wall clock ms, 0 never */
};

/* Where the replicated accounts are read (the FSM on a node; a table in
 * tests). Both run on the loop. */
struct node_auth_source {
    /* The user (robot false) or robot (robot true; name without
     * "robot$") called name: fill *rec and return true, or false. */
    bool (*lookup)(void *data,
                   bool robot,
                   const char *name,
                   struct node_auth_record *rec);
    /* Call cb(cb_data, status) once this node has applied everything
     * committed before the call (a read barrier); 0 or AT_E* when cb
     * will not run. May be NULL. A failed verification asks it once, then
     * looks again: an account just added or changed on another node
     * verifies here at once. */
    int (*barrier)(void *data,
                   void (*cb)(void *cb_data, int status),
                   void *cb_data);
    void *data; /* borrowed */
};

struct node_auth_config {
    unsigned bcrypt_cost;  /* 4..31 (node_auth_hash) */
    uint64_t cache_ttl_ms; /* verified credentials kept; 0: none */
    const char *htpasswd;  /* borrowed; a file, or NULL/"" */
    struct node_auth_source source;
    uint64_t (*clock)(void); /* wall ms for robot expiry; NULL:
                                at_wall_ms */
    bool reload_on_sighup;   /* re-read htpasswd on SIGHUP */
};

/* Create the verifier on loop and read the htpasswd file, if any.
 * Returns 0, or AT_EINVAL (bad cost, unreadable or malformed htpasswd:
 * errmsg names the file and the line) with errmsg. */
int node_auth_new(struct node_auth **out,
                  uv_loop_t *loop,
                  const struct node_auth_config *cfg,
                  char *errmsg);
/* Stop: verifications and hashes still running end with AT_ESHUTDOWN (each
 * callback runs once, later); a freshly called one is refused. The
 * verifier frees itself once the pool has given every job back. NULL is
 * a no-op. */
void node_auth_close(struct node_auth *a);

/* Re-read the htpasswd file given at start. On error (errmsg) the table
 * read before stays. */
int node_auth_reload(struct node_auth *a, char *errmsg);

enum node_auth_kind {
    NODE_AUTH_USER = 1, /* a replicated user */
    NODE_AUTH_ROBOT,    /* a replicated robot account */
    NODE_AUTH_HTPASSWD, /* a user of this node's htpasswd file */
};

/* Who the credentials belong to. */
struct node_auth_identity {
    char name[NODE_AUTH_NAME_SIZE]; /* as given: "alice", "robot$ci" */
    enum node_auth_kind kind;
    bool admin; /* replicated users with the admin flag only */
};

/* Verify user and password (both borrowed for the call).
 * Returns 0 when credentials verified earlier are still cached and the
 * account has not changed since (*id filled, cb never runs);
 * NODE_AUTH_PENDING when the answer comes through cb, exactly once, later
 * (status 0 and the identity, borrowed for the call; AT_EINVAL for any
 * refusal: unknown name, wrong password, expired robot; AT_ESHUTDOWN);
 * AT_EINVAL at once for a password that cannot be right (empty, over
 * NODE_AUTH_PASSWORD_MAX) or a name over NODE_AUTH_NAME_SIZE; AT_ESHUTDOWN
 * once closing. Concurrent calls with the same credentials share one
 * bcrypt. */
typedef void (*node_auth_verify_cb)(void *data,
                                    int status,
                                    const struct node_auth_identity *id);
int node_auth_verify(struct node_auth *a,
                     const char *user,
                     const char *password,
                     struct node_auth_identity *id,
                     node_auth_verify_cb cb,
                     void *data);

/* Hash secret (borrowed for the call; 1..NODE_AUTH_PASSWORD_MAX bytes)
 * with bcrypt at the configured cost, in the pool. cb runs exactly once,
 * later: status 0 and the hash (borrowed for the call), or AT_EINVAL /
 * AT_ESHUTDOWN. Returns 0, or AT_EINVAL / AT_ESHUTDOWN (cb never runs). */
typedef void (*node_auth_hash_cb)(void *data, int status, const char *hash);
int node_auth_hash(struct node_auth *a,
                   const char *secret,
                   node_auth_hash_cb cb,
                   void *data);

struct node_auth_stats {
    uint64_t bcrypts;    /* bcrypt runs: verifications and new hashes */
    uint64_t cache_hits; /* verified from the cache */
    uint64_t verified;   /* verifications that succeeded */
    uint64_t refused;    /* verifications that failed */
    size_t cached;       /* credentials in the cache now */
    size_t htpasswd;     /* users in the htpasswd table */
};
void node_auth_stats_get(const struct node_auth *a, struct node_auth_stats *st);

/* The failed-login limiter of this node (limit.h; defaults), owned by a:
 * every place that checks a password asks it first and tells it the
 * outcome. */
struct node_auth_limit *node_auth_limiter(struct node_auth *a);

/* Each user of the htpasswd table, sorted by name (borrowed for the
 * call). */
void node_auth_htpasswd_users(const struct node_auth *a,
                              void (*each)(void *data, const char *name),
                              void *data);

/* ---- helpers without a verifier ---- */

/* Split an Authorization header value "Basic <base64(user:password)>"
 * (scheme case-insensitive) into user (usize bytes) and password (psize
 * bytes), NUL-terminated. Returns 0, or AT_EINVAL when the value is not
 * Basic, is malformed (bad base64, no ':', a NUL byte) or a part does not
 * fit. */
int node_auth_basic_parse(const char *value,
                          char *user,
                          size_t usize,
                          char *password,
                          size_t psize);

/* A new robot secret: 32 random bytes (getrandom) in unpadded base64url,
 * NUL-terminated. */
void node_auth_secret_new(char out[NODE_AUTH_SECRET_SIZE]);

/* The source of a node: its FSM (api->meta, read when asked: no account
 * while it is NULL) and its read barrier (node_api_read_barrier). */
struct node_auth_source node_auth_source_meta(struct node_api *api);

/* ---- the htpasswd table (also for tests and fuzzing) ----
 * "name:hash" lines; empty lines and lines starting with '#' are skipped,
 * a final CR is dropped. Names follow meta_user_name_ok, hashes are bcrypt
 * ("$2y$" or "$2b$", 60 bytes); anything else, or a name twice, is an
 * error naming the line. At most 100,000 users and 16 MiB. */
struct node_auth_htpasswd;
int node_auth_htpasswd_parse(const char *text,
                             size_t len,
                             struct node_auth_htpasswd **out,
                             char *errmsg);
/* The hash of user name, or NULL. */
const char *node_auth_htpasswd_find(const struct node_auth_htpasswd *h,
                                    const char *name);
size_t node_auth_htpasswd_count(const struct node_auth_htpasswd *h);
void node_auth_htpasswd_free(struct node_auth_htpasswd *h);

#endif /* NODE_AUTH_H */
