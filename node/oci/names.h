/* Validation of OCI repository names and tags (distribution-spec, "Pulling
 * manifests"). */
#ifndef NODE_OCI_NAMES_H
#define NODE_OCI_NAMES_H

#include "common/common.h"

#define NODE_NAME_MAX 255
#define NODE_TAG_MAX  128

/* distribution-spec: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+(...)*)*,
 * at most NODE_NAME_MAX characters. */
bool node_name_valid(const char *s, size_t n);
/* [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127} */
bool node_tag_valid(const char *s, size_t n);

#endif /* NODE_OCI_NAMES_H */
