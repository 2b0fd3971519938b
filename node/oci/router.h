/* The OCI distribution API's router: calls the handler of a /v2/ route. */
#ifndef NODE_OCI_ROUTER_H
#define NODE_OCI_ROUTER_H

#include "node/reply/context.h"

/* Answer req (a request whose reply context is bound) by its route: 400
 * NAME_INVALID for a bad repository name, 404 for a path that is no OCI
 * route. */
void node_oci_handle(struct node_api *api, struct node_http_req *req);

#endif /* NODE_OCI_ROUTER_H */
