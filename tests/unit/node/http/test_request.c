/* Unit tests of node/http/request.c: what a handler reads from a request,
 * and the references that keep it alive, over the in-memory transport. */
#include "common/compat.h"

#include "tests/unit/node/http/mem_fixture.h"

struct seen {
    enum node_http_method method;
    char method_str[16];
    char path[64];
    char query[64];
    char accept[64];
    char host[16];
    char peer[16];
    bool has_body, has_length, chunked;
    uint64_t content_length;
    bool absent_is_null;
    void *data, *context;
    struct node_http_req *kept;
};

static void record(void *data, struct node_http_req *r)
{
    struct seen *s = data;
    const char *q = node_http_req_query(r);

    s->method = node_http_req_method(r);
    snprintf(s->method_str, sizeof(s->method_str), "%s",
             node_http_req_method_str(r));
    snprintf(s->path, sizeof(s->path), "%s", node_http_req_path(r));
    snprintf(s->query, sizeof(s->query), "%s", q != NULL ? q : "(null)");
    snprintf(s->accept, sizeof(s->accept), "%s",
             node_http_req_header(r, "ACCEPT"));
    snprintf(s->host, sizeof(s->host), "%s", node_http_req_header(r, "host"));
    snprintf(s->peer, sizeof(s->peer), "%s", node_http_req_peer(r));
    s->absent_is_null = node_http_req_header(r, "x-absent") == NULL;
    s->has_body = node_http_req_has_body(r);
    s->has_length = node_http_req_has_length(r);
    s->chunked = node_http_req_chunked(r);
    s->content_length = node_http_req_content_length(r);
    node_http_req_set_data(r, s);
    node_http_req_set_context(r, &s->context);
    s->data = node_http_req_data(r);
    s->context = node_http_req_context(r);
    node_http_req_ref(r);
    s->kept = r;
}

/* A connection whose handler records the request req into s (cleared). */
static void record_one(struct mem_fix *f, struct seen *s, const char *req)
{
    memset(s, 0, sizeof(*s));
    mem_fix_start(f, record, s);
    mem_fix_feed(f, req);
}

/* Drop the request s kept, then the connection. */
static void record_done(struct mem_fix *f, struct seen *s)
{
    node_http_req_unref(s->kept);
    mem_fix_stop(f);
}

static void test_accessors(void **state)
{
    struct mem_fix f;
    struct seen s;

    AT_UNUSED(state);
    record_one(&f, &s,
               "PATCH /v2/a/b?n=1&last=x HTTP/1.1\r\nHost: h\r\n"
               "Accept: a/b\r\naccept: c/d\r\nContent-Length: 0\r\n\r\n");
    assert_non_null(s.kept);
    assert_int_equal(s.method, NODE_HTTP_PATCH);
    assert_string_equal(s.method_str, "PATCH");
    assert_string_equal(s.path, "/v2/a/b");
    assert_string_equal(s.query, "n=1&last=x");
    assert_string_equal(s.accept, "a/b, c/d");
    assert_string_equal(s.host, "h");
    assert_string_equal(s.peer, "mem");
    assert_true(s.absent_is_null);
    assert_false(s.has_body);
    assert_true(s.has_length);
    assert_false(s.chunked);
    assert_ptr_equal(s.data, &s);
    assert_ptr_equal(s.context, &s.context);
    /* held, unanswered: not done until the connection goes */
    assert_false(node_http_req_done(s.kept));
    node_http__conn_close(f.c);
    assert_true(node_http_req_done(s.kept));
    record_done(&f, &s);
}

