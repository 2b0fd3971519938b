/* The node's own endpoints on the API listener: /livez, /readyz, /metrics
 * and /_atoll/ (status, members, gc, placement). */
#ifndef NODE_ADMIN_H
#define NODE_ADMIN_H

#include "node/reply/context.h"

/* True for a path served by node_admin_handle rather than the OCI API. */
bool node_admin_path(const char *path);
/* Answer an admin request (404 NOT_FOUND for an unknown admin path). */
void node_admin_handle(struct node_api *api, struct node_http_req *req);

#endif /* NODE_ADMIN_H */
