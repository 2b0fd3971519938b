/* The chunk queue of an upload session: the buffers that the write chain and
 * the hash chain both consume in order, reservations for bytes read straight
 * into them, and the core's cache of spare buffers. Loop thread only. */
#include "common/compat.h"

#define AT_LOG_COMP "storage"

#include "storage/internal.h"

static struct storage__chunk *chunk_new(struct storage__core *core,
                                        size_t cap,
                                        uint64_t off)
{
    struct at_list *l =
        cap == STORAGE__CHUNK ? at_list_pop_front(&core->chunk_cache) : NULL;
    struct storage__chunk *c;

    if (l != NULL) {
        c = AT_LIST_ENTRY(l, struct storage__chunk, link);
        core->chunks_cached--;
    } else {
        c = at_malloc(sizeof(*c) + cap);
        at_list_init(&c->link);
    }
    c->off = off;
    c->len = 0;
    c->cap = cap;
    c->sealed = false;
    c->wrote = false;
    c->hashed = false;
    return c;
}

static void chunk_free(struct storage__core *core, struct storage__chunk *c)
{
    PRE(!at_list_linked(&c->link));
    if (c->cap == STORAGE__CHUNK &&
        core->chunks_cached < STORAGE__CHUNK_CACHE_MAX) {
        at_list_push_front(&core->chunk_cache, &c->link);
        core->chunks_cached++;
        return;
    }
    free(c);
}

/* see internal.h */
void storage__chunks_drop(struct storage_upload *u)
{
    struct at_list *l;

    while ((l = at_list_pop_front(&u->chunks)) != NULL)
        chunk_free(u->core, AT_LIST_ENTRY(l, struct storage__chunk, link));
    if (u->c_spare != NULL)
        chunk_free(u->core, u->c_spare);
    u->c_spare = NULL;
}

/* see internal.h */
void storage__chunk_cache_drop(struct storage__core *core)
{
    struct at_list *l;

    core->chunks_cached = 0;
    while ((l = at_list_pop_front(&core->chunk_cache)) != NULL)
        free(AT_LIST_ENTRY(l, struct storage__chunk, link));
}

/* see internal.h */
void storage__chunks_append(struct storage_upload *u, const void *p, size_t n)
{
    const char *src = p;

    while (n > 0) {
        struct storage__chunk *c = storage__chunk_last(u);
        size_t k;
        if (c == NULL || c->sealed) {
            size_t cap = (at_list_empty(&u->chunks) && n < STORAGE__CHUNK_SMALL)
                             ? STORAGE__CHUNK_SMALL
                             : STORAGE__CHUNK;
            if (u->c_spare != NULL && src == u->c_spare->data) {
                c = u->c_spare; /* the bytes are already in it */
                u->c_spare = NULL;
                c->off = u->size;
            } else {
                c = chunk_new(u->core, cap, u->size);
            }
            at_list_push_back(&u->chunks, &c->link);
            if (u->wr_next == NULL)
                u->wr_next = c;
            if (u->h_next == NULL)
                u->h_next = c;
        }
        k = AT_MIN(n, c->cap - c->len);
        if (src != c->data + c->len) /* else placed by storage_upload_reserve */
            memcpy(c->data + c->len, src, k);
        c->len += k;
        c->sealed = c->len == c->cap;
        u->size += k;
        u->queued += k;
        src += k;
        n -= k;
    }
}

/* see internal.h */
void storage__chunks_reserve(struct storage_upload *u,
                             size_t want,
                             char **p,
                             size_t *n)
{
    struct storage__chunk *c = storage__chunk_last(u);

    if (c == NULL || c->sealed || c->len == c->cap) {
        if (u->c_spare == NULL)
            u->c_spare = chunk_new(u->core, STORAGE__CHUNK, 0);
        c = u->c_spare;
    }
    *p = c->data + c->len;
    *n = AT_MIN(want, c->cap - c->len);
}

/* see internal.h */
void storage__chunks_forget(struct storage_upload *u)
{
    /* Chunks no chain has taken are never needed again; those in a batch
     * in flight are freed by its completion. */
    for (struct storage__chunk *c = u->wr_next; c != NULL;
         c = storage__chunk_after(u, c))
        c->wrote = true;
    for (struct storage__chunk *c = u->h_next; c != NULL;
         c = storage__chunk_after(u, c))
        c->hashed = true;
    u->wr_next = NULL;
    u->h_next = NULL;
    storage__chunks_release_done(u);
}

/* see internal.h */
void storage__chunks_release_done(struct storage_upload *u)
{
    struct at_list *l;

    while ((l = at_list_first(&u->chunks)) != NULL) {
        struct storage__chunk *c =
            AT_LIST_ENTRY(l, struct storage__chunk, link);
        if (!c->wrote || !c->hashed)
            break;
        at_list_remove(&c->link);
        AT_ASSERT(u->wr_next != c && u->h_next != c);
        AT_ASSERT(u->queued >= c->len);
        u->queued -= c->len;
        chunk_free(u->core, c);
    }
}

/* see internal.h */
size_t storage__chunks_take(const struct storage_upload *u,
                            struct storage__chunk **next,
                            size_t cap,
                            bool need_sealed)
{
    size_t bytes = 0;
    size_t n = 0;
    struct storage__chunk *c = *next;

    while (c != NULL && bytes < cap && (!need_sealed || c->sealed)) {
        c->sealed = true;
        bytes += c->len;
        n++;
        c = storage__chunk_after(u, c);
    }
    *next = c;
    return n;
}

/* see internal.h */
void storage__chunks_mark_wrote(struct storage__chunk *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        c->wrote = true;
        if (i + 1 < n)
            c = storage__chunk_next(c);
    }
}

/* see internal.h */
void storage__chunks_mark_hashed(struct storage__chunk *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        c->hashed = true;
        if (i + 1 < n)
            c = storage__chunk_next(c);
    }
}

/* see storage.h */
bool storage_upload_busy(const struct storage_upload *u)
{
    return u->queued > u->core->write_high_water;
}

/* see storage.h */
size_t storage_upload_queued(const struct storage_upload *u)
{
    return u->queued;
}
