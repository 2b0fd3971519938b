/* The token service of a node (see token.h): its configuration, the
 * signing keys read from the replicated state (parsed once per change of
 * the key set), making and proposing keys, signing, and the checks the
 * gate calls. The HTTP endpoints are in token_http.c. */
#define AT_LOG_COMP "token"
#include "common/compat.h"

#include <strings.h>

#include "node/token.h"

_Static_assert(NODE_JWT_PULL == META_ACTION_PULL &&
                   NODE_JWT_PUSH == META_ACTION_PUSH &&
                   NODE_JWT_DELETE == META_ACTION_DELETE,
               "token actions are the policy's");
_Static_assert(META_TOKEN_KID_MAX == NODE_JWT_KID_MAX, "kid bounds agree");

struct node_token {
    struct node_api *api; /* borrowed */
    struct node_token_config cfg;
    char *issuer, *service, *realm; /* owned; cfg points at them */
    unsigned refs;                  /* the owner's, and each request's */
    /* the key set applied here, parsed: oldest first, the last signs */
    struct node_jwt_key *keys[META_TOKEN_KEYS_KEEP]; /* owned */
    size_t nkeys;
    uint64_t keys_version; /* meta_token_keys_version when read */
    bool keys_read;
    /* tokens verified here (a client presents the same token on every
     * request for minutes; an ECDSA verification each time would cost
     * 5x the rest of a request): sha256 of the token -> struct verified,
     * oldest first; emptied when the key set changes */
    struct at_map verified;
    struct at_list verified_list;
    size_t nverified;
};

#define VERIFIED_MAX 1024

/* A token verified with the current key set: its claims (only naccess
 * entries of access are allocated). */
struct verified {
    struct at_list link;
    struct at_digest key;
    struct node_jwt_claims claims; /* keep last */
};

/* A key proposal in flight. */
struct key_job {
    struct node_token *t; /* one reference */
    char kid[NODE_JWT_KID_MAX + 1];
    node_token_key_cb cb;
    void *data;
};

/* ---- the default grant ---- */

static unsigned grant_default(void *data,
                              const struct node_auth_identity *who,
                              const char *repo,
                              unsigned requested)
{
    AT_UNUSED(data);
    if (who != NULL)
        return requested;
    return repo != NULL ? requested & NODE_JWT_PULL : 0;
}

/* see token.h */
const struct node_token_grant node_token_grant_default = { grant_default,
                                                           NULL };

/* ---- life ---- */

static bool quotable(const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\' || (unsigned char)*s < ' ')
            return false;
    }
    return true;
}

/* see token.h */
int node_token_new(struct node_token **out,
                   struct node_api *api,
                   const struct node_token_config *cfg,
                   char *errmsg)
{
    struct node_token *t;

    if (cfg->ttl_ms < NODE_TOKEN_TTL_MIN_MS) {
        at_errmsg_printf(errmsg, "token_ttl must be at least 60s");
        return AT_EINVAL;
    }
    if (cfg->issuer[0] == '\0' || cfg->service[0] == '\0' ||
        strlen(cfg->issuer) > NODE_JWT_STR_MAX ||
        strlen(cfg->service) > NODE_JWT_STR_MAX || !quotable(cfg->service) ||
        !quotable(cfg->realm) || !quotable(cfg->issuer)) {
        at_errmsg_printf(errmsg,
                         "token_issuer and token_service: 1 to 255 "
                         "characters, no quotes; token_realm: no quotes");
        return AT_EINVAL;
    }
    t = at_calloc(1, sizeof(*t));
    t->api = api;
    t->refs = 1;
    t->issuer = at_strdup(cfg->issuer);
    t->service = at_strdup(cfg->service);
    t->realm = at_strdup(cfg->realm);
    t->cfg = *cfg;
    t->cfg.issuer = t->issuer;
    t->cfg.service = t->service;
    t->cfg.realm = t->realm;
    at_map_init(&t->verified);
    at_list_init(&t->verified_list);
    if (t->cfg.grant.allowed == NULL)
        t->cfg.grant = node_token_grant_default;
    *out = t;
    return 0;
}

static void verified_clear(struct node_token *t)
{
    struct at_list *l;

    while ((l = at_list_pop_front(&t->verified_list)) != NULL) {
        struct verified *v = AT_LIST_ENTRY(l, struct verified, link);
        at_map_del(&t->verified, v->key.bytes, sizeof(v->key.bytes));
        at_free(v);
    }
    t->nverified = 0;
}

