/* The node's gossip runtime: gossip/'s SWIM state machine driven by a
 * libuv timer, its datagrams sealed (gossip/wire.h) and sent on one UDP
 * socket bound to the peer listener's host and port number.
 *
 * Send: encode + seal under the primary key, uv_udp_try_send (never
 * blocks; a full socket buffer loses the packet, which SWIM tolerates).
 * Receive: open with any key of the ring, refuse sequence numbers over
 * STALE_MS old, pass the sender's replay window, then hand
 * the message to gossip_receive; every refusal is counted by reason.
 * Stop: with leave, gossip_leave and keep ticking until the leave spread
 * or the timeout passed; then close the handles, free, call back. The
 * join and push-pull halves live in gossip_join.c. */
#include "common/compat.h"

#define AT_LOG_COMP "gossip"

#include <netdb.h>
#include <sys/random.h>
#include <unistd.h>

#include "gossip/wire.h"
#include "node/cluster/gossip.h"
#include "node/cluster/gossip_addr.h"
#include "node/cluster/gossip_join.h"

/* Senders whose replay window is kept (gossip_addr.h). */
#define REPLAY_MAX 16384
/* A sequence number (the sender's wall clock in ms) this much older than
 * ours is refused: it bounds how old a replayed packet can be after our
 * windows were emptied (a restart, an eviction). */
#define STALE_MS (10u * 60u * 1000u)
/* Parsed addresses cached; the whole cache is dropped past this. */
#define ADDRS_MAX 16384
#define META_MS   10000 /* free space / flags refresh */

struct node_gossip {
    uv_loop_t *loop;               /* borrowed */
    struct node_gossip_config cfg; /* strings borrowed (see gossip.h) */
    char name[GOSSIP_NAME_MAX];
    char addr[GOSSIP_ADDR_MAX]; /* ours, numeric "ip:port" */
    struct gossip *sw;          /* owned: the state machine */
    struct gossip_keyring ring; /* secrets: never logged */
    struct gossip_meta meta;    /* what we last told gossip */
    uv_udp_t udp;
    bool v6; /* udp is an IPv6 socket (dual-stack when bound to ::) */
    uv_timer_t tick, meta_timer;
    int handles; /* open handles; freed when the last one closed */
    struct node_gossip_sync sync; /* join rounds and push-pull */
    struct node_gossip_replays replays;
    struct at_map addrs;  /* "ip:port" -> owned struct sockaddr_storage */
    struct gossip_msg rx; /* scratch for one received message */
    uint8_t rxbuf[GOSSIP_SEAL_PACKET_MAX + 1];
    struct node_gossip_stats st;
    bool stopping, leaving;
    uint64_t leave_deadline;
    uint64_t leave_at; /* departing: gossip_leave once the flag spread */
    void (*stop_cb)(void *data);
    void *stop_data;
};

static void addrs_clear(struct at_map *m)
{
    const char *k;
    void *v;

    for (size_t i = 0; at_map_next(m, &i, &k, &v);)
        at_free(v);
    at_map_release(m);
    at_map_init(m);
}

/* The parsed form of addr, cached; NULL when it does not parse. */
static const struct sockaddr_storage *addr_lookup(struct node_gossip *g,
                                                  const char *addr)
{
    struct sockaddr_storage *sa = at_map_gets(&g->addrs, addr);

    if (sa != NULL)
        return sa;
    sa = at_malloc(sizeof(*sa));
    if (node_gossip_addr_parse(addr, sa) != 0) {
        at_free(sa);
        return NULL;
    }
    if (g->addrs.len >= ADDRS_MAX)
        addrs_clear(&g->addrs);
    at_map_put(&g->addrs, addr, strlen(addr), sa);
    return sa;
}

/* ---- callbacks of the state machine ---- */

static uint64_t on_now(void *data)
{
    struct node_gossip *g = data;

    return uv_now(g->loop);
}

