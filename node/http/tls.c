/* The TLS transport: a TLS 1.2/1.3 server over another transport (TCP, or
 * the in-memory one in tests), with OpenSSL working on in-memory BIOs so
 * that no read or write ever blocks the loop.
 *
 * Happy path: PEEK (the first byte tells the protocol: a TLS record starts
 * 0x16 0x03, an HTTP request with an upper-case method) -> HANDSHAKE
 * (SSL_do_handshake over the bytes read so far; its records go out as they
 * are made) -> OPEN: ciphertext read from the lower transport is decrypted
 * straight into the memory the connection hands out, and each write of the
 * connection is encrypted into one chunk that is written to the lower
 * transport; the write completes when that chunk is through -> CLOSED.
 *
 * Failure modes: plain HTTP on this port -> REJECT: a plain 400 "this port
 * speaks HTTPS" is written, the write side shut down, input dropped until
 * the peer closes (so that the close is not a reset that could eat the
 * answer), then the connection reads EOF. A TLS error (not a TLS hello,
 * an alert from the peer, a bad record) -> FAILED: the alert OpenSSL made
 * is written, the write side shut down, then the connection reads EOF.
 * Either logs one DEBUG line. The connection's header timeout bounds the
 * handshake and the wait for the peer to close. Close in any state: the
 * lower transport closes and queued writes complete with UV_ECANCELED.
 *
 * Memory: the ciphertext input buffer has a fixed size, and the lower
 * transport is read only while the connection reads (or while a REJECT
 * drains). Records for the peer are what the connection wrote, bounded by
 * it, plus file bodies (the sendfile op), which are encrypted one piece at
 * a time and only while less than TLS_HIGH bytes wait in the lower
 * transport. The BIO is this file's own: OpenSSL reads records from the
 * input buffer and writes them straight into the chunk that goes to the
 * lower transport, so ciphertext is copied once on each side. */
#include "common/compat.h"

#define AT_LOG_COMP "http"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <unistd.h>

#include "common/common.h"
#include "node/http/tls_ctx.h"
#include "node/http/transport.h"

#define TLS_IN_SIZE (64 * 1024) /* ciphertext read buffer (> one record) */
#define TLS_RECORD  (16 * 1024) /* plaintext of one record at most */
/* Per record: header, explicit IV or nonce, tag or MAC and padding. */
#define TLS_RECORD_EXTRA 128
#define TLS_OUT_MIN      (8 * 1024) /* a chunk for handshake records */
/* A written chunk up to this size is kept for the next response: most
 * answers (manifests, errors, heads) fit, and keep-alive connections then
 * encrypt without an allocation. A file body's pieces and their chunks are
 * kept too, while it lasts: large allocations freed and made again for
 * every piece cost page faults, or worse when malloc trims its heap. */
#define TLS_SPARE_MAX (32 * 1024)
/* File bodies: one piece is read and encrypted per sendfile call, while
 * less than TLS_HIGH bytes are queued; wait_writable is ready again below
 * TLS_LOW, as soon as one of two queued pieces is through. The piece is
 * large so that OpenSSL fills whole records and the lower transport gets
 * few large writes; the kernel's socket buffer keeps the link busy while
 * the next one is made. */
#define TLS_FILE_READ (512 * 1024)
#define TLS_HIGH      (1024 * 1024)
#define TLS_LOW       (TLS_HIGH - TLS_FILE_READ / 2)

enum tls_state {
    TLS_PEEK,      /* nothing read yet */
    TLS_HANDSHAKE, /* a TLS hello came: handshaking */
    TLS_OPEN,      /* application data */
    TLS_REJECT,    /* plain HTTP came: answering 400, draining */
    TLS_FAILED,    /* TLS failed: the alert goes out, then EOF */
    TLS_CLOSED,    /* close called */
};

#define TO(s) (1u << (s))

static const unsigned tls_allowed[] = {
    [TLS_PEEK] =
        TO(TLS_HANDSHAKE) | TO(TLS_REJECT) | TO(TLS_FAILED) | TO(TLS_CLOSED),
    [TLS_HANDSHAKE] = TO(TLS_OPEN) | TO(TLS_FAILED) | TO(TLS_CLOSED),
    [TLS_OPEN] = TO(TLS_FAILED) | TO(TLS_CLOSED),
    [TLS_REJECT] = TO(TLS_CLOSED),
    [TLS_FAILED] = TO(TLS_CLOSED),
    [TLS_CLOSED] = 0,
};

