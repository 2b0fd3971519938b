/* Placement rules: parse and match them, prefetch the blobs of tagged pushes
 * for this node's region, and serve GET/PUT /_atoll/placement. */
#include "common/compat.h"

#include <fnmatch.h>
#include <jansson.h>

#define AT_LOG_COMP "placement"

#include "node/auth/access.h"
#include "node/cluster/fetch.h"
#include "node/cluster/peer_api.h"
#include "node/cluster/placement.h"
#include "node/cluster/setting_put.h"
#include "node/reply/reply.h"

struct rule {
    char *pattern;                                 /* owned */
    char *regions[NODE_PLACEMENT_MAX_REGIONS + 1]; /* owned, NULL-ended */
};

struct node_placement {
    struct rule *rules; /* owned */
    size_t n;
};

/* The prefetcher of one node (api->placement). */
struct node_placer {
    struct node_api *api; /* borrowed */
    uv_check_t check;
    struct node_placement *rules; /* owned: parsed "placement" setting */
    uint64_t rules_index;         /* log index of the setting parsed */
    bool have_rules_index;
    uint64_t prefetches; /* started here (for logs and tests) */
};

/* ---- rules ---- */

void node_placement_free(struct node_placement *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n; i++) {
        at_free(p->rules[i].pattern);
        for (size_t j = 0; p->rules[i].regions[j] != NULL; j++)
            at_free(p->rules[i].regions[j]);
    }
    at_free(p->rules);
    at_free(p);
}

size_t node_placement_count(const struct node_placement *p)
{
    return p != NULL ? p->n : 0;
}

/* Repository-name characters plus the glob ones. */
static bool pattern_ok(const char *s, size_t n)
{
    if (n == 0 || n > NODE_PLACEMENT_MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-' || c == '/' || c == '*' || c == '?' ||
              c == '[' || c == ']' || c == '!'))
            return false;
    }
    return true;
}

static bool region_ok(const char *s, size_t n)
{
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static int parse_rule(json_t *o, struct rule *r, size_t i, char *errmsg)
{
    const char *key;
    json_t *v, *pat, *regs;

    if (!json_is_object(o)) {
        at_errmsg_printf(errmsg, "rule %zu: want an object", i);
        return AT_EINVAL;
    }
    json_object_foreach(o, key, v)
    {
        if (strcmp(key, "repositories") != 0 && strcmp(key, "regions") != 0) {
            at_errmsg_printf(errmsg, "rule %zu: unknown key '%.64s'", i, key);
            return AT_EINVAL;
        }
    }
    pat = json_object_get(o, "repositories");
    regs = json_object_get(o, "regions");
    if (!json_is_string(pat) ||
        !pattern_ok(json_string_value(pat), json_string_length(pat))) {
        at_errmsg_printf(errmsg,
                         "rule %zu: \"repositories\" must be a glob of "
                         "repository-name characters and * ? [ ] !, "
                         "1-%d long",
                         i, NODE_PLACEMENT_MAX_NAME);
        return AT_EINVAL;
    }
    if (!json_is_array(regs) || json_array_size(regs) == 0 ||
        json_array_size(regs) > NODE_PLACEMENT_MAX_REGIONS) {
        at_errmsg_printf(errmsg,
                         "rule %zu: \"regions\" must be an array of 1-%d "
                         "region names",
                         i, NODE_PLACEMENT_MAX_REGIONS);
        return AT_EINVAL;
    }
    r->pattern = at_strdup(json_string_value(pat));
    for (size_t j = 0; j < json_array_size(regs); j++) {
        json_t *g = json_array_get(regs, j);
        if (!json_is_string(g) ||
            !region_ok(json_string_value(g), json_string_length(g))) {
            at_errmsg_printf(errmsg,
                             "rule %zu: region %zu must be 1-64 characters "
                             "of [A-Za-z0-9._-]",
                             i, j);
            return AT_EINVAL;
        }
        r->regions[j] = at_strdup(json_string_value(g));
    }
    return 0;
}

int node_placement_parse(const char *json,
                         size_t len,
                         struct node_placement **out,
                         char *errmsg)
{
    json_error_t jerr;
    json_t *doc, *rules;
    const char *key;
    json_t *v;
    struct node_placement *p;
    int rv = 0;

    *out = NULL;
    if (len > NODE_PLACEMENT_MAX_JSON) {
        at_errmsg_printf(errmsg, "rules over %d bytes",
                         NODE_PLACEMENT_MAX_JSON);
        return AT_EINVAL;
    }
    doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL || !json_is_object(doc)) {
        at_errmsg_printf(errmsg, "want a JSON object {\"rules\": [...]}");
        json_decref(doc);
        return AT_EINVAL;
    }
    json_object_foreach(doc, key, v)
    {
        if (strcmp(key, "rules") != 0) {
            at_errmsg_printf(errmsg, "unknown key '%.64s'", key);
            json_decref(doc);
            return AT_EINVAL;
        }
    }
    rules = json_object_get(doc, "rules");
    if (!json_is_array(rules) ||
        json_array_size(rules) > NODE_PLACEMENT_MAX_RULES) {
        at_errmsg_printf(errmsg, "\"rules\" must be an array of at most %d",
                         NODE_PLACEMENT_MAX_RULES);
        json_decref(doc);
        return AT_EINVAL;
    }
    p = at_calloc(1, sizeof(*p));
    p->rules = at_calloc(json_array_size(rules) + 1, sizeof(*p->rules));
    for (size_t i = 0; i < json_array_size(rules) && rv == 0; i++) {
        rv = parse_rule(json_array_get(rules, i), &p->rules[i], i, errmsg);
        p->n = i + 1; /* freed in full on error */
    }
    json_decref(doc);
    if (rv != 0) {
        node_placement_free(p);
        return rv;
    }
    *out = p;
    return 0;
}

