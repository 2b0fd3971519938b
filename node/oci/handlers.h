/* The handlers of the OCI distribution API's routes, one file each
 * (blobs.c, manifests.c, uploads.c, listing.c); node/oci/router.c calls
 * them. */
#ifndef NODE_OCI_HANDLERS_H
#define NODE_OCI_HANDLERS_H

#include "node/reply/context.h"

/* ---- blobs.c: GET, HEAD and DELETE of /v2/<name>/blobs/<digest> ---- */

/* A blob linked in the repository is served from the local store (verified
 * once per change of the file), else fetched from a holder peer as it
 * streams; HEAD answers from the metadata. */
void node_oci_blob(struct node_api *api,
                   struct node_http_req *req,
                   const char *name,
                   const char *digest);

/* ---- manifests.c: GET, HEAD, PUT, DELETE of /v2/<name>/manifests/<ref> */

/* ref: a tag or a digest, as sent. */
void node_oci_manifest(struct node_api *api,
                       struct node_http_req *req,
                       const char *name,
                       const char *ref);

/* ---- uploads.c: POST /v2/<name>/blobs/uploads/, then PATCH, PUT, GET
 * and DELETE of its location (docs/architecture.md, "Upload state
 * machine") ---- */

void node_oci_upload_new(struct node_api *api,
                         struct node_http_req *req,
                         const char *name);
/* A session owned by another member is relayed to it (node/cluster/proxy.c)
 * unless the request was itself relayed (node_reply_relayed). */
void node_oci_upload(struct node_api *api,
                     struct node_http_req *req,
                     const char *name,
                     const char *id);

/* Location of an upload session (caller frees). */
char *node_oci_upload_location(const char *name, const char *id);

/* ---- listing.c: GET/HEAD of tags/list and _catalog (paginated with n
 * and last, a Link header for the next page) and referrers (optionally
 * filtered by artifactType); each waits for the read barrier
 * (node_api_read_barrier) before reading local state ---- */

void node_oci_catalog(struct node_api *api, struct node_http_req *req);
/* name: a valid repository name. */
void node_oci_tags(struct node_api *api,
                   struct node_http_req *req,
                   const char *name);
/* digest: as sent (parsed here: 400 DIGEST_INVALID). */
void node_oci_referrers(struct node_api *api,
                        struct node_http_req *req,
                        const char *name,
                        const char *digest);

#endif /* NODE_OCI_HANDLERS_H */
