/* The local queue of applied changes for the event stream: see
 * events.h. */
#include "common/compat.h"

#include <string.h>

#include "raft/events.h"
#include "raft/meta.h"

struct meta_eventq {
    struct meta_event *v;
    size_t n, cap;
    uint64_t dropped;
    /* a DeleteTag's target, noted before it applies */
    bool was_found;
    struct at_digest was;
};

static char *dup_or_null(const char *s)
{
    return s != NULL && s[0] != '\0' ? at_strdup(s) : NULL;
}

static void digest_from(struct at_digest *d, ProtobufCBinaryData b)
{
    AT_ASSERT(b.len == AT_DIGEST_LEN); /* checked by proto_command_unpack */
    memcpy(d->bytes, b.data, AT_DIGEST_LEN);
}

/* see events.h */
void meta__events_before(struct meta_fsm *f, const Atoll__Command *c)
{
    struct meta_eventq *q = f->events;
    if (q == NULL || c->op_case != ATOLL__COMMAND__OP_DELETE_TAG)
        return;
    q->was_found = meta_fsm_tag_resolve(f, c->delete_tag->repo,
                                        c->delete_tag->tag, &q->was) == 0;
}

/* see events.h */
void meta__events_after(struct meta_fsm *f,
                        uint64_t index,
                        const Atoll__Command *c,
                        int res)
{
    struct meta_eventq *q = f->events;
    struct meta_event ch = { .index = index, .time_ms = c->timestamp_ms };

    if (q == NULL || res != META_OK)
        return;
    switch (c->op_case) {
    case ATOLL__COMMAND__OP_PUT_MANIFEST:
        ch.kind = META_EVENT_PUSH;
        ch.repo = at_strdup(c->put_manifest->repo);
        ch.tag = dup_or_null(c->put_manifest->tag);
        ch.media_type = dup_or_null(c->put_manifest->media_type);
        ch.has_digest = true;
        digest_from(&ch.digest, c->put_manifest->digest);
        ch.size = c->put_manifest->bytes.len;
        break;
    case ATOLL__COMMAND__OP_DELETE_MANIFEST:
        ch.kind = META_EVENT_DELETE_MANIFEST;
        ch.repo = at_strdup(c->delete_manifest->repo);
        ch.has_digest = true;
        digest_from(&ch.digest, c->delete_manifest->digest);
        break;
    case ATOLL__COMMAND__OP_DELETE_TAG:
        ch.kind = META_EVENT_DELETE_TAG;
        ch.repo = at_strdup(c->delete_tag->repo);
        ch.tag = at_strdup(c->delete_tag->tag);
        ch.has_digest = q->was_found;
        ch.digest = q->was;
        break;
    default:
        return;
    }
    q->was_found = false;
    if (q->n >= META_EVENTS_MAX) {
        q->dropped++;
        at_free(ch.repo);
        at_free(ch.tag);
        at_free(ch.media_type);
        return;
    }
    if (q->n == q->cap) {
        q->cap = q->cap != 0 ? 2 * q->cap : 64;
        q->v = at_realloc(q->v, q->cap * sizeof(*q->v));
    }
    q->v[q->n++] = ch;
}

/* see events.h */
void meta__events_release(struct meta_fsm *f)
{
    struct meta_eventq *q = f->events;
    if (q == NULL)
        return;
    meta_events_free(q->v, q->n);
    at_free(q);
    f->events = NULL;
}

/* see meta.h */
void meta_events_free_one(struct meta_event *e)
{
    at_free(e->repo);
    at_free(e->tag);
    at_free(e->media_type);
    e->repo = e->tag = e->media_type = NULL;
}

/* see meta.h */
void meta_events_free(struct meta_event *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        meta_events_free_one(&c[i]);
    at_free(c);
}

/* see events.h */
void meta__events_record(struct meta_fsm *f, bool on)
{
    if (on && f->events == NULL)
        f->events = at_calloc(1, sizeof(*f->events));
    else if (!on)
        meta__events_release(f);
}

/* see events.h */
size_t meta__events_take(struct meta_fsm *f,
                         struct meta_event **out,
                         uint64_t *dropped)
{
    struct meta_eventq *q = f->events;
    size_t n = q != NULL ? q->n : 0;

    *out = NULL;
    *dropped = 0;
    if (q == NULL)
        return 0;
    *dropped = q->dropped;
    q->dropped = 0;
    if (n > 0) {
        *out = q->v;
        q->v = NULL;
        q->n = q->cap = 0;
    }
    return n;
}
