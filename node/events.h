/* The node's event stream (events.c): pushes and deletes, and pulls when
 * asked, as CloudEvents to every webhook receiver configured (events_url,
 * webhook.h).
 *
 * Pushes and deletes come from the log, not from the requests: the FSM
 * queues each manifest push, manifest delete and tag delete it applies
 * (meta_events_take), and only the leader sends them. So there is one
 * sender for the whole cluster, in commit order: events reach a receiver
 * in the order the cluster applied them, per repository and overall,
 * whichever node took the request. Each carries its log index as id
 * (source "/atoll/log"), so a receiver can drop a repeat.
 *
 * A change of leader: every node keeps the changes it applied lately (a
 * ring of events_queue), and the leader records through the log, at most
 * once a second, the index up to which every receiver is done (the
 * delivered mark, setting "events_delivered"). A node that takes over
 * sends again, in order, what it holds past the mark, then goes on: a
 * receiver may get an event twice around an election (same id), and
 * misses one only if the new leader's ring no longer holds it.
 *
 * Pulls (events_pull) are each node's own: sent by the node that served
 * the manifest GET (source "/atoll/node/<name>"). */
#ifndef NODE_EVENTS_H
#define NODE_EVENTS_H

#include "common/common.h"
#include "node/reply/context.h"
#include "node/webhook.h"

/* Start the stream on api (api->events) when events_url names receivers,
 * once api->meta is open; a no-op otherwise. name: this node's (pull
 * events' source). Returns 0 or AT_E* with errmsg (bad URL, unreadable
 * secret file). */
int node_events_start(struct node_api *api, const char *name, char *errmsg);

/* Stop the receivers' threads (what waits is dropped) and free. */
void node_events_stop(struct node_api *api);

/* A manifest GET served here (digest d of media_type and size bytes,
 * asked for by tag or NULL): an event when events_pull is on (the
 * handlers reach it as api->on_pulled). */
void node_events_pulled(struct node_api *api,
                        const char *repo,
                        const char *tag,
                        const struct at_digest *d,
                        const char *media_type,
                        uint64_t size);

/* A replication job ended here (the leader): an event with the rule's
 * result (the JSON object of its status, replication.h), sent by this
 * node (source "/atoll/node/<name>"). */
void node_events_replication(struct node_api *api,
                             const char *rule,
                             const char *result_json);

/* The receivers' counters, summed; all zero without a stream. lost:
 * changes the FSM dropped before the stream took them; mark: the
 * delivered mark as applied here (0: none yet). */
void node_events_stats(struct node_api *api,
                       struct node_webhook_stats *st,
                       uint64_t *lost,
                       uint64_t *mark);

#endif /* NODE_EVENTS_H */
