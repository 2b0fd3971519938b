/* Online garbage collection on a node: the POST /_atoll/gc endpoint, the
 * optional schedule, and the deletion of local copies of swept blobs. */
#ifndef NODE_GC_H
#define NODE_GC_H

#include <uv.h>

#include "node/config.h"
#include "node/http/http.h"
#include "raft/meta.h"
#include "storage/storage.h"

#define NODE_GC_BATCH         1000   /* digests (manifests) per GcSweep */
#define NODE_GC_MANIFESTS_MAX 100000 /* untagged manifests per run */

struct node_gc;

/* Counters for /metrics. */
struct node_gc_stats {
    uint64_t runs;            /* sweeps (not dry runs) finished here */
    uint64_t swept;           /* blob records this node's sweeps deleted */
    uint64_t swept_bytes;     /* their sizes */
    uint64_t manifests_swept; /* untagged manifests this node's sweeps
                                 deleted */
    uint64_t files_removed;   /* local copies deleted (any node's sweeps) */
    uint64_t files_kept;      /* local copies kept: changed after the cutoff
                                 or stored again */
    uint64_t bytes_freed;     /* sizes of the local copies deleted */
};

/* Create (nothing runs until node_gc_start). store and cfg are borrowed and
 * must outlive node_gc_stop. */
struct node_gc *node_gc_new(uv_loop_t *loop,
                            struct storage *store,
                            const struct node_config *cfg);
/* Start draining swept digests (local deletions in the thread pool) and the
 * gc_interval schedule (runs on the leader only). */
void node_gc_start(struct node_gc *g, struct meta *m);
/* Before meta_close: stop everything; in-flight runs answer 503. g frees
 * itself once its handles and pool work are done. NULL is a no-op. */
void node_gc_stop(struct node_gc *g);

/* POST /_atoll/gc[?dry_run=true][&grace=DURATION][&untagged=BOOL] on the
 * API port (untagged defaults to gc_untagged: untagged manifests are swept
 * first, then the blobs). With a cluster secret configured, needs
 * Authorization: Bearer <secret>. Answers {"dry_run":B,"untagged":B,
 * "manifests":N,"manifests_deleted":N,"candidates":N,"bytes":N,
 * "deleted":N,"deleted_bytes":N,"batches":N,"ms":N} (a dry run's blob
 * candidates do not count the blobs the manifests would free); 409 while
 * another run is busy on this node; 503 (UNAVAILABLE) when a sweep could
 * not be committed. */
void node_gc_handle(struct node_gc *g, struct node_http_req *req);

void node_gc_stats_get(const struct node_gc *g, struct node_gc_stats *out);

#endif /* NODE_GC_H */
