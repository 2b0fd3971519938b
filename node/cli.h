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

#endif /* NODE_CLI_H */
