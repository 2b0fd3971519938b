/* libFuzzer target: node_manifest_parse on arbitrary bytes and content types.
 */
#include "common/compat.h"

#include "common/common.h"
#include "node/oci/manifest_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *types[] = {
        NULL,
        "application/json",
        NODE_MT_OCI_MANIFEST,
        NODE_MT_OCI_INDEX,
        NODE_MT_DOCKER_MANIFEST "; charset=utf-8",
        NODE_MT_DOCKER_LIST,
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "text/plain",
    };
    struct node_manifest_info info;
    char errmsg[AT_ERRMSG_SIZE];
    const char *ct;
    int rv;

    /* The first byte picks the Content-Type; the rest is the body. */
    if (size == 0)
        return 0;
    ct = types[data[0] % AT_ARRAY_SIZE(types)];
    rv = node_manifest_parse(ct, data + 1, size - 1, &info, errmsg);
    if (rv == 0) {
        AT_ASSERT(info.media_type != NULL);
        AT_ASSERT(info.nblobs <= 10001);
        AT_ASSERT(info.nmanifests <= 10000);
        AT_ASSERT(info.is_index || info.nblobs >= 1);
        node_manifest_info_release(&info);
    } else {
        AT_ASSERT(rv == AT_EINVAL || rv == AT_EUNSUPPORTED);
        AT_ASSERT(errmsg[0] != '\0');
        AT_ASSERT(info.media_type == NULL && info.blobs == NULL);
    }
    return 0;
}
