/* The client side of the peer protocol's leader calls: the meta hooks
 * (forward, read_index, term) that reach another node's peer listener. */
#include "common/compat.h"

#define AT_LOG_COMP "peer"

#include <jansson.h>

#include "node/cluster/peer_api.h"

struct hook_call {
    meta_forward_cb fwd;
    meta_index_cb idx;
    void *cb_data;
};

/* A JSON integer field; false when absent or not an integer. */
static bool json_int(json_t *o, const char *key, json_int_t *out)
{
    json_t *v = json_object_get(o, key);

    if (!json_is_integer(v))
        return false;
    *out = json_integer_value(v);
    return true;
}

static void on_hook_answer(void *data,
                           int status,
                           int http,
                           const char *body,
                           size_t len)
{
    struct hook_call *hc = data;
    json_t *doc = NULL;
    json_error_t jerr;
    json_int_t st = 0, result = 0, index = 0;
    int out;

    if (status == AT_EIO) {
        out = AT_ENOTLEADER; /* never reached the leader */
    } else if (status == AT_ESHUTDOWN) {
        out = AT_ESHUTDOWN;
    } else if (status != 0) {
        out = AT_EUNKNOWN;
    } else {
        doc = json_loadb(body, len, 0, &jerr);
        if (doc == NULL || !json_int(doc, "status", &st)) {
            /* 401, 404, 5xx without our document: not applied there. */
            out = http == 200 ? AT_EUNKNOWN : AT_ENOTLEADER;
        } else if (http != 200) {
            out = st == AT_ESHUTDOWN ? AT_ESHUTDOWN : AT_ENOTLEADER;
        } else {
            out = (int)st;
            json_int(doc, "result", &result);
            json_int(doc, "index", &index);
            if (index < 0)
                index = 0;
            if (out > 0 || out < -100)
                out = AT_EUNKNOWN;
        }
        json_decref(doc);
    }
    if (hc->fwd != NULL)
        hc->fwd(hc->cb_data, out, out == 0 ? (int)result : 0,
                out == 0 ? (uint64_t)index : 0);
    else
        hc->idx(hc->cb_data, out, out == 0 ? (uint64_t)index : 0);
    at_free(hc);
}

static int hook_send(struct node_peer_api *api,
                     uint64_t leader_id,
                     const char *path,
                     const void *body,
                     size_t len,
                     struct hook_call *hc)
{
    struct meta_node leader;
    int rv;

    if (api->peer == NULL || api->meta == NULL || api->stopping)
        return AT_ENOTLEADER;
    if (!meta_leader(api->meta, &leader) ||
        (leader_id != 0 && leader.id != leader_id))
        return AT_ENOTLEADER;
    if ((leader.peer_address == NULL || leader.peer_address[0] == '\0') &&
        leader.name != NULL)
        leader.peer_address = at_map_gets(&api->peer_hints, leader.name);
    if (leader.peer_address == NULL || leader.peer_address[0] == '\0')
        return AT_ENOTLEADER;
    rv = node_peer_request(api->peer, "POST", leader.peer_address, path,
                           "application/octet-stream", body, len,
                           NODE_PEER_TIMEOUT_MS, on_hook_answer, hc);
    if (rv != 0)
        return rv == AT_ESHUTDOWN ? AT_ESHUTDOWN : AT_ENOTLEADER;
    return 0;
}

static int hook_forward(void *hooks_data,
                        uint64_t leader_id,
                        const void *cmd,
                        size_t len,
                        meta_forward_cb cb,
                        void *cb_data)
{
    struct hook_call *hc = at_calloc(1, sizeof(*hc));
    int rv;

    hc->fwd = cb;
    hc->cb_data = cb_data;
    rv = hook_send(hooks_data, leader_id, "/_atoll/propose", cmd, len, hc);
    if (rv != 0)
        at_free(hc);
    return rv;
}

static int hook_read_index(void *hooks_data,
                           uint64_t leader_id,
                           meta_index_cb cb,
                           void *cb_data)
{
    struct hook_call *hc = at_calloc(1, sizeof(*hc));
    int rv;

    struct node_peer_api *api = hooks_data;
    struct meta_status st;
    char body[64];
    int n = 0;

    hc->idx = cb;
    hc->cb_data = cb_data;
    /* our id and term, read now (after the reads it serves arrived): the
     * leader may count them as our vote of confidence (meta.h) */
    if (api->meta != NULL) {
        meta_status_get(api->meta, &st);
        n = snprintf(body, sizeof(body), "%" PRIu64 " %" PRIu64, st.id,
                     meta_term(api->meta));
    }
    rv = hook_send(hooks_data, leader_id, "/_atoll/read-index",
                   n > 0 ? body : NULL, n > 0 ? (size_t)n : 0, hc);
    if (rv != 0)
        at_free(hc);
    return rv;
}

struct node_find {
    uint64_t id;
    char addr[256];
    char name[256];
};

static void node_find_each(void *data, const struct meta_node *n)
{
    struct node_find *f = data;

    if (n->id != f->id)
        return;
    snprintf(f->addr, sizeof(f->addr), "%s",
             n->peer_address != NULL ? n->peer_address : "");
    snprintf(f->name, sizeof(f->name), "%s", n->name != NULL ? n->name : "");
}

static int hook_term(void *hooks_data,
                     uint64_t node_id,
                     uint64_t timeout_ms,
                     meta_index_cb cb,
                     void *cb_data)
{
    struct node_peer_api *api = hooks_data;
    struct node_find f = { .id = node_id };
    const char *addr;
    int rv;

    if (api->peer == NULL || api->meta == NULL || api->stopping)
        return AT_ESHUTDOWN;
    meta_members(api->meta, node_find_each, &f);
    addr = f.addr;
    if (addr[0] == '\0' && f.name[0] != '\0')
        addr = at_map_gets(&api->peer_hints, f.name);
    if (addr == NULL || addr[0] == '\0')
        return AT_ENOTFOUND;
    struct hook_call *hc = at_calloc(1, sizeof(*hc));
    hc->idx = cb;
    hc->cb_data = cb_data;
    rv = node_peer_request(api->peer, "POST", addr, "/_atoll/term",
                           "application/octet-stream", NULL, 0, timeout_ms,
                           on_hook_answer, hc);
    if (rv != 0)
        at_free(hc);
    return rv;
}

/* see peer_api.h */
const struct meta_hooks node_peer_hooks = {
    .forward = hook_forward,
    .read_index = hook_read_index,
    .term = hook_term,
};