static void on_send(void *data, const char *addr, const struct gossip_msg *m)
{
    struct node_gossip *g = data;
    const struct sockaddr_storage *sa;
    uint8_t pkt[GOSSIP_SEAL_PACKET_MAX];
    size_t len = 0;
    uv_buf_t b;
    int rv;

    if (g->handles == 0 || uv_is_closing((uv_handle_t *)&g->udp)) {
        g->st.drop_send++;
        return;
    }
    sa = addr_lookup(g, addr);
    if (sa == NULL) {
        LOG_DEBUG("not sending to '%s': not a numeric ip:port", addr);
        g->st.drop_send++;
        return;
    }
    rv = gossip_wire_seal(&g->ring, at_wall_ms(), m, pkt, sizeof(pkt), &len,
                          NULL);
    if (rv != 0) {
        LOG_DEBUG("cannot seal a packet for %s: %s", addr, at_strerror(rv));
        g->st.drop_send++;
        return;
    }
    b = uv_buf_init((char *)pkt, (unsigned)len);
    if (g->v6 && sa->ss_family == AF_INET) {
        /* a dual-stack socket reaches IPv4 peers at ::ffff:a.b.c.d */
        struct sockaddr_in6 m6;
        memset(&m6, 0, sizeof(m6));
        m6.sin6_family = AF_INET6;
        m6.sin6_port = ((const struct sockaddr_in *)sa)->sin_port;
        m6.sin6_addr.s6_addr[10] = m6.sin6_addr.s6_addr[11] = 0xff;
        memcpy(&m6.sin6_addr.s6_addr[12],
               &((const struct sockaddr_in *)sa)->sin_addr, 4);
        rv = uv_udp_try_send(&g->udp, &b, 1, (const struct sockaddr *)&m6);
    } else {
        rv = uv_udp_try_send(&g->udp, &b, 1, (const struct sockaddr *)sa);
    }
    if (rv < 0) {
        LOG_DEBUG("send to %s: %s", addr, uv_strerror(rv));
        g->st.drop_send++;
        return;
    }
    g->st.sent++;
}

static const char *event_name(enum gossip_event ev)
{
    switch (ev) {
    case GOSSIP_EVENT_JOIN:
        return "joined";
    case GOSSIP_EVENT_ALIVE:
        return "alive";
    case GOSSIP_EVENT_SUSPECT:
        return "suspect";
    case GOSSIP_EVENT_DEAD:
        return "dead";
    case GOSSIP_EVENT_LEFT:
        return "left";
    default:
        return "updated";
    }
}

static void on_event(void *data,
                     enum gossip_event ev,
                     const struct gossip_member_info *m)
{
    struct node_gossip *g = data;

    switch (ev) {
    case GOSSIP_EVENT_JOIN:
    case GOSSIP_EVENT_ALIVE:
    case GOSSIP_EVENT_LEFT:
        LOG_INFO("member '%s' (%s) %s (incarnation %" PRIu64 ")", m->name,
                 m->addr, event_name(ev), m->incarnation);
        break;
    case GOSSIP_EVENT_DEAD:
        LOG_WARN("member '%s' (%s) is dead (incarnation %" PRIu64 ")", m->name,
                 m->addr, m->incarnation);
        break;
    default:
        LOG_DEBUG("member '%s' (%s) %s (incarnation %" PRIu64 ")", m->name,
                  m->addr, event_name(ev), m->incarnation);
        break;
    }
    if (g->cfg.event != NULL)
        g->cfg.event(g->cfg.data, ev, m);
}

