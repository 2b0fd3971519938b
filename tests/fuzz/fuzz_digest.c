/* libFuzzer target: at_digest_parse; accepted digests format back unchanged. */
#include "common/compat.h"

#include "common/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct at_digest d;
    char out[AT_DIGEST_STR_SIZE];
    /* A heap copy of exactly size bytes: ASan catches reads past len. */
    char *s = at_memdup(data, size);
    int rv = at_digest_parse(s, size, &d);

    if (rv == 0) {
        at_digest_format(&d, out);
        AT_ASSERT(strlen(out) == size);
        AT_ASSERT(memcmp(out, s, size) == 0);
    } else {
        AT_ASSERT(rv == AT_EINVAL || rv == AT_EUNSUPPORTED);
    }
    free(s);
    return 0;
}
