/* PUT of a JSON cluster setting: see setting_put.h. */
#include "common/compat.h"

#define AT_LOG_COMP "admin"

#include <jansson.h>

#include "common/common.h"
#include "node/auth/access.h"
#include "node/cluster/peer_api.h"
#include "node/cluster/setting_put.h"
#include "node/reply/reply.h"

struct put_req {
    struct node_api *api;
    const struct node_setting_put *s;
    struct at_buf body;
    char *canon; /* owned: the document as stored */
};

static void put_free(struct put_req *pr)
{
    at_buf_release(&pr->body);
    at_free(pr->canon);
    at_free(pr);
}

/* see setting_put.h */
void node_setting_reply(struct node_http_req *req,
                        const char *v,
                        const char *empty)
{
    if (v == NULL || v[0] == '\0')
        v = empty;
    node_reply_begin(req, 200);
    node_http_resp_header(req, "Content-Type", "application/json");
    node_http_resp_send(req, v, strlen(v));
}

static void on_set(void *data, int status, int result, uint64_t index)
{
    struct node_http_req *req = data;
    struct put_req *pr = node_http_req_data(req);

    node_http_req_set_data(req, NULL);
    if (!node_reply_write_failed(req, status, result)) {
        node_reply_write_index(req, status, index);
        const char *u = node_http_req_user(req);
        const char *secret = pr->api->cfg->cluster_secret;
        LOG_AUDIT("%s%s%s from %s set the %s at index %" PRIu64,
                  u != NULL ? "user '" : "",
                  u != NULL                          ? u
                  : secret != NULL && secret[0] != 0 ? "the cluster secret"
                                                     : "anyone",
                  u != NULL ? "'" : "", node_http_req_peer(req), pr->s->what,
                  index);
        node_setting_reply(req, pr->canon, "{}");
    }
    put_free(pr);
    node_http_req_unref(req);
}

static void put_run(struct node_http_req *req, struct put_req *pr)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    const char *body = pr->body.data != NULL ? pr->body.data : "";
    json_t *doc;
    int rv;

    rv = pr->s->check(body, pr->body.len, errmsg);
    if (rv != 0) {
        node_reply_error(req, 400, "UNSUPPORTED", "invalid %s: %s", pr->s->what,
                         errmsg);
        goto fail;
    }
    /* stored compact and with sorted keys: what GET gives back */
    doc = json_loadb(body, pr->body.len, 0, NULL);
    pr->canon = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(doc);
    if (pr->canon == NULL) {
        node_reply_error(req, 500, "UNKNOWN", "cannot encode the %s",
                         pr->s->what);
        goto fail;
    }
    struct meta_cmd c = {
        .kind = META_CMD_SET_SETTING,
        .request_id = node_http_req_header(req, "x-atoll-request-id"),
        .set_setting = { .key = pr->s->key, .value = pr->canon },
    };
    rv = meta_propose(pr->api->meta, &c, on_set, req);
    if (rv == 0)
        return; /* on_set answers */
    node_reply_write_failed(req, rv, 0);
fail:
    node_http_req_set_data(req, NULL);
    put_free(pr);
    node_http_req_unref(req);
}

static int put_on_body(struct node_http_req *req, const char *p, size_t n)
{
    struct put_req *pr = node_http_req_data(req);

    if (pr == NULL)
        return 0;
    if (at_buf_append(&pr->body, p, n) != 0) {
        node_http_req_set_data(req, NULL);
        node_http_req_on_abort(req, NULL);
        node_reply_error(req, 413, "SIZE_INVALID", "%s over %zu bytes",
                         pr->s->what, pr->s->max);
        put_free(pr);
        node_http_req_unref(req);
    }
    return 0;
}

static void put_on_end(struct node_http_req *req)
{
    struct put_req *pr = node_http_req_data(req);

    if (pr == NULL)
        return;
    node_http_req_on_abort(req, NULL);
    put_run(req, pr);
}

static void put_on_abort(struct node_http_req *req)
{
    struct put_req *pr = node_http_req_data(req);

    if (pr == NULL)
        return;
    node_http_req_set_data(req, NULL);
    put_free(pr);
    node_http_req_unref(req);
}

/* see setting_put.h */
bool node_setting_admin(struct node_api *api, struct node_http_req *req)
{
    const char *secret = api->cfg->cluster_secret;

    if (node_access_admin(req) || secret == NULL || secret[0] == '\0' ||
        node_peer_auth_ok(node_http_req_header(req, "authorization"), secret))
        return true;
    LOG_WARN("%s %s from %s without a valid cluster secret",
             node_http_req_method(req) == NODE_HTTP_GET ? "GET" : "change of",
             node_http_req_path(req), node_http_req_peer(req));
    node_http_resp_header(req, "WWW-Authenticate", "Bearer");
    node_reply_error(req, 401, "UNAUTHORIZED",
                     "missing or wrong cluster secret");
    return false;
}

/* see setting_put.h */
void node_setting_put(struct node_api *api,
                      struct node_http_req *req,
                      const struct node_setting_put *s)
{
    struct put_req *pr;

    if (!node_setting_admin(api, req))
        return;
    if (!node_http_req_has_body(req) ||
        (node_http_req_has_length(req) &&
         node_http_req_content_length(req) > s->max)) {
        node_reply_error(req, 400, "UNSUPPORTED",
                         "want a JSON body of at most %zu bytes", s->max);
        return;
    }
    pr = at_calloc(1, sizeof(*pr));
    pr->api = api;
    pr->s = s;
    at_buf_init(&pr->body, s->max);
    node_http_req_ref(req);
    node_http_req_set_data(req, pr);
    node_http_req_on_abort(req, put_on_abort);
    node_http_req_read_body(req, put_on_body, put_on_end);
}
