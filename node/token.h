/* Bearer tokens of the registry token spec ("Token Authentication
 * Specification", distribution): the token endpoint every node serves,
 * the signing keys it shares with the cluster, and the checks the API
 * gate calls.
 *
 *   GET  /_atoll/token?service=S&scope=repository:foo/bar:pull,push&...
 *        with Basic credentials, or none (anonymous)
 *   POST /_atoll/token   form: grant_type=password, username, password,
 *        service, scope, client_id (the OAuth2 variant; no refresh
 *        tokens are given out, so grant_type=refresh_token is refused)
 *        -> 200 {"token", "access_token", "expires_in", "issued_at"}
 *           (POST adds "scope"), 401 for wrong credentials
 *   GET  /_atoll/token/jwks   the public keys (RFC 7517 set), no auth
 *   POST /_atoll/token-keys/rotate   admin user or cluster secret: a new
 *        key signs from now on -> {"kid", "index", "keys"}
 *
 * Scopes: several scope parameters, each with entries separated by
 * spaces, are merged per resource (helm asks "pull" and "pull,push"
 * apart and expects the union). Entries are "repository:<name>:<actions>"
 * (pull, push, delete, "*" = all three) and "registry:catalog:*"; an
 * entry of any other type or an invalid name is left out (the token
 * grants less, which the spec allows). What each entry gets is the
 * intersection of what was asked and what the grant callback allows.
 *
 * Keys: EC P-256 keys in the replicated state (raft TokenKeyPut); the
 * newest signs, the kept older ones verify. The first token request on
 * a cluster without a key makes one and proposes it. Tokens are signed
 * ES256 with the key's RFC 7638 thumbprint as kid. */
#ifndef NODE_TOKEN_H
#define NODE_TOKEN_H

#include "node/auth/auth.h"
#include "node/auth/jwt.h"
#include "node/reply/reply.h"

#define NODE_TOKEN_TTL_MIN_MS 60000 /* the spec: never below 60 s */
#define NODE_TOKEN_BODY_MAX   16384 /* a POST form */

/* Which of the requested actions (NODE_JWT_* bits) a caller gets on a
 * repository: the policy decides. who is NULL for an anonymous caller;
 * repo is NULL for "registry:catalog:*" (requested is NODE_JWT_ANY then).
 * The result is masked with requested. Runs on the loop, synchronously. */
struct node_token_grant {
    unsigned (*allowed)(void *data,
                        const struct node_auth_identity *who,
                        const char *repo,
                        unsigned requested);
    void *data; /* borrowed */
};

/* The default grant: everything to a verified caller, pull (and no
 * catalog) to an anonymous one. */
extern const struct node_token_grant node_token_grant_default;

struct node_token_config {
    const char *issuer;  /* iss of the tokens (token_issuer) */
    const char *service; /* aud, and the challenge's service */
    const char *realm;   /* "" : <scheme>://<host>/_atoll/token */
    uint64_t ttl_ms;     /* >= NODE_TOKEN_TTL_MIN_MS */
    struct node_token_grant grant;
};

struct node_token;

/* Make the token service of api (borrowed; api->meta may come later).
 * Strings of cfg are copied. 0, or AT_EINVAL with errmsg (ttl below the
 * minimum, empty issuer or service, a realm or service with '"'). */
int node_token_new(struct node_token **out,
                   struct node_api *api,
                   const struct node_token_config *cfg,
                   char *errmsg);
/* Stop: requests in flight finish (a key proposal answers through raft);
 * the object is freed when the last one ends. NULL is a no-op. */
void node_token_close(struct node_token *t);
/* Replace the grant callback (the lead wires the access policy here). */
void node_token_set_grant(struct node_token *t,
                          const struct node_token_grant *g);

/* ---- for the gate of /v2/ ---- */

