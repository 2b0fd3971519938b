/* URL pieces: percent-decoding, query parameters, OCI names/tags/digests. */
#ifndef NODE_URL_H
#define NODE_URL_H

#include "common/common.h"

#define NODE_NAME_MAX 255
#define NODE_TAG_MAX  128

/* Percent-decode s[0..n) into a new string (caller frees); '+' stays '+'.
 * AT_EINVAL for a malformed escape or an encoded NUL. */
int node_url_decode(const char *s, size_t n, char **out);

/* Find key in a raw query string ("a=1&b=2") and decode its value. Returns 0
 * (caller frees *out), AT_ENOTFOUND, or AT_EINVAL (bad escape). A key
 * present without '=' has the value "". */
int node_query_get(const char *query, const char *key, char **out);

/* distribution-spec: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+(...)*)*,
 * at most NODE_NAME_MAX characters. */
bool node_name_valid(const char *s, size_t n);
/* [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127} */
bool node_tag_valid(const char *s, size_t n);

#endif /* NODE_URL_H */
