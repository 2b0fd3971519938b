/* Unit tests of node/http/recycle.c: a finished request's object is reused
 * by the next request while a server runs on the thread. */
#include "common/compat.h"

#include "tests/unit/node/http/mem_fixture.h"

static struct node_http_req *m_seen[4];
static int m_n;

static void m_handler(void *data, struct node_http_req *r)
{
    AT_UNUSED(data);
    if (m_n < (int)AT_ARRAY_SIZE(m_seen))
        m_seen[m_n++] = r;
    node_http_resp_header(r, "X-N", "%d", m_n);
    node_http_resp_send(r, "ok", 2);
}

static void test_request_reused(void **state)
{
    struct mem_fix f;

    AT_UNUSED(state);
    m_n = 0;
    mem_fix_start(&f, m_handler, NULL);
    mem_fix_feed(
        &f, "GET /a HTTP/1.1\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n");
    node_http__conn_flush(f.c);
    mem_fix_feed(&f, "GET /b HTTP/1.1\r\n\r\n");
    node_http__conn_flush(f.c);
    assert_int_equal(m_n, 2);
    /* the first went back to the free list when its response was written */
    assert_ptr_equal(m_seen[0], m_seen[1]);
    assert_int_equal(mem_fix_count(&f, "HTTP/1.1 200 OK"), 2);
    assert_non_null(strstr(mem_fix_out(&f), "X-N: 2\r\n"));
    mem_fix_stop(&f);
}

/* Two requests alive at once get two objects. */
static void test_live_requests_distinct(void **state)
{
    struct mem_fix f;
    struct mem_fix g;

    AT_UNUSED(state);
    m_n = 0;
    mem_fix_start(&f, m_handler, NULL);
    mem_fix_start(&g, m_handler, NULL);
    mem_fix_feed(&f, "GET /a HTTP/1.1\r\n\r\n");
    mem_fix_feed(&g, "GET /b HTTP/1.1\r\n\r\n");
    assert_int_equal(m_n, 2);
    assert_ptr_not_equal(m_seen[0], m_seen[1]);
    mem_fix_stop(&g);
    mem_fix_stop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_reused),
        cmocka_unit_test(test_live_requests_distinct),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
