/* Test fixture of the peer listener tests: a one-node cluster (meta on a
 * temp dir) behind a real peer listener on 127.0.0.1, two peer clients
 * (with and without the secret), and helpers for calls, raw exchanges and
 * protobuf bodies. Header-only: each test binary includes it once. */
#ifndef TEST_PEER_FIXTURE_H
#define TEST_PEER_FIXTURE_H

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/common.h"
#include "node/cluster/peer.h"
#include "node/cluster/peer_api.h"
#include "node/http/http.h"
#include "proto/peer.h"
#include "proto/proto.h"
#include "raft/meta.h"

static uv_loop_t g_loop;

/* cmocka group setup and teardown: the loop every test runs on. */
static inline int loop_setup(void **state)
{
    AT_UNUSED(state);
    return uv_loop_init(&g_loop);
}

static inline int loop_teardown(void **state)
{
    AT_UNUSED(state);
    uv_run(&g_loop, UV_RUN_NOWAIT);
    uv_loop_close(&g_loop);
    return 0;
}

struct result {
    bool done;
    int status;
    int http;
    char *body; /* owned */
    size_t len;
};

static inline void on_result(void *data,
                             int status,
                             int http,
                             const char *body,
                             size_t len)
{
    struct result *res = data;

    res->done = true;
    res->status = status;
    res->http = http;
    res->len = len;
    res->body = body != NULL ? at_strndup(body, len) : NULL;
}

/* The call ended with status, the peer having answered http. */
static inline void expect_result(const struct result *res, int status, int http)
{
    assert_int_equal(res->status, status);
    assert_int_equal(res->http, http);
}

static inline void run_until(const bool *flag)
{
    for (int i = 0; i < 100000 && !*flag; i++)
        uv_run(&g_loop, UV_RUN_ONCE);
    assert_true(*flag);
}

struct papi {
    char dir[64];
    struct meta *m;
    struct node_http_server *srv;
    struct node_peer_api api;
    struct node_peer *peer;   /* with the secret */
    struct node_peer *nopeer; /* without */
    char addr[64];
};

static inline void papi_closed(void *data)
{
    *(bool *)data = true;
}

/* A one-node cluster, leader once this returns. */
static inline void papi_start(struct papi *p)
{
    struct meta_config mc;
    struct node_http_config hc;
    struct meta_status st;
    char errmsg[AT_ERRMSG_SIZE];

    signal(SIGPIPE, SIG_IGN);
    memset(p, 0, sizeof(*p));
    snprintf(p->dir, sizeof(p->dir), "/tmp/atoll-test-peer-XXXXXX");
    assert_non_null(mkdtemp(p->dir));
    memset(&hc, 0, sizeof(hc));
    hc.host = "127.0.0.1";
    hc.header_timeout_ms = hc.idle_timeout_ms = 5000;
    hc.body_timeout_ms = hc.write_timeout_ms = 5000;
    hc.shutdown_grace_ms = 100;
    p->api.loop = &g_loop;
    p->api.secret = "s3cret";
    p->api.raft_dir = p->dir;
    assert_int_equal(node_http_start(&p->srv, &g_loop, &hc,
                                     node_peer_api_handle, &p->api, errmsg),
                     0);
    snprintf(p->addr, sizeof(p->addr), "127.0.0.1:%d", node_http_port(p->srv));
    assert_int_equal(node_peer_new(&p->peer, &g_loop, "s3cret", NULL, errmsg),
                     0);
    assert_int_equal(node_peer_new(&p->nopeer, &g_loop, NULL, NULL, errmsg), 0);
    p->api.peer = p->peer;
    memset(&mc, 0, sizeof(mc));
    mc.dir = p->dir;
    mc.name = "solo";
    mc.address = "solo";
    mc.peer_address = p->addr;
    mc.api_address = "127.0.0.1:1";
    mc.cluster_secret = "s3cret";
    mc.target_voters = 3;
    mc.hooks = &node_peer_hooks;
    mc.hooks_data = &p->api;
    if (meta_open(&p->m, &g_loop, &mc, errmsg) != 0)
        fail_msg("meta_open: %s", errmsg);
    p->api.meta = p->m;
    for (int i = 0; i < 100000; i++) {
        meta_status_get(p->m, &st);
        if (st.state == 3)
            break;
        uv_run(&g_loop, UV_RUN_ONCE);
    }
    assert_int_equal(st.state, 3);
}

static inline void papi_stop(struct papi *p)
{
    bool a = false, b = false, c = false, d = false;
    char cmd[128];

    p->api.stopping = true;
    meta_close(p->m, papi_closed, &a);
    while (!a)
        uv_run(&g_loop, UV_RUN_ONCE);
    p->api.meta = NULL;
    node_http_stop(p->srv, papi_closed, &b);
    node_peer_close(p->peer, papi_closed, &c);
    node_peer_close(p->nopeer, papi_closed, &d);
    while (!b || !c || !d)
        uv_run(&g_loop, UV_RUN_ONCE);
    node_peer_api_release(&p->api);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", p->dir);
    assert_int_equal(system(cmd), 0);
}

