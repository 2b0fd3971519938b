/* Unit tests of node/access_log.c: which query parameters an access line may
 * carry, and the line itself over an in-memory connection. */
#include "common/compat.h"

#include "node/access_log.h"
#include "tests/unit/node/http/mem_fixture.h"

static void query_is(const char *path, const char *q, const char *want)
{
    char out[64];

    node_access_query(path, q, out, sizeof(out));
    assert_string_equal(out, want);
}

static void test_query_filter(void **state)
{
    char small[8];

    AT_UNUSED(state);
    query_is("/v2/a/tags/list", "n=10&last=x", "n=10&last=x");
    query_is("/v2/a/blobs/uploads/", "mount=sha256:1&from=b&password=p",
             "mount=sha256:1&from=b");
    query_is("/v2/a/blobs/uploads/u", "digest=sha256:2&token=t&&n",
             "digest=sha256:2&n");
    query_is("/v2/a", "token=x&access_token=y&nn=1", "");
    /* outside /v2/ nothing: a token endpoint's query may carry secrets */
    query_is("/token", "account=a&n=1", "");
    query_is("/_atoll/users", "n=1", "");
    query_is("/v2/", NULL, "");
    /* a parameter that does not fit is left out whole */
    node_access_query("/v2/x", "n=1&last=abcdefgh", small, sizeof(small));
    assert_string_equal(small, "n=1");
}

static void answer(void *data, struct node_http_req *r)
{
    AT_UNUSED(data);
    node_http_req_set_user(r, "bob");
    node_http_resp_send(r, "abc", 3);
}

static void test_line(void **state)
{
    struct mem_fix f;
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);

    AT_UNUSED(state);
    mem_fix_start(&f, answer, NULL);
    at_log_configure("error,access:info");
    at_log_set_stream(out);
    node_http_on_done(f.srv, node_access_log, NULL);
    mem_fix_feed(&f,
                 "GET /v2/r/tags/list?n=2&password=hunter2 HTTP/1.1\r\n"
                 "Authorization: Basic Ym9iOmh1bnRlcjI=\r\n"
                 "X-Atoll-Request-Id: r-1\r\n\r\n");
    node_http__conn_flush(f.c);
    mem_fix_stop(&f);
    fflush(out);
    at_log_set_stream(NULL);
    fclose(out);
    assert_non_null(strstr(buf, " access access_log.c:"));
    assert_non_null(strstr(buf,
                           " request method=GET path=/v2/r/tags/list "
                           "query=\"n=2\" status=200 bytes=3 user=bob "
                           "duration_ms="));
    assert_non_null(strstr(buf, " request_id=r-1 remote=mem\n"));
    assert_null(strstr(buf, "hunter2"));
    assert_null(strstr(buf, "Ym9i"));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_filter),
        cmocka_unit_test(test_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
