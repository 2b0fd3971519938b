/* Shared by the unit tests of one transport on its own (test_mem,
 * test_tcp): numbered writes and the callbacks that record, in order, how
 * each write and the close completed. */
#ifndef TESTS_NODE_HTTP_TRANSPORT_FIXTURE_H
#define TESTS_NODE_HTTP_TRANSPORT_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "common/common.h"
#include "node/http/transport.h"

/* A write the test numbers, to see the order in which writes complete. */
struct wreq {
    struct node_http_twrite tw;
    int id;
};

static int g_done[16]; /* write ids in completion order */
static int g_status[16];
static int g_ndone;
static int g_closed;
static int g_closed_after; /* writes done when the close callback ran */

/* Forget the writes and the close recorded so far. */
static inline void twrite_reset(void)
{
    g_ndone = g_closed = 0;
    g_closed_after = -1;
}

/* A node_http_twrite_cb recording w's id and status. */
static inline void on_written(struct node_http_twrite *tw, int status)
{
    struct wreq *w = AT_CONTAINER_OF(tw, struct wreq, tw);

    g_done[g_ndone] = w->id;
    g_status[g_ndone] = status;
    g_ndone++;
}

/* A close callback recording how many writes completed before it. */
static inline void on_closed(struct node_http_transport *t)
{
    AT_UNUSED(t);
    g_closed++;
    g_closed_after = g_ndone;
}

/* The writes 1..n completed, in order, each with status. */
static inline void twrite_expect(int n, int status)
{
    assert_int_equal(g_ndone, n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(g_done[i], i + 1);
        assert_int_equal(g_status[i], status);
    }
}

#endif /* TESTS_NODE_HTTP_TRANSPORT_FIXTURE_H */
