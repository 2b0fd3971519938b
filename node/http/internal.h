/* Test seams of the HTTP server: socketless connections and counters. */
#ifndef NODE_HTTP_INTERNAL_H
#define NODE_HTTP_INTERNAL_H

#include "node/http/http.h"

struct node_http_conn;

/* A server without a listener, for connections made with
 * node_http__conn_new_mem. Free it with node_http_stop. */
struct node_http_server *node_http__server_new_mem(
    uv_loop_t *loop,
    const struct node_http_config *cfg,
    node_http_handler handler,
    void *data);

/* A connection without a socket: input comes from node_http__conn_feed,
 * output is appended to *out (borrowed) and each write completes only when
 * node_http__conn_flush is called. The connection is freed by the loop after
 * it closed (run the loop once more), so stop using the pointer once
 * node_http__conn_closed is true or after node_http__conn_close. */
struct node_http_conn *node_http__conn_new_mem(struct node_http_server *s,
                                               struct at_buf *out);
/* Bytes accepted (0 when the connection is not reading: paused, waiting for
 * the handler or a response, or closed). */
size_t node_http__conn_feed(struct node_http_conn *c, const char *p, size_t n);
/* Complete the pending writes; returns how many completed. */
int node_http__conn_flush(struct node_http_conn *c);
/* The peer closed its side. */
void node_http__conn_eof(struct node_http_conn *c);
bool node_http__conn_closed(const struct node_http_conn *c);
/* Close at once (aborting any request). */
void node_http__conn_close(struct node_http_conn *c);

/* How many times sendfile(2) hit EAGAIN on this server. */
uint64_t node_http__sendfile_eagains(const struct node_http_server *s);

#endif /* NODE_HTTP_INTERNAL_H */
