/* The --bootstrap-expect decision: see bootstrap.h for the rules. */
#include "common/compat.h"

#include "node/cluster/bootstrap.h"

static bool live(const struct gossip_member_info *m)
{
    return m->state == GOSSIP_ALIVE || m->state == GOSSIP_SUSPECT;
}

static bool votes(const struct gossip_member_info *m)
{
    return strcmp(m->meta.role, "voter") == 0;
}

/* FNV-1a over one name, folded into h; the candidates are combined with
 * a sum so that the order of the table does not matter. */
static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

/* see bootstrap.h */
void node_boot_init(struct node_boot *b,
                    const char *self,
                    const char *role,
                    unsigned expect,
                    uint64_t settle_ms)
{
    memset(b, 0, sizeof(*b));
    snprintf(b->self, sizeof(b->self), "%s", self);
    b->self_votes = strcmp(role, "voter") == 0;
    b->expect = expect;
    b->settle_ms = settle_ms;
}

/* Rule 1: a live member already in a cluster, one that may vote first.
 * Its peer address (else its gossip address) in join_addr. */
static bool find_cluster(const struct node_boot *b,
                         const struct gossip_member_info *m,
                         size_t n,
                         char *join_addr)
{
    const struct gossip_member_info *best = NULL;

    for (size_t i = 0; i < n; i++) {
        if (!live(&m[i]) || strcmp(m[i].name, b->self) == 0 ||
            !(m[i].meta.flags & GOSSIP_META_IN_CLUSTER))
            continue;
        if (best == NULL || (votes(&m[i]) && !votes(best)))
            best = &m[i];
    }
    if (best == NULL)
        return false;
    snprintf(
        join_addr, GOSSIP_ADDR_MAX, "%s",
        best->meta.peer_addr[0] != '\0' ? best->meta.peer_addr : best->addr);
    return true;
}

/* see bootstrap.h */
enum node_boot_decision node_boot_decide(struct node_boot *b,
                                         const struct gossip_member_info *m,
                                         size_t n,
                                         uint64_t now_ms,
                                         char *join_addr,
                                         char *why,
                                         size_t whylen)
{
    char dummy[1];
    const char *lowest = NULL;
    uint64_t hash = 0;
    unsigned count = 0;

    if (why == NULL) {
        why = dummy;
        whylen = sizeof(dummy);
    }
    if (find_cluster(b, m, n, join_addr))
        return NODE_BOOT_JOIN;
    for (size_t i = 0; i < n; i++) {
        if (!live(&m[i]) || !votes(&m[i]))
            continue;
        count++;
        hash += name_hash(m[i].name);
        if (lowest == NULL || strcmp(m[i].name, lowest) < 0)
            lowest = m[i].name;
    }
    if (count < b->expect) {
        b->set_hash = 0;
        snprintf(why, whylen, "%u of %u nodes that may vote see each other",
                 count, b->expect);
        return NODE_BOOT_WAIT;
    }
    if (hash != b->set_hash || b->stable_since == 0) {
        b->set_hash = hash;
        b->stable_since = now_ms;
    }
    if (now_ms - b->stable_since < b->settle_ms) {
        snprintf(why, whylen, "%u nodes that may vote: letting the set settle",
                 count);
        return NODE_BOOT_WAIT;
    }
    if (b->self_votes && strcmp(lowest, b->self) == 0)
        return NODE_BOOT_BOOTSTRAP;
    snprintf(why, whylen, "waiting for '%s' (lowest name of %u) to bootstrap",
             lowest, count);
    return NODE_BOOT_WAIT;
}
