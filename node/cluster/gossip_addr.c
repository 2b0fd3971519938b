/* Gossip's small tables on the node side (see gossip_addr.h). */
#include "common/compat.h"

#include "node/cluster/gossip_addr.h"

/* ---- addresses ---- */

static int port_parse(const char *p, int *port)
{
    uint64_t v;

    if (p[0] < '0' || p[0] > '9' || at_parse_u64(p, strlen(p), &v) != 0 ||
        v == 0 || v > 65535)
        return AT_EINVAL;
    *port = (int)v;
    return 0;
}

/* see gossip_addr.h */
int node_gossip_hostport_split(const char *s,
                               char *host,
                               size_t hostsize,
                               int *port)
{
    const char *colon, *h = s;
    size_t hlen;

    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (end == NULL || end[1] != ':')
            return AT_EINVAL;
        h = s + 1;
        hlen = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
            return AT_EINVAL;
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen >= hostsize)
        return AT_EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    return port_parse(colon + 1, port);
}

/* see gossip_addr.h */
int node_gossip_addr_parse(const char *s, struct sockaddr_storage *sa)
{
    char host[64];
    int port;
    bool v6 = s[0] == '[';

    memset(sa, 0, sizeof(*sa));
    if (node_gossip_hostport_split(s, host, sizeof(host), &port) != 0)
        return AT_EINVAL;
    if (v6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)sa;
        if (uv_inet_pton(AF_INET6, host, &a->sin6_addr) != 0)
            return AT_EINVAL;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)sa;
        if (uv_inet_pton(AF_INET, host, &a->sin_addr) != 0)
            return AT_EINVAL;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
    }
    return 0;
}

/* see gossip_addr.h */
int node_gossip_addr_format(const struct sockaddr *sa, char *out, size_t size)
{
    char ip[64];
    int n;

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        if (uv_ip4_name(a, ip, sizeof(ip)) != 0)
            return AT_EINVAL;
        n = snprintf(out, size, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
            /* an IPv4 sender on a dual-stack socket: its gossip address */
            struct sockaddr_in v4;
            memset(&v4, 0, sizeof(v4));
            v4.sin_family = AF_INET;
            v4.sin_port = a->sin6_port;
            memcpy(&v4.sin_addr, &a->sin6_addr.s6_addr[12], 4);
            return node_gossip_addr_format((const struct sockaddr *)&v4, out,
                                           size);
        }
        if (uv_ip6_name(a, ip, sizeof(ip)) != 0)
            return AT_EINVAL;
        n = snprintf(out, size, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
    } else {
        return AT_EINVAL;
    }
    return n > 0 && (size_t)n < size ? 0 : AT_EINVAL;
}

/* ---- replay windows ---- */

/* see gossip_addr.h */
void node_gossip_replays_init(struct node_gossip_replays *t, size_t max)
{
    memset(t, 0, sizeof(*t));
    at_map_init(&t->by_name);
    at_list_init(&t->lru);
    t->max = max > 0 ? max : 1;
}

/* see gossip_addr.h */
void node_gossip_replays_release(struct node_gossip_replays *t)
{
    const char *k;
    void *v;

    for (size_t i = 0; at_map_next(&t->by_name, &i, &k, &v);)
        at_free(v);
    at_map_release(&t->by_name);
    at_list_init(&t->lru);
}

/* see gossip_addr.h */
int node_gossip_replays_check(struct node_gossip_replays *t,
                              const char *name,
                              uint64_t seq)
{
    struct node_gossip_replay_entry *e = at_map_gets(&t->by_name, name);

    if (e == NULL) {
        if (t->by_name.len >= t->max) {
            struct at_list *old = at_list_pop_front(&t->lru);
            struct node_gossip_replay_entry *o =
                AT_LIST_ENTRY(old, struct node_gossip_replay_entry, lru);
            at_map_del(&t->by_name, o->name, strlen(o->name));
            at_free(o);
            t->evicted++;
        }
        e = at_calloc(1, sizeof(*e));
        snprintf(e->name, sizeof(e->name), "%s", name);
        at_list_init(&e->lru);
        at_map_put(&t->by_name, e->name, strlen(e->name), e);
    } else {
        at_list_remove(&e->lru);
    }
    at_list_push_back(&t->lru, &e->lru);
    return gossip_replay_check(&e->w, seq);
}
