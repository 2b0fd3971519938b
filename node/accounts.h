/* The account endpoints of the API listener: /_atoll/users and
 * /_atoll/robots (list, add, change a password, remove), for an admin
 * user (Basic) or the cluster secret (Bearer) only.
 *
 *   GET    /_atoll/users            {"users":[{name, admin, groups,
 *                                    created_ms, source}]}
 *   POST   /_atoll/users            {"name","password","admin","groups"}
 *                                   -> 201; 409 EXISTS
 *   POST   /_atoll/users/passwd     {"name","password"} -> 200; 404
 *   POST   /_atoll/users/remove     {"name"} -> 200; 404
 *   DELETE /_atoll/users/<name>     the same
 *   GET    /_atoll/robots           {"robots":[{name, expires_ms, expired,
 *                                    created_ms, permissions}]}
 *   POST   /_atoll/robots           {"name","expires_in","permissions":
 *                                    [{"repository","actions":[...]}]}
 *                                   -> 201 {"name":"robot$<name>",
 *                                    "secret", "expires_ms"}: the only
 *                                    time the secret is shown
 *   POST   /_atoll/robots/remove    {"name"} -> 200; 404
 *   DELETE /_atoll/robots/<name>    the same ("robot$" optional)
 *
 * Writes answer once applied on this node, with X-Atoll-Index; listings
 * pass the read barrier of tag reads first. Every change logs one audit
 * line at info (who, from where, what, which account; never a secret). */
#ifndef NODE_ACCOUNTS_H
#define NODE_ACCOUNTS_H

#include "node/reply/reply.h"

#define NODE_ACCOUNTS_BODY_MAX     (64 * 1024)
#define NODE_ACCOUNTS_PASSWORD_MIN 8

/* True for /_atoll/users and /_atoll/robots and the paths below them. */
bool node_accounts_path(const char *path);
/* Answer one of them (admin.c dispatches here). */
void node_accounts_handle(struct node_api *api, struct node_http_req *req);

#endif /* NODE_ACCOUNTS_H */
