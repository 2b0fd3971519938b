/* Loading the node's configuration: defaults, then the YAML file, ATOLL_*
 * variables and flags, each checked against the option table (config.c),
 * and the usage text. */
#include "common/compat.h"

#include <ctype.h>
#include <strings.h>
#include <yaml.h>

#include "common/common.h"
#include "node/config.h"

/* A config file is a handful of lines; anything this big is a mistake. */
#define CONFIG_FILE_MAX ((size_t)1 << 20)

static const char *type_meta(enum node_opt_type t)
{
    switch (t) {
    case NODE_OPT_STRING:
        return "STRING";
    case NODE_OPT_SIZE:
        return "SIZE";
    case NODE_OPT_DURATION:
        return "DURATION";
    case NODE_OPT_UINT:
        return "N";
    case NODE_OPT_BOOL:
        return "BOOL";
    }
    return "VALUE";
}

static const char *type_hint(enum node_opt_type t)
{
    switch (t) {
    case NODE_OPT_STRING:
        return "want a string";
    case NODE_OPT_SIZE:
        return "want a size such as 4096, 64KiB, 4MiB, 1GiB";
    case NODE_OPT_DURATION:
        return "want a duration such as 250ms, 30s, 5m, 24h";
    case NODE_OPT_UINT:
        return "want a non-negative integer";
    case NODE_OPT_BOOL:
        return "want true or false";
    }
    return "want a value";
}

static const char *shown(const struct node_opt *o, const char *value)
{
    return o->secret ? "***" : value;
}

/* Parse value into the field of c; on failure, errmsg names the option and
 * the source (src, e.g. "flag --listen"). */
static int set_value(struct node_config *c,
                     const struct node_opt *o,
                     const char *value,
                     const char *src,
                     char *errmsg)
{
    char *base = (char *)c + o->offset;
    char why[160];
    uint64_t u = 0;
    bool b = false;
    int rv = 0;

    why[0] = '\0';
    switch (o->type) {
    case NODE_OPT_STRING:
        if (o->check != NULL)
            rv = o->check(value, why, sizeof(why));
        break;
    case NODE_OPT_SIZE:
        rv = at_parse_size(value, &u);
        break;
    case NODE_OPT_DURATION:
        rv = at_parse_duration_ms(value, &u);
        break;
    case NODE_OPT_UINT:
        rv = at_parse_u64(value, strlen(value), &u);
        break;
    case NODE_OPT_BOOL:
        rv = at_parse_bool(value, &b);
        break;
    }
    if (rv != 0) {
        at_errmsg_printf(errmsg, "%s: invalid value '%s' for %s: %s", src,
                         shown(o, value), o->key,
                         why[0] != '\0' ? why : type_hint(o->type));
        return AT_EINVAL;
    }
    switch (o->type) {
    case NODE_OPT_STRING: {
        char **field = (char **)(void *)base;
        free(*field);
        *field = at_strdup(value);
        break;
    }
    case NODE_OPT_SIZE:
    case NODE_OPT_DURATION:
    case NODE_OPT_UINT:
        memcpy(base, &u, sizeof(u));
        break;
    case NODE_OPT_BOOL:
        memcpy(base, &b, sizeof(b));
        break;
    }
    return 0;
}

static const struct node_opt *find_key(const char *key, size_t len)
{
    for (size_t i = 0; i < node_nopts; i++) {
        if (strlen(node_opts[i].key) == len &&
            memcmp(node_opts[i].key, key, len) == 0)
            return &node_opts[i];
    }
    return NULL;
}

static const struct node_opt *find_flag(const char *flag, size_t len)
{
    for (size_t i = 0; i < node_nopts; i++) {
        if (strlen(node_opts[i].flag) == len &&
            memcmp(node_opts[i].flag, flag, len) == 0)
            return &node_opts[i];
    }
    return NULL;
}

