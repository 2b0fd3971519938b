/* File bodies: sendfile(2) bursts from the loop thread with a wait for room
 * on EAGAIN, or, on a transport without sendfile, reads and writes.
 *
 * A body [file.off, file.off + file.left) is sent after the response head
 * has been written (RESP_FILE). Only the bytes before file.limit go out
 * until node_http_resp_stream_limit raises it (a file still being written):
 * at the limit the body stalls (RESP_STALLED), with the write timeout
 * running. A file that ends early closes the connection: the client sees a
 * short body, never padding. */
#include "common/compat.h"

#define AT_LOG_COMP "http"

#include <unistd.h>

#include "common/common.h"
#include "node/http/internal.h"

/* One read-and-write step of a transport without sendfile. */
#define FILE_CHUNK (64 * 1024)

static uint64_t file_avail(const struct node_http_conn *c)
{
    uint64_t avail =
        c->file.limit > c->file.off ? c->file.limit - c->file.off : 0;

    return AT_MIN(avail, c->file.left);
}

static void file_done(struct node_http_conn *c)
{
    close(c->file.fd);
    c->file.fd = -1;
    node_http__conn_resp_done(c);
}

static void file_short(struct node_http_conn *c)
{
    LOG_WARN("file body to %s: file ended %" PRIu64 " bytes early", c->peer,
             c->file.left);
    node_http__conn_close(c);
}

static void file_on_writable(struct node_http_transport *t, int status)
{
    struct node_http_conn *c = t->data;

    if (!node_http__conn_active(c) || c->resp != RESP_FILE)
        return;
    if (status < 0) {
        LOG_DEBUG("poll %s: %s", c->peer, uv_strerror(status));
        node_http__conn_close(c);
        return;
    }
    node_http__file_send(c);
}

/* Zero-copy from the file to the non-blocking socket on the loop thread; a
 * burst limit keeps one fast download from starving other connections. */
static void file_sendfile(struct node_http_conn *c)
{
    uint64_t burst = 0;
    int rv;

    while (c->file.left > 0) {
        size_t chunk = (size_t)AT_MIN(file_avail(c), SENDFILE_BURST - burst);
        ssize_t n;

        if (chunk == 0) {
            /* A growing file: wait for node_http_resp_stream_limit. */
            node_http__resp_move(c, RESP_STALLED);
            return;
        }
        n = c->t->ops->sendfile(c->t, c->file.fd, c->file.off, chunk);
        if (n > 0) {
            c->file.off += (uint64_t)n;
            c->file.left -= (uint64_t)n;
            burst += (uint64_t)n;
            node_http__conn_timer_update(c, true);
            if (burst >= SENDFILE_BURST && c->file.left > 0)
                goto wait;
            continue;
        }
        if (n == 0) {
            file_short(c);
            return;
        }
        if (n == UV_EAGAIN) {
            c->srv->sendfile_eagain++;
            goto wait;
        }
        LOG_DEBUG("sendfile to %s: %s", c->peer, uv_strerror((int)n));
        node_http__conn_close(c);
        return;
    }
    file_done(c);
    return;

wait:
    rv = c->t->ops->wait_writable(c->t, file_on_writable);
    if (rv != 0) {
        LOG_DEBUG("poll %s: %s", c->peer, uv_strerror(rv));
        node_http__conn_close(c);
    }
}

static void file_on_written(struct node_http_twrite *tw, int status)
{
    struct node_http_conn *c = node_http__write_done(tw, status);

    if (c == NULL)
        return;
    node_http__conn_timer_update(c, true);
    node_http__file_send(c);
}

/* Read the next piece of the file and write it; its completion brings the
 * next. The read is on the loop thread, as sendfile's is. */
static void file_write(struct node_http_conn *c)
{
    struct node_http_write *w;
    size_t want = (size_t)AT_MIN(file_avail(c), FILE_CHUNK);
    ssize_t n;

    if (c->file.left == 0) {
        file_done(c);
        return;
    }
    if (want == 0) {
        /* A growing file: wait for node_http_resp_stream_limit. */
        node_http__resp_move(c, RESP_STALLED);
        return;
    }
    w = node_http__write_new(c, want);
    do {
        n = pread(c->file.fd, w->data, want, (off_t)c->file.off);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        int err = errno;

        node_http__write_free(w);
        if (n == 0) {
            file_short(c);
            return;
        }
        LOG_WARN("file body to %s: read: %s", c->peer, strerror(err));
        node_http__conn_close(c);
        return;
    }
    w->len = (size_t)n;
    c->file.off += (uint64_t)n;
    c->file.left -= (uint64_t)n;
    node_http__conn_write(c, w, file_on_written);
}

/* see internal.h */
void node_http__file_send(struct node_http_conn *c)
{
    AT_ASSERT(c->resp == RESP_FILE);
    if (c->t->ops->sendfile != NULL)
        file_sendfile(c);
    else
        file_write(c);
}
