/* Copying images from one registry to another: see copy.h. */
#include "common/compat.h"

#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "common/common.h"
#include "node/copy.h"

#define DEPTH_MAX 4 /* an index of indexes of ... */

static void say(struct node_copy *cp, const char *fmt, ...) AT_PRINTF(2, 3);
static void say(struct node_copy *cp, const char *fmt, ...)
{
    char line[AT_ERRMSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (cp->errmsg[0] == '\0')
        snprintf(cp->errmsg, sizeof(cp->errmsg), "%s", line);
    if (cp->say != NULL)
        cp->say(cp->say_data, line);
    else
        fprintf(stderr, "atoll copy: %s\n", line);
}

static bool cancelled(const struct node_copy *cp)
{
    return cp->cancel != NULL && atomic_load(cp->cancel);
}

/* The source's GET of a blob on a thread of its own, into a pipe. */
struct pipe_get {
    struct node_regclient *c;
    const char *repo;
    const struct at_digest *d;
    int fd; /* the pipe's write end: closed when done */
    uint64_t size;
    int rv;
    char errmsg[AT_ERRMSG_SIZE];
};

static void *pipe_get_run(void *arg)
{
    struct pipe_get *g = arg;

    g->rv = node_regclient_get_blob(g->c, g->repo, g->d, g->fd, &g->size,
                                    g->errmsg);
    close(g->fd);
    return NULL;
}

/* Blob d of size bytes streamed: the GET writes into a pipe that the PUT
 * reads as the bytes come, so nothing waits for a whole blob and nothing
 * touches a disk here. The client checks the digest as the bytes pass and
 * the destination checks them against the PUT's ?digest= before it keeps
 * the blob: a bad byte fails the PUT, nothing is kept. A GET that fails
 * ends the pipe early (the PUT fails with it: its error is the GET's); a
 * PUT that fails closes the read end (the GET's next write fails). */
static int stream_blob(struct node_copy *cp,
                       const struct at_digest *d,
                       uint64_t size,
                       char *errmsg)
{
    struct pipe_get g = { .c = cp->src, .repo = cp->src_repo, .d = d };
    pthread_t t;
    int p[2];
    int rv;

    if (pipe2(p, O_CLOEXEC) != 0) {
        at_errmsg_printf(errmsg, "a pipe: %s", strerror(errno));
        return AT_EIO;
    }
    (void)fcntl(p[1], F_SETPIPE_SZ, 1 << 20); /* fewer wakeups */
    g.fd = p[1];
    if (pthread_create(&t, NULL, pipe_get_run, &g) != 0) {
        close(p[0]);
        close(p[1]);
        at_errmsg_printf(errmsg, "cannot start a thread");
        return AT_ENOMEM;
    }
    rv = node_regclient_put_blob(cp->dst, cp->dst_repo, d, p[0], size, NULL,
                                 errmsg);
    close(p[0]);
    pthread_join(t, NULL);
    if (g.rv != 0) {
        snprintf(errmsg, AT_ERRMSG_SIZE, "%s", g.errmsg);
        return g.rv;
    }
    return rv;
}

/* Blob d through an unnamed temporary file: GET it all, then PUT it. */
static int file_blob(struct node_copy *cp,
                     const struct at_digest *d,
                     uint64_t *size,
                     char *errmsg)
{
    const char *tmp = cp->tmp_dir != NULL ? cp->tmp_dir : getenv("TMPDIR");
    int fd = open(tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp",
                  O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    int rv;

    if (fd < 0) {
        at_errmsg_printf(errmsg, "a temporary file: %s", strerror(errno));
        return AT_EIO;
    }
    rv = node_regclient_get_blob(cp->src, cp->src_repo, d, fd, size, errmsg);
    if (rv == 0)
        rv = node_regclient_put_blob(cp->dst, cp->dst_repo, d, fd, *size, NULL,
                                     errmsg);
    close(fd);
    return rv;
}

static int copy_blob(struct node_copy *cp, const struct at_digest *d)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    uint64_t size = 0;
    int rv = node_regclient_has_blob(cp->dst, cp->dst_repo, d, NULL, errmsg);

    if (rv == 0) {
        cp->blobs_there++;
        return 0;
    }
    if (rv != AT_ENOTFOUND)
        goto fail;
    /* streamed when the source says its size (a HEAD); else, or when the
     * destination wants the body twice, through a file */
    rv = node_regclient_has_blob(cp->src, cp->src_repo, d, &size, errmsg);
    if (rv == 0)
        rv = stream_blob(cp, d, size, errmsg);
    else
        rv = AT_EAGAIN;
    if (rv == AT_EAGAIN)
        rv = file_blob(cp, d, &size, errmsg);
    if (rv != 0)
        goto fail;
    cp->blobs++;
    cp->bytes += size;
    return 0;
fail:
    say(cp, "%s", errmsg);
    return rv;
}

/* The digests a manifest references: an index's children (kids true) or
 * an image's config and layers. */
static int references(json_t *doc, bool kids, struct at_digest **out, size_t *n)
{
    json_t *list = json_object_get(doc, kids ? "manifests" : "layers");
    json_t *config = kids ? NULL : json_object_get(doc, "config");
    size_t i;
    json_t *v;

    *out = NULL;
    *n = 0;
    size_t total = json_array_size(list) + (config != NULL ? 1 : 0);
    *out = at_calloc(total + 1, sizeof(**out));
    if (config != NULL) {
        const char *s = json_string_value(json_object_get(config, "digest"));
        if (s == NULL || at_digest_parse(s, strlen(s), &(*out)[(*n)++]) != 0)
            return AT_EINVAL;
    }
    json_array_foreach(list, i, v)
    {
        const char *s = json_string_value(json_object_get(v, "digest"));
        if (s == NULL || at_digest_parse(s, strlen(s), &(*out)[(*n)++]) != 0)
            return AT_EINVAL;
    }
    return 0;
}

/* src_repo:ref to dst_repo:dref (NULL: by digest); *digest (may be
 * NULL) gets the manifest's digest. */
static int copy_manifest(struct node_copy *cp,
                         const char *ref,
                         const char *dref,
                         int depth,
                         struct at_digest *digest)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    struct node_regclient_manifest m;
    struct at_digest *refs = NULL;
    size_t nrefs = 0;
    char ds[AT_DIGEST_STR_SIZE];
    json_t *doc = NULL;
    int rv;

    rv = node_regclient_get_manifest(cp->src, cp->src_repo, ref, &m, errmsg);
    if (rv != 0) {
        say(cp, "%s", errmsg);
        return rv;
    }
    if (digest != NULL)
        *digest = m.digest;
    rv = node_regclient_has_manifest(cp->dst, cp->dst_repo, &m.digest, errmsg);
    if (rv == 0) {
        cp->manifests_there++; /* with everything it references */
        goto put;
    }
    if (rv != AT_ENOTFOUND)
        goto fail;
    rv = 0;
    doc = json_loadb(m.body, m.len, 0, NULL);
    bool index = json_object_get(doc, "manifests") != NULL;
    if (doc == NULL || references(doc, index, &refs, &nrefs) != 0) {
        at_errmsg_printf(errmsg, "%s@%s: not a manifest this copy reads",
                         cp->src_repo, at_digest_format(&m.digest, ds));
        rv = AT_EINVAL;
        goto fail;
    }
    if (index && depth >= DEPTH_MAX) {
        at_errmsg_printf(errmsg, "%s: indexes nested too deep", cp->src_repo);
        rv = AT_EINVAL;
        goto fail;
    }
    for (size_t i = 0; i < nrefs && rv == 0; i++) {
        if (index)
            rv = copy_manifest(cp, at_digest_format(&refs[i], ds), NULL,
                               depth + 1, NULL);
        else
            rv = copy_blob(cp, &refs[i]);
    }
    if (rv != 0)
        goto out; /* said already */
    cp->manifests++;
put:
    if (m.media_type[0] == '\0') {
        if (doc == NULL)
            doc = json_loadb(m.body, m.len, 0, NULL);
        const char *mt = json_string_value(json_object_get(doc, "mediaType"));
        at_free(m.media_type);
        m.media_type = at_strdup(mt != NULL ? mt : "");
    }
    rv = node_regclient_put_manifest(
        cp->dst, cp->dst_repo,
        dref != NULL ? dref : at_digest_format(&m.digest, ds), m.body, m.len,
        m.media_type, errmsg);
    if (rv == 0)
        goto out;
fail:
    say(cp, "%s", errmsg);
out:
    json_decref(doc);
    at_free(refs);
    node_regclient_manifest_release(&m);
    return rv;
}