static const struct node_opt *find_env(const char *name, size_t len)
{
    for (size_t i = 0; i < node_nopts; i++) {
        if (strlen(node_opts[i].env) == len &&
            memcmp(node_opts[i].env, name, len) == 0)
            return &node_opts[i];
    }
    return NULL;
}

static int read_file(const char *path, char **out, size_t *outlen, char *errmsg)
{
    FILE *f = fopen(path, "rb");
    struct at_buf b;
    char chunk[4096];
    size_t n;
    int rv = 0;

    if (f == NULL) {
        at_errmsg_printf(errmsg, "config file '%s': cannot open: %s", path,
                         strerror(errno));
        return AT_EINVAL;
    }
    at_buf_init(&b, CONFIG_FILE_MAX);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (at_buf_append(&b, chunk, n) != 0) {
            at_errmsg_printf(errmsg, "config file '%s': larger than %zu bytes",
                             path, CONFIG_FILE_MAX);
            rv = AT_EINVAL;
            goto out_close;
        }
    }
    if (ferror(f)) {
        at_errmsg_printf(errmsg, "config file '%s': read error", path);
        rv = AT_EINVAL;
        goto out_close;
    }
    *out = at_buf_take(&b, outlen);
out_close:
    at_buf_release(&b);
    fclose(f);
    return rv;
}

static const char *event_name(yaml_event_type_t t)
{
    switch (t) {
    case YAML_SEQUENCE_START_EVENT:
        return "a sequence";
    case YAML_MAPPING_START_EVENT:
        return "a mapping";
    case YAML_ALIAS_EVENT:
        return "an alias";
    case YAML_SCALAR_EVENT:
        return "a scalar";
    default:
        return "unexpected content";
    }
}

/* Plain ~ / null / empty are YAML nulls: treat them as the empty string. */
static const char *scalar_text(const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;
    if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
        (strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
         strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0))
        return "";
    return v;
}

/* The file is one flat mapping of scalar keys to scalar values (or empty). */
static int load_yaml(struct node_config *c, const char *path, char *errmsg)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    char *text = NULL;
    size_t len = 0;
    char src[AT_ERRMSG_SIZE];
    bool seen[NODE_OPTS_MAX];
    /* 0 stream, 1 document, 2 mapping: key, 3 mapping: value, 4 done */
    int state = 0;
    const struct node_opt *cur = NULL;
    int rv;

    memset(seen, 0, sizeof(seen));
    rv = read_file(path, &text, &len, errmsg);
    if (rv != 0)
        return rv;
    if (!yaml_parser_initialize(&parser)) {
        at_errmsg_printf(errmsg, "config file '%s': yaml init failed", path);
        rv = AT_EINVAL;
        goto out_free_text;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    for (;;) {
        unsigned long line;

        if (!yaml_parser_parse(&parser, &ev)) {
            at_errmsg_printf(
                errmsg, "config file '%s' line %lu: %s", path,
                (unsigned long)parser.problem_mark.line + 1,
                parser.problem != NULL ? parser.problem : "yaml syntax error");
            rv = AT_EINVAL;
            goto out_parser;
        }
        line = (unsigned long)ev.start_mark.line + 1;
        snprintf(src, sizeof(src), "config file '%s' line %lu", path, line);
        switch (ev.type) {
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (state != 0) {
                at_errmsg_printf(errmsg, "%s: only one YAML document allowed",
                                 src);
                rv = AT_EINVAL;
            }
            state = 1;
            break;
        case YAML_STREAM_END_EVENT:
            state = 4;
            break;
        case YAML_MAPPING_START_EVENT:
            if (state == 1) {
                state = 2;
                break;
            }
            at_errmsg_printf(errmsg, "%s: %s", src,
                             state == 3 ? "value must be a scalar, not a "
                                          "mapping"
                                        : "nested mappings are not allowed");
            rv = AT_EINVAL;
            break;
        case YAML_MAPPING_END_EVENT:
            state = 1;
            break;
        case YAML_SCALAR_EVENT:
            if (state == 1) {
                /* "---" or a lone null: an empty configuration. */
                if (scalar_text(&ev)[0] != '\0') {
                    at_errmsg_printf(errmsg,
                                     "%s: expected a mapping of keys to "
                                     "values",
                                     src);
                    rv = AT_EINVAL;
                }
            } else if (state == 2) {
                const char *k = (const char *)ev.data.scalar.value;
                cur = find_key(k, ev.data.scalar.length);
                if (cur == NULL || cur->no_yaml) {
                    at_errmsg_printf(errmsg, "%s: unknown key '%s'", src, k);
                    rv = AT_EINVAL;
                } else if (seen[cur - node_opts]) {
                    at_errmsg_printf(errmsg, "%s: duplicate key '%s'", src, k);
                    rv = AT_EINVAL;
                } else {
                    seen[cur - node_opts] = true;
                    state = 3;
                }
            } else if (strlen((const char *)ev.data.scalar.value) !=
                       ev.data.scalar.length) {
                at_errmsg_printf(errmsg, "%s: value of %s contains a NUL byte",
                                 src, cur->key);
                rv = AT_EINVAL;
            } else {
                rv = set_value(c, cur, scalar_text(&ev), src, errmsg);
                state = 2;
            }
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_ALIAS_EVENT:
        default:
            at_errmsg_printf(
                errmsg, "%s: %s is not allowed here%s", src,
                event_name(ev.type),
                state == 3 && cur != NULL ? " (want a scalar)" : "");
            rv = AT_EINVAL;
            break;
        }
        yaml_event_delete(&ev);
        if (rv != 0 || state == 4)
            break;
    }
out_parser:
    yaml_parser_delete(&parser);
out_free_text:
    free(text);
    return rv;
}