/* ---- receive ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct node_gossip *g = h->data;

    (void)suggested;
    *buf = uv_buf_init((char *)g->rxbuf, sizeof(g->rxbuf));
}

static void on_recv(uv_udp_t *h,
                    ssize_t nread,
                    const uv_buf_t *buf,
                    const struct sockaddr *from,
                    unsigned flags)
{
    struct node_gossip *g = h->data;
    char fa[GOSSIP_ADDR_MAX];
    uint64_t seq = 0;

    if (nread <= 0 || from == NULL)
        return; /* nothing, or an error the next read reports again */
    g->st.received++;
    if ((flags & UV_UDP_PARTIAL) != 0 ||
        (size_t)nread > GOSSIP_SEAL_PACKET_MAX) {
        g->st.drop_oversize++;
        return;
    }
    if (gossip_wire_open(&g->ring, (const uint8_t *)buf->base, (size_t)nread,
                         &g->rx, &seq, &g->st.drop_decode) != 0)
        return; /* counted by reason in ring.stats or drop_decode */
    if (seq + STALE_MS < at_wall_ms()) {
        g->st.drop_stale++;
        return;
    }
    if (node_gossip_replays_check(&g->replays, g->rx.from, seq) != 0) {
        g->st.drop_replay++;
        return;
    }
    if (node_gossip_addr_format(from, fa, sizeof(fa)) != 0) {
        g->st.drop_decode++;
        return;
    }
    if (gossip_receive(g->sw, fa, &g->rx) != 0)
        g->st.drop_decode++;
}

/* ---- timers ---- */

static void close_all(struct node_gossip *g);

static void on_tick(uv_timer_t *t)
{
    struct node_gossip *g = t->data;

    if (g->leave_at != 0 && uv_now(g->loop) >= g->leave_at) {
        g->leave_at = 0;
        gossip_leave(g->sw);
    }
    gossip_tick(g->sw);
    if (g->leaving && g->leave_at == 0 &&
        (gossip_leave_done(g->sw) || uv_now(g->loop) >= g->leave_deadline)) {
        g->leaving = false;
        close_all(g);
    }
}

static bool meta_same(const struct gossip_meta *a, const struct gossip_meta *b)
{
    return strcmp(a->region, b->region) == 0 && strcmp(a->zone, b->zone) == 0 &&
           strcmp(a->role, b->role) == 0 &&
           strcmp(a->api_addr, b->api_addr) == 0 &&
           strcmp(a->peer_addr, b->peer_addr) == 0 &&
           strcmp(a->version, b->version) == 0 && a->flags == b->flags &&
           a->raft_id == b->raft_id && a->free_bytes == b->free_bytes;
}

static void on_meta_timer(uv_timer_t *t)
{
    node_gossip_refresh(t->data);
}

/* see gossip.h */
void node_gossip_refresh(struct node_gossip *g)
{
    struct gossip_meta m;
    uint64_t a, b, diff;

    if (g == NULL || g->cfg.refresh == NULL || g->stopping)
        return;
    m = g->meta;
    g->cfg.refresh(g->cfg.data, &m);
    /* free space moves all the time: only a change above 1% spreads */
    a = g->meta.free_bytes;
    b = m.free_bytes;
    diff = a > b ? a - b : b - a;
    if (diff <= a / 100)
        m.free_bytes = a;
    /* the load alone never spreads (it would bump every 10 s) */
    if (meta_same(&m, &g->meta))
        return;
    node_gossip_set_meta(g, &m);
}

/* ---- start ---- */

/* Our address as others send to: advertise, resolved once when it is a
 * name (gossip addresses are numeric). */
