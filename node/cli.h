/* Client-side subcommands that talk to a running node over HTTP. */
#ifndef NODE_CLI_H
#define NODE_CLI_H

/* atoll status [--addr HOST:PORT]: print the node's /_atoll/status. */
int node_cli_status(int argc, char **argv);

#endif /* NODE_CLI_H */
