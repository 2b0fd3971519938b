/* The struct raft_fsm callbacks: libraft's apply/snapshot/restore on a
 * meta_fsm, with libraft 0.15's buffer ownership rules and snapshots
 * encoded in the thread pool. */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include <pthread.h>
#include <time.h>
#include <uv.h>

#include "raft/glue.h"

#include "raft/fsm.h"
#include "raft/heap.h"
#include "raft/hugeheap.h"
#include "raft/snapfile.h"
#include "raft/snapshot.h"

static int glue_apply(struct raft_fsm *iface,
                      const struct raft_buffer *buf,
                      void **result)
{
    struct meta_fsm_glue *g = iface->data;
    /* 0.15: inside apply, raft_last_applied() is still index - 1 */
    uint64_t index = raft_last_applied(g->raft) + 1;
    int res = 0;
    meta_fsm_apply(g->fsm, index, buf->base, buf->len, &res);
    if (g->job_inflight)
        g->job_applies++;
    *result = (void *)(intptr_t)res;
    if (g->applied != NULL)
        g->applied(g->data, g->fsm);
    return 0;
}

/* Snapshots (version-3 FSM, libraft 0.15 takeSnapshot): raft calls
 * snapshot on the loop thread, then snapshot_async in the pool through
 * io->async_work, then snapshot_finalize on the loop thread whatever
 * happened (also when async_work could not start or the encode failed).
 * snapshot forks a child that encodes the state as it is at that instant
 * (snapfork.h): the loop pays for the fork, applies go on at once, and
 * the pool collects the child's encoding. When fork fails (memory, pids),
 * snapshot copies the state into a job instead (no encoding: flat arrays
 * and one arena) and the pool encodes the job. The FSM owns the buffers
 * (finalize frees them). Only one snapshot is in flight at a time (raft's
 * pending snapshot guards this). Without snapshot_async (an io that cannot
 * run work in the pool) snapshot encodes a copy on the spot. */
/* The child's file (file mode): its descriptor is the snapshot. */
static int collect_file(struct meta_fsm_glue *g,
                        void **base,
                        size_t *len,
                        char *errmsg)
{
    struct meta_snapfile d = { .index = g->job_index };
    int rv = meta_snap_fork_collect_file(&g->child, &d, errmsg);
    if (rv == 0) /* the child is gone: the sync costs no copy-on-write */
        rv = meta__snapfile_commit(g->snap_dir, &d, errmsg);
    if (rv != 0)
        return rv;
    *base = raft_malloc(META_SNAPFILE_DESC_LEN);
    if (*base == NULL)
        return AT_ENOMEM;
    meta__snapfile_desc_encode(&d, *base);
    *len = META_SNAPFILE_DESC_LEN;
    g->job_file_len = d.len;
    return 0;
}

/* The encoding, in one buffer for libraft: the child's file's descriptor
 * or the child's bytes (then the child is reaped), or the copy's. In the
 * pool, or on the loop without snapshot_async. */
static int encode(struct meta_fsm_glue *g,
                  struct raft_buffer *bufs[],
                  unsigned *n_bufs)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    void *base;
    size_t len;
    uint64_t t0 = uv_hrtime();
    int rv =
        g->job_forked && g->job_file ? collect_file(g, &base, &len, errmsg)
        : g->job_forked
            ? meta_snap_fork_collect(&g->child, raft_malloc, raft_free, &base,
                                     &len, errmsg)
            : meta_snap_job_encode(g->job, raft_malloc, &base, &len, errmsg);
    if (rv != 0) {
        LOG_ERROR("snapshot: %s", errmsg);
        return rv == AT_ENOMEM ? RAFT_NOMEM
               : rv == AT_EIO  ? RAFT_IOERR
                               : RAFT_TOOBIG;
    }
    g->job_pool_ms = (double)(uv_hrtime() - t0) / 1e6;
    *bufs = raft_malloc(sizeof(**bufs));
    if (*bufs == NULL) {
        raft_free(base);
        return RAFT_NOMEM;
    }
    (*bufs)[0].base = base;
    (*bufs)[0].len = len;
    *n_bufs = 1;
    g->job_len = len;
    return 0;
}

/* On the loop: fork the encoding child, or copy the state. */
static void start_job(struct meta_fsm_glue *g, bool async)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    int rv;

    g->job_forked = false;
    /* file mode needs the index the snapshot is at: raft takes it at
     * last_applied, on this thread, now */
    g->job_file = g->snap_dir != NULL && g->raft != NULL;
    g->job_index = g->raft != NULL ? raft_last_applied(g->raft) : 0;
    g->job_file_len = 0;
    if (async) {
        rv = meta_snap_fork_start(&g->child, g->fsm,
                                  g->job_file ? g->snap_dir : NULL,
                                  g->job_index, errmsg);
        if (rv == 0) {
            g->job_forked = true;
            return;
        }
        LOG_WARN("snapshot: %s; copying the state on the loop instead", errmsg);
    }
    g->job = meta_snap_job_take(g->fsm);
}

