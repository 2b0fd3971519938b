/* The listing endpoints of the OCI API: GET/HEAD of tags/list, _catalog
 * (paginated with n and last, a Link header for the next page) and
 * referrers (optionally filtered by artifactType). Each waits for the read
 * barrier (node_api_read_barrier) before reading local state. */
#ifndef NODE_OCI_LISTING_H
#define NODE_OCI_LISTING_H

#include "node/reply/context.h"

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

#endif /* NODE_OCI_LISTING_H */
