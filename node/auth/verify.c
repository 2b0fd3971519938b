/* The verifier: checks a name and password against the account it names
 * and answers who it is, hashes new secrets, and keeps the htpasswd table.
 *
 * Happy path: resolve the name (a robot "robot$<name>", else a replicated
 * user, else an htpasswd user), look in the cache (a hit answers at once),
 * else join the job already checking the same credentials or queue a new
 * one: bcrypt in the pool, then, on the loop, the account is resolved
 * again and the answer goes to every waiter and into the cache.
 *
 * Failure modes: an unknown name is checked against a dummy hash, so it
 * costs what a wrong password costs. A job whose account changed while it
 * hashed hashes again (the answer is for the account as it is). A refusal
 * asks the source for a read barrier once and looks again: an account
 * added or changed on another node a moment ago is found. A robot past
 * its expiry resolves as unknown. Closing answers AT_ESHUTDOWN to jobs
 * that come back from the pool, and the verifier frees itself when the
 * last one has.
 *
 * A job's states, one move at a time (job_move checks the table):
 *   HASHING --pool done, account changed--> HASHING
 *   HASHING --refused, barrier once-----> BARRIER --account changed--> HASHING
 *   HASHING, BARRIER --answer-----------> DONE */
#define AT_LOG_COMP "auth"
#include "common/compat.h"

#include "node/auth/internal.h"

#define REHASH_MAX 3 /* hashes of one job when its account keeps changing */

enum job_state {
    JOB_HASHING,
    JOB_BARRIER,
    JOB_DONE,
};

static const char *const job_state_name[] = { "hashing", "barrier", "done" };

/* allowed[from] has bit `to` set for each legal move */
static const unsigned job_allowed[] = {
    [JOB_HASHING] = 1u << JOB_HASHING | 1u << JOB_BARRIER | 1u << JOB_DONE,
    [JOB_BARRIER] = 1u << JOB_HASHING | 1u << JOB_DONE,
    [JOB_DONE] = 0,
};

/* An account as resolved at one moment; kind 0: none (or expired). */
struct cred {
    enum node_auth_kind kind;
    uint64_t version;
    bool admin;
    char hash[NODE_AUTH_HASH_SIZE];
};

struct waiter {
    struct at_list link;
    node_auth_verify_cb cb;
    void *data; /* borrowed */
};

/* One bcrypt check, shared by every caller with the same credentials. */
struct job {
    uv_work_t work;
    struct node_auth *a; /* borrowed */
    enum job_state state;
    struct node_auth_key key;
    char user[NODE_AUTH_NAME_SIZE];
    char password[NODE_AUTH_PASSWORD_MAX + 1]; /* wiped when freed */
    struct cred cred;                          /* what the pool checks */
    bool match;                                /* the pool's answer */
    unsigned hashes;
    bool barrier_asked;
    struct at_list waiters; /* struct waiter (owned) */
};

/* One new hash (node_auth_hash). */
struct hash_job {
    uv_work_t work;
    struct node_auth *a; /* borrowed */
    unsigned cost;
    char secret[NODE_AUTH_PASSWORD_MAX + 1]; /* wiped when freed */
    char hash[NODE_AUTH_HASH_SIZE];
    int rv;
    node_auth_hash_cb cb;
    void *data; /* borrowed */
};

struct node_auth {
    uv_loop_t *loop; /* borrowed */
    unsigned cost;
    uint64_t (*clock)(void);
    struct node_auth_source source;
    char *htpasswd_file;                 /* owned, NULL if none */
    struct node_auth_htpasswd *htpasswd; /* owned, NULL if none */
    uint64_t htpasswd_version;           /* bumped by every load */
    char dummy[NODE_AUTH_HASH_SIZE];     /* checked for unknown names */
    struct node_auth_cache *cache;       /* owned */
    struct node_auth_limit *limit;       /* owned */
    struct at_map inflight; /* cache key -> struct job (borrowed) */
    unsigned jobs;          /* jobs alive (pool, barrier, answering) */
    uv_signal_t sighup;
    bool sighup_open;
    bool closing;
    struct node_auth_stats st;
};

static void job_move(struct job *j, enum job_state to)
{
    if ((job_allowed[j->state] & (1u << to)) == 0) {
        LOG_ERROR("auth job: illegal move %s -> %s", job_state_name[j->state],
                  job_state_name[to]);
        AT_ASSERT(!"illegal auth job move");
    }
    j->state = to;
}

