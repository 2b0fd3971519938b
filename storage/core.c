/* The store's loop-side core: the state its sessions share with it (timers,
 * defer list, chunk cache), which outlives struct storage and is freed once
 * the store is closed, every session struct is freed and both timers are
 * closed. */
#include "common/compat.h"

#define AT_LOG_COMP "storage"

#include "storage/internal.h"

static void core_maybe_free(struct storage__core *c)
{
    if (c->closing && c->sessions == 0 && c->handles_open == 0) {
        storage__chunk_cache_drop(c);
        free(c);
    }
}

static void on_handle_close(uv_handle_t *h)
{
    struct storage__core *c = h->data;

    AT_ASSERT(c->handles_open > 0);
    c->handles_open--;
    core_maybe_free(c);
}

static void close_defer_timer(struct storage__core *c)
{
    if (c->defer_closing || c->handles_open == 0)
        return;
    c->defer_closing = true;
    uv_close((uv_handle_t *)&c->defer_timer, on_handle_close);
}

/* see internal.h */
void storage__session_new(struct storage__core *c)
{
    PRE(!c->closing);
    c->sessions++;
}

/* see internal.h */
void storage__session_freed(struct storage__core *c)
{
    AT_ASSERT(c->sessions > 0);
    c->sessions--;
    if (c->closing && c->sessions == 0)
        close_defer_timer(c);
    core_maybe_free(c);
}

/* see internal.h */
struct storage__core *storage__core_new(struct storage *s, uv_loop_t *loop)
{
    struct storage__core *c = at_calloc(1, sizeof(*c));

    c->s = s;
    c->loop = loop;
    at_list_init(&c->defer);
    at_list_init(&c->chunk_cache);
    return c;
}

/* see internal.h */
void storage__core_timers_init(struct storage__core *c)
{
    uv_timer_init(c->loop, &c->purge_timer);
    uv_timer_init(c->loop, &c->defer_timer);
    c->purge_timer.data = c;
    c->defer_timer.data = c;
    c->handles_open = 2;
}

/* see internal.h */
void storage__core_close(struct storage__core *c)
{
    c->closing = true;
    c->s = NULL;
    uv_close((uv_handle_t *)&c->purge_timer, on_handle_close);
    if (c->sessions == 0)
        close_defer_timer(c);
}
