/* Routes of the OCI API (see route.h). */
#include "common/compat.h"

#include "node/http/url.h"
#include "node/oci/names.h"
#include "node/oci/route.h"

static bool segment_is(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

/* see route.h */
void node_route_parse(const char *path, struct node_route_match *m)
{
    const char *p;
    size_t len;
    const char *segs[4];
    size_t segl[4];
    int nseg = 0;
    const char *name_end = NULL;
    const char *arg = NULL;
    size_t argl = 0;
    const char *end;

    memset(m, 0, sizeof(*m));
    if (strcmp(path, "/v2") == 0 || strcmp(path, "/v2/") == 0) {
        m->route = NODE_ROUTE_BASE;
        return;
    }
    if (strncmp(path, "/v2/", 4) != 0)
        return;
    p = path + 4;
    len = strlen(p);
    if (strcmp(p, "_catalog") == 0) {
        m->route = NODE_ROUTE_CATALOG;
        return;
    }
    /* Collect up to the last four segments, from the end. */
    end = p + len;
    while (nseg < 4) {
        const char *q = end;
        while (q > p && q[-1] != '/')
            q--;
        segs[nseg] = q;
        segl[nseg] = (size_t)(end - q);
        nseg++;
        if (q == p)
            break;
        end = q - 1;
    }
    /* segs[0] is the last segment. Name ends before the matched kind. */
    if (nseg >= 3 && segl[0] == 0 && segment_is(segs[1], segl[1], "uploads") &&
        segment_is(segs[2], segl[2], "blobs")) {
        m->route = NODE_ROUTE_UPLOAD_NEW;
        name_end = segs[2] - 1;
    } else if (nseg >= 3 && segment_is(segs[0], segl[0], "uploads") &&
               segment_is(segs[1], segl[1], "blobs")) {
        m->route = NODE_ROUTE_UPLOAD_NEW;
        name_end = segs[1] - 1;
    } else if (nseg >= 4 && segment_is(segs[1], segl[1], "uploads") &&
               segment_is(segs[2], segl[2], "blobs")) {
        m->route = NODE_ROUTE_UPLOAD;
        name_end = segs[2] - 1;
        arg = segs[0];
        argl = segl[0];
    } else if (nseg >= 3 && segment_is(segs[0], segl[0], "list") &&
               segment_is(segs[1], segl[1], "tags")) {
        m->route = NODE_ROUTE_TAGS;
        name_end = segs[1] - 1;
    } else if (nseg >= 3 && segment_is(segs[1], segl[1], "manifests")) {
        m->route = NODE_ROUTE_MANIFEST;
        name_end = segs[1] - 1;
        arg = segs[0];
        argl = segl[0];
    } else if (nseg >= 3 && segment_is(segs[1], segl[1], "blobs")) {
        m->route = NODE_ROUTE_BLOB;
        name_end = segs[1] - 1;
        arg = segs[0];
        argl = segl[0];
    } else if (nseg >= 3 && segment_is(segs[1], segl[1], "referrers")) {
        m->route = NODE_ROUTE_REFERRERS;
        name_end = segs[1] - 1;
        arg = segs[0];
        argl = segl[0];
    } else {
        return;
    }
    /* Names are matched as sent: a valid name has no '%', and decoding
     * would let "a%2Fb" pass as "a/b". */
    if (name_end <= p) {
        m->name_invalid = true;
    } else {
        m->name = at_strndup(p, (size_t)(name_end - p));
        m->name_invalid = !node_name_valid(m->name, strlen(m->name));
    }
    if (arg != NULL && node_url_decode(arg, argl, &m->arg) != 0)
        m->arg = at_strdup("");
    if (arg != NULL && m->arg == NULL)
        m->arg = at_strdup("");
}

/* see route.h */
void node_route_release(struct node_route_match *m)
{
    free(m->name);
    free(m->arg);
    m->name = NULL;
    m->arg = NULL;
}
