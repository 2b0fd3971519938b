/* Authenticating the callers of admin endpoints (see admin_auth.h).
 *
 * Happy path: the cluster secret (at once), or Basic credentials of an
 * admin user: the limits say the name and address may try, the verifier
 * answers (its cache at once, else bcrypt in the pool), the user is an
 * admin. Failure modes: no, malformed or wrong credentials 401; no admin
 * 403; too many failures 429 (no bcrypt run); the client gone while the
 * verifier works: nothing answered. */
#define AT_LOG_COMP "auth"
#include "common/compat.h"

#include <strings.h>

#include "node/admin_auth.h"
#include "node/cluster/peer_api.h"

struct job {
    struct node_api *api;      /* borrowed */
    struct node_http_req *req; /* one reference */
    const char *what;          /* borrowed (a literal) */
    node_admin_auth_cb cb;
    void *data;
    char login[NODE_AUTH_NAME_SIZE];
    struct node_auth_identity id;
};

static void finish(struct job *j, int status, const struct node_admin_who *w)
{
    struct node_http_req *req = j->req;

    j->cb(j->data, status, w);
    explicit_bzero(j, sizeof(*j));
    at_free(j);
    node_http_req_unref(req);
}

static void refuse(struct job *j, int http, const char *why)
{
    struct node_http_req *req = j->req;

    LOG_WARN("%s %s from %s refused: %s", node_http_req_method_str(req),
             node_http_req_path(req), node_http_req_peer(req), why);
    if (http == 401) {
        node_http_resp_header(req, "WWW-Authenticate", "Basic realm=\"atoll\"");
        node_reply_error(req, 401, "UNAUTHORIZED",
                         "authentication required: an admin user or the "
                         "cluster secret");
    } else {
        node_reply_error(req, 403, "DENIED", "only an admin user may %s",
                         j->what);
    }
    finish(j, AT_EINVAL, NULL);
}

static void too_many(struct job *j, const char *user)
{
    struct node_auth_limit *lim = node_auth_limiter(j->api->auth);
    const char *peer = node_http_req_peer(j->req);
    uint64_t retry_s = node_auth_limit_retry_after(lim, user, peer);

    LOG_INFO(
        "%s %s from %s refused: too many failed logins, retry in "
        "%" PRIu64 " s",
        node_http_req_method_str(j->req), node_http_req_path(j->req), peer,
        retry_s);
    node_http_resp_header(j->req, "Retry-After", "%" PRIu64, retry_s);
    node_reply_error(j->req, 429, "TOOMANYREQUESTS",
                     "too many failed logins; retry later");
    finish(j, AT_EINVAL, NULL);
}

static void identified(struct job *j, const struct node_auth_identity *id)
{
    struct node_admin_who w = { .secret = false };

    if (!id->admin) {
        char why[NODE_AUTH_NAME_SIZE + 32];
        snprintf(why, sizeof(why), "'%s' is no admin", id->name);
        node_http_req_set_user(j->req, id->name);
        refuse(j, 403, why);
        return;
    }
    snprintf(w.text, sizeof(w.text), "admin '%s'", id->name);
    node_http_req_set_user(j->req, id->name);
    finish(j, 0, &w);
}

/* The verifier's answer: the limits learn how it went. */
static void verified(struct job *j, int status)
{
    struct node_auth_limit *lim = node_auth_limiter(j->api->auth);
    const char *peer = node_http_req_peer(j->req);

    if (status == 0)
        node_auth_limit_ok(lim, j->login, peer);
    else if (status == AT_EINVAL)
        node_auth_limit_fail(lim, j->login, peer);
    if (node_http_req_done(j->req))
        finish(j, AT_ESHUTDOWN, NULL);
    else if (status != 0)
        refuse(j, 401, "wrong credentials");
    else
        identified(j, &j->id);
}

static void on_verified(void *data,
                        int status,
                        const struct node_auth_identity *id)
{
    struct job *j = data;

    if (status == 0)
        j->id = *id; /* borrowed for the call */
    verified(j, status);
}

/* see admin_auth.h */
void node_admin_auth(struct node_api *api,
                     struct node_http_req *req,
                     const char *what,
                     node_admin_auth_cb cb,
                     void *data)
{
    const char *h = node_http_req_header(req, "authorization");
    const char *peer = node_http_req_peer(req);
    struct node_auth_limit *lim = node_auth_limiter(api->auth);
    char password[NODE_AUTH_PASSWORD_MAX + 1];
    struct job *j = at_calloc(1, sizeof(*j));
    int rv;

    j->api = api;
    j->req = req;
    j->what = what;
    j->cb = cb;
    j->data = data;
    node_http_req_ref(req);
    if (h != NULL && strncasecmp(h, "Bearer ", 7) == 0) {
        struct node_admin_who w = { .secret = true };

        /* guesses of the secret count against the address */
        if (node_auth_limit_check(lim, NULL, peer) != 0) {
            too_many(j, NULL);
            return;
        }
        if (!node_peer_auth_ok(h, api->cfg->cluster_secret)) {
            node_auth_limit_fail(lim, NULL, peer);
            refuse(j, 401, "not the cluster secret");
            return;
        }
        snprintf(w.text, sizeof(w.text), "the cluster secret");
        node_http_req_set_user(req, "#cluster");
        finish(j, 0, &w);
        return;
    }
    if (h == NULL || node_auth_basic_parse(h, j->login, sizeof(j->login),
                                           password, sizeof(password)) != 0) {
        refuse(j, 401, h == NULL ? "no credentials" : "malformed credentials");
        return;
    }
    if (node_auth_limit_check(lim, j->login, peer) != 0) {
        explicit_bzero(password, sizeof(password));
        too_many(j, j->login);
        return;
    }
    rv =
        node_auth_verify(api->auth, j->login, password, &j->id, on_verified, j);
    explicit_bzero(password, sizeof(password));
    if (rv != NODE_AUTH_PENDING)
        verified(j, rv);
}