static int glue_snapshot(struct raft_fsm *iface,
                         struct raft_buffer *bufs[],
                         unsigned *n_bufs)
{
    struct meta_fsm_glue *g = iface->data;
    if (g->job_inflight)
        return RAFT_BUSY; /* not finalized yet: raft retries later */
    g->job_t0 = uv_hrtime();
    struct timespec c0, c1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    start_job(g, iface->snapshot_async != NULL);
    g->job_len = 0;
    g->job_pool_ms = 0;
    g->job_applies = 0;
    *bufs = NULL;
    *n_bufs = 0;
    int rv = 0;
    if (iface->snapshot_async == NULL)
        rv = encode(g, bufs, n_bufs);
    g->job_loop_ms = (double)(uv_hrtime() - g->job_t0) / 1e6;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    g->job_loop_cpu_ms = (double)(c1.tv_sec - c0.tv_sec) * 1e3 +
                         (double)(c1.tv_nsec - c0.tv_nsec) / 1e6;
    if (iface->snapshot_async == NULL || rv != 0) {
        meta_snap_job_recycle(g->fsm, g->job);
        g->job = NULL;
    }
    /* raft calls no finalize when snapshot fails */
    g->job_inflight = rv == 0;
    return rv;
}

/* In the pool: reads only the child's pipe or the job; the loop does not
 * touch either until finalize. */
static int glue_snapshot_async(struct raft_fsm *iface,
                               struct raft_buffer *bufs[],
                               unsigned *n_bufs)
{
    struct meta_fsm_glue *g = iface->data;
    if (!g->job_forked && g->job == NULL)
        return RAFT_INVALID;
    int rv = encode(g, bufs, n_bufs);
    /* a big copy is freed here, off the loop; a small one is kept for the
     * next snapshot (finalize) */
    if (g->job != NULL && meta_snap_job_size(g->job) > META_SNAP_SPARE_MAX) {
        meta_snap_job_free(g->job);
        g->job = NULL;
    }
    return rv;
}

struct unmap_job {
    const void *p;
    struct meta_snapfile d;
};

static void *unmap_thread(void *p)
{
    struct unmap_job *u = p;
    meta__snapfile_unmap(u->p, &u->d);
    at_free(u);
    return NULL;
}

/* A snapshot file's map goes the same way. */
static void unmap_off_loop(const void *p, const struct meta_snapfile *d)
{
    struct unmap_job *u = at_malloc(sizeof(*u));
    u->p = p;
    u->d = *d;
    meta__off_loop(unmap_thread, u);
}

static void *prune_thread(void *p)
{
    char *dir = p;
    unsigned n = meta__snapfile_prune(dir);
    if (n > 0)
        LOG_DEBUG("snapshot: %u old snapshot file(s) removed", n);
    at_free(dir);
    return NULL;
}

/* see glue.h */
void meta__glue_prune(const struct meta_fsm_glue *g)
{
    if (g->snap_dir != NULL)
        meta__off_loop(prune_thread, at_strdup(g->snap_dir));
}

static int glue_snapshot_finalize(struct raft_fsm *iface,
                                  struct raft_buffer *bufs[],
                                  unsigned *n_bufs)
{
    struct meta_fsm_glue *g = iface->data;
    uint64_t t0 = uv_hrtime();
    if (*bufs != NULL) {
        for (unsigned i = 0; i < *n_bufs; i++)
            raft_free((*bufs)[i].base); /* big: off the loop (heap.h) */
        raft_free(*bufs);
    }
    *bufs = NULL;
    *n_bufs = 0;
    /* a child never collected (async_work did not start) */
    meta_snap_fork_abort(&g->child);
    if (g->job_inflight) {
        /* loop: the fork or the copy, on the loop thread; pool: the
         * collection or the encode; total: until the snapshot was written
         * (or failed) */
        uint64_t now = uv_hrtime();
        LOG_INFO(
            "snapshot: %zu bytes%s, loop thread %.1f ms %s (cpu %.1f "
            "ms) + %.1f ms free, pool %s %.1f ms, total %.1f ms, "
            "%" PRIu64 " applies meanwhile, child %" PRIu64 " KiB private",
            g->job_file_len ? (size_t)g->job_file_len : g->job_len,
            g->job_file_len ? " (a file)" : "", g->job_loop_ms,
            g->job_forked ? "fork" : "copy", g->job_loop_cpu_ms,
            (double)(now - t0) / 1e6, g->job_forked ? "collect" : "encode",
            g->job_pool_ms, (double)(now - g->job_t0) / 1e6, g->job_applies,
            g->job_forked ? g->child.private_kb : 0);
        g->job_inflight = false;
        /* libraft's put is done (or failed): the files it no longer
         * names go */
        if (g->job_file)
            meta__glue_prune(g);
    }
    /* the child is gone: the heap's huge pages it split go back together
     * before the next fork (hugeheap.h) */
    if (g->job_forked)
        meta__hugeheap_collapse_async();
    g->job_forked = false;
    g->job_file = false;
    meta_snap_job_recycle(g->fsm, g->job);
    g->job = NULL;
    return 0;
}

