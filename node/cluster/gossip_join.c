/* Gossip's join and full-state exchanges: the --join list resolved (every
 * A/AAAA record of every name) and announced to until another member is
 * alive, retried every NODE_GOSSIP_JOIN_RETRY_MS (seeds not up yet, DNS
 * names not resolving yet) with a WARN every NODE_GOSSIP_JOIN_WARN_MS;
 * each round also exchanges full state with one seed over the peer
 * listener so that a joiner learns everyone at once. Then, every
 * push_pull_interval_ms (+-10%), a full-state exchange with a random live
 * member: POST /_atoll/gossip with our GossipState, the answer is theirs.
 *
 * In-flight work (a resolve round, one exchange) holds a pointer back to
 * the runtime that node_gossip_sync_stop clears: it then completes on
 * its own and frees itself. */
#include "common/compat.h"

#define AT_LOG_COMP "gossip"

#include "gossip/wire.h"
#include "node/cluster/gossip_addr.h"
#include "node/cluster/gossip_join.h"
#include "node/cluster/peer.h"
#include "proto/peer.h"

#define JOIN_ADDRS_MAX 64 /* addresses one round announces to */

_Static_assert(PROTO_PEER_GOSSIP_MAX == GOSSIP_STATE_BYTES_MAX,
               "the peer endpoint bounds a GossipState");

struct node_gossip_join {
    struct node_gossip_sync *g; /* borrowed; NULL once gossip stopped */
    unsigned pending;           /* resolves in flight */
    size_t n;
    char addrs[JOIN_ADDRS_MAX][GOSSIP_ADDR_MAX];
};

struct join_req {
    uv_getaddrinfo_t req;
    struct node_gossip_join *round; /* borrowed */
    int port;
};

struct node_gossip_pp {
    struct node_gossip_sync *g; /* borrowed; NULL once gossip stopped */
    char addr[GOSSIP_ADDR_MAX];
};

/* ---- push-pull ---- */

static void on_pp_answer(void *data,
                         int status,
                         int http,
                         const char *body,
                         size_t len)
{
    struct node_gossip_pp *pp = data;
    struct node_gossip_sync *g = pp->g;
    struct gossip_update *u = NULL;
    char from[GOSSIP_NAME_MAX];
    size_t n = 0;

    if (g == NULL)
        goto out;
    g->pp = NULL;
    if (status != 0 || http != 200) {
        g->push_pull_errors++;
        LOG_DEBUG("push-pull with %s: %s (HTTP %d)", pp->addr,
                  status != 0 ? at_strerror(status) : "refused", http);
        goto out;
    }
    if (gossip_wire_state_decode((const uint8_t *)body, len, from, &u, &n) !=
        0) {
        g->push_pull_errors++;
        LOG_WARN("push-pull with %s: malformed answer", pp->addr);
        goto out;
    }
    gossip_merge(g->sw, u, n, true);
    g->push_pulls++;
    LOG_DEBUG("push-pull with '%s' (%s): %zu members", from, pp->addr, n);
    free(u);
out:
    at_free(pp);
}

/* Exchange full state with addr (a peer listener's "host:port"). */
static void push_pull_with(struct node_gossip_sync *g, const char *addr)
{
    struct node_gossip_pp *pp;
    struct gossip_update *u;
    uint8_t *body = NULL;
    size_t n, len = 0;
    int rv;

    if (g->peer == NULL || g->pp != NULL || g->stopping)
        return;
    u = node_gossip_sync_export(g->sw, &n);
    rv = gossip_wire_state_encode(g->name, u, n, &body, &len);
    at_free(u);
    if (rv != 0) {
        g->push_pull_errors++;
        LOG_WARN("push-pull: cannot encode our state: %s", at_strerror(rv));
        return;
    }
    pp = at_calloc(1, sizeof(*pp));
    pp->g = g;
    snprintf(pp->addr, sizeof(pp->addr), "%s", addr);
    g->pp = pp;
    rv = node_peer_request(g->peer, "POST", addr,
                           proto_peer_path(PROTO_PEER_GOSSIP),
                           PROTO_PEER_CONTENT_TYPE, body, len,
                           NODE_GOSSIP_PP_TIMEOUT_MS, on_pp_answer, pp);
    free(body);
    if (rv != 0) {
        g->pp = NULL;
        g->push_pull_errors++;
        at_free(pp);
    }
}

/* see gossip_join.h */
void node_gossip_sync_push_pull(struct node_gossip_sync *g, const char *addr)
{
    push_pull_with(g, addr);
}

