/* Checks on a decoded message before the protocol trusts any of it. */
#include <string.h>

#include "gossip/msg.h"

#define TERMINATED(a) (memchr((a), '\0', sizeof(a)) != NULL)

static bool meta_valid(const struct gossip_meta *m)
{
    return TERMINATED(m->region) && TERMINATED(m->zone) &&
           TERMINATED(m->role) && TERMINATED(m->api_addr) &&
           TERMINATED(m->peer_addr) && TERMINATED(m->version);
}

/* see msg.h */
bool gossip_update_valid(const struct gossip_update *u)
{
    if (u->kind < GOSSIP_UPDATE_ALIVE || u->kind > GOSSIP_UPDATE_LEAVE)
        return false;
    return TERMINATED(u->name) && u->name[0] != '\0' && TERMINATED(u->addr) &&
           TERMINATED(u->from) && meta_valid(&u->meta);
}

/* see msg.h */
bool gossip_msg_valid(const struct gossip_msg *m)
{
    if (m->type < GOSSIP_MSG_PING || m->type > GOSSIP_MSG_UPDATES)
        return false;
    if (!TERMINATED(m->from) || m->from[0] == '\0' || !TERMINATED(m->target) ||
        !TERMINATED(m->target_addr))
        return false;
    if (m->type == GOSSIP_MSG_PING_REQ &&
        (m->target[0] == '\0' || m->target_addr[0] == '\0'))
        return false;
    if (m->n_updates > GOSSIP_MSG_UPDATES_MAX)
        return false;
    for (uint32_t i = 0; i < m->n_updates; i++)
        if (!gossip_update_valid(&m->updates[i]))
            return false;
    return true;
}