static int resolve_self(struct node_gossip *g, char *errmsg)
{
    struct sockaddr_storage sa;
    struct addrinfo hints, *res = NULL;
    char host[256];
    int port, rv;

    if (node_gossip_addr_parse(g->cfg.advertise, &sa) == 0) {
        snprintf(g->addr, sizeof(g->addr), "%s", g->cfg.advertise);
        return 0;
    }
    if (node_gossip_hostport_split(g->cfg.advertise, host, sizeof(host),
                                   &port) != 0) {
        at_errmsg_printf(errmsg, "gossip: bad advertised address '%s'",
                         g->cfg.advertise);
        return AT_EINVAL;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    rv = getaddrinfo(host, NULL, &hints, &res);
    if (rv != 0 || res == NULL) {
        at_errmsg_printf(errmsg, "gossip: cannot resolve '%s': %s", host,
                         gai_strerror(rv));
        return AT_EINVAL;
    }
    memcpy(&sa, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (sa.ss_family == AF_INET)
        ((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)port);
    if (node_gossip_addr_format((struct sockaddr *)&sa, g->addr,
                                sizeof(g->addr)) != 0) {
        at_errmsg_printf(errmsg, "gossip: '%s' has no usable address", host);
        return AT_EINVAL;
    }
    return 0;
}

/* The primary key from the cluster secret, then up to 3 that only open
 * (keyring_file, one secret a line; blank lines and '#' comments
 * skipped). */
static int keyring_load(struct node_gossip *g, char *errmsg)
{
    const char *secret = g->cfg.secret != NULL ? g->cfg.secret : "";
    char line[1024];
    FILE *f;
    int rv, n = 0;

    rv = gossip_keyring_init(&g->ring, errmsg);
    if (rv == 0)
        rv = gossip_keyring_add(&g->ring, secret, strlen(secret), NULL, errmsg);
    if (rv != 0 || g->cfg.keyring_file == NULL ||
        g->cfg.keyring_file[0] == '\0')
        return rv;
    f = fopen(g->cfg.keyring_file, "r");
    if (f == NULL) {
        at_errmsg_printf(errmsg, "gossip keyring '%s': %s", g->cfg.keyring_file,
                         strerror(errno));
        return AT_EINVAL;
    }
    while (rv == 0 && fgets(line, sizeof(line), f) != NULL) {
        size_t len = strlen(line);
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' ||
                           line[len - 1] == ' ' || line[len - 1] == '\t'))
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        if (++n > GOSSIP_SEAL_KEYS_MAX - 1) {
            at_errmsg_printf(errmsg, "gossip keyring '%s': more than %d keys",
                             g->cfg.keyring_file, GOSSIP_SEAL_KEYS_MAX - 1);
            rv = AT_EINVAL;
            break;
        }
        rv = gossip_keyring_add(&g->ring, line, len, NULL, errmsg);
        if (rv == AT_EEXIST)
            rv = 0; /* the cluster secret again */
        if (rv != 0)
            at_errmsg_wrapf(errmsg, "gossip keyring '%s' line %d",
                            g->cfg.keyring_file, n);
    }
    explicit_bzero(line, sizeof(line));
    fclose(f);
    return rv;
}

static int bind_udp(struct node_gossip *g, char *errmsg)
{
    const char *host = g->cfg.bind_host;
    struct sockaddr_storage sa;
    char addr[300];
    int rv;

    if (host == NULL || host[0] == '\0')
        host = "0.0.0.0";
    if (strchr(host, ':') != NULL)
        snprintf(addr, sizeof(addr), "[%s]:%d", host, g->cfg.port);
    else
        snprintf(addr, sizeof(addr), "%s:%d", host, g->cfg.port);
    if (node_gossip_addr_parse(addr, &sa) != 0) {
        struct sockaddr_storage s2;
        if (strcmp(host, "localhost") != 0 ||
            node_gossip_addr_parse("127.0.0.1:1", &s2) != 0) {
            at_errmsg_printf(errmsg, "gossip: cannot bind '%s': not an IP",
                             addr);
            return AT_EIO;
        }
        ((struct sockaddr_in *)&s2)->sin_port = htons((uint16_t)g->cfg.port);
        sa = s2;
    }
    g->v6 = sa.ss_family == AF_INET6;
    rv = uv_udp_bind(&g->udp, (const struct sockaddr *)&sa, 0);
    if (rv == 0)
        rv = uv_udp_recv_start(&g->udp, on_alloc, on_recv);
    if (rv != 0) {
        at_errmsg_printf(errmsg, "gossip: bind udp %s: %s", addr,
                         uv_strerror(rv));
        return AT_EIO;
    }
    return 0;
}

