/* Private to node/http: the server's objects, shared by its files, and the
 * test seams (socketless connections and counters). */
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

enum conn_state {
    CS_IDLE,   /* no byte of the next request yet */
    CS_HEAD,   /* reading a header block */
    CS_ACTIVE, /* a request is being served (or an error response written) */
    CS_LINGER, /* response done, write side shut down, draining input */
    CS_CLOSED, /* uv_close called, waiting for the close callbacks */
};

enum body_mode {
    BM_WAIT,    /* handler has not asked for the body: parser paused */
    BM_READ,    /* body delivered to the handler */
    BM_DISCARD, /* response sent early, remaining (small) body dropped */
    BM_STOP,    /* never read further; the connection closes */
};

enum resp_state { RS_NONE, RS_WRITING, RS_SENDFILE, RS_DONE };

enum timer_kind { TK_NONE, TK_IDLE, TK_HEADER, TK_BODY, TK_WRITE, TK_LINGER };

enum write_kind {
    WK_CONTINUE,
    WK_RESP,
    WK_FILE_HDRS,
    WK_FILE_CHUNK,
    WK_ERROR,
    WK_UPGRADE,
};

struct conn_write {
    struct node_http_twrite tw;
    struct node_http_conn *conn;  /* borrowed */
    struct conn_write *next_free; /* in the thread's free list */
    enum write_kind kind;
    size_t len; /* bytes of data to write */
    size_t cap; /* room at data */
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
    int status;
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
    llhttp_t parser;
    bool in_parser;
    /* llhttp 8.1 accepts chunk data not followed by CRLF (it then reads the
     * excess as the next chunk size): we check the CRLF ourselves. */
    const char *parse_end; /* end of the bytes given to llhttp_execute */
    uint64_t chunk_left;   /* data bytes left in the current chunk */
    int crlf_need;         /* CRLF bytes after chunk data not yet seen */
    bool first_request;
    char *in; /* owned, INBUF_SIZE */
    size_t in_off, in_len;
    char *ext; /* handler memory the pending read goes to (body_buf), or NULL */
    bool reading;
    int err_status;            /* 414/431 decided by a parser callback */
    struct node_http_req *req; /* one reference owned */
    enum body_mode body;
    bool msg_complete;
    enum resp_state resp;
    bool close_after;
    bool sent_continue;
    enum timer_kind timer_kind;
    size_t last_wq;
    int sf_fd; /* owned, -1 */
    uint64_t sf_off, sf_left;
    uint64_t sf_limit; /* file offset sending stops at until raised */
    bool sf_stalled; /* at sf_limit, waiting for node_http_resp_stream_limit */
    node_http_upgrade_cb up_cb; /* set while a 101 is being written */
    void *up_data;
    char peer[64];
};

struct node_http_server {
    uv_loop_t *loop; /* borrowed */
    uv_tcp_t tcp;
    uv_timer_t grace;
    bool listening;
    bool grace_closing;
    int handles;
    struct node_http_config cfg; /* host not kept */
    node_http_handler handler;
    void *data;
    int port;
    bool stopping;
    struct at_list conns; /* node_http_conn.link: every open or closing */
    size_t nconns;
    void (*stop_cb)(void *data);
    void *stop_data;
    uint64_t sendfile_eagain;
};

/* ---- conn.c ---- */

/* A connection of s over t (ownership passes), reading at once. */
struct node_http_conn *node_http__conn_new(struct node_http_server *s,
                                           struct node_http_transport *t);
/* Move to state `to`; asserts that the transition is allowed. */
void node_http__conn_move(struct node_http_conn *c, enum conn_state to);
/* The connection lets go of its request (response complete or connection
 * gone). */
void node_http__conn_detach_req(struct node_http_conn *c);
/* Connection failed before the response completed: tell the handler once. */
void node_http__conn_abort_req(struct node_http_conn *c);
/* Queue w (ownership passes). Errors surface in the completion. */
void node_http__conn_write(struct node_http_conn *c, struct conn_write *w);
/* True while buffered input may be handed to the parser. */
bool node_http__conn_can_parse(const struct node_http_conn *c);
/* Arm the one timer for what the connection waits on now. Progress restarts
 * body and write timeouts; header and idle deadlines are fixed. */
void node_http__conn_timer_update(struct node_http_conn *c, bool progress);
/* Start or stop reading the transport as the state wants. */
void node_http__conn_update_reading(struct node_http_conn *c);
/* Close at once; the handler's abort callback runs if it still waits. */
void node_http__conn_close(struct node_http_conn *c);
/* Response written and request fully read: next request or close. */
void node_http__conn_request_finish(struct node_http_conn *c);
/* The response is completely written. */
void node_http__conn_resp_done(struct node_http_conn *c);

/* ---- file.c ---- */

/* Send the file body of the response from c->sf_off on. */
void node_http__file_send(struct node_http_conn *c);

/* ---- parse.c ---- */

/* The only caller of llhttp_execute. Parses buffered input for as long as
 * the connection may consume it, resuming after each pause once allowed. */
void node_http__parse(struct node_http_conn *c);
/* n body bytes were read into the handler's memory at p. */
void node_http__parse_direct(struct node_http_conn *c, const char *p, size_t n);
/* Initialize c's parser with the server's callbacks. */
void node_http__parser_init(struct node_http_conn *c);

/* ---- body.c ---- */

/* The request has a body (chunked, or a Content-Length above 0). */
bool node_http__req_body_present(const struct node_http_req *r);
/* How many bytes the next read may put in the handler's memory (0: none). */
size_t node_http__body_direct_want(const struct node_http_conn *c);
/* The handler answers before the body was read: drain a small rest or stop
 * reading and close. */
void node_http__body_settle(struct node_http_conn *c);

/* ---- response.c ---- */

/* Answer a malformed request with a JSON error and close. */
void node_http__send_error(struct node_http_conn *c,
                           int status,
                           const char *msg);
/* The 101 is written: hand the socket over. */
void node_http__upgrade_done(struct node_http_conn *c);
/* An upgrade that cannot complete: the handler learns with a NULL stream. */
void node_http__upgrade_fail(struct node_http_conn *c);

/* ---- recycle.c ---- */

/* A new request of c (one reference). */
struct node_http_req *node_http__req_new(struct node_http_conn *c);
/* Free r (its last reference is gone), or keep it for reuse. */
void node_http__req_free(struct node_http_req *r);
/* A write of len bytes of data for c. */
struct conn_write *node_http__write_new(struct node_http_conn *c,
                                        enum write_kind kind,
                                        size_t len);
void node_http__write_free(struct conn_write *w);
/* A server starts or ends on this thread: objects are kept only while one
 * runs, and the last one to go frees them (so nothing is kept at exit). */
void node_http__recycle_hold(void);
void node_http__recycle_release(void);

/* ---- tables.c ---- */

/* "OK" for 200, ...; "Unknown" for a status without a name here. */
const char *node_http__status_reason(int status);
/* llhttp's method number as ours. */
enum node_http_method node_http__method_map(uint8_t m);

/* ---- listener.c ---- */

/* A connection of a stopping server went: finish the stop when it was the
 * last. */
void node_http__server_maybe_finish(struct node_http_server *s);

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
