/* Placement rules: for repositories matching a pattern, the blobs of every
 * tagged manifest are copied eagerly to the nodes of named regions when the
 * tag is pushed, so that the first pull there is local.
 *
 * The rules are one cluster setting, "placement", replicated through the log
 * (so every node applies the same rules) and set with PUT /_atoll/placement:
 *
 *   {"rules": [{"repositories": "prod-*", "regions": ["eu", "us"]}]}
 *
 * A pattern is an fnmatch(3) glob over the whole repository name ('*'
 * also matches '/'). Every node of a named region that applies a tagged
 * PutManifest in a matching repository starts background fetches of the
 * manifest's blobs (an index: of its children's blobs too) that it lacks;
 * lazy fetch still covers whatever a prefetch misses (a node that was down,
 * a full disk). */
#ifndef NODE_PLACEMENT_H
#define NODE_PLACEMENT_H

#include "node/reply/context.h"

#define NODE_PLACEMENT_MAX_RULES   64
#define NODE_PLACEMENT_MAX_REGIONS 16
#define NODE_PLACEMENT_MAX_JSON    (64 * 1024)
#define NODE_PLACEMENT_MAX_NAME    255

struct node_placement;

/* Parse and validate rules (the document above; "rules": [] clears).
 * Returns 0, or AT_EINVAL with the reason in errmsg. */
int node_placement_parse(const char *json,
                         size_t len,
                         struct node_placement **out,
                         char *errmsg);
void node_placement_free(struct node_placement *p);
size_t node_placement_count(const struct node_placement *p);

/* Does a rule ask for the blobs of repo in region? */
bool node_placement_wants(const struct node_placement *p,
                          const char *repo,
                          const char *region);

/* Begin prefetching for this node's region (a uv_check drains the tagged
 * pushes the FSM recorded); a no-op without a region. */
void node_placement_start(struct node_api *api);
/* Stop; call before the store and meta close. */
void node_placement_stop(struct node_api *api);

/* GET /_atoll/placement (the rules in force) and PUT /_atoll/placement
 * (replace them through the log) on the API port. */
void node_placement_handle(struct node_api *api, struct node_http_req *req);

#endif /* NODE_PLACEMENT_H */
