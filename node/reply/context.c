/* The handlers' shared context: the consistency of tag reads. */
#include "common/compat.h"

#include "node/reply/context.h"

/* see context.h */
bool node_api_read_now(struct node_api *api)
{
    if (api->cfg != NULL && api->cfg->read_consistency != NULL &&
        strcmp(api->cfg->read_consistency, "local") == 0)
        return true;
    return api->meta != NULL && meta_read_now(api->meta);
}

/* see context.h */
int node_api_read_barrier(struct node_api *api, meta_read_cb cb, void *data)
{
    if (api->cfg != NULL && api->cfg->read_consistency != NULL &&
        strcmp(api->cfg->read_consistency, "local") == 0) {
        cb(data, 0);
        return 0;
    }
    return meta_read_barrier(api->meta, cb, data);
}
