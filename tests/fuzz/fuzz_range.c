/* libFuzzer target: Range header parsing against arbitrary sizes. */
#include "common/compat.h"

#include "common/common.h"
#include "node/http/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t rsize = 0, start = 0, end = 0;
    char *value;
    int rv;

    /* First 8 bytes: resource size (small sizes made likely); rest: value. */
    if (size >= 8) {
        memcpy(&rsize, data, 8);
        if ((rsize >> 63) == 0)
            rsize %= 4096;
        data += 8;
        size -= 8;
    }
    value = at_strndup((const char *)data, size);
    rv = node_http_parse_range(value, rsize, &start, &end);
    if (rv == 0) {
        AT_ASSERT(rsize > 0);
        AT_ASSERT(start <= end);
        AT_ASSERT(end < rsize);
    } else {
        AT_ASSERT(rv == AT_EINVAL || rv == AT_ERANGE);
    }
    at_free(value);
    return 0;
}
