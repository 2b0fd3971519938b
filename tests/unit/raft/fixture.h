/* Header-only helpers of the raft/ unit tests, for any test binary (the
 * node/ tests too): digests, commands applied to a bare FSM, listings, and
 * a raft dir's files. They fail the running cmocka test when something
 * they do not expect happens. */
#ifndef TESTS_RAFT_FIXTURE_H
#define TESTS_RAFT_FIXTURE_H

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "raft/command.h"
#include "raft/fsm.h"
#include "raft/snapshot.h"

/* The sha256 of s. */
static inline struct at_digest dg(const char *s)
{
    struct at_digest d;
    at_digest_of(s, strlen(s), &d);
    return d;
}

/* ---- commands applied to a bare FSM ----
 * Each packs one command as a node with store id "store1" would, applies
 * it at index next_index (then incremented) and returns its result
 * (enum meta_result). rid: the request id, NULL for none. */

static __attribute__((unused)) uint64_t next_index = 1;

/* Apply a packed buf (freed) of len bytes, a multiple of 8. */
static inline int apply_buf(struct meta_fsm *f, void *buf, size_t len)
{
    int res = -1;
    assert_int_equal(len % 8, 0);
    assert_int_equal(meta_fsm_apply(f, next_index++, buf, len, &res), 0);
    free(buf);
    return res;
}

/* Pack c with request id rid and apply it. */
static inline int apply_cmd(struct meta_fsm *f,
                            const char *rid,
                            struct meta_cmd *c)
{
    void *buf;
    size_t len;
    char e[AT_ERRMSG_SIZE];
    c->request_id = rid;
    assert_int_equal(meta__cmd_pack(c, "store1", NULL, &buf, &len, e), 0);
    return apply_buf(f, buf, len);
}

/* Pack c as a node without a store would and apply it; the builder's
 * AT_E* when it refuses c. */
static inline int try_cmd(struct meta_fsm *f, const struct meta_cmd *c)
{
    void *buf;
    size_t len;
    char e[AT_ERRMSG_SIZE];
    int rv = meta__cmd_pack(c, NULL, NULL, &buf, &len, e);
    if (rv != 0)
        return rv;
    return apply_buf(f, buf, len);
}

/* A PutManifest (not applied) of content in repo, with the OCI image
 * manifest media type and the digest of content, tagged tag unless NULL;
 * no blobs, no children. content is borrowed. */
static inline struct meta_cmd manifest_cmd(const char *repo,
                                           const char *content,
                                           const char *tag)
{
    struct meta_cmd cmd = { .kind = META_CMD_PUT_MANIFEST };
    struct meta_manifest_put *p = &cmd.put_manifest;
    p->repo = repo;
    p->digest = dg(content);
    p->media_type = "application/vnd.oci.image.manifest.v1+json";
    p->bytes = content;
    p->len = strlen(content);
    p->tag = tag;
    return cmd;
}

static inline int blob_stored(struct meta_fsm *f,
                              const char *rid,
                              const char *repo,
                              const char *blob,
                              uint64_t size)
{
    struct meta_cmd c = {
        .kind = META_CMD_BLOB_STORED,
        .blob_stored = { .repo = repo, .digest = dg(blob), .size = size }
    };
    return apply_cmd(f, rid, &c);
}

/* A manifest whose bytes are content in repo, with the blobs and children
 * named (digests of the names), and a subject (then with an artifact type
 * and annotations) unless NULL. */
static inline int put_mf(struct meta_fsm *f,
                         const char *rid,
                         const char *repo,
                         const char *content,
                         const char *tag,
                         const char **blobs,
                         size_t nblobs,
                         const char **children,
                         size_t nchildren,
                         const char *subject)
{
    struct at_digest b[8], c[8];
    struct meta_cmd cmd = manifest_cmd(repo, content, tag);
    struct meta_manifest_put *p = &cmd.put_manifest;
    for (size_t i = 0; i < nblobs; i++)
        b[i] = dg(blobs[i]);
    for (size_t i = 0; i < nchildren; i++)
        c[i] = dg(children[i]);
    p->blobs = b;
    p->nblobs = nblobs;
    p->manifests = c;
    p->nmanifests = nchildren;
    if (subject != NULL) {
        p->has_subject = true;
        p->subject = dg(subject);
        p->artifact_type = "application/x-sig";
        p->annotations_json = "{\"a\":\"b\"}";
    }
    return apply_cmd(f, rid, &cmd);
}