struct tls;

/* Records for the peer: OpenSSL writes them in through the BIO, then the
 * chunk is one write of the lower transport. */
struct tls_out {
    struct node_http_twrite tw;
    struct tls *t; /* borrowed */
    uint64_t seq;  /* 1, 2, ... in the order written */
    size_t len, cap;
    char data[];
};

struct tls {
    struct node_http_transport base;
    struct node_http_transport *lower; /* owned; NULL once closed */
    SSL *ssl;                          /* owned, with the BIO */
    enum tls_state state;
    char *in; /* owned, TLS_IN_SIZE: ciphertext OpenSSL has not taken */
    size_t in_off, in_len;
    struct tls_out *out; /* owned: the chunk records go into now */
    /* owned: written chunks kept for reuse: [0] a small one, [1] one of a
     * file body's pieces */
    struct tls_out *spare[2];
    char *piece; /* owned, TLS_FILE_READ: a file body's plaintext, or NULL */
    size_t out_hint; /* room for the next chunk */
    size_t queued;   /* bytes of chunks the lower transport has */
    uint64_t seq_queued, seq_done;
    struct at_list writes; /* the connection's: node_http_twrite.u.tls */
    /* 0 while the peer may send more; else what the connection reads once
     * the input is used up: UV_EOF, or the lower transport's error. */
    int end;
    bool up_reading;    /* the connection reads */
    bool lower_reading; /* the lower transport was asked to read */
    bool lower_shut;    /* the lower write side is shut down (or going) */
    bool answering;     /* REJECT/FAILED: the answer is not through yet */
    bool eof_given;     /* the connection got its end */
    bool closing;
    bool client;     /* we dialed: SSL_connect side */
    uv_timer_t pump; /* callbacks that must not run inside their call */
    int handles;     /* pump and lower, until their close callbacks */
    struct node_http_twrite answer_w;
    node_http_alloc_cb alloc_cb;
    node_http_read_cb read_cb;
    node_http_tstatus_cb writable_cb;
    node_http_tstatus_cb shutdown_cb;
    node_http_tclose_cb close_cb;
    char peer[64];
};

static const char reject_answer[] =
    "HTTP/1.1 400 Bad Request\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 23\r\n"
    "Connection: close\r\n"
    "\r\n"
    "this port speaks HTTPS\n";

static void tls_process(struct tls *t);
static int tls_update_lower(struct tls *t);
static void tls_give_end(struct tls *t);

/* SSL_get_error reads this thread's error queue, which other users of
 * OpenSSL on the thread may have left errors on: empty it before each
 * call. Clearing always rewrites every slot; a peek first is cheaper on the
 * usual empty queue. */
static void tls_err_clear(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}
static void tls_on_lower_alloc(struct node_http_transport *lower,
                               size_t hint,
                               uv_buf_t *buf);
static void tls_on_lower_read(struct node_http_transport *lower,
                              ssize_t nread,
                              const uv_buf_t *buf);

static struct tls *tls_of(struct node_http_transport *base)
{
    return AT_CONTAINER_OF(base, struct tls, base);
}

static const struct tls *tls_cof(const struct node_http_transport *base)
{
    return AT_CONTAINER_OF(base, const struct tls, base);
}

static void tls_move(struct tls *t, enum tls_state to)
{
    AT_ASSERT(tls_allowed[t->state] & TO(to));
    t->state = to;
}

/* ---- the BIO: records in from t->in, out into t->out ---- */

static int bio_write_ex(BIO *b, const char *p, size_t n, size_t *written)
{
    struct tls *t = BIO_get_data(b);
    struct tls_out *o = t->out;

    if (o == NULL) {
        size_t cap = AT_MAX(t->out_hint, n);

        int k = cap > TLS_SPARE_MAX;

        if (t->spare[k] != NULL && t->spare[k]->cap >= cap) {
            o = t->spare[k];
            t->spare[k] = NULL;
        } else {
            o = at_malloc(sizeof(*o) + cap);
            o->cap = cap;
        }
        o->t = t;
        o->len = 0;
        t->out = o;
    } else if (o->cap - o->len < n) {
        /* The estimate was short (a large padding, tickets): grow. */
        size_t cap = AT_MAX(o->cap * 2, o->len + n);

        o = at_realloc(o, sizeof(*o) + cap);
        o->cap = cap;
        t->out = o;
    }
    memcpy(o->data + o->len, p, n);
    o->len += n;
    *written = n;
    return 1;
}