/* Free g and all it owns (its handles closed). */
static void gossip_release(struct node_gossip *g)
{
    gossip_free(g->sw);
    gossip_keyring_release(&g->ring);
    node_gossip_replays_release(&g->replays);
    addrs_clear(&g->addrs);
    at_map_release(&g->addrs);
    node_gossip_sync_release(&g->sync);
    at_free(g);
}

static void on_start_failed_closed(uv_handle_t *h)
{
    gossip_release(h->data);
}

static struct gossip *machine_new(struct node_gossip *g, char *errmsg)
{
    const struct node_gossip_config *c = &g->cfg;
    struct gossip_config gc;
    uint64_t seed = 0;

    if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
        seed = at_wall_ms() ^ (uint64_t)getpid();
    memset(&gc, 0, sizeof(gc));
    gc.name = g->name;
    gc.addr = g->addr;
    gc.meta = g->meta;
    gc.probe_interval_ms = c->probe_interval_ms;
    gc.probe_timeout_ms = c->probe_timeout_ms;
    gc.gossip_interval_ms = c->gossip_interval_ms;
    gc.suspicion_mult = c->suspicion_mult;
    gc.retransmit_mult = c->retransmit_mult;
    gc.seed = seed;
    gc.now_ms = on_now;
    gc.send = on_send;
    gc.event = on_event;
    gc.data = g;
    return gossip_new(&gc, errmsg);
}

static void timers_start(struct node_gossip *g)
{
    uv_timer_t *ts[] = { &g->tick, &g->meta_timer };
    unsigned every = g->cfg.probe_timeout_ms / 10;

    for (size_t i = 0; i < AT_ARRAY_SIZE(ts); i++) {
        uv_timer_init(g->loop, ts[i]);
        ts[i]->data = g;
        g->handles++;
    }
    every = AT_MAX(1u, AT_MIN(every, 50u));
    uv_timer_start(&g->tick, on_tick, every, every);
    /* a first refresh soon: the node layer may rejoin through raft peers */
    uv_timer_start(&g->meta_timer, on_meta_timer, 1000, META_MS);
}

/* see gossip.h */
int node_gossip_start(struct node_gossip **out,
                      uv_loop_t *loop,
                      const struct node_gossip_config *c,
                      char *errmsg)
{
    struct node_gossip *g;
    int rv;

    if (c->secret == NULL || strlen(c->secret) < GOSSIP_SEAL_SECRET_MIN) {
        at_errmsg_printf(errmsg,
                         "gossip needs a cluster secret of at least %d bytes",
                         GOSSIP_SEAL_SECRET_MIN);
        return AT_EINVAL;
    }
    if (c->name == NULL || strlen(c->name) >= GOSSIP_NAME_MAX) {
        at_errmsg_printf(errmsg, "gossip: node name longer than %d bytes",
                         GOSSIP_NAME_MAX - 1);
        return AT_EINVAL;
    }
    g = at_calloc(1, sizeof(*g));
    g->loop = loop;
    g->cfg = *c;
    g->meta = c->meta;
    snprintf(g->name, sizeof(g->name), "%s", c->name);
    node_gossip_replays_init(&g->replays, REPLAY_MAX);
    at_map_init(&g->addrs);
    rv = resolve_self(g, errmsg);
    if (rv == 0)
        rv = keyring_load(g, errmsg);
    if (rv == 0) {
        g->sw = machine_new(g, errmsg);
        if (g->sw == NULL)
            rv = AT_EINVAL;
    }
    if (rv != 0) {
        gossip_keyring_release(&g->ring);
        node_gossip_replays_release(&g->replays);
        at_map_release(&g->addrs);
        gossip_free(g->sw);
        node_gossip_sync_release(&g->sync);
        at_free(g);
        return rv;
    }
    uv_udp_init(loop, &g->udp);
    g->udp.data = g;
    rv = bind_udp(g, errmsg);
    if (rv != 0) {
        uv_close((uv_handle_t *)&g->udp, on_start_failed_closed);
        return rv;
    }
    g->handles = 1;
    timers_start(g);
    node_gossip_sync_init(&g->sync, loop, c->join);
    g->handles += 2;
    g->sync.sw = g->sw;
    g->sync.peer = c->peer;
    g->sync.name = g->name;
    g->sync.addr = g->addr;
    g->sync.push_pull_interval_ms = c->push_pull_interval_ms;
    LOG_INFO("gossip on udp %s:%d as '%s' at %s (%zu keys)",
             c->bind_host != NULL && c->bind_host[0] != '\0' ? c->bind_host
                                                             : "0.0.0.0",
             c->port, g->name, g->addr, gossip_keyring_count(&g->ring));
    node_gossip_sync_start(&g->sync);
    *out = g;
    return 0;
}

