/* The node's event stream: see events.h. */
#include "common/compat.h"

#define AT_LOG_COMP "events"

#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <time.h>

#include "common/common.h"
#include "node/changes.h"
#include "node/events.h"

struct node_events {
    struct node_api *api;        /* borrowed */
    struct node_webhook **hooks; /* owned */
    size_t nhooks;
    uint64_t lost;     /* changes the FSM dropped before we took them */
    uint64_t pull_seq; /* pull events sent by this node */
    uint64_t start_ms; /* makes pull ids unique across restarts */
    char *source;      /* owned: of pull events, "/atoll/node/<name>" */
    /* the changes applied here lately, oldest first (a ring of ring_cap):
     * what a new leader sends again past the delivered mark */
    struct meta_event *ring; /* owned, with their strings */
    size_t ring_head, ring_n, ring_cap;
    uv_timer_t tick;       /* leadership, and the delivered mark */
    unsigned handles;      /* check + tick not yet closed */
    bool leading;          /* this node sends the log's events */
    bool proposing;        /* a mark in flight */
    uint64_t last_emitted; /* the highest index handed to receivers */
    uint64_t mark;         /* the delivered mark, as known here */
    uint64_t mark_ms;      /* when this node last proposed one */
};

#define EVENTS_TICK_MS  250
#define EVENTS_MARK_MS  1000 /* at most one mark proposal per second */
#define EVENTS_MARK_KEY "events_delivered"

/* RFC 3339, UTC, with milliseconds. */
static void format_time(uint64_t ms, char out[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03uZ", (unsigned)(ms % 1000));
}

static const char *kind_type(enum meta_event_kind k)
{
    switch (k) {
    case META_EVENT_PUSH:
        return "io.atoll.manifest.pushed";
    case META_EVENT_DELETE_MANIFEST:
        return "io.atoll.manifest.deleted";
    case META_EVENT_DELETE_TAG:
        return "io.atoll.tag.deleted";
    }
    return "io.atoll.unknown";
}

/* Queue one CloudEvent (structured mode, data taken) at every receiver;
 * seq: the receivers' sequence number (0: not tracked). */
static void send_event(struct node_events *ev,
                       const char *type,
                       const char *source,
                       const char *id,
                       const char *when,
                       const char *subject,
                       json_t *data,
                       uint64_t seq)
{
    json_t *ce = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o}",
                           "specversion", "1.0", "id", id, "source", source,
                           "type", type, "subject", subject, "time", when,
                           "datacontenttype", "application/json", "data", data);
    char *body = ce != NULL ? json_dumps(ce, JSON_COMPACT) : NULL;
    if (body != NULL) {
        for (size_t i = 0; i < ev->nhooks; i++)
            node_webhook_send(ev->hooks[i], body, strlen(body), seq);
        free(body);
    }
    json_decref(ce);
}

/* A change or a pull as a CloudEvent at every receiver. */
static void emit(struct node_events *ev,
                 const char *type,
                 const char *source,
                 const char *id,
                 uint64_t time_ms,
                 const char *repo,
                 const char *tag,
                 const struct at_digest *d,
                 const char *media_type,
                 uint64_t size,
                 uint64_t index)
{
    char when[32], dstr[AT_DIGEST_STR_SIZE];
    /* index: the log's, also each receiver's sequence number (0: a pull,
     * not tracked) */
    json_t *data = json_object();
    char *subject;

    format_time(time_ms, when);
    json_object_set_new(data, "repository", json_string(repo));
    if (tag != NULL)
        json_object_set_new(data, "tag", json_string(tag));
    if (d != NULL)
        json_object_set_new(data, "digest",
                            json_string(at_digest_format(d, dstr)));
    if (media_type != NULL)
        json_object_set_new(data, "mediaType", json_string(media_type));
    if (size > 0)
        json_object_set_new(data, "size", json_integer((json_int_t)size));
    if (index > 0)
        json_object_set_new(data, "index", json_integer((json_int_t)index));
    if (tag != NULL)
        subject = at_asprintf("%s:%s", repo, tag);
    else if (d != NULL)
        subject = at_asprintf("%s@%s", repo, dstr);
    else
        subject = at_strdup(repo);
    send_event(ev, type, source, id, when, subject, data, index);
    at_free(subject);
}

static void emit_change(struct node_events *ev, const struct meta_event *e)
{
    char id[24];
    snprintf(id, sizeof(id), "%" PRIu64, e->index);
    emit(ev, kind_type(e->kind), "/atoll/log", id, e->time_ms, e->repo, e->tag,
         e->has_digest ? &e->digest : NULL, e->media_type, e->size, e->index);
    if (e->index > ev->last_emitted)
        ev->last_emitted = e->index;
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? at_strdup(s) : NULL;
}

/* A copy of e (its strings too) at the ring's end; the oldest goes when
 * it is full. */
