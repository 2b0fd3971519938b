/* Replication rules: see replication_rules.h. */
#include "common/compat.h"

#include <jansson.h>
#include <stdlib.h>

#include "common/common.h"
#include "node/config.h"
#include "node/creds.h"
#include "node/ratelimit.h"
#include "node/replication_rules.h"
#include "raft/meta.h"

#define BRACE_MAX 16

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NODE_REPL_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

/* A repository name prefix: [a-z0-9._/-], at most 200 bytes. */
static bool prefix_ok(const char *s)
{
    if (strlen(s) > 200)
        return false;
    for (; *s != '\0'; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '/' || c == '-'))
            return false;
    }
    return true;
}

/* Add glob g to r, its one {a,b} group expanded. */
static int add_glob(struct node_repl_rule *r, const char *g, char *errmsg)
{
    const char *open = strchr(g, '{');
    const char *close = open != NULL ? strchr(open, '}') : NULL;
    size_t n = strlen(g);

    if (n == 0 || n > 255 || strpbrk(g, " \t\r\n") != NULL ||
        (open == NULL) != (strchr(g, '}') == NULL) ||
        (open != NULL && (close == NULL || strchr(close + 1, '{') != NULL ||
                          memchr(open + 1, '{', (size_t)(close - open)))))
        goto bad;
    if (open == NULL) {
        if (r->nglobs == NODE_REPL_GLOBS_MAX)
            goto many;
        r->globs[r->nglobs++] = at_strdup(g);
        return 0;
    }
    unsigned alts = 0;
    for (const char *a = open + 1; a <= close; alts++) {
        const char *end = a + strcspn(a, ",}");
        if (end > close)
            end = close;
        if (alts == BRACE_MAX)
            goto bad;
        if (r->nglobs == NODE_REPL_GLOBS_MAX)
            goto many;
        r->globs[r->nglobs++] = at_asprintf("%.*s%.*s%s", (int)(open - g), g,
                                            (int)(end - a), a, close + 1);
        a = end + 1;
    }
    return 0;
bad:
    at_errmsg_printf(errmsg,
                     "repository glob '%.100s': want a glob of up to "
                     "255 bytes with at most one {a,b} group",
                     g);
    return AT_EINVAL;
many:
    at_errmsg_printf(errmsg, "more than %d repository globs in a rule",
                     NODE_REPL_GLOBS_MAX);
    return AT_EINVAL;
}

/* A counted repetition at s ('{' ...): its end, or NULL when malformed
 * or a bound is over 32. */
static const char *counted(const char *s)
{
    unsigned long v;
    char *end;
    for (int k = 0; k < 2; k++) {
        s++;
        if (*s == '}' && k == 1)
            return s;
        v = strtoul(s, &end, 10);
        if (end == s || v > 32)
            return NULL;
        s = end;
        if (*s == '}')
            return s;
        if (*s != ',' || k == 1)
            return NULL;
    }
    return NULL;
}

/* see replication_rules.h */
bool node_repl_regex_ok(const char *re, char *errmsg)
{
    unsigned quantifiers = 0, counts = 0;
    bool after_quantifier = false;
    regex_t x;

    if (strlen(re) > 256)
        goto bad;
    for (const char *p = re; *p != '\0'; p++) {
        bool q = false;
        if (*p == '\\') {
            if (p[1] == '\0' || (p[1] >= '0' && p[1] <= '9'))
                goto bad;
            p++;
        } else if (*p == '[') {
            /* a bracket expression: quantifiers inside are literal; a ']'
             * first (after a '^') is one of its characters */
            const char *first = p + 1 + (p[1] == '^');
            const char *end = strchr(first + (*first == ']'), ']');
            if (end == NULL)
                goto bad;
            p = end;
        } else if (*p == '*' || *p == '+' || *p == '?') {
            q = true;
        } else if (*p == '{') {
            const char *end = counted(p);
            if (end == NULL || ++counts > 2)
                goto bad;
            p = end;
            q = true;
        }
        if (q && (after_quantifier || ++quantifiers > 32))
            goto bad;
        after_quantifier = q;
    }
    if (regcomp(&x, re, REG_EXTENDED | REG_NOSUB) != 0)
        goto bad;
    regfree(&x);
    return true;
bad:
    at_errmsg_printf(errmsg,
                     "'%.60s': want a POSIX extended regular expression of "
                     "up to 256 bytes, without back-references, repeated "
                     "quantifiers or more than 2 counted repetitions "
                     "({m,n} up to 32)",
                     re);
    return false;
}