static void test_body_kinds(void **state)
{
    struct mem_fix f;
    struct seen s;

    AT_UNUSED(state);
    record_one(&f, &s, "PUT /x HTTP/1.1\r\nContent-Length: 12\r\n\r\n");
    assert_true(s.has_body);
    assert_true(s.has_length);
    assert_int_equal(s.content_length, 12);
    assert_string_equal(s.query, "(null)");
    record_done(&f, &s);

    record_one(&f, &s,
               "POST /x? HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_int_equal(s.method, NODE_HTTP_POST);
    assert_true(s.has_body);
    assert_false(s.has_length);
    assert_true(s.chunked);
    assert_string_equal(s.query, "");
    record_done(&f, &s);

    record_one(&f, &s, "PROPFIND / HTTP/1.1\r\n\r\n");
    assert_int_equal(s.method, NODE_HTTP_OTHER);
    assert_string_equal(s.method_str, "PROPFIND");
    assert_false(s.has_body);
    assert_false(s.has_length);
    record_done(&f, &s);
}

/* The handler's reference keeps the request after its response is
 * written and the connection moved on. */
static void test_ref_outlives_response(void **state)
{
    struct mem_fix f;
    struct seen s;

    AT_UNUSED(state);
    record_one(&f, &s, "GET /one HTTP/1.1\r\n\r\n");
    node_http_resp_send(s.kept, "x", 1);
    assert_false(node_http_req_done(s.kept));
    node_http__conn_flush(f.c);
    assert_true(node_http_req_done(s.kept));
    assert_string_equal(node_http_req_path(s.kept), "/one");
    assert_int_equal(f.c->state, CONN_IDLE);
    record_done(&f, &s);
}

/* What the server's done callback saw. */
struct done_seen {
    int calls;
    struct node_http_done d;
    char user[NODE_HTTP_USER_MAX + 8];
    char path[64];
};

static void on_done(void *data,
                    const struct node_http_req *r,
                    const struct node_http_done *d)
{
    struct done_seen *ds = data;
    const char *u = node_http_req_user(r);

    ds->calls++;
    ds->d = *d;
    snprintf(ds->user, sizeof(ds->user), "%s", u != NULL ? u : "(null)");
    snprintf(ds->path, sizeof(ds->path), "%s", node_http_req_path(r));
}

/* The done callback runs once per request: after the response is written
 * (status, body bytes, the user set), or when the connection dies first. */
static void test_done_callback(void **state)
{
    struct mem_fix f;
    struct seen s;
    struct done_seen ds = { 0 };
    char longname[200];

    AT_UNUSED(state);
    record_one(&f, &s, "GET /a HTTP/1.1\r\n\r\n");
    /* installed after the first request began: it still counts */
    node_http_on_done(f.srv, on_done, &ds);
    assert_null(node_http_req_user(s.kept));
    memset(longname, 'u', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    node_http_req_set_user(s.kept, longname);
    assert_int_equal(strlen(node_http_req_user(s.kept)),
                     NODE_HTTP_USER_MAX - 1);
    node_http_req_set_user(s.kept, "alice");
    node_http_resp_status(s.kept, 201);
    node_http_resp_send(s.kept, "hello", 5);
    assert_int_equal(ds.calls, 0); /* not written yet */
    node_http__conn_flush(f.c);
    assert_int_equal(ds.calls, 1);
    assert_int_equal(ds.d.status, 201);
    assert_int_equal(ds.d.bytes, 5);
    assert_true(ds.d.complete);
    assert_string_equal(ds.user, "alice");
    assert_string_equal(ds.path, "/a");
    node_http_req_unref(s.kept);

    /* a HEAD sends no body bytes; the next request has no user */
    mem_fix_feed(&f, "HEAD /b HTTP/1.1\r\n\r\n");
    node_http_resp_send(s.kept, "hello", 5);
    node_http__conn_flush(f.c);
    assert_int_equal(ds.calls, 2);
    assert_int_equal(ds.d.bytes, 0);
    assert_string_equal(ds.user, "(null)");
    node_http_req_unref(s.kept);

    /* the client goes before an answer */
    mem_fix_feed(&f, "GET /c HTTP/1.1\r\n\r\n");
    node_http__conn_eof(f.c);
    assert_int_equal(ds.calls, 3);
    assert_false(ds.d.complete);
    assert_int_equal(ds.d.status, 0);
    assert_string_equal(ds.path, "/c");
    record_done(&f, &s);
    assert_int_equal(ds.calls, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accessors),
        cmocka_unit_test(test_body_kinds),
        cmocka_unit_test(test_ref_outlives_response),
        cmocka_unit_test(test_done_callback),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