/* The file's hash, computed on a thread of its own while the loop
 * decodes the same bytes: the state is swapped in only once it matches
 * (meta_fsm_restore_checked). */
struct hasher {
    pthread_t th;
    bool running;
    const void *p;
    const struct meta_snapfile *d;
    uint64_t hash;
};

static void *hash_run(void *arg)
{
    struct hasher *h = arg;
    h->hash = meta__snapfile_hash(h->p, (size_t)h->d->len);
    return NULL;
}

static void hash_join(struct hasher *h)
{
    if (h->running)
        pthread_join(h->th, NULL);
    h->running = false;
}

static int hash_check(void *data, char *errmsg)
{
    struct hasher *h = data;
    hash_join(h);
    if (h->hash == h->d->hash)
        return 0;
    at_errmsg_printf(errmsg, "snapshot file %llu: hash mismatch",
                     (unsigned long long)h->d->index);
    return AT_ECORRUPT;
}

/* A descriptor (snapfile.h): the file it names, mapped, is restored. */
static int restore_file(struct meta_fsm_glue *g,
                        const struct meta_snapfile *d,
                        double *map_ms,
                        char *errmsg)
{
    struct hasher h = { .d = d };
    if (g->snap_dir == NULL) {
        at_errmsg_printf(errmsg, "a snapshot file, and no raft dir");
        return AT_EINVAL;
    }
    uint64_t t0 = uv_hrtime();
    int rv = meta__snapfile_map_unhashed(g->snap_dir, d, &h.p, errmsg);
    if (rv != 0)
        return rv;
    *map_ms = (double)(uv_hrtime() - t0) / 1e6;
    h.running = pthread_create(&h.th, NULL, hash_run, &h) == 0;
    if (!h.running)
        hash_run(&h); /* no thread: first, then */
    rv = meta_fsm_restore_checked(g->fsm, h.p, (size_t)d->len, hash_check, &h,
                                  errmsg);
    hash_join(&h); /* a decode that failed did not wait for it */
    unmap_off_loop(h.p, d);
    return rv;
}

/* On success the FSM owns buf->base; on failure raft frees it. */
static int glue_restore(struct raft_fsm *iface, struct raft_buffer *buf)
{
    struct meta_fsm_glue *g = iface->data;
    char errmsg[AT_ERRMSG_SIZE] = "";
    size_t len = buf->len;
    struct meta_snapfile d;
    uint64_t t0 = uv_hrtime();
    bool file = meta__snapfile_desc_decode(buf->base, buf->len, &d);
    double map_ms = 0;
    int rv = file ? restore_file(g, &d, &map_ms, errmsg)
                  : meta_fsm_restore(g->fsm, buf->base, len, errmsg);
    if (rv != 0) {
        LOG_ERROR("restore snapshot: %s", errmsg);
        return RAFT_CORRUPT;
    }
    raft_free(buf->base); /* big: off the loop (heap.h) */
    LOG_INFO(
        "restored a snapshot of %zu bytes%s in %.0f ms (at start, or "
        "sent by the leader to a node that fell behind): %" PRIu64
        " tags, %zu manifests; map %.0f ms (hashed alongside)",
        file ? (size_t)d.len : len, file ? " (a file)" : "",
        (double)(uv_hrtime() - t0) / 1e6, g->fsm->ntags, g->fsm->manifests.len,
        map_ms);
    if (g->applied != NULL)
        g->applied(g->data, g->fsm);
    return 0;
}

/* see glue.h */
void meta__glue_init(struct meta_fsm_glue *g, struct meta_fsm *fsm)
{
    memset(g, 0, sizeof(*g));
    g->child.fd = -1;
    g->fsm = fsm;
    g->iface.version = 3; /* 0.15 needs io->version = 2 (see open.c) */
    g->iface.data = g;
    g->iface.apply = glue_apply;
    g->iface.snapshot = glue_snapshot;
    g->iface.restore = glue_restore;
    g->iface.snapshot_finalize = glue_snapshot_finalize;
    g->iface.snapshot_async = glue_snapshot_async;
}