/* One flag occurrence, applied after the file and the environment. */
struct flag_set {
    const struct node_opt *o;
    const char *value; /* borrowed from argv */
};

static bool is_bool_literal(const char *s)
{
    bool b;
    return at_parse_bool(s, &b) == 0;
}

/* Collect flags; returns 1 for --help, 0, or AT_EINVAL. */
static int scan_flags(int argc,
                      char **argv,
                      struct flag_set *sets,
                      size_t *nsets,
                      char *errmsg)
{
    size_t n = 0;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *eq;
        const struct node_opt *o;
        size_t flen;

        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            at_errmsg_printf(errmsg, "unexpected argument '%s' (see --help)",
                             a);
            return AT_EINVAL;
        }
        eq = strchr(a, '=');
        flen = eq != NULL ? (size_t)(eq - a) : strlen(a);
        o = find_flag(a, flen);
        if (o == NULL) {
            at_errmsg_printf(errmsg, "unknown flag '%.*s' (see --help)",
                             (int)flen, a);
            return AT_EINVAL;
        }
        sets[n].o = o;
        if (eq != NULL) {
            sets[n].value = eq + 1;
        } else if (o->type == NODE_OPT_BOOL) {
            /* "--flag" alone means true; "--flag false" also works. */
            if (i + 1 < argc && is_bool_literal(argv[i + 1]))
                sets[n].value = argv[++i];
            else
                sets[n].value = "true";
        } else if (i + 1 < argc) {
            sets[n].value = argv[++i];
        } else {
            at_errmsg_printf(errmsg, "flag %s: missing value", o->flag);
            return AT_EINVAL;
        }
        n++;
    }
    *nsets = n;
    return 0;
}

