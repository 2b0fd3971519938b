/* Copying images from one registry to another (copy.c): the engine of
 * atoll copy and of replication jobs, blocking, on the caller's thread.
 *
 * Happy path: the source's manifest; for an index, each child first (by
 * digest); for an image, each blob the destination does not have
 * (HEAD), streamed: the source's GET (on a thread) into a pipe that the
 * destination's PUT reads, the digest checked by the client as the
 * bytes pass and by the destination (?digest=) before it keeps them; a
 * source that gives no size, or a destination that asks for the body
 * twice, goes through an unnamed temporary file; then the manifest, under the
 * tag or digest asked for. What the destination has is not copied again (a
 * manifest it has comes with everything it references): a second run
 * copies nothing but puts the tags again, so a moved tag moves.
 *
 * Failure modes: the first error stops the copy of that image (errmsg
 * keeps it, say() tells it); what was uploaded stays (content-addressed:
 * a later run skips it); a manifest is put only once everything it
 * references is there, so nothing is half-visible. cancel (set from
 * another thread) stops between images with AT_ECANCELED. */
#ifndef NODE_COPY_H
#define NODE_COPY_H

#include <regex.h>
#include <stdatomic.h>

#include "common/common.h"
#include "node/regclient.h"
#include "node/semver.h"

struct node_copy {
    /* set by the caller, borrowed */
    struct node_regclient *src, *dst;
    const char *src_repo, *dst_repo;
    const regex_t *include; /* node_copy_repo: tags it matches; NULL: all */
    const regex_t *exclude; /* and none it matches; NULL: none */
    /* and only versions in this range (semver.h); NULL: any */
    const struct node_semver_range *semver;
    bool delete_missing;       /* node_copy_repo: then delete from dst the
                                  selected tags src no longer has */
    const atomic_bool *cancel; /* NULL: never */
    /* where blobs pass through when not streamed (an unnamed file); NULL:
     * $TMPDIR or /tmp */
    const char *tmp_dir;
    /* a line for the user (an error, a tag kept); NULL: stderr */
    void (*say)(void *data, const char *line);
    void *say_data;
    /* counted */
    uint64_t manifests, manifests_there, blobs, blobs_there, bytes, deleted;
    char errmsg[AT_ERRMSG_SIZE]; /* the first error, "" when none */
};

/* src_repo:ref (a tag or digest) to dst_repo:dref (NULL: by digest),
 * then the manifests that refer to it (the OCI 1.1 referrers API of the
 * source: signatures, SBOMs), each by digest. */
int node_copy_image(struct node_copy *cp, const char *ref, const char *dref);

/* Every tag of src_repo the filters select, each under its name; then,
 * with delete_missing, dst's selected tags that src no longer has (where
 * dst deletes only by digest, not when a tag that stays shares it). */
int node_copy_repo(struct node_copy *cp);

#endif /* NODE_COPY_H */
