/* atoll copy: an image (or every tag of a repository) from one registry to
 * another, digests kept, through the registry client (regclient.h).
 *
 * Happy path: the source's manifest; for an index, each child first (by
 * digest); for an image, each blob the destination does not have
 * (HEAD), downloaded into an unnamed temporary file (its digest checked)
 * and uploaded from it; then the manifest, under the same tag or digest.
 * What the destination has already is not copied again: a second run
 * copies nothing but re-puts the tags' manifests (cheap, and a moved tag
 * moves).
 *
 * Failure modes: any error stops the copy of that image with the
 * registry's words on stderr (exit 1); what was uploaded stays (blobs are
 * content-addressed: a later run skips them); a manifest is put only
 * once everything it references is there, so nothing is half-visible.
 * Credentials come from files, never from the command line. */
#include "common/compat.h"

#include <fcntl.h>
#include <jansson.h>
#include <regex.h>
#include <stdio.h>
#include <unistd.h>

#include "common/common.h"
#include "node/cli.h"
#include "node/config.h"
#include "node/regclient.h"

#define DEPTH_MAX 4 /* an index of indexes of ... */

struct side {
    char *base; /* owned: "https://host:port" */
    char *repo; /* owned */
    char *ref;  /* owned: a tag or a digest; NULL: none given */
    const char *creds_file;
    const char *ca;
    bool verify;
    struct node_regclient *c; /* owned */
};

struct copier {
    struct side src, dst;
    uint64_t manifests, manifests_there, blobs, blobs_there, bytes;
    /* --all-tags: which tags (POSIX extended regexes, unanchored) */
    regex_t include, exclude;
    bool has_include, has_exclude;
    bool delete_missing;
    uint64_t deleted;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: atoll copy [options] SRC DEST\n"
            "  SRC, DEST: [http://|https://]HOST[:PORT]/REPO[:TAG|@DIGEST]\n"
            "  (https unless http:// is given; DEST without a tag or digest\n"
            "  takes SRC's)\n"
            "  --all-tags                 every tag of SRC's repository\n"
            "  --tags-regex RE            with --all-tags: only the tags RE "
            "matches\n"
            "                             (POSIX extended, unanchored: "
            "'^v[0-9]+\\.')\n"
            "  --exclude-regex RE         and none that RE matches\n"
            "  --delete-missing           with --all-tags: delete from DEST "
            "the tags these\n"
            "                             filters select that SRC no longer "
            "has\n"
            "  --src-creds-file FILE      'user:password' on its first line\n"
            "  --dest-creds-file FILE\n"
            "  --src-ca FILE, --dest-ca FILE   PEM CAs to trust (https)\n"
            "  --src-tls-verify BOOL, --dest-tls-verify BOOL (true)\n"
            "  --timeout DURATION         connect limit and stall limit "
            "(30s)\n");
}

/* "[scheme://]host[:port]/repo[:tag|@digest]" */
static int parse_ref(const char *s, struct side *sd)
{
    const char *scheme = "https://";
    if (strncmp(s, "https://", 8) == 0) {
        s += 8;
    } else if (strncmp(s, "http://", 7) == 0) {
        scheme = "http://";
        s += 7;
    } else if (strncmp(s, "docker://", 9) == 0) {
        s += 9;
    }
    const char *slash = strchr(s, '/');
    if (slash == NULL || slash == s || slash[1] == '\0')
        return AT_EINVAL;
    sd->base = at_asprintf("%s%.*s", scheme, (int)(slash - s), s);
    const char *repo = slash + 1;
    const char *at = strchr(repo, '@');
    const char *last_slash = strrchr(repo, '/');
    const char *colon = strrchr(repo, ':');
    if (at != NULL) {
        sd->repo = at_strndup(repo, (size_t)(at - repo));
        sd->ref = at_strdup(at + 1);
    } else if (colon != NULL && (last_slash == NULL || colon > last_slash)) {
        sd->repo = at_strndup(repo, (size_t)(colon - repo));
        sd->ref = at_strdup(colon + 1);
    } else {
        sd->repo = at_strdup(repo);
    }
    return sd->repo[0] != '\0' && (sd->ref == NULL || sd->ref[0] != '\0')
               ? 0
               : AT_EINVAL;
}

