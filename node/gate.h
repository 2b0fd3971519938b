/* The API listener's gate: before any handler runs, works out who is
 * asking (the Authorization header: Basic credentials, the cluster
 * secret, or none) and what the request needs (the repository and action
 * of its route, an admin for the node's own endpoints), and answers 401
 * (no or wrong credentials) or 403 (a known caller without the right)
 * itself. A request it lets in carries its caller for the handlers
 * (node/auth/access.h). With access control off (node_access_on) every
 * request goes through untouched. */
#ifndef NODE_GATE_H
#define NODE_GATE_H

#include "node/reply/reply.h"

/* What the gate calls with a request it lets in. */
typedef void (*node_gate_pass_cb)(struct node_api *api,
                                  struct node_http_req *req);

/* Decide req: pass(api, req) runs once if it is let in, at once or later
 * (after a verification in the pool or the read barrier); else the gate
 * answers it. Nothing runs for a request whose client went away
 * meanwhile. */
void node_gate_run(struct node_api *api,
                   struct node_http_req *req,
                   node_gate_pass_cb pass);

#endif /* NODE_GATE_H */