static void keys_clear(struct node_token *t)
{
    verified_clear(t);
    for (size_t i = 0; i < t->nkeys; i++)
        node_jwt_key_free(t->keys[i]);
    t->nkeys = 0;
}

/* see token.h */
void node_token_ref(struct node_token *t)
{
    t->refs++;
}

/* see token.h */
void node_token_unref(struct node_token *t)
{
    AT_ASSERT(t->refs > 0);
    if (--t->refs > 0)
        return;
    keys_clear(t);
    at_map_release(&t->verified);
    at_free(t->issuer);
    at_free(t->service);
    at_free(t->realm);
    at_free(t);
}

/* see token.h */
void node_token_close(struct node_token *t)
{
    if (t != NULL)
        node_token_unref(t);
}

/* see token.h */
void node_token_set_grant(struct node_token *t,
                          const struct node_token_grant *g)
{
    t->cfg.grant = g->allowed != NULL ? *g : node_token_grant_default;
}

/* see token.h */
const struct node_token_config *node_token_config(const struct node_token *t)
{
    return &t->cfg;
}

/* ---- the key set ---- */

static void key_read(void *data, const struct meta_token_key *k)
{
    struct node_token *t = data;
    struct node_jwt_key *key = NULL;
    char errmsg[AT_ERRMSG_SIZE];

    if (t->nkeys == META_TOKEN_KEYS_KEEP)
        return;
    if (node_jwt_key_load(k->pem, strlen(k->pem), &key, errmsg) != 0) {
        LOG_WARN("token signing key '%s' (index %" PRIu64 ") unusable: %s",
                 k->kid, k->index, errmsg);
        return;
    }
    if (strcmp(node_jwt_key_kid(key), k->kid) != 0) {
        LOG_WARN("token signing key '%s' (index %" PRIu64
                 ") is not the key of that id: ignored",
                 k->kid, k->index);
        node_jwt_key_free(key);
        return;
    }
    t->keys[t->nkeys++] = key;
}

/* Parse the key set again if it changed since the last read. */
static void keys_refresh(struct node_token *t)
{
    struct meta *m = t->api->meta;
    uint64_t v;

    if (m == NULL)
        return;
    v = meta_token_keys_version(m);
    if (t->keys_read && v == t->keys_version)
        return;
    keys_clear(t);
    meta_token_keys_list(m, key_read, t);
    t->keys_version = v;
    t->keys_read = true;
    LOG_DEBUG("token signing keys read: %zu at version %" PRIu64, t->nkeys, v);
}

static const struct node_jwt_key *key_find(void *data, const char *kid)
{
    struct node_token *t = data;

    for (size_t i = 0; i < t->nkeys; i++) {
        if (strcmp(node_jwt_key_kid(t->keys[i]), kid) == 0)
            return t->keys[i];
    }
    return NULL;
}

/* see token.h */
void node_token_jwks(struct node_token *t, struct at_buf *b)
{
    keys_refresh(t);
    at_buf_puts(b, "{\"keys\":[");
    for (size_t i = 0; i < t->nkeys; i++) {
        if (i > 0)
            at_buf_puts(b, ",");
        node_jwt_key_jwk(t->keys[i], b);
    }
    at_buf_puts(b, "]}");
}

/* see token.h */
void node_token_kids_json(struct node_token *t, struct at_buf *b)
{
    keys_refresh(t);
    at_buf_puts(b, "[");
    for (size_t i = 0; i < t->nkeys; i++)
        at_buf_printf(b, "%s\"%s\"", i > 0 ? "," : "",
                      node_jwt_key_kid(t->keys[i]));
    at_buf_puts(b, "]");
}

/* see token.h */
bool node_token_has_key(struct node_token *t)
{
    keys_refresh(t);
    return t->nkeys > 0;
}

static void on_key_written(void *data, int status, int result, uint64_t index)
{
    struct key_job *j = data;
    struct node_token *t = j->t;

    if (status == 0 && result == META_OK) {
        LOG_INFO("token signing key '%s' applied at index %" PRIu64, j->kid,
                 index);
    } else if (status == 0 && result == META_ACCOUNT_EXISTS) {
        j->kid[0] = '\0'; /* another node's first key won */
    } else if (status == 0) {
        status = AT_EINVAL;
    }
    j->cb(j->data, status, j->kid, index);
    at_free(j);
    node_token_unref(t);
}

