/* libFuzzer target: arbitrary bytes through the real connection code. */
#include "common/compat.h"

#include <sys/mman.h>
#include <unistd.h>

#include "common/common.h"
#include "node/http/http.h"
#include "node/http/internal.h"

/* Input: byte 0 picks how the input is split, the rest is fed to one
 * socketless connection. The handler answers at once, reads the body and
 * answers at the end (into its own memory or not), pauses on every body
 * piece, answers later, sends a file (whole, or growing), or upgrades. */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct node_http_req *g_later;
static struct node_http_req *g_paused;
static struct node_http_req *g_stream; /* a growing file's request */
static size_t g_body_bytes;
static int g_file = -1; /* a memfd of FILE_SIZE bytes */
static char g_direct[4096];

#define FILE_SIZE (70 * 1024)

static bool direct_buf(struct node_http_req *r,
                       size_t want,
                       char **p,
                       size_t *n)
{
    AT_UNUSED(r);
    *p = g_direct;
    *n = AT_MIN(want, sizeof(g_direct));
    return true;
}

static void upgraded(void *data, uv_stream_t *stream)
{
    AT_UNUSED(data);
    AT_ASSERT(stream == NULL); /* no socket to hand over */
}

static void file_answer(struct node_http_req *r, char k)
{
    int fd = dup(g_file);

    AT_ASSERT(fd >= 0);
    if (k == 's' && g_stream == NULL) {
        node_http_req_ref(r);
        g_stream = r;
        node_http_resp_stream_file(r, fd, FILE_SIZE, FILE_SIZE / 3);
        return;
    }
    node_http_resp_send_file(r, fd, 100, FILE_SIZE - 100);
}

static int body_cb(struct node_http_req *r, const char *p, size_t n)
{
    AT_UNUSED(p);
    g_body_bytes += n;
    if (node_http_req_path(r)[1] != 'p')
        return 0;
    if (g_paused == NULL) {
        node_http_req_ref(r);
        g_paused = r;
    }
    return NODE_HTTP_PAUSE;
}

static void end_cb(struct node_http_req *r)
{
    node_http_resp_header(r, "X-Len", "%zu", g_body_bytes);
    node_http_resp_send(r, "done", 4);
}

static void abort_cb(struct node_http_req *r)
{
    if (r == g_later) {
        g_later = NULL;
        node_http_req_unref(r);
    }
}

static void handler(void *data, struct node_http_req *r)
{
    const char *path = node_http_req_path(r);

    AT_UNUSED(data);
    (void)node_http_req_header(r, "host");
    (void)node_http_req_query(r);
    char k = path[0] == '/' ? path[1] : 0;

    if (k == 'b' || k == 'p' || k == 'd') {
        node_http_req_on_abort(r, abort_cb);
        if (k == 'd')
            node_http_req_body_buf(r, direct_buf);
        node_http_req_read_body(r, body_cb, end_cb);
        return;
    }
    if (k == 'f' || k == 's') {
        file_answer(r, k);
        return;
    }
    if (k == 'u') {
        node_http_req_upgrade(r, "test/1", upgraded, NULL);
        if (!node_http_req_done(r) && node_http_req_has_body(r))
            node_http_resp_send(r, NULL, 0);
        return;
    }
    if (k == 'l' && g_later == NULL) {
        node_http_req_ref(r);
        node_http_req_on_abort(r, abort_cb);
        g_later = r;
        return;
    }
    node_http_resp_status(r, k == 'n' ? 404 : 200);
    node_http_resp_header(r, "X-Path", "%s", path);
    node_http_resp_send(r, "ok", 2);
}

static void settle(struct node_http_conn *c)
{
    /* Let pending work run: writes complete, late answers, resumes. */
    for (int i = 0; i < 64 && !node_http__conn_closed(c); i++) {
        int n = node_http__conn_flush(c);
        if (g_later != NULL) {
            struct node_http_req *r = g_later;
            g_later = NULL;
            node_http_resp_send(r, "late", 4);
            node_http_req_unref(r);
            n++;
        }
        if (g_paused != NULL) {
            struct node_http_req *r = g_paused;
            g_paused = NULL;
            node_http_req_resume(r);
            node_http_req_unref(r);
            n++;
        }
        if (g_stream != NULL) {
            struct node_http_req *r = g_stream;
            g_stream = NULL;
            node_http_resp_stream_limit(r, FILE_SIZE);
            node_http_req_unref(r);
            n++;
        }
        if (n == 0)
            break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uv_loop_t loop;
    static bool ready;
    struct node_http_config cfg = { 0 };
    struct node_http_server *s;
    struct node_http_conn *c;
    struct at_buf out;
    size_t off = 0;
    unsigned split;

    if (!ready) {
        char buf[FILE_SIZE];

        uv_loop_init(&loop);
        at_log_configure("off");
        for (size_t i = 0; i < sizeof(buf); i++)
            buf[i] = (char)(i * 7);
        g_file = memfd_create("fuzz_http", MFD_CLOEXEC);
        AT_ASSERT(g_file >= 0);
        AT_ASSERT(write(g_file, buf, sizeof(buf)) == (ssize_t)sizeof(buf));
        ready = true;
    }
    if (size == 0)
        return 0;
    split = data[0];
    data++;
    size--;
    g_body_bytes = 0;
    g_paused = NULL;
    at_buf_init(&out, 1 << 20);
    s = node_http__server_new_mem(&loop, &cfg, handler, NULL);
    c = node_http__conn_new_mem(s, &out);
    while (off < size && !node_http__conn_closed(c)) {
        size_t piece = split == 0 ? size - off : 1 + (data[off] % split);
        size_t n;

        piece = AT_MIN(piece, size - off);
        n = node_http__conn_feed(c, (const char *)data + off, piece);
        off += n;
        settle(c);
        if (n == 0) {
            /* Not reading: a paused body or a finished close. */
            if (node_http__conn_closed(c))
                break;
            if (node_http__conn_flush(c) == 0 && g_later == NULL &&
                g_paused == NULL && g_stream == NULL)
                break;
        }
    }
    if (!node_http__conn_closed(c)) {
        if (split & 1)
            node_http__conn_eof(c);
        else
            node_http__conn_close(c);
    }
    node_http_stop(s, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (g_later != NULL) {
        node_http_req_unref(g_later);
        g_later = NULL;
    }
    if (g_paused != NULL) {
        node_http_req_unref(g_paused);
        g_paused = NULL;
    }
    if (g_stream != NULL) {
        node_http_req_unref(g_stream);
        g_stream = NULL;
    }
    at_buf_release(&out);
    return 0;
}
