/* Validation of pushed manifests and extraction of what the FSM records. */
#ifndef NODE_MANIFEST_PARSE_H
#define NODE_MANIFEST_PARSE_H

#include "common/common.h"
#include "raft/meta.h"

#define NODE_MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define NODE_MT_OCI_INDEX    "application/vnd.oci.image.index.v1+json"
#define NODE_MT_DOCKER_MANIFEST \
    "application/vnd.docker.distribution.manifest.v2+json"
#define NODE_MT_DOCKER_LIST \
    "application/vnd.docker.distribution.manifest.list.v2+json"

struct node_manifest_info {
    char *media_type;        /* owned: the manifest's media type */
    bool is_index;           /* index / manifest list */
    struct at_digest *blobs; /* owned: config + layers that must exist */
    uint64_t *blob_sizes;    /* owned: their sizes, as the descriptors say */
    size_t nblobs;
    struct at_digest *manifests; /* owned: index children that must exist */
    size_t nmanifests;
    bool has_subject;
    struct at_digest subject;
    char *artifact_type;    /* owned or NULL: artifactType, else the
                               config mediaType (image manifests) */
    char *annotations_json; /* owned or NULL: compact JSON object */
};

/* Parse and validate a manifest. content_type is the request's Content-Type
 * (may be NULL). Returns 0; AT_EINVAL (MANIFEST_INVALID: bad JSON, wrong
 * shape, mediaType differing from Content-Type, bad descriptor digests or
 * sizes) with errmsg; AT_EUNSUPPORTED for a media type we do not store
 * (e.g. schema1) with errmsg. */
int node_manifest_parse(const char *content_type,
                        const void *bytes,
                        size_t len,
                        struct node_manifest_info *out,
                        char *errmsg);
void node_manifest_info_release(struct node_manifest_info *info);

/* The PutManifest of a parsed manifest (every field but the tag guard):
 * repo, its digest d, its bytes and tag (NULL: by digest) as given, the
 * rest from info; annotations only for a referrer (the FSM keeps no
 * other's, raft/state.h). Everything borrowed. */
void node_manifest_put_fill(struct meta_manifest_put *p,
                            const struct node_manifest_info *info,
                            const char *repo,
                            const struct at_digest *d,
                            const void *bytes,
                            size_t len,
                            const char *tag);

#endif /* NODE_MANIFEST_PARSE_H */
