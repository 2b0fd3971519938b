/* Unit tests of node/http/push.c: a body pushed piece by piece over the
 * in-memory transport: order, the drain callback, completion and
 * keep-alive, pushes past the length, an abort mid-body, HEAD. */
#include "common/compat.h"

#include "tests/unit/node/http/mem_fixture.h"

#define P_LEN 10000

static struct node_http_req *p_req; /* the pushed response's request */
static int p_drains;

static void p_on_drain(struct node_http_req *r)
{
    assert_ptr_equal(r, p_req);
    p_drains++;
}

static void p_handler(void *data, struct node_http_req *r)
{
    AT_UNUSED(data);
    node_http_req_ref(r);
    p_req = r;
    node_http_resp_status(r, 200);
    node_http_resp_header(r, "X-Relay", "yes");
    node_http_resp_push_start(r, P_LEN, p_on_drain);
}

static void p_reset(void)
{
    p_req = NULL;
    p_drains = 0;
}

/* The body after the head ("" when none yet). */
static const char *p_body(struct mem_fix *f)
{
    const char *b = strstr(mem_fix_out(f), "\r\n\r\n");

    assert_non_null(b);
    return b + 4;
}

static void flush_all(struct mem_fix *f)
{
    while (node_http__conn_flush(f->c) > 0)
        ;
}

/* Pieces go out in order; the queue empties on each flush (drain), the
 * last write completes the response and the connection serves the next
 * request. */
static void test_push_in_pieces(void **state)
{
    struct mem_fix f;
    char piece[2500];
    size_t unwritten = 99;

    AT_UNUSED(state);
    p_reset();
    mem_fix_start(&f, p_handler, NULL);
    mem_fix_feed(&f, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_non_null(p_req);
    assert_int_equal(f.c->resp, RESP_PUSH);
    assert_non_null(strstr(mem_fix_out(&f), "Content-Length: 10000\r\n"));
    assert_non_null(strstr(mem_fix_out(&f), "X-Relay: yes\r\n"));
    for (int i = 0; i < 4; i++) {
        memset(piece, 'a' + i, sizeof(piece));
        assert_int_equal(
            node_http_resp_push(p_req, piece, sizeof(piece), &unwritten), 0);
        assert_int_equal(unwritten, sizeof(piece));
        assert_false(node_http_req_done(p_req));
        flush_all(&f);
        assert_int_equal(strlen(p_body(&f)), (size_t)(i + 1) * 2500);
        assert_int_equal(p_body(&f)[i * 2500], 'a' + i);
        assert_int_equal(p_drains, i < 3 ? i + 1 : 3); /* none at the end */
    }
    assert_true(node_http_req_done(p_req));
    assert_int_equal(f.c->state, CONN_IDLE);
    assert_int_equal(f.c->resp, RESP_NONE);
    assert_int_equal(node_http_resp_push(p_req, "x", 1, &unwritten),
                     AT_ESHUTDOWN);
    node_http_req_unref(p_req);
    p_reset();
    /* keep-alive: the next request gets its own pushed response */
    mem_fix_feed(&f, "GET /c HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_non_null(p_req);
    assert_int_equal(f.c->resp, RESP_PUSH);
    node_http_req_unref(p_req);
    mem_fix_stop(&f);
}

/* Bytes past the length are refused, and nothing of them goes out;
 * several pushes may wait unwritten together. */
static void test_push_past_length(void **state)
{
    struct mem_fix f;
    static char big[P_LEN + 1];
    size_t unwritten = 0;

    AT_UNUSED(state);
    p_reset();
    memset(big, 'z', sizeof(big));
    mem_fix_start(&f, p_handler, NULL);
    mem_fix_feed(&f, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(node_http_resp_push(p_req, big, sizeof(big), &unwritten),
                     AT_ETOOBIG);
    assert_int_equal(node_http_resp_push(p_req, big, 6000, &unwritten), 0);
    assert_int_equal(node_http_resp_push(p_req, big, 3000, &unwritten), 0);
    assert_int_equal(unwritten, 9000);
    assert_int_equal(node_http_resp_push(p_req, big, 1001, &unwritten),
                     AT_ETOOBIG);
    assert_int_equal(node_http_resp_push(p_req, big, 1000, &unwritten), 0);
    flush_all(&f);
    assert_int_equal(strlen(p_body(&f)), P_LEN);
    assert_int_equal(p_drains, 0); /* the queue emptied only at the end */
    assert_true(node_http_req_done(p_req));
    node_http_req_unref(p_req);
    mem_fix_stop(&f);
}

static int p_aborts;
static void p_on_abort(struct node_http_req *r)
{
    AT_UNUSED(r);
    p_aborts++;
}

/* A handler that gives up mid-body closes the connection: the client has
 * a short body; further pushes are refused. */
static void test_push_abort(void **state)
{
    struct mem_fix f;
    size_t unwritten;

    AT_UNUSED(state);
    p_reset();
    p_aborts = 0;
    mem_fix_start(&f, p_handler, NULL);
    mem_fix_feed(&f, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    node_http_req_on_abort(p_req, p_on_abort);
    assert_int_equal(node_http_resp_push(p_req, "0123456789", 10, &unwritten),
                     0);
    flush_all(&f);
    node_http_resp_abort(p_req);
    assert_true(node_http__conn_closed(f.c));
    assert_int_equal(p_aborts, 1);
    assert_int_equal(strlen(p_body(&f)), 10);
    assert_int_equal(node_http_resp_push(p_req, "x", 1, &unwritten),
                     AT_ESHUTDOWN);
    node_http_req_unref(p_req);
    mem_fix_stop(&f);
}

/* HEAD: the head with the length, no body, complete at once. */
static void test_push_head(void **state)
{
    struct mem_fix f;
    size_t unwritten;

    AT_UNUSED(state);
    p_reset();
    mem_fix_start(&f, p_handler, NULL);
    mem_fix_feed(&f, "HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(node_http_resp_push(p_req, "x", 1, &unwritten),
                     AT_ESHUTDOWN);
    flush_all(&f);
    assert_non_null(strstr(mem_fix_out(&f), "Content-Length: 10000\r\n"));
    assert_string_equal(p_body(&f), "");
    assert_true(node_http_req_done(p_req));
    assert_int_equal(f.c->state, CONN_IDLE);
    node_http_req_unref(p_req);
    mem_fix_stop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_in_pieces),
        cmocka_unit_test(test_push_past_length),
        cmocka_unit_test(test_push_abort),
        cmocka_unit_test(test_push_head),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