/* The client of a side, with its credentials file read. */
static int side_open(struct side *sd, uint64_t timeout_ms, const char *what)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    char *creds = NULL;
    char *colon = NULL;
    int rv;

    if (sd->creds_file != NULL) {
        rv = node_config_read_secret(what, sd->creds_file, &creds, errmsg);
        if (rv != 0) {
            fprintf(stderr, "atoll copy: %s\n", errmsg);
            return rv;
        }
        colon = strchr(creds, ':');
        if (colon == NULL) {
            fprintf(stderr, "atoll copy: %s '%s': want user:password\n", what,
                    sd->creds_file);
            node_cli_wipe_free(creds);
            return AT_EINVAL;
        }
        *colon = '\0';
    }
    struct node_regclient_opts o = {
        .base = sd->base,
        .username = creds,
        .password = colon != NULL ? colon + 1 : NULL,
        .ca_file = sd->ca,
        .tls_verify = sd->verify,
        .timeout_ms = timeout_ms,
    };
    rv = node_regclient_new(&sd->c, &o, errmsg);
    if (colon != NULL)
        *colon = ':';
    node_cli_wipe_free(creds);
    if (rv != 0)
        fprintf(stderr, "atoll copy: %s: %s\n", sd->base, errmsg);
    return rv;
}

static void side_release(struct side *sd)
{
    node_regclient_free(sd->c);
    at_free(sd->base);
    at_free(sd->repo);
    at_free(sd->ref);
}

static int copy_blob(struct copier *cp, const struct at_digest *d)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    uint64_t size = 0;
    int rv = node_regclient_has_blob(cp->dst.c, cp->dst.repo, d, NULL, errmsg);

    if (rv == 0) {
        cp->blobs_there++;
        return 0;
    }
    if (rv != AT_ENOTFOUND)
        goto fail;
    const char *tmp = getenv("TMPDIR");
    int fd = open(tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp",
                  O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
        at_errmsg_printf(errmsg, "a temporary file: %s", strerror(errno));
        rv = AT_EIO;
        goto fail;
    }
    rv = node_regclient_get_blob(cp->src.c, cp->src.repo, d, fd, &size, errmsg);
    if (rv == 0)
        rv = node_regclient_put_blob(cp->dst.c, cp->dst.repo, d, fd, size, NULL,
                                     errmsg);
    close(fd);
    if (rv != 0)
        goto fail;
    cp->blobs++;
    cp->bytes += size;
    return 0;
fail:
    fprintf(stderr, "atoll copy: %s\n", errmsg);
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

static int copy_manifest(struct copier *cp, const char *ref, int depth)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    struct node_regclient_manifest m;
    struct at_digest *refs = NULL;
    size_t nrefs = 0;
    char ds[AT_DIGEST_STR_SIZE];
    json_t *doc = NULL;
    int rv;

    rv = node_regclient_get_manifest(cp->src.c, cp->src.repo, ref, &m, errmsg);
    if (rv != 0) {
        fprintf(stderr, "atoll copy: %s\n", errmsg);
        return rv;
    }
    rv =
        node_regclient_has_manifest(cp->dst.c, cp->dst.repo, &m.digest, errmsg);
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
                         cp->src.repo, at_digest_format(&m.digest, ds));
        rv = AT_EINVAL;
        goto fail;
    }
    if (index && depth >= DEPTH_MAX) {
        at_errmsg_printf(errmsg, "%s: indexes nested too deep", cp->src.repo);
        rv = AT_EINVAL;
        goto fail;
    }
    for (size_t i = 0; i < nrefs && rv == 0; i++) {
        if (index)
            rv = copy_manifest(cp, at_digest_format(&refs[i], ds), depth + 1);
        else
            rv = copy_blob(cp, &refs[i]);
    }
    if (rv != 0)
        goto out; /* said already */
    cp->manifests++;