static inline int port_of(const char *addr)
{
    uint64_t v = 0;
    const char *c = strrchr(addr, ':');

    assert_non_null(c);
    assert_int_equal(at_parse_u64(c + 1, strlen(c + 1), &v), 0);
    return (int)v;
}

/* A call with the peer client; res->body is the caller's to free. */
static inline void call(struct node_peer *peer,
                        const char *addr,
                        const char *method,
                        const char *path,
                        const void *body,
                        size_t len,
                        struct result *res)
{
    memset(res, 0, sizeof(*res));
    assert_int_equal(node_peer_request(peer, method, addr, path, NULL, body,
                                       len, 5000, on_result, res),
                     0);
    run_until(&res->done);
    assert_int_equal(res->status, 0);
}

/* A call that must answer HTTP http (the body is dropped). */
static inline void expect(struct node_peer *peer,
                          const char *addr,
                          const char *method,
                          const char *path,
                          const void *body,
                          size_t len,
                          int http)
{
    struct result res;

    call(peer, addr, method, path, body, len, &res);
    if (res.http != http)
        fail_msg("%s %s: HTTP %d, want %d: %s", method, path, res.http, http,
                 res.body != NULL ? res.body : "");
    at_free(res.body);
}

/* Pack m and POST it to its endpoint. */
static inline void call_msg(struct papi *p,
                            const struct proto_peer_msg *m,
                            struct result *res)
{
    char errmsg[AT_ERRMSG_SIZE];
    struct at_buf b;

    at_buf_init(&b, 0);
    assert_int_equal(proto_peer_msg_pack(m, &b, errmsg), 0);
    call(p->peer, p->addr, "POST", proto_peer_path(m->ep), b.data, b.len, res);
    at_buf_release(&b);
}

/* The PeerReply of a call's answer (released by the caller). */
static inline void reply_of(const struct result *res,
                            struct proto_peer_reply *r)
{
    char errmsg[AT_ERRMSG_SIZE] = "";

    if (proto_peer_reply_unpack(res->body, res->len, r, errmsg) != 0)
        fail_msg("no PeerReply (HTTP %d, %zu bytes): %s", res->http, res->len,
                 errmsg);
}

/* The answer is HTTP http with a PeerReply of status; frees res->body. */
static inline void expect_reply(struct result *res, int http, int status)
{
    struct proto_peer_reply r;

    assert_int_equal(res->http, http);
    reply_of(res, &r);
    assert_int_equal(r.status, status);
    proto_peer_reply_release(&r);
    at_free(res->body);
    res->body = NULL;
}

/* A packed DeleteTag of a repository that does not exist (malloc'ed). */
static inline void *packed_command(const char *request_id, size_t *len)
{
    char errmsg[AT_ERRMSG_SIZE];
    Atoll__Command c = ATOLL__COMMAND__INIT;
    Atoll__DeleteTag dt = ATOLL__DELETE_TAG__INIT;
    void *buf = NULL;

    c.version = PROTO_COMMAND_VERSION;
    c.request_id = (char *)request_id;
    c.op_case = ATOLL__COMMAND__OP_DELETE_TAG;
    c.delete_tag = &dt;
    dt.repo = (char *)"no/such";
    dt.tag = (char *)"t";
    assert_int_equal(proto_command_pack(&c, NULL, &buf, len, errmsg), 0);
    return buf;
}

/* Send raw request bytes to port and read the answer until the server
 * closes the connection or a whole answer (head and Content-Length body)
 * is in; the loop runs meanwhile. Returns the bytes read into out (NUL
 * terminated); *closed says whether the server closed. */
static inline size_t raw_exchange(int port,
                                  const char *req,
                                  char *out,
                                  size_t size,
                                  bool *closed)
{
    struct sockaddr_in a;
    size_t got = 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    *closed = false;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    for (int i = 0; i < 200000 && got + 1 < size; i++) {
        ssize_t n = recv(fd, out + got, size - got - 1, MSG_DONTWAIT);
        const char *end, *cl;
        if (n == 0) {
            *closed = true;
            break;
        }
        if (n < 0) {
            uv_run(&g_loop, UV_RUN_NOWAIT);
            continue;
        }
        got += (size_t)n;
        out[got] = '\0';
        end = strstr(out, "\r\n\r\n");
        if (end != NULL && strncmp(out, "HTTP/1.1 101 ", 13) == 0)
            break; /* the stream is someone else's now */
        cl = strcasestr(out, "\r\nContent-Length: ");
        if (end != NULL && cl != NULL && cl < end &&
            got >= (size_t)(end + 4 - out) + strtoul(cl + 18, NULL, 10)) {
            /* a little longer: a close after the answer is seen too */
            for (int j = 0; j < 50 && !*closed; j++) {
                uv_run(&g_loop, UV_RUN_NOWAIT);
                char c;
                *closed = recv(fd, &c, 1, MSG_DONTWAIT) == 0;
            }
            break;
        }
    }
    out[got] = '\0';
    close(fd);
    for (int i = 0; i < 10; i++)
        uv_run(&g_loop, UV_RUN_NOWAIT);
    return got;
}

#endif /* TEST_PEER_FIXTURE_H */
