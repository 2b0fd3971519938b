/* The token endpoints (see token.h): one request object per call, moving
 * through its states as its steps complete.
 *
 * Happy path of a token: BODY (POST only: the form, bounded) -> AUTH
 * (Basic credentials or the form's username and password verified in
 * the pool; none: anonymous) -> the grant and the signature, at once;
 * KEY only when the cluster has no signing key yet (one is made,
 * proposed, applied) -> DONE. A rotation goes AUTH (an admin user or the
 * cluster secret) -> KEY -> DONE.
 *
 * Failure modes: wrong credentials 401 (OCI error JSON, a Basic
 * challenge, no token); a rotation by a non-admin 403; a malformed query
 * or form, an unknown service or grant type 400; too many scopes 400; no
 * leader to commit a key 503. A client gone mid-body aborts the request;
 * gone later, the steps finish and the answer goes nowhere. */
#define AT_LOG_COMP "token"
#include "common/compat.h"

#include <strings.h>
#include <time.h>

#include "node/admin_auth.h"
#include "node/cluster/peer_api.h"
#include "node/http/url.h"
#include "node/oci/names.h"
#include "node/token.h"

#define FORM_VALUE_MAX 4096 /* one decoded parameter */

enum tq_state {
    TQ_BODY,
    TQ_AUTH,
    TQ_KEY,
    TQ_DONE,
};

static const char *const tq_state_name[] = { "body", "auth", "key", "done" };

#define TO(s) (1u << (s))
static const unsigned tq_allowed[] = {
    [TQ_BODY] = TO(TQ_AUTH) | TO(TQ_DONE),
    [TQ_AUTH] = TO(TQ_KEY) | TO(TQ_DONE),
    [TQ_KEY] = TO(TQ_DONE),
    [TQ_DONE] = 0,
};
#undef TO

/* One call on a token endpoint. */
struct treq {
    struct node_api *api;      /* borrowed */
    struct node_token *t;      /* one reference */
    struct node_http_req *req; /* one reference until freed */
    enum tq_state state;
    bool post;   /* the OAuth2 form */
    bool rotate; /* POST /_atoll/token-keys/rotate */
    bool anonymous;
    struct node_auth_identity id;
    char who[NODE_AUTH_NAME_SIZE + 16]; /* for the audit line */
    char login[NODE_AUTH_NAME_SIZE];    /* the name being verified */
    struct at_buf body;
    /* the form */
    char grant_type[32];
    char user[NODE_AUTH_NAME_SIZE];
    char password[NODE_AUTH_PASSWORD_MAX + 1]; /* wiped */
    bool has_user, has_password;
    const char *bad; /* why the query or form is refused, or NULL */
    struct node_jwt_access acc[NODE_JWT_ACCESS_MAX];
    size_t nacc;
};

static void tq_move(struct treq *q, enum tq_state to)
{
    if ((tq_allowed[q->state] & (1u << to)) == 0) {
        LOG_ERROR("token request: illegal move %s -> %s",
                  tq_state_name[q->state], tq_state_name[to]);
        AT_ASSERT(!"illegal token request move");
    }
    q->state = to;
}

static void tq_done(struct treq *q)
{
    struct node_http_req *req = q->req;
    struct node_token *t = q->t;

    tq_move(q, TQ_DONE);
    if (q->body.data != NULL)
        explicit_bzero(q->body.data, q->body.len);
    at_buf_release(&q->body);
    explicit_bzero(q, sizeof(*q));
    at_free(q);
    node_token_unref(t);
    node_http_req_unref(req);
}

static void tq_fail(struct treq *q, int status, const char *code, const char *m)
{
    node_reply_error(q->req, status, code, "%s", m);
    tq_done(q);
}

static void reply_json(struct node_http_req *req,
                       int status,
                       const struct at_buf *b)
{
    node_reply_begin(req, status);
    node_http_resp_header(req, "Content-Type", "application/json");
    node_http_resp_header(req, "Cache-Control", "no-store");
    node_http_resp_send(req, b->data, b->len);
}

/* ---- scopes ---- */

static unsigned action_bits(const char *s, size_t n)
{
    static const char *const names[] = { "pull", "push", "delete", "*" };
    static const unsigned bits[] = { NODE_JWT_PULL, NODE_JWT_PUSH,
                                     NODE_JWT_DELETE, NODE_JWT_ANY };
    unsigned out = 0;

    while (n > 0) {
        const char *comma = memchr(s, ',', n);
        size_t len = comma != NULL ? (size_t)(comma - s) : n;
        for (size_t k = 0; k < AT_ARRAY_SIZE(names); k++) {
            if (len == strlen(names[k]) && memcmp(s, names[k], len) == 0)
                out |= bits[k];
        }
        s += len;
        n -= len;
        if (n > 0) {
            s++;
            n--;
        }
    }
    return out;
}

