/* A client of another registry's OCI distribution API (regclient.c):
 * blocking, one thread at a time per client, for copies between
 * registries (atoll copy; replication jobs later).
 *
 * Happy path: each call makes one request to <base>/v2/...; a 401 with a
 * challenge is answered once and the request made again: Basic with the
 * client's credentials, or Bearer with a token fetched from the
 * challenge's realm (service and scope as the challenge gives them, else
 * repository:<repo>:pull[,push]), kept for the next calls of the same
 * scope until it expires.
 *
 * Failure modes: every body read is bounded (manifests by
 * NODE_REGCLIENT_MANIFEST_MAX, other answers by 1 MiB); a blob is written
 * to a file descriptor and its sha256 checked against the digest asked
 * for (AT_EDIGEST: the caller drops the file); a manifest's bytes are
 * checked against the digest asked for, and against Docker-Content-Digest
 * when the answer has one. Each request has a connect timeout and a
 * low-speed limit (a transfer that moves under 1 KiB/s for timeout_ms is
 * cut), not a total one: a big blob takes what it takes. Errors are
 * AT_ENOTFOUND (404), AT_EINVAL (refused: 400, 401 after the challenge,
 * 403; errmsg quotes the registry's message), AT_EIO (transport, 5xx,
 * anything else); errmsg says which request. Credentials are never in a
 * message. */
#ifndef NODE_REGCLIENT_H
#define NODE_REGCLIENT_H

#include <stdatomic.h>

#include "common/common.h"

#define NODE_REGCLIENT_MANIFEST_MAX ((size_t)4 << 20)

/* The media types a manifest GET accepts (OCI and Docker, images and
 * indexes). */
#define NODE_REGCLIENT_ACCEPT                                \
    "application/vnd.oci.image.manifest.v1+json, "           \
    "application/vnd.oci.image.index.v1+json, "              \
    "application/vnd.docker.distribution.manifest.v2+json, " \
    "application/vnd.docker.distribution.manifest.list.v2+json"

struct node_regclient;

struct node_regclient_opts {
    const char *base;     /* "https://host:port" or "http://host:port" */
    const char *username; /* NULL: anonymous */
    const char *password;
    const char *ca_file; /* NULL: the system's CAs */
    bool tls_verify;     /* false: any certificate (say so to the user) */
    uint64_t timeout_ms; /* connect limit, and the low-speed window */
    double rate;        /* requests per second to a host, shared by every client
                           of the process (ratelimit.h); 0: no limit */
    const char *bearer; /* a fixed bearer token for every request (a
                           node's own API: the cluster secret); NULL */
    /* set from another thread: the request in flight is cut (AT_EIO);
     * NULL: never */
    const atomic_bool *cancel;
};

struct node_regclient_manifest {
    char *body; /* owned (at_malloc), body[len] == '\0' */
    size_t len;
    char *media_type; /* owned: the answer's Content-Type, parameters cut */
    struct at_digest digest;
};

/* A client of o->base (everything copied). Returns 0 or AT_EINVAL (bad
 * base: errmsg). */
int node_regclient_new(struct node_regclient **out,
                       const struct node_regclient_opts *o,
                       char *errmsg);
void node_regclient_free(struct node_regclient *c);

/* The manifest repo:ref (a tag or "sha256:..."). */
int node_regclient_get_manifest(struct node_regclient *c,
                                const char *repo,
                                const char *ref,
                                struct node_regclient_manifest *out,
                                char *errmsg);
void node_regclient_manifest_release(struct node_regclient_manifest *m);

/* Is manifest repo@d there? 0 (yes), AT_ENOTFOUND, or an error. */
int node_regclient_has_manifest(struct node_regclient *c,
                                const char *repo,
                                const struct at_digest *d,
                                char *errmsg);

/* The digest repo:ref (a tag) points to: a HEAD, its
 * Docker-Content-Digest. 0, AT_ENOTFOUND, or an error. */
int node_regclient_resolve(struct node_regclient *c,
                           const char *repo,
                           const char *ref,
                           struct at_digest *d,
                           char *errmsg);

/* DELETE the manifest repo:ref (a tag: the tag alone where the registry
 * can; a digest: the manifest and every tag on it). 0, AT_ENOTFOUND,
 * AT_EUNSUPPORTED (the registry refuses deletes, or deletes by tag), or
 * an error. */
int node_regclient_delete(struct node_regclient *c,
                          const char *repo,
                          const char *ref,
                          char *errmsg);

/* PUT body (of media_type) as repo:ref. */
int node_regclient_put_manifest(struct node_regclient *c,
                                const char *repo,
                                const char *ref,
                                const void *body,
                                size_t len,
                                const char *media_type,
                                char *errmsg);

/* Is blob d in repo? 0 and its size, AT_ENOTFOUND, or an error. */
int node_regclient_has_blob(struct node_regclient *c,
                            const char *repo,
                            const struct at_digest *d,
                            uint64_t *size,
                            char *errmsg);

/* Blob d of repo into fd (from its current offset); *size: the bytes
 * written. AT_EDIGEST when the bytes are not d. */
int node_regclient_get_blob(struct node_regclient *c,
                            const char *repo,
                            const struct at_digest *d,
                            int fd,
                            uint64_t *size,
                            char *errmsg);

/* Upload blob d of size bytes, read from fd at offset 0 (or a pipe, read
 * as it comes: AT_EAGAIN when the registry asked for the body twice, an
 * auth challenge on the PUT), into repo: a
 * POST then one PUT (monolithic). With from (a repository of the same
 * registry that has it), a cross-repository mount is asked first. */
int node_regclient_put_blob(struct node_regclient *c,
                            const char *repo,
                            const struct at_digest *d,
                            int fd,
                            uint64_t size,
                            const char *from,
                            char *errmsg);

/* The digests of the manifests whose subject is repo@d (the OCI 1.1
 * referrers API; caller frees). AT_ENOTFOUND where the registry has no
 * such API (or nothing refers to d). */
int node_regclient_referrers(struct node_regclient *c,
                             const char *repo,
                             const struct at_digest *d,
                             struct at_digest **out,
                             size_t *n,
                             char *errmsg);

/* The Authorization line ("Authorization: ...") the last request sent,
 * or NULL (none needed): a pull-through cache sends it with its own blob
 * GETs (pullthrough.h). Borrowed until the next call on c. */
const char *node_regclient_auth(const struct node_regclient *c);

/* GET /v2/: does the registry answer (a challenge answered)? */
int node_regclient_ping(struct node_regclient *c, char *errmsg);

/* Every repository of the catalog (all pages; caller frees each and the
 * array); AT_ENOTFOUND or AT_EINVAL where the registry has none to show
 * (Docker Hub). */
int node_regclient_catalog(struct node_regclient *c,
                           char ***repos,
                           size_t *n,
                           char *errmsg);

/* Every tag of repo (all pages; caller frees each and the array). */
int node_regclient_tags(struct node_regclient *c,
                        const char *repo,
                        char ***tags,
                        size_t *n,
                        char *errmsg);

#endif /* NODE_REGCLIENT_H */
