/* Unit tests of a real single node (raft/open.c, propose.c, read.c):
 * open, writes, reads, restarts with and without snapshots, close. */
#include "common/compat.h"

#include <dirent.h>
#include <setjmp.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "tests/unit/raft/helpers.h"

#include "proto/proto.h"

static const char *snap_dir; /* for snapshot_on_disk */

/* A snapshot file in snap_dir: snapshots run in the pool (a version-3
 * FSM), so one may still be on its way when the writes are all acked
 * (seen under ASan). */
static bool snapshot_on_disk(struct node_ctx *c)
{
    AT_UNUSED(c);
    return has_snapshot(snap_dir);
}

static void test_single_node_restart(void **state)
{
    struct node_ctx *c = node_ctx_new();
    AT_UNUSED(state);
    char dir[300];
    snprintf(dir, sizeof(dir), "%s/raft/sub", c->tmp); /* created by open */

    node_open(c, dir, 0);
    struct meta_cmd bad = { .kind = META_CMD_PUT_MANIFEST,
                            .request_id = "bad id" };
    assert_int_equal(meta_propose(c->m, &bad, on_write, c), AT_EINVAL);
    assert_non_null(strstr(meta_errmsg(c->m), "request id"));
    /* the builder's message reaches the caller */
    bad.request_id = NULL;
    bad.put_manifest.repo = "r";
    bad.put_manifest.media_type = "m";
    bad.put_manifest.len = PROTO_MANIFEST_MAX + 1;
    bad.put_manifest.bytes = "";
    assert_int_equal(meta_propose(c->m, &bad, on_write, c), AT_ETOOBIG);
    assert_non_null(strstr(meta_errmsg(c->m), "bytes over"));
    /* the node table changes through membership only */
    struct meta_cmd nr = { .kind = META_CMD_NODE_REMOVE,
                           .node_remove = { .id = 7 } };
    assert_int_equal(meta_propose(c->m, &nr, on_write, c), AT_EINVAL);
    node_write_batch(c, 0, 200);
    assert_int_equal(c->acked, 200);
    /* a fast read: leader, single voter, everything applied */
    c->read_done = false;
    assert_int_equal(meta_read_barrier(c->m, on_read, c), 0);
    run_until(c, read_done);
    assert_int_equal(c->last_status, 0);
    snapshot_state(c, c->before, STATE_SIZE);
    struct meta_status st;
    meta_status_get(c->m, &st);
    assert_int_equal(st.repos, 3);
    assert_int_equal(st.tags, 180);
    assert_int_equal(st.state, 3);
    /* a fresh dir: the id comes from the name, and is persisted */
    assert_int_equal(st.id, meta_node_id_from_name("atoll"));
    assert_int_equal(st.leader_id, st.id);
    node_close(c);
    assert_false(has_snapshot(dir));

    /* reopen: everything is back (lost if entries were not padded) */
    node_reopen_same(c, dir, 64);
    /* more writes with a small threshold: snapshots are taken */
    node_write_batch(c, 200, 200);
    assert_int_equal(c->acked, 400);
    snapshot_state(c, c->before, STATE_SIZE);
    meta_status_get(c->m, &st);
    assert_int_equal(st.tags, 360);
    snap_dir = dir;
    run_until(c, snapshot_on_disk);
    node_close(c);
    assert_true(has_snapshot(dir));

    node_reopen_same(c, dir, 64);
    /* duplicate request id after restart: stored result, no re-apply */
    unsigned acked = c->acked;
    want_acks = c->acked + c->failed + 1;
    struct meta_cmd dt = { .kind = META_CMD_DELETE_TAG,
                           .request_id = "fixed-1",
                           .delete_tag = { .repo = "repo1", .tag = "tag001" } };
    assert_int_equal(meta_propose(c->m, &dt, on_write, c), 0);
    run_until(c, acks_done);
    assert_int_equal(c->acked, acked + 1);
    node_close(c);
    node_open(c, dir, 64);
    want_acks = c->acked + c->failed + 1;
    assert_int_equal(meta_propose(c->m, &dt, on_write, c), 0);
    run_until(c, acks_done);
    assert_int_equal(c->acked, acked + 2); /* META_OK again, not unknown */

    /* several reads share barriers; all answer */
    c->read_done = false;
    for (int i = 0; i < 5; i++)
        assert_int_equal(meta_read_barrier(c->m, on_read, c), 0);
    run_until(c, read_done);
    assert_int_equal(c->last_status, 0);

    /* a write and a read in flight at close complete exactly once */
    want_acks = c->acked + c->failed + 1;
    dt.request_id = NULL;
    dt.delete_tag.repo = "repo2";
    dt.delete_tag.tag = "tag002";
    assert_int_equal(meta_propose(c->m, &dt, on_write, c), 0);
    c->read_done = false;
    assert_int_equal(meta_read_barrier(c->m, on_read, c), 0);
    node_close(c);
    assert_true(acks_done(c));
    assert_true(c->read_done);

    node_ctx_free(c);
}

