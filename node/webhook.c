/* One webhook receiver: see webhook.h. */
#include "common/compat.h"

#define AT_LOG_COMP "events"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "common/common.h"
#include "node/webhook.h"

struct event {
    char *json; /* owned */
    size_t len;
    uint64_t seq;
};

struct node_webhook {
    char *url;     /* owned */
    char *shown;   /* owned: url without its userinfo, for logs */
    char *secret;  /* owned; NULL: unsigned */
    char *ca_file; /* owned; NULL: system CAs */
    uint64_t timeout_ms;
    size_t queue_max;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    /* under mu: a ring of waiting events */
    struct event *ring;
    size_t head, n;
    bool inflight;
    bool stop;
    atomic_bool abort; /* stop, read by curl's progress callback */
    uint64_t sent, retries, dropped;
    uint64_t done_seq, last_seq;
};

/* see webhook.h */
void node_webhook_sign(const char *secret,
                       const void *body,
                       size_t len,
                       char out[NODE_WEBHOOK_SIGNATURE_SIZE])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    static const char hex[] = "0123456789abcdef";

    HMAC(EVP_sha256(), secret, (int)strlen(secret), body, len, mac, &n);
    memcpy(out, "sha256=", 7);
    for (unsigned i = 0; i < n && i < 32; i++) {
        out[7 + 2 * i] = hex[mac[i] >> 4];
        out[8 + 2 * i] = hex[mac[i] & 15];
    }
    out[7 + 64] = '\0';
}

/* The URL for logs: scheme://host... without "user:password@". */
static char *shown_url(const char *url)
{
    const char *rest = strstr(url, "://");
    const char *at;
    const char *end;

    if (rest == NULL)
        return at_strdup(url);
    rest += 3;
    end = rest + strcspn(rest, "/?#");
    at = memchr(rest, '@', (size_t)(end - rest));
    if (at == NULL)
        return at_strdup(url);
    return at_asprintf("%.*s%s", (int)(rest - url), url, at + 1);
}

static size_t discard(char *p, size_t size, size_t nmemb, void *data)
{
    (void)p;
    (void)data;
    return size * nmemb;
}

static int progress(void *data,
                    curl_off_t dltotal,
                    curl_off_t dlnow,
                    curl_off_t ultotal,
                    curl_off_t ulnow)
{
    struct node_webhook *w = data;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return atomic_load(&w->abort) ? 1 : 0;
}

/* One attempt. Returns 0 (taken), 1 (try again later), -1 (refused for
 * good: drop it). */
static int post(struct node_webhook *w, CURL *easy, const struct event *ev)
{
    struct curl_slist *h = NULL;
    char sig[NODE_WEBHOOK_SIGNATURE_SIZE];
    char line[sizeof(NODE_WEBHOOK_SIGNATURE_HEADER) + 2 + sizeof(sig)];
    long http = 0;
    CURLcode rc;

    h = curl_slist_append(
        h, "Content-Type: application/cloudevents+json; charset=utf-8");
    h = curl_slist_append(h, "Expect:");
    if (w->secret != NULL) {
        node_webhook_sign(w->secret, ev->json, ev->len, sig);
        snprintf(line, sizeof(line), "%s: %s", NODE_WEBHOOK_SIGNATURE_HEADER,
                 sig);
        h = curl_slist_append(h, line);
    }
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, ev->json);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)ev->len);
    rc = curl_easy_perform(easy);
    if (rc == CURLE_OK)
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &http);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h);
    if (rc != CURLE_OK) {
        if (!atomic_load(&w->abort))
            LOG_DEBUG("webhook %s: %s", w->shown, curl_easy_strerror(rc));
        return 1;
    }
    if (http >= 200 && http < 300)
        return 0;
    if (http >= 500 || http == 408 || http == 429)
        return 1;
    LOG_WARN("webhook %s answered %ld: event dropped", w->shown, http);
    return -1;
}

static CURL *easy_new(struct node_webhook *w)
{
    CURL *e = curl_easy_init();
    if (e == NULL)
        return NULL;
    curl_easy_setopt(e, CURLOPT_URL, w->url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)w->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)AT_MIN(w->timeout_ms, 10000));
    curl_easy_setopt(e, CURLOPT_USERAGENT, "atoll-events");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, w);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    if (w->ca_file != NULL)
        curl_easy_setopt(e, CURLOPT_CAINFO, w->ca_file);
    return e;
}

/* Wait ms on the condition, or until stop. Under mu. */
static void wait_ms(struct node_webhook *w, uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (!w->stop && pthread_cond_timedwait(&w->cond, &w->mu, &ts) == 0)
        ;
}

