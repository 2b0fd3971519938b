/* Snapshot files between nodes: the follower's fetch (raft/snaprecv.h)
 * and the leader's expansion for a node that does not fetch
 * (raft/snapsend.h), on a real loop and pool with a fake io and hook. */
#include "common/compat.h"

#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <raft.h>
#include <uv.h>

#include "common/common.h"
#include "raft/snapfile.h"
#include "raft/snaprecv.h"
#include "raft/snapsend.h"

#define SRC_LEN (300 * 1024 + 7)

/* ---- a fake io: the pool (uv_queue_work) and a send that keeps the
 * message's data ---- */

struct fake_io {
    struct raft_io io;
    uv_loop_t *loop;
    unsigned sends;
    void *sent; /* copy of the last sent message's data */
    size_t sent_len;
    uint64_t sent_to;
};

struct work {
    uv_work_t w;
    struct raft_io_async_work *req;
    int status;
};

static void work_run(uv_work_t *w)
{
    struct work *x = w->data;
    x->status = x->req->work(x->req);
}

static void work_after(uv_work_t *w, int status)
{
    struct work *x = w->data;
    AT_UNUSED(status);
    struct raft_io_async_work *req = x->req;
    int st = x->status;
    free(x);
    req->cb(req, st);
}

static int fake_async_work(struct raft_io *io,
                           struct raft_io_async_work *req,
                           raft_io_async_work_cb cb)
{
    struct fake_io *f = io->impl;
    struct work *x = calloc(1, sizeof(*x));
    x->w.data = x;
    x->req = req;
    req->cb = cb;
    return uv_queue_work(f->loop, &x->w, work_run, work_after);
}

static int fake_send(struct raft_io *io,
                     struct raft_io_send *req,
                     const struct raft_message *msg,
                     raft_io_send_cb cb)
{
    struct fake_io *f = io->impl;
    f->sends++;
    free(f->sent);
    f->sent_len = msg->install_snapshot.data.len;
    f->sent = malloc(f->sent_len);
    memcpy(f->sent, msg->install_snapshot.data.base, f->sent_len);
    f->sent_to = msg->server_id;
    assert_string_equal(msg->server_address, "n2");
    cb(req, 0); /* done at once: the buffer may go */
    return 0;
}

static void fake_io_init(struct fake_io *f, uv_loop_t *loop)
{
    memset(f, 0, sizeof(*f));
    f->loop = loop;
    f->io.version = 2;
    f->io.impl = f;
    f->io.async_work = fake_async_work;
    f->io.send = fake_send;
}

/* ---- a fake fetch hook: writes src (or a damaged copy) later ---- */

enum fetch_mode { FETCH_OK, FETCH_DAMAGED, FETCH_SHORT, FETCH_FAILS };

struct fake_fetch {
    const uint8_t *src;
    enum fetch_mode mode;
    bool refuse; /* the hook fails at once */
    unsigned calls;
    int fd;
    meta_snapfetch_cb cb;
    void *arg;
    uv_timer_t timer;
};

static void fetch_later(uv_timer_t *t)
{
    struct fake_fetch *f = t->data;
    size_t n = f->mode == FETCH_SHORT ? SRC_LEN / 2 : SRC_LEN;
    uint8_t *copy = malloc(SRC_LEN);
    memcpy(copy, f->src, SRC_LEN);
    if (f->mode == FETCH_DAMAGED)
        copy[SRC_LEN / 3] ^= 0x40;
    if (f->mode != FETCH_FAILS)
        assert_int_equal(write(f->fd, copy, n), (ssize_t)n);
    free(copy);
    f->cb(f->arg, f->mode == FETCH_FAILS ? AT_ENOTFOUND : 0);
}

static int fake_fetch_fn(void *data,
                         uint64_t from_id,
                         const char *from_name,
                         const struct meta_snapfile *d,
                         int fd,
                         meta_snapfetch_cb cb,
                         void *arg)
{
    struct fake_fetch *f = data;
    assert_int_equal(from_id, 1);
    assert_string_equal(from_name, "n1");
    assert_int_equal(d->len, SRC_LEN);
    f->calls++;
    if (f->refuse)
        return AT_EIO;
    f->fd = fd;
    f->cb = cb;
    f->arg = arg;
    uv_timer_start(&f->timer, fetch_later, 1, 0);
    return 0;
}

