/* Routes of the OCI distribution API, decided from the path alone. */
#ifndef NODE_OCI_ROUTE_H
#define NODE_OCI_ROUTE_H

#include "common/common.h"

enum node_route {
    NODE_ROUTE_NONE = 0,
    NODE_ROUTE_BASE,       /* /v2/ */
    NODE_ROUTE_CATALOG,    /* /v2/_catalog */
    NODE_ROUTE_TAGS,       /* /v2/<name>/tags/list */
    NODE_ROUTE_MANIFEST,   /* /v2/<name>/manifests/<ref> */
    NODE_ROUTE_BLOB,       /* /v2/<name>/blobs/<digest> */
    NODE_ROUTE_UPLOAD_NEW, /* /v2/<name>/blobs/uploads/ */
    NODE_ROUTE_UPLOAD,     /* /v2/<name>/blobs/uploads/<id> */
    NODE_ROUTE_REFERRERS,  /* /v2/<name>/referrers/<digest> */
};

struct node_route_match {
    enum node_route route;
    char *name; /* owned, as sent; NULL when the route has none */
    char *arg;  /* owned, decoded: ref, digest or upload id */
    bool name_invalid;
};

/* Split a request path into a route. Matches from the path's end, so a
 * repository name may contain any component ("a/blobs/b" is valid). Never
 * fails: NODE_ROUTE_NONE. Release m with node_route_release. */
void node_route_parse(const char *path, struct node_route_match *m);
void node_route_release(struct node_route_match *m);

#endif /* NODE_OCI_ROUTE_H */
