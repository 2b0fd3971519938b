/* The node daemon: storage, metadata (raft) and the HTTP API on one loop. */
#ifndef NODE_SERVER_H
#define NODE_SERVER_H

#include <uv.h>

#include "node/config.h"

/* The binary's version: `atoll version` and what gossip tells others. */
#define ATOLL_VERSION "0.1.0"

struct node_server;

/* Lock the data dir, open storage and metadata, start the HTTP listener.
 * Returns 0 or AT_E* with errmsg (AT_ERRMSG_SIZE). */
int node_server_start(struct node_server **out,
                      uv_loop_t *loop,
                      const struct node_config *cfg,
                      char *errmsg);
/* Re-read what may change while the node runs (SIGHUP): the API's TLS
 * certificate and key. Logs the outcome; a bad file keeps the current
 * certificate. */
void node_server_reload(struct node_server *s);
/* Graceful stop: stop accepting, finish in-flight requests (bounded by
 * shutdown_grace_ms), close raft and storage, then cb. The server is freed
 * before cb runs. */
void node_server_stop(struct node_server *s,
                      void (*cb)(void *data),
                      void *data);

#endif /* NODE_SERVER_H */
