/* Unit tests of node/metrics_http.c and metrics_process.c: the route class
 * of API paths, the request duration histogram's text, the process_*
 * series. */
#include "common/compat.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "node/metrics.h"

static void route_is(const char *path, const char *want)
{
    assert_string_equal(node_metrics_route_name(node_metrics_route(path)),
                        want);
}

static void test_route(void **state)
{
    AT_UNUSED(state);
    route_is("/v2/", "base");
    route_is("/v2", "base");
    route_is("/v2/_catalog", "catalog");
    route_is("/v2/a/manifests/latest", "manifest");
    route_is("/v2/a/b/c/manifests/sha256:ab", "manifest");
    route_is("/v2/a/blobs/sha256:ab", "blob");
    route_is("/v2/a/blobs/uploads/", "upload");
    route_is("/v2/a/blobs/uploads", "upload");
    route_is("/v2/a/blobs/uploads/n1-abc", "upload");
    route_is("/v2/a/tags/list", "tags");
    route_is("/v2/a/referrers/sha256:ab", "referrers");
    /* a repository named like a route: only the tail decides */
    route_is("/v2/blobs/manifests/x", "manifest");
    route_is("/v2/manifests/blobs/sha256:ab", "blob");
    route_is("/v2/tags/list/tags/list", "tags");
    route_is("/v2/a/b", "other");
    route_is("/v2/x", "other");
    route_is("/_atoll/token", "token");
    route_is("/_atoll/status", "admin");
    route_is("/metrics", "admin");
    route_is("/livez", "admin");
    route_is("/", "other");
    route_is("", "other");
    route_is("/v2/manifests", "other");
}

static void test_histogram_text(void **state)
{
    static struct node_metrics_http h;
    struct at_buf b;

    AT_UNUSED(state);
    /* GET manifest: one at 0.5 ms, one at 3 s, one beyond 10 s */
    h.count[NODE_ROUTE_MANIFEST][1][0] = 1;
    h.count[NODE_ROUTE_MANIFEST][1][11] = 1;
    h.count[NODE_ROUTE_MANIFEST][1][NODE_METRICS_BUCKETS - 1] = 1;
    h.sum_micros[NODE_ROUTE_MANIFEST][1] = 13000500;
    at_buf_init(&b, 1 << 20);
    node_metrics_http_text(&h, &b);
    assert_non_null(strstr(b.data,
                           "# TYPE atoll_http_request_duration_"
                           "seconds histogram\n"));
    assert_non_null(strstr(b.data,
                           "{route=\"manifest\",method=\"GET\","
                           "le=\"0.001\"} 1\n"));
    assert_non_null(strstr(b.data,
                           "{route=\"manifest\",method=\"GET\","
                           "le=\"2.5\"} 1\n"));
    assert_non_null(strstr(b.data,
                           "{route=\"manifest\",method=\"GET\","
                           "le=\"5\"} 2\n"));
    assert_non_null(strstr(b.data,
                           "{route=\"manifest\",method=\"GET\","
                           "le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(b.data,
                           "_sum{route=\"manifest\",method=\"GET\"}"
                           " 13.000500\n"));
    assert_non_null(strstr(b.data,
                           "_count{route=\"manifest\",method=\"GET\"}"
                           " 3\n"));
    /* pairs without requests are left out */
    assert_null(strstr(b.data, "route=\"blob\""));
    at_buf_release(&b);
}

static void test_process(void **state)
{
    struct at_buf b;

    AT_UNUSED(state);
    at_buf_init(&b, 1 << 20);
    node_metrics_process_text(&b);
    assert_non_null(strstr(b.data, "\nprocess_resident_memory_bytes "));
    assert_non_null(
        strstr(b.data, "# TYPE process_cpu_seconds_total counter\n"));
    assert_non_null(strstr(b.data, "\nprocess_open_fds "));
    assert_non_null(strstr(b.data, "\nprocess_max_fds "));
    assert_non_null(strstr(b.data, "\nprocess_start_time_seconds 1"));
    at_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_route),
        cmocka_unit_test(test_histogram_text),
        cmocka_unit_test(test_process),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
