/* The applied changes handed to their consumers: see changes.h. */
#include "common/compat.h"

#include "common/common.h"
#include "node/changes.h"

struct consumer {
    node_changes_cb cb;
    void *data;
};

struct node_changes {
    struct node_api *api; /* borrowed */
    uv_check_t check;
    struct consumer c[NODE_CHANGES_CONSUMERS];
    size_t n;
};

static void on_check(uv_check_t *h)
{
    struct node_changes *ch = h->data;
    struct node_api *api = ch->api;
    struct meta_event *v = NULL;
    uint64_t dropped = 0;

    if (api->meta == NULL || api->stopping || ch->n == 0)
        return;
    size_t n = meta_events_take(api->meta, &v, &dropped);
    if (n == 0 && dropped == 0)
        return;
    /* a consumer may remove itself from its callback: a copy of the list */
    struct consumer c[NODE_CHANGES_CONSUMERS];
    size_t nc = ch->n;
    memcpy(c, ch->c, sizeof(c));
    for (size_t i = 0; i < nc; i++)
        c[i].cb(c[i].data, v, n, dropped);
    meta_events_free(v, n);
}

static void on_closed(uv_handle_t *h)
{
    at_free(h->data);
}

/* see changes.h */
bool node_changes_add(struct node_api *api, node_changes_cb cb, void *data)
{
    struct node_changes *ch = api->changes;

    if (ch == NULL) {
        ch = at_calloc(1, sizeof(*ch));
        ch->api = api;
        AT_ASSERT(uv_check_init(api->loop, &ch->check) == 0);
        ch->check.data = ch;
        uv_check_start(&ch->check, on_check);
        uv_unref((uv_handle_t *)&ch->check);
        api->changes = ch;
    }
    if (ch->n == NODE_CHANGES_CONSUMERS)
        return false;
    ch->c[ch->n++] = (struct consumer){ cb, data };
    if (api->meta != NULL)
        meta_events_record(api->meta, true);
    return true;
}

/* see changes.h */
void node_changes_remove(struct node_api *api, node_changes_cb cb, void *data)
{
    struct node_changes *ch = api->changes;

    for (size_t i = 0; ch != NULL && i < ch->n; i++) {
        if (ch->c[i].cb == cb && ch->c[i].data == data) {
            ch->c[i] = ch->c[--ch->n];
            break;
        }
    }
    if (ch != NULL && ch->n == 0 && api->meta != NULL)
        meta_events_record(api->meta, false);
}

/* see changes.h */
void node_changes_stop(struct node_api *api)
{
    struct node_changes *ch = api->changes;
    if (ch == NULL)
        return;
    api->changes = NULL;
    uv_check_stop(&ch->check);
    uv_close((uv_handle_t *)&ch->check, on_closed);
}
