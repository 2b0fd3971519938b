/* Unit tests of node/http/listener.c: a stop closes idle connections at
 * once and lets requests in flight finish. */
#include "common/compat.h"

#include "tests/unit/node/http/tcp_fixture.h"

static void cmd_stop2(void *arg)
{
    node_http_stop(arg, on_stopped, NULL);
}

static void test_stop_waits(void **state)
{
    struct node_http_server *s2 = NULL;
    struct cli c, idle;
    struct resp r;
    int port;

    AT_UNUSED(state);
    run_on_loop(cmd_start, &s2);
    assert_non_null(s2);
    port = node_http_port(s2);
    assert_int_equal(cli_connect(&idle, port), 0);
    assert_int_equal(cli_connect(&c, port), 0);
    assert_int_equal(send_str(&c, "GET /async HTTP/1.1\r\nHost: x\r\n\r\n"), 0);
    assert_true(wait_ptr(&g_async_req));
    run_on_loop(cmd_stop2, s2);
    assert_true(cli_closed(&idle)); /* idle connections close at once */
    usleep(100000);
    assert_int_equal(get_locked(&g_stopped), 0);
    run_on_loop(cmd_async_respond, NULL);
    assert_int_equal(read_resp(&c, &r, false), 0);
    assert_string_equal(r.body, "late");
    assert_true(r.close);
    at_free(r.body);
    for (int i = 0; i < 300 && get_locked(&g_stopped) == 0; i++)
        usleep(10000);
    assert_int_equal(get_locked(&g_stopped), 1);
    cli_close(&c);
    cli_close(&idle);
}

static void cmd_start_bad(void *arg)
{
    struct node_http_config cfg = { .host = "not-an-ip", .port = 0 };
    char errmsg[AT_ERRMSG_SIZE];
    struct node_http_server *s = NULL;
    int *rv = arg;

    *rv = node_http_start(&s, &g_loop, &cfg, handler, NULL, errmsg);
    assert_null(s);
    assert_non_null(strstr(errmsg, "not-an-ip"));
}

/* A listen address that does not parse fails at once with a message. */
static void test_bad_address(void **state)
{
    int rv = 0;

    AT_UNUSED(state);
    run_on_loop(cmd_start_bad, &rv);
    assert_int_equal(rv, AT_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_waits),
        cmocka_unit_test(test_bad_address),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