/* Add (type, name) asking for actions, merged with an entry of the same
 * resource. false when there is no room left. */
static bool scope_add(struct treq *q,
                      const char *type,
                      const char *name,
                      size_t nlen,
                      unsigned actions)
{
    for (size_t i = 0; i < q->nacc; i++) {
        struct node_jwt_access *a = &q->acc[i];
        if (strcmp(a->type, type) == 0 && strlen(a->name) == nlen &&
            memcmp(a->name, name, nlen) == 0) {
            a->actions |= actions;
            return true;
        }
    }
    if (q->nacc == NODE_JWT_ACCESS_MAX)
        return false;
    snprintf(q->acc[q->nacc].type, sizeof(q->acc[0].type), "%s", type);
    memcpy(q->acc[q->nacc].name, name, nlen);
    q->acc[q->nacc].name[nlen] = '\0';
    q->acc[q->nacc++].actions = actions;
    return true;
}

/* One entry "type[(class)]:name:actions" (s[0..n)); the name may hold
 * ':' (a registry host's port), so the actions follow the last one.
 * Entries of other types or with invalid names are left out. */
static bool scope_entry(struct treq *q, const char *s, size_t n)
{
    const char *c1 = memchr(s, ':', n), *c2 = NULL;
    const char *paren;
    size_t tlen, nlen;
    unsigned acts;

    for (size_t i = n; c1 != NULL && i > (size_t)(c1 - s) + 1; i--) {
        if (s[i - 1] == ':') {
            c2 = s + i - 1;
            break;
        }
    }
    if (c1 == NULL || c2 == NULL)
        return true;
    paren = memchr(s, '(', (size_t)(c1 - s));
    tlen = (size_t)((paren != NULL ? paren : c1) - s);
    nlen = (size_t)(c2 - c1 - 1);
    acts = action_bits(c2 + 1, n - (size_t)(c2 + 1 - s));
    if (tlen == 10 && memcmp(s, "repository", 10) == 0) {
        if (acts & NODE_JWT_ANY)
            acts = NODE_JWT_PULL | NODE_JWT_PUSH | NODE_JWT_DELETE;
        if (acts == 0 || nlen > NODE_JWT_NAME_MAX ||
            !node_name_valid(c1 + 1, nlen))
            return true;
        return scope_add(q, "repository", c1 + 1, nlen, acts);
    }
    if (tlen == 8 && memcmp(s, "registry", 8) == 0 && nlen == 7 &&
        memcmp(c1 + 1, "catalog", 7) == 0 && (acts & NODE_JWT_ANY))
        return scope_add(q, "registry", "catalog", 7, NODE_JWT_ANY);
    return true;
}

/* A scope value: entries separated by spaces. */
static void scope_value(struct treq *q, const char *v)
{
    while (*v != '\0' && q->bad == NULL) {
        size_t n = strcspn(v, " ");
        if (n > 0 && !scope_entry(q, v, n))
            q->bad = "too many scopes";
        v += n;
        v += strspn(v, " ");
    }
}

/* ---- the query and the form ---- */

static void copy_field(const char *v, char *out, size_t size, bool *has)
{
    if (strlen(v) >= size)
        return;
    memcpy(out, v, strlen(v) + 1);
    if (has != NULL)
        *has = true;
}

static void take_param(struct treq *q, const char *key, const char *v)
{
    const struct node_token_config *cfg = node_token_config(q->t);

    if (strcmp(key, "scope") == 0)
        scope_value(q, v);
    else if (strcmp(key, "service") == 0 && strcmp(v, cfg->service) != 0)
        q->bad = "unknown service";
    else if (strcmp(key, "grant_type") == 0)
        copy_field(v, q->grant_type, sizeof(q->grant_type), NULL);
    else if (strcmp(key, "username") == 0 && q->post)
        copy_field(v, q->user, sizeof(q->user), &q->has_user);
    else if (strcmp(key, "password") == 0 && q->post)
        copy_field(v, q->password, sizeof(q->password), &q->has_password);
    /* account, client_id, offline_token, access_type: nothing to do */
}

/* Each "key=value" of s[0..n) (a query or an urlencoded form): '+' is a
 * space, then percent-decoding. */
