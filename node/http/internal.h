/* Private to node/http: the server's objects, shared by its files, and the
 * test seams (socketless connections and counters).
 *
 * The files call each other one way, from the top down: response.c and
 * listener.c; body.c and file.c; parse.c; conn.c, the connection core,
 * which reaches the layers above only through struct node_http_conn_ops;
 * below it framing.c, request.c, recycle.c, tables.c and the transports
 * (tcp.c, mem.c, and tls.c over either, with its contexts in tls_ctx.c). */
#ifndef NODE_HTTP_INTERNAL_H
#define NODE_HTTP_INTERNAL_H

#include <llhttp.h>

#include "node/http/http.h"
#include "node/http/transport.h"

#define INBUF_SIZE     (64 * 1024)
#define DISCARD_MAX    (1024 * 1024)
#define EXT_MIN        (16 * 1024) /* body left before reads go to body_buf */
#define LINGER_MS      2000
#define SENDFILE_BURST (8 * 1024 * 1024)

/* Where a connection is with the request it reads (conn.c has the table of
 * allowed moves, asserted on each). WAIT to STOP are "active": a request
 * is being served, and the response side has its own state below. */
enum conn_state {
    CONN_IDLE,     /* no byte of the next request yet */
    CONN_HEAD,     /* reading a header block */
    CONN_WAIT,     /* the handler has the request, not asked for the body */
    CONN_BODY,     /* body bytes go to the handler */
    CONN_DRAIN,    /* answered early: the rest of a small body is dropped */
    CONN_COMPLETE, /* the whole request is read */
    CONN_STOP,     /* nothing more is read: closes after the response */
    CONN_LINGER,   /* response done, write side shut down, draining input */
    CONN_CLOSED,   /* closing, waiting for the close callbacks */
};

/* Where the response of an active connection is. */
enum resp_state {
    RESP_NONE,    /* nothing sent yet */
    RESP_SENDING, /* the response (or its head, or an error) is written */
    RESP_FILE,    /* its file body goes out */
    RESP_STALLED, /* the file body waits for node_http_resp_stream_limit */
    RESP_UPGRADE, /* a 101 is written; then the socket is handed over */
    RESP_PUSH,    /* the handler pushes the body as it gets it (push.c) */
    RESP_DONE,    /* completely written */
};

/* What the one timer is armed for. It follows from the states, and is kept
 * so that a fixed deadline (header, idle) is not restarted. */
enum conn_deadline {
    DL_NONE,
    DL_IDLE,
    DL_HEADER,
    DL_BODY,
    DL_WRITE,
    DL_LINGER,
};

/* Independent facts about a connection (node_http_conn.flags). */
#define CF_FIRST_REQUEST 0x01u /* no request completed yet */
#define CF_CLOSE_AFTER   0x02u /* close after this response */
#define CF_CONTINUE_SENT 0x04u /* a 100 Continue went out for this request */
#define CF_IN_PARSER     0x08u /* inside llhttp_execute: never re-enter */
#define CF_READING       0x10u /* the transport was asked to read */

struct node_http_conn;

/* How a request's body is framed, chosen when its headers are complete:
 * none, Content-Length or chunked. llhttp does the framing; a reader adds
 * what differs per framing. */
struct node_http_body_reader {
    const char *name;
    bool present; /* body bytes follow the headers */
    /* How many bytes of the next read may go to the handler's memory (all
     * of them body); 0: none. The connection has checked that the handler
     * gives memory, reads now and that nothing is buffered. */
    size_t (*direct_want)(const struct node_http_conn *c);
    /* New input, before llhttp sees it; false: malformed. */
    bool (*check_input)(struct node_http_conn *c, const char *p, size_t n);
    /* A body span llhttp delivered, up to c->parse_end; false: malformed. */
    bool (*check_span)(struct node_http_conn *c, const char *at, size_t n);
    /* The handler answered before the body ended: is what is left small
     * enough to read and drop, keeping the connection? */
    bool (*drainable)(const struct node_http_conn *c);
};