/* see token.h */
int node_token_key_start(struct node_token *t,
                         bool rotate,
                         const char *request_id,
                         node_token_key_cb cb,
                         void *data,
                         char *errmsg)
{
    struct node_jwt_key *key = NULL;
    struct meta_cmd c = { .kind = META_CMD_TOKEN_KEY_PUT,
                          .request_id = request_id };
    struct key_job *j;
    char *pem = NULL;
    int rv;

    if (t->api->meta == NULL || t->api->stopping) {
        at_errmsg_printf(errmsg, "node is stopping");
        return AT_ESHUTDOWN;
    }
    rv = node_jwt_key_new(&key, errmsg);
    if (rv == 0)
        rv = node_jwt_key_pem(key, &pem, errmsg);
    if (rv != 0) {
        node_jwt_key_free(key);
        return rv;
    }
    j = at_calloc(1, sizeof(*j));
    j->t = t;
    j->cb = cb;
    j->data = data;
    snprintf(j->kid, sizeof(j->kid), "%s", node_jwt_key_kid(key));
    node_jwt_key_free(key);
    c.token_key_put.kid = j->kid;
    c.token_key_put.pem = pem;
    c.token_key_put.if_none = !rotate;
    rv = meta_propose(t->api->meta, &c, on_key_written, j);
    explicit_bzero(pem, strlen(pem));
    at_free(pem);
    if (rv != 0) {
        at_errmsg_printf(errmsg, "%s", meta_errmsg(t->api->meta));
        at_free(j);
        return rv;
    }
    node_token_ref(t);
    return 0;
}

/* ---- issuing ---- */

/* see token.h */
void node_token_grant_apply(struct node_token *t,
                            const struct node_auth_identity *who,
                            struct node_jwt_access *acc,
                            size_t *n)
{
    size_t kept = 0;

    for (size_t i = 0; i < *n; i++) {
        bool catalog = strcmp(acc[i].type, "registry") == 0;
        unsigned want = acc[i].actions;
        unsigned got = t->cfg.grant.allowed(t->cfg.grant.data, who,
                                            catalog ? NULL : acc[i].name, want);
        got &= want;
        if (got == 0)
            continue;
        if (kept != i)
            acc[kept] = acc[i];
        acc[kept++].actions = got;
    }
    *n = kept;
}

/* see token.h */
int node_token_sign(struct node_token *t,
                    const struct node_auth_identity *who,
                    const struct node_jwt_access *acc,
                    size_t n,
                    struct at_buf *b,
                    int64_t *issued_s,
                    char *errmsg)
{
    struct node_jwt_claims *c;
    char jti[NODE_AUTH_SECRET_SIZE];
    int rv;

    keys_refresh(t);
    if (t->nkeys == 0) {
        at_errmsg_printf(errmsg, "no token signing key yet");
        return AT_ENOTFOUND;
    }
    AT_ASSERT(n <= NODE_JWT_ACCESS_MAX);
    c = at_calloc(1, sizeof(*c));
    node_auth_secret_new(jti);
    snprintf(c->jti, sizeof(c->jti), "%s", jti);
    snprintf(c->sub, sizeof(c->sub), "%s", who != NULL ? who->name : "");
    c->iat = c->nbf = (int64_t)(at_wall_ms() / 1000);
    c->exp = c->iat + (int64_t)(t->cfg.ttl_ms / 1000);
    memcpy(c->access, acc, n * sizeof(*acc));
    c->naccess = n;
    *issued_s = c->iat;
    rv = node_jwt_sign(t->keys[t->nkeys - 1], t->cfg.issuer, t->cfg.service, c,
                       b, errmsg);
    at_free(c);
    return rv;
}

/* ---- checks for the gate ---- */

/* The bytes of claims with n access entries. */
static size_t claims_size(size_t n)
{
    return offsetof(struct node_jwt_claims, access) +
           n * sizeof(struct node_jwt_access);
}

/* see token.h */
int node_token_check(struct node_token *t,
                     const char *value,
                     struct node_jwt_claims *out)
{
    struct node_jwt_check chk = {
        t->cfg.issuer,     t->cfg.service, (int64_t)(at_wall_ms() / 1000),
        NODE_JWT_LEEWAY_S, key_find,       t
    };
    char errmsg[AT_ERRMSG_SIZE];
    struct at_digest key;
    struct verified *v;
    size_t len;
    int rv;

