/* GET, HEAD, PUT and DELETE of /v2/<name>/manifests/<reference>. */
#ifndef NODE_OCI_MANIFESTS_H
#define NODE_OCI_MANIFESTS_H

#include "node/reply/context.h"

/* ref: a tag or a digest, as sent. */
void node_oci_manifest(struct node_api *api,
                       struct node_http_req *req,
                       const char *name,
                       const char *ref);

#endif /* NODE_OCI_MANIFESTS_H */
