/* GET, HEAD and DELETE of /v2/<name>/blobs/<digest>. */
#ifndef NODE_OCI_BLOBS_H
#define NODE_OCI_BLOBS_H

#include "node/reply/context.h"

/* A blob linked in the repository is served from the local store (verified
 * once per change of the file), else fetched from a holder peer as it
 * streams; HEAD answers from the metadata. */
void node_oci_blob(struct node_api *api,
                   struct node_http_req *req,
                   const char *name,
                   const char *digest);

#endif /* NODE_OCI_BLOBS_H */