/* ---- snapshot files (raft/snapfile.h) ---- */

static int write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return -1;
    size_t n = fwrite(data, 1, len, f);
    return fclose(f) == 0 && n == len ? 0 : -1;
}

static bool file_exists_in(const char *dir, const char *name)
{
    char path[700];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

/* The snapshot files in dir: how many, and the name of the newest. */
static unsigned fsm_files(const char *dir, char *newest, size_t size)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    unsigned n = 0;
    if (newest != NULL)
        newest[0] = '\0';
    while (d != NULL && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "fsm-", 4) != 0)
            continue;
        n++;
        if (newest != NULL && strcmp(de->d_name, newest) > 0)
            snprintf(newest, size, "%s", de->d_name);
    }
    if (d != NULL)
        closedir(d);
    return n;
}

/* Every snapshot of libraft's is a small file (a descriptor); returns
 * how many there are. */
static unsigned small_libraft_snapshots(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    unsigned n = 0;
    while (d != NULL && (de = readdir(d)) != NULL) {
        if (strncmp(de->d_name, "snapshot-", 9) != 0 ||
            strstr(de->d_name, ".meta") != NULL)
            continue;
        char path[600];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        assert_int_equal(stat(path, &st), 0);
        assert_true(st.st_size < 256); /* the state is in our file */
        n++;
    }
    if (d != NULL)
        closedir(d);
    return n;
}

/* fn(path) for each snapshot file (or moved-away one) in dir. */
static void fsm_files_each(const char *dir, void (*fn)(const char *path))
{
    char names[8][300];
    unsigned n = 0;
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL && n < 8)
        if (strncmp(de->d_name, "fsm-", 4) == 0)
            snprintf(names[n++], sizeof(names[0]), "%s/%s", dir, de->d_name);
    if (d != NULL)
        closedir(d);
    assert_true(n > 0);
    for (unsigned i = 0; i < n; i++)
        fn(names[i]);
}

static void flip_byte_100(const char *path)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, 100, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, 100, SEEK_SET);
    fputc(ch ^ 0x40, f);
    fclose(f);
}

/* One byte of a manifest body changed ("pad":"x... -> y, and back):
 * bytes the decoder takes as they are, so only the hash, checked
 * alongside the decoding, can refuse them. */
static char pad_from = 'x', pad_to = 'y';
static void swap_pad_byte(const char *path)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    static char buf[1 << 20];
    char pat[] = "\"pad\":\"?";
    pat[7] = pad_from;
    size_t n = fread(buf, 1, sizeof(buf), f);
    const char *at = memmem(buf, n, pat, 8);
    assert_non_null(at);
    fseek(f, (long)(at - buf) + 7, SEEK_SET);
    fputc(pad_to, f);
    fclose(f);
}

static void move_away(const char *path)
{
    char to[700];
    snprintf(to, sizeof(to), "%s.away", path);
    assert_int_equal(rename(path, to), 0);
}

static void move_back(const char *path)
{
    char to[700];
    snprintf(to, sizeof(to), "%.*s", (int)(strlen(path) - 5), path);
    assert_int_equal(rename(path, to), 0);
}

static const char *files_dir;
static bool files_pruned(struct node_ctx *c)
{
    AT_UNUSED(c);
    return fsm_files(files_dir, NULL, 0) <= 2 &&
           !file_exists_in(files_dir, "fsm-0000000000000001.tmp");
}

