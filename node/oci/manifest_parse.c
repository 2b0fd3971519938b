/* Validation of pushed manifests (OCI image spec, distribution spec v1.1). */
#include "common/compat.h"

#include <ctype.h>
#include <jansson.h>
#include <strings.h>

#include "common/common.h"
#include "node/oci/manifest_parse.h"

/* Bounds the work one document can cause (and the blob lists we keep). */
#define MAX_ENTRIES 10000

#define MT_DOCKER_SCHEMA1 "application/vnd.docker.distribution.manifest.v1+json"
#define MT_DOCKER_SCHEMA1_SIGNED \
    "application/vnd.docker.distribution.manifest.v1+prettyjws"

enum kind {
    KIND_IMAGE,
    KIND_INDEX,
};

static const struct {
    const char *mt;
    enum kind kind;
    bool oci;
} known[] = {
    { NODE_MT_OCI_MANIFEST, KIND_IMAGE, true },
    { NODE_MT_OCI_INDEX, KIND_INDEX, true },
    { NODE_MT_DOCKER_MANIFEST, KIND_IMAGE, false },
    { NODE_MT_DOCKER_LIST, KIND_INDEX, false },
};

/* A growable, de-duplicated digest list (manifests may repeat a layer). */
struct dlist {
    struct at_digest *v; /* owned */
    uint64_t *sz;        /* owned: the descriptors' sizes */
    size_t n;
    size_t cap;
    struct at_map seen; /* raw digest bytes -> (void *)1 */
};

static void dlist_init(struct dlist *l)
{
    memset(l, 0, sizeof(*l));
    at_map_init(&l->seen);
}

static void dlist_add(struct dlist *l, const struct at_digest *d, uint64_t sz)
{
    static int present;

    if (at_map_get(&l->seen, d->bytes, AT_DIGEST_LEN) != NULL)
        return;
    at_map_put(&l->seen, d->bytes, AT_DIGEST_LEN, &present);
    if (l->n == l->cap) {
        l->cap = l->cap == 0 ? 8 : l->cap * 2;
        l->v = at_realloc(l->v, l->cap * sizeof(*l->v));
        l->sz = at_realloc(l->sz, l->cap * sizeof(*l->sz));
    }
    l->sz[l->n] = sz;
    l->v[l->n++] = *d;
}

/* Hands the digests out, and the sizes to *sz (dropped when sz is NULL);
 * the list keeps nothing. */
static struct at_digest *dlist_take(struct dlist *l, size_t *n, uint64_t **sz)
{
    struct at_digest *v = l->v;
    *n = l->n;
    if (sz != NULL)
        *sz = l->sz;
    else
        free(l->sz);
    l->sz = NULL;
    l->v = NULL;
    l->n = 0;
    l->cap = 0;
    return v;
}

static void dlist_release(struct dlist *l)
{
    free(l->v);
    free(l->sz);
    at_map_release(&l->seen);
    memset(l, 0, sizeof(*l));
}

/* Content-Type without parameters and surrounding whitespace, lowercased,
 * into out (truncated types are reported as they are: they never match). */
