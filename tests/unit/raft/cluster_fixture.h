/* The in-process cluster of the raft unit tests (test_cluster.c,
 * test_autopilot.c): up to NNODES meta instances on one loop, each with
 * its own raft dir and a loopback listener doing the server side of the
 * raft upgrade. Header-only: the including file defines first struct
 * tnode (idx, name, dir, peer, secret, listener, m, and its own fields),
 * NNODES, TIMEOUT, SECRET and the statics loop, nodes, root and
 * answer_old_protocol. */
#ifndef TEST_RAFT_CLUSTER_FIXTURE_H
#define TEST_RAFT_CLUSTER_FIXTURE_H

/* ---- waiting ---- */

static void run_until(bool (*done)(void *), void *arg)
{
    uint64_t deadline = uv_now(&loop) + TIMEOUT;
    while (!done(arg) && uv_now(&loop) < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(done(arg));
}

static bool flag_set(void *arg)
{
    return *(bool *)arg;
}

static void on_ms(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

static void run_ms(uint64_t ms)
{
    bool done = false;
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &done;
    uv_timer_start(&t, on_ms, ms, 0);
    run_until(flag_set, &done);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

/* ---- the peer listener (server side of the handshake) ---- */

struct conn {
    struct tnode *n;
    uv_tcp_t *tcp; /* malloc'd: libraft frees it with raft_free */
    char buf[4096];
    size_t len;
};

struct wreq {
    uv_write_t w;
    char *text;
    bool close; /* close the stream once written */
};

static void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    free(h);
    at_free(c);
}

static void on_wdone(uv_write_t *w, int status)
{
    AT_UNUSED(status);
    struct wreq *r = (struct wreq *)w;
    if (r->close)
        uv_close((uv_handle_t *)w->handle, on_conn_closed);
    at_free(r->text);
    at_free(r);
}

static void send_text(uv_stream_t *s, const char *text, bool close)
{
    struct wreq *r = at_calloc(1, sizeof(*r));
    r->text = at_strdup(text);
    r->close = close;
    uv_buf_t b = uv_buf_init(r->text, (unsigned)strlen(r->text));
    if (uv_write(&r->w, s, &b, 1, on_wdone) != 0) {
        at_free(r->text);
        at_free(r);
        if (close)
            uv_close((uv_handle_t *)s, on_conn_closed);
    }
}

static const char *header(struct conn *c,
                          const char *name,
                          char *out,
                          size_t size)
{
    size_t nl = strlen(name);
    for (char *p = c->buf; (p = strstr(p, "\r\n")) != NULL;) {
        p += 2;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t l = e != NULL ? (size_t)(e - v) : 0;
            if (l >= size)
                return NULL;
            memcpy(out, v, l);
            out[l] = '\0';
            return out;
        }
    }
    return NULL;
}

static void reject(struct conn *c)
{
    send_text((uv_stream_t *)c->tcp,
              "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json"
              "\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
              true);
    uv_read_stop((uv_stream_t *)c->tcp);
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    struct conn *c = h->data;
    AT_UNUSED(sz);
    b->base = c->buf + c->len;
    b->len = sizeof(c->buf) - 1 - c->len;
}

static void on_conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = s->data;
    AT_UNUSED(b);
    if (nread == 0)
        return;
    if (nread < 0) {
        uv_close((uv_handle_t *)c->tcp, on_conn_closed);
        return;
    }
    c->len += (size_t)nread;
    c->buf[c->len] = '\0';
    char *end = strstr(c->buf, "\r\n\r\n");
    if (end == NULL) {
        if (c->len >= sizeof(c->buf) - 1)
            reject(c);
        return;
    }
    char auth[256], idtext[32], addr[256];
    char want[256];
    snprintf(want, sizeof(want), "Bearer %s", c->n->secret);
    if (end + 4 != c->buf + c->len ||
        strncmp(c->buf, "POST /_atoll/raft HTTP/1.1\r\n", 28) != 0 ||
        header(c, "Authorization", auth, sizeof(auth)) == NULL ||
        strcmp(auth, want) != 0 ||
        header(c, "X-Atoll-Raft-Id", idtext, sizeof(idtext)) == NULL ||
        header(c, "X-Atoll-Raft-Address", addr, sizeof(addr)) == NULL ||
        c->n->m == NULL) {
        reject(c);
        return;
    }
    char hint[256];
    if (header(c, "X-Atoll-Peer-Address", hint, sizeof(hint)) != NULL)
        meta_peer_hint(c->n->m, addr, hint);
    uv_read_stop(s);
    /* a node of the first peer protocol answers without the version */
    send_text(s,
              answer_old_protocol
                  ? "HTTP/1.1 101 Switching Protocols\r\nUpgrade: "
                    "atoll-raft/1\r\nConnection: Upgrade\r\n\r\n"
                  : "HTTP/1.1 101 Switching Protocols\r\nUpgrade: "
                    "atoll-raft/1\r\nConnection: Upgrade\r\n"
                    "X-Atoll-Peer-Protocol: 2\r\n\r\n",
              false);
    uint64_t id = strtoull(idtext, NULL, 10);
    struct meta *m = c->n->m;
    at_free(c);
    meta_raft_accept(m, id, addr, s);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct tnode *n = server->data;
    if (status != 0)
        return;
    struct conn *c = at_calloc(1, sizeof(*c));
    c->n = n;
    c->tcp = malloc(sizeof(*c->tcp));
    uv_tcp_init(&loop, c->tcp);
    c->tcp->data = c;
    if (uv_accept(server, (uv_stream_t *)c->tcp) != 0 ||
        uv_read_start((uv_stream_t *)c->tcp, on_alloc, on_conn_read) != 0)
        uv_close((uv_handle_t *)c->tcp, on_conn_closed);
}

static void listener_start(struct tnode *n)
{
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    uv_tcp_init(&loop, &n->listener);
    n->listener.data = n;
    assert_int_equal(uv_tcp_bind(&n->listener, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&n->listener, 64, on_connection),
                     0);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    uv_tcp_getsockname(&n->listener, (struct sockaddr *)&ss, &len);
    snprintf(n->peer, sizeof(n->peer), "127.0.0.1:%d",
             ntohs(((struct sockaddr_in *)&ss)->sin_port));
}

/* ---- hooks ---- */

static struct tnode *by_id(uint64_t id)
{
    for (int i = 0; i < NNODES; i++) {
        struct meta_status st;
        if (nodes[i].m == NULL)
            continue;
        meta_status_get(nodes[i].m, &st);
        if (st.id == id)
            return &nodes[i];
    }
    return NULL;
}

struct hook_call {
    meta_forward_cb fcb;
    meta_index_cb icb;
    void *data;
};

/* ---- closing, the leader ---- */

static void on_node_closed(void *data)
{
    *(bool *)data = true;
}

static void node_close(int i)
{
    bool done = false;
    meta_close(nodes[i].m, on_node_closed, &done);
    nodes[i].m = NULL;
    run_until(flag_set, &done);
}

static int leader_idx(void)
{
    for (int i = 0; i < NNODES; i++) {
        struct meta_status st;
        if (nodes[i].m == NULL)
            continue;
        meta_status_get(nodes[i].m, &st);
        if (st.state == 3)
            return i;
    }
    return -1;
}

static bool have_leader(void *arg)
{
    AT_UNUSED(arg);
    return leader_idx() >= 0;
}

#endif /* TEST_RAFT_CLUSTER_FIXTURE_H */