static void auth_free(struct node_auth *a)
{
    node_auth__cache_free(a->cache);
    node_auth_limit_free(a->limit);
    node_auth_htpasswd_free(a->htpasswd);
    at_map_release(&a->inflight);
    at_free(a->htpasswd_file);
    at_free(a);
}

/* Free a closing verifier once nothing refers to it any more. */
static void maybe_free(struct node_auth *a)
{
    if (a->closing && a->jobs == 0 && !a->sighup_open)
        auth_free(a);
}

static void on_sighup_closed(uv_handle_t *h)
{
    struct node_auth *a = h->data;

    a->sighup_open = false;
    maybe_free(a);
}

/* ---- resolving a name ---- */

static void cred_fill(struct cred *c,
                      enum node_auth_kind kind,
                      const struct node_auth_record *r)
{
    size_t n = strlen(r->hash);

    c->kind = kind;
    c->version = r->version;
    c->admin = kind == NODE_AUTH_USER && r->admin;
    if (n >= sizeof(c->hash))
        c->kind = 0; /* no hash this long verifies */
    else
        memcpy(c->hash, r->hash, n + 1);
}

/* The account user names now (c->kind 0: none, or an expired robot). */
static void resolve(struct node_auth *a, const char *user, struct cred *c)
{
    static const char prefix[] = NODE_AUTH_ROBOT_PREFIX;
    struct node_auth_record r;
    const char *h;

    memset(c, 0, sizeof(*c));
    if (strncmp(user, prefix, sizeof(prefix) - 1) == 0) {
        memset(&r, 0, sizeof(r));
        if (a->source.lookup != NULL &&
            a->source.lookup(a->source.data, true, user + sizeof(prefix) - 1,
                             &r) &&
            (r.expires_ms == 0 || a->clock() < r.expires_ms))
            cred_fill(c, NODE_AUTH_ROBOT, &r);
        return;
    }
    memset(&r, 0, sizeof(r));
    if (a->source.lookup != NULL &&
        a->source.lookup(a->source.data, false, user, &r)) {
        cred_fill(c, NODE_AUTH_USER, &r);
        return;
    }
    h = node_auth_htpasswd_find(a->htpasswd, user);
    if (h != NULL) {
        r.hash = h;
        r.version = a->htpasswd_version;
        cred_fill(c, NODE_AUTH_HTPASSWD, &r);
    }
}

static bool cred_same(const struct cred *x, const struct cred *y)
{
    return x->kind == y->kind && x->version == y->version;
}

static void identity_of(const char *user,
                        const struct cred *c,
                        struct node_auth_identity *id)
{
    memset(id, 0, sizeof(*id));
    snprintf(id->name, sizeof(id->name), "%s", user);
    id->kind = c->kind;
    id->admin = c->admin;
}

/* ---- verification jobs ---- */

static void job_work(uv_work_t *w)
{
    struct job *j = w->data;
    const char *hash = j->cred.kind != 0 ? j->cred.hash : j->a->dummy;

    j->match = node_auth__bcrypt_check(j->password, hash);
}

static void job_after(uv_work_t *w, int status);

static void job_queue(struct job *j)
{
    j->hashes++;
    j->work.data = j;
    int rv = uv_queue_work(j->a->loop, &j->work, job_work, job_after);
    AT_ASSERT(rv == 0); /* only fails for a NULL work callback */
}

/* Answer every waiter (they may call into the verifier), then free j. */
static void job_finish(struct job *j, int status)
{
    struct node_auth *a = j->a;
    struct node_auth_identity id;
    struct at_list *l;

    job_move(j, JOB_DONE);
    at_map_del(&a->inflight, j->key.bytes, j->key.len);
    if (status == 0) {
        identity_of(j->user, &j->cred, &id);
        node_auth__cache_put(a->cache, &j->key, &id, j->cred.version,
                             uv_now(a->loop));
    }
    while ((l = at_list_pop_front(&j->waiters)) != NULL) {
        struct waiter *wt = AT_LIST_ENTRY(l, struct waiter, link);
        if (status == 0)
            a->st.verified++;
        else
            a->st.refused++;
        wt->cb(wt->data, status, status == 0 ? &id : NULL);
        at_free(wt);
    }
    explicit_bzero(j, sizeof(*j));
    at_free(j);
    a->jobs--;
    maybe_free(a);
}

/* The account as it is now decides: hash again if it changed, else
 * answer (match: verified), asking for a barrier first when refused. */
static void job_decide(struct job *j);

