/* Shared helpers of the raft/ unit tests (see helpers.h). */
#include "common/compat.h"

#include <dirent.h>
#include <setjmp.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/raft/helpers.h"

#include "raft/command.h"

uint64_t next_index = 1;
unsigned want_acks;

struct at_digest dg(const char *s)
{
    struct at_digest d;
    at_digest_of(s, strlen(s), &d);
    return d;
}

int apply_buf(struct meta_fsm *f, void *buf, size_t len)
{
    int res = -1;
    assert_int_equal(len % 8, 0);
    assert_int_equal(meta_fsm_apply(f, next_index++, buf, len, &res), 0);
    free(buf);
    return res;
}

/* Pack c (request id rid) as the node with store "store1" would, and
 * apply it; returns the result. */
int apply_cmd(struct meta_fsm *f, const char *rid, struct meta_cmd *c)
{
    void *buf;
    size_t len;
    char e[AT_ERRMSG_SIZE];
    c->request_id = rid;
    assert_int_equal(meta__cmd_pack(c, "store1", NULL, &buf, &len, e), 0);
    return apply_buf(f, buf, len);
}

int blob_stored(struct meta_fsm *f,
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

int put_mf(struct meta_fsm *f,
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
    struct meta_cmd cmd = { .kind = META_CMD_PUT_MANIFEST };
    struct meta_manifest_put *p = &cmd.put_manifest;
    for (size_t i = 0; i < nblobs; i++)
        b[i] = dg(blobs[i]);
    for (size_t i = 0; i < nchildren; i++)
        c[i] = dg(children[i]);
    p->repo = repo;
    p->digest = dg(content);
    p->media_type = "application/vnd.oci.image.manifest.v1+json";
    p->bytes = content;
    p->len = strlen(content);
    p->tag = tag;
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

int del_tag(struct meta_fsm *f,
            const char *rid,
            const char *repo,
            const char *tag)
{
    struct meta_cmd c = { .kind = META_CMD_DELETE_TAG,
                          .delete_tag = { .repo = repo, .tag = tag } };
    return apply_cmd(f, rid, &c);
}

int del_mf(struct meta_fsm *f,
           const char *rid,
           const char *repo,
           const char *content)
{
    struct meta_cmd c = { .kind = META_CMD_DELETE_MANIFEST,
                          .delete_manifest = { .repo = repo,
                                               .digest = dg(content) } };
    return apply_cmd(f, rid, &c);
}

int mount_blob(struct meta_fsm *f,
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

int unlink_blob(struct meta_fsm *f,
                const char *rid,
                const char *repo,
                const char *blob)
{
    struct meta_cmd c = { .kind = META_CMD_BLOB_UNLINK,
                          .blob_unlink = { .repo = repo, .digest = dg(blob) } };
    return apply_cmd(f, rid, &c);
}

void collect(void *data, const char *name)
{
    struct names *ns = data;
    size_t l = strlen(ns->text);
    snprintf(ns->text + l, sizeof(ns->text) - l, "%s%s", ns->n ? "," : "",
             name);
    ns->n++;
}

const char *tags_of(struct meta_fsm *f, const char *repo, struct names *ns)
{
    memset(ns, 0, sizeof(*ns));
    bool more;
    if (meta_fsm_tags_list(f, repo, NULL, SIZE_MAX, collect, ns, &more) != 0)
        return "<none>";
    return ns->text;
}

const char *catalog_of(struct meta_fsm *f, struct names *ns)
{
    bool more;
    memset(ns, 0, sizeof(*ns));
    meta_fsm_catalog_list(f, NULL, SIZE_MAX, collect, ns, &more);
    return ns->text;
}

int node_up(struct meta_fsm *f,
            uint64_t id,
            const char *name,
            const char *peer,
            bool standby)
{
    void *buf;
    size_t len;
    char e[AT_ERRMSG_SIZE];
    struct meta_cmd c = { .kind = META_CMD_NODE_UPSERT };
    c.node_upsert.node.id = id;
    c.node_upsert.node.name = name;
    c.node_upsert.node.peer_address = peer;
    c.node_upsert.node.api_address = "127.0.0.1:5000";
    c.node_upsert.node.region = "eu";
    c.node_upsert.standby = standby;
    int rv = meta__cmd_pack(&c, NULL, NULL, &buf, &len, e);
    if (rv != 0)
        return rv;
    return apply_buf(f, buf, len);
}

/* ---- a real single node on libuv ---- */

void on_write(void *data, int status, int result, uint64_t index)
{
    struct node_ctx *c = data;
    AT_UNUSED(index);
    if (status == 0 && result == META_OK)
        c->acked++;
    else
        c->failed++;
}

void on_read(void *data, int status)
{
    struct node_ctx *c = data;
    c->last_status = status;
    c->read_done = true;
}

void on_closed(void *data)
{
    struct node_ctx *c = data;
    c->closed = true;
}

void run_until(struct node_ctx *c, bool (*done)(struct node_ctx *))
{
    for (int i = 0; i < 100000 && !done(c); i++)
        uv_run(&c->loop, UV_RUN_ONCE);
    assert_true(done(c));
}

bool is_leader(struct node_ctx *c)
{
    struct meta_status st;
    meta_status_get(c->m, &st);
    return st.state == 3;
}

bool read_done(struct node_ctx *c)
{
    return c->read_done;
}

bool closed(struct node_ctx *c)
{
    return c->closed;
}

bool acks_done(struct node_ctx *c)
{
    return c->acked + c->failed >= want_acks;
}

void node_open(struct node_ctx *c, const char *dir, unsigned threshold)
{
    char e[AT_ERRMSG_SIZE] = "";
    struct meta_config cfg = { 0 };
    cfg.dir = dir;
    cfg.id = 1;
    cfg.address = "127.0.0.1:0";
    cfg.snapshot_threshold = threshold;
    cfg.snapshot_trailing = threshold ? threshold / 2 : 0;
    int rv = meta_open(&c->m, &c->loop, &cfg, e);
    if (rv != 0)
        print_error("meta_open: %s\n", e);
    assert_int_equal(rv, 0);
    run_until(c, is_leader);
    c->read_done = false;
    assert_int_equal(meta_read_barrier(c->m, on_read, c), 0);
    run_until(c, read_done);
    assert_int_equal(c->last_status, 0);
}

void node_close(struct node_ctx *c)
{
    c->closed = false;
    meta_close(c->m, on_closed, c);
    run_until(c, closed);
    c->m = NULL;
}

/* Entry sizes vary, so unpadded lengths would not be multiples of 8. */
void node_write_batch(struct node_ctx *c, int base, int n)
{
    want_acks = c->acked + c->failed + (unsigned)n;
    for (int i = base; i < base + n; i++) {
        char repo[32], content[128], tag[32], blob[32];
        snprintf(repo, sizeof(repo), "repo%d", i % 3);
        snprintf(blob, sizeof(blob), "blob%d", i % 3);
        if (i % 10 == 0) {
            struct meta_cmd bs = { .kind = META_CMD_BLOB_STORED,
                                   .blob_stored = { .repo = repo,
                                                    .digest = dg(blob),
                                                    .size = (uint64_t)i } };
            assert_int_equal(meta_propose(c->m, &bs, on_write, c), 0);
            continue;
        }
        snprintf(content, sizeof(content), "{\"n\":%d,\"pad\":\"%.*s\"}", i,
                 i % 13, "xxxxxxxxxxxxx");
        snprintf(tag, sizeof(tag), "tag%03d", i);
        struct meta_cmd pm = { .kind = META_CMD_PUT_MANIFEST };
        struct meta_manifest_put *p = &pm.put_manifest;
        p->repo = repo;
        p->digest = dg(content);
        p->media_type = "application/vnd.oci.image.manifest.v1+json";
        p->bytes = content;
        p->len = strlen(content);
        p->tag = tag;
        assert_int_equal(meta_propose(c->m, &pm, on_write, c), 0);
    }
    run_until(c, acks_done);
}

void snapshot_state(struct node_ctx *c, char *out, size_t size)
{
    struct names *ns = at_calloc(1, sizeof(*ns));
    bool more;
    meta_catalog_list(c->m, NULL, SIZE_MAX, collect, ns, &more);
    snprintf(out, size, "%s|", ns->text);
    for (int r = 0; r < 3; r++) {
        char repo[32];
        snprintf(repo, sizeof(repo), "repo%d", r);
        memset(ns, 0, sizeof(*ns));
        if (meta_tags_list(c->m, repo, NULL, SIZE_MAX, collect, ns, &more) ==
            0) {
            size_t l = strlen(out);
            snprintf(out + l, size - l, "%s|", ns->text);
        }
    }
    at_free(ns);
}

bool has_snapshot(const char *dir)
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

void rm_rf(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}
