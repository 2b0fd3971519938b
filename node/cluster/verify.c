/* Verification of local blob files before they are served (see verify.h):
 * a cache of files verified as they are now, and sha256 jobs in the thread
 * pool shared by every request waiting for the same blob. */
#include "common/compat.h"

#include <sys/stat.h>
#include <unistd.h>

#define AT_LOG_COMP "api"

#include "node/cluster/verify.h"

#define READ_CHUNK (1 << 20)

/* What identifies a file's content as verified. */
struct vfile {
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec ctime;
};

struct vwaiter {
    node_verify_cb cb;
    void *data;
    struct vwaiter *next;
};

struct vjob {
    uv_work_t work;
    struct node_verify *v;
    struct at_digest d;
    int fd; /* owned duplicate */
    struct vfile id;
    int status;
    struct vwaiter *waiters;
};

struct node_verify {
    struct at_map cache; /* raw digest -> struct vfile (owned) */
    struct at_map jobs;  /* raw digest -> struct vjob (running) */
    unsigned refs;       /* api + running jobs */
    bool closed;
};

static bool file_id(int fd, struct vfile *id)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return false;
    memset(id, 0, sizeof(*id));
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    id->size = st.st_size;
    id->ctime = st.st_ctim;
    return true;
}

static bool id_equal(const struct vfile *a, const struct vfile *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->ctime.tv_sec == b->ctime.tv_sec &&
           a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static void cache_clear(struct node_verify *v)
{
    const char *k;
    void *val;
    for (size_t i = 0; at_map_next(&v->cache, &i, &k, &val);)
        at_free(val);
    at_map_release(&v->cache);
    at_map_init(&v->cache);
}

static void cache_put(struct node_verify *v,
                      const struct at_digest *d,
                      const struct vfile *id)
{
    struct vfile *f = at_map_get(&v->cache, d->bytes, AT_DIGEST_LEN);
    if (f == NULL) {
        if (v->cache.len >= NODE_VERIFY_CACHE_MAX)
            cache_clear(v); /* simple bound: start over */
        f = at_malloc(sizeof(*f));
        at_map_put(&v->cache, d->bytes, AT_DIGEST_LEN, f);
    }
    *f = *id;
}

static void verify_unref(struct node_verify *v)
{
    if (--v->refs > 0)
        return;
    cache_clear(v);
    at_map_release(&v->cache);
    at_map_release(&v->jobs);
    at_free(v);
}

static struct node_verify *verify_get(struct node_api *api)
{
    if (api->verify == NULL) {
        api->verify = at_calloc(1, sizeof(*api->verify));
        at_map_init(&api->verify->cache);
        at_map_init(&api->verify->jobs);
        api->verify->refs = 1;
    }
    return api->verify;
}

void node_verify_close(struct node_verify *v)
{
    if (v == NULL)
        return;
    v->closed = true;
    verify_unref(v);
}

bool node_verify_cached(struct node_api *api, const struct at_digest *d, int fd)
{
    struct vfile id;
    const struct vfile *f;
    if (api->verify == NULL)
        return false;
    f = at_map_get(&api->verify->cache, d->bytes, AT_DIGEST_LEN);
    return f != NULL && file_id(fd, &id) && id_equal(f, &id);
}

void node_verify_note(struct node_api *api, const struct at_digest *d, int fd)
{
    struct vfile id;
    if (file_id(fd, &id))
        cache_put(verify_get(api), d, &id);
}

/* In the pool: hash the whole file. */
static void job_work(uv_work_t *w)
{
    struct vjob *j = w->data;
    struct at_sha256 h;
    struct at_digest got;
    char *buf = at_malloc(READ_CHUNK);
    off_t off = 0;

    if (j->status != 0) {
        at_free(buf);
        return;
    }
    at_sha256_init(&h);
    for (;;) {
        ssize_t n = pread(j->fd, buf, READ_CHUNK, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            j->status = AT_EIO;
            break;
        }
        if (n == 0)
            break;
        at_sha256_update(&h, buf, (size_t)n);
        off += n;
    }
    at_sha256_final(&h, &got);
    at_sha256_release(&h);
    at_free(buf);
    if (j->status == 0 && (off != j->id.size || !at_digest_equal(&got, &j->d)))
        j->status = AT_EDIGEST;
}

static void job_done(uv_work_t *w, int uvstatus)
{
    struct vjob *j = w->data;
    struct node_verify *v = j->v;
    char dstr[AT_DIGEST_STR_SIZE];
    int status = uvstatus != 0 ? AT_EIO : j->status;

    at_map_del(&v->jobs, j->d.bytes, AT_DIGEST_LEN);
    if (j->fd >= 0)
        close(j->fd);
    if (v->closed)
        status = AT_ESHUTDOWN;
    else if (status == 0)
        cache_put(v, &j->d, &j->id);
    else if (status == AT_EDIGEST)
        LOG_ERROR(
            "local copy of blob '%s' does not match its digest: "
            "not served",
            at_digest_format(&j->d, dstr));
    while (j->waiters != NULL) {
        struct vwaiter *wt = j->waiters;
        j->waiters = wt->next;
        wt->cb(wt->data, status);
        at_free(wt);
    }
    at_free(j);
    verify_unref(v);
}

void node_verify_blob(struct node_api *api,
                      const struct at_digest *d,
                      int fd,
                      node_verify_cb cb,
                      void *data)
{
    struct node_verify *v = verify_get(api);
    struct vwaiter *wt = at_calloc(1, sizeof(*wt));
    struct vjob *j = at_map_get(&v->jobs, d->bytes, AT_DIGEST_LEN);

    wt->cb = cb;
    wt->data = data;
    if (j == NULL) {
        j = at_calloc(1, sizeof(*j));
        j->v = v;
        j->d = *d;
        j->fd = dup(fd);
        j->work.data = j;
        /* a file that cannot be examined is an I/O error, never a
         * mismatch (a mismatch removes the copy) */
        if (j->fd < 0 || !file_id(j->fd, &j->id))
            j->status = AT_EIO;
        AT_ASSERT(uv_queue_work(api->loop, &j->work, job_work, job_done) ==
                  0); /* fails only for a NULL work callback */
        at_map_put(&v->jobs, d->bytes, AT_DIGEST_LEN, j);
        v->refs++;
    }
    wt->next = j->waiters;
    j->waiters = wt;
}

/* ---- the GET path ---- */

struct vthen {
    struct node_api *api;
    struct node_http_req *req;
    struct at_digest d;
    int fd;
    uint64_t size;
    void (*serve)(struct node_http_req *req, int fd, uint64_t size, void *data);
    void (*bad)(struct node_http_req *req, int status, void *data);
    void *data;
    void (*data_free)(void *data);
};

static void on_verified(void *data, int status)
{
    struct vthen *t = data;
    char dstr[AT_DIGEST_STR_SIZE];

    if (status == AT_EDIGEST && !t->api->stopping) {
        /* a bad copy must not be served again, here or to peers */
        int rv = storage_blob_remove(t->api->store, &t->d);
        LOG_ERROR("removed the corrupt local copy of blob '%s': %s",
                  at_digest_format(&t->d, dstr),
                  rv == 0 ? "ok" : at_strerror(rv));
    }
    if (node_http_req_done(t->req)) {
        close(t->fd);
    } else if (status == 0) {
        t->serve(t->req, t->fd, t->size, t->data);
    } else {
        close(t->fd);
        t->bad(t->req, status, t->data);
    }
    if (t->data_free != NULL)
        t->data_free(t->data);
    node_http_req_unref(t->req);
    at_free(t);
}

void node_verify_then(
    struct node_api *api,
    struct node_http_req *req,
    const struct at_digest *d,
    int fd,
    uint64_t size,
    void (*serve)(struct node_http_req *req, int fd, uint64_t size, void *data),
    void (*bad)(struct node_http_req *req, int status, void *data),
    void *data,
    void (*data_free)(void *data))
{
    struct vthen *t;

    if (node_verify_cached(api, d, fd)) {
        serve(req, fd, size, data);
        if (data_free != NULL)
            data_free(data);
        return;
    }
    t = at_calloc(1, sizeof(*t));
    t->api = api;
    t->req = req;
    t->d = *d;
    t->fd = fd;
    t->size = size;
    t->serve = serve;
    t->bad = bad;
    t->data = data;
    t->data_free = data_free;
    node_http_req_ref(req);
    node_verify_blob(api, d, fd, on_verified, t);
}
