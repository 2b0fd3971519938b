/* Failed-login limits (see limit.h): a bounded table of recent failures,
 * one entry per user name ("u:" key) and per source address ("a:" key),
 * each counting failures in a fixed window that opens at its first
 * failure. At the limit, checks are refused until the window closes;
 * refused attempts are not failures, so the window does end. The oldest
 * entry (by last failure) goes when the table is full: an attacker who
 * fills it with made-up names pushes out only entries that have been
 * quiet the longest, and keeps refreshing their own address's entry.
 *
 * Success forgets the user's failures but not the address's. A user who
 * mistyped a few times and then got it right should not carry those
 * failures into the next typo. An address is different: one that guesses
 * passwords for many names, and logs in now and then with an account of
 * its own, would otherwise clear its count with each good login and never
 * reach the limit. */
#include "common/compat.h"

#define AT_LOG_COMP "auth"

#include "node/auth/limit.h"

struct entry {
    struct at_list link; /* in the table's list, least recently failed
                            first */
    char key[NODE_AUTH_LIMIT_KEY_MAX + 3];
    size_t klen;
    uint64_t start_ms; /* the window opened at the first failure */
    unsigned fails;    /* in the window */
};

struct node_auth_limit {
    unsigned user_max, addr_max;
    uint64_t window_ms;
    size_t entries;
    uint64_t (*clock)(void);
    struct at_map map;   /* key -> struct entry (owned) */
    struct at_list list; /* struct entry, least recently failed first */
    struct node_auth_limit_stats st;
};

/* see limit.h */
struct node_auth_limit *node_auth_limit_new(
    const struct node_auth_limit_config *cfg)
{
    struct node_auth_limit *l = at_calloc(1, sizeof(*l));
    struct node_auth_limit_config none = { 0 };

    if (cfg == NULL)
        cfg = &none;
    l->user_max = cfg->user_max != 0 ? cfg->user_max : NODE_AUTH_LIMIT_USER_MAX;
    l->addr_max = cfg->addr_max != 0 ? cfg->addr_max : NODE_AUTH_LIMIT_ADDR_MAX;
    l->window_ms =
        cfg->window_ms != 0 ? cfg->window_ms : NODE_AUTH_LIMIT_WINDOW_MS;
    l->entries = cfg->entries != 0 ? cfg->entries : NODE_AUTH_LIMIT_ENTRIES;
    l->clock = cfg->clock != NULL ? cfg->clock : at_now_ms;
    at_map_init(&l->map);
    at_list_init(&l->list);
    return l;
}

static void entry_drop(struct node_auth_limit *l, struct entry *e)
{
    at_map_del(&l->map, e->key, e->klen);
    at_list_remove(&e->link);
    at_free(e);
}

/* see limit.h */
void node_auth_limit_free(struct node_auth_limit *l)
{
    if (l == NULL)
        return;
    while (!at_list_empty(&l->list))
        entry_drop(l,
                   AT_LIST_ENTRY(at_list_first(&l->list), struct entry, link));
    at_map_release(&l->map);
    at_free(l);
}

/* The key of a user name ("u:name") or of an address without its port
 * ("a:10.0.0.1", "a:[::1]"), cut at NODE_AUTH_LIMIT_KEY_MAX bytes. */
static size_t make_key(char *out, char kind, const char *s)
{
    size_t n = strlen(s);

    if (kind == 'a') {
        const char *colon = strrchr(s, ':');
        const char *close = strrchr(s, ']');
        /* "ip:port" (one colon) or "[v6]:port"; a bare v6 keeps all */
        if (colon != NULL && colon[1] != '\0' &&
            strspn(colon + 1, "0123456789") == strlen(colon + 1) &&
            (close != NULL ? close + 1 == colon : strchr(s, ':') == colon))
            n = (size_t)(colon - s);
    }
    n = AT_MIN(n, NODE_AUTH_LIMIT_KEY_MAX);
    out[0] = kind;
    out[1] = ':';
    memcpy(out + 2, s, n);
    out[n + 2] = '\0';
    return n + 2;
}

static struct entry *find(struct node_auth_limit *l, char kind, const char *s)
{
    char key[NODE_AUTH_LIMIT_KEY_MAX + 3];
    size_t klen = make_key(key, kind, s);

    return at_map_get(&l->map, key, klen);
}

/* How long e still refuses at now with limit max; 0 when it does not. */
static uint64_t blocked_ms(const struct node_auth_limit *l,
                           const struct entry *e,
                           unsigned max,
                           uint64_t now)
{
    if (e == NULL || e->fails < max || now - e->start_ms >= l->window_ms)
        return 0;
    return e->start_ms + l->window_ms - now;
}

/* The longer wait of the user's and the address's entries. */
static uint64_t wait_ms(struct node_auth_limit *l,
                        const char *user,
                        const char *addr,
                        uint64_t now)
{
    uint64_t w = 0;

    if (user != NULL)
        w = blocked_ms(l, find(l, 'u', user), l->user_max, now);
    if (addr != NULL)
        w = AT_MAX(w, blocked_ms(l, find(l, 'a', addr), l->addr_max, now));
    return w;
}

/* see limit.h */
int node_auth_limit_check(struct node_auth_limit *l,
                          const char *user,
                          const char *addr)
{
    if (wait_ms(l, user, addr, l->clock()) == 0)
        return 0;
    l->st.refused++;
    return AT_EAGAIN;
}

/* see limit.h */
uint64_t node_auth_limit_retry_after(struct node_auth_limit *l,
                                     const char *user,
                                     const char *addr)
{
    uint64_t w = wait_ms(l, user, addr, l->clock());

    return w == 0 ? 0 : (w + 999) / 1000;
}

static void fail_one(struct node_auth_limit *l,
                     char kind,
                     const char *s,
                     uint64_t now)
{
    struct entry *e = find(l, kind, s);

    if (e == NULL) {
        if (l->map.len >= l->entries)
            entry_drop(
                l, AT_LIST_ENTRY(at_list_first(&l->list), struct entry, link));
        e = at_calloc(1, sizeof(*e));
        e->klen = make_key(e->key, kind, s);
        e->start_ms = now;
        at_map_put(&l->map, e->key, e->klen, e);
    } else {
        at_list_remove(&e->link);
        if (now - e->start_ms >= l->window_ms) {
            e->start_ms = now;
            e->fails = 0;
        }
    }
    at_list_push_back(&l->list, &e->link);
    e->fails++;
}

/* see limit.h */
void node_auth_limit_fail(struct node_auth_limit *l,
                          const char *user,
                          const char *addr)
{
    uint64_t now = l->clock();

    l->st.failures++;
    if (user != NULL)
        fail_one(l, 'u', user, now);
    if (addr != NULL)
        fail_one(l, 'a', addr, now);
}

/* see limit.h */
void node_auth_limit_ok(struct node_auth_limit *l,
                        const char *user,
                        const char *addr)
{
    struct entry *e = user != NULL ? find(l, 'u', user) : NULL;

    AT_UNUSED(addr); /* see the file's comment */
    if (e != NULL)
        entry_drop(l, e);
}

/* see limit.h */
void node_auth_limit_stats_get(const struct node_auth_limit *l,
                               struct node_auth_limit_stats *st)
{
    *st = l->st;
    st->tracked = l->map.len;
}