static int check_config(const struct node_config *c, char *errmsg)
{
    if (c->heartbeat_timeout_ms == 0 ||
        c->heartbeat_timeout_ms >= c->election_timeout_ms) {
        at_errmsg_printf(errmsg,
                         "heartbeat_timeout (%" PRIu64
                         "ms) must be above 0 and below election_timeout "
                         "(%" PRIu64 "ms)",
                         c->heartbeat_timeout_ms, c->election_timeout_ms);
        return AT_EINVAL;
    }
    if (c->max_manifest_bytes == 0) {
        at_errmsg_printf(errmsg, "max_manifest_bytes must be above 0");
        return AT_EINVAL;
    }
    if ((c->tls_cert[0] == '\0') != (c->tls_key[0] == '\0')) {
        at_errmsg_printf(errmsg,
                         "tls_cert and tls_key go together: %s is "
                         "set, %s is not",
                         c->tls_cert[0] != '\0' ? "tls_cert" : "tls_key",
                         c->tls_cert[0] != '\0' ? "tls_key" : "tls_cert");
        return AT_EINVAL;
    }
    if ((c->peer_tls_ca[0] == '\0') != (c->peer_tls_cert[0] == '\0') ||
        (c->peer_tls_ca[0] == '\0') != (c->peer_tls_key[0] == '\0')) {
        at_errmsg_printf(errmsg,
                         "peer_tls_ca, peer_tls_cert and peer_tls_key "
                         "go together: give all three or none");
        return AT_EINVAL;
    }
    if (c->data_dir[0] == '\0') {
        at_errmsg_printf(errmsg, "data_dir must not be empty");
        return AT_EINVAL;
    }
    if (c->target_voters != 1 && c->target_voters != 3 &&
        c->target_voters != 5) {
        at_errmsg_printf(errmsg,
                         "target_voters must be 1, 3 or 5 (got %" PRIu64 ")",
                         c->target_voters);
        return AT_EINVAL;
    }
    if (c->bootstrap_expect > 5 ||
        (c->bootstrap_expect > 0 && c->join[0] == '\0')) {
        at_errmsg_printf(errmsg,
                         "bootstrap_expect must be 0 to 5 and needs "
                         "join (the addresses of the nodes)");
        return AT_EINVAL;
    }
    if (c->gossip_probe_timeout_ms == 0 ||
        c->gossip_probe_timeout_ms >= c->gossip_probe_interval_ms ||
        c->gossip_interval_ms == 0 || c->gossip_suspicion_mult == 0 ||
        c->gossip_retransmit_mult == 0) {
        at_errmsg_printf(errmsg,
                         "gossip_probe_timeout must be above 0 and below "
                         "gossip_probe_interval; gossip_interval, "
                         "gossip_suspicion_mult and gossip_retransmit_mult "
                         "above 0");
        return AT_EINVAL;
    }
    if (c->token_ttl_ms < 60000) {
        at_errmsg_printf(errmsg, "token_ttl must be at least 60s");
        return AT_EINVAL;
    }
    if (c->bcrypt_cost < 4 || c->bcrypt_cost > 31) {
        at_errmsg_printf(errmsg,
                         "bcrypt_cost must be 4 to 31 (got %" PRIu64 ")",
                         c->bcrypt_cost);
        return AT_EINVAL;
    }
    if (c->events_queue < 1 || c->events_queue > 10000000 ||
        c->events_timeout_ms < 100) {
        at_errmsg_printf(errmsg,
                         "events_queue must be 1 to 10000000 and "
                         "events_timeout at least 100ms");
        return AT_EINVAL;
    }
    return 0;
}

