/* Pull-through caches, the process's side (upstream.c): the proxy rules
 * read from the replication document into node/cluster/pullthrough.c, and
 * the importer it runs on the leader.
 *
 * Happy path of an import: a thread opens the rule's remote (its URLs in
 * order, node_repl_remote_open), GETs the manifest (the digest checked by
 * the client), and for an index each child, recursively; back on the
 * loop, every blob not linked in the repository yet is linked with its
 * size and no holder (BlobStored, remote), then each manifest not there
 * yet is put, children first, the one asked for with its tag. A tag that
 * is cached is first asked with a HEAD: when it still names the cached
 * digest, nothing else is fetched. The Authorization line the client used
 * is handed to pullthrough.c for the blob GETs.
 *
 * Failure modes: a manifest over NODE_REGCLIENT_MANIFEST_MAX, in a media
 * type not stored (schema 1), or an index of more than
 * UPSTREAM_MANIFESTS_MAX manifests in all fails the import with the
 * reason; a proposal that fails fails it (the asker serves what is cached
 * or answers 503). At most UPSTREAM_THREADS imports run at once; the
 * others wait their turn. At stop, running imports are cancelled (curl's
 * progress callback) and joined. */
#ifndef NODE_UPSTREAM_H
#define NODE_UPSTREAM_H

#include "node/reply/context.h"

#define UPSTREAM_THREADS       4
#define UPSTREAM_MANIFESTS_MAX 256

/* Serve the proxy rules of the replication document from now on. */
void node_upstream_start(struct node_api *api);
/* Cancel and join the imports (their askers get AT_ESHUTDOWN). */
void node_upstream_stop(struct node_api *api);

#endif /* NODE_UPSTREAM_H */
