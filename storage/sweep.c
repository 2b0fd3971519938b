/* Garbage collection of local blob copies, in the thread pool: list the
 * copies not changed since a moment (a walk of blobs/sha256), and remove the
 * copies of given blobs that a predicate rejects.
 *
 * Happy path: the call copies what its job needs (the store directory, the
 * digests and cutoffs) and queues one pool job; the job walks the blob
 * directories, or looks at each copy and unlinks it; its completion calls
 * cb once on the loop thread. A job never touches struct storage, so it may
 * finish after storage_close(), and cb still runs.
 *
 * Failure modes: a blobs directory that cannot be opened lists nothing
 * (AT_EIO); entries that are not blob files (other names, not regular
 * files) are skipped. A copy changed (ctime) after its cutoff is kept: a
 * commit that finds its blob already stored touches the copy, so a blob
 * uploaded again while it is being collected stays. A copy already gone,
 * or that cannot be removed, counts nowhere. */
#include "common/compat.h"

#define AT_LOG_COMP "storage"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/internal.h"

static uint64_t ctime_ms(const struct stat *st)
{
    return (uint64_t)st->st_ctim.tv_sec * 1000u +
           (uint64_t)st->st_ctim.tv_nsec / 1000000u;
}

/* ---- listing ---- */

struct scan_job {
    uv_work_t work;
    char *root; /* owned: <store>/blobs/sha256 */
    uint64_t cutoff_ms;
    size_t max;
    struct at_digest *found; /* owned until handed to cb */
    size_t n, cap;
    bool truncated;
    int status;
    storage_scan_cb cb;
    void *data; /* borrowed */
};

/* In the pool: list the blob files of one <hh> directory. */
static void scan_dir(struct scan_job *sc, DIR *d)
{
    struct dirent *f;

    while ((f = readdir(d)) != NULL) {
        char name[80];
        struct at_digest dg;
        struct stat st;
        if (strlen(f->d_name) != AT_DIGEST_HEX_LEN)
            continue;
        snprintf(name, sizeof(name), "sha256:%s", f->d_name);
        if (at_digest_parse(name, strlen(name), &dg) != 0 ||
            fstatat(dirfd(d), f->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode))
            continue;
        if (ctime_ms(&st) > sc->cutoff_ms)
            continue;
        if (sc->n == sc->max) {
            sc->truncated = true;
            break;
        }
        if (sc->n == sc->cap) {
            sc->cap = sc->cap ? sc->cap * 2 : 256;
            sc->found = at_realloc(sc->found, sc->cap * sizeof(*sc->found));
        }
        sc->found[sc->n++] = dg;
    }
}

static void scan_work(uv_work_t *w)
{
    struct scan_job *sc = w->data;
    DIR *top = opendir(sc->root);
    struct dirent *e;

    if (top == NULL) {
        sc->status = AT_EIO;
        return;
    }
    while (!sc->truncated && (e = readdir(top)) != NULL) {
        if (strlen(e->d_name) != 2 || e->d_name[0] == '.')
            continue;
        char *sub = at_asprintf("%s/%s", sc->root, e->d_name);
        DIR *d = opendir(sub);
        if (d != NULL) {
            scan_dir(sc, d);
            closedir(d);
        }
        free(sub);
    }
    closedir(top);
}

static void scan_done(uv_work_t *w, int status)
{
    struct scan_job *sc = w->data;

    AT_UNUSED(status); /* never canceled */
    sc->cb(sc->data, sc->status, sc->found, sc->n, sc->truncated);
    free(sc->root);
    free(sc);
}

/* see storage.h */
int storage_blob_scan(struct storage *s,
                      uint64_t cutoff_ms,
                      size_t max,
                      storage_scan_cb cb,
                      void *data)
{
    struct scan_job *sc;
    int rv;

    PRE(cb != NULL);
    if (s->closing)
        return AT_ESHUTDOWN;
    sc = at_calloc(1, sizeof(*sc));
    sc->root = storage__path_blobs(s->dir);
    sc->cutoff_ms = cutoff_ms;
    sc->max = max;
    sc->cb = cb;
    sc->data = data;
    sc->work.data = sc;
    rv = uv_queue_work(s->loop, &sc->work, scan_work, scan_done);
    AT_ASSERT(rv == 0); /* fails only without a work callback */
    return 0;
}

/* ---- removal ---- */

struct sweep_job {
    uv_work_t work;
    char *dir;                        /* owned: the store directory */
    struct storage_sweep_item *items; /* owned: the copies to remove */
    size_t n;
    struct storage_sweep_stats stats;
    storage_sweep_cb cb;
    void *data; /* borrowed */
};

static void sweep_work(uv_work_t *w)
{
    struct sweep_job *j = w->data;

    for (size_t i = 0; i < j->n; i++) {
        char *path =
            storage__path_blob(j->dir, &j->items[i].digest, NULL, NULL);
        struct stat st;
        if (lstat(path, &st) != 0) {
            /* already gone: fine */
        } else if (ctime_ms(&st) > j->items[i].cutoff_ms) {
            j->stats.changed++; /* written after the cutoff: a re-upload */
        } else if (unlink(path) == 0) {
            j->stats.removed++;
            j->stats.bytes += (uint64_t)st.st_size;
        }
        free(path);
    }
}

static void sweep_done(uv_work_t *w, int status)
{
    struct sweep_job *j = w->data;

    AT_UNUSED(status); /* never canceled */
    j->cb(j->data, &j->stats);
    free(j->items);
    free(j->dir);
    free(j);
}

/* see storage.h */
int storage_blob_sweep(struct storage *s,
                       const struct storage_sweep_item *items,
                       size_t n,
                       storage_sweep_keep_cb keep,
                       storage_sweep_cb cb,
                       void *data)
{
    struct sweep_job *j;
    int rv;

    PRE(cb != NULL);
    if (s->closing)
        return AT_ESHUTDOWN;
    j = at_calloc(1, sizeof(*j));
    j->items = at_calloc(n + 1, sizeof(*j->items));
    for (size_t i = 0; i < n; i++) {
        if (keep != NULL && keep(data, &items[i].digest))
            j->stats.kept++;
        else
            j->items[j->n++] = items[i];
    }
    j->dir = at_strdup(s->dir);
    j->cb = cb;
    j->data = data;
    j->work.data = j;
    rv = uv_queue_work(s->loop, &j->work, sweep_work, sweep_done);
    AT_ASSERT(rv == 0); /* fails only without a work callback */
    return 0;
}