/* cluster_secret_file -> cluster_secret (first line, at most 4 KiB). */
/* see config.h */
int node_config_read_secret(const char *key,
                            const char *path,
                            char **out,
                            char *errmsg)
{
    char buf[NODE_SECRET_MAX + 1];
    size_t n;
    FILE *f = fopen(path, "re");

    if (f == NULL) {
        at_errmsg_printf(errmsg, "%s '%s': %s", key, path, strerror(errno));
        return AT_EINVAL;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (buf[0] == '\0' || n == sizeof(buf) - 1) {
        at_errmsg_printf(errmsg, "%s '%s': want one line of 1 to %d bytes", key,
                         path, NODE_SECRET_MAX);
        explicit_bzero(buf, sizeof(buf));
        return AT_EINVAL;
    }
    *out = at_strdup(buf);
    explicit_bzero(buf, sizeof(buf));
    return 0;
}

static int load_secret_file(struct node_config *c, char *errmsg)
{
    char *secret = NULL;

    if (c->cluster_secret[0] != '\0' || c->cluster_secret_file[0] == '\0')
        return 0;
    int rv = node_config_read_secret("cluster_secret_file",
                                     c->cluster_secret_file, &secret, errmsg);
    if (rv != 0)
        return rv;
    free(c->cluster_secret);
    c->cluster_secret = secret;
    return 0;
}

/* ATOLL_* variables that atoll's own tooling sets (tests/run.py exports them
 * to every process it starts) and that are not settings. Any other unknown
 * ATOLL_* variable is an error: a misspelt setting must not be ignored. */
static bool is_tool_env(const char *name, size_t len)
{
    /* ATOLL_MALLOC_HUGEPAGES is read by main before any config
     * (docs/configuration.md); the others are the CLI's and tests' */
    static const char *tool[] = { "ATOLL_BIN", "ATOLL_BUILD", "ATOLL_ADDR",
                                  "ATOLL_MALLOC_HUGEPAGES", "ATOLL_KEEP_TMP" };
    for (size_t i = 0; i < AT_ARRAY_SIZE(tool); i++) {
        if (strlen(tool[i]) == len && memcmp(tool[i], name, len) == 0)
            return true;
    }
    return false;
}

/* The flag and env names must follow from the key: data_dir -> --data-dir,
 * ATOLL_DATA_DIR. Checked once per load; a mismatch is a bug in the table. */
static bool table_ok(void)
{
    if (node_nopts > NODE_OPTS_MAX)
        return false;
    for (size_t i = 0; i < node_nopts; i++) {
        const struct node_opt *o = &node_opts[i];
        size_t n = strlen(o->key);

        if (strlen(o->flag) != n + 2 || strlen(o->env) != n + 6 ||
            memcmp(o->flag, "--", 2) != 0 || memcmp(o->env, "ATOLL_", 6) != 0)
            return false;
        for (size_t j = 0; j < n; j++) {
            char k = o->key[j];
            if (o->flag[2 + j] != (k == '_' ? '-' : k) ||
                o->env[6 + j] != (char)toupper((unsigned char)k))
                return false;
        }
    }
    return true;
}

/* see config.h */
int node_config_load(struct node_config *c,
                     int argc,
                     char **argv,
                     char **envp,
                     char *errmsg)
{
    struct flag_set *sets = NULL;
    size_t nsets = 0;
    const char *file = NULL;
    char src[AT_ERRMSG_SIZE];
    int rv;

    memset(c, 0, sizeof(*c));
    errmsg[0] = '\0';
    AT_ASSERT(table_ok());
    for (size_t i = 0; i < node_nopts; i++) {
        rv = set_value(c, &node_opts[i], node_opts[i].def, "default", errmsg);
        AT_ASSERT(rv == 0); /* the table's defaults must parse */
    }

    if (argc < 0)
        argc = 0;
    sets = at_calloc((size_t)argc + 1, sizeof(*sets));
    rv = scan_flags(argc, argv, sets, &nsets, errmsg);
    if (rv == 1) {
        node_config_usage(stdout);
        goto out_release;
    }
    if (rv != 0)
        goto out_release;

    /* The file named by the last --config flag, else ATOLL_CONFIG. */
    for (size_t i = 0; i < nsets; i++) {
        if (sets[i].o->offset == offsetof(struct node_config, config_file))
            file = sets[i].value;
    }
    for (size_t i = 0; file == NULL && envp != NULL && envp[i] != NULL; i++) {
        if (strncmp(envp[i], "ATOLL_CONFIG=", 13) == 0)
            file = envp[i] + 13;
    }
    if (file != NULL && file[0] != '\0') {
        rv = set_value(c, &node_opts[0], file, "config", errmsg);
        if (rv != 0)
            goto out_release;
        rv = load_yaml(c, file, errmsg);
        if (rv != 0)
            goto out_release;
    }

    for (size_t i = 0; envp != NULL && envp[i] != NULL; i++) {
        const char *e = envp[i];
        const char *eq = strchr(e, '=');
        const struct node_opt *o;
        size_t nlen;

        if (strncmp(e, "ATOLL_", 6) != 0 || eq == NULL)
            continue;
        nlen = (size_t)(eq - e);
        o = find_env(e, nlen);
        if (o == NULL) {
            /* Other tools share the ATOLL_ prefix (ATOLL_ADDR for the CLI,
             * test runners): an unknown variable is worth a warning, not a
             * refusal to start. */
            if (!is_tool_env(e, nlen))
                fprintf(stderr,
                        "atoll: ignoring unknown environment variable "
                        "'%.*s'\n",
                        (int)nlen, e);
            continue;
        }
        if (o == &node_opts[0])
            continue; /* ATOLL_CONFIG: handled above */
        snprintf(src, sizeof(src), "environment variable %s", o->env);
        rv = set_value(c, o, eq + 1, src, errmsg);
        if (rv != 0)
            goto out_release;
    }

    for (size_t i = 0; i < nsets; i++) {
        if (sets[i].o == &node_opts[0])
            continue;
        snprintf(src, sizeof(src), "flag %s", sets[i].o->flag);
        rv = set_value(c, sets[i].o, sets[i].value, src, errmsg);
        if (rv != 0)
            goto out_release;
    }

    rv = check_config(c, errmsg);
    if (rv == 0)
        rv = load_secret_file(c, errmsg);
    if (rv == 0 && c->read_consistency[0] == '\0') {
        /* by role: an edge site answers from what it has */
        free(c->read_consistency);
        c->read_consistency =
            at_strdup(strcmp(c->role, "edge") == 0 ? "local" : "linearizable");
    }
    if (rv != 0)
        goto out_release;
    free(sets);
    return 0;

out_release:
    free(sets);
    node_config_release(c);
    return rv;
}

/* see config.h */
void node_config_release(struct node_config *c)
{
    for (size_t i = 0; i < node_nopts; i++) {
        if (node_opts[i].type == NODE_OPT_STRING) {
            char **field = (char **)(void *)((char *)c + node_opts[i].offset);
            free(*field);
            *field = NULL;
        }
    }
    memset(c, 0, sizeof(*c));
}

/* see config.h */
void node_config_usage(FILE *f)
{
    fprintf(f,
            "usage: atoll serve [--key value | --key=value]...\n"
            "\n"
            "Every option can be set, from lowest to highest precedence, by\n"
            "its default, a key in the YAML config file (--config FILE or\n"
            "ATOLL_CONFIG), an ATOLL_* environment variable, or a flag.\n"
            "Sizes take units (4096, 64KiB, 4MiB, 1GiB); durations too\n"
            "(250ms, 30s, 5m, 24h; a bare number is seconds).\n"
            "\n"
            "Options:\n");
    for (size_t i = 0; i < node_nopts; i++) {
        const struct node_opt *o = &node_opts[i];
        char left[64];

        snprintf(left, sizeof(left), "%s %s", o->flag, type_meta(o->type));
        fprintf(f, "  %-26s %s\n", left, o->help);
        fprintf(f, "  %-26s env %s", "", o->env);
        if (!o->no_yaml)
            fprintf(f, ", yaml %s", o->key);
        if (o->def[0] != '\0')
            fprintf(f, ", default %s", shown(o, o->def));
        else
            fprintf(f, ", default empty");
        fprintf(f, "\n");
    }
    fprintf(f, "  %-26s %s\n", "-h, --help", "print this help and exit");
}