/* ---- delivery: what raft would get ---- */

struct got {
    unsigned n;
    struct meta_snapfile d; /* the descriptor delivered last */
};

static void deliver(void *data, struct raft_message *msg)
{
    struct got *g = data;
    assert_int_equal(msg->type, RAFT_IO_INSTALL_SNAPSHOT);
    assert_string_equal(msg->server_address, "n1");
    assert_true(meta__snapfile_desc_decode(msg->install_snapshot.data.base,
                                           msg->install_snapshot.data.len,
                                           &g->d));
    assert_int_equal(msg->install_snapshot.conf.n, 1);
    g->n++;
    meta__snaprecv_drop(msg); /* raft would own it */
}

/* An InstallSnapshot from n1 (id 1) carrying d's descriptor, with a
 * configuration and data raft would own. */
static struct raft_message install_msg(const struct meta_snapfile *d)
{
    struct raft_message m;
    memset(&m, 0, sizeof(m));
    m.type = RAFT_IO_INSTALL_SNAPSHOT;
    m.server_id = 1;
    m.server_address = "n1";
    m.install_snapshot.last_index = d->index;
    raft_configuration_init(&m.install_snapshot.conf);
    assert_int_equal(
        raft_configuration_add(&m.install_snapshot.conf, 1, "n1", RAFT_VOTER),
        0);
    m.install_snapshot.data.base = raft_malloc(META_SNAPFILE_DESC_LEN);
    m.install_snapshot.data.len = META_SNAPFILE_DESC_LEN;
    meta__snapfile_desc_encode(d, m.install_snapshot.data.base);
    return m;
}

/* Files in dir whose name starts with "fsm-". */
static unsigned fsm_files(const char *dir)
{
    unsigned n = 0;
    DIR *dp = opendir(dir);
    struct dirent *e;
    while ((e = readdir(dp)) != NULL)
        n += strncmp(e->d_name, "fsm-", 4) == 0;
    closedir(dp);
    return n;
}

static void run_until(uv_loop_t *loop, const unsigned *n, unsigned want)
{
    for (int i = 0; i < 2000 && *n < want; i++)
        uv_run(loop, UV_RUN_ONCE);
}

static void rm_dir(const char *dir)
{
    DIR *dp = opendir(dir);
    struct dirent *e;
    while ((e = readdir(dp)) != NULL)
        if (e->d_name[0] != '.')
            unlinkat(dirfd(dp), e->d_name, 0);
    closedir(dp);
    rmdir(dir);
}

struct setup {
    uv_loop_t loop;
    struct fake_io io;
    struct fake_fetch fetch;
    struct got got;
    struct meta_snaprecv_env env;
    struct meta_snaprecv *busy;
    uint8_t *src;
    char dir[64];
};

static void setup(struct setup *s)
{
    memset(s, 0, sizeof(*s));
    assert_int_equal(uv_loop_init(&s->loop), 0);
    fake_io_init(&s->io, &s->loop);
    s->src = malloc(SRC_LEN);
    for (size_t i = 0; i < SRC_LEN; i++)
        s->src[i] = (uint8_t)(i * 2654435761u >> 13);
    s->fetch.src = s->src;
    uv_timer_init(&s->loop, &s->fetch.timer);
    s->fetch.timer.data = &s->fetch;
    snprintf(s->dir, sizeof(s->dir), "/tmp/atoll-snaprecv-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    s->env.inner = &s->io.io;
    s->env.dir = s->dir;
    s->env.fetch = fake_fetch_fn;
    s->env.fetch_data = &s->fetch;
    s->env.deliver = deliver;
    s->env.deliver_data = &s->got;
}

static void teardown(struct setup *s)
{
    uv_close((uv_handle_t *)&s->fetch.timer, NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&s->loop), 0);
    free(s->src);
    free(s->io.sent);
    rm_dir(s->dir);
}

/* The file arrives, is checked and committed, then the message goes to
 * raft; a second message meanwhile is dropped; a third for a file that
 * is here is delivered at once, without a fetch. */