static inline int del_tag(struct meta_fsm *f,
                          const char *rid,
                          const char *repo,
                          const char *tag)
{
    struct meta_cmd c = { .kind = META_CMD_DELETE_TAG,
                          .delete_tag = { .repo = repo, .tag = tag } };
    return apply_cmd(f, rid, &c);
}

static inline int del_mf(struct meta_fsm *f,
                         const char *rid,
                         const char *repo,
                         const char *content)
{
    struct meta_cmd c = { .kind = META_CMD_DELETE_MANIFEST,
                          .delete_manifest = { .repo = repo,
                                               .digest = dg(content) } };
    return apply_cmd(f, rid, &c);
}

static inline int mount_blob(struct meta_fsm *f,
                             const char *rid,
                             const char *repo,
                             const char *from,
                             const char *blob)
{
    struct meta_cmd c = {
        .kind = META_CMD_BLOB_MOUNT,
        .blob_mount = { .repo = repo, .from_repo = from, .digest = dg(blob) }
    };
    return apply_cmd(f, rid, &c);
}

static inline int unlink_blob(struct meta_fsm *f,
                              const char *rid,
                              const char *repo,
                              const char *blob)
{
    struct meta_cmd c = { .kind = META_CMD_BLOB_UNLINK,
                          .blob_unlink = { .repo = repo, .digest = dg(blob) } };
    return apply_cmd(f, rid, &c);
}

/* A NodeUpsert (API address 127.0.0.1:5000, region eu); an AT_E* when the
 * builder refuses it. */
static inline int node_up(struct meta_fsm *f,
                          uint64_t id,
                          const char *name,
                          const char *peer,
                          bool standby)
{
    struct meta_cmd c = { .kind = META_CMD_NODE_UPSERT };
    c.node_upsert.node.id = id;
    c.node_upsert.node.name = name;
    c.node_upsert.node.peer_address = peer;
    c.node_upsert.node.api_address = "127.0.0.1:5000";
    c.node_upsert.node.region = "eu";
    c.node_upsert.standby = standby;
    return try_cmd(f, &c);
}

/* g (not initialised yet) made a copy of f: f writes a snapshot that g,
 * initialised with requests_max (meta_fsm_init), restores. */
static inline void fsm_copy(const struct meta_fsm *f,
                            struct meta_fsm *g,
                            size_t requests_max)
{
    char e[AT_ERRMSG_SIZE];
    void *buf;
    size_t len;
    assert_int_equal(meta_fsm_snapshot(f, NULL, &buf, &len, e), 0);
    meta_fsm_init(g, requests_max);
    assert_int_equal(meta_fsm_restore(g, buf, len, e), 0);
    free(buf);
}

/* ---- listings ---- */

/* Names joined with commas. */
struct names {
    char text[65536];
    size_t n;
};

/* A meta_name_cb adding name to the struct names at data. */
static inline void collect(void *data, const char *name)
{
    struct names *ns = data;
    size_t l = strlen(ns->text);
    snprintf(ns->text + l, sizeof(ns->text) - l, "%s%s", ns->n ? "," : "",
             name);
    ns->n++;
}

/* The tags of repo ("<none>" for an unknown repo). */
static inline const char *tags_of(struct meta_fsm *f,
                                  const char *repo,
                                  struct names *ns)
{
    memset(ns, 0, sizeof(*ns));
    bool more;
    if (meta_fsm_tags_list(f, repo, NULL, SIZE_MAX, collect, ns, &more) != 0)
        return "<none>";
    return ns->text;
}

/* The repositories. */
static inline const char *catalog_of(struct meta_fsm *f, struct names *ns)
{
    bool more;
    memset(ns, 0, sizeof(*ns));
    meta_fsm_catalog_list(f, NULL, SIZE_MAX, collect, ns, &more);
    return ns->text;
}

/* ---- a raft dir ---- */

/* Whether dir holds a snapshot file. */
static inline bool has_snapshot(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    bool found = false;
    while (d != NULL && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "snapshot-", 9) == 0)
            found = true;
    }
    if (d != NULL)
        closedir(d);
    return found;
}

/* Remove dir and everything below it. */
static inline void rm_rf(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

#endif /* TESTS_RAFT_FIXTURE_H */
