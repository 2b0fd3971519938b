/* The node's event stream: see events.h. */
#include "common/compat.h"

#define AT_LOG_COMP "events"

#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <time.h>

#include "common/common.h"
#include "node/events.h"

#define SECRET_MAX 4096

struct node_events {
    struct node_api *api; /* borrowed */
    uv_check_t check;
    struct node_webhook **hooks; /* owned */
    size_t nhooks;
    uint64_t lost;     /* changes the FSM dropped before we took them */
    uint64_t pull_seq; /* pull events sent by this node */
    uint64_t start_ms; /* makes pull ids unique across restarts */
    char *source;      /* owned: of pull events, "/atoll/node/<name>" */
};

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

/* Queue one CloudEvent (structured mode) at every receiver. */
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
    json_t *data = json_object();
    json_t *ce;
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
    ce = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o}", "specversion",
                   "1.0", "id", id, "source", source, "type", type, "subject",
                   subject, "time", when, "datacontenttype", "application/json",
                   "data", data);
    at_free(subject);
    char *body = ce != NULL ? json_dumps(ce, JSON_COMPACT) : NULL;
    if (body != NULL) {
        for (size_t i = 0; i < ev->nhooks; i++)
            node_webhook_send(ev->hooks[i], body, strlen(body));
        free(body);
    }
    json_decref(ce);
}

/* After each loop turn: the changes applied meanwhile, sent when this
 * node leads (a follower drops them: the leader sends its own). */
static void on_check(uv_check_t *h)
{
    struct node_events *ev = h->data;
    struct node_api *api = ev->api;
    struct meta_event *v = NULL;
    uint64_t dropped = 0;
    struct meta_status st;

    if (api->meta == NULL || api->stopping)
        return;
    size_t n = meta_events_take(api->meta, &v, &dropped);
    if (n == 0 && dropped == 0)
        return;
    meta_status_get(api->meta, &st);
    if (st.state == 3 /* RAFT_LEADER */) {
        ev->lost += dropped;
        for (size_t i = 0; i < n; i++) {
            char id[24];
            snprintf(id, sizeof(id), "%" PRIu64, v[i].index);
            emit(ev, kind_type(v[i].kind), "/atoll/log", id, v[i].time_ms,
                 v[i].repo, v[i].tag, v[i].has_digest ? &v[i].digest : NULL,
                 v[i].media_type, v[i].size, v[i].index);
        }
    }
    meta_events_free(v, n);
}

/* The first line of path, 1 to SECRET_MAX bytes. */
static int read_secret(const char *path, char **out, char *errmsg)
{
    char buf[SECRET_MAX + 1];
    FILE *f = fopen(path, "re");
    size_t n;

    if (f == NULL) {
        at_errmsg_printf(errmsg, "events_secret_file '%s': %s", path,
                         strerror(errno));
        return AT_EINVAL;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (buf[0] == '\0' || n == sizeof(buf) - 1) {
        at_errmsg_printf(errmsg,
                         "events_secret_file '%s': want one line of 1 to "
                         "%d bytes",
                         path, SECRET_MAX);
        return AT_EINVAL;
    }
    *out = at_strdup(buf);
    return 0;
}

static void free_hooks(struct node_events *ev)
{
    for (size_t i = 0; i < ev->nhooks; i++)
        node_webhook_free(ev->hooks[i]);
    at_free(ev->hooks);
    ev->hooks = NULL;
    ev->nhooks = 0;
}

static void on_check_closed(uv_handle_t *h)
{
    struct node_events *ev = h->data;
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
        (rv = read_secret(cfg->events_secret_file, &secret, errmsg)) != 0)
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
    if (rv == 0)
        rv = uv_check_init(api->loop, &ev->check) == 0 ? 0 : AT_EIO;
    if (rv != 0) {
        free_hooks(ev);
        at_free(ev->source);
        at_free(ev);
        return rv;
    }
    ev->check.data = ev;
    uv_check_start(&ev->check, on_check);
    uv_unref((uv_handle_t *)&ev->check);
    api->events = ev;
    if (cfg->events_pull)
        api->on_pulled = node_events_pulled;
    if (api->meta != NULL)
        meta_events_record(api->meta, true);
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
    if (api->meta != NULL)
        meta_events_record(api->meta, false);
    free_hooks(ev);
    uv_check_stop(&ev->check);
    uv_close((uv_handle_t *)&ev->check, on_check_closed);
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
                       uint64_t *lost)
{
    struct node_events *ev = api->events;
    memset(st, 0, sizeof(*st));
    *lost = 0;
    if (ev == NULL)
        return;
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