static void test_fetch_then_deliver(void **state)
{
    struct setup s;
    AT_UNUSED(state);
    setup(&s);
    struct meta_snapfile d = { 9, SRC_LEN,
                               meta__snapfile_hash(s.src, SRC_LEN) };
    struct raft_message m = install_msg(&d);
    meta__snaprecv(&s.busy, &s.env, &m, &d);
    assert_non_null(s.busy);
    assert_int_equal(s.got.n, 0); /* raft has seen nothing yet */
    assert_false(meta__snapfile_exists(s.dir, &d));
    struct raft_message m2 = install_msg(&d);
    meta__snaprecv(&s.busy, &s.env, &m2, &d); /* one fetch at a time */
    assert_int_equal(s.fetch.calls, 1);
    run_until(&s.loop, &s.got.n, 1);
    assert_int_equal(s.got.n, 1);
    assert_null(s.busy);
    assert_int_equal(s.got.d.index, 9);
    assert_true(meta__snapfile_exists(s.dir, &d));
    const void *p;
    char e[AT_ERRMSG_SIZE];
    assert_int_equal(meta__snapfile_map(s.dir, &d, &p, e), 0);
    assert_memory_equal(p, s.src, SRC_LEN);
    meta__snapfile_unmap(p, &d);
    assert_int_equal(fsm_files(s.dir), 1); /* no temporary file left */
    struct raft_message m3 = install_msg(&d);
    meta__snaprecv(&s.busy, &s.env, &m3, &d);
    assert_int_equal(s.got.n, 2);
    assert_int_equal(s.fetch.calls, 1);
    teardown(&s);
}

/* Damaged, short, failed or refused fetches deliver nothing and leave no
 * file; the next fetch works. */
static void test_fetch_failures_drop(void **state)
{
    static const enum fetch_mode modes[] = { FETCH_DAMAGED, FETCH_SHORT,
                                             FETCH_FAILS };
    struct setup s;
    AT_UNUSED(state);
    setup(&s);
    struct meta_snapfile d = { 10, SRC_LEN,
                               meta__snapfile_hash(s.src, SRC_LEN) };
    for (size_t i = 0; i < AT_ARRAY_SIZE(modes); i++) {
        s.fetch.mode = modes[i];
        struct raft_message m = install_msg(&d);
        meta__snaprecv(&s.busy, &s.env, &m, &d);
        assert_non_null(s.busy);
        for (int k = 0; k < 2000 && s.busy != NULL; k++)
            uv_run(&s.loop, UV_RUN_ONCE);
        assert_null(s.busy);
        assert_int_equal(s.got.n, 0);
        assert_int_equal(fsm_files(s.dir), 0);
    }
    s.fetch.refuse = true;
    struct raft_message m = install_msg(&d);
    meta__snaprecv(&s.busy, &s.env, &m, &d);
    assert_null(s.busy);
    assert_int_equal(fsm_files(s.dir), 0);
    /* no hook: dropped */
    s.env.fetch = NULL;
    m = install_msg(&d);
    meta__snaprecv(&s.busy, &s.env, &m, &d);
    assert_null(s.busy);
    /* and a good one still goes through */
    s.env.fetch = fake_fetch_fn;
    s.fetch.refuse = false;
    s.fetch.mode = FETCH_OK;
    m = install_msg(&d);
    meta__snaprecv(&s.busy, &s.env, &m, &d);
    run_until(&s.loop, &s.got.n, 1);
    assert_int_equal(s.got.n, 1);
    assert_int_equal(fsm_files(s.dir), 1);
    teardown(&s);
}

/* Close while a fetch is in flight: nothing is delivered, everything is
 * freed (ASan) and the temporary file removed. */
static void test_detach_during_fetch(void **state)
{
    struct setup s;
    AT_UNUSED(state);
    setup(&s);
    struct meta_snapfile d = { 11, SRC_LEN,
                               meta__snapfile_hash(s.src, SRC_LEN) };
    struct raft_message m = install_msg(&d);
    meta__snaprecv(&s.busy, &s.env, &m, &d);
    assert_non_null(s.busy);
    meta__snaprecv_detach(&s.busy);
    assert_null(s.busy);
    uv_run(&s.loop, UV_RUN_DEFAULT); /* the fetch and the pool finish */
    assert_int_equal(s.got.n, 0);
    assert_int_equal(fsm_files(s.dir), 0);
    teardown(&s);
}

