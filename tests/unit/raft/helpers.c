/* Shared helpers of the raft/ unit tests: a real single node (see
 * helpers.h). */
#include "common/compat.h"

#include <setjmp.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/unit/raft/helpers.h"

unsigned want_acks;

struct node_ctx *node_ctx_new(void)
{
    struct node_ctx *c = at_calloc(1, sizeof(*c));
    snprintf(c->tmp, sizeof(c->tmp), "/tmp/atoll-meta-XXXXXX");
    assert_non_null(mkdtemp(c->tmp));
    c->before = at_calloc(1, STATE_SIZE);
    c->after = at_calloc(1, STATE_SIZE);
    uv_loop_init(&c->loop);
    return c;
}

void node_ctx_free(struct node_ctx *c)
{
    uv_loop_close(&c->loop);
    at_free(c->before);
    at_free(c->after);
    rm_rf(c->tmp);
    at_free(c);
}

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
        struct meta_cmd pm = manifest_cmd(repo, content, tag);
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

void node_reopen_same(struct node_ctx *c, const char *dir, unsigned threshold)
{
    node_open(c, dir, threshold);
    snapshot_state(c, c->after, STATE_SIZE);
    assert_string_equal(c->before, c->after);
}
