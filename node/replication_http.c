/* The replication endpoints on a node's API: see replication.h.
 *
 *   GET  /_atoll/replication            the rules document
 *   PUT  /_atoll/replication            set it (checked: 400 with why)
 *   POST /_atoll/replication/run?rule=N ask the leader to run rule N now
 *   GET  /_atoll/replication/status     each rule's last run, and which
 *                                       run here now
 *
 * Each wants an admin user or the cluster secret (setting_put.h). Any
 * node answers: the rules, the run requests and the status are cluster
 * settings, replicated through the log. */
#include "common/compat.h"

#define AT_LOG_COMP "replication"

#include <jansson.h>

#include "common/common.h"
#include "node/cluster/setting_put.h"
#include "node/http/url.h"
#include "node/replication.h"
#include "node/replication_rules.h"
#include "node/reply/reply.h"

static int check_rules(const char *json, size_t len, char *errmsg)
{
    struct node_repl_rules *r = NULL;
    int rv = node_repl_rules_parse(json, len, &r, errmsg);
    node_repl_rules_free(r);
    return rv;
}

static const struct node_setting_put rules_put = {
    .key = "replication",
    .what = "replication rules",
    .max = NODE_REPL_MAX_JSON,
    .check = check_rules,
};

/* see replication.h */
bool node_replication_path(const char *path)
{
    return strcmp(path, "/_atoll/replication") == 0 ||
           strcmp(path, "/_atoll/replication/run") == 0 ||
           strcmp(path, "/_atoll/replication/status") == 0;
}

static void on_run_set(void *data, int status, int result, uint64_t index)
{
    struct node_http_req *req = data;
    char *name = node_http_req_data(req);

    node_http_req_set_data(req, NULL);
    if (!node_reply_write_failed(req, status, result)) {
        node_reply_write_index(req, status, index);
        node_reply_begin(req, 202);
        node_http_resp_header(req, "Content-Type", "application/json");
        char *body = at_asprintf("{\"rule\":\"%s\",\"asked\":true}\n", name);
        node_http_resp_send(req, body, strlen(body));
        at_free(body);
    }
    at_free(name);
    node_http_req_unref(req);
}

static void run(struct node_api *api, struct node_http_req *req)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    struct node_repl_rules *rules = NULL;
    char *name = NULL;
    const char *doc = meta_setting_get(api->meta, "replication", NULL);

    if (node_query_get(node_http_req_query(req), "rule", &name) != 0 ||
        doc == NULL ||
        node_repl_rules_parse(doc, strlen(doc), &rules, errmsg) != 0 ||
        node_repl_rules_find(rules, name) == NULL) {
        node_reply_error(req, 404, "NOT_FOUND", "no such replication rule");
        goto out;
    }
    if (node_repl_rules_find(rules, name)->proxy) {
        node_reply_error(req, 400, "UNSUPPORTED",
                         "a proxy rule does not run: its cache fills as "
                         "images are pulled");
        goto out;
    }
    char key[64], value[24];
    snprintf(key, sizeof(key), "replication_run_%s", name);
    snprintf(value, sizeof(value), "%" PRIu64, at_wall_ms());
    struct meta_cmd c = {
        .kind = META_CMD_SET_SETTING,
        .request_id = node_http_req_header(req, "x-atoll-request-id"),
        .set_setting = { .key = key, .value = value },
    };
    node_http_req_ref(req);
    node_http_req_set_data(req, name);
    int rv = meta_propose(api->meta, &c, on_run_set, req);
    if (rv == 0) {
        name = NULL; /* on_run_set's */
        goto out;
    }
    node_http_req_set_data(req, NULL);
    node_http_req_unref(req);
    node_reply_write_failed(req, rv, 0);
out:
    at_free(name);
    node_repl_rules_free(rules);
}

static void status(struct node_api *api, struct node_http_req *req)
{
    const char *sv = meta_setting_get(api->meta, "replication_status", NULL);
    const char *doc = meta_setting_get(api->meta, "replication", NULL);
    json_t *st = sv != NULL ? json_loads(sv, 0, NULL) : NULL;
    json_t *out = json_object();
    json_t *running = json_array();
    struct node_repl_rules *rules = NULL;
    char errmsg[AT_ERRMSG_SIZE];

    if (!json_is_object(st)) {
        json_decref(st);
        st = json_object();
    }
    if (doc != NULL &&
        node_repl_rules_parse(doc, strlen(doc), &rules, errmsg) == 0) {
        for (size_t i = 0; i < rules->n; i++)
            if (node_replication_running(api, rules->v[i].name))
                json_array_append_new(running, json_string(rules->v[i].name));
    }
    node_repl_rules_free(rules);
    json_object_set_new(out, "rules", st);
    json_object_set_new(out, "running_here", running);
    char *body = json_dumps(out, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(out);
    node_setting_reply(req, body, "{}");
    free(body);
}

/* see replication.h */
void node_replication_handle(struct node_api *api, struct node_http_req *req)
{
    const char *path = node_http_req_path(req);
    enum node_http_method method = node_http_req_method(req);

    if (strcmp(path, "/_atoll/replication") == 0 && method == NODE_HTTP_PUT) {
        node_setting_put(api, req, &rules_put);
        return;
    }
    if (!node_setting_admin(api, req))
        return;
    if (strcmp(path, "/_atoll/replication") == 0 &&
        (method == NODE_HTTP_GET || method == NODE_HTTP_HEAD)) {
        node_setting_reply(req,
                           meta_setting_get(api->meta, "replication", NULL),
                           "{\"rules\":[]}");
    } else if (strcmp(path, "/_atoll/replication/run") == 0 &&
               method == NODE_HTTP_POST) {
        run(api, req);
    } else if (strcmp(path, "/_atoll/replication/status") == 0 &&
               (method == NODE_HTTP_GET || method == NODE_HTTP_HEAD)) {
        status(api, req);
    } else {
        node_reply_error(req, 405, "UNSUPPORTED",
                         "GET or PUT /_atoll/replication, POST "
                         "/_atoll/replication/run?rule=NAME, GET "
                         "/_atoll/replication/status");
    }
}