/* see gossip_join.h */
int node_gossip_sync_serve(struct node_gossip_sync *g,
                           const void *body,
                           size_t len,
                           uint8_t **out,
                           size_t *outlen)
{
    struct gossip_update *u = NULL;
    char from[GOSSIP_NAME_MAX];
    size_t n = 0;
    int rv;

    *out = NULL;
    *outlen = 0;
    if (gossip_wire_state_decode(body, len, from, &u, &n) != 0)
        return AT_EPROTO;
    gossip_merge(g->sw, u, n, true);
    free(u);
    g->push_pulls++;
    u = node_gossip_sync_export(g->sw, &n);
    rv = gossip_wire_state_encode(g->name, u, n, out, outlen);
    at_free(u);
    return rv;
}

static uint64_t pp_delay(const struct node_gossip_sync *g)
{
    uint64_t base = g->push_pull_interval_ms;
    uint64_t jitter = base / 10;

    if (jitter == 0)
        return base > 0 ? base : 1;
    return base - jitter + (uint64_t)random() % (2 * jitter + 1);
}

/* Exchange full state with a random live member (none: nothing). */
static void push_pull_random(struct node_gossip_sync *g)
{
    struct gossip_update *u;
    size_t n, live = 0, pick;

    u = node_gossip_sync_export(g->sw, &n);
    for (size_t i = 0; i < n; i++)
        if (u[i].kind == GOSSIP_UPDATE_ALIVE && strcmp(u[i].name, g->name) != 0)
            u[live++] = u[i];
    if (live > 0) {
        pick = (size_t)random() % live;
        push_pull_with(g, u[pick].meta.peer_addr[0] != '\0'
                              ? u[pick].meta.peer_addr
                              : u[pick].addr);
    }
    at_free(u);
}

static void on_pp_timer(uv_timer_t *t)
{
    struct node_gossip_sync *g = t->data;

    if (g->stopping)
        return;
    push_pull_random(g);
    uv_timer_start(&g->pp_timer, on_pp_timer, pp_delay(g), 0);
}

static void pp_start(struct node_gossip_sync *g)
{
    if (g->push_pull_interval_ms == 0 || g->peer == NULL)
        return;
    uv_timer_start(&g->pp_timer, on_pp_timer, pp_delay(g), 0);
}

/* ---- join ---- */

static void round_done(struct node_gossip_join *r)
{
    struct node_gossip_sync *g = r->g;
    const char *seeds[JOIN_ADDRS_MAX];

    if (g != NULL) {
        g->round = NULL;
        for (size_t i = 0; i < r->n; i++)
            seeds[i] = r->addrs[i];
        if (r->n > 0 && !g->joined) {
            LOG_DEBUG("joining via %zu addresses (first %s)", r->n, seeds[0]);
            gossip_join(g->sw, seeds, r->n);
            push_pull_with(g, seeds[g->join_next++ % r->n]);
        }
    }
    at_free(r);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct join_req *jr = req->data;
    struct node_gossip_join *r = jr->round;
    struct node_gossip_sync *g = r->g;
    char a[GOSSIP_ADDR_MAX];

    for (struct addrinfo *ai = res; status == 0 && g != NULL && ai != NULL;
         ai = ai->ai_next) {
        struct sockaddr_storage sa;
        bool dup = false;

        if (ai->ai_addrlen > sizeof(sa) ||
            (ai->ai_family != AF_INET && ai->ai_family != AF_INET6))
            continue;
        memcpy(&sa, ai->ai_addr, ai->ai_addrlen);
        if (sa.ss_family == AF_INET)
            ((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)jr->port);
        else
            ((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)jr->port);
        if (node_gossip_addr_format((struct sockaddr *)&sa, a, sizeof(a)) !=
                0 ||
            strcmp(a, g->addr) == 0)
            continue; /* ourselves */
        for (size_t i = 0; i < r->n && !dup; i++)
            dup = strcmp(r->addrs[i], a) == 0;
        if (!dup && r->n < JOIN_ADDRS_MAX)
            snprintf(r->addrs[r->n++], GOSSIP_ADDR_MAX, "%s", a);
    }
    if (status != 0 && g != NULL)
        LOG_DEBUG("join: cannot resolve a seed: %s", uv_strerror(status));
    if (res != NULL)
        uv_freeaddrinfo(res);
    at_free(jr);
    if (--r->pending == 0)
        round_done(r);
}

