/* Replication jobs (replication.c): the rules (replication_rules.h) run
 * by the leader, once for the whole cluster.
 *
 * Happy path: every second the leader looks at each rule: due when its
 * interval has passed since its last run ended (the status, replicated),
 * or when someone asked for a run after its last start (POST
 * /_atoll/replication/run: the setting replication_run_<name>). A due
 * rule whose job is still running waits (no pile-up); at most
 * NODE_REPL_JOBS_MAX jobs run at once. A job is a thread: it lists the
 * repositories (push: this cluster's catalog through its own API; pull:
 * the remote's catalog, or the rule's plain names), and for each one the
 * rule selects copies every selected tag the other side lacks (copy.h:
 * nothing twice, digests kept, manifests last), then, with deletes,
 * deletes there the selected tags gone here. Its result (counts, the
 * first error) goes into the status (the setting replication_status,
 * through the log) when it ends.
 *
 * Failure modes: a repository that fails is counted and the job goes on
 * with the next; a remote URL that does not answer: the next of the
 * rule's URLs. Leadership lost: the job is told to stop between images;
 * its status is not recorded, and the new leader finds the rule due and
 * runs it again, skipping what the other side already has: a job whose
 * node died is taken over. A transfer that stalls longer than the rule's
 * timeout is cut (the repository counts as failed). */
#ifndef NODE_REPLICATION_H
#define NODE_REPLICATION_H

#include "node/reply/context.h"

#define NODE_REPL_JOBS_MAX 2
#define NODE_REPL_TICK_MS  1000

/* Start the runner on api (api->replication), once meta is open; self_url
 * is this node's own API ("http://127.0.0.1:5000"). */
void node_replication_start(struct node_api *api, const char *self_url);
/* Stop: running jobs are told to stop and waited for. */
void node_replication_stop(struct node_api *api);

/* The admin endpoints: GET/PUT /_atoll/replication, POST
 * /_atoll/replication/run?rule=NAME, GET /_atoll/replication/status
 * (replication_http.c). */
bool node_replication_path(const char *path);
void node_replication_handle(struct node_api *api, struct node_http_req *req);

/* Is the rule's job running here? */
bool node_replication_running(struct node_api *api, const char *name);

struct node_replication_counts {
    uint64_t runs_ok, runs_failed, bytes, manifests, blobs;
    unsigned running;
};
void node_replication_counts(struct node_api *api,
                             struct node_replication_counts *c);

#endif /* NODE_REPLICATION_H */