static bool selected(const struct node_copy *cp, const char *tag)
{
    return (cp->include == NULL ||
            regexec(cp->include, tag, 0, NULL, 0) == 0) &&
           (cp->exclude == NULL ||
            regexec(cp->exclude, tag, 0, NULL, 0) != 0) &&
           (cp->semver == NULL || node_semver_range_has(cp->semver, tag));
}

static bool listed(char **tags, size_t n, const char *tag)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(tags[i], tag) == 0)
            return true;
    return false;
}

static void free_tags(char **tags, size_t n)
{
    for (size_t i = 0; i < n; i++)
        at_free(tags[i]);
    at_free(tags);
}

/* Delete DEST's tag: by tag where the registry can; else by digest,
 * unless a tag that stays points to the same manifest. */
static int delete_tag(struct node_copy *cp,
                      const char *tag,
                      char **keep,
                      size_t nkeep)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    char ds[AT_DIGEST_STR_SIZE];
    struct at_digest d, other;
    int rv = node_regclient_delete(cp->dst, cp->dst_repo, tag, errmsg);

    if (rv != AT_EUNSUPPORTED)
        goto out;
    rv = node_regclient_resolve(cp->dst, cp->dst_repo, tag, &d, errmsg);
    for (size_t i = 0; i < nkeep && rv == 0; i++) {
        if (node_regclient_resolve(cp->dst, cp->dst_repo, keep[i], &other,
                                   errmsg) == 0 &&
            at_digest_equal(&d, &other)) {
            say(cp,
                "%s:%s kept: the registry deletes by digest only, and %s "
                "(kept) points to the same manifest",
                cp->dst_repo, tag, keep[i]);
            return 0;
        }
    }
    if (rv == 0)
        rv = node_regclient_delete(cp->dst, cp->dst_repo,
                                   at_digest_format(&d, ds), errmsg);
