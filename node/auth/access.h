/* Access decisions: what a caller (anonymous, a user, a robot account,
 * an admin, the cluster secret) may do on a repository, and the caller of
 * each request the API listener let in, kept for the handlers that decide
 * more than the route does (overwriting a tag, mounting from another
 * repository, listing the catalog).
 *
 * Who the caller is comes from node/gate.c (the API listener's gate,
 * above this room); the rules come from the FSM (meta_policy_get, users'
 * groups and admin flags, robots' permissions).
 *
 * Threads: the loop's. */
#ifndef NODE_AUTH_ACCESS_H
#define NODE_AUTH_ACCESS_H

#include "node/auth/auth.h"

enum node_caller_kind {
    NODE_CALLER_ANONYMOUS = 0, /* no credentials */
    NODE_CALLER_USER,          /* a replicated user (groups, admin flag) */
    NODE_CALLER_HTPASSWD,      /* a user of this node's htpasswd file */
    NODE_CALLER_ROBOT,         /* a robot account: its own permissions */
    NODE_CALLER_CLUSTER,       /* the cluster secret: everything */
};

struct node_caller {
    enum node_caller_kind kind;
    char name[NODE_AUTH_NAME_SIZE]; /* as verified: "alice", "robot$ci";
                                       "" when anonymous */
    bool admin; /* replicated admin users and the cluster secret */
    bool fresh; /* the gate passed a read barrier after the request began:
                   its tag reads need no other */
};

/* Is access control on for api (option auth: on; auto and some user,
 * robot account, htpasswd user or policy exists)? */
bool node_access_on(struct node_api *api);

/* The META_ACTION_* bits c may use on repo: everything for admins and the
 * cluster secret; a robot's permissions (the actions of every permission
 * whose glob matches, added up); else the policy (meta_policy_decide), or
 * without one everything for any authenticated caller and nothing for
 * anonymous ones. A user removed since it was verified gets nothing. */
unsigned node_access_actions(struct node_api *api,
                             const struct node_caller *c,
                             const char *repo);
/* May c pull some repository at all (anonymous callers: does a rule give
 * anonymous callers pull anywhere)? For the catalog's 401. */
bool node_access_pulls_any(struct node_api *api, const struct node_caller *c);

/* Remember c (copied) as the caller of req, until req is done. */
void node_access_attach(struct node_api *api,
                        struct node_http_req *req,
                        const struct node_caller *c);
/* The caller attached to req (borrowed while req lives), or NULL: access
 * control off, or a request relayed by another node (authorised there). */
const struct node_caller *node_access_caller(const struct node_http_req *req);
/* Did the gate let req in as an admin user or with the cluster secret? */
bool node_access_admin(const struct node_http_req *req);
/* Did the gate pass a read barrier for req after it began (so the
 * handler's own barrier of a tag read or listing would add nothing)? */
bool node_access_fresh(const struct node_http_req *req);
/* May the caller of req do action (one META_ACTION_* bit) on repo? True
 * when no caller is attached (see node_access_caller). */
bool node_access_may(const struct node_http_req *req,
                     const char *repo,
                     unsigned action);

/* The WWW-Authenticate header of every 401 of the API (one place, so that
 * the scheme can change in one line). */
void node_access_challenge(struct node_http_req *req);

/* Drop every remembered caller (node stop). */
void node_access_close(struct node_api *api);

#endif /* NODE_AUTH_ACCESS_H */