static void on_barrier(void *data, int status)
{
    struct job *j = data;

    AT_UNUSED(status); /* without a barrier, the local state decides */
    if (j->a->closing)
        job_finish(j, AT_ESHUTDOWN);
    else
        job_decide(j);
}

static void job_decide(struct job *j)
{
    struct node_auth *a = j->a;
    struct cred now;

    resolve(a, j->user, &now);
    if (!cred_same(&now, &j->cred)) {
        /* changed while hashing: the answer must be about it as it is */
        if (now.kind != 0 && j->hashes < REHASH_MAX) {
            j->cred = now;
            job_move(j, JOB_HASHING);
            job_queue(j);
            return;
        }
        j->cred = now;
        j->match = false;
    }
    if (j->match && j->cred.kind != 0) {
        job_finish(j, 0);
        return;
    }
    if (!j->barrier_asked && a->source.barrier != NULL) {
        j->barrier_asked = true;
        job_move(j, JOB_BARRIER);
        /* on_barrier may run inside the call; j is its own then */
        if (a->source.barrier(a->source.data, on_barrier, j) == 0)
            return;
    }
    job_finish(j, AT_EINVAL);
}

static void job_after(uv_work_t *w, int status)
{
    struct job *j = w->data;

    AT_UNUSED(status); /* jobs are never cancelled */
    j->a->st.bcrypts++;
    if (j->a->closing) {
        job_finish(j, AT_ESHUTDOWN);
        return;
    }
    job_decide(j);
}

/* see auth.h */
int node_auth_verify(struct node_auth *a,
                     const char *user,
                     const char *password,
                     struct node_auth_identity *id,
                     node_auth_verify_cb cb,
                     void *data)
{
    size_t plen = strlen(password);
    struct node_auth_key key;
    const struct node_auth_identity *hit;
    struct cred c;
    struct waiter *wt;
    struct job *j;

    if (a->closing)
        return AT_ESHUTDOWN;
    if (plen == 0 || plen > NODE_AUTH_PASSWORD_MAX || user[0] == '\0' ||
        strlen(user) >= NODE_AUTH_NAME_SIZE) {
        a->st.refused++;
        return AT_EINVAL;
    }
    resolve(a, user, &c);
    node_auth__cache_key(a->cache, user, password, &key);
    hit = c.kind != 0 ? node_auth__cache_get(a->cache, &key, c.kind, c.version,
                                             uv_now(a->loop))
                      : NULL;
    if (hit != NULL) {
        *id = *hit;
        a->st.cache_hits++;
        a->st.verified++;
        return 0;
    }
    wt = at_calloc(1, sizeof(*wt));
    wt->cb = cb;
    wt->data = data;
    j = at_map_get(&a->inflight, key.bytes, key.len);
    if (j != NULL) {
        at_list_push_back(&j->waiters, &wt->link);
        return NODE_AUTH_PENDING;
    }
    j = at_calloc(1, sizeof(*j));
    j->a = a;
    j->state = JOB_HASHING;
    j->key = key;
    memcpy(j->user, user, strlen(user) + 1);
    memcpy(j->password, password, plen + 1);
    j->cred = c;
    at_list_init(&j->waiters);
    at_list_push_back(&j->waiters, &wt->link);
    at_map_put(&a->inflight, key.bytes, key.len, j);
    a->jobs++;
    job_queue(j);
    return NODE_AUTH_PENDING;
}

/* ---- new hashes ---- */

static void hash_work(uv_work_t *w)
{
    struct hash_job *h = w->data;

    h->rv =
        node_auth__bcrypt_hash(h->secret, h->cost, h->hash, sizeof(h->hash));
}

static void hash_after(uv_work_t *w, int status)
{
    struct hash_job *h = w->data;
    struct node_auth *a = h->a;
    int rv = a->closing ? AT_ESHUTDOWN : h->rv;

    AT_UNUSED(status);
    a->st.bcrypts++;
    h->cb(h->data, rv, rv == 0 ? h->hash : NULL);
    explicit_bzero(h, sizeof(*h));
    at_free(h);
    a->jobs--;
    maybe_free(a);
}

/* see auth.h */
int node_auth_hash(struct node_auth *a,
                   const char *secret,
                   node_auth_hash_cb cb,
                   void *data)
{
    size_t n = strlen(secret);
    struct hash_job *h;

    if (a->closing)
        return AT_ESHUTDOWN;
    if (n == 0 || n > NODE_AUTH_PASSWORD_MAX)
        return AT_EINVAL;
    h = at_calloc(1, sizeof(*h));
    h->a = a;
    h->cost = a->cost;
    memcpy(h->secret, secret, n + 1);
    h->cb = cb;
    h->data = data;
    h->work.data = h;
    a->jobs++;
    int rv = uv_queue_work(a->loop, &h->work, hash_work, hash_after);
    AT_ASSERT(rv == 0); /* only fails for a NULL work callback */
    return 0;
}