bool node_placement_wants(const struct node_placement *p,
                          const char *repo,
                          const char *region)
{
    if (p == NULL || region == NULL || region[0] == '\0')
        return false;
    for (size_t i = 0; i < p->n; i++) {
        const struct rule *r = &p->rules[i];
        bool named = false;
        for (size_t j = 0; r->regions[j] != NULL && !named; j++)
            named = strcmp(r->regions[j], region) == 0;
        if (named && fnmatch(r->pattern, repo, 0) == 0)
            return true;
    }
    return false;
}

/* ---- prefetching ---- */

/* Re-parse the setting when it changed; false when no rule names us. */
static bool rules_refresh(struct node_placer *pl)
{
    struct node_api *api = pl->api;
    char errmsg[AT_ERRMSG_SIZE] = "";
    uint64_t index = 0;
    const char *v = meta_setting_get(api->meta, "placement", &index);
    bool ours = false;

    if (pl->have_rules_index && index == pl->rules_index)
        goto done;
    node_placement_free(pl->rules);
    pl->rules = NULL;
    pl->rules_index = index;
    pl->have_rules_index = true;
    if (v != NULL &&
        node_placement_parse(v, strlen(v), &pl->rules, errmsg) != 0)
        LOG_WARN("placement rules at index %" PRIu64 " ignored: %s", index,
                 errmsg);
done:
    for (size_t i = 0; pl->rules != NULL && i < pl->rules->n && !ours; i++) {
        for (size_t j = 0; pl->rules->rules[i].regions[j] != NULL; j++) {
            if (strcmp(pl->rules->rules[i].regions[j], api->cfg->region) == 0)
                ours = true;
        }
    }
    /* the FSM records tagged pushes only while someone here wants them */
    meta_pushes_record(api->meta, ours);
    return ours;
}

struct prefetch_ctx {
    struct node_placer *pl;
    const char *repo;
};

static void prefetch_blob(void *data, const struct at_digest *d, uint64_t size)
{
    struct prefetch_ctx *c = data;
    struct node_api *api = c->pl->api;
    char dstr[AT_DIGEST_STR_SIZE];
    int rv;

    /* a no-op for a blob that is local or already being fetched */
    rv = node_fetch_start(api, c->repo, d, size);
    if (rv == 0) {
        c->pl->prefetches++;
        LOG_DEBUG("placement: prefetching %s of '%s'",
                  at_digest_format(d, dstr), c->repo);
    } else {
        LOG_WARN("placement: cannot prefetch %s of '%s': %s",
                 at_digest_format(d, dstr), c->repo, at_strerror(rv));
    }
}

static void on_check(uv_check_t *h)
{
    struct node_placer *pl = h->data;
    struct node_api *api = pl->api;
    struct meta_push *pushes = NULL;
    size_t n;

    if (api->stopping || api->meta == NULL)
        return;
    if (!rules_refresh(pl))
        return;
    n = meta_pushes_take(api->meta, &pushes);
    for (size_t i = 0; i < n; i++) {
        struct prefetch_ctx c = { pl, pushes[i].repo };
        if (node_placement_wants(pl->rules, pushes[i].repo, api->cfg->region))
            meta_manifest_blobs(api->meta, pushes[i].repo, &pushes[i].manifest,
                                prefetch_blob, &c);
    }
    meta_pushes_free(pushes, n);
}

void node_placement_start(struct node_api *api)
{
    struct node_placer *pl;

    if (api->placer != NULL || api->cfg->region == NULL ||
        api->cfg->region[0] == '\0')
        return;
    pl = at_calloc(1, sizeof(*pl));
    pl->api = api;
    uv_check_init(api->loop, &pl->check);
    pl->check.data = pl;
    uv_check_start(&pl->check, on_check);
    api->placer = pl;
}

static void on_closed(uv_handle_t *h)
{
    struct node_placer *pl = h->data;
    node_placement_free(pl->rules);
    at_free(pl);
}

void node_placement_stop(struct node_api *api)
{
    struct node_placer *pl = api->placer;

    if (pl == NULL)
        return;
    api->placer = NULL;
    uv_check_stop(&pl->check);
    uv_close((uv_handle_t *)&pl->check, on_closed);
}

/* ---- GET/PUT /_atoll/placement ---- */

static int check_rules(const char *json, size_t len, char *errmsg)
{
    struct node_placement *p = NULL;
    int rv = node_placement_parse(json, len, &p, errmsg);
    node_placement_free(p);
    return rv;
}

static const struct node_setting_put placement_put = {
    .key = "placement",
    .what = "placement rules",
    .max = NODE_PLACEMENT_MAX_JSON,
    .check = check_rules,
};

void node_placement_handle(struct node_api *api, struct node_http_req *req)
{
    enum node_http_method method = node_http_req_method(req);

    if (method == NODE_HTTP_GET || method == NODE_HTTP_HEAD) {
        node_setting_reply(req, meta_setting_get(api->meta, "placement", NULL),
                           "{\"rules\":[]}");
        return;
    }
    if (method != NODE_HTTP_PUT) {
        node_reply_error(req, 405, "UNSUPPORTED", "GET or PUT");
        return;
    }
    node_setting_put(api, req, &placement_put);
}
