/* YAML to JSON for the CLI's documents (see cli.h: node_cli_yaml_to_json):
 * a policy may be written in either. libyaml's event parser builds a
 * jansson tree: mappings, sequences and scalars; a plain scalar true/false
 * is a boolean, a plain decimal integer a number, null/~ null, anything
 * else (and every quoted scalar) a string. Anchors, aliases, tags and more
 * than one document are refused: a policy needs none of them. */
#include "common/compat.h"

#include <errno.h>
#include <jansson.h>
#include <yaml.h>

#include "common/common.h"
#include "node/cli.h"

#define YAML_DEPTH_MAX 32

static json_t *scalar(const yaml_event_t *ev)
{
    const char *v = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    uint64_t u;

    if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        if (strcmp(v, "true") == 0)
            return json_true();
        if (strcmp(v, "false") == 0)
            return json_false();
        if (strcmp(v, "null") == 0 || strcmp(v, "~") == 0 || n == 0)
            return json_null();
        if (n <= 18 && at_parse_u64(v, n, &u) == 0)
            return json_integer((json_int_t)u);
    }
    return json_stringn(v, n);
}

/* Add v to the container on top (a sequence, or a mapping waiting for
 * the value of *key). Takes v. */
static int add(json_t *top, char **key, json_t *v, char *errmsg)
{
    if (json_is_array(top))
        return json_array_append_new(top, v) == 0 ? 0 : AT_ENOMEM;
    if (*key == NULL) {
        if (!json_is_string(v)) {
            json_decref(v);
            at_errmsg_printf(errmsg, "yaml: a mapping key is not a string");
            return AT_EINVAL;
        }
        *key = at_strdup(json_string_value(v));
        json_decref(v);
        return 0;
    }
    int rv = json_object_set_new(top, *key, v) == 0 ? 0 : AT_ENOMEM;
    free(*key);
    *key = NULL;
    return rv;
}

/* see cli.h */
char *node_cli_yaml_to_json(const char *text, char *errmsg)
{
    yaml_parser_t p;
    yaml_event_t ev;
    json_t *stack[YAML_DEPTH_MAX + 1];
    char *keys[YAML_DEPTH_MAX + 1] = { NULL };
    json_t *root = NULL;
    int depth = 0, docs = 0, rv = 0;
    bool done = false;
    char *out = NULL;

    if (!yaml_parser_initialize(&p)) {
        at_errmsg_printf(errmsg, "yaml: out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
    while (rv == 0 && !done) {
        json_t *v = NULL;

        if (!yaml_parser_parse(&p, &ev)) {
            at_errmsg_printf(errmsg, "yaml: %s at line %zu",
                             p.problem != NULL ? p.problem : "syntax error",
                             p.problem_mark.line + 1);
            rv = AT_EINVAL;
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                at_errmsg_printf(errmsg, "yaml: one document only");
                rv = AT_EINVAL;
            }
            break;
        case YAML_ALIAS_EVENT:
            at_errmsg_printf(errmsg, "yaml: aliases are not supported");
            rv = AT_EINVAL;
            break;
        case YAML_SCALAR_EVENT:
            if (ev.data.scalar.anchor != NULL) {
                at_errmsg_printf(errmsg, "yaml: anchors are not supported");
                rv = AT_EINVAL;
                break;
            }
            v = scalar(&ev);
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (depth == YAML_DEPTH_MAX) {
                at_errmsg_printf(errmsg, "yaml: nested too deep");
                rv = AT_EINVAL;
                break;
            }
            stack[++depth] = ev.type == YAML_SEQUENCE_START_EVENT
                                 ? json_array()
                                 : json_object();
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            v = stack[depth];
            free(keys[depth]);
            keys[depth] = NULL;
            depth--;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
        if (rv != 0 || v == NULL)
            continue;
        if (depth == 0) {
            json_decref(root);
            root = v;
        } else {
            rv = add(stack[depth], &keys[depth], v, errmsg);
        }
    }
    yaml_parser_delete(&p);
    for (; depth > 0; depth--) {
        json_decref(stack[depth]);
        free(keys[depth]);
    }
    if (rv == 0 && root != NULL)
        out = json_dumps(root, JSON_COMPACT);
    else if (rv == 0)
        at_errmsg_printf(errmsg, "yaml: empty document");
    json_decref(root);
    return out;
}

/* see cli.h */
char *node_cli_read_json(const char *file, size_t max, char *errmsg)
{
    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
    struct at_buf b;
    char chunk[8192];
    size_t n;
    bool too_big = false;

    if (f == NULL) {
        at_errmsg_printf(errmsg, "cannot read '%s': %s", file, strerror(errno));
        return NULL;
    }
    at_buf_init(&b, max + 1);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (at_buf_append(&b, chunk, n) != 0) {
            too_big = true;
            break;
        }
    }
    if (f != stdin)
        fclose(f);
    if (too_big) {
        at_buf_release(&b);
        at_errmsg_printf(errmsg, "'%s': over %zu bytes", file, max);
        return NULL;
    }
    at_buf_append(&b, "", 1);
    char *text = at_buf_take(&b, NULL);
    /* JSON starts with '{'; anything else is read as YAML */
    if (text[strspn(text, " \t\r\n")] == '{')
        return text;
    char *json = node_cli_yaml_to_json(text, errmsg);
    free(text);
    if (json == NULL)
        at_errmsg_wrapf(errmsg, "'%s'", file);
    return json;
}
