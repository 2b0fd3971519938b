/* Unit tests of node/webhook.c: the signature, the URL check, and a
 * queue that drops its oldest while a receiver cannot be reached. */
#include "common/compat.h"

#include <setjmp.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "common/common.h"
#include "node/webhook.h"

/* RFC 4231, test case 2 */
static void test_sign(void **state)
{
    char sig[NODE_WEBHOOK_SIGNATURE_SIZE];
    const char *data = "what do ya want for nothing?";
    (void)state;
    node_webhook_sign("Jefe", data, strlen(data), sig);
    assert_string_equal(sig,
                        "sha256=5bdcc146bf60754e6a042426089575c7"
                        "5a003f089d2739839dec58b964ec3843");
}

static void test_bad_url(void **state)
{
    struct node_webhook *w = NULL;
    char errmsg[AT_ERRMSG_SIZE] = "";
    struct node_webhook_opts o = { .url = "ftp://x/",
                                   .queue_max = 4,
                                   .timeout_ms = 1000 };
    (void)state;
    assert_int_equal(node_webhook_new(&w, &o, errmsg), AT_EINVAL);
    assert_null(w);
    assert_non_null(strstr(errmsg, "http://"));
}

/* Nothing listens on port 1 of 127.0.0.1: every attempt fails at once,
 * the first event is retried (after 0.5 s), and the queue behind it
 * keeps the newest queue_max. */
static void test_queue_drops_oldest(void **state)
{
    struct node_webhook *w = NULL;
    struct node_webhook_stats st;
    char errmsg[AT_ERRMSG_SIZE] = "";
    struct node_webhook_opts o = { .url = "http://127.0.0.1:1/hook",
                                   .secret = "k",
                                   .queue_max = 3,
                                   .timeout_ms = 1000 };
    (void)state;
    assert_int_equal(node_webhook_new(&w, &o, errmsg), 0);
    node_webhook_send(w, "{\"n\":0}", 7, 1);
    /* the thread takes the first one: it is in flight, not waiting */
    for (int i = 0; i < 200; i++) {
        node_webhook_stats(w, &st);
        if (st.retries > 0)
            break;
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    assert_true(st.retries > 0);
    for (int i = 1; i <= 10; i++)
        node_webhook_send(w, "{\"n\":1}", 7, (uint64_t)i + 1);
    node_webhook_stats(w, &st);
    assert_int_equal(st.dropped, 7); /* 10 queued behind, 3 kept */
    assert_int_equal(st.queued, 4);  /* and the one in flight */
    assert_int_equal(st.sent, 0);
    assert_int_equal(st.done_seq, 0); /* nothing done with yet */
    assert_int_equal(st.last_seq, 11);
    node_webhook_free(w); /* returns without waiting out the backoff */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign),
        cmocka_unit_test(test_bad_url),
        cmocka_unit_test(test_queue_drops_oldest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