static void normalize_ct(const char *ct, char *out, size_t outlen)
{
    size_t n = 0;
    const char *end;

    out[0] = '\0';
    if (ct == NULL)
        return;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    end = strchr(ct, ';');
    if (end == NULL)
        end = ct + strlen(ct);
    while (end > ct && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    for (; ct < end && n + 1 < outlen; ct++)
        out[n++] = (char)tolower((unsigned char)*ct);
    out[n] = '\0';
}

static bool is_generic_ct(const char *ct)
{
    return ct[0] == '\0' || strcmp(ct, "application/json") == 0 ||
           strcmp(ct, "application/octet-stream") == 0;
}

/* An optional string->string object; path names it in errors. */
static int check_annotations(json_t *a, const char *path, char *errmsg)
{
    const char *k;
    json_t *v;

    if (!json_is_object(a)) {
        at_errmsg_printf(errmsg, "%s must be an object of strings", path);
        return AT_EINVAL;
    }
    json_object_foreach(a, k, v)
    {
        if (!json_is_string(v)) {
            at_errmsg_printf(errmsg, "%s['%.64s'] must be a string", path, k);
            return AT_EINVAL;
        }
    }
    return 0;
}

static int optional_string(json_t *obj,
                           const char *field,
                           const char *path,
                           const char **out,
                           char *errmsg)
{
    json_t *v = json_object_get(obj, field);

    *out = NULL;
    if (v == NULL)
        return 0;
    if (!json_is_string(v)) {
        at_errmsg_printf(errmsg, "%s%s%s must be a string", path,
                         path[0] != '\0' ? "." : "", field);
        return AT_EINVAL;
    }
    *out = json_string_value(v);
    return 0;
}

/* OCI descriptor.md: mediaType, digest and size are required; urls,
 * annotations, artifactType and data optional. *foreign is set when the
 * descriptor lists urls (non-distributable content need not be pushed). */
static int parse_descriptor(json_t *d,
                            const char *path,
                            struct at_digest *out,
                            uint64_t *size,
                            bool *foreign,
                            char *errmsg)
{
    json_t *mt = json_object_get(d, "mediaType");
    json_t *dg = json_object_get(d, "digest");
    json_t *sz = json_object_get(d, "size");
    json_t *urls;
    json_t *ann;
    const char *s;
    int rv;

    if (foreign != NULL)
        *foreign = false;
    if (!json_is_object(d)) {
        at_errmsg_printf(errmsg, "%s must be a descriptor object", path);
        return AT_EINVAL;
    }
    if (!json_is_string(mt) || json_string_length(mt) == 0) {
        at_errmsg_printf(errmsg, "%s.mediaType must be a non-empty string",
                         path);
        return AT_EINVAL;
    }
    if (!json_is_string(dg)) {
        at_errmsg_printf(errmsg, "%s.digest must be a string", path);
        return AT_EINVAL;
    }
    rv = at_digest_parse(json_string_value(dg), json_string_length(dg), out);
    if (rv != 0) {
        at_errmsg_printf(errmsg, "%s.digest: %s digest '%.100s'", path,
                         rv == AT_EUNSUPPORTED ? "unsupported" : "invalid",
                         json_string_value(dg));
        return AT_EINVAL;
    }
    if (!json_is_integer(sz) || json_integer_value(sz) < 0) {
        at_errmsg_printf(errmsg, "%s.size must be a non-negative integer",
                         path);
        return AT_EINVAL;
    }
    if (size != NULL)
        *size = (uint64_t)json_integer_value(sz);
    urls = json_object_get(d, "urls");
    if (urls != NULL) {
        size_t i;
        json_t *u;

        if (!json_is_array(urls)) {
            at_errmsg_printf(errmsg, "%s.urls must be an array of strings",
                             path);
            return AT_EINVAL;
        }
        json_array_foreach(urls, i, u)
        {
            if (!json_is_string(u)) {
                at_errmsg_printf(errmsg, "%s.urls[%zu] must be a string", path,
                                 i);
                return AT_EINVAL;
            }
        }
        if (foreign != NULL && json_array_size(urls) > 0)
            *foreign = true;
    }
    ann = json_object_get(d, "annotations");
    if (ann != NULL) {
        char p[128];
        snprintf(p, sizeof(p), "%s.annotations", path);
        rv = check_annotations(ann, p, errmsg);
        if (rv != 0)
            return rv;
    }
    rv = optional_string(d, "artifactType", path, &s, errmsg);
    if (rv != 0)
        return rv;
    /* data is base64 of the content; we only check its type. */
    rv = optional_string(d, "data", path, &s, errmsg);
    if (rv != 0)
        return rv;
    return 0;
}

static int parse_descriptor_array(json_t *root,
                                  const char *field,
                                  bool skip_foreign,
                                  struct dlist *list,
                                  char *errmsg)
{
    json_t *arr = json_object_get(root, field);
    size_t i;
    json_t *d;

    if (!json_is_array(arr)) {
        at_errmsg_printf(errmsg, "%s must be an array of descriptors", field);
        return AT_EINVAL;
    }
    if (json_array_size(arr) > MAX_ENTRIES) {
        at_errmsg_printf(errmsg, "%s has %zu entries, at most %d allowed",
                         field, json_array_size(arr), MAX_ENTRIES);
        return AT_EINVAL;
    }
    json_array_foreach(arr, i, d)
    {
        char path[64];
        struct at_digest dg;
        uint64_t sz;
        bool foreign;
        int rv;

        snprintf(path, sizeof(path), "%s[%zu]", field, i);
        rv = parse_descriptor(d, path, &dg, &sz, &foreign, errmsg);
        if (rv != 0)
            return rv;
        if (foreign && skip_foreign)
            continue;
        dlist_add(list, &dg, sz);
    }
    return 0;
}

/* Media type from mediaType / Content-Type, else from the document's shape.
 * Returns the index into known[], or a negative AT_E* code. */
static int pick_media_type(json_t *root, const char *content_type, char *errmsg)
{
    json_t *mtf = json_object_get(root, "mediaType");
    json_t *sv = json_object_get(root, "schemaVersion");
    char ct[128];
    const char *mt;

    normalize_ct(content_type, ct, sizeof(ct));
    if (mtf != NULL && !json_is_string(mtf)) {
        at_errmsg_printf(errmsg, "mediaType must be a string");
        return AT_EINVAL;
    }
    /* distribution-spec "Pushing Manifests": "if the manifest has a
     * mediaType field, clients MUST set the Content-Type header to the value
     * specified by the mediaType field". */
    if (mtf != NULL && !is_generic_ct(ct) &&
        strcasecmp(json_string_value(mtf), ct) != 0) {
        at_errmsg_printf(errmsg,
                         "mediaType '%.80s' does not match Content-Type "
                         "'%.80s'",
                         json_string_value(mtf), ct);
        return AT_EINVAL;
    }
    if (mtf != NULL) {
        mt = json_string_value(mtf);
    } else if (!is_generic_ct(ct)) {
        mt = ct;
    } else if (json_is_array(json_object_get(root, "manifests"))) {
        mt = NODE_MT_OCI_INDEX;
    } else if (json_object_get(root, "config") != NULL &&
               json_object_get(root, "layers") != NULL) {
        mt = NODE_MT_OCI_MANIFEST;
    } else if (json_is_integer(sv) && json_integer_value(sv) == 1) {
        mt = MT_DOCKER_SCHEMA1;
    } else {
        at_errmsg_printf(errmsg,
                         "cannot tell the manifest's media type: no "
                         "mediaType, no specific Content-Type, and neither "
                         "manifests nor config+layers");
        return AT_EINVAL;
    }
    for (size_t i = 0; i < AT_ARRAY_SIZE(known); i++) {
        if (strcasecmp(mt, known[i].mt) == 0)
            return (int)i;
    }
    if (strcasecmp(mt, MT_DOCKER_SCHEMA1) == 0 ||
        strcasecmp(mt, MT_DOCKER_SCHEMA1_SIGNED) == 0) {
        at_errmsg_printf(errmsg,
                         "docker schema1 manifests are not supported; push "
                         "schema2 or OCI");
        return AT_EUNSUPPORTED;
    }
    at_errmsg_printf(errmsg, "unsupported manifest media type '%.100s'", mt);
    return AT_EUNSUPPORTED;
}

/* see manifest_parse.h */
int node_manifest_parse(const char *content_type,
                        const void *bytes,
                        size_t len,
                        struct node_manifest_info *out,
                        char *errmsg)
{
    json_error_t jerr;
    json_t *root;
    json_t *sv;
    json_t *ann;
    json_t *subj;
    struct dlist blobs;
    struct dlist manifests;
    const char *artifact_type = NULL;
    int k;
    int rv;

    memset(out, 0, sizeof(*out));
    errmsg[0] = '\0';
    dlist_init(&blobs);
    dlist_init(&manifests);

    root = json_loadb(bytes, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        at_errmsg_printf(errmsg,
                         "manifest is not valid JSON: %s (line %d column %d)",
                         jerr.text, jerr.line, jerr.column);
        rv = AT_EINVAL;
        goto out;
    }
    if (!json_is_object(root)) {
        at_errmsg_printf(errmsg,
                         "manifest is not valid JSON: want an object at "
                         "the top level");
        rv = AT_EINVAL;
        goto out_decref;
    }

    k = pick_media_type(root, content_type, errmsg);
    if (k < 0) {
        rv = k;
        goto out_decref;
    }

    sv = json_object_get(root, "schemaVersion");
    if (!json_is_integer(sv) || json_integer_value(sv) != 2) {
        at_errmsg_printf(errmsg, "schemaVersion must be 2");
        rv = AT_EINVAL;
        goto out_decref;
    }

    rv = optional_string(root, "artifactType", "", &artifact_type, errmsg);
    if (rv != 0)
        goto out_decref;

    if (known[k].kind == KIND_IMAGE) {
        json_t *cfg = json_object_get(root, "config");
        struct at_digest d;
        uint64_t sz;
        if (cfg == NULL) {
            at_errmsg_printf(errmsg, "config descriptor is required");
            rv = AT_EINVAL;
            goto out_decref;
        }
        rv = parse_descriptor(cfg, "config", &d, &sz, NULL, errmsg);
        if (rv != 0)
            goto out_decref;
        dlist_add(&blobs, &d, sz);
        if (artifact_type == NULL)
            artifact_type =
                json_string_value(json_object_get(cfg, "mediaType"));
        /* image-spec manifest.md: layers "MUST" be present; it may be empty
         * for artifacts. Layers with urls are non-distributable: their bytes
         * may live elsewhere and need not be pushed here. */
        rv = parse_descriptor_array(root, "layers", true, &blobs, errmsg);
        if (rv != 0)
            goto out_decref;
    } else {
        rv = parse_descriptor_array(root, "manifests", false, &manifests,
                                    errmsg);
        if (rv != 0)
            goto out_decref;
    }

    /* subject is an OCI field (image-spec 1.1); Docker types have none. */
    subj = json_object_get(root, "subject");
    if (subj != NULL && known[k].oci) {
        rv = parse_descriptor(subj, "subject", &out->subject, NULL, NULL,
                              errmsg);
        if (rv != 0)
            goto out_decref;
        out->has_subject = true;
    }

    ann = json_object_get(root, "annotations");
    if (ann != NULL) {
        rv = check_annotations(ann, "annotations", errmsg);
        if (rv != 0)
            goto out_decref;
        out->annotations_json =
            json_dumps(ann, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (out->annotations_json == NULL) {
            at_errmsg_printf(errmsg, "cannot encode annotations");
            rv = AT_EINVAL;
            goto out_decref;
        }
    }

    out->media_type = at_strdup(known[k].mt);
    out->is_index = known[k].kind == KIND_INDEX;
    out->artifact_type =
        artifact_type != NULL ? at_strdup(artifact_type) : NULL;
    out->blobs = dlist_take(&blobs, &out->nblobs, &out->blob_sizes);
    out->manifests = dlist_take(&manifests, &out->nmanifests, NULL);
    rv = 0;

out_decref:
    json_decref(root);
out:
    dlist_release(&blobs);
    dlist_release(&manifests);
    if (rv != 0)
        node_manifest_info_release(out);
    return rv;
}

/* see manifest_parse.h */
void node_manifest_info_release(struct node_manifest_info *info)
{
    free(info->media_type);
    free(info->blobs);
    free(info->blob_sizes);
    free(info->manifests);
    free(info->artifact_type);
    free(info->annotations_json);
    memset(info, 0, sizeof(*info));
}

/* see manifest_parse.h */
void node_manifest_put_fill(struct meta_manifest_put *p,
                            const struct node_manifest_info *info,
                            const char *repo,
                            const struct at_digest *d,
                            const void *bytes,
                            size_t len,
                            const char *tag)
{
    memset(p, 0, sizeof(*p));
    p->repo = repo;
    p->digest = *d;
    p->media_type = info->media_type;
    p->bytes = bytes;
    p->len = len;
    p->tag = tag;
    p->blobs = info->blobs;
    p->nblobs = info->nblobs;
    p->manifests = info->manifests;
    p->nmanifests = info->nmanifests;
    p->has_subject = info->has_subject;
    p->subject = info->subject;
    p->artifact_type = info->artifact_type;
    p->annotations_json = info->has_subject ? info->annotations_json : NULL;
}
