/* Blob uploads: POST /v2/<name>/blobs/uploads/ and PATCH, PUT, GET and
 * DELETE of its location (docs/architecture.md, "Upload state machine"). */
#ifndef NODE_OCI_UPLOADS_H
#define NODE_OCI_UPLOADS_H

#include "node/reply/context.h"

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

#endif /* NODE_OCI_UPLOADS_H */
