/* Who may call the node's admin endpoints (accounts, the policy, token key
 * rotation): the cluster secret (Authorization: Bearer <secret>, compared
 * in constant time) or an admin user's Basic credentials, through the
 * failed-login limits (node/auth/limit.h) and the verifier. One place for
 * the answers every such endpoint gives: 401 with a Basic challenge for
 * missing or wrong credentials, 403 for a user who is no admin, 429 with
 * Retry-After after too many failures. */
#ifndef NODE_ADMIN_AUTH_H
#define NODE_ADMIN_AUTH_H

#include "node/auth/auth.h"
#include "node/reply/reply.h"

/* Who an admin call came from, for audit lines: "admin 'alice'" or "the
 * cluster secret". */
struct node_admin_who {
    char text[NODE_AUTH_NAME_SIZE + 16];
    bool secret; /* the cluster secret, not a user */
};

/* status 0: an admin (who borrowed for the call; the access line's user
 * is set). Else req was answered here (AT_EINVAL: 401, 403 or 429) or its
 * client is gone (AT_ESHUTDOWN: nothing answered); the caller finishes
 * without answering. */
typedef void (*node_admin_auth_cb)(void *data,
                                   int status,
                                   const struct node_admin_who *who);

/* Authenticate req (referenced until cb ran) for what ("manage accounts",
 * in the 403's message). cb runs exactly once, maybe before this
 * returns. */
void node_admin_auth(struct node_api *api,
                     struct node_http_req *req,
                     const char *what,
                     node_admin_auth_cb cb,
                     void *data);

#endif /* NODE_ADMIN_AUTH_H */