/* ---- the htpasswd table ---- */

/* see auth.h */
int node_auth_reload(struct node_auth *a, char *errmsg)
{
    struct node_auth_htpasswd *h = NULL;
    int rv;

    if (a->htpasswd_file == NULL) {
        at_errmsg_printf(errmsg, "no htpasswd file");
        return AT_EINVAL;
    }
    rv = node_auth__htpasswd_load(a->htpasswd_file, &h, errmsg);
    if (rv != 0)
        return rv;
    node_auth_htpasswd_free(a->htpasswd);
    a->htpasswd = h;
    a->htpasswd_version++; /* cached htpasswd credentials verify again */
    return 0;
}

static void on_sighup(uv_signal_t *s, int signum)
{
    struct node_auth *a = s->data;
    char errmsg[AT_ERRMSG_SIZE] = "";

    AT_UNUSED(signum);
    if (node_auth_reload(a, errmsg) != 0)
        LOG_ERROR("SIGHUP: %s (the users read before stay)", errmsg);
    else
        LOG_INFO("SIGHUP: htpasswd '%s' read again: %zu users",
                 a->htpasswd_file, node_auth_htpasswd_count(a->htpasswd));
}

/* see auth.h */
void node_auth_htpasswd_users(const struct node_auth *a,
                              void (*each)(void *data, const char *name),
                              void *data)
{
    node_auth__htpasswd_each(a->htpasswd, each, data);
}

/* ---- life ---- */

/* see auth.h */
int node_auth_new(struct node_auth **out,
                  uv_loop_t *loop,
                  const struct node_auth_config *cfg,
                  char *errmsg)
{
    struct node_auth *a;
    char dummy[NODE_AUTH_SECRET_SIZE];
    int rv;

    if (cfg->bcrypt_cost < 4 || cfg->bcrypt_cost > 31) {
        at_errmsg_printf(errmsg, "bcrypt cost %u: want 4 to 31",
                         cfg->bcrypt_cost);
        return AT_EINVAL;
    }
    a = at_calloc(1, sizeof(*a));
    a->loop = loop;
    a->cost = cfg->bcrypt_cost;
    a->clock = cfg->clock != NULL ? cfg->clock : at_wall_ms;
    a->source = cfg->source;
    a->cache = node_auth__cache_new(cfg->cache_ttl_ms);
    a->limit = node_auth_limit_new(NULL);
    at_map_init(&a->inflight);
    if (cfg->htpasswd != NULL && cfg->htpasswd[0] != '\0') {
        a->htpasswd_file = at_strdup(cfg->htpasswd);
        rv = node_auth_reload(a, errmsg);
        if (rv != 0)
            goto err;
    }
    /* the dummy's password is random: no name-less guess matches it */
    node_auth_secret_new(dummy);
    rv = node_auth__bcrypt_hash(dummy, a->cost, a->dummy, sizeof(a->dummy));
    explicit_bzero(dummy, sizeof(dummy));
    if (rv != 0) {
        at_errmsg_printf(errmsg, "bcrypt at cost %u failed", a->cost);
        goto err;
    }
    if (cfg->reload_on_sighup && a->htpasswd_file != NULL) {
        uv_signal_init(loop, &a->sighup);
        a->sighup.data = a;
        a->sighup_open = true;
        uv_signal_start(&a->sighup, on_sighup, SIGHUP);
    }
    *out = a;
    return 0;
err:
    auth_free(a);
    return rv;
}

/* see auth.h */
void node_auth_close(struct node_auth *a)
{
    if (a == NULL || a->closing)
        return;
    a->closing = true;
    if (a->sighup_open) {
        uv_signal_stop(&a->sighup);
        uv_close((uv_handle_t *)&a->sighup, on_sighup_closed);
        return;
    }
    maybe_free(a);
}

/* see auth.h */
void node_auth_stats_get(const struct node_auth *a, struct node_auth_stats *st)
{
    *st = a->st;
    st->cached = node_auth__cache_len(a->cache);
    st->htpasswd = node_auth_htpasswd_count(a->htpasswd);
}

/* see auth.h */
struct node_auth_limit *node_auth_limiter(struct node_auth *a)
{
    return a->limit;
}