/* Verify an Authorization header value "Bearer <token>" (scheme
 * case-insensitive) with the keys applied here: signature, issuer,
 * service, times. Synchronous; re-reads the key set when it changed.
 * Returns 0 with *out filled; AT_EINVAL for no Bearer value or a token
 * refused; AT_ETOOBIG for a token over NODE_JWT_MAX; AT_ENOTFOUND for a
 * well-formed token signed by a key this node does not know: a key made
 * on another node that is not applied here yet (pass a read barrier,
 * node_api_read_barrier, and check once more) or a key rotated out. */
int node_token_check(struct node_token *t,
                     const char *authorization_value,
                     struct node_jwt_claims *out);
/* Does c grant action (one NODE_JWT_* bit) on repository repo? repo NULL
 * asks for the catalog (registry:catalog:*). A scopeless token (docker
 * login) grants nothing but is valid: the gate lets it reach /v2/. */
bool node_token_allows(const struct node_jwt_claims *c,
                       const char *repo,
                       unsigned action);
/* Append a WWW-Authenticate value to b:
 *   Bearer realm="<scheme>://<host>/_atoll/token",service="<service>"
 * then ,scope="repository:<repo>:<actions>" when repo is set and actions
 * is not 0, or ,scope="registry:catalog:*" when repo is NULL and actions
 * is NODE_JWT_ANY. The token_realm option replaces the realm URL (behind
 * an ingress). scheme is "http" or "https"; host is the request's Host
 * header (characters that could break the quoting are dropped; "" or
 * NULL: "localhost"). */
void node_token_challenge(const struct node_token *t,
                          struct at_buf *b,
                          const char *host,
                          const char *scheme,
                          const char *repo,
                          unsigned actions);

/* ---- the endpoints (admin.c dispatches here) ---- */

/* True for /_atoll/token, /_atoll/token/jwks and /_atoll/token-keys/... */
bool node_token_path(const char *path);
void node_token_handle(struct node_api *api, struct node_http_req *req);

/* ---- shared by token.c and token_http.c ---- */

/* The configuration as kept (borrowed while t lives). */
const struct node_token_config *node_token_config(const struct node_token *t);
/* Hold t for a request (released with node_token_unref). */
void node_token_ref(struct node_token *t);
void node_token_unref(struct node_token *t);
/* Sign a token for who (NULL: anonymous) granting acc[0..n) (already
 * granted) into b; *issued_s gets the time. AT_ENOTFOUND when no key is
 * applied here yet (node_token_key_start), AT_EINVAL with errmsg. */
int node_token_sign(struct node_token *t,
                    const struct node_auth_identity *who,
                    const struct node_jwt_access *acc,
                    size_t n,
                    struct at_buf *b,
                    int64_t *issued_s,
                    char *errmsg);
/* Apply the grant to acc[0..*n) in place: actions reduced to the granted
 * ones, entries left with none removed. */
void node_token_grant_apply(struct node_token *t,
                            const struct node_auth_identity *who,
                            struct node_jwt_access *acc,
                            size_t *n);
/* Is a signing key applied here (the key set re-read if it changed)? */
bool node_token_has_key(struct node_token *t);
/* Make a key and propose it: rotate false only when no key is applied
 * (if_none: several nodes at once agree on one), true for a rotation.
 * cb runs once, later, with status 0 and the key's kid and log index
 * (for if_none, status 0 also when another node's key won: the kid is
 * then "" and the key set holds the winner), or an AT_E* of the write
 * (meta_propose's). Returns 0, or AT_E* with errmsg (cb never runs). */
typedef void (*node_token_key_cb)(void *data,
                                  int status,
                                  const char *kid,
                                  uint64_t index);
int node_token_key_start(struct node_token *t,
                         bool rotate,
                         const char *request_id,
                         node_token_key_cb cb,
                         void *data,
                         char *errmsg);
/* Append the JWK set {"keys":[...]} of the keys applied here to b. */
void node_token_jwks(struct node_token *t, struct at_buf *b);
/* The kids applied here, oldest first, as a JSON array, to b. */
void node_token_kids_json(struct node_token *t, struct at_buf *b);

#endif /* NODE_TOKEN_H */
