/* The reply toolkit: the answers every handler gives (headers every answer
 * carries, OCI error JSON, the outcome of a raft write, a blob file with
 * Range support). It knows no routes: handlers call it, it calls no
 * handler.
 *
 * Each listener that answers with it has a reply context, bound to every
 * request before a handler runs (node_reply_bind): the API listener's, and
 * the peer listener's for requests another node relayed to this one. */
#ifndef NODE_REPLY_H
#define NODE_REPLY_H

#include "node/reply/context.h"

/* Per listener: who answers (answers are counted in api->status_counts). */
struct node_reply_ctx {
    struct node_api *api; /* borrowed: counters, X-Atoll-Applied-Index */
    bool relayed;         /* requests relayed here by the node they landed on
                             (node/cluster/proxy.c): never relayed again */
};

/* Attach ctx (borrowed; it outlives the request) to req. */
void node_reply_bind(struct node_http_req *req, struct node_reply_ctx *ctx);
/* True when req came through a relay (its context says so). */
bool node_reply_relayed(const struct node_http_req *req);

/* Start a response with the headers every answer carries. */
void node_reply_begin(struct node_http_req *req, int status);
/* Append the OCI error document {"errors":[{"code":...,"message":...}]}
 * to out (code: a literal of [A-Z_]; msg: any text, escaped). */
void node_reply_error_doc(struct at_buf *out,
                          const char *code,
                          const char *msg);
/* Send an OCI error document. */
void node_reply_error(struct node_http_req *req,
                      int status,
                      const char *code,
                      const char *fmt,
                      ...) AT_PRINTF(4, 5);
/* Map a write's (status, result) to an error reply; returns true when it
 * replied (i.e. the write did not succeed). */
bool node_reply_write_failed(struct node_http_req *req, int status, int result);
/* X-Atoll-Index: <index> on the response of a write that succeeded. */
void node_reply_write_index(struct node_http_req *req,
                            int status,
                            uint64_t index);
/* Begin the answer to a GET or HEAD of blob d of size bytes: status 206
 * for a single satisfiable Range (with Content-Range; a malformed or
 * multi-range header is ignored) or 200, and the OCI blob headers; the
 * body to send is [*start, *start + *len), counted in api->bytes_out for a
 * GET. Returns false when the range is unsatisfiable: 416 is answered. */
bool node_reply_blob_begin(struct node_api *api,
                           struct node_http_req *req,
                           const struct at_digest *d,
                           uint64_t size,
                           uint64_t *start,
                           uint64_t *len);
/* Answer GET/HEAD of blob d from fd (owned: closed when sent) of size
 * bytes, with the OCI blob headers and a single Range when asked (206, or
 * 416 when unsatisfiable); counts the bytes in api->bytes_out. */
void node_reply_blob(struct node_api *api,
                     struct node_http_req *req,
                     const struct at_digest *d,
                     int fd,
                     uint64_t size);

#endif /* NODE_REPLY_H */
