/* The access policy endpoint of the API listener, for an admin user
 * (Basic) or the cluster secret (Bearer) only:
 *
 *   GET    /_atoll/policy   {"set":true|false,"index":N,"rules":[...]}
 *   PUT    /_atoll/policy   {"rules":[{"repository":GLOB,
 *                            "subjects":["user:NAME","group:NAME",
 *                            "anonymous","authenticated"],
 *                            "actions":["pull","push","delete",
 *                            "overwrite"]}]} -> 200
 *   DELETE /_atoll/policy   no policy any more (the default) -> 200
 *
 * A change answers once committed and applied on this node, with
 * X-Atoll-Index; every node's gate passes the read barrier before each
 * decision, so it holds on every node from then on. Every change logs one
 * audit line (who, from where, how many rules, index). */
#ifndef NODE_POLICY_H
#define NODE_POLICY_H

#include "node/reply/reply.h"

#define NODE_POLICY_BODY_MAX (1024 * 1024)

/* Answer a request on /_atoll/policy (admin.c dispatches here). */
void node_policy_handle(struct node_api *api, struct node_http_req *req);

#endif /* NODE_POLICY_H */
