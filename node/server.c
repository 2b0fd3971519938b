/* The node daemon's wiring: data dir lock, storage, metadata, HTTP.
 *
 * Start order: lock <data_dir>/LOCK, storage_open (blobs, uploads), meta_open
 * (raft log in raft_dir), HTTP listener last, so nothing is served before
 * the state is loaded. Stop order is the reverse: HTTP first (in-flight
 * requests finish, bounded), then raft, then storage. */
#define AT_LOG_COMP "node"
#include "common/compat.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node/api.h"
#include "node/server.h"

struct node_server {
    uv_loop_t *loop;               /* borrowed */
    const struct node_config *cfg; /* borrowed */
    int lock_fd;
    struct storage store;
    bool store_open;
    struct meta *meta;
    struct node_http_server *http;
    struct node_api api;
    char *name;     /* owned */
    char *raft_dir; /* owned */
    void (*stop_cb)(void *data);
    void *stop_data;
};

static int mkdir_p(const char *path)
{
    char *tmp = at_strdup(path);
    int rv = 0;

    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            rv = -errno;
        *p = '/';
    }
    if (rv == 0 && mkdir(tmp, 0755) != 0 && errno != EEXIST)
        rv = -errno;
    free(tmp);
    return rv;
}

static int split_listen(const char *listen, char **host, int *port)
{
    const char *colon = strrchr(listen, ':');
    uint64_t p;

    if (colon == NULL || colon == listen ||
        at_parse_u64(colon + 1, strlen(colon + 1), &p) != 0 || p > 65535)
        return AT_EINVAL;
    *host = at_strndup(listen, (size_t)(colon - listen));
    *port = (int)p;
    return 0;
}

static void server_free(struct node_server *s)
{
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s->name);
    free(s->raft_dir);
    free(s);
}

/* see server.h */
int node_server_start(struct node_server **out,
                      uv_loop_t *loop,
                      const struct node_config *cfg,
                      char *errmsg)
{
    struct node_server *s = at_calloc(1, sizeof(*s));
    struct storage_config scfg;
    struct meta_config mcfg;
    struct node_http_config hcfg;
    char hostname[256];
    char *lock_path = NULL;
    char *host = NULL;
    int port = 0;
    int rv;

    s->loop = loop;
    s->cfg = cfg;
    s->lock_fd = -1;
    if (cfg->name != NULL && cfg->name[0] != '\0') {
        s->name = at_strdup(cfg->name);
    } else {
        if (gethostname(hostname, sizeof(hostname)) != 0)
            snprintf(hostname, sizeof(hostname), "atoll");
        hostname[sizeof(hostname) - 1] = '\0';
        s->name = at_strdup(hostname);
    }
    if (split_listen(cfg->listen, &host, &port) != 0) {
        at_errmsg_printf(errmsg, "invalid listen address '%s'", cfg->listen);
        rv = AT_EINVAL;
        goto err;
    }
    rv = mkdir_p(cfg->data_dir);
    if (rv != 0) {
        at_errmsg_printf(errmsg, "create data dir '%s': %s", cfg->data_dir,
                         strerror(-rv));
        rv = AT_EIO;
        goto err;
    }
    /* One process per data dir. */
    lock_path = at_asprintf("%s/LOCK", cfg->data_dir);
    s->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        at_errmsg_printf(errmsg, "lock '%s': %s (is another atoll running?)",
                         lock_path, strerror(errno));
        rv = AT_EBUSY;
        goto err;
    }
    s->raft_dir = cfg->raft_dir != NULL && cfg->raft_dir[0] != '\0'
                      ? at_strdup(cfg->raft_dir)
                      : at_asprintf("%s/raft", cfg->data_dir);
    rv = mkdir_p(s->raft_dir);
    if (rv != 0) {
        at_errmsg_printf(errmsg, "create raft dir '%s': %s", s->raft_dir,
                         strerror(-rv));
        rv = AT_EIO;
        goto err;
    }

    memset(&scfg, 0, sizeof(scfg));
    scfg.dir = cfg->data_dir;
    scfg.node_tag = NULL;
    scfg.reserve_bytes = cfg->reserve_bytes;
    scfg.upload_ttl_ms = cfg->upload_ttl_ms;
    rv = storage_open(&s->store, loop, &scfg);
    if (rv != 0) {
        at_errmsg_printf(errmsg, "open storage: %s", storage_errmsg(&s->store));
        goto err;
    }
    s->store_open = true;

    memset(&mcfg, 0, sizeof(mcfg));
    mcfg.dir = s->raft_dir;
    mcfg.name = s->name;
    mcfg.id = 1;
    mcfg.address = s->name;
    mcfg.election_timeout_ms = (unsigned)cfg->election_timeout_ms;
    mcfg.heartbeat_timeout_ms = (unsigned)cfg->heartbeat_timeout_ms;
    mcfg.snapshot_threshold = (unsigned)cfg->snapshot_threshold;
    mcfg.snapshot_trailing = (unsigned)cfg->snapshot_trailing;
    rv = meta_open(&s->meta, loop, &mcfg, errmsg);
    if (rv != 0) {
        at_errmsg_wrapf(errmsg, "open metadata in '%s'", s->raft_dir);
        goto err_after_storage;
    }

    s->api.loop = loop;
    s->api.cfg = cfg;
    s->api.store = &s->store;
    s->api.meta = s->meta;
    s->api.store_id = s->name;

    memset(&hcfg, 0, sizeof(hcfg));
    hcfg.host = host;
    hcfg.port = port;
    hcfg.header_timeout_ms = cfg->header_timeout_ms;
    hcfg.idle_timeout_ms = cfg->idle_timeout_ms;
    hcfg.body_timeout_ms = cfg->body_timeout_ms;
    hcfg.write_timeout_ms = cfg->write_timeout_ms;
    hcfg.shutdown_grace_ms = cfg->shutdown_grace_ms;
    rv = node_http_start(&s->http, loop, &hcfg, node_api_handle, &s->api,
                         errmsg);
    if (rv != 0) {
        at_errmsg_wrapf(errmsg, "listen on '%s'", cfg->listen);
        goto err_after_meta;
    }
    LOG_INFO("node '%s' serving on %s:%d, data in '%s', raft in '%s'", s->name,
             host, node_http_port(s->http), cfg->data_dir, s->raft_dir);
    free(host);
    free(lock_path);
    *out = s;
    return 0;

err_after_meta:
    /* meta_close needs the loop to run; a failed start exits the process, so
     * the raft directory is simply left as is. */
err_after_storage:
    storage_close(&s->store);
err:
    free(host);
    free(lock_path);
    server_free(s);
    return rv;
}

static void on_meta_closed(void *data)
{
    struct node_server *s = data;
    void (*cb)(void *) = s->stop_cb;
    void *cb_data = s->stop_data;

    storage_close(&s->store);
    LOG_INFO("node '%s' stopped", s->name);
    server_free(s);
    if (cb != NULL)
        cb(cb_data);
}

static void on_http_stopped(void *data)
{
    struct node_server *s = data;

    meta_close(s->meta, on_meta_closed, s);
}

/* see server.h */
void node_server_stop(struct node_server *s, void (*cb)(void *data), void *data)
{
    s->stop_cb = cb;
    s->stop_data = data;
    s->api.stopping = true;
    LOG_INFO("node '%s' stopping: finishing in-flight requests", s->name);
    node_http_stop(s->http, on_http_stopped, s);
}
