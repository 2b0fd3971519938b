/* File bodies: sendfile(2) bursts from the loop thread, poll on EAGAIN. */
#include "common/compat.h"

#define AT_LOG_COMP "http"

#include <fcntl.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include "common/common.h"
#include "node/http/internal.h"

static void conn_on_poll(uv_poll_t *h, int status, int events)
{
    struct node_http_conn *c = h->data;

    AT_UNUSED(events);
    if (c->state != CS_ACTIVE || c->resp != RS_SENDFILE)
        return;
    uv_poll_stop(&c->poll);
    if (status < 0) {
        LOG_DEBUG("poll %s: %s", c->peer, uv_strerror(status));
        node_http__conn_close(c);
        return;
    }
    node_http__file_send(c);
}

static int conn_wait_writable(struct node_http_conn *c, int sock)
{
    int rv;

    if (!c->poll_init) {
        c->dup_fd = fcntl(sock, F_DUPFD_CLOEXEC, 0);
        if (c->dup_fd < 0)
            return -errno;
        rv = uv_poll_init(c->srv->loop, &c->poll, c->dup_fd);
        if (rv != 0) {
            close(c->dup_fd);
            c->dup_fd = -1;
            return rv;
        }
        c->poll.data = c;
        c->poll_init = true;
        c->handles++;
    }
    return uv_poll_start(&c->poll, UV_WRITABLE, conn_on_poll);
}

static void conn_sendfile_mem(struct node_http_conn *c)
{
    char tmp[16384];

    while (c->sf_left > 0) {
        uint64_t avail = c->sf_limit > c->sf_off ? c->sf_limit - c->sf_off : 0;
        ssize_t n;

        if (avail == 0) {
            c->sf_stalled = true;
            return;
        }
        n = pread(c->sf_fd, tmp,
                  (size_t)AT_MIN(sizeof(tmp), AT_MIN(c->sf_left, avail)),
                  (off_t)c->sf_off);
        if (n <= 0) {
            node_http__conn_close(c);
            return;
        }
        at_buf_append(c->mem_out, tmp, (size_t)n);
        c->sf_off += (uint64_t)n;
        c->sf_left -= (uint64_t)n;
    }
    close(c->sf_fd);
    c->sf_fd = -1;
    node_http__conn_resp_done(c);
}

/* see internal.h */
void node_http__file_send(struct node_http_conn *c)
{
    uv_os_fd_t sock;
    uint64_t burst = 0;
    int rv;

    if (c->mem) {
        conn_sendfile_mem(c);
        return;
    }
    if (uv_fileno((uv_handle_t *)c->tcp, &sock) != 0) {
        node_http__conn_close(c);
        return;
    }
    while (c->sf_left > 0) {
        off_t off = (off_t)c->sf_off;
        uint64_t avail = c->sf_limit > c->sf_off ? c->sf_limit - c->sf_off : 0;
        size_t chunk =
            (size_t)AT_MIN(AT_MIN(c->sf_left, avail), SENDFILE_BURST - burst);
        ssize_t n;

        if (chunk == 0) {
            /* A growing file: wait for node_http_resp_stream_limit. */
            c->sf_stalled = true;
            return;
        }
        n = sendfile(sock, c->sf_fd, &off, chunk);

        if (n > 0) {
            c->sf_off += (uint64_t)n;
            c->sf_left -= (uint64_t)n;
            burst += (uint64_t)n;
            node_http__conn_timer_update(c, true);
            if (burst >= SENDFILE_BURST && c->sf_left > 0)
                goto wait;
            continue;
        }
        if (n == 0) {
            /* The file shrank: never pad, the client sees a short body. */
            LOG_WARN("sendfile to %s: file ended %" PRIu64 " bytes early",
                     c->peer, c->sf_left);
            node_http__conn_close(c);
            return;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            c->srv->sendfile_eagain++;
            goto wait;
        }
        LOG_DEBUG("sendfile to %s: %s", c->peer, strerror(errno));
        node_http__conn_close(c);
        return;
    }
    close(c->sf_fd);
    c->sf_fd = -1;
    node_http__conn_resp_done(c);
    return;

wait:
    rv = conn_wait_writable(c, sock);
    if (rv != 0) {
        LOG_DEBUG("poll %s: %s", c->peer, uv_strerror(rv));
        node_http__conn_close(c);
    }
}
