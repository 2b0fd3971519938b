/* libFuzzer target: node_repl_rules_parse (the body of PUT
 * /_atoll/replication); accepted rules answer matches, tags and name
 * mapping without crashing. */
#include "common/compat.h"

#include "node/replication_rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char errmsg[AT_ERRMSG_SIZE];
    struct node_repl_rules *r = NULL;
    /* A heap copy of exactly size bytes: ASan catches reads past len. */
    char *s = at_memdup(size ? (const void *)data : "", size ? size : 1);
    int rv = node_repl_rules_parse(s, size, &r, errmsg);

    if (rv == 0) {
        AT_ASSERT(r != NULL);
        for (size_t i = 0; i < r->n; i++) {
            (void)node_repl_rule_matches(&r->v[i], "prod/app");
            (void)node_repl_rule_tag(&r->v[i], "v1.2.3");
            at_free(node_repl_rule_map(&r->v[i], "prod/app"));
            AT_ASSERT(node_repl_rules_find(r, r->v[i].name) == &r->v[i]);
        }
    } else {
        AT_ASSERT(rv == AT_EINVAL && r == NULL);
    }
    node_repl_rules_free(r);
    free(s);
    return 0;
}
