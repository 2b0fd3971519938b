/* Unit tests of raft/snapshot.c and raft/snapfork.c: round trips, corrupt
 * snapshots, jobs isolated from the state they copy, forked children
 * that encode the state as it was at the fork, and manifest bodies kept in
 * a body file (raft/bodies.c). */
#include "common/compat.h"

#include <setjmp.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "raft/snapfile.h"
#include "raft/snapfork.h"
#include "raft/snapjob.h"
#include "raft/snapshot.h"
#include "tests/unit/raft/helpers.h"

static void build_state(struct meta_fsm *f)
{
    const char *blobs[] = { "c1", "l1" };
    assert_int_equal(blob_stored(f, "s1", "lib/a", "c1", 5), META_OK);
    assert_int_equal(blob_stored(f, "s2", "lib/a", "l1", 7), META_OK);
    assert_int_equal(mount_blob(f, "s3", "lib/b", "lib/a", "l1"), META_OK);
    assert_int_equal(
        put_mf(f, "s4", "lib/a", "img", "latest", blobs, 2, NULL, 0, NULL),
        META_OK);
    const char *kids[] = { "img" };
    assert_int_equal(
        put_mf(f, "s5", "lib/a", "index", "multi", NULL, 0, kids, 1, NULL),
        META_OK);
    assert_int_equal(
        put_mf(f, "s6", "lib/a", "sig", NULL, NULL, 0, NULL, 0, "img"),
        META_OK);
    assert_int_equal(
        put_mf(f, "s7", "lib/c", "", "empty", NULL, 0, NULL, 0, NULL), META_OK);
}

static void test_snapshot_roundtrip(void **state)
{
    struct meta_fsm f, g;
    struct names n1, n2;
    char e[AT_ERRMSG_SIZE];
    void *buf;
    size_t len;
    AT_UNUSED(state);
    meta_fsm_init(&f, 100);
    build_state(&f);
    assert_int_equal(meta_fsm_snapshot(&f, NULL, &buf, &len, e), 0);
    assert_int_equal(len % 8, 0);

    meta_fsm_init(&g, 100);
    blob_stored(&g, "other", "junk", "j", 1); /* replaced by restore */
    assert_int_equal(meta_fsm_restore(&g, buf, len, e), 0);
    assert_string_equal(catalog_of(&f, &n1), catalog_of(&g, &n2));
    /* lib/b holds a blob only: not in the catalog, but restored */
    assert_string_equal(n2.text, "lib/a,lib/c");
    assert_string_equal(tags_of(&f, "lib/a", &n1), tags_of(&g, "lib/a", &n2));
    assert_string_equal(tags_of(&f, "lib/c", &n1), tags_of(&g, "lib/c", &n2));
    assert_int_equal(f.hash, g.hash);
    assert_int_equal(f.applied_count, g.applied_count);
    assert_int_equal(f.applied_index, g.applied_index);
    assert_int_equal(f.ntags, g.ntags);
    assert_int_equal(f.manifests.len, g.manifests.len);
    assert_int_equal(g.reqs.len, 7);
    struct at_digest sig = dg("sig"), img = dg("img"), l1 = dg("l1");
    const struct meta_manifest *mf = meta_fsm_manifest_find(&g, "lib/a", &sig);
    assert_non_null(mf);
    assert_non_null(mf->subject);
    assert_true(at_digest_equal(mf->subject, &img));
    assert_string_equal(mf->artifact_type, "application/x-sig");
    uint64_t size = 0;
    assert_true(meta_fsm_blob_linked(&g, "lib/b", &l1, &size));
    assert_int_equal(size, 7);
    /* request ids survive: a retry is still deduplicated */
    assert_int_equal(del_mf(&g, "s4", "lib/a", "img"), META_OK);
    assert_non_null(meta_fsm_manifest_find(&g, "lib/a", &img));
    /* refcounts were rebuilt: deleting everywhere frees the manifest */
    assert_int_equal(del_mf(&g, "d1", "lib/a", "img"), META_OK);
    assert_null(meta_fsm_manifest_find(&g, "lib/a", &img));

    /* corrupt snapshots are refused and leave the state alone */
    uint64_t h = g.hash;
    ((uint8_t *)buf)[0] ^= 0x55; /* magic */
    assert_int_not_equal(meta_fsm_restore(&g, buf, len, e), 0);
    assert_int_not_equal(meta_fsm_restore(&g, buf, len - 8, e), 0);
    assert_int_equal(g.hash, h);
    free(buf);
    meta_fsm_release(&f);
    meta_fsm_release(&g);
}