/* framing.c */
extern const struct node_http_body_reader node_http__body_none;
extern const struct node_http_body_reader node_http__body_length;
extern const struct node_http_body_reader node_http__body_chunked;

/* One write of a connection, with the bytes after it. Small ones are
 * recycled (recycle.c). */
struct node_http_write {
    struct node_http_twrite tw;
    struct node_http_conn *conn;       /* borrowed */
    struct node_http_write *next_free; /* in the thread's free list */
    size_t len;                        /* bytes of data to write */
    size_t cap;                        /* room at data */
    char data[];
};

struct node_http_hdr {
    char *name;  /* owned, lowercase */
    char *value; /* owned */
};

struct node_http_req {
    struct node_http_conn *conn; /* borrowed; NULL once detached */
    int refs;
    enum node_http_method method;
    const char *method_str;     /* static (llhttp) */
    struct at_buf url;          /* path, NUL, query */
    const char *query;          /* points into url, or NULL */
    struct node_http_hdr *hdrs; /* owned array */
    size_t nhdrs, hdrs_cap;
    size_t nlines; /* header lines received, joined or not */
    size_t hdr_bytes;
    struct at_buf cur_name, cur_value;
    bool has_length, chunked, expect_continue;
    uint64_t content_length;
    node_http_body_cb on_body;
    node_http_body_buf_cb body_buf; /* may be NULL */
    node_http_end_cb on_end;
    node_http_abort_cb on_abort;
    void *data;    /* handler's */
    void *context; /* the router's (node_http_req_set_context) */
    bool handler_called, body_requested, paused, aborted;
    bool resp_started, resp_done;
    bool reported;  /* the server's done callback ran */
    bool file_body; /* the body goes out from c->file */
    int status;
    uint64_t start_ns;             /* uv_hrtime at the request's first byte */
    uint64_t body_bytes;           /* body bytes the response carries */
    char user[NODE_HTTP_USER_MAX]; /* "" until node_http_req_set_user */
    struct at_buf resp_hdrs;
    char peer[64];
    struct node_http_req *next_free; /* in the thread's free list */
};

struct node_http_conn {
    struct node_http_server *srv; /* borrowed */
    struct at_list link;          /* in srv->conns */
    /* owned: closed with the connection; NULL once an upgrade took it */
    struct node_http_transport *t;
    uv_timer_t timer;
    int handles; /* the timer and the transport until their close */
    enum conn_state state;
    enum resp_state resp;
    enum conn_deadline deadline;
    unsigned flags; /* CF_* */
    llhttp_t parser;
    const struct node_http_body_reader *reader; /* static; this request's */
    const char *parse_end; /* end of the bytes given to llhttp_execute */
    /* llhttp 8.1 accepts chunk data not followed by CRLF (it then reads the
     * excess as the next chunk size): the chunked reader checks it. */
    uint64_t chunk_left; /* data bytes left in the current chunk */
    int crlf_need;       /* CRLF bytes after chunk data not yet seen */
    char *in;            /* owned, INBUF_SIZE */
    size_t in_off, in_len;
    char *ext; /* handler memory the pending read goes to (body_buf), or NULL */
    int err_status;            /* 414/431 decided by a parser callback */
    struct node_http_req *req; /* one reference owned */
    size_t last_wq;            /* the transport's write queue, last seen */
    struct {
        int fd;         /* owned, -1 */
        uint64_t off;   /* next byte to send */
        uint64_t left;  /* bytes still to send */
        uint64_t limit; /* file offset sending stops at until raised */
    } file;
    struct {
        uint64_t left; /* body bytes not pushed yet */
        size_t queued; /* pushed, not written yet */
        node_http_drain_cb on_drain;
    } push;
    node_http_upgrade_cb up_cb; /* set while a 101 is being written */
    void *up_data;
    char peer[64];
};

/* The calls a connection makes to the layer above it, and the only ones:
 * conn.c never calls HTTP/1's parser (parse.c, body.c) or its responses,
 * and another protocol (HTTP/2) would be another set. A server gives its
 * connections theirs (listener.c). */
