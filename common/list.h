/* Intrusive doubly-linked circular list: one shape for every queue.
 *
 * A list is a head (struct at_list) that links to itself when empty. An
 * element embeds a struct at_list and is found back with AT_LIST_ENTRY.
 * Nothing allocates; removal is O(1) and leaves the element unlinked
 * (linked to itself), so at_list_remove twice, or on an element that was
 * initialized and never inserted, is harmless.
 *
 *     struct waiter { struct at_list link; ... };
 *     struct at_list waiters;              at_list_init(&waiters);
 *     at_list_push_back(&waiters, &w->link);
 *     for (struct at_list *i = at_list_first(&waiters); i != NULL;
 *          i = at_list_next(&waiters, i)) { ...AT_LIST_ENTRY(i, ...)... }
 *     while ((i = at_list_pop_front(&waiters)) != NULL) { ... }
 *
 * To run callbacks that may insert into or remove from the same list, move
 * it aside first with at_list_move. */
#ifndef AT_LIST_H
#define AT_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct at_list {
    struct at_list *next;
    struct at_list *prev;
};

/* The struct of type `type` whose member `member` is at `ptr`. */
#define AT_LIST_ENTRY(ptr, type, member) \
    ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* An empty list, or an unlinked element. */
static inline void at_list_init(struct at_list *h)
{
    h->next = h;
    h->prev = h;
}

static inline bool at_list_empty(const struct at_list *h)
{
    return h->next == h;
}

/* An element is linked while it is in some list (after at_list_init). */
static inline bool at_list_linked(const struct at_list *e)
{
    return e->next != e;
}

static inline void at_list__insert(struct at_list *e,
                                   struct at_list *prev,
                                   struct at_list *next)
{
    e->prev = prev;
    e->next = next;
    prev->next = e;
    next->prev = e;
}

/* Append e (not in any list) at the tail of h. */
static inline void at_list_push_back(struct at_list *h, struct at_list *e)
{
    at_list__insert(e, h->prev, h);
}

/* Insert e (not in any list) at the head of h. */
static inline void at_list_push_front(struct at_list *h, struct at_list *e)
{
    at_list__insert(e, h, h->next);
}

/* Unlink e from its list (no-op when unlinked); e is left unlinked. */
static inline void at_list_remove(struct at_list *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
    at_list_init(e);
}

/* The first element, or NULL when empty. */
static inline struct at_list *at_list_first(const struct at_list *h)
{
    return h->next != h ? h->next : NULL;
}

/* The last element, or NULL when empty. */
static inline struct at_list *at_list_last(const struct at_list *h)
{
    return h->prev != h ? h->prev : NULL;
}

/* The element after e in h, or NULL at the end. */
static inline struct at_list *at_list_next(const struct at_list *h,
                                           const struct at_list *e)
{
    return e->next != h ? e->next : NULL;
}

/* Unlink and return the first element, or NULL when empty. */
static inline struct at_list *at_list_pop_front(struct at_list *h)
{
    struct at_list *e = at_list_first(h);
    if (e != NULL)
        at_list_remove(e);
    return e;
}

/* Move every element of from to the tail of to, in order; from is left
 * empty. */
static inline void at_list_move(struct at_list *from, struct at_list *to)
{
    if (at_list_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    at_list_init(from);
}

/* Count the elements (O(n); for tests and metrics). */
static inline size_t at_list_count(const struct at_list *h)
{
    size_t n = 0;
    for (const struct at_list *e = h->next; e != h; e = e->next)
        n++;
    return n;
}

/* Walk h with pos (struct at_list *); pos may not be removed. */
#define AT_LIST_FOREACH(pos, h) \
    for ((pos) = (h)->next; (pos) != (h); (pos) = (pos)->next)

/* Walk h with pos; pos (and only pos) may be removed or freed. */
#define AT_LIST_FOREACH_SAFE(pos, tmp, h)                      \
    for ((pos) = (h)->next, (tmp) = (pos)->next; (pos) != (h); \
         (pos) = (tmp), (tmp) = (pos)->next)

#endif /* AT_LIST_H */