static int node_up_raw(struct meta_fsm *f)
{
    return node_up(f, 7, "n7", "127.0.0.1:7000", false) == META_OK ? 0 : -1;
}

/* A snapshot job is a copy: changing (even freeing) the state after the
 * take does not change what the job encodes. */
static void test_snapshot_job_isolated(void **state)
{
    struct meta_fsm f, g;
    char e[AT_ERRMSG_SIZE];
    void *want, *got;
    size_t wlen, glen;
    AT_UNUSED(state);
    meta_fsm_init(&f, 4);
    build_state(&f);
    assert_int_equal(node_up_raw(&f), 0);
    assert_int_equal(meta_fsm_snapshot(&f, NULL, &want, &wlen, e), 0);
    struct meta_snap_job *j = meta_snap_job_take(&f);
    /* writes go on: deletes free manifests and tags, new ones realloc,
     * the request ring wraps */
    assert_int_equal(del_mf(&f, "x1", "lib/a", "index"), META_OK);
    assert_int_equal(del_mf(&f, "x2", "lib/a", "img"), META_OK);
    assert_int_equal(blob_stored(&f, "x3", "lib/a", "c1", 5), META_OK);
    assert_int_equal(put_mf(&f, "x4", "lib/d", "", "t", NULL, 0, NULL, 0, NULL),
                     META_OK);
    meta_fsm_release(&f);
    assert_int_equal(meta_snap_job_encode(j, NULL, &got, &glen, e), 0);
    meta_snap_job_free(j);
    assert_int_equal(wlen, glen);
    assert_memory_equal(want, got, wlen);
    meta_fsm_init(&g, 4);
    assert_int_equal(meta_fsm_restore(&g, got, glen, e), 0);
    assert_int_equal(g.ntags, 3);
    assert_int_equal(g.nodes.len, 1);
    meta_fsm_release(&g);
    free(want);
    free(got);
}

/* A forked child encodes the state as it was at the fork, byte for byte,
 * whatever the parent does to it meanwhile. */
static void test_snapfork_isolated(void **state)
{
    struct meta_fsm f;
    struct meta_snap_fork sf;
    char e[AT_ERRMSG_SIZE];
    void *want, *got;
    size_t wlen, glen;
    AT_UNUSED(state);
    meta_fsm_init(&f, 4);
    build_state(&f);
    assert_int_equal(node_up_raw(&f), 0);
    assert_int_equal(meta_fsm_snapshot(&f, NULL, &want, &wlen, e), 0);
    assert_int_equal(meta_snap_fork_start(&sf, &f, NULL, 0, e), 0);
    assert_true(sf.pid > 0);
    assert_int_equal(del_mf(&f, "x1", "lib/a", "index"), META_OK);
    assert_int_equal(put_mf(&f, "x4", "lib/d", "", "t", NULL, 0, NULL, 0, NULL),
                     META_OK);
    meta_fsm_release(&f);
    assert_int_equal(meta_snap_fork_collect(&sf, NULL, NULL, &got, &glen, e),
                     0);
    assert_int_equal(sf.pid, 0);
    assert_int_equal(sf.fd, -1);
    assert_int_equal(wlen, glen);
    assert_memory_equal(want, got, wlen);
    free(want);
    free(got);
}

/* File mode (raft/snapfile.h): the child writes the same bytes into the
 * temporary file, hashed as written; commit names it; the map checks
 * length and hash; a child killed early leaves no file to commit. */
