/* Client subcommands: a small blocking HTTP/1.1 GET to a node's admin API. */
#include "common/compat.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/common.h"
#include "node/cli.h"

#define REPLY_MAX (16 * 1024 * 1024)

/* GET path from host:port; the body goes to *body (caller frees). Returns
 * the HTTP status or a negative AT_E* code. */
static int http_get(const char *addr, const char *path, char **body)
{
    const char *colon = strrchr(addr, ':');
    struct addrinfo hints;
    struct addrinfo *res = NULL;
    struct at_buf b;
    char *host;
    char req[512];
    char chunk[16384];
    int fd = -1;
    int status = AT_EIO;
    ssize_t n;
    char *sep;

    if (colon == NULL)
        return AT_EINVAL;
    host = at_strndup(addr, (size_t)(colon - addr));
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0) {
        free(host);
        return AT_EINVAL;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0)
        goto out;
    snprintf(req, sizeof(req),
             "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path,
             addr);
    if (write(fd, req, strlen(req)) != (ssize_t)strlen(req))
        goto out;
    at_buf_init(&b, REPLY_MAX);
    while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
        if (at_buf_append(&b, chunk, (size_t)n) != 0)
            break;
    }
    if (b.len > 12 && strncmp(b.data, "HTTP/1.", 7) == 0) {
        status = (b.data[9] - '0') * 100 + (b.data[10] - '0') * 10 +
                 (b.data[11] - '0');
        sep = strstr(b.data, "\r\n\r\n");
        *body = at_strdup(sep != NULL ? sep + 4 : "");
    } else {
        status = AT_EPROTO;
    }
    at_buf_release(&b);
out:
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    free(host);
    return status;
}

/* see cli.h */
int node_cli_status(int argc, char **argv)
{
    const char *addr = getenv("ATOLL_ADDR");
    char *body = NULL;
    int status;

    if (addr == NULL)
        addr = "127.0.0.1:5000";
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--addr") == 0 && i + 1 < argc) {
            addr = argv[++i];
        } else if (strncmp(argv[i], "--addr=", 7) == 0) {
            addr = argv[i] + 7;
        } else {
            fprintf(stderr, "usage: atoll status [--addr HOST:PORT]\n");
            return 2;
        }
    }
    status = http_get(addr, "/_atoll/status", &body);
    if (status != 200) {
        fprintf(stderr, "atoll status: cannot reach '%s': %s\n", addr,
                status < 0 ? at_strerror(status) : "unexpected HTTP status");
        free(body);
        return 1;
    }
    fputs(body, stdout);
    free(body);
    return 0;
}