static void ring_push(struct node_events *ev, const struct meta_event *e)
{
    if (ev->ring_n == ev->ring_cap) {
        meta_events_free_one(&ev->ring[ev->ring_head]);
        ev->ring_head = (ev->ring_head + 1) % ev->ring_cap;
        ev->ring_n--;
    }
    struct meta_event *slot =
        &ev->ring[(ev->ring_head + ev->ring_n) % ev->ring_cap];
    *slot = *e;
    slot->repo = dup_or_null(e->repo);
    slot->tag = dup_or_null(e->tag);
    slot->media_type = dup_or_null(e->media_type);
    ev->ring_n++;
}

/* The delivered mark as applied here: every change up to it reached
 * every receiver (or was given up). */
static uint64_t mark_applied(struct node_events *ev)
{
    const char *v = meta_setting_get(ev->api->meta, EVENTS_MARK_KEY, NULL);
    uint64_t m = 0;
    if (v != NULL && at_parse_u64(v, strlen(v), &m) != 0)
        m = 0;
    return m;
}

/* Leading now (or not): a node that takes over sends again, in order,
 * the changes it holds past the delivered mark (a receiver may see some
 * twice: ids tell), and sends the log's changes from then on. */
static void lead_check(struct node_events *ev, bool leader)
{
    if (!leader) {
        ev->leading = false;
        return;
    }
    if (ev->leading)
        return;
    ev->leading = true;
    ev->mark = mark_applied(ev);
    ev->mark_ms = at_now_ms();
    size_t again = 0;
    for (size_t i = 0; i < ev->ring_n; i++) {
        const struct meta_event *e =
            &ev->ring[(ev->ring_head + i) % ev->ring_cap];
        if (e->index > ev->mark && e->index > ev->last_emitted) {
            emit_change(ev, e);
            again++;
        }
    }
    if (again > 0)
        LOG_INFO(
            "events: leading now; %zu change(s) past the delivered "
            "mark %" PRIu64 " sent again",
            again, ev->mark);
}

/* The changes applied meanwhile (changes.h) go into the ring, and to the
 * receivers when this node leads (a follower keeps them for the day it
 * takes over). */
static void on_changes(void *data,
                       const struct meta_event *v,
                       size_t n,
                       uint64_t dropped)
{
    struct node_events *ev = data;
    struct node_api *api = ev->api;

    lead_check(ev, meta_is_leader(api->meta));
    if (ev->leading)
        ev->lost += dropped;
    for (size_t i = 0; i < n; i++) {
        if (ev->leading)
            emit_change(ev, &v[i]);
        ring_push(ev, &v[i]);
    }
}

/* Where the receivers are: every change up to it is done with. */
static uint64_t delivered(struct node_events *ev)
{
    uint64_t d = ev->last_emitted;
    for (size_t i = 0; i < ev->nhooks; i++) {
        struct node_webhook_stats st;
        node_webhook_stats(ev->hooks[i], &st);
        if (st.queued > 0 && st.done_seq < d)
            d = st.done_seq;
    }
    return d;
}

static void on_mark(void *data, int status, int result, uint64_t index)
{
    struct node_events *ev = data;
    AT_UNUSED(index);
    ev->proposing = false;
    if (status != 0 || result != META_OK)
        LOG_DEBUG("events: delivered mark not recorded: %s",
                  status != 0 ? at_strerror(status) : meta_result_str(result));
}

/* Leadership, and the leader's delivered mark through the log (at most
 * once a second, and only when it moved), so that a new leader knows
 * where to start again. */
static void on_tick(uv_timer_t *t)
{
    struct node_events *ev = t->data;
    struct node_api *api = ev->api;

    if (api->meta == NULL || api->stopping)
        return;
    lead_check(ev, meta_is_leader(api->meta));
    if (!ev->leading || ev->proposing ||
        at_now_ms() - ev->mark_ms < EVENTS_MARK_MS)
        return;
    uint64_t d = delivered(ev);
    if (d <= ev->mark)
        return;
    char value[24];
    snprintf(value, sizeof(value), "%" PRIu64, d);
    struct meta_cmd c = {
        .kind = META_CMD_SET_SETTING,
        .set_setting = { .key = EVENTS_MARK_KEY, .value = value },
    };
    ev->mark_ms = at_now_ms();
    if (meta_propose(api->meta, &c, on_mark, ev) == 0) {
        ev->proposing = true;
        ev->mark = d;
    }
}

static void free_hooks(struct node_events *ev)
{
    for (size_t i = 0; i < ev->nhooks; i++)
        node_webhook_free(ev->hooks[i]);
    at_free(ev->hooks);
    ev->hooks = NULL;
    ev->nhooks = 0;
}

static void on_handle_closed(uv_handle_t *h)
{
    struct node_events *ev = h->data;
    if (--ev->handles > 0)
        return;
    for (size_t i = 0; i < ev->ring_n; i++)
        meta_events_free_one(&ev->ring[(ev->ring_head + i) % ev->ring_cap]);
    at_free(ev->ring);
    at_free(ev->source);
    at_free(ev);
}

