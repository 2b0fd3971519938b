/* URL pieces: percent-decoding and query parameters. */
#ifndef NODE_HTTP_URL_H
#define NODE_HTTP_URL_H

#include "common/common.h"

/* Percent-decode s[0..n) into a new string (caller frees); '+' stays '+'.
 * AT_EINVAL for a malformed escape or an encoded NUL. */
int node_url_decode(const char *s, size_t n, char **out);

/* Find key in a raw query string ("a=1&b=2") and decode its value. Returns 0
 * (caller frees *out), AT_ENOTFOUND, or AT_EINVAL (bad escape). A key
 * present without '=' has the value "". */
int node_query_get(const char *query, const char *key, char **out);

#endif /* NODE_HTTP_URL_H */
