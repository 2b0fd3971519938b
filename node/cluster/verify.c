/* Verification of local blob files before they are served (see verify.h):
 * a cache of files verified as they are now, and one hash of a file at a
 * time (the store's storage_blob_verify, in the thread pool) shared by
 * every request waiting for the same blob. */
#include "common/compat.h"

#include <unistd.h>

#define AT_LOG_COMP "api"

#include "node/cluster/verify.h"

struct vwaiter {
    node_verify_cb cb;
    void *data;
    struct at_list link; /* in the job's waiters */
};

struct vjob {
    struct node_verify *v;
    struct at_digest d;
    struct at_list waiters; /* owned: struct vwaiter */
};

struct node_verify {
    struct at_map cache; /* raw digest -> struct storage_blob_id (owned) */
    struct at_map jobs;  /* raw digest -> struct vjob (running) */
    unsigned refs;       /* api + running jobs */
    bool closed;
    uint64_t hashes; /* hashes started (node_verify_hashes) */
};

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
                      const struct storage_blob_id *id)
{
    struct storage_blob_id *f = at_map_get(&v->cache, d->bytes, AT_DIGEST_LEN);
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
    struct storage_blob_id id;
    const struct storage_blob_id *f;
    if (api->verify == NULL)
        return false;
    f = at_map_get(&api->verify->cache, d->bytes, AT_DIGEST_LEN);
    return f != NULL && storage_blob_id_get(fd, &id) == 0 &&
           storage_blob_id_equal(f, &id);
}

void node_verify_note(struct node_api *api, const struct at_digest *d, int fd)
{
    struct storage_blob_id id;
    if (storage_blob_id_get(fd, &id) == 0)
        cache_put(verify_get(api), d, &id);
}

static void job_done(void *data, int status, const struct storage_blob_id *id)
{
    struct vjob *j = data;
    struct node_verify *v = j->v;
    char dstr[AT_DIGEST_STR_SIZE];
    struct at_list *l;

    at_map_del(&v->jobs, j->d.bytes, AT_DIGEST_LEN);
    if (v->closed)
        status = AT_ESHUTDOWN;
    else if (status == 0)
        cache_put(v, &j->d, id);
    else if (status == AT_EDIGEST)
        LOG_ERROR(
            "local copy of blob '%s' does not match its digest: "
            "not served",
            at_digest_format(&j->d, dstr));
    while ((l = at_list_pop_front(&j->waiters)) != NULL) {
        struct vwaiter *wt = AT_LIST_ENTRY(l, struct vwaiter, link);
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
        at_list_init(&j->waiters);
        storage_blob_verify(api->store, d, fd, job_done, j);
        at_map_put(&v->jobs, d->bytes, AT_DIGEST_LEN, j);
        v->refs++;
        v->hashes++;
    }
    at_list_push_front(&j->waiters, &wt->link);
}

/* see verify.h */
uint64_t node_verify_hashes(struct node_api *api)
{
    return api->verify != NULL ? api->verify->hashes : 0;
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