static void test_snapfork_file(void **state)
{
    struct meta_fsm f;
    struct meta_snap_fork sf;
    char e[AT_ERRMSG_SIZE], dir[] = "/tmp/atoll-snapfile-XXXXXX";
    void *want;
    size_t wlen;
    const void *p;
    AT_UNUSED(state);
    assert_non_null(mkdtemp(dir));
    meta_fsm_init(&f, 4);
    build_state(&f);
    assert_int_equal(meta_fsm_snapshot(&f, NULL, &want, &wlen, e), 0);
    assert_int_equal(meta_snap_fork_start(&sf, &f, dir, 77, e), 0);
    struct meta_snapfile d = { .index = 77 };
    assert_int_equal(meta_snap_fork_collect_file(&sf, &d, e), 0);
    assert_int_equal(sf.pid, 0);
    assert_int_equal(d.len, wlen);
    assert_true(d.hash == meta__snapfile_hash(want, wlen));
    /* not there under its name until committed */
    assert_int_equal(meta__snapfile_map(dir, &d, &p, e), AT_ENOTFOUND);
    assert_int_equal(meta__snapfile_commit(dir, &d, e), 0);
    assert_int_equal(meta__snapfile_map(dir, &d, &p, e), 0);
    assert_memory_equal(p, want, wlen);
    meta__snapfile_unmap(p, &d);
    /* a descriptor of another length or hash is refused */
    struct meta_snapfile bad = d;
    bad.len++; /* the same name: only the length differs */
    assert_int_equal(meta__snapfile_map(dir, &bad, &p, e), AT_ECORRUPT);
    assert_non_null(strstr(e, "descriptor says"));
    bad = d;
    bad.hash++; /* the same bytes under the other hash's name */
    char name[META_SNAPFILE_NAME_SIZE], from[600], to[600];
    meta__snapfile_name(&d, name);
    snprintf(from, sizeof(from), "%s/%s", dir, name);
    meta__snapfile_name(&bad, name);
    snprintf(to, sizeof(to), "%s/%s", dir, name);
    assert_int_equal(link(from, to), 0);
    assert_int_equal(meta__snapfile_map(dir, &bad, &p, e), AT_ECORRUPT);
    assert_non_null(strstr(e, "hash mismatch"));
    /* no libraft snapshot names them: above nothing, so they stay */
    assert_int_equal(meta__snapfile_prune(dir), 0);
    /* libraft's newest is above them: they go */
    snprintf(to, sizeof(to), "%s/snapshot-1-100-5.meta", dir);
    assert_int_equal(close(open(to, O_CREAT | O_WRONLY, 0600)), 0);
    assert_int_equal(meta__snapfile_prune(dir), 2);
    assert_int_equal(meta__snapfile_prune(dir), 0);
    unlink(to);
    /* a child killed before its end: nothing to commit */
    assert_int_equal(meta_snap_fork_start(&sf, &f, dir, 78, e), 0);
    kill(sf.pid, SIGKILL);
    struct meta_snapfile d2 = { .index = 78 };
    if (meta_snap_fork_collect_file(&sf, &d2, e) != 0)
        assert_int_equal(meta__snapfile_commit(dir, &d2, e), AT_EIO);
    meta_fsm_release(&f);
    free(want);
    rm_rf(dir);
}

static int write_flat(int fd, void *data, uint64_t *hash)
{
    struct meta_fsm *f = data;
    struct meta_flat_plan *pl;
    uint64_t len;
    char e[AT_ERRMSG_SIZE];
    assert_int_equal(meta__snap_flat_plan(f, &pl, &len, e), 0);
    int rv = meta__snap_flat_write_fd(f, pl, fd, NULL, 0, hash);
    meta__snap_flat_plan_free(pl);
    return rv;
}

/* A snapshot file's writeback starts as it is written, 8 MiB at a time,
 * not all at the final fsync (which queued the raft log's syncs behind
 * hundreds of MB); into a pipe there is none, and nothing fails. */
static void test_snapshot_file_paced(void **state)
{
    struct meta_fsm f;
    char e[AT_ERRMSG_SIZE], dir[] = "/tmp/atoll-snapfile-XXXXXX";
    AT_UNUSED(state);
    assert_non_null(mkdtemp(dir));
    meta_fsm_init(&f, 4);
    size_t body = 16 * 1024;
    char *content = malloc(body + 1);
    for (int i = 0; i < 2200; i++) { /* 36 MB of bodies */
        memset(content, 'a' + i % 26, body);
        snprintf(content, body, "%d", i);
        content[strlen(content)] = '-';
        content[body] = '\0';
        struct meta_cmd cmd = manifest_cmd("lib/a", content, NULL);
        char rid[32];
        snprintf(rid, sizeof(rid), "r%d", i);
        assert_int_equal(apply_cmd(&f, rid, &cmd), META_OK);
    }
    free(content);
    unsigned long before = meta__snap_flat_writebacks();
    struct meta_snapfile d = { .index = 9 };
    assert_int_equal(meta__snapfile_create(dir, &d, write_flat, &f, e), 0);
    assert_true(d.len > 32u << 20); /* 4 steps of 8 MiB at least */
    assert_true(meta__snap_flat_writebacks() - before >= 3);
    assert_int_equal(meta__snapfile_commit(dir, &d, e), 0);
    const void *p;
    assert_int_equal(meta__snapfile_map(dir, &d, &p, e), 0);
    meta__snapfile_unmap(p, &d);

    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* drain */
        char buf[65536];
        close(fds[1]);
        while (read(fds[0], buf, sizeof(buf)) > 0) {
        }
        _exit(0);
    }
    close(fds[0]);
    before = meta__snap_flat_writebacks();
    assert_int_equal(write_flat(fds[1], &f, NULL), 0);
    assert_int_equal(meta__snap_flat_writebacks(), before);
    close(fds[1]);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    meta_fsm_release(&f);
    rm_rf(dir);
}

