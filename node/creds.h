/* Registry credentials from a file (creds.c): what a replication rule's
 * credentials_file and atoll copy's --src/--dest-creds-file hold, in one
 * of three forms, told apart by the first character:
 *
 *   user:password                      one pair for every host
 *   {"reg.example:5000": {"username": "u", "password": "p"}, ...}
 *                                      by host (zot's credentialsFile)
 *   {"auths": {"reg.example:5000": {"auth": "<base64 user:password>"}}}
 *                                      a Docker config.json (a Kubernetes
 *                                      dockerconfigjson Secret), also with
 *                                      "username"/"password" per entry
 *
 * A key of the JSON forms is a host[:port] or a URL
 * ("https://index.docker.io/v1/"): its host[:port] is compared with the
 * registry URL's. No entry for the host: anonymous. Secrets are never in a
 * message. */
#ifndef NODE_CREDS_H
#define NODE_CREDS_H

#include "common/common.h"

#define NODE_CREDS_MAX (64 * 1024) /* a file's size */

/* The user and password for url (a registry base URL) in text (a file's
 * content, NUL-terminated): 0 with *user and *pass (caller frees both
 * with node_creds_wipe), or *user NULL when none is for that host;
 * AT_EINVAL (a form not recognized, or an entry without a usable pair)
 * with errmsg naming what, never a secret. */
int node_creds_for(const char *text,
                   const char *url,
                   char **user,
                   char **pass,
                   char *errmsg);

/* The whole of file path (up to NODE_CREDS_MAX bytes) into *out (free
 * with node_creds_wipe). 0, or AT_EINVAL with errmsg (what names the
 * setting). */
int node_creds_read(const char *what,
                    const char *path,
                    char **out,
                    char *errmsg);

/* Zero and free s (NULL: nothing). */
void node_creds_wipe(char *s);

#endif /* NODE_CREDS_H */