out:
    if (rv == 0)
        cp->deleted++;
    else if (rv != AT_ENOTFOUND)
        say(cp, "%s", errmsg);
    return rv == AT_ENOTFOUND ? 0 : rv;
}

/* DEST's tags that the filters select and SRC no longer has go. */
static int delete_missing(struct node_copy *cp, char **src, size_t nsrc)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    char **dst = NULL, **gone = NULL, **keep = NULL;
    size_t ndst = 0, ngone = 0, nkeep = 0;
    int rv = node_regclient_tags(cp->dst, cp->dst_repo, &dst, &ndst, errmsg);

    if (rv == AT_ENOTFOUND)
        return 0; /* no such repository there: nothing to delete */
    if (rv != 0) {
        say(cp, "%s", errmsg);
        return rv;
    }
    gone = at_calloc(ndst + 1, sizeof(*gone));
    keep = at_calloc(ndst + 1, sizeof(*keep));
    for (size_t i = 0; i < ndst; i++) {
        if (selected(cp, dst[i]) && !listed(src, nsrc, dst[i]))
            gone[ngone++] = dst[i];
        else
            keep[nkeep++] = dst[i];
    }
    for (size_t i = 0; i < ngone && rv == 0; i++)
        rv = delete_tag(cp, gone[i], keep, nkeep);
    at_free(gone);
    at_free(keep);
    free_tags(dst, ndst);
    return rv;
}

/* see copy.h */
int node_copy_repo(struct node_copy *cp)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    char **tags = NULL;
    size_t n = 0;
    int rv = node_regclient_tags(cp->src, cp->src_repo, &tags, &n, errmsg);

    if (rv != 0)
        say(cp, "%s", errmsg);
    for (size_t i = 0; i < n && rv == 0; i++) {
        if (!selected(cp, tags[i]))
            continue;
        rv = node_copy_image(cp, tags[i], tags[i]);
    }
    if (rv == 0 && cp->delete_missing)
        rv = delete_missing(cp, tags, n);
    free_tags(tags, n);
    return rv;
}

/* The manifests whose subject is src_repo@d (signatures, SBOMs), by
 * digest, after their subject: a registry without the referrers API has
 * none to give. */
static int copy_referrers(struct node_copy *cp, const struct at_digest *d)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    char ds[AT_DIGEST_STR_SIZE];
    struct at_digest *refs = NULL;
    size_t n = 0;
    int rv =
        node_regclient_referrers(cp->src, cp->src_repo, d, &refs, &n, errmsg);

    if (rv == AT_ENOTFOUND)
        return 0;
    if (rv != 0) {
        say(cp, "%s", errmsg);
        return rv;
    }
    for (size_t i = 0; i < n && rv == 0; i++)
        rv = copy_manifest(cp, at_digest_format(&refs[i], ds), NULL, 1, NULL);
    at_free(refs);
    return rv;
}

/* see copy.h */
int node_copy_image(struct node_copy *cp, const char *ref, const char *dref)
{
    if (cancelled(cp))
        return AT_ECANCELED;
    struct at_digest d;
    int rv = copy_manifest(cp, ref, dref, 0, &d);
    return rv == 0 ? copy_referrers(cp, &d) : rv;
}