/* The hash fed in pieces equals the hash of the whole; the descriptor
 * round-trips and nothing else passes for one. */
static void test_snapfile_hash_and_descriptor(void **state)
{
    AT_UNUSED(state);
    uint8_t buf[1000];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 131 + 7);
    for (size_t n = 0; n <= sizeof(buf); n += 37) {
        uint64_t want = meta__snapfile_hash(buf, n);
        for (size_t cut = 1; cut <= 70; cut += 3) {
            struct meta_snaphash h;
            meta__snaphash_init(&h);
            for (size_t at = 0; at < n; at += cut)
                meta__snaphash_update(&h, buf + at,
                                      n - at < cut ? n - at : cut);
            assert_true(meta__snaphash_final(&h) == want);
        }
    }
    assert_true(meta__snapfile_hash(buf, 64) != meta__snapfile_hash(buf, 63));
    buf[5] ^= 1;
    uint64_t flipped = meta__snapfile_hash(buf, 64);
    buf[5] ^= 1;
    assert_true(flipped != meta__snapfile_hash(buf, 64));

    struct meta_snapfile d = { .index = 5, .len = 1234, .hash = 0xabcdefULL };
    struct meta_snapfile got;
    uint8_t desc[META_SNAPFILE_DESC_LEN];
    meta__snapfile_desc_encode(&d, desc);
    assert_true(meta__snapfile_desc_decode(desc, sizeof(desc), &got));
    assert_true(got.index == 5 && got.len == 1234 && got.hash == 0xabcdefULL);
    assert_false(meta__snapfile_desc_decode(desc, sizeof(desc) - 1, &got));
    desc[4] = 2; /* another version */
    assert_false(meta__snapfile_desc_decode(desc, sizeof(desc), &got));
    desc[4] = 1;
    desc[0] = 'B';
    assert_false(meta__snapfile_desc_decode(desc, sizeof(desc), &got));
    d.len = 0;
    meta__snapfile_desc_encode(&d, desc);
    assert_false(meta__snapfile_desc_decode(desc, sizeof(desc), &got));
    assert_false(meta__snapfile_desc_decode("ATS2", 4, &got));
}

/* A child that dies before it wrote everything: AT_EIO, nothing handed
 * over, the child reaped; abort of a child never collected kills it. */
static void test_snapfork_child_dies(void **state)
{
    struct meta_fsm f;
    struct meta_snap_fork sf;
    char e[AT_ERRMSG_SIZE];
    void *got = (void *)1;
    size_t glen = 7;
    pid_t pid;
    AT_UNUSED(state);
    meta_fsm_init(&f, 4);
    build_state(&f);
    assert_int_equal(meta_snap_fork_start(&sf, &f, NULL, 0, e), 0);
    kill(sf.pid, SIGKILL);
    /* it may have written it all already: then collect succeeds */
    int rv = meta_snap_fork_collect(&sf, NULL, NULL, &got, &glen, e);
    if (rv == 0) {
        free(got);
    } else {
        assert_int_equal(rv, AT_EIO);
        assert_null(got);
        assert_int_equal(glen, 0);
        assert_non_null(strstr(e, "snapshot child"));
    }
    assert_int_equal(sf.pid, 0);
    assert_int_equal(meta_snap_fork_start(&sf, &f, NULL, 0, e), 0);
    pid = sf.pid;
    meta_snap_fork_abort(&sf);
    assert_int_equal(sf.pid, 0);
    assert_int_equal(kill(pid, 0), -1); /* reaped: no such process */
    meta_snap_fork_abort(&sf);          /* none: a no-op */
    meta_fsm_release(&f);
}

