/* Replication rules (replication_rules.c): their JSON document, checked
 * and parsed. The document is replicated state (the cluster setting
 * "replication", PUT /_atoll/replication): every node holds the same
 * rules; the leader runs them (replication.c).
 *
 *   {"rules": [{
 *     "name": "prod_to_dev",          [a-z0-9_]{1,40}
 *     "direction": "push",            push: from here; pull: to here
 *     "remote": {"urls": ["https://dev.example:5000"],   tried in order
 *                "credentials_file": "/etc/atoll/dev.creds",  user:password
 *                "ca_file": "/etc/atoll/dev-ca.pem", "tls_verify": true,
 *                "rate": 10},   requests per second per host (ratelimit.h)
 *     "repositories": ["team/{a,b}/app", "prod/..."],  globs, below
 *     "tags": {"include": "^v[0-9]", "exclude": "-rc",  POSIX ERE
 *              "semver": ">=1.2.0 <2.0.0"},           semver.h
 *     "destination": "mirror/", "strip_prefix": "prod/",
 *     "interval": "10m",              0s (default): none
 *     "schedule": "0 2 * * *",        cron, UTC (cron.h); none: when asked
 *     "on_push": true,                push rules: also after each push
 *                                     or delete here that the rule takes
 *     "deletes": false,               delete there what is gone here
 *     "timeout": "30s"}]}             connect and stall limit
 *
 * A proxy rule makes a pull-through cache (pullthrough.c) of the remote:
 *   {"name": "hub", "direction": "proxy", "prefix": "hub/",
 *    "remote": {...}, "repositories": ["library/app"], optional: remote
 *    "ttl": "10m", "timeout": "30s"}                   names; default all
 * hub/library/alpine here is library/alpine there; a tag is asked of the
 * remote again once ttl passed since it was last (0s: every pull). Proxy
 * prefixes may not overlap; fields of push and pull rules are refused.
 *
 * Globs: a star matches any run but '/', two stars any run (as the access
 * policy's, meta_repo_glob_match: "prod/" then two stars is all of prod),
 * and one {a,b,...} group of up to 16 alternatives is expanded. A pull rule
 * lists the remote's catalog; a glob without a star or brace is also taken as a
 * name when the remote has no catalog (Docker Hub).
 *
 * Everything is checked when the document is set (400 with the reason),
 * so a node never holds a rule it cannot run. */
#ifndef NODE_REPLICATION_RULES_H
#define NODE_REPLICATION_RULES_H

#include <regex.h>
#include <stdatomic.h>

#include "common/common.h"
#include "node/cron.h"
#include "node/regclient.h"
#include "node/semver.h"

#define NODE_REPL_MAX_JSON  (64 * 1024)
#define NODE_REPL_RULES_MAX 64
#define NODE_REPL_NAME_MAX  40
#define NODE_REPL_URLS_MAX  4
#define NODE_REPL_GLOBS_MAX 64 /* after brace expansion */

struct node_repl_rule {
    char *name;
    bool push;       /* else pull, or proxy */
    bool proxy;      /* a pull-through cache: strip_prefix is its prefix */
    uint64_t ttl_ms; /* proxy: a tag is checked upstream after this */
    char *urls[NODE_REPL_URLS_MAX];
    size_t nurls;
    char *credentials_file; /* NULL: anonymous */
    char *ca_file;          /* NULL: the system's */
    bool tls_verify;
    double rate; /* remote.rate: requests per second per host; 0: any */
    char *globs[NODE_REPL_GLOBS_MAX];
    size_t nglobs;
    regex_t include, exclude;
    bool has_include, has_exclude;
    bool has_semver;
    struct node_semver_range semver;
    char *destination;    /* "" when none */
    char *strip_prefix;   /* "" when none */
    uint64_t interval_ms; /* 0: none */
    bool on_push;         /* run after a push (or delete) it takes */
    bool has_schedule;    /* "schedule": cron fields, UTC */
    struct node_cron schedule;
    bool deletes;
    uint64_t timeout_ms;
};

struct node_repl_rules {
    struct node_repl_rule *v;
    size_t n;
};

/* Is re a tag filter we compile? POSIX extended, at most 256 bytes, no
 * back-reference, no quantifier on a quantifier, at most 32 quantifiers
 * and 2 counted ones ({m,n}, bounds up to 32): glibc's regcomp grows a
 * tree per repetition, and "a++++...+" or nested counts take gigabytes.
 * Then regcomp itself must accept it. True, or false with errmsg. */
bool node_repl_regex_ok(const char *re, char *errmsg);

/* Check and parse a document. 0, or AT_EINVAL with errmsg. */
int node_repl_rules_parse(const char *json,
                          size_t len,
                          struct node_repl_rules **out,
                          char *errmsg);
void node_repl_rules_free(struct node_repl_rules *r);
const struct node_repl_rule *node_repl_rules_find(
    const struct node_repl_rules *r,
    const char *name);

/* Does the rule take repository name (a glob matches)? */
bool node_repl_rule_matches(const struct node_repl_rule *r, const char *repo);
/* Does the rule take tag? */
bool node_repl_rule_tag(const struct node_repl_rule *r, const char *tag);
/* The name at the other end of repo: strip_prefix taken off (when it
 * starts with it), destination put in front. Caller frees. */
char *node_repl_rule_map(const struct node_repl_rule *r, const char *repo);

/* A client of the rule's remote: the first of its URLs that answers a
 * ping (*base, may be NULL: that URL, borrowed from r), with the
 * credentials_file's user:password. Blocking. 0, AT_EINVAL (credentials
 * file) or AT_EIO (none answers), with errmsg. */
int node_repl_remote_open(const struct node_repl_rule *r,
                          const atomic_bool *cancel,
                          struct node_regclient **out,
                          const char **base,
                          char *errmsg);

#endif /* NODE_REPLICATION_RULES_H */
