/* libFuzzer target: node_placement_parse (the body of PUT /_atoll/placement);
 * accepted rules answer matches without crashing. */
#include "common/compat.h"

#include "node/cluster/placement.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char errmsg[AT_ERRMSG_SIZE];
    struct node_placement *p = NULL;
    /* A heap copy of exactly size bytes: ASan catches reads past len. */
    char *s = at_memdup(size ? (const void *)data : "", size ? size : 1);
    int rv = node_placement_parse(s, size, &p, errmsg);

    if (rv == 0) {
        AT_ASSERT(p != NULL);
        (void)node_placement_wants(p, "prod/app", "eu");
        (void)node_placement_wants(p, "a", "b");
    } else {
        AT_ASSERT(rv == AT_EINVAL && p == NULL);
    }
    node_placement_free(p);
    free(s);
    return 0;
}