/* The entries of dir other than . and .. */
static size_t dir_entries(const char *dir)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* Manifest bodies in a body file (bodies.h): none on the heap, each read
 * back as pushed, in snapshots (taken here or in a forked child) byte for
 * byte as from the same state keeping them in memory; a restore fills a new
 * file; nothing visible in the dir, ever; an unreadable body fails the
 * snapshot instead of writing a wrong one. */
static void test_bodies_off_heap(void **state)
{
    struct meta_fsm f, heap, g;
    struct meta_snap_fork sf;
    char e[AT_ERRMSG_SIZE], dir[] = "/tmp/atoll-bodies-XXXXXX";
    void *want, *got;
    size_t wlen, glen;
    char body[16];
    AT_UNUSED(state);
    assert_non_null(mkdtemp(dir));
    meta_fsm_init(&f, 4);
    assert_int_equal(meta_fsm_bodies_open(&f, dir, e), 0);
    meta_fsm_init(&heap, 4);
    build_state(&f);
    assert_int_equal(dir_entries(dir), 0);
    struct at_digest img = dg("img");
    const struct meta_manifest *mf = meta_fsm_manifest_find(&f, "lib/a", &img);
    assert_non_null(mf);
    assert_null(mf->bytes);
    assert_int_equal(mf->len, 3);
    const struct meta_mf *rec = AT_CONTAINER_OF(mf, struct meta_mf, pub);
    assert_int_equal(meta__mf_body(&f, rec, body), 0);
    assert_memory_equal(body, "img", 3);
    /* "index", "sig", "img" in the file; "" (empty) stays inline */
    assert_int_equal(f.bodies.live, 3 + 5 + 3);
    struct at_digest empty = dg("");
    assert_non_null(meta_fsm_manifest_find(&f, "lib/c", &empty)->bytes);

    /* the same state with its bodies in memory encodes the same bytes
     * (restored, as the two builds differ in their timestamps) */
    assert_int_equal(meta_fsm_snapshot(&f, NULL, &want, &wlen, e), 0);
    assert_int_equal(meta_fsm_restore(&heap, want, wlen, e), 0);
    assert_non_null(meta_fsm_manifest_find(&heap, "lib/a", &img)->bytes);
    assert_int_equal(meta_fsm_snapshot(&heap, NULL, &got, &glen, e), 0);
    assert_int_equal(wlen, glen);
    assert_memory_equal(want, got, wlen);
    free(got);
    assert_int_equal(meta_snap_fork_start(&sf, &f, NULL, 0, e), 0);
    assert_int_equal(del_mf(&f, "x1", "lib/a", "index"), META_OK);
    assert_int_equal(f.bodies.dead, 5);
    assert_int_equal(meta_snap_fork_collect(&sf, NULL, NULL, &got, &glen, e),
                     0);
    assert_int_equal(wlen, glen);
    assert_memory_equal(want, got, wlen);
    free(got);

    meta_fsm_init(&g, 4);
    assert_int_equal(meta_fsm_bodies_open(&g, dir, e), 0);
    int old_fd = g.bodies.fd;
    assert_int_equal(meta_fsm_restore(&g, want, wlen, e), 0);
    assert_true(g.bodies.fd >= 0);
    assert_int_equal(fcntl(old_fd, F_GETFD), -1); /* the old file: closed */
    assert_int_equal(g.bodies.live, 11);
    assert_int_equal(g.bodies.dead, 0);
    mf = meta_fsm_manifest_find(&g, "lib/a", &img);
    assert_null(mf->bytes);
    assert_int_equal(
        meta__mf_body(&g, AT_CONTAINER_OF(mf, struct meta_mf, pub), body), 0);
    assert_memory_equal(body, "img", 3);
    assert_int_equal(dir_entries(dir), 0);

    /* a body file that lost its bytes: reads and the snapshot fail */
    assert_int_equal(ftruncate(g.bodies.fd, 0), 0);
    assert_int_equal(
        meta__mf_body(&g, AT_CONTAINER_OF(mf, struct meta_mf, pub), body),
        AT_EIO);
    got = NULL;
    assert_int_equal(meta_fsm_snapshot(&g, NULL, &got, &glen, e), AT_EIO);
    assert_null(got);
    assert_non_null(strstr(e, "manifest body"));
    /* in a forked child too: it stops, and nothing is handed over */
    assert_int_equal(meta_snap_fork_start(&sf, &g, NULL, 0, e), 0);
    assert_int_equal(meta_snap_fork_collect(&sf, NULL, NULL, &got, &glen, e),
                     AT_EIO);
    assert_null(got);
    assert_non_null(strstr(e, "stopped short"));
    assert_int_equal(meta_bodies_read(&g.bodies, g.bodies.end, body, 1),
                     AT_EIO);
    free(want);
    meta_fsm_release(&f);
    meta_fsm_release(&heap);
    meta_fsm_release(&g);
    assert_int_equal(rmdir(dir), 0);
}

