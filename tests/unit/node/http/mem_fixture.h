/* Shared by the HTTP unit tests without sockets: a server and one
 * connection over the in-memory transport, driven from the test's thread
 * (feed input, flush writes, read what was written). */
#ifndef TESTS_NODE_HTTP_MEM_FIXTURE_H
#define TESTS_NODE_HTTP_MEM_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "common/common.h"
#include "node/http/http.h"
#include "node/http/internal.h"

#define MEM_UNUSED __attribute__((unused))

struct mem_fix {
    uv_loop_t loop;
    struct node_http_server *srv;
    struct node_http_conn *c;
    struct at_buf out; /* everything the connection wrote */
};

static MEM_UNUSED void mem_fix_start(struct mem_fix *f,
                                     node_http_handler handler,
                                     void *data)
{
    struct node_http_config cfg = { 0 };

    at_log_configure(getenv("AT_LOG") != NULL ? getenv("AT_LOG") : "error");
    assert_int_equal(uv_loop_init(&f->loop), 0);
    at_buf_init(&f->out, 0);
    f->srv = node_http__server_new_mem(&f->loop, &cfg, handler, data);
    f->c = node_http__conn_new_mem(f->srv, &f->out);
}

/* Feed all of s, as far as the connection reads; returns the bytes taken. */
static MEM_UNUSED size_t mem_fix_feed(struct mem_fix *f, const char *s)
{
    size_t n = strlen(s), off = 0, k;

    while (off < n) {
        k = node_http__conn_feed(f->c, s + off, n - off);
        if (k == 0)
            break;
        off += k;
    }
    return off;
}

/* The output so far as a string (never NULL). */
static MEM_UNUSED const char *mem_fix_out(struct mem_fix *f)
{
    if (f->out.data == NULL)
        at_buf_puts(&f->out, "");
    return f->out.data;
}

/* How many times needle occurs in the output. */
static MEM_UNUSED int mem_fix_count(struct mem_fix *f, const char *needle)
{
    const char *p = mem_fix_out(f);
    int n = 0;

    while ((p = strstr(p, needle)) != NULL) {
        n++;
        p += strlen(needle);
    }
    return n;
}

/* Close the connection if it is open, stop the server and let the loop
 * free everything. */
static MEM_UNUSED void mem_fix_stop(struct mem_fix *f)
{
    if (!node_http__conn_closed(f->c))
        node_http__conn_close(f->c);
    node_http_stop(f->srv, NULL, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    at_buf_release(&f->out);
}

/* ---- body callbacks a test's handler may use ---- */

/* What the callbacks below saw since mem_seen_reset. */
struct mem_seen {
    int aborts;     /* abort callbacks */
    int ends;       /* end-of-body callbacks */
    size_t bytes;   /* body bytes delivered */
    size_t direct;  /* of those, delivered in mem (mem_on_buf) */
    char mem[8192]; /* the handler's memory that mem_on_buf offers */
};
static MEM_UNUSED struct mem_seen mem_seen;

static MEM_UNUSED void mem_seen_reset(void)
{
    mem_seen.aborts = mem_seen.ends = 0;
    mem_seen.bytes = mem_seen.direct = 0;
}

static MEM_UNUSED void mem_on_abort(struct node_http_req *r)
{
    AT_UNUSED(r);
    mem_seen.aborts++;
}

/* A node_http_body_buf_cb offering mem_seen.mem. */
static MEM_UNUSED bool mem_on_buf(struct node_http_req *r,
                                  size_t want,
                                  char **p,
                                  size_t *n)
{
    AT_UNUSED(r);
    *p = mem_seen.mem;
    *n = AT_MIN(want, sizeof(mem_seen.mem));
    return true;
}

static MEM_UNUSED int mem_on_body(struct node_http_req *r,
                                  const char *p,
                                  size_t n)
{
    AT_UNUSED(r);
    if (p >= mem_seen.mem && p < mem_seen.mem + sizeof(mem_seen.mem))
        mem_seen.direct += n;
    mem_seen.bytes += n;
    return 0;
}

/* The end of the body: answers with no body and the bytes seen in an
 * X-Bytes header. */
static MEM_UNUSED void mem_on_end(struct node_http_req *r)
{
    mem_seen.ends++;
    node_http_resp_header(r, "X-Bytes", "%zu", mem_seen.bytes);
    node_http_resp_send(r, NULL, 0);
}

#endif /* TESTS_NODE_HTTP_MEM_FIXTURE_H */
