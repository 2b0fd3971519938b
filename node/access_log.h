/* The access log of the API listener: one line per request at info,
 * component "access", written when the request is over (see
 * node_http_on_done). */
#ifndef NODE_ACCESS_LOG_H
#define NODE_ACCESS_LOG_H

#include "node/http/http.h"

#define NODE_ACCESS_PATH_MAX  512 /* path bytes logged */
#define NODE_ACCESS_QUERY_MAX 256 /* query bytes logged */
#define NODE_ACCESS_RID_MAX   64  /* request id bytes logged */

/* A node_http_done_cb: method, path (with the query parameters of /v2/
 * endpoints that carry no secret: n, last, digest, mount, from), status,
 * body bytes sent, user ("-" until known), duration in ms, request id
 * (X-Atoll-Request-Id or X-Request-Id, "-" without), remote address; and
 * "aborted" when the connection died before the response was written.
 * data is unused. */
void node_access_log(void *data,
                     const struct node_http_req *r,
                     const struct node_http_done *done);

/* The query parameters of query that may be logged for path, "&"-joined
 * into out (size bytes, NUL-terminated, cut at a parameter's end): only
 * those of /v2/ paths named above; every other query may carry a secret
 * and is dropped. Returns the length. */
size_t node_access_query(const char *path,
                         const char *query,
                         char *out,
                         size_t size);

#endif /* NODE_ACCESS_LOG_H */