put:
    if (m.media_type[0] == '\0') {
        const char *mt = json_string_value(json_object_get(doc, "mediaType"));
        at_free(m.media_type);
        m.media_type = at_strdup(mt != NULL ? mt : "");
    }
    rv = node_regclient_put_manifest(cp->dst.c, cp->dst.repo,
                                     depth == 0 && cp->dst.ref != NULL
                                         ? cp->dst.ref
                                         : at_digest_format(&m.digest, ds),
                                     m.body, m.len, m.media_type, errmsg);
    if (rv == 0)
        goto out;
fail:
    fprintf(stderr, "atoll copy: %s\n", errmsg);
out:
    json_decref(doc);
    at_free(refs);
    node_regclient_manifest_release(&m);
    return rv;
}

static bool selected(const struct copier *cp, const char *tag)
{
    return (!cp->has_include || regexec(&cp->include, tag, 0, NULL, 0) == 0) &&
           (!cp->has_exclude || regexec(&cp->exclude, tag, 0, NULL, 0) != 0);
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
static int delete_tag(struct copier *cp,
                      const char *tag,
                      char **keep,
                      size_t nkeep)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    char ds[AT_DIGEST_STR_SIZE];
    struct at_digest d, other;
    int rv = node_regclient_delete(cp->dst.c, cp->dst.repo, tag, errmsg);

    if (rv != AT_EUNSUPPORTED)
        goto out;
    rv = node_regclient_resolve(cp->dst.c, cp->dst.repo, tag, &d, errmsg);
    for (size_t i = 0; i < nkeep && rv == 0; i++) {
        if (node_regclient_resolve(cp->dst.c, cp->dst.repo, keep[i], &other,
                                   errmsg) == 0 &&
            at_digest_equal(&d, &other)) {
            fprintf(stderr,
                    "atoll copy: %s:%s kept: the registry deletes by digest "
                    "only, and %s (kept) points to the same manifest\n",
                    cp->dst.repo, tag, keep[i]);
            return 0;
        }
    }
    if (rv == 0)
        rv = node_regclient_delete(cp->dst.c, cp->dst.repo,
                                   at_digest_format(&d, ds), errmsg);
out:
    if (rv == 0)
        cp->deleted++;
    else if (rv != AT_ENOTFOUND)
        fprintf(stderr, "atoll copy: %s\n", errmsg);
    return rv == AT_ENOTFOUND ? 0 : rv;
}

/* DEST's tags that the filters select and SRC no longer has go. */
static int delete_missing(struct copier *cp, char **src, size_t nsrc)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    char **dst = NULL, **gone = NULL, **keep = NULL;
    size_t ndst = 0, ngone = 0, nkeep = 0;
    int rv = node_regclient_tags(cp->dst.c, cp->dst.repo, &dst, &ndst, errmsg);

    if (rv == AT_ENOTFOUND)
        return 0; /* no such repository there: nothing to delete */
    if (rv != 0) {
        fprintf(stderr, "atoll copy: %s\n", errmsg);
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

/* Every tag of the source repository the filters select, each under
 * its name; then, if asked, DEST's selected tags that SRC lost. */
static int copy_all_tags(struct copier *cp)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    char **tags = NULL;
    size_t n = 0;
    int rv = node_regclient_tags(cp->src.c, cp->src.repo, &tags, &n, errmsg);

    if (rv != 0)
        fprintf(stderr, "atoll copy: %s\n", errmsg);
    for (size_t i = 0; i < n && rv == 0; i++) {
        if (!selected(cp, tags[i]))
            continue;
        at_free(cp->dst.ref);
        cp->dst.ref = at_strdup(tags[i]);
        rv = copy_manifest(cp, tags[i], 0);
    }
    if (rv == 0 && cp->delete_missing)
        rv = delete_missing(cp, tags, n);
    free_tags(tags, n);
    return rv;
}

