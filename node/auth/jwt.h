/* JSON Web Tokens of the registry token spec: compact JWS signed with
 * ES256 (ECDSA on P-256 with SHA-256, RFC 7518 section 3.4), the claims
 * of distribution's "Token Authentication Implementation" (iss, sub, aud,
 * exp, nbf, iat, jti, access), base64url, and the signing keys (made,
 * read from and written to PEM, shown as JWK).
 *
 * Verification accepts exactly one algorithm, ES256: "none", the HMAC
 * family (whose "secret" could be a public key), RSA and anything else
 * are refused before any key is looked at, and the key is chosen only by
 * the header's kid among the keys the caller knows (jwk, x5c, jku in a
 * header are never used). Every size is bounded before it is read; every
 * malformed piece is a refusal with errmsg, never a crash.
 *
 * Threads: any; no state is shared between calls. */
#ifndef NODE_AUTH_JWT_H
#define NODE_AUTH_JWT_H

#include "common/common.h"

#define NODE_JWT_MAX        8192 /* a whole token (bytes) */
#define NODE_JWT_KID_MAX    64   /* [A-Za-z0-9_-], 1..64 */
#define NODE_JWT_ACCESS_MAX 32   /* access entries in one token */
#define NODE_JWT_TYPE_MAX   32   /* an access entry's type */
#define NODE_JWT_NAME_MAX   255  /* an access entry's name */
#define NODE_JWT_SUB_MAX    128  /* the subject: an account name or "" */
#define NODE_JWT_JTI_MAX    64
#define NODE_JWT_STR_MAX    255 /* iss and aud strings */
#define NODE_JWT_LEEWAY_S   30  /* clock skew allowed on exp, nbf, iat */
#define NODE_JWT_PEM_MAX    4096

/* Access actions as bits ("pull", "push", "delete", "*"); the first three
 * have the values of META_ACTION_PULL, _PUSH, _DELETE. Unknown action
 * strings in a token are ignored (a newer issuer may name more). */
#define NODE_JWT_PULL   1u
#define NODE_JWT_PUSH   2u
#define NODE_JWT_DELETE 4u
#define NODE_JWT_ANY    0x80u /* "*", as in registry:catalog:* */

/* One access entry: {"type", "name", "actions": [...]}. */
struct node_jwt_access {
    char type[NODE_JWT_TYPE_MAX + 1]; /* "repository", "registry" */
    char name[NODE_JWT_NAME_MAX + 1];
    unsigned actions; /* NODE_JWT_* bits */
};

/* What a token says (and, when verified, which key signed it). */
struct node_jwt_claims {
    char kid[NODE_JWT_KID_MAX + 1]; /* verify: the header's key id */
    char sub[NODE_JWT_SUB_MAX + 1]; /* "" for an anonymous client */
    char jti[NODE_JWT_JTI_MAX + 1];
    int64_t iat, nbf, exp; /* seconds since the epoch */
    size_t naccess;
    struct node_jwt_access access[NODE_JWT_ACCESS_MAX];
};

/* ---- base64url (RFC 4648 section 5, no padding) ---- */

/* Append the encoding of p[0..n) to b. 0 or AT_ETOOBIG (b's bound). */
int node_jwt_b64url_encode(const void *p, size_t n, struct at_buf *b);
/* Decode s[0..n) into out (size bytes): the length, or -1 for a
 * character outside the alphabet, padding, a length that cannot be
 * (n % 4 == 1), non-zero leftover bits, or a result over size. */
long node_jwt_b64url_decode(const char *s, size_t n, uint8_t *out, size_t size);

/* ---- keys ---- */

/* An EC P-256 key pair (opaque; holds OpenSSL objects). */
struct node_jwt_key;

/* A fresh key pair from OpenSSL's random generator. 0, or AT_ENOMEM /
 * AT_EINVAL with errmsg. */
int node_jwt_key_new(struct node_jwt_key **out, char *errmsg);
/* Read a private key from PEM text (pem[0..len), PKCS#8 or SEC1, not
 * encrypted). 0, or AT_EINVAL with errmsg when it is no P-256 key or is
 * over NODE_JWT_PEM_MAX. */
int node_jwt_key_load(const char *pem,
                      size_t len,
                      struct node_jwt_key **out,
                      char *errmsg);
/* The private key as unencrypted PKCS#8 PEM, NUL-terminated, in *out
 * (owned by the caller: wipe and at_free). 0 or AT_ENOMEM. */
int node_jwt_key_pem(const struct node_jwt_key *k, char **out, char *errmsg);
/* The key id: the RFC 7638 JWK thumbprint of the public key (43 chars of
 * base64url SHA-256), the same for the same key on every node. Borrowed
 * while k lives. */
const char *node_jwt_key_kid(const struct node_jwt_key *k);
/* Append the public key as a JWK object (kty, crv, x, y, kid, use, alg)
 * to b: never the private part. */
void node_jwt_key_jwk(const struct node_jwt_key *k, struct at_buf *b);
/* NULL is a no-op. */
void node_jwt_key_free(struct node_jwt_key *k);

/* ---- tokens ---- */

/* Sign claims c (c->kid is ignored: k's is used) issued by iss for
 * audience aud into b (a compact JWS, appended). 0, or AT_EINVAL (a field
 * out of its bounds, an OpenSSL failure) / AT_ETOOBIG with errmsg. */
int node_jwt_sign(const struct node_jwt_key *k,
                  const char *iss,
                  const char *aud,
                  const struct node_jwt_claims *c,
                  struct at_buf *b,
                  char *errmsg);

/* What a verification checks against. */
struct node_jwt_check {
    const char *issuer;   /* iss must equal it */
    const char *audience; /* aud (a string or an array) must contain it */
    int64_t now_s;        /* wall clock, seconds */
    unsigned leeway_s;    /* skew allowed on exp, nbf and iat */
    /* The key of id kid, or NULL (borrowed for the call). */
    const struct node_jwt_key *(*find)(void *data, const char *kid);
    void *data;
};

/* Verify token[0..len) and fill *out. Order: size, shape, header (alg
 * exactly ES256, typ absent or "JWT", no crit, kid well-formed), key by
 * kid, signature (64 bytes r||s), then the claims (iss, aud, exp, nbf,
 * iat within leeway, sub, jti, access). Returns 0; AT_ETOOBIG (longer
 * than NODE_JWT_MAX); AT_ENOTFOUND (a well-formed token whose kid no key
 * has: the caller may learn newer keys and try again); AT_EINVAL for any
 * other refusal. errmsg says which check failed (never the token). */
int node_jwt_verify(const char *token,
                    size_t len,
                    const struct node_jwt_check *chk,
                    struct node_jwt_claims *out,
                    char *errmsg);

/* The claims check alone, on a decoded payload (JSON text json[0..len)):
 * the last step of node_jwt_verify, for tests and fuzzing. out->kid is
 * left as it was. 0 or AT_EINVAL with errmsg. */
int node_jwt_claims_parse(const char *json,
                          size_t len,
                          const struct node_jwt_check *chk,
                          struct node_jwt_claims *out,
                          char *errmsg);

#endif /* NODE_AUTH_JWT_H */