static void params_read(struct treq *q, const char *s, size_t n)
{
    while (n > 0 && q->bad == NULL) {
        const char *amp = memchr(s, '&', n);
        size_t len = amp != NULL ? (size_t)(amp - s) : n;
        const char *eq = memchr(s, '=', len);
        size_t klen = eq != NULL ? (size_t)(eq - s) : len;
        char *raw, *key = NULL, *val = NULL;

        if (len > FORM_VALUE_MAX) {
            q->bad = "a parameter is too long";
            break;
        }
        raw = at_strndup(s, len);
        for (char *p = raw; *p != '\0'; p++) {
            if (*p == '+')
                *p = ' ';
        }
        if (node_url_decode(raw, klen, &key) != 0 ||
            node_url_decode(eq != NULL ? raw + klen + 1 : "",
                            eq != NULL ? len - klen - 1 : 0, &val) != 0)
            q->bad = "malformed percent-encoding";
        else
            take_param(q, key, val);
        if (val != NULL)
            explicit_bzero(val, strlen(val));
        explicit_bzero(raw, len);
        at_free(raw);
        at_free(key);
        at_free(val);
        s += len;
        n -= len;
        if (n > 0) {
            s++;
            n--;
        }
    }
}

/* ---- answers ---- */

static void answer_token(struct treq *q)
{
    const struct node_token_config *cfg = node_token_config(q->t);
    struct at_buf tok, b;
    char errmsg[AT_ERRMSG_SIZE], when[32];
    int64_t issued = 0;
    struct tm tm;
    time_t tt;
    int rv;

    at_buf_init(&tok, NODE_JWT_MAX);
    rv = node_token_sign(q->t, q->anonymous ? NULL : &q->id, q->acc, q->nacc,
                         &tok, &issued, errmsg);
    if (rv != 0) {
        at_buf_release(&tok);
        LOG_ERROR("cannot issue a token: %s", errmsg);
        tq_fail(q, 503, "UNAVAILABLE", "cannot issue a token now");
        return;
    }
    tt = (time_t)issued;
    gmtime_r(&tt, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    at_buf_init(&b, 0);
    at_buf_puts(&b, "{\"token\":");
    at_buf_json_str(&b, tok.data, tok.len);
    at_buf_puts(&b, ",\"access_token\":");
    at_buf_json_str(&b, tok.data, tok.len);
    at_buf_printf(&b, ",\"expires_in\":%" PRIu64 ",\"issued_at\":\"%s\"",
                  cfg->ttl_ms / 1000, when);
    if (q->post) {
        at_buf_puts(&b, ",\"token_type\":\"Bearer\",\"scope\":\"");
        for (size_t i = 0; i < q->nacc; i++) {
            const struct node_jwt_access *a = &q->acc[i];
            at_buf_printf(&b, "%s%s:%s:", i > 0 ? " " : "", a->type, a->name);
            at_buf_printf(&b, "%s%s%s%s",
                          (a->actions & NODE_JWT_PULL) ? "pull," : "",
                          (a->actions & NODE_JWT_PUSH) ? "push," : "",
                          (a->actions & NODE_JWT_DELETE) ? "delete," : "",
                          (a->actions & NODE_JWT_ANY) ? "*," : "");
            b.data[--b.len] = '\0'; /* the last ',' */
        }
        at_buf_puts(&b, "\"");
    }
    at_buf_puts(&b, "}\n");
    LOG_DEBUG("token for '%s' from %s: %zu scopes",
              q->anonymous ? "" : q->id.name, node_http_req_peer(q->req),
              q->nacc);
    reply_json(q->req, 200, &b);
    explicit_bzero(tok.data, tok.len);
    at_buf_release(&tok);
    at_buf_release(&b);
    tq_done(q);
}

static void on_key(void *data, int status, const char *kid, uint64_t index)
{
    struct treq *q = data;
    struct at_buf b;

    if (status != 0) {
        LOG_WARN("token signing key not committed: %s", at_strerror(status));
        node_reply_write_failed(q->req, status, 0);
        tq_done(q);
        return;
    }
    if (!q->rotate) {
        answer_token(q);
        return;
    }
    LOG_INFO(
        "%s from %s rotated the token signing key: new kid '%s' at "
        "index %" PRIu64,
        q->who, node_http_req_peer(q->req), kid, index);
    at_buf_init(&b, 0);
    at_buf_printf(&b, "{\"kid\":\"%s\",\"index\":%" PRIu64 ",\"keys\":", kid,
                  index);
    node_token_kids_json(q->t, &b);
    at_buf_puts(&b, "}\n");
    node_reply_write_index(q->req, 0, index);
    reply_json(q->req, 200, &b);
    at_buf_release(&b);
    tq_done(q);
}

static void key_start(struct treq *q)
{
    char errmsg[AT_ERRMSG_SIZE];
    int rv;

    tq_move(q, TQ_KEY);
    rv = node_token_key_start(
        q->t, q->rotate, node_http_req_header(q->req, "x-atoll-request-id"),
        on_key, q, errmsg);
    if (rv != 0) {
        LOG_WARN("cannot propose a token signing key: %s", errmsg);
        node_reply_write_failed(q->req, rv, 0);
        tq_done(q);
    }
}

/* The caller is known (or anonymous): grant, then sign. */
/* The admin check of a rotation: an admin goes on. */
static void on_admin(void *data, int status, const struct node_admin_who *w)
{
    struct treq *q = data;

    if (status != 0) {
        tq_done(q); /* answered, or the client is gone */
        return;
    }
    snprintf(q->who, sizeof(q->who), "%s", w->text);
    key_start(q);
}

static void identified(struct treq *q)
{
    node_token_grant_apply(q->t, q->anonymous ? NULL : &q->id, q->acc,
                           &q->nacc);
    /* no key applied here yet: make the cluster's first one */
    if (!node_token_has_key(q->t))
        key_start(q);
    else
        answer_token(q);
}

static void unauthorized(struct treq *q, const char *why)
{
    LOG_WARN("%s %s from %s refused: %s", node_http_req_method_str(q->req),
             node_http_req_path(q->req), node_http_req_peer(q->req), why);
    node_http_resp_header(q->req, "WWW-Authenticate", "Basic realm=\"atoll\"");
    tq_fail(q, 401, "UNAUTHORIZED", "authentication required");
}

/* Tell the failed-login limits how a verification ended. */
static void limit_note(struct treq *q, int status)
{
    struct node_auth_limit *lim = node_auth_limiter(q->api->auth);
    const char *peer = node_http_req_peer(q->req);

    if (status == 0)
        node_auth_limit_ok(lim, q->login, peer);
    else if (status == AT_EINVAL)
        node_auth_limit_fail(lim, q->login, peer);
}

static void on_verified(void *data,
                        int status,
                        const struct node_auth_identity *id)
{
    struct treq *q = data;

    limit_note(q, status);
    if (status != 0) {
        unauthorized(q, "wrong credentials");
        return;
    }
    q->id = *id;
    identified(q);
}

/* Verify user and password (wiped here), or go on at once. */
static void verify(struct treq *q, const char *user, char *password)
{
    struct node_auth_limit *lim = node_auth_limiter(q->api->auth);
    const char *peer = node_http_req_peer(q->req);
    int rv;

    /* too many failures of this name or from this address: refused
     * without a bcrypt (node/auth/limit.h) */
    if (node_auth_limit_check(lim, user, peer) != 0) {
        explicit_bzero(password, strlen(password));
        LOG_INFO("%s %s from %s refused: too many failed logins",
                 node_http_req_method_str(q->req), node_http_req_path(q->req),
                 peer);
        node_http_resp_header(q->req, "Retry-After", "%" PRIu64,
                              node_auth_limit_retry_after(lim, user, peer));
        tq_fail(q, 429, "TOOMANYREQUESTS",
                "too many failed logins; retry later");
        return;
    }
    snprintf(q->login, sizeof(q->login), "%s", user);
    rv = node_auth_verify(q->api->auth, user, password, &q->id, on_verified, q);
    explicit_bzero(password, strlen(password));
    if (rv == 0 || rv == AT_EINVAL)
        limit_note(q, rv);
    if (rv == 0)
        identified(q);
    else if (rv != NODE_AUTH_PENDING)
        unauthorized(q, "wrong credentials");
}

static void authenticate(struct treq *q)
{
    const char *h = node_http_req_header(q->req, "authorization");
    char user[NODE_AUTH_NAME_SIZE];
    char password[NODE_AUTH_PASSWORD_MAX + 1];

    tq_move(q, TQ_AUTH);
    if (q->rotate) {
        node_admin_auth(q->api, q->req, "rotate token keys", on_admin, q);
        return;
    }
    if (q->post && q->has_user) {
        verify(q, q->user, q->password);
        return;
    }
    if (h == NULL) {
        q->anonymous = true;
        identified(q);
        return;
    }
    if (h == NULL || node_auth_basic_parse(h, user, sizeof(user), password,
                                           sizeof(password)) != 0) {
        unauthorized(q, h == NULL ? "no credentials" : "malformed credentials");
        return;
    }
    verify(q, user, password);
}

/* ---- the form of a POST ---- */

static void form_run(struct treq *q)
{
    params_read(q, q->body.data != NULL ? q->body.data : "", q->body.len);
    if (q->bad == NULL && strcmp(q->grant_type, "password") != 0)
        q->bad = strcmp(q->grant_type, "refresh_token") == 0
                     ? "no refresh tokens are given out: use "
                       "grant_type=password"
                     : "grant_type: want password";
    if (q->bad == NULL && (!q->has_user || !q->has_password))
        q->bad = "grant_type=password needs username and password";
    if (q->bad != NULL) {
        tq_fail(q, 400, "UNSUPPORTED", q->bad);
        return;
    }
    authenticate(q);
}

static int on_body(struct node_http_req *req, const char *p, size_t n)
{
    struct treq *q = node_http_req_data(req);

    if (q != NULL && at_buf_append(&q->body, p, n) != 0) {
        node_http_req_set_data(req, NULL);
        node_http_req_on_abort(req, NULL);
        tq_fail(q, 413, "UNSUPPORTED", "form over 16 KiB");
    }
    return 0;
}

static void on_end(struct node_http_req *req)
{
    struct treq *q = node_http_req_data(req);

    if (q == NULL)
        return;
    node_http_req_set_data(req, NULL);
    node_http_req_on_abort(req, NULL);
    form_run(q);
}

static void on_abort(struct node_http_req *req)
{
    struct treq *q = node_http_req_data(req);

    if (q == NULL)
        return;
    node_http_req_set_data(req, NULL);
    tq_done(q);
}

static void read_form(struct treq *q)
{
    const char *type = node_http_req_header(q->req, "content-type");

    if (type == NULL ||
        strncasecmp(type, "application/x-www-form-urlencoded", 33) != 0) {
        tq_fail(q, 400, "UNSUPPORTED",
                "want an application/x-www-form-urlencoded body");
        return;
    }
    if (!node_http_req_has_body(q->req) ||
        (node_http_req_has_length(q->req) &&
         node_http_req_content_length(q->req) > NODE_TOKEN_BODY_MAX)) {
        tq_fail(q, 400, "UNSUPPORTED", "want a form of at most 16 KiB");
        return;
    }
    at_buf_init(&q->body, NODE_TOKEN_BODY_MAX);
    node_http_req_set_data(q->req, q);
    node_http_req_on_abort(q->req, on_abort);
    node_http_req_read_body(q->req, on_body, on_end);
}

/* ---- routing ---- */

/* see token.h */
bool node_token_path(const char *path)
{
    return strcmp(path, "/_atoll/token") == 0 ||
           strcmp(path, "/_atoll/token/jwks") == 0 ||
           strncmp(path, "/_atoll/token-keys/", 19) == 0;
}

static void jwks(struct node_api *api, struct node_http_req *req)
{
    struct at_buf b;

    at_buf_init(&b, 0);
    node_token_jwks(api->token, &b);
    at_buf_puts(&b, "\n");
    reply_json(req, 200, &b);
    at_buf_release(&b);
}

/* see token.h */
void node_token_handle(struct node_api *api, struct node_http_req *req)
{
    const char *path = node_http_req_path(req);
    enum node_http_method m = node_http_req_method(req);
    bool rotate = strncmp(path, "/_atoll/token-keys/", 19) == 0;
    struct treq *q;

    if (rotate && strcmp(path, "/_atoll/token-keys/rotate") != 0) {
        node_reply_error(req, 404, "NOT_FOUND", "unknown endpoint");
        return;
    }
    if ((rotate && m != NODE_HTTP_POST) ||
        (!rotate && m != NODE_HTTP_GET && m != NODE_HTTP_HEAD &&
         (m != NODE_HTTP_POST || strcmp(path, "/_atoll/token") != 0))) {
        node_reply_error(req, 405, "UNSUPPORTED", "method not allowed here");
        return;
    }
    if (api->token == NULL || api->auth == NULL || api->meta == NULL) {
        node_reply_error(req, 503, "UNAVAILABLE", "node is starting");
        return;
    }
    if (strcmp(path, "/_atoll/token/jwks") == 0) {
        jwks(api, req);
        return;
    }
    q = at_calloc(1, sizeof(*q));
    q->api = api;
    q->t = api->token;
    q->req = req;
    q->state = TQ_BODY;
    q->rotate = rotate;
    q->post = !rotate && m == NODE_HTTP_POST;
    node_token_ref(q->t);
    node_http_req_ref(req);
    if (q->post) {
        read_form(q);
        return;
    }
    if (!rotate) {
        const char *query = node_http_req_query(req);
        params_read(q, query != NULL ? query : "",
                    query != NULL ? strlen(query) : 0);
        if (q->bad != NULL) {
            tq_fail(q, 400, "UNSUPPORTED", q->bad);
            return;
        }
    }
    authenticate(q);
}
