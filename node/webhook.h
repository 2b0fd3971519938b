/* One webhook receiver (webhook.c): events POSTed to one URL, one at a
 * time and in the order they were queued, by a thread of its own.
 *
 * Happy path: node_webhook_send copies the event into the queue (under a
 * mutex: never a wait on the network); the thread POSTs it (a kept-alive
 * connection), a 2xx answer counts it as sent, the next one goes.
 *
 * Failure modes:
 * - receiver down, slow, or answering 5xx, 408 or 429: the same event is
 *   tried again after a backoff (0.5 s doubling to 30 s), for as long as
 *   it takes: later events wait behind it, so order holds;
 * - any other answer (a 4xx: the receiver will never take it): that event
 *   is dropped, counted, and the next one goes;
 * - queue full (queue_max waiting): the oldest waiting event is dropped
 *   and counted. A push never waits for a receiver.
 * - each attempt is bounded by timeout_ms; node_webhook_free aborts the
 *   attempt in flight.
 *
 * The signature: with a secret, each POST carries
 * X-Atoll-Signature-256: sha256=<hex HMAC-SHA256 of the body under the
 * secret> (the receiver recomputes it). The secret and the URL's userinfo
 * are never logged. */
#ifndef NODE_WEBHOOK_H
#define NODE_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#define NODE_WEBHOOK_SIGNATURE_HEADER "X-Atoll-Signature-256"
#define NODE_WEBHOOK_SIGNATURE_SIZE   (7 + 64 + 1) /* "sha256=" hex NUL */
#define NODE_WEBHOOK_BACKOFF_MIN_MS   500
#define NODE_WEBHOOK_BACKOFF_MAX_MS   30000

struct node_webhook;

struct node_webhook_opts {
    const char *url;     /* http:// or https:// */
    const char *secret;  /* NULL or "": unsigned */
    const char *ca_file; /* NULL or "": the system's CAs (https) */
    size_t queue_max;    /* >= 1 */
    uint64_t timeout_ms; /* per attempt */
};

struct node_webhook_stats {
    uint64_t sent;    /* events a receiver took (2xx) */
    uint64_t retries; /* attempts that failed and were tried again */
    uint64_t dropped; /* events given up: queue full, or refused (4xx) */
    uint64_t queued;  /* waiting now, the one in flight included */
    /* the caller's sequence numbers (node_webhook_send, 0s left out):
     * every event up to done_seq is done with (taken, or dropped); the
     * last one queued is last_seq */
    uint64_t done_seq;
    uint64_t last_seq;
};

/* Start a receiver's thread. Everything in o is copied. Returns 0, or
 * AT_EINVAL (bad URL: errmsg) / AT_ENOMEM / AT_EIO (no thread). */
int node_webhook_new(struct node_webhook **out,
                     const struct node_webhook_opts *o,
                     char *errmsg);

/* Any thread: queue one event (a JSON document of len bytes, copied).
 * seq: the caller's number for it, rising (0: none, not tracked). */
void node_webhook_send(struct node_webhook *w,
                       const char *json,
                       size_t len,
                       uint64_t seq);

void node_webhook_stats(struct node_webhook *w, struct node_webhook_stats *st);

/* Stop the thread (an attempt in flight is aborted; what waits is
 * dropped, not counted) and free w. NULL: no-op. */
void node_webhook_free(struct node_webhook *w);

/* "sha256=" and the hex HMAC-SHA256 of body under secret. */
void node_webhook_sign(const char *secret,
                       const void *body,
                       size_t len,
                       char out[NODE_WEBHOOK_SIGNATURE_SIZE]);

#endif /* NODE_WEBHOOK_H */