static int regex_of(json_t *tags,
                    const char *key,
                    regex_t *re,
                    bool *has,
                    char *errmsg)
{
    json_t *v = json_object_get(tags, key);
    if (v == NULL)
        return 0;
    const char *s = json_string_value(v);
    if (s == NULL)
        at_errmsg_printf(errmsg, "want a string");
    if (s == NULL || !node_repl_regex_ok(s, errmsg) ||
        regcomp(re, s, REG_EXTENDED | REG_NOSUB) != 0) {
        at_errmsg_wrapf(errmsg, "tags.%s", key);
        return AT_EINVAL;
    }
    *has = true;
    return 0;
}

static int duration_of(json_t *o,
                       const char *key,
                       uint64_t def,
                       uint64_t *out,
                       char *errmsg)
{
    json_t *v = json_object_get(o, key);
    *out = def;
    if (v == NULL)
        return 0;
    if (!json_is_string(v) ||
        at_parse_duration_ms(json_string_value(v), out) != 0) {
        at_errmsg_printf(errmsg, "%s: want a duration such as 30s or 10m", key);
        return AT_EINVAL;
    }
    return 0;
}

static const char *string_of(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static int parse_remote(json_t *remote, struct node_repl_rule *r, char *errmsg)
{
    json_t *urls = json_object_get(remote, "urls");
    json_t *one = json_object_get(remote, "url");
    size_t i;
    json_t *v;

    if (!json_is_object(remote) || (urls == NULL && one == NULL)) {
        at_errmsg_printf(errmsg, "remote: want an object with urls");
        return AT_EINVAL;
    }
    if (one != NULL) {
        urls = json_array();
        json_array_append(urls, one);
    } else {
        json_incref(urls);
    }
    json_array_foreach(urls, i, v)
    {
        const char *u = json_string_value(v);
        if (r->nurls == NODE_REPL_URLS_MAX || u == NULL || strlen(u) > 1024 ||
            (strncmp(u, "https://", 8) != 0 && strncmp(u, "http://", 7) != 0) ||
            strpbrk(u, " \t\r\n") != NULL) {
            json_decref(urls);
            at_errmsg_printf(errmsg,
                             "remote.urls: up to %d http:// or "
                             "https:// URLs",
                             NODE_REPL_URLS_MAX);
            return AT_EINVAL;
        }
        r->urls[r->nurls++] = at_strdup(u);
    }
    json_decref(urls);
    if (r->nurls == 0) {
        at_errmsg_printf(errmsg, "remote.urls: at least one URL");
        return AT_EINVAL;
    }
    const char *cf = string_of(remote, "credentials_file");
    const char *ca = string_of(remote, "ca_file");
    r->credentials_file = cf != NULL && cf[0] != '\0' ? at_strdup(cf) : NULL;
    r->ca_file = ca != NULL && ca[0] != '\0' ? at_strdup(ca) : NULL;
    json_t *tv = json_object_get(remote, "tls_verify");
    r->tls_verify = tv == NULL || json_is_true(tv);
    if (tv != NULL && !json_is_boolean(tv)) {
        at_errmsg_printf(errmsg, "remote.tls_verify: want true or false");
        return AT_EINVAL;
    }
    json_t *rate = json_object_get(remote, "rate");
    if (rate != NULL &&
        (!json_is_number(rate) || json_number_value(rate) <= 0 ||
         json_number_value(rate) > NODE_RATE_MAX)) {
        at_errmsg_printf(errmsg,
                         "remote.rate: requests per second, above 0 and up "
                         "to %.0f",
                         NODE_RATE_MAX);
        return AT_EINVAL;
    }
    r->rate = rate != NULL ? json_number_value(rate) : 0;
    return 0;
}

/* A proxy rule: prefix (a name prefix ending in '/'), ttl (default 10m),
 * optional repositories (upstream names; default every one), timeout. A
 * field of the other kinds is refused, not ignored. */
static int parse_proxy(json_t *o, struct node_repl_rule *r, char *errmsg)
{
    static const char *const others[] = {
        "tags",     "destination", "strip_prefix", "interval",
        "schedule", "on_push",     "deletes",
    };
    const char *prefix = string_of(o, "prefix");
    json_t *repos = json_object_get(o, "repositories");
    size_t i;
    json_t *v;
    int rv;

    if (!r->proxy) {
        at_errmsg_printf(errmsg, "rule %s: prefix and ttl are for proxy rules",
                         r->name);
        return AT_EINVAL;
    }
    for (i = 0; i < AT_ARRAY_SIZE(others); i++) {
        if (json_object_get(o, others[i]) != NULL) {
            at_errmsg_printf(errmsg, "rule %s: %s is not for a proxy rule",
                             r->name, others[i]);
            return AT_EINVAL;
        }
    }
    if (prefix == NULL || prefix[0] == '\0' || prefix[0] == '/' ||
        prefix[strlen(prefix) - 1] != '/' || strstr(prefix, "//") != NULL ||
        strlen(prefix) > 128 || !prefix_ok(prefix)) {
        at_errmsg_printf(errmsg,
                         "rule %s: prefix: a repository name prefix "
                         "ending in '/' (e.g. \"hub/\")",
                         r->name);
        return AT_EINVAL;
    }
    r->strip_prefix = at_strdup(prefix);
    r->destination = at_strdup("");
    if (repos == NULL) {
        rv = add_glob(r, "**", errmsg);
    } else if (!json_is_array(repos) || json_array_size(repos) == 0) {
        at_errmsg_printf(errmsg, "rule %s: repositories: want a list of globs",
                         r->name);
        return AT_EINVAL;
    } else {
        rv = 0;
        json_array_foreach(repos, i, v)
        {
            if (!json_is_string(v)) {
                at_errmsg_printf(errmsg, "rule %s: repositories: strings",
                                 r->name);
                return AT_EINVAL;
            }
            if ((rv = add_glob(r, json_string_value(v), errmsg)) != 0)
                break;
        }
    }
    if (rv != 0 ||
        (rv = duration_of(o, "ttl", 600000, &r->ttl_ms, errmsg)) != 0 ||
        (rv = duration_of(o, "timeout", 30000, &r->timeout_ms, errmsg)) != 0)
        return rv;
    if (r->timeout_ms < 1000) {
        at_errmsg_printf(errmsg, "rule %s: timeout: at least 1s", r->name);
        return AT_EINVAL;
    }
    return 0;
}

static int parse_rule(json_t *o, struct node_repl_rule *r, char *errmsg)
{
    const char *name = string_of(o, "name");
    const char *dir = string_of(o, "direction");
    json_t *repos = json_object_get(o, "repositories");
    json_t *tags = json_object_get(o, "tags");
    size_t i;
    json_t *v;
    int rv;

    if (!json_is_object(o) || name == NULL || !name_ok(name)) {
        at_errmsg_printf(errmsg, "a rule's name: want [a-z0-9_]{1,%d}",
                         NODE_REPL_NAME_MAX);
        return AT_EINVAL;
    }
    r->name = at_strdup(name);
    if (dir == NULL || (strcmp(dir, "push") != 0 && strcmp(dir, "pull") != 0 &&
                        strcmp(dir, "proxy") != 0)) {
        at_errmsg_printf(errmsg, "rule %s: direction is push, pull or proxy",
                         name);
        return AT_EINVAL;
    }
    r->push = strcmp(dir, "push") == 0;
    r->proxy = strcmp(dir, "proxy") == 0;
    if ((rv = parse_remote(json_object_get(o, "remote"), r, errmsg)) != 0)
        return rv;
    if (r->proxy || json_object_get(o, "prefix") != NULL ||
        json_object_get(o, "ttl") != NULL)
        return parse_proxy(o, r, errmsg);
    if (!json_is_array(repos) || json_array_size(repos) == 0) {
        at_errmsg_printf(errmsg,
                         "rule %s: repositories: want a list of "
                         "globs",
                         name);
        return AT_EINVAL;
    }
    json_array_foreach(repos, i, v)
    {
        if (!json_is_string(v)) {
            at_errmsg_printf(errmsg, "rule %s: repositories: strings", name);
            return AT_EINVAL;
        }
        if ((rv = add_glob(r, json_string_value(v), errmsg)) != 0)
            return rv;
    }
    if (tags != NULL && !json_is_object(tags)) {
        at_errmsg_printf(errmsg, "rule %s: tags: want an object", name);
        return AT_EINVAL;
    }
    if ((rv = regex_of(tags, "include", &r->include, &r->has_include,
                       errmsg)) != 0 ||
        (rv = regex_of(tags, "exclude", &r->exclude, &r->has_exclude,
                       errmsg)) != 0)
        return rv;
    json_t *sv = json_object_get(tags, "semver");
    if (sv != NULL) {
        if (!json_is_string(sv) ||
            node_semver_range_parse(json_string_value(sv), &r->semver,
                                    errmsg) != 0) {
            if (!json_is_string(sv))
                at_errmsg_printf(errmsg, "want a string");
            at_errmsg_wrapf(errmsg, "rule %s: tags.semver", name);
            return AT_EINVAL;
        }
        r->has_semver = true;
    }
    const char *dest = string_of(o, "destination");
    const char *strip = string_of(o, "strip_prefix");
    r->destination = at_strdup(dest != NULL ? dest : "");
    r->strip_prefix = at_strdup(strip != NULL ? strip : "");
    if (!prefix_ok(r->destination) || !prefix_ok(r->strip_prefix)) {
        at_errmsg_printf(errmsg,
                         "rule %s: destination and strip_prefix are "
                         "repository name prefixes ([a-z0-9._/-])",
                         name);
        return AT_EINVAL;
    }
    json_t *del = json_object_get(o, "deletes");
    if (del != NULL && !json_is_boolean(del)) {
        at_errmsg_printf(errmsg, "rule %s: deletes: want true or false", name);
        return AT_EINVAL;
    }
    r->deletes = json_is_true(del);
    json_t *onp = json_object_get(o, "on_push");
    if (onp != NULL &&
        (!json_is_boolean(onp) || (json_is_true(onp) && !r->push))) {
        at_errmsg_printf(errmsg,
                         "rule %s: on_push: true or false, and true "
                         "only for a push rule",
                         name);
        return AT_EINVAL;
    }
    r->on_push = json_is_true(onp);
    if ((rv = duration_of(o, "interval", 0, &r->interval_ms, errmsg)) != 0 ||
        (rv = duration_of(o, "timeout", 30000, &r->timeout_ms, errmsg)) != 0)
        return rv;
    json_t *sched = json_object_get(o, "schedule");
    if (sched != NULL) {
        if (!json_is_string(sched) ||
            node_cron_parse(json_string_value(sched), &r->schedule, errmsg) !=
                0) {
            if (!json_is_string(sched))
                at_errmsg_printf(errmsg, "want a string");
            at_errmsg_wrapf(errmsg, "rule %s", name);
            return AT_EINVAL;
        }
        r->has_schedule = true;
    }
    if (r->interval_ms != 0 && r->interval_ms < 1000) {
        at_errmsg_printf(errmsg, "rule %s: interval: 0s or at least 1s", name);
        return AT_EINVAL;
    }
    if (r->timeout_ms < 1000) {
        at_errmsg_printf(errmsg, "rule %s: timeout: at least 1s", name);
        return AT_EINVAL;
    }
    return 0;
}

static void rule_release(struct node_repl_rule *r)
{
    at_free(r->name);
    for (size_t i = 0; i < r->nurls; i++)
        at_free(r->urls[i]);
    for (size_t i = 0; i < r->nglobs; i++)
        at_free(r->globs[i]);
    at_free(r->credentials_file);
    at_free(r->ca_file);
    at_free(r->destination);
    at_free(r->strip_prefix);
    if (r->has_include)
        regfree(&r->include);
    if (r->has_exclude)
        regfree(&r->exclude);
}

/* see replication_rules.h */
void node_repl_rules_free(struct node_repl_rules *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++)
        rule_release(&r->v[i]);
    at_free(r->v);
    at_free(r);
}