static int bio_read_ex(BIO *b, char *p, size_t n, size_t *readbytes)
{
    struct tls *t = BIO_get_data(b);
    size_t avail = t->in_len - t->in_off;

    BIO_clear_retry_flags(b);
    *readbytes = 0;
    if (avail == 0) {
        BIO_set_retry_read(b);
        return 0;
    }
    n = AT_MIN(n, avail);
    memcpy(p, t->in + t->in_off, n);
    t->in_off += n;
    *readbytes = n;
    return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct tls *t = BIO_get_data(b);

    AT_UNUSED(num);
    AT_UNUSED(ptr);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING:
        return t != NULL ? (long)(t->in_len - t->in_off) : 0;
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int bio_destroy(BIO *b)
{
    AT_UNUSED(b);
    return 1;
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_method_once = PTHREAD_ONCE_INIT;

static void bio_method_init(void)
{
    BIO_METHOD *m =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "atoll tls");

    if (m == NULL)
        return;
    BIO_meth_set_write_ex(m, bio_write_ex);
    BIO_meth_set_read_ex(m, bio_read_ex);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    BIO_meth_set_destroy(m, bio_destroy);
    bio_method = m;
}

/* ---- output ---- */

/* Room for the records of n bytes of plaintext. */
static size_t tls_out_size(size_t n)
{
    return n + (n / TLS_RECORD + 1) * TLS_RECORD_EXTRA + 512;
}

/* The connection's writes whose records are through complete, in order. */
static void tls_complete(struct tls *t, int status)
{
    struct at_list *e;

    while ((e = at_list_first(&t->writes)) != NULL) {
        struct node_http_twrite *w =
            AT_LIST_ENTRY(e, struct node_http_twrite, u.tls.link);

        if (w->u.tls.seq > t->seq_done)
            break;
        at_list_remove(e);
        w->cb(w, status);
    }
}

static void tls_writable_check(struct tls *t)
{
    node_http_tstatus_cb cb = t->writable_cb;

    if (cb == NULL || t->closing || t->queued >= TLS_LOW ||
        t->state != TLS_OPEN)
        return;
    t->writable_cb = NULL;
    cb(&t->base, 0);
}

static void tls_on_out_written(struct node_http_twrite *tw, int status)
{
    struct tls_out *o = AT_CONTAINER_OF(tw, struct tls_out, tw);
    struct tls *t = o->t;

    t->queued -= o->len;
    if (o->seq > t->seq_done)
        t->seq_done = o->seq;
    if (t->spare[o->cap > TLS_SPARE_MAX] == NULL && !t->closing)
        t->spare[o->cap > TLS_SPARE_MAX] = o;
    else
        at_free(o);
    tls_complete(t, status);
    tls_writable_check(t);
    if (t->queued == 0 && t->writable_cb == NULL) {
        /* No file body waits for room: it has ended (or stalls on a
         * growing file); its buffers go. */
        at_free(t->piece);
        t->piece = NULL;
        at_free(t->spare[1]);
        t->spare[1] = NULL;
    }
    if (!t->closing && tls_update_lower(t) != 0 && t->end == 0) {
        t->end = UV_EPIPE;
        tls_give_end(t);
    }
}

/* Hand the records made so far to the lower transport. Returns 0 or a
 * negative UV error. */
static int tls_flush(struct tls *t)
{
    struct tls_out *o = t->out;
    uv_buf_t b;
    int rv;

    t->out_hint = TLS_OUT_MIN;
    if (o == NULL)
        return 0;
    t->out = NULL;
    o->seq = t->seq_queued + 1;
    b = uv_buf_init(o->data, (unsigned)o->len);
    rv = t->lower->ops->write(t->lower, &o->tw, &b, 1, tls_on_out_written);
    if (rv != 0) {
        at_free(o);
        return rv;
    }
    t->seq_queued++;
    t->queued += o->len;
    return 0;
}

/* ---- deferred callbacks ---- */

static void tls_on_pump(uv_timer_t *h)
{
    struct tls *t = h->data;

    if (t->closing)
        return;
    tls_complete(t, 0);
    tls_writable_check(t);
    if (!t->closing)
        tls_process(t);
}

static void tls_pump(struct tls *t)
{
    uv_timer_start(&t->pump, tls_on_pump, 0, 0);
}

/* ---- input ---- */

/* The connection reads the end of the input, once. */
static void tls_give_end(struct tls *t)
{
    uv_buf_t b = uv_buf_init(NULL, 0);

    if (t->eof_given || !t->up_reading || t->closing)
        return;
    t->eof_given = true;
    t->up_reading = false;
    t->read_cb(&t->base, t->end, &b);
}

static int tls_update_lower(struct tls *t)
{
    bool want;
    int rv;

    if (t->closing)
        return 0;
    /* Input can make output the connection never sees (KeyUpdate answers,
     * alerts): a peer that sends them and does not read would grow the
     * queue without bound, so input waits while TLS_HIGH bytes are queued,
     * as the connection does not read while a large answer goes out. */
    if (t->state == TLS_REJECT)
        want = t->end == 0;
    else
        want = t->up_reading && t->end == 0 && t->state != TLS_FAILED &&
               t->in_len < TLS_IN_SIZE && t->queued < TLS_HIGH;
    if (want == t->lower_reading)
        return 0;
    if (!want) {
        t->lower->ops->read_stop(t->lower);
        t->lower_reading = false;
        return 0;
    }
    rv = t->lower->ops->read_start(t->lower, tls_on_lower_alloc,
                                   tls_on_lower_read);
    if (rv == 0)
        t->lower_reading = true;
    return rv;
}

static void tls_on_lower_shutdown(struct node_http_transport *lower, int status)
{
    struct tls *t = lower->data;
    node_http_tstatus_cb cb;

    if (t->closing)
        return;
    if (t->answering) {
        /* Our answer (a 400 or an alert) is through. */
        t->answering = false;
        if (t->end == 0 && (t->state == TLS_FAILED || status < 0))
            t->end = status < 0 ? status : UV_EOF;
        tls_process(t);
        return;
    }
    cb = t->shutdown_cb;
    t->shutdown_cb = NULL;
    if (cb != NULL)
        cb(&t->base, status);
}

static void tls_on_answer_written(struct node_http_twrite *tw, int status)
{
    /* The shutdown that follows it reports the outcome. */
    AT_UNUSED(tw);
    AT_UNUSED(status);
}

/* Write the side of the lower transport shut after what is queued (our
 * answer); the connection reads its end once that is through. */
static void tls_answer_end(struct tls *t)
{
    t->in_off = t->in_len = 0;
    if (t->lower_shut ||
        t->lower->ops->shutdown(t->lower, tls_on_lower_shutdown) != 0) {
        if (t->end == 0)
            t->end = UV_EOF;
        return;
    }
    t->lower_shut = true;
    t->answering = true;
}

/* Plain HTTP on the TLS port: a plain 400, then EOF once the peer closed. */
static void tls_reject(struct tls *t)
{
    uv_buf_t b = uv_buf_init((char *)reject_answer, sizeof(reject_answer) - 1);

    if (!node_http__tls_refused(SSL_get_SSL_CTX(t->ssl), t->peer,
                                "plain HTTP on the TLS port (no certificate)"))
        LOG_DEBUG("conn %s: plain HTTP on the TLS port: answered 400", t->peer);
    tls_move(t, TLS_REJECT);
    if (t->lower->ops->write(t->lower, &t->answer_w, &b, 1,
                             tls_on_answer_written) != 0) {
        t->in_off = t->in_len = 0;
        t->end = UV_EOF;
        return;
    }
    tls_answer_end(t);
}

/* TLS failed: the alert goes out, then the connection reads EOF. A
 * handshake refused by certificate checks goes to the context's refused
 * callback (peer mutual TLS), naming the certificate's problem. */
static void tls_fail(struct tls *t, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
    long vr = SSL_get_verify_result(t->ssl);
    char why[200];

    if (vr != X509_V_OK)
        reason = X509_verify_cert_error_string(vr);
    snprintf(why, sizeof(why), "%stls %s: %s", t->client ? "dialing it: " : "",
             what, reason != NULL ? reason : "connection ended");
    if (t->state == TLS_OPEN ||
        !node_http__tls_refused(SSL_get_SSL_CTX(t->ssl), t->peer, why))
        LOG_DEBUG("conn %s: %s", t->peer, why);
    ERR_clear_error();
    tls_move(t, TLS_FAILED);
    if (tls_flush(t) != 0) {
        t->in_off = t->in_len = 0;
        if (t->end == 0)
            t->end = UV_EOF;
        return;
    }
    tls_answer_end(t);
}

static void tls_peek(struct tls *t)
{
    unsigned char c;

    if (t->in_off == t->in_len)
        return;
    c = (unsigned char)t->in[t->in_off];
    if (c >= 'A' && c <= 'Z') {
        tls_reject(t);
        return;
    }
    /* A TLS hello, or bytes OpenSSL refuses with an alert. */
    tls_move(t, TLS_HANDSHAKE);
}

static void tls_handshake(struct tls *t)
{
    int rv, err;

    tls_err_clear();
    rv = SSL_do_handshake(t->ssl);
    if (rv == 1) {
        tls_move(t, TLS_OPEN);
        LOG_DEBUG("conn %s: %s %s", t->peer, SSL_get_version(t->ssl),
                  SSL_get_cipher_name(t->ssl));
        if (t->writable_cb != NULL)
            tls_pump(t); /* a client's first write waited for this */
        return;
    }
    err = SSL_get_error(t->ssl, rv);
    if (err == SSL_ERROR_WANT_READ)
        return;
    tls_fail(t, "handshake");
}

/* Decrypt into the connection's memory while it reads and records are
 * buffered (in t->in, or decrypted and not yet read: SSL_pending). */
static void tls_read_records(struct tls *t)
{
    while (t->up_reading && !t->closing && t->state == TLS_OPEN) {
        uv_buf_t buf = uv_buf_init(NULL, 0);
        int n, err;

        if (t->in_off == t->in_len && SSL_pending(t->ssl) == 0)
            return;
        t->alloc_cb(&t->base, TLS_RECORD, &buf);
        if (buf.len == 0) {
            t->up_reading = false;
            t->read_cb(&t->base, UV_ENOBUFS, &buf);
            return;
        }
        tls_err_clear();
        n = SSL_read(t->ssl, buf.base, (int)AT_MIN(buf.len, (size_t)INT_MAX));
        if (n > 0) {
            t->read_cb(&t->base, n, &buf);
            continue;
        }
        err = SSL_get_error(t->ssl, n);
        t->read_cb(&t->base, 0, &buf); /* gives the memory back */
        if (t->closing || err == SSL_ERROR_WANT_READ)
            return;
        if (err == SSL_ERROR_ZERO_RETURN) {
            /* close_notify: the peer sends nothing more. */
            t->in_off = t->in_len;
            if (t->end == 0)
                t->end = UV_EOF;
            return;
        }
        tls_fail(t, "read");
        return;
    }
}

/* Input arrived, or the connection reads again: move on as far as the
 * bytes allow. */
static void tls_process(struct tls *t)
{
    bool buffered;

    if (t->state == TLS_PEEK)
        tls_peek(t);
    if (t->state == TLS_HANDSHAKE)
        tls_handshake(t);
    if (t->state == TLS_OPEN)
        tls_read_records(t);
    if (t->closing)
        return;
    if (t->state == TLS_REJECT)
        t->in_off = t->in_len = 0;
    if ((t->state == TLS_HANDSHAKE || t->state == TLS_OPEN) &&
        tls_flush(t) != 0) {
        /* Handshake records, tickets, alerts: the lower transport is
         * shutting down or failed: nothing more goes out. */
        t->in_off = t->in_len = 0;
        if (t->end == 0)
            t->end = UV_EPIPE;
    }
    buffered = t->in_off < t->in_len ||
               (t->state == TLS_OPEN && SSL_pending(t->ssl) > 0);
    if (t->end != 0 && !t->answering && !buffered)
        tls_give_end(t);
    if (t->in_off == t->in_len) {
        t->in_off = t->in_len = 0;
    } else if (t->in_off > 0) {
        memmove(t->in, t->in + t->in_off, t->in_len - t->in_off);
        t->in_len -= t->in_off;
        t->in_off = 0;
    }
    if (tls_update_lower(t) != 0 && t->end == 0) {
        t->end = UV_EPIPE;
        tls_give_end(t);
    }
}

static void tls_on_lower_alloc(struct node_http_transport *lower,
                               size_t hint,
                               uv_buf_t *buf)
{
    struct tls *t = lower->data;

    AT_UNUSED(hint);
    if (t->in == NULL)
        t->in = at_malloc(TLS_IN_SIZE);
    *buf = uv_buf_init(t->in + t->in_len, (unsigned)(TLS_IN_SIZE - t->in_len));
}

static void tls_on_lower_read(struct node_http_transport *lower,
                              ssize_t nread,
                              const uv_buf_t *buf)
{
    struct tls *t = lower->data;

    AT_UNUSED(buf);
    if (t->closing || nread == 0)
        return;
    if (nread < 0) {
        t->lower_reading = false; /* the lower transport stopped */
        if (t->end == 0)
            t->end = (int)nread;
    } else {
        t->in_len += (size_t)nread;
    }
    tls_process(t);
}

/* ---- the operations ---- */

static int tls_read_start(struct node_http_transport *base,
                          node_http_alloc_cb alloc_cb,
                          node_http_read_cb read_cb)
{
    struct tls *t = tls_of(base);

    t->alloc_cb = alloc_cb;
    t->read_cb = read_cb;
    if (t->up_reading || t->eof_given)
        return 0;
    t->up_reading = true;
    /* Bytes already here (a pipelined request, a record read while the
     * connection did not read) come on the next loop turn. */
    if (t->in_off < t->in_len || t->end != 0 ||
        (t->state == TLS_OPEN && SSL_pending(t->ssl) > 0))
        tls_pump(t);
    return tls_update_lower(t);
}

static void tls_read_stop(struct node_http_transport *base)
{
    struct tls *t = tls_of(base);

    t->up_reading = false;
    tls_update_lower(t);
}

static int tls_write(struct node_http_transport *base,
                     struct node_http_twrite *w,
                     const uv_buf_t *bufs,
                     unsigned nbufs,
                     node_http_twrite_cb cb)
{
    struct tls *t = tls_of(base);
    size_t total = 0;
    int rv;

    if (t->state != TLS_OPEN || t->lower_shut)
        return UV_EPIPE;
    for (unsigned i = 0; i < nbufs; i++)
        total += bufs[i].len;
    t->out_hint = tls_out_size(total);
    /* A small answer (headers and a manifest) in several buffers goes out
     * as one record: one seal and one record header instead of one per
     * buffer, on both ends. */
    if (nbufs > 1 && total <= TLS_RECORD) {
        char one[TLS_RECORD];
        size_t at = 0;

        for (unsigned i = 0; i < nbufs; i++) {
            memcpy(one + at, bufs[i].base, bufs[i].len);
            at += bufs[i].len;
        }
        tls_err_clear();
        if (SSL_write(t->ssl, one, (int)at) <= 0) {
            tls_fail(t, "write");
            return UV_EPROTO;
        }
        nbufs = 0;
    }
    for (unsigned i = 0; i < nbufs; i++) {
        for (size_t off = 0; off < bufs[i].len;) {
            size_t n = AT_MIN(bufs[i].len - off, (size_t)INT_MAX);

            tls_err_clear();
            if (SSL_write(t->ssl, bufs[i].base + off, (int)n) <= 0) {
                tls_fail(t, "write");
                return UV_EPROTO;
            }
            off += n;
        }
    }
    rv = tls_flush(t);
    if (rv != 0)
        return rv;
    w->t = base;
    w->cb = cb;
    w->u.tls.seq = t->seq_queued;
    at_list_push_back(&t->writes, &w->u.tls.link);
    if (w->u.tls.seq <= t->seq_done)
        tls_pump(t); /* nothing to wait for: complete on the next turn */
    return 0;
}

/* The lower transport's queue: it shrinks as a large chunk goes out, which
 * is how the connection sees progress. */
static size_t tls_write_queue_size(const struct node_http_transport *base)
{
    const struct tls *t = tls_cof(base);

    return t->lower != NULL ? t->lower->ops->write_queue_size(t->lower) : 0;
}

/* A file body: read a large piece, encrypt it into one chunk (OpenSSL cuts
 * the records), write it; the bytes count as sent once queued, up to
 * TLS_HIGH. */
static ssize_t tls_sendfile(struct node_http_transport *base,
                            int fd,
                            uint64_t off,
                            size_t len)
{
    struct tls *t = tls_of(base);
    ssize_t n;
    int rv;

    if (t->state != TLS_OPEN || t->lower_shut)
        return UV_EPIPE;
    if (t->queued >= TLS_HIGH)
        return UV_EAGAIN;
    len = AT_MIN(len, (size_t)TLS_FILE_READ);
    if (t->piece == NULL)
        t->piece = at_malloc(TLS_FILE_READ);
    do {
        n = pread(fd, t->piece, len, (off_t)off);
    } while (n < 0 && errno == EINTR);
    if (n <= 0)
        return n < 0 ? -errno : 0;
    /* Every piece gets a chunk of the same size, so that one is reused. */
    t->out_hint = tls_out_size(TLS_FILE_READ);
    tls_err_clear();
    if (SSL_write(t->ssl, t->piece, (int)n) <= 0) {
        tls_fail(t, "write");
        return UV_EPROTO;
    }
    rv = tls_flush(t);
    return rv != 0 ? rv : n;
}

static int tls_wait_writable(struct node_http_transport *base,
                             node_http_tstatus_cb cb)
{
    struct tls *t = tls_of(base);

    /* Before the handshake is done: when it is (a client's first write). */
    if (t->state != TLS_OPEN && t->state != TLS_HANDSHAKE &&
        t->state != TLS_PEEK)
        return UV_EPIPE;
    t->writable_cb = cb;
    if (t->queued < TLS_LOW)
        tls_pump(t);
    return 0;
}

static int tls_shutdown(struct node_http_transport *base,
                        node_http_tstatus_cb cb)
{
    struct tls *t = tls_of(base);
    int rv;

    if (t->lower_shut)
        return UV_ENOTCONN;
    if (t->state == TLS_OPEN) {
        /* close_notify; the peer's is not waited for. */
        tls_err_clear();
        if (SSL_shutdown(t->ssl) < 0)
            ERR_clear_error();
        rv = tls_flush(t);
        if (rv != 0)
            return rv;
    }
    rv = t->lower->ops->shutdown(t->lower, tls_on_lower_shutdown);
    if (rv != 0)
        return rv;
    t->lower_shut = true;
    t->shutdown_cb = cb;
    return 0;
}

static void tls_gone(struct tls *t)
{
    if (--t->handles > 0)
        return;
    /* Writes without records of their own (empty) were never in a chunk. */
    t->seq_done = UINT64_MAX;
    tls_complete(t, UV_ECANCELED);
    if (t->close_cb != NULL)
        t->close_cb(&t->base);
    SSL_free(t->ssl);
    at_free(t->in);
    at_free(t->out);
    at_free(t->spare[0]);
    at_free(t->spare[1]);
    at_free(t->piece);
    at_free(t);
}

static void tls_on_pump_close(uv_handle_t *h)
{
    tls_gone(h->data);
}

static void tls_on_lower_close(struct node_http_transport *lower)
{
    struct tls *t = lower->data;

    t->lower = NULL;
    tls_gone(t);
}

static void tls_close(struct node_http_transport *base, node_http_tclose_cb cb)
{
    struct tls *t = tls_of(base);

    AT_ASSERT(!t->closing);
    t->closing = true;
    tls_move(t, TLS_CLOSED);
    t->close_cb = cb;
    t->up_reading = false;
    t->writable_cb = NULL;
    t->shutdown_cb = NULL;
    uv_close((uv_handle_t *)&t->pump, tls_on_pump_close);
    t->lower->ops->close(t->lower, tls_on_lower_close);
}

static void tls_peer(const struct node_http_transport *base,
                     char *buf,
                     size_t n)
{
    snprintf(buf, n, "%s", tls_cof(base)->peer);
}

static uv_stream_t *tls_detach(struct node_http_transport *base)
{
    struct tls *t = tls_of(base);
    uv_stream_t *end;

    /* The socket carries TLS state the new owner could not continue: it
     * gets one end of a socket pair, and a pump carries the bytes between
     * the other end and this transport, which lives on in the pump. */
    if (t->state != TLS_OPEN ||
        node_http__pump_new(t->pump.loop, base, t->peer, &end) != 0)
        return NULL;
    return end;
}

static const struct node_http_transport_ops tls_ops = {
    .name = "tls",
    .read_start = tls_read_start,
    .read_stop = tls_read_stop,
    .write = tls_write,
    .write_queue_size = tls_write_queue_size,
    .sendfile = tls_sendfile,
    .wait_writable = tls_wait_writable,
    .shutdown = tls_shutdown,
    .close = tls_close,
    .peer = tls_peer,
    .detach = tls_detach,
};

/* A transport for ssl (taken) over lower (taken, also on failure). */
static int tls_new(SSL *ssl,
                   uv_loop_t *loop,
                   struct node_http_transport *lower,
                   struct node_http_transport **out)
{
    struct tls *t;
    BIO *bio;

    pthread_once(&bio_method_once, bio_method_init);
    bio = ssl != NULL && bio_method != NULL ? BIO_new(bio_method) : NULL;
    if (bio == NULL) {
        SSL_free(ssl);
        ERR_clear_error();
        lower->ops->close(lower, NULL);
        return UV_ENOMEM;
    }
    t = at_calloc(1, sizeof(*t));
    t->base.ops = &tls_ops;
    t->lower = lower;
    lower->data = t;
    t->ssl = ssl;
    BIO_set_data(bio, t);
    SSL_set_bio(ssl, bio, bio); /* one reference, taken by ssl */
    t->state = TLS_PEEK;
    t->out_hint = TLS_OUT_MIN;
    at_list_init(&t->writes);
    uv_timer_init(loop, &t->pump);
    t->pump.data = t;
    t->handles = 2;
    lower->ops->peer(lower, t->peer, sizeof(t->peer));
    *out = &t->base;
    return 0;
}

/* see transport.h */
int node_http__tls_wrap(struct node_http_tls *tls,
                        uv_loop_t *loop,
                        struct node_http_transport *lower,
                        struct node_http_transport **out)
{
    SSL *ssl = SSL_new(node_http__tls_ctx(tls));

    if (ssl != NULL)
        SSL_set_accept_state(ssl);
    return tls_new(ssl, loop, lower, out);
}

/* see transport.h */
void *node_http__tls_session_new(struct node_http_tls *tls, const char *host)
{
    void *cctx = node_http__tls_client_ctx(tls);
    SSL *ssl = cctx != NULL ? SSL_new(cctx) : NULL;
    unsigned char ip[16];
    bool is_ip =
        inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
    int ok;

    if (ssl == NULL) {
        ERR_clear_error();
        return NULL;
    }
    SSL_set_connect_state(ssl);
    /* Node certificates carry the names and IPs peers dial as SANs. */
    if (is_ip)
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
    else
        ok = SSL_set1_host(ssl, host) == 1 &&
             SSL_set_tlsext_host_name(ssl, host) == 1;
    if (!ok) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    return ssl;
}

/* see transport.h */
void node_http__tls_session_free(void *ssl)
{
    SSL_free(ssl);
}

/* see transport.h */
int node_http__tls_connect(void *ssl,
                           uv_loop_t *loop,
                           struct node_http_transport *lower,
                           struct node_http_transport **out)
{
    struct tls *t;
    int rv = tls_new(ssl, loop, lower, out);

    if (rv != 0)
        return rv;
    t = tls_of(*out);
    t->client = true;
    tls_move(t, TLS_HANDSHAKE);
    tls_pump(t); /* the ClientHello goes out on the next turn */
    return 0;
}

/* see transport.h */
size_t node_http__tls_held(const struct node_http_transport *t)
{
    const struct tls *x = tls_cof(t);

    AT_ASSERT(t->ops == &tls_ops);
    return x->queued + (x->out != NULL ? x->out->len : 0);
}

/* see transport.h */
const char *node_http__tls_version(const struct node_http_transport *t)
{
    const struct tls *x = tls_cof(t);

    AT_ASSERT(t->ops == &tls_ops);
    return x->state == TLS_OPEN ? SSL_get_version(x->ssl) : "";
}