/* A body file that cannot grow (RLIMIT_FSIZE: EFBIG, as a full disk
 * would answer): a restore keeps the bodies on the heap instead of
 * failing, and so does an apply; a later restore tries the file again. */
static void test_bodies_write_fails(void **state)
{
    struct meta_fsm f, g;
    struct rlimit old, tiny = { 4, RLIM_INFINITY };
    char e[AT_ERRMSG_SIZE], dir[] = "/tmp/atoll-bodies-XXXXXX";
    char body[16];
    void *buf;
    size_t len;
    AT_UNUSED(state);
    assert_non_null(mkdtemp(dir));
    meta_fsm_init(&f, 4);
    build_state(&f);
    assert_int_equal(meta_fsm_snapshot(&f, NULL, &buf, &len, e), 0);
    meta_fsm_init(&g, 4);
    assert_int_equal(meta_fsm_bodies_open(&g, dir, e), 0);
    void (*was)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    tiny.rlim_max = old.rlim_max;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &tiny), 0);
    int rv = meta_fsm_restore(&g, buf, len, e);
    int put = put_mf(&g, "w1", "lib/a", "written", "w", NULL, 0, NULL, 0, NULL);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, was);
    assert_int_equal(rv, 0);
    assert_int_equal(put, META_OK);
    struct at_digest img = dg("img"), w = dg("written");
    const struct meta_manifest *mf = meta_fsm_manifest_find(&g, "lib/a", &img);
    assert_non_null(mf->bytes);
    assert_memory_equal(mf->bytes, "img", 3);
    mf = meta_fsm_manifest_find(&g, "lib/a", &w);
    assert_non_null(mf->bytes);
    assert_int_equal(
        meta__mf_body(&g, AT_CONTAINER_OF(mf, struct meta_mf, pub), body), 0);
    assert_memory_equal(body, "written", 7);
    /* the file again, once it can grow */
    assert_int_equal(meta_fsm_restore(&g, buf, len, e), 0);
    assert_true(g.bodies.fd >= 0);
    assert_null(meta_fsm_manifest_find(&g, "lib/a", &img)->bytes);
    free(buf);
    meta_fsm_release(&f);
    meta_fsm_release(&g);
    assert_int_equal(rmdir(dir), 0);
}

/* Annotations of any size a push may carry (here 64 KiB, far over the
 * 4 KiB bound of names) survive a flat snapshot. */
static void test_snapshot_big_annotations(void **state)
{
    struct meta_fsm f, g;
    char e[AT_ERRMSG_SIZE];
    void *buf;
    size_t len;
    AT_UNUSED(state);
    size_t n = 64 * 1024;
    char *ann = malloc(n + 16);
    memcpy(ann, "{\"a\":\"", 6);
    memset(ann + 6, 'x', n);
    memcpy(ann + 6 + n, "\"}", 3);
    meta_fsm_init(&f, 4);
    struct meta_cmd cmd = manifest_cmd("lib/a", "annotated", "t");
    cmd.put_manifest.annotations_json = ann;
    /* a referrer: only a manifest with a subject keeps its annotations */
    cmd.put_manifest.has_subject = true;
    cmd.put_manifest.subject = dg("image");
    assert_int_equal(apply_cmd(&f, "a1", &cmd), META_OK);
    assert_int_equal(meta_fsm_snapshot(&f, NULL, &buf, &len, e), 0);
    meta_fsm_init(&g, 4);
    assert_int_equal(meta_fsm_restore(&g, buf, len, e), 0);
    struct at_digest d = dg("annotated");
    const struct meta_manifest *mf = meta_fsm_manifest_find(&g, "lib/a", &d);
    assert_non_null(mf);
    assert_string_equal(mf->annotations_json, ann);
    free(buf);
    free(ann);
    meta_fsm_release(&f);
    meta_fsm_release(&g);
}