static bool regex_flag(const char *v, regex_t *re, bool *has)
{
    if (*has)
        regfree(re);
    *has = regcomp(re, v, REG_EXTENDED | REG_NOSUB) == 0;
    if (!*has)
        fprintf(stderr, "atoll copy: not a POSIX extended regex: '%s'\n", v);
    return *has;
}

static void copier_release(struct copier *cp)
{
    side_release(&cp->src);
    side_release(&cp->dst);
    if (cp->has_include)
        regfree(&cp->include);
    if (cp->has_exclude)
        regfree(&cp->exclude);
}

static bool bool_flag(const char *v, bool *out)
{
    return at_parse_bool(v, out) == 0;
}

/* see cli.h */
int node_cli_copy(int argc, char **argv)
{
    struct copier cp = { .src = { .verify = true }, .dst = { .verify = true } };
    const char *pos[2] = { NULL, NULL };
    unsigned npos = 0;
    bool all = false;
    uint64_t timeout_ms = 30000;
    int rv = 0;

    for (int i = 0; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--all-tags") == 0) {
            all = true;
        } else if (strcmp(argv[i], "--delete-missing") == 0) {
            cp.delete_missing = true;
        } else if ((v = node_cli_flag(argc, argv, &i, "--tags-regex"))) {
            if (!regex_flag(v, &cp.include, &cp.has_include))
                goto bad;
        } else if ((v = node_cli_flag(argc, argv, &i, "--exclude-regex"))) {
            if (!regex_flag(v, &cp.exclude, &cp.has_exclude))
                goto bad;
        } else if ((v = node_cli_flag(argc, argv, &i, "--src-creds-file"))) {
            cp.src.creds_file = v;
        } else if ((v = node_cli_flag(argc, argv, &i, "--dest-creds-file"))) {
            cp.dst.creds_file = v;
        } else if ((v = node_cli_flag(argc, argv, &i, "--src-ca"))) {
            cp.src.ca = v;
        } else if ((v = node_cli_flag(argc, argv, &i, "--dest-ca"))) {
            cp.dst.ca = v;
        } else if ((v = node_cli_flag(argc, argv, &i, "--src-tls-verify"))) {
            if (!bool_flag(v, &cp.src.verify))
                goto bad;
        } else if ((v = node_cli_flag(argc, argv, &i, "--dest-tls-verify"))) {
            if (!bool_flag(v, &cp.dst.verify))
                goto bad;
        } else if ((v = node_cli_flag(argc, argv, &i, "--timeout"))) {
            if (at_parse_duration_ms(v, &timeout_ms) != 0 || timeout_ms == 0)
                goto bad;
        } else if (argv[i][0] != '-' && npos < 2) {
            pos[npos++] = argv[i];
        } else {
            goto bad;
        }
    }
    if (npos != 2 || parse_ref(pos[0], &cp.src) != 0 ||
        parse_ref(pos[1], &cp.dst) != 0 || (all && cp.src.ref != NULL) ||
        (!all && cp.src.ref == NULL) ||
        (!all && (cp.has_include || cp.has_exclude || cp.delete_missing)))
        goto bad;
    if (cp.dst.ref == NULL && cp.src.ref != NULL)
        cp.dst.ref = at_strdup(cp.src.ref);
    if (side_open(&cp.src, timeout_ms, "--src-creds-file") != 0 ||
        side_open(&cp.dst, timeout_ms, "--dest-creds-file") != 0) {
        rv = 1;
        goto out;
    }
    rv = all ? copy_all_tags(&cp) : copy_manifest(&cp, cp.src.ref, 0);
    printf("copied %" PRIu64 " manifest(s) and %" PRIu64 " blob(s), %" PRIu64
           " bytes; already there: %" PRIu64 " manifest(s), %" PRIu64
           " blob(s); deleted %" PRIu64 " tag(s)\n",
           cp.manifests, cp.blobs, cp.bytes, cp.manifests_there, cp.blobs_there,
           cp.deleted);
    rv = rv == 0 ? 0 : 1;
out:
    copier_release(&cp);
    return rv;
bad:
    usage(stderr);
    copier_release(&cp);
    return 2;
}