/* see replication_rules.h */
int node_repl_rules_parse(const char *json,
                          size_t len,
                          struct node_repl_rules **out,
                          char *errmsg)
{
    json_error_t jerr;
    json_t *doc;
    json_t *rules;
    struct node_repl_rules *r;
    int rv = 0;

    *out = NULL;
    if (len > NODE_REPL_MAX_JSON) {
        at_errmsg_printf(errmsg, "over %d bytes", NODE_REPL_MAX_JSON);
        return AT_EINVAL;
    }
    doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    rules = json_object_get(doc, "rules");
    if (doc == NULL || !json_is_array(rules) ||
        json_array_size(rules) > NODE_REPL_RULES_MAX) {
        at_errmsg_printf(errmsg,
                         "want {\"rules\": [...]} with up to %d rules%s%s",
                         NODE_REPL_RULES_MAX, doc == NULL ? ": " : "",
                         doc == NULL ? jerr.text : "");
        json_decref(doc);
        return AT_EINVAL;
    }
    r = at_calloc(1, sizeof(*r));
    r->v = at_calloc(json_array_size(rules) + 1, sizeof(*r->v));
    for (size_t i = 0; i < json_array_size(rules) && rv == 0; i++) {
        r->n++;
        rv = parse_rule(json_array_get(rules, i), &r->v[i], errmsg);
        for (size_t k = 0; rv == 0 && k < i; k++) {
            const struct node_repl_rule *a = &r->v[k], *b = &r->v[i];
            if (strcmp(a->name, b->name) == 0) {
                at_errmsg_printf(errmsg, "two rules named %s", b->name);
                rv = AT_EINVAL;
            } else if (a->proxy && b->proxy &&
                       (strncmp(a->strip_prefix, b->strip_prefix,
                                strlen(a->strip_prefix)) == 0 ||
                        strncmp(a->strip_prefix, b->strip_prefix,
                                strlen(b->strip_prefix)) == 0)) {
                /* a name is under one proxy at most */
                at_errmsg_printf(errmsg,
                                 "proxy rules %s and %s: prefixes %s "
                                 "and %s overlap",
                                 a->name, b->name, a->strip_prefix,
                                 b->strip_prefix);
                rv = AT_EINVAL;
            }
        }
    }
    json_decref(doc);
    if (rv != 0) {
        node_repl_rules_free(r);
        return rv;
    }
    *out = r;
    return 0;
}