/* Resolve every entry of the --join list; round_done joins the lot. */
static void round_start(struct node_gossip_sync *g)
{
    struct node_gossip_join *r = at_calloc(1, sizeof(*r));
    struct addrinfo hints;
    char *list =
             at_asprintf("%s,%s", g->join, g->extra != NULL ? g->extra : ""),
         *save = NULL, *tok;
    char host[256];

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    r->g = g;
    r->pending = 1; /* held until every resolve started */
    g->round = r;
    for (tok = strtok_r(list, ", \t", &save); tok != NULL;
         tok = strtok_r(NULL, ", \t", &save)) {
        struct join_req *jr = at_calloc(1, sizeof(*jr));

        if (node_gossip_hostport_split(tok, host, sizeof(host), &jr->port) !=
            0) {
            LOG_WARN("join: '%s' is not host:port, skipped", tok);
            at_free(jr);
            continue;
        }
        jr->round = r;
        jr->req.data = jr;
        r->pending++;
        if (uv_getaddrinfo(g->loop, &jr->req, on_resolved, host, NULL,
                           &hints) != 0) {
            r->pending--;
            at_free(jr);
        }
    }
    at_free(list);
    if (--r->pending == 0)
        round_done(r);
}

static void on_join_timer(uv_timer_t *t)
{
    struct node_gossip_sync *g = t->data;
    uint64_t now = uv_now(g->loop);

    if (g->stopping)
        return;
    if (gossip_members_live(g->sw) > 1) {
        g->joined = true;
        uv_timer_stop(&g->join_timer);
        LOG_INFO("joined the gossip cluster via '%s%s%s' (%zu members live)",
                 g->join, g->extra != NULL && g->join[0] != '\0' ? "," : "",
                 g->extra != NULL ? g->extra : "", gossip_members_live(g->sw));
        /* the seed's exchange failed (a seed not up): learn everyone from
         * a member that answered */
        if (g->push_pulls == 0)
            push_pull_random(g);
        return;
    }
    if (now - g->join_started >= NODE_GOSSIP_JOIN_WARN_MS &&
        now - g->join_warned >= NODE_GOSSIP_JOIN_WARN_MS) {
        g->join_warned = now;
        LOG_WARN("join: no member of '%s' answered in %" PRIu64
                 " s; still trying every %u s",
                 g->join, (now - g->join_started) / 1000,
                 NODE_GOSSIP_JOIN_RETRY_MS / 1000);
    }
    if (g->round == NULL)
        round_start(g);
}

static void on_join_timer(uv_timer_t *t);

/* see gossip_join.h */
void node_gossip_sync_init(struct node_gossip_sync *g,
                           uv_loop_t *loop,
                           const char *join)
{
    g->loop = loop;
    g->join = at_strdup(join != NULL ? join : "");
    uv_timer_init(loop, &g->pp_timer);
    uv_timer_init(loop, &g->join_timer);
    g->pp_timer.data = g;
    g->join_timer.data = g;
}

/* see gossip_join.h */
void node_gossip_sync_release(struct node_gossip_sync *g)
{
    at_free(g->join);
    at_free(g->extra);
    g->join = g->extra = NULL;
}

/* see gossip_join.h */
void node_gossip_sync_rejoin(struct node_gossip_sync *g, const char *list)
{
    if (g->stopping || list == NULL || list[0] == '\0')
        return;
    if (g->extra == NULL || strcmp(g->extra, list) != 0) {
        at_free(g->extra);
        g->extra = at_strdup(list);
    }
    g->joined = false;
    if (uv_is_active((uv_handle_t *)&g->join_timer))
        return;
    LOG_INFO("no other live member: joining through the raft peers '%s'", list);
    g->join_started = g->join_warned = uv_now(g->loop);
    uv_timer_start(&g->join_timer, on_join_timer, 0, NODE_GOSSIP_JOIN_RETRY_MS);
}

/* see gossip_join.h */
struct gossip_update *node_gossip_sync_export(const struct gossip *sw,
                                              size_t *n)
{
    size_t max = gossip_members_count(sw) + 1;
    struct gossip_update *u = at_calloc(max, sizeof(*u));
    size_t k = gossip_state_export(sw, u, max);

    *n = AT_MIN(k, max);
    return u;
}

/* see gossip_join.h */
void node_gossip_sync_start(struct node_gossip_sync *g)
{
    pp_start(g);
    if (g->join[0] == '\0') {
        g->joined = true;
        return;
    }
    g->join_started = g->join_warned = uv_now(g->loop);
    uv_timer_start(&g->join_timer, on_join_timer, 0, NODE_GOSSIP_JOIN_RETRY_MS);
}

/* see gossip_join.h */
void node_gossip_sync_stop(struct node_gossip_sync *g)
{
    g->stopping = true;
    uv_timer_stop(&g->join_timer);
    uv_timer_stop(&g->pp_timer);
    if (g->round != NULL) {
        g->round->g = NULL;
        g->round = NULL;
    }
    if (g->pp != NULL) {
        g->pp->g = NULL;
        g->pp = NULL;
    }
}