struct node_http_conn_ops {
    /* A new connection, before anything is read: the protocol's state. */
    void (*start)(struct node_http_conn *c);
    /* Memory other than the connection's buffer for the next read (the
     * handler's, for body bytes): true with *buf set (buf->len > 0). */
    bool (*read_buf)(struct node_http_conn *c, uv_buf_t *buf);
    /* n > 0 bytes were read into the memory read_buf gave, at p. */
    void (*input_direct)(struct node_http_conn *c, const char *p, size_t n);
    /* Buffered input (c->in) may be consumed now: bytes arrived, or a
     * response is done and a pipelined request may wait. */
    void (*input)(struct node_http_conn *c);
    /* A closed connection of s was freed: a stopping server may finish. */
    void (*freed)(struct node_http_server *s);
};

struct node_http_server {
    uv_loop_t *loop; /* borrowed */
    uv_tcp_t tcp;
    uv_timer_t grace;
    bool listening;
    bool grace_closing;
    int handles;
    struct node_http_config cfg;               /* host not kept */
    const struct node_http_conn_ops *conn_ops; /* static */
    node_http_handler handler;
    void *data;
    int port;
    bool stopping;
    struct at_list conns; /* node_http_conn.link: every open or closing */
    size_t nconns;
    void (*stop_cb)(void *data);
    void *stop_data;
    uint64_t sendfile_eagain;
    node_http_done_cb done_cb; /* may be NULL */
    void *done_data;
    struct node_http_tls *tls; /* owned; NULL: plain HTTP */
};

/* A request is being served: WAIT to STOP. */
static inline bool node_http__conn_active(const struct node_http_conn *c)
{
    return c->state >= CONN_WAIT && c->state <= CONN_STOP;
}

/* ---- tables.c ---- */

/* "OK" for 200, ...; "Unknown" for a status without a name here. */
const char *node_http__status_reason(int status);
/* llhttp's method number as ours. */
enum node_http_method node_http__method_map(uint8_t m);

/* ---- recycle.c ---- */

/* A new request of c (one reference). */
struct node_http_req *node_http__req_new(struct node_http_conn *c);
/* Free r (its last reference is gone), or keep it for reuse. */
void node_http__req_free(struct node_http_req *r);
/* A write of c with room for len bytes of data (w->len = len). */
struct node_http_write *node_http__write_new(struct node_http_conn *c,
                                             size_t len);
void node_http__write_free(struct node_http_write *w);
/* A server starts or ends on this thread: objects are kept only while one
 * runs, and the last one to go frees them (so nothing is kept at exit). */
void node_http__recycle_hold(void);
void node_http__recycle_release(void);

/* ---- conn.c: the connection core ---- */

/* A connection of s over t (ownership passes), reading at once. */
struct node_http_conn *node_http__conn_new(struct node_http_server *s,
                                           struct node_http_transport *t);
/* Move to state `to`; asserts that the transition is allowed. */
void node_http__conn_move(struct node_http_conn *c, enum conn_state to);
/* Move the response to `to`; asserts that the transition is allowed. */
void node_http__resp_move(struct node_http_conn *c, enum resp_state to);
/* The connection lets go of its request (response complete or connection
 * gone). */
void node_http__conn_detach_req(struct node_http_conn *c);
/* The request of c is over (complete: its response is written): the
 * server's done callback runs, once per request the handler had. */
void node_http__conn_report(struct node_http_conn *c, bool complete);
/* Connection failed before the response completed: tell the handler once. */
void node_http__conn_abort_req(struct node_http_conn *c);
/* Queue w (ownership passes); cb runs when it is written, and should begin
 * with node_http__write_done. A failure to queue closes the connection. */
void node_http__conn_write(struct node_http_conn *c,
                           struct node_http_write *w,
                           node_http_twrite_cb cb);
/* Common start of every write callback: frees the write and returns its
 * connection, or NULL when there is nothing more to do (the connection is
 * closing, or the write failed and the connection is closed now). */
struct node_http_conn *node_http__write_done(struct node_http_twrite *tw,
                                             int status);
/* True while buffered input may be handed to the parser. */
bool node_http__conn_can_parse(const struct node_http_conn *c);
/* Arm the one timer for what the connection waits on now. Progress restarts
 * body and write timeouts; header and idle deadlines are fixed. */