struct sent {
    unsigned n;
    int status;
};

static void on_sent(struct raft_io_send *req, int status)
{
    struct sent *x = req->data;
    x->n++;
    x->status = status;
}

/* A node that does not fetch gets the file's bytes in place of the
 * descriptor; a file that is gone fails the send (RAFT_IOERR). */
static void test_expand_for_old_nodes(void **state)
{
    struct setup s;
    char e[AT_ERRMSG_SIZE];
    AT_UNUSED(state);
    setup(&s);
    struct meta_snapfile d = { 12, SRC_LEN,
                               meta__snapfile_hash(s.src, SRC_LEN) };
    int fd = meta__snapfile_tmp_open(s.dir, &d, e);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, s.src, SRC_LEN), SRC_LEN);
    close(fd);
    assert_int_equal(meta__snapfile_adopt(s.dir, &d, e), 0);

    struct raft_message m = install_msg(&d);
    m.server_id = 2;
    m.server_address = "n2";
    struct raft_io_send req = { .data = NULL };
    struct sent x = { 0 };
    req.data = &x;
    assert_int_equal(meta__snapsend_expand(&s.io.io, s.dir, &req, &m, on_sent),
                     0);
    assert_int_equal(s.io.sends, 0); /* read in the pool first */
    run_until(&s.loop, &x.n, 1);
    assert_int_equal(x.status, 0);
    assert_int_equal(s.io.sends, 1);
    assert_int_equal(s.io.sent_to, 2);
    assert_int_equal(s.io.sent_len, SRC_LEN);
    assert_memory_equal(s.io.sent, s.src, SRC_LEN);

    /* the file gone: the send fails, nothing is written */
    struct meta_snapfile gone = d;
    gone.index = 13;
    meta__snaprecv_drop(&m);
    m = install_msg(&gone);
    m.server_address = "n2";
    x.n = 0;
    assert_int_equal(meta__snapsend_expand(&s.io.io, s.dir, &req, &m, on_sent),
                     0);
    run_until(&s.loop, &x.n, 1);
    assert_int_equal(x.status, RAFT_IOERR);
    assert_int_equal(s.io.sends, 1);
    meta__snaprecv_drop(&m);
    teardown(&s);
}

/* adopt refuses a temporary file of the wrong length or hash and removes
 * it; open and exists find a committed file by its numbers. */
static void test_adopt_checks(void **state)
{
    char dir[] = "/tmp/atoll-adopt-XXXXXX", e[AT_ERRMSG_SIZE];
    uint8_t buf[4096];
    uint64_t len = 0;
    AT_UNUSED(state);
    assert_non_null(mkdtemp(dir));
    memset(buf, 7, sizeof(buf));
    struct meta_snapfile d = { 5, sizeof(buf),
                               meta__snapfile_hash(buf, sizeof(buf)) };
    struct meta_snapfile wrong = d;
    wrong.hash ^= 1;
    for (int i = 0; i < 2; i++) {
        int fd = meta__snapfile_tmp_open(dir, &d, e);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, buf, sizeof(buf) - (size_t)(i == 0)),
                         (ssize_t)(sizeof(buf) - (size_t)(i == 0)));
        close(fd);
        /* short, then the right length under a wrong hash */
        assert_int_equal(meta__snapfile_adopt(dir, i == 0 ? &d : &wrong, e),
                         AT_ECORRUPT);
        assert_int_equal(fsm_files(dir), 0);
    }
    assert_int_equal(meta__snapfile_open(dir, &d, &len), AT_ENOTFOUND);
    int fd = meta__snapfile_tmp_open(dir, &d, e);
    assert_int_equal(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
    close(fd);
    assert_int_equal(meta__snapfile_adopt(dir, &d, e), 0);
    assert_true(meta__snapfile_exists(dir, &d));
    assert_false(meta__snapfile_exists(dir, &wrong));
    fd = meta__snapfile_open(dir, &d, &len);
    assert_true(fd >= 0);
    assert_int_equal(len, sizeof(buf));
    close(fd);
    rm_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fetch_then_deliver),
        cmocka_unit_test(test_fetch_failures_drop),
        cmocka_unit_test(test_detach_during_fetch),
        cmocka_unit_test(test_expand_for_old_nodes),
        cmocka_unit_test(test_adopt_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