/* ---- stop ---- */

static void on_closed(uv_handle_t *h)
{
    struct node_gossip *g = h->data;
    void (*cb)(void *) = g->stop_cb;
    void *data = g->stop_data;

    if (--g->handles > 0)
        return;
    gossip_release(g);
    if (cb != NULL)
        cb(data);
}

static void close_all(struct node_gossip *g)
{
    uv_handle_t *hs[] = { (uv_handle_t *)&g->udp, (uv_handle_t *)&g->tick,
                          (uv_handle_t *)&g->sync.pp_timer,
                          (uv_handle_t *)&g->sync.join_timer,
                          (uv_handle_t *)&g->meta_timer };

    for (size_t i = 0; i < AT_ARRAY_SIZE(hs); i++) {
        hs[i]->data = g; /* the sync timers pointed at g->sync */
        if (!uv_is_closing(hs[i]))
            uv_close(hs[i], on_closed);
    }
}

/* see gossip.h */
void node_gossip_stop(struct node_gossip *g,
                      bool leave,
                      unsigned timeout_ms,
                      void (*cb)(void *data),
                      void *data)
{
    if (g->stopping)
        return;
    g->stopping = true;
    g->stop_cb = cb;
    g->stop_data = data;
    node_gossip_sync_stop(&g->sync);
    uv_timer_stop(&g->meta_timer);
    if (leave && gossip_members_live(g->sw) > 1) {
        bool departing = (g->meta.flags & GOSSIP_META_DEPARTING) != 0;
        /* departing: a few gossip rounds for the flag to spread first */
        uint64_t delay =
            departing ? AT_MAX(5u * g->cfg.gossip_interval_ms, (uint64_t)500)
                      : 0;
        LOG_INFO("leaving the gossip cluster%s", departing ? " for good" : "");
        g->leaving = true;
        g->leave_deadline = uv_now(g->loop) + delay + timeout_ms;
        if (delay > 0) {
            g->leave_at = uv_now(g->loop) + delay;
        } else {
            gossip_leave(g->sw);
            gossip_tick(g->sw);
        }
        return;
    }
    close_all(g);
}

/* ---- queries ---- */

/* see gossip.h */
enum meta_liveness node_gossip_liveness(const struct node_gossip *g,
                                        const char *name,
                                        uint64_t *since_ms)
{
    struct gossip_member_info mi;

    if (g == NULL || name == NULL || gossip_member_get(g->sw, name, &mi) != 0)
        return META_LIVE_UNKNOWN;
    if (since_ms != NULL)
        *since_ms = mi.state_since_ms;
    switch (mi.state) {
    case GOSSIP_ALIVE:
        return META_LIVE_ALIVE;
    case GOSSIP_SUSPECT:
        return META_LIVE_SUSPECT;
    case GOSSIP_DEAD:
        return META_LIVE_DEAD;
    case GOSSIP_LEFT:
        /* a graceful stop without the intent to go is a restart to come:
         * treated as a failure, so autopilot never removes it */
        return mi.meta.flags & GOSSIP_META_DEPARTING ? META_LIVE_LEFT
                                                     : META_LIVE_DEAD;
    }
    return META_LIVE_UNKNOWN;
}