/* An ATS1 snapshot (protobuf throughout, as written before the flat
 * format) still restores, to the same state. */
static void test_snapshot_ats1_restores(void **state)
{
    struct meta_fsm f, g;
    struct names n1, n2;
    char e[AT_ERRMSG_SIZE];
    void *buf;
    size_t len;
    AT_UNUSED(state);
    meta_fsm_init(&f, 100);
    build_state(&f);
    assert_int_equal(node_up_raw(&f), 0);
    struct meta_snap_job *j = meta_snap_job_take(&f);
    assert_int_equal(meta__snap_pb_encode(j, true, NULL, &buf, &len, e), 0);
    meta_snap_job_free(j);
    assert_memory_equal(buf, "ATS1", 4);
    meta_fsm_init(&g, 100);
    assert_int_equal(meta_fsm_restore(&g, buf, len, e), 0);
    free(buf);
    assert_string_equal(catalog_of(&f, &n1), catalog_of(&g, &n2));
    assert_string_equal(tags_of(&f, "lib/a", &n1), tags_of(&g, "lib/a", &n2));
    assert_int_equal(f.hash, g.hash);
    assert_int_equal(f.ntags, g.ntags);
    assert_int_equal(f.manifests.len, g.manifests.len);
    assert_int_equal(f.blobs.len, g.blobs.len);
    assert_int_equal(g.nodes.len, 1);
    assert_int_equal(g.reqs.len, 7);
    /* and what it restored encodes flat */
    assert_int_equal(meta_fsm_snapshot(&g, NULL, &buf, &len, e), 0);
    assert_memory_equal(buf, "ATS2", 4);
    free(buf);
    meta_fsm_release(&f);
    meta_fsm_release(&g);
}

/* A flat snapshot with any one byte changed, or cut at any length, is
 * refused or restores a consistent state: never a crash, a leak or a read
 * outside the buffer (ASan and UBSan in make asan). */
static void test_snapshot_flat_damaged(void **state)
{
    struct meta_fsm f;
    char e[AT_ERRMSG_SIZE];
    void *buf;
    size_t len;
    AT_UNUSED(state);
    meta_fsm_init(&f, 4);
    build_state(&f);
    assert_int_equal(node_up_raw(&f), 0);
    assert_int_equal(meta_fsm_snapshot(&f, NULL, &buf, &len, e), 0);
    assert_memory_equal(buf, "ATS2", 4);
    meta_fsm_release(&f);
    uint8_t *copy = malloc(len);
    size_t refused = 0;
    for (size_t i = 0; i < len; i++) {
        for (int flip = 0; flip < 2; flip++) {
            struct meta_fsm g;
            memcpy(copy, buf, len);
            copy[i] ^= flip == 0 ? 0x01 : 0xff;
            meta_fsm_init(&g, 4);
            if (meta_fsm_restore(&g, copy, len, e) != 0)
                refused++;
            meta_fsm_release(&g);
        }
    }
    assert_true(refused > 0);
    for (size_t cut = 0; cut < len; cut++) {
        struct meta_fsm g;
        meta_fsm_init(&g, 4);
        assert_int_not_equal(meta_fsm_restore(&g, buf, cut, e), 0);
        meta_fsm_release(&g);
    }
    free(copy);
    free(buf);
}

int main(void)
{
    at_log_configure(getenv("META_LOG") ? getenv("META_LOG") : "error");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_roundtrip),
        cmocka_unit_test(test_snapshot_job_isolated),
        cmocka_unit_test(test_snapfork_isolated),
        cmocka_unit_test(test_snapfork_child_dies),
        cmocka_unit_test(test_snapfork_file),
        cmocka_unit_test(test_snapfile_hash_and_descriptor),
        cmocka_unit_test(test_bodies_off_heap),
        cmocka_unit_test(test_bodies_write_fails),
        cmocka_unit_test(test_snapshot_big_annotations),
        cmocka_unit_test(test_snapshot_file_paced),
        cmocka_unit_test(test_snapshot_ats1_restores),
        cmocka_unit_test(test_snapshot_flat_damaged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