/* meta_open on dir fails (the loop runs until the failed node is gone). */
static void open_fails(struct node_ctx *c, const char *dir, const char *why)
{
    char e[AT_ERRMSG_SIZE] = "";
    struct meta_config cfg = { .dir = dir, .id = 1, .address = "127.0.0.1:0" };
    struct meta *m = NULL;
    assert_int_equal(meta_open(&m, &c->loop, &cfg, e), AT_ECORRUPT);
    assert_non_null(strstr(e, why));
    for (int i = 0; i < 1000; i++)
        uv_run(&c->loop, UV_RUN_NOWAIT);
}

/* Snapshots are files of our own; libraft keeps descriptors. A restart
 * restores from the file; a damaged or missing file is refused (the node
 * does not start on a wrong state); files libraft no longer names, and
 * leftovers of a crash, are removed. */
static void test_snapshot_files(void **state)
{
    AT_UNUSED(state);
    struct node_ctx *c = node_ctx_new();
    char dir[300], newest[300], path[700];
    snprintf(dir, sizeof(dir), "%s/raft", c->tmp);
    node_open(c, dir, 64);
    node_write_batch(c, 0, 400);
    snapshot_state(c, c->before, STATE_SIZE);
    snap_dir = dir;
    run_until(c, snapshot_on_disk);
    files_dir = dir;
    run_until(c, files_pruned);
    node_close(c);
    assert_true(small_libraft_snapshots(dir) >= 1);
    assert_true(fsm_files(dir, newest, sizeof(newest)) >= 1);

    /* leftovers: a temporary file, an old snapshot file */
    snprintf(path, sizeof(path), "%s/fsm-0000000000000001.tmp", dir);
    assert_int_equal(write_file(path, "x", 1), 0);
    snprintf(path, sizeof(path), "%s/fsm-0000000000000001-%016x.ats2", dir,
             0xabu);
    assert_int_equal(write_file(path, "x", 1), 0);
    node_reopen_same(c, dir, 64); /* restored from the newest file */
    run_until(c, files_pruned);
    assert_false(file_exists_in(dir, path + strlen(dir) + 1));
    node_close(c);

    /* a damaged file is refused (every one is damaged: libraft's newest
     * snapshot names one of them; a snapshot taken as the node closed may
     * be there too, newer, not stored by libraft) */
    fsm_files_each(dir, flip_byte_100);
    open_fails(c, dir, "raft start");
    fsm_files_each(dir, flip_byte_100);
    fsm_files_each(dir, swap_pad_byte);
    open_fails(c, dir, "raft start");
    pad_from = 'y';
    pad_to = 'x';
    fsm_files_each(dir, swap_pad_byte);
    /* a missing one too */
    fsm_files_each(dir, move_away);
    open_fails(c, dir, "raft start");
    fsm_files_each(dir, move_back);
    node_reopen_same(c, dir, 64);
    node_close(c);
    node_ctx_free(c);
}

/* Several appends in flight at close. libraft 0.15's uv io cancels every
 * append still pending at close, and the leader's append callback, given a
 * failure, truncates the log from its index: with two pending, the second
 * released entries the first had dropped and crashed in the refs walk (a
 * graceful stop under load, FINDINGS: issue 16). Each proposal is its own
 * raft_apply, so the first is being written and the others wait. */
static void test_close_with_appends_pending(void **state)
{
    AT_UNUSED(state);
    for (int round = 0; round < 20; round++) {
        struct node_ctx *c = node_ctx_new();
        char dir[300];
        snprintf(dir, sizeof(dir), "%s/raft", c->tmp);
        node_open(c, dir, 0);
        node_write_batch(c, 0, 20); /* the log holds entries before ours */
        want_acks = c->acked + c->failed + 8;
        for (int i = 0; i < 8; i++) {
            char tag[32];
            snprintf(tag, sizeof(tag), "late%d", i);
            struct meta_cmd pm = manifest_cmd("repo0", "{\"late\":1}", tag);
            assert_int_equal(meta_propose(c->m, &pm, on_write, c), 0);
            if (round % 2 == 1 && i == 0)
                uv_run(&c->loop, UV_RUN_NOWAIT); /* the first one written */
        }
        node_close(c);
        assert_true(acks_done(c)); /* each answered once */
        node_ctx_free(c);
    }
}

int main(void)
{
    at_log_configure(getenv("META_LOG") ? getenv("META_LOG") : "error");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_node_restart),
        cmocka_unit_test(test_close_with_appends_pending),
        cmocka_unit_test(test_snapshot_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
