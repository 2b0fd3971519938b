/* Opening and closing the store. */
#include "common/compat.h"

#define AT_LOG_COMP "storage"

#include "storage/internal.h"

static bool tag_valid(const char *tag)
{
    size_t n = strnlen(tag, 17);

    if (n < 1 || n > 16)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = tag[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

/* see storage.h */
int storage_open(struct storage *s,
                 uv_loop_t *loop,
                 const struct storage_config *cfg)
{
    uint64_t interval;
    int rv;

    PRE(cfg != NULL && cfg->dir != NULL);
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->core = storage__core_new(s, loop);
    at_map_init(&s->uploads);
    s->free_bytes = UINT64_MAX;
    if (cfg->dir[0] == '\0') {
        at_errmsg_printf(s->errmsg, "store dir is empty");
        free(s->core);
        s->core = NULL;
        return AT_EINVAL;
    }
    if (storage_node_tag_set(s, cfg->node_tag) != 0) {
        free(s->core);
        s->core = NULL;
        return AT_EINVAL;
    }
    s->dir = at_strdup(cfg->dir);
    s->reserve_bytes = cfg->reserve_bytes;
    s->upload_ttl_ms = cfg->upload_ttl_ms;
    s->write_high_water = cfg->write_high_water != 0
                              ? cfg->write_high_water
                              : STORAGE__HIGH_WATER_DEFAULT;
    s->core->write_high_water = s->write_high_water;

    rv = storage__layout_init(s);
    if (rv != 0)
        goto err;
    rv = storage__uploads_load(s);
    if (rv != 0)
        goto err_after_load;

    storage__core_timers_init(s->core);
    if (s->upload_ttl_ms > 0) {
        interval = AT_MAX(s->upload_ttl_ms / 2, 10);
        interval = AT_MIN(interval, STORAGE__PURGE_MAX_MS);
        uv_timer_start(&s->core->purge_timer, storage__purge_timer_cb, interval,
                       interval);
        uv_unref((uv_handle_t *)&s->core->purge_timer);
        storage_upload_purge(s);
    }
    return 0;

err_after_load:
    storage__uploads_drop(s);
err:
    at_map_release(&s->uploads);
    free(s->dir);
    free(s->node_tag);
    s->dir = NULL;
    s->node_tag = NULL;
    AT_ASSERT(s->core->sessions == 0);
    free(s->core);
    s->core = NULL;
    return rv;
}

/* see storage.h */
void storage_close(struct storage *s)
{
    struct storage__core *c = s->core;

    if (s->closing)
        return;
    s->closing = true;
    if (c == NULL)
        return; /* storage_open() failed: nothing to close */
    s->core = NULL;
    storage__core_close(c);
    storage__uploads_drop(s);
    at_map_release(&s->uploads);
    free(s->dir);
    free(s->node_tag);
    s->dir = NULL;
    s->node_tag = NULL;
}

/* see storage.h */
int storage_node_tag_set(struct storage *s, const char *tag)
{
    if (tag != NULL && tag[0] != '\0' && !tag_valid(tag)) {
        at_errmsg_printf(s->errmsg, "node tag '%.32s': want [a-z0-9]{1,16}",
                         tag);
        return AT_EINVAL;
    }
    free(s->node_tag);
    s->node_tag = tag != NULL && tag[0] != '\0' ? at_strdup(tag) : NULL;
    return 0;
}

/* see storage.h */
bool storage_closed(const struct storage *s)
{
    return s->closing;
}

/* see storage.h */
const char *storage_errmsg(const struct storage *s)
{
    return s->errmsg;
}
