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

#include "node/auth/auth.h"
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

/* The token endpoint's grant (struct node_token_grant, data: the
 * node_api): of the requested actions on repo (NULL: the catalog,
 * NODE_JWT_ANY), those the caller who (NULL: anonymous) may use now,
 * decided as the gate decides (node/auth/access.h); all of them while
 * access control is off. */
unsigned node_gate_token_grant(void *data,
                               const struct node_auth_identity *who,
                               const char *repo,
                               unsigned requested);

#endif /* NODE_GATE_H */