/* see replication_rules.h */
const struct node_repl_rule *node_repl_rules_find(
    const struct node_repl_rules *r,
    const char *name)
{
    for (size_t i = 0; r != NULL && i < r->n; i++)
        if (strcmp(r->v[i].name, name) == 0)
            return &r->v[i];
    return NULL;
}

/* see replication_rules.h */
bool node_repl_rule_matches(const struct node_repl_rule *r, const char *repo)
{
    for (size_t i = 0; i < r->nglobs; i++)
        if (meta_repo_glob_match(r->globs[i], repo))
            return true;
    return false;
}

/* see replication_rules.h */
bool node_repl_rule_tag(const struct node_repl_rule *r, const char *tag)
{
    return (!r->has_include || regexec(&r->include, tag, 0, NULL, 0) == 0) &&
           (!r->has_exclude || regexec(&r->exclude, tag, 0, NULL, 0) != 0) &&
           (!r->has_semver || node_semver_range_has(&r->semver, tag));
}

/* see replication_rules.h */
char *node_repl_rule_map(const struct node_repl_rule *r, const char *repo)
{
    size_t n = strlen(r->strip_prefix);
    if (n > 0 && strncmp(repo, r->strip_prefix, n) == 0 && repo[n] != '\0')
        repo += n;
    return at_asprintf("%s%s", r->destination, repo);
}

