/* The leader's min_copies scan (repl_scan.c): every NODE_REPL_SCAN_MS,
 * blobs referenced by a manifest with fewer than min_copies live holders
 * get an ask for a copy (node_replicate_blob). The walk over the metadata
 * goes a bounded piece per loop turn (meta_referenced_blobs_step), so it
 * never holds the loop, whatever the number of tags: at a million
 * manifests the whole walk in one callback held it ~0.45 s every 10 s. A
 * no-op on followers and with min_copies 1. */
#ifndef NODE_REPL_SCAN_H
#define NODE_REPL_SCAN_H

#include <stdint.h>

struct node_api;
struct node_repl_scan;

#define NODE_REPL_SCAN_MS     10000 /* between walks */
#define NODE_REPL_SCAN_BUDGET 8192  /* links visited per loop turn */

/* Start the scan of api (its timer); api->under_replicated gets the
 * count of blobs short of copies at the end of each walk (0 when not
 * leader). NULL on failure (no scan). */
struct node_repl_scan *node_repl_scan_start(struct node_api *api);

/* Stop and free (once its timer is closed). NULL: no-op. */
void node_repl_scan_close(struct node_repl_scan *s);

#endif /* NODE_REPL_SCAN_H */
