/* The node's Prometheus text exposition (GET /metrics). */
#ifndef NODE_METRICS_H
#define NODE_METRICS_H

#include "node/reply/context.h"

/* Append every metric of the node to out (text format 0.0.4). */
void node_metrics_text(struct node_api *api, struct at_buf *out);

#endif /* NODE_METRICS_H */