void node_http__conn_timer_update(struct node_http_conn *c, bool progress);
/* Start or stop reading the transport as the state wants. */
void node_http__conn_update_reading(struct node_http_conn *c);
/* Close at once; the handler's abort callback runs if it still waits, and
 * an upgrade's callback (with a NULL stream) if its 101 was not through. */
void node_http__conn_close(struct node_http_conn *c);
/* After a complete response that closes the connection: shut the write
 * side down, drain input for a moment so that unread request bytes do not
 * turn the close into a reset, then close. */
void node_http__conn_close_graceful(struct node_http_conn *c);
/* The response is completely written: next request, or close. */
void node_http__conn_resp_done(struct node_http_conn *c);
/* Response written and request fully read (COMPLETE, or STOP with
 * CF_CLOSE_AFTER): next request or close. */
void node_http__conn_request_finish(struct node_http_conn *c);

/* ---- parse.c: HTTP/1 requests, read with llhttp ---- */

/* conn_ops.start: a new connection's parser, with the server's callbacks. */
void node_http__parser_init(struct node_http_conn *c);
/* conn_ops.input: with node_http__parse_direct, the only caller of
 * llhttp_execute. Parses buffered input for as long as the connection may
 * consume it, resuming after each pause once allowed. */
void node_http__parse(struct node_http_conn *c);
/* conn_ops.input_direct: n body bytes were read into the handler's memory
 * at p. */
void node_http__parse_direct(struct node_http_conn *c, const char *p, size_t n);

/* ---- body.c ---- */

/* conn_ops.read_buf: while a Content-Length body is read and nothing is
 * buffered, the next read may go to the handler's memory
 * (node_http_req_body_buf), up to the body's end. */
bool node_http__body_read_buf(struct node_http_conn *c, uv_buf_t *buf);
/* The handler answers before the body was read: drain a small rest or stop
 * reading and close. */
void node_http__body_settle(struct node_http_conn *c);

/* ---- response.c ---- */

/* Status line and headers for a body of clen bytes, plus room for `extra`
 * bytes after them in the same allocation (*head_len: where they start). */
struct node_http_write *node_http__resp_head(struct node_http_req *r,
                                             uint64_t clen,
                                             size_t extra,
                                             size_t *head_len);

/* ---- file.c ---- */

/* Send the file body (RESP_FILE) from c->file.off on, or go on sending
 * it. */
void node_http__file_send(struct node_http_conn *c);

/* ---- test seams ---- */

/* A server without a listener, for connections made with
 * node_http__conn_new_mem. Free it with node_http_stop. */
struct node_http_server *node_http__server_new_mem(
    uv_loop_t *loop,
    const struct node_http_config *cfg,
    node_http_handler handler,
    void *data);

/* A connection over the in-memory transport (transport.h): input comes
 * from node_http__conn_feed, output is appended to *out (borrowed) and each
 * write completes only when node_http__conn_flush is called. A response
 * that closes the connection leaves it lingering (reading and dropping
 * input) until node_http__conn_eof or node_http__conn_close, as a socket
 * would. The connection is freed by the loop after it closed (run the loop
 * once more), so stop using the pointer once node_http__conn_closed is true
 * or after node_http__conn_close. */
struct node_http_conn *node_http__conn_new_mem(struct node_http_server *s,
                                               struct at_buf *out);
/* Bytes accepted (0 when the connection is not reading: paused, waiting for
 * the handler or a response, or closed). */
size_t node_http__conn_feed(struct node_http_conn *c, const char *p, size_t n);
/* Complete the pending writes; returns how many completed. */
int node_http__conn_flush(struct node_http_conn *c);
/* The peer closed its side: the connection closes (aborting a request). */
void node_http__conn_eof(struct node_http_conn *c);
bool node_http__conn_closed(const struct node_http_conn *c);

/* How many times sendfile(2) hit EAGAIN on this server. */
uint64_t node_http__sendfile_eagains(const struct node_http_server *s);

#endif /* NODE_HTTP_INTERNAL_H */
