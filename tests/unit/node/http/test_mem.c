/* Unit tests of node/http/mem.c: the in-memory transport on its own, held
 * to the rules every transport keeps (transport.h). */
#include "common/compat.h"

#include "tests/unit/node/http/transport_fixture.h"

static int g_shut;
static char g_rbuf[8];
static ssize_t g_nread[8];
static int g_reads;

/* An in-memory transport on its own loop, writing into out. */
struct memt {
    uv_loop_t loop;
    struct at_buf out;
    struct node_http_transport *t;
};

static void memt_open(struct memt *m)
{
    twrite_reset();
    g_shut = g_reads = 0;
    uv_loop_init(&m->loop);
    at_buf_init(&m->out, 0);
    m->t = node_http__mem_new(&m->loop, &m->out);
}

/* After the transport closed: nothing is left on the loop. */
static void memt_release(struct memt *m)
{
    assert_int_equal(uv_loop_close(&m->loop), 0);
    at_buf_release(&m->out);
}

static void on_shut(struct node_http_transport *t, int status)
{
    AT_UNUSED(t);
    assert_int_equal(status, 0);
    g_shut++;
}

static int put(struct node_http_transport *t, struct wreq *w, const char *s)
{
    uv_buf_t b[2] = { uv_buf_init((char *)s, 1),
                      uv_buf_init((char *)s + 1, (unsigned)strlen(s) - 1) };

    return t->ops->write(t, &w->tw, b, 2, on_written);
}

/* Writes are in the output at once, complete in order, and only at
 * flush. */
static void test_write_order(void **state)
{
    struct memt m;
    struct node_http_transport *t;
    struct wreq w[3] = { { .id = 1 }, { .id = 2 }, { .id = 3 } };

    AT_UNUSED(state);
    memt_open(&m);
    t = m.t;
    assert_true(node_http__is_mem(t));
    assert_null(t->ops->sendfile);
    assert_int_equal(put(t, &w[0], "one,"), 0);
    assert_int_equal(put(t, &w[1], "two,"), 0);
    assert_int_equal(g_ndone, 0);
    assert_int_equal(node_http__mem_flush(t), 2);
    assert_int_equal(put(t, &w[2], "three"), 0);
    assert_int_equal(node_http__mem_flush(t), 1);
    twrite_expect(3, 0);
    assert_memory_equal(m.out.data, "one,two,three", 13);
    t->ops->close(t, on_closed);
    assert_int_equal(g_closed, 0); /* from the loop, not from close */
    uv_run(&m.loop, UV_RUN_DEFAULT);
    assert_int_equal(g_closed, 1);
    memt_release(&m);
}

/* Closing with writes queued: each completes with UV_ECANCELED, in order,
 * before the close callback, all from the loop. */
static void test_close_with_pending_writes(void **state)
{
    struct memt m;
    struct wreq w[3] = { { .id = 1 }, { .id = 2 }, { .id = 3 } };

    AT_UNUSED(state);
    memt_open(&m);
    for (int i = 0; i < 3; i++)
        assert_int_equal(put(m.t, &w[i], "x"), 0);
    m.t->ops->close(m.t, on_closed);
    assert_int_equal(g_ndone, 0);
    uv_run(&m.loop, UV_RUN_DEFAULT);
    twrite_expect(3, UV_ECANCELED);
    assert_int_equal(g_closed, 1);
    assert_int_equal(g_closed_after, 3);
    memt_release(&m);
}

/* Shutdown completes after the writes queued before it; writes after it
 * are refused. */
static void test_shutdown(void **state)
{
    struct memt m;
    struct node_http_transport *t;
    struct wreq w[2] = { { .id = 1 }, { .id = 2 } };

    AT_UNUSED(state);
    memt_open(&m);
    t = m.t;
    assert_int_equal(put(t, &w[0], "last"), 0);
    assert_int_equal(t->ops->shutdown(t, on_shut), 0);
    assert_int_equal(put(t, &w[1], "more"), UV_EPIPE);
    assert_int_equal(g_shut, 0);
    assert_int_equal(node_http__mem_flush(t), 1);
    assert_int_equal(g_shut, 1);
    assert_int_equal(m.out.len, 4);
    t->ops->close(t, on_closed);
    uv_run(&m.loop, UV_RUN_DEFAULT);
    assert_int_equal(g_ndone, 1);
    memt_release(&m);
}

static void on_alloc(struct node_http_transport *t, size_t hint, uv_buf_t *b)
{
    AT_UNUSED(t);
    AT_UNUSED(hint);
    *b = uv_buf_init(g_rbuf, sizeof(g_rbuf));
}

static void on_read(struct node_http_transport *t,
                    ssize_t nread,
                    const uv_buf_t *b)
{
    AT_UNUSED(t);
    if (nread > 0)
        assert_ptr_equal(b->base, g_rbuf);
    g_nread[g_reads++] = nread;
}

/* Input reaches the reader only while it reads, at most what it has room
 * for per read; EOF comes at once. */
static void test_feed_and_eof(void **state)
{
    struct memt m;
    struct node_http_transport *t;
    char peer[16];

    AT_UNUSED(state);
    memt_open(&m);
    t = m.t;
    t->ops->peer(t, peer, sizeof(peer));
    assert_string_equal(peer, "mem");
    assert_int_equal(node_http__mem_feed(t, "abc", 3), 0);
    assert_int_equal(t->ops->read_start(t, on_alloc, on_read), 0);
    assert_int_equal(node_http__mem_feed(t, "0123456789", 10), 8);
    assert_memory_equal(g_rbuf, "01234567", 8);
    assert_int_equal(node_http__mem_feed(t, "89", 2), 2);
    t->ops->read_stop(t);
    assert_int_equal(node_http__mem_feed(t, "x", 1), 0);
    node_http__mem_eof(t);
    assert_int_equal(g_reads, 3);
    assert_int_equal(g_nread[0], 8);
    assert_int_equal(g_nread[1], 2);
    assert_int_equal(g_nread[2], UV_EOF);
    assert_null(t->ops->detach(t)); /* no socket to hand over */
    t->ops->close(t, on_closed);
    uv_run(&m.loop, UV_RUN_DEFAULT);
    assert_int_equal(g_closed, 1);
    memt_release(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_order),
        cmocka_unit_test(test_close_with_pending_writes),
        cmocka_unit_test(test_shutdown),
        cmocka_unit_test(test_feed_and_eof),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