static void *run(void *data)
{
    struct node_webhook *w = data;
    CURL *easy = easy_new(w);

    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stop && w->n == 0)
            pthread_cond_wait(&w->cond, &w->mu);
        if (w->stop)
            break;
        struct event ev = w->ring[w->head];
        w->head = (w->head + 1) % w->queue_max;
        w->n--;
        w->inflight = true;
        uint64_t backoff = NODE_WEBHOOK_BACKOFF_MIN_MS;
        for (;;) {
            pthread_mutex_unlock(&w->mu);
            int rv = easy != NULL ? post(w, easy, &ev) : 1;
            pthread_mutex_lock(&w->mu);
            if (rv == 0)
                w->sent++;
            else if (rv < 0)
                w->dropped++;
            if (rv <= 0 || w->stop)
                break;
            w->retries++;
            wait_ms(w, backoff);
            if (w->stop)
                break;
            backoff = AT_MIN(2 * backoff, NODE_WEBHOOK_BACKOFF_MAX_MS);
        }
        at_free(ev.json);
        if (ev.seq != 0)
            w->done_seq = ev.seq;
        w->inflight = false;
    }
    pthread_mutex_unlock(&w->mu);
    if (easy != NULL)
        curl_easy_cleanup(easy);
    return NULL;
}

/* see webhook.h */
int node_webhook_new(struct node_webhook **out,
                     const struct node_webhook_opts *o,
                     char *errmsg)
{
    struct node_webhook *w;

    *out = NULL;
    if (strncmp(o->url, "http://", 7) != 0 &&
        strncmp(o->url, "https://", 8) != 0) {
        at_errmsg_printf(errmsg,
                         "webhook URL must start with http:// or "
                         "https://");
        return AT_EINVAL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        at_errmsg_printf(errmsg, "curl_global_init failed");
        return AT_EIO;
    }
    w = at_calloc(1, sizeof(*w));
    w->url = at_strdup(o->url);
    w->shown = shown_url(o->url);
    w->secret =
        o->secret != NULL && o->secret[0] != '\0' ? at_strdup(o->secret) : NULL;
    w->ca_file = o->ca_file != NULL && o->ca_file[0] != '\0'
                     ? at_strdup(o->ca_file)
                     : NULL;
    w->timeout_ms = o->timeout_ms;
    w->queue_max = o->queue_max > 0 ? o->queue_max : 1;
    w->ring = at_calloc(w->queue_max, sizeof(*w->ring));
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cond, NULL);
    if (pthread_create(&w->thread, NULL, run, w) != 0) {
        at_errmsg_printf(errmsg, "webhook thread: %s", strerror(errno));
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->mu);
        at_free(w->ring);
        at_free(w->ca_file);
        at_free(w->secret);
        at_free(w->shown);
        at_free(w->url);
        at_free(w);
        return AT_EIO;
    }
    *out = w;
    return 0;
}

/* see webhook.h */
void node_webhook_send(struct node_webhook *w,
                       const char *json,
                       size_t len,
                       uint64_t seq)
{
    struct event ev = { at_malloc(len + 1), len, seq };
    memcpy(ev.json, json, len);
    ev.json[len] = '\0';
    pthread_mutex_lock(&w->mu);
    if (w->n == w->queue_max) {
        /* full: the oldest waiting one goes */
        at_free(w->ring[w->head].json);
        w->head = (w->head + 1) % w->queue_max;
        w->n--;
        w->dropped++;
    }
    w->ring[(w->head + w->n) % w->queue_max] = ev;
    w->n++;
    if (seq != 0)
        w->last_seq = seq;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

/* see webhook.h */
void node_webhook_stats(struct node_webhook *w, struct node_webhook_stats *st)
{
    pthread_mutex_lock(&w->mu);
    st->sent = w->sent;
    st->retries = w->retries;
    st->dropped = w->dropped;
    st->queued = w->n + (w->inflight ? 1 : 0);
    st->done_seq = w->done_seq;
    st->last_seq = w->last_seq;
    pthread_mutex_unlock(&w->mu);
}

/* see webhook.h */
void node_webhook_free(struct node_webhook *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    atomic_store(&w->abort, true);
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    for (size_t i = 0; i < w->n; i++)
        at_free(w->ring[(w->head + i) % w->queue_max].json);
    at_free(w->ring);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->mu);
    at_free(w->ca_file);
    at_free(w->secret);
    at_free(w->shown);
    at_free(w->url);
    at_free(w);
}