    if (value == NULL || strncasecmp(value, "Bearer ", 7) != 0)
        return AT_EINVAL;
    value += 7;
    while (*value == ' ')
        value++;
    keys_refresh(t); /* a changed key set empties the verified ones */
    len = strlen(value);
    if (len > NODE_JWT_MAX)
        return AT_ETOOBIG;
    at_digest_of(value, len, &key);
    v = at_map_get(&t->verified, key.bytes, sizeof(key.bytes));
    if (v != NULL) {
        /* the signature and the other claims were checked; time moves */
        if (chk.now_s - NODE_JWT_LEEWAY_S >= v->claims.exp) {
            at_list_remove(&v->link);
            at_map_del(&t->verified, key.bytes, sizeof(key.bytes));
            at_free(v);
            t->nverified--;
            return AT_EINVAL;
        }
        memcpy(out, &v->claims, claims_size(v->claims.naccess));
        out->naccess = v->claims.naccess;
        return 0;
    }
    rv = node_jwt_verify(value, len, &chk, out, errmsg);
    if (rv != 0) {
        LOG_DEBUG("bearer token refused: %s", errmsg);
        return rv;
    }
    if (t->nverified == VERIFIED_MAX) {
        struct verified *old = AT_LIST_ENTRY(
            at_list_pop_front(&t->verified_list), struct verified, link);
        at_map_del(&t->verified, old->key.bytes, sizeof(old->key.bytes));
        at_free(old);
        t->nverified--;
    }
    v = at_malloc(offsetof(struct verified, claims) +
                  claims_size(out->naccess));
    v->key = key;
    memcpy(&v->claims, out, claims_size(out->naccess));
    at_map_put(&t->verified, key.bytes, sizeof(key.bytes), v);
    at_list_push_back(&t->verified_list, &v->link);
    t->nverified++;
    return 0;
}

/* see token.h */
bool node_token_allows(const struct node_jwt_claims *c,
                       const char *repo,
                       unsigned action)
{
    for (size_t i = 0; i < c->naccess; i++) {
        const struct node_jwt_access *a = &c->access[i];
        if (repo == NULL) {
            if (strcmp(a->type, "registry") == 0 &&
                strcmp(a->name, "catalog") == 0 && (a->actions & NODE_JWT_ANY))
                return true;
        } else if (strcmp(a->type, "repository") == 0 &&
                   strcmp(a->name, repo) == 0 && (a->actions & action) != 0 &&
                   (action & ~a->actions) == 0) {
            return true;
        }
    }
    return false;
}

/* Append s without the characters that would break a quoted string. */
static void put_quoted(struct at_buf *b, const char *s)
{
    for (; s != NULL && *s != '\0'; s++) {
        if (*s != '"' && *s != '\\' && (unsigned char)*s >= ' ' &&
            (unsigned char)*s < 0x7f)
            at_buf_append(b, s, 1);
    }
}

/* see token.h */
void node_token_challenge(const struct node_token *t,
                          struct at_buf *b,
                          const char *host,
                          const char *scheme,
                          const char *repo,
                          unsigned actions)
{
    static const char *const names[] = { "pull", "push", "delete" };
    static const unsigned bits[] = { NODE_JWT_PULL, NODE_JWT_PUSH,
                                     NODE_JWT_DELETE };

    at_buf_puts(b, "Bearer realm=\"");
    if (t->cfg.realm[0] != '\0') {
        at_buf_puts(b, t->cfg.realm);
    } else {
        put_quoted(b, scheme);
        at_buf_puts(b, "://");
        put_quoted(b, host != NULL && host[0] != '\0' ? host : "localhost");
        at_buf_puts(b, "/_atoll/token");
    }
    at_buf_printf(b, "\",service=\"%s\"", t->cfg.service);
    if (repo == NULL && actions == NODE_JWT_ANY) {
        at_buf_puts(b, ",scope=\"registry:catalog:*\"");
    } else if (repo != NULL && actions != 0) {
        bool first = true;
        at_buf_puts(b, ",scope=\"repository:");
        put_quoted(b, repo);
        at_buf_puts(b, ":");
        for (size_t i = 0; i < AT_ARRAY_SIZE(bits); i++) {
            if (actions & bits[i]) {
                at_buf_printf(b, "%s%s", first ? "" : ",", names[i]);
                first = false;
            }
        }
        at_buf_puts(b, "\"");
    }
}
