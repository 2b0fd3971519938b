/* Client-side subcommands that talk to a running node over HTTP. */
#ifndef NODE_CLI_H
#define NODE_CLI_H

/* atoll status [--addr HOST:PORT]: print the node's /_atoll/status, then
 * the members table with each member's term, commit/applied index and lag
 * (read from each member's own /_atoll/status). */
int node_cli_status(int argc, char **argv);
/* atoll members [--addr API]: list the members;
 * atoll members remove NAME --peer PEER --cluster-secret-file F;
 * atoll members transfer [NAME] --peer PEER --cluster-secret-file F. */
int node_cli_members(int argc, char **argv);
/* atoll gc [--addr API] [--dry-run] [--grace DURATION]
 * [--cluster-secret-file F]: POST /_atoll/gc on the node, print its JSON
 * answer. The secret file defaults to $ATOLL_CLUSTER_SECRET_FILE. */
int node_cli_gc(int argc, char **argv);

#endif /* NODE_CLI_H */