/* see gossip.h */
uint32_t node_gossip_rtt_us(const struct node_gossip *g, const char *name)
{
    struct gossip_member_info mi;

    if (g == NULL || name == NULL || gossip_member_get(g->sw, name, &mi) != 0)
        return 0;
    return mi.rtt_us;
}

/* see gossip.h */
void node_gossip_depart(struct node_gossip *g)
{
    struct gossip_meta m = g->meta;

    m.flags |= GOSSIP_META_DEPARTING;
    node_gossip_set_meta(g, &m);
}

static int update_cmp(const void *a, const void *b)
{
    return strcmp(((const struct gossip_update *)a)->name,
                  ((const struct gossip_update *)b)->name);
}

/* see gossip.h */
void node_gossip_each(const struct node_gossip *g,
                      void (*each)(void *data,
                                   const struct gossip_member_info *m),
                      void *data)
{
    struct gossip_update *u;
    struct gossip_member_info mi;
    size_t n;

    if (g == NULL)
        return;
    u = node_gossip_sync_export(g->sw, &n);
    qsort(u, n, sizeof(*u), update_cmp);
    for (size_t i = 0; i < n; i++)
        if (gossip_member_get(g->sw, u[i].name, &mi) == 0)
            each(data, &mi);
    at_free(u);
}

/* see gossip.h */
int node_gossip_push_pull(struct node_gossip *g,
                          const void *body,
                          size_t len,
                          uint8_t **out,
                          size_t *outlen)
{
    return node_gossip_sync_serve(&g->sync, body, len, out, outlen);
}

/* see gossip.h */
void node_gossip_rejoin(struct node_gossip *g, const char *list)
{
    if (g == NULL || g->stopping || gossip_members_live(g->sw) > 1)
        return;
    node_gossip_sync_rejoin(&g->sync, list);
}

/* see gossip.h */
void node_gossip_reach(struct node_gossip *g, const char *list)
{
    unsigned n = at_csv_count(list);
    char addr[GOSSIP_ADDR_MAX];

    if (g == NULL || g->stopping || n == 0 ||
        at_csv_item(list, (unsigned)random() % n, addr, sizeof(addr)) != 0)
        return;
    LOG_DEBUG("push-pull with %s, a raft member gossip does not see alive",
              addr);
    node_gossip_sync_push_pull(&g->sync, addr);
}

/* see gossip.h */
void node_gossip_set_meta(struct node_gossip *g, const struct gossip_meta *m)
{
    if (g == NULL || meta_same(m, &g->meta))
        return;
    LOG_DEBUG("spreading new metadata (role %s, flags %u, free %" PRIu64 ")",
              m->role, m->flags, m->free_bytes);
    g->meta = *m;
    gossip_set_meta(g->sw, m);
}

/* see gossip.h */
void node_gossip_stats_get(const struct node_gossip *g,
                           struct node_gossip_stats *st)
{
    struct gossip_update *u;
    size_t n;

    memset(st, 0, sizeof(*st));
    if (g == NULL)
        return;
    *st = g->st;
    st->drop_short = g->ring.stats.drop_short;
    st->drop_oversize += g->ring.stats.drop_oversize;
    st->drop_version = g->ring.stats.drop_version;
    st->drop_unknown_key = g->ring.stats.drop_unknown_key;
    st->drop_auth = g->ring.stats.drop_auth;
    st->push_pulls = g->sync.push_pulls;
    st->push_pull_errors = g->sync.push_pull_errors;
    u = node_gossip_sync_export(g->sw, &n);
    st->members = n;
    for (size_t i = 0; i < n; i++) {
        switch (u[i].kind) {
        case GOSSIP_UPDATE_ALIVE:
            st->alive++;
            break;
        case GOSSIP_UPDATE_SUSPECT:
            st->suspect++;
            break;
        case GOSSIP_UPDATE_DEAD:
            st->dead++;
            break;
        case GOSSIP_UPDATE_LEAVE:
            st->left++;
            break;
        }
    }
    at_free(u);
    st->health = gossip_health(g->sw);
}
