/* A node's accounts for the verifier: the FSM's users and robots, and the
 * read barrier that makes a change committed elsewhere visible here. */
#include "common/compat.h"

#include "node/auth/auth.h"

static bool meta_lookup(void *data,
                        bool robot,
                        const char *name,
                        struct node_auth_record *rec)
{
    struct node_api *api = data;

    if (api->meta == NULL)
        return false;
    if (robot) {
        const struct meta_robot *r = meta_robot_get(api->meta, name);
        if (r == NULL)
            return false;
        rec->hash = r->secret_hash;
        rec->version = r->index;
        rec->expires_ms = r->expires_ms;
        return true;
    }
    const struct meta_user *u = meta_user_get(api->meta, name);
    if (u == NULL)
        return false;
    rec->hash = u->password_hash;
    rec->version = u->index;
    rec->admin = u->admin;
    return true;
}

static int meta_barrier(void *data,
                        void (*cb)(void *cb_data, int status),
                        void *cb_data)
{
    struct node_api *api = data;

    if (api->meta == NULL || api->stopping)
        return AT_ESHUTDOWN;
    return node_api_read_barrier(api, cb, cb_data);
}

/* see auth.h */
struct node_auth_source node_auth_source_meta(struct node_api *api)
{
    struct node_auth_source s = { meta_lookup, meta_barrier, api };
    return s;
}