/* see events.h */
int node_events_start(struct node_api *api, const char *name, char *errmsg)
{
    const struct node_config *cfg = api->cfg;
    struct node_events *ev;
    char *secret = NULL;
    int rv = 0;

    if (api->events != NULL || cfg->events_url == NULL ||
        cfg->events_url[0] == '\0')
        return 0;
    if (cfg->events_secret_file[0] != '\0' &&
        (rv = node_config_read_secret(
             "events_secret_file", cfg->events_secret_file, &secret, errmsg)) !=
            0)
        return rv;
    ev = at_calloc(1, sizeof(*ev));
    ev->api = api;
    ev->start_ms = at_wall_ms();
    ev->source = at_asprintf("/atoll/node/%s", name);
    for (const char *u = cfg->events_url; *u != '\0';) {
        size_t len = strcspn(u, ",");
        char *url = at_strndup(u, len);
        struct node_webhook_opts o = {
            .url = url,
            .secret = secret,
            .ca_file = cfg->events_tls_ca,
            .queue_max = (size_t)cfg->events_queue,
            .timeout_ms = cfg->events_timeout_ms,
        };
        struct node_webhook *w = NULL;
        rv = node_webhook_new(&w, &o, errmsg);
        at_free(url);
        if (rv != 0)
            break;
        ev->hooks = at_realloc(ev->hooks, (ev->nhooks + 1) * sizeof(w));
        ev->hooks[ev->nhooks++] = w;
        u += len + (u[len] == ',');
    }
    if (secret != NULL) {
        explicit_bzero(secret, strlen(secret));
        at_free(secret);
    }
    if (rv != 0) {
        free_hooks(ev);
        at_free(ev->source);
        at_free(ev);
        return rv;
    }
    ev->ring_cap = (size_t)cfg->events_queue;
    ev->ring = at_calloc(ev->ring_cap, sizeof(*ev->ring));
    AT_ASSERT(uv_timer_init(api->loop, &ev->tick) == 0);
    ev->handles = 1;
    ev->tick.data = ev;
    uv_timer_start(&ev->tick, on_tick, EVENTS_TICK_MS, EVENTS_TICK_MS);
    uv_unref((uv_handle_t *)&ev->tick);
    api->events = ev;
    if (cfg->events_pull)
        api->on_pulled = node_events_pulled;
    node_changes_add(api, on_changes, ev);
    LOG_INFO("events: %zu receiver(s)%s%s", ev->nhooks,
             cfg->events_pull ? ", pulls included" : "",
             cfg->events_secret_file[0] != '\0' ? ", signed" : "");
    return 0;
}

/* see events.h */
void node_events_stop(struct node_api *api)
{
    struct node_events *ev = api->events;
    if (ev == NULL)
        return;
    api->events = NULL;
    api->on_pulled = NULL;
    node_changes_remove(api, on_changes, ev);
    free_hooks(ev);
    uv_timer_stop(&ev->tick);
    uv_close((uv_handle_t *)&ev->tick, on_handle_closed);
}

/* see events.h */
void node_events_pulled(struct node_api *api,
                        const char *repo,
                        const char *tag,
                        const struct at_digest *d,
                        const char *media_type,
                        uint64_t size)
{
    struct node_events *ev = api->events;
    char id[48];

    if (ev == NULL || !api->cfg->events_pull)
        return;
    snprintf(id, sizeof(id), "%" PRIu64 "-%" PRIu64, ev->start_ms,
             ++ev->pull_seq);
    emit(ev, "io.atoll.manifest.pulled", ev->source, id, at_wall_ms(), repo,
         tag, d, media_type, size, 0);
}

/* see events.h */
void node_events_stats(struct node_api *api,
                       struct node_webhook_stats *st,
                       uint64_t *lost,
                       uint64_t *mark)
{
    struct node_events *ev = api->events;
    memset(st, 0, sizeof(*st));
    *lost = 0;
    *mark = 0;
    if (ev == NULL)
        return;
    if (api->meta != NULL)
        *mark = mark_applied(ev);
    for (size_t i = 0; i < ev->nhooks; i++) {
        struct node_webhook_stats one;
        node_webhook_stats(ev->hooks[i], &one);
        st->sent += one.sent;
        st->retries += one.retries;
        st->dropped += one.dropped;
        st->queued += one.queued;
    }
    *lost = ev->lost;
}

/* see events.h */
void node_events_replication(struct node_api *api,
                             const char *rule,
                             const char *result_json)
{
    struct node_events *ev = api->events;
    char when[32], id[48];
    json_t *data;

    if (ev == NULL)
        return;
    data = json_loads(result_json, 0, NULL);
    if (!json_is_object(data)) {
        json_decref(data);
        return;
    }
    json_object_set_new(data, "rule", json_string(rule));
    format_time(at_wall_ms(), when);
    snprintf(id, sizeof(id), "%" PRIu64 "-%" PRIu64, ev->start_ms,
             ++ev->pull_seq);
    send_event(ev, "io.atoll.replication.finished", ev->source, id, when, rule,
               data, 0);
}