/* see replication_rules.h */
int node_repl_remote_open(const struct node_repl_rule *r,
                          const atomic_bool *cancel,
                          struct node_regclient **out,
                          const char **base,
                          char *errmsg)
{
    char why[AT_ERRMSG_SIZE] = "";
    char *text = NULL;
    struct node_regclient *c = NULL;

    *out = NULL;
    if (r->credentials_file != NULL &&
        node_creds_read("credentials_file", r->credentials_file, &text, why) !=
            0) {
        at_errmsg_printf(errmsg, "%s", why);
        return AT_EINVAL;
    }
    for (size_t i = 0; i < r->nurls && c == NULL; i++) {
        char *user = NULL, *pass = NULL;
        if (text != NULL &&
            node_creds_for(text, r->urls[i], &user, &pass, why) != 0) {
            at_errmsg_printf(errmsg, "credentials_file: %s", why);
            node_creds_wipe(text);
            return AT_EINVAL;
        }
        struct node_regclient_opts o = {
            .base = r->urls[i],
            .username = user,
            .password = pass,
            .ca_file = r->ca_file,
            .tls_verify = r->tls_verify,
            .timeout_ms = r->timeout_ms,
            .rate = r->rate,
            .cancel = cancel,
        };
        if (node_regclient_new(&c, &o, why) == 0 &&
            node_regclient_ping(c, why) != 0) {
            LOG_WARN("rule %s: %s", r->name, why);
            node_regclient_free(c);
            c = NULL;
        }
        node_creds_wipe(user);
        node_creds_wipe(pass);
        if (c != NULL && base != NULL)
            *base = r->urls[i];
    }
    node_creds_wipe(text);
    if (c == NULL) {
        at_errmsg_printf(errmsg, "no URL of the remote answers: %s", why);
        return AT_EIO;
    }
    *out = c;
    return 0;
}
