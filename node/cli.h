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
/* atoll users list|add|passwd|remove and atoll robots list|add|remove
 * (cli_accounts.c): /_atoll/users and /_atoll/robots on a node's API, as
 * an admin user (--user, password from --user-password-file or a prompt)
 * or with the cluster secret (--cluster-secret-file, default
 * $ATOLL_CLUSTER_SECRET_FILE). */
int node_cli_users(int argc, char **argv);
int node_cli_robots(int argc, char **argv);
/* atoll token rotate|keys (cli_token.c): POST /_atoll/token-keys/rotate
 * as an admin user or with the cluster secret; the kids of
 * /_atoll/token/jwks. */
int node_cli_token(int argc, char **argv);
/* atoll policy get|set FILE|reset (cli_policy.c): /_atoll/policy on a
 * node's API, with the same AUTH as atoll users (a password from
 * --user-password-file only). */
int node_cli_policy(int argc, char **argv);

/* atoll copy [options] SRC DEST (cli_copy.c): an image, or every tag of
 * a repository (--all-tags), from one registry to another, digests kept;
 * what DEST has is not copied again. */
int node_cli_copy(int argc, char **argv);

/* atoll replication list|add FILE|remove NAME|set FILE|run NAME|status
 * (cli_replication.c):
 * /_atoll/replication on a node's API, with the same AUTH as atoll
 * policy. */
int node_cli_replication(int argc, char **argv);

/* ---- shared by the subcommands ---- */

/* One blocking HTTP/1.1 request: method path on host:port (addr), with an
 * Authorization header value (authz, NULL: none) and a JSON body (NULL:
 * none); the answer's body goes to *body (caller frees). Returns the HTTP
 * status or a negative AT_E* code. */
int node_cli_http(const char *method,
                  const char *addr,
                  const char *path,
                  const char *authz,
                  const char *json,
                  char **body);
/* Why a node_cli_http call that returned status (negative) got no answer,
 * e.g. "cannot reach '10.0.0.1:5000': Connection refused" (the OS's or
 * curl's words); for a status >= 0,
 * "unexpected HTTP status". Valid until the next call. */
const char *node_cli_why(int status);
/* The end of an admin command: answer (freed here) printed to stdout when
 * status is want (exit 0), else "cmd: why: answer" on stderr (exit 1);
 * why for a 404 is not_found (NULL: "failed"). Returns the exit code. */
int node_cli_answer(const char *cmd,
                    int status,
                    int want,
                    const char *not_found,
                    char *answer);
/* $ATOLL_ADDR, else 127.0.0.1:5000. */
const char *node_cli_default_addr(void);
/* How an admin command authenticates (cli_auth.c): --addr,
 * --cluster-secret-file (default $ATOLL_CLUSTER_SECRET_FILE), --user and
 * --user-password-file. */
struct node_cli_auth {
    const char *addr;
    const char *secret_file;
    const char *user;
    const char *user_password_file;
};
/* Defaults: node_cli_default_addr, $ATOLL_CLUSTER_SECRET_FILE. */
void node_cli_auth_init(struct node_cli_auth *a);
/* Take argv[*i] (and its value) if it is one of a's flags: true. */
bool node_cli_auth_flag(int argc, char **argv, int *i, struct node_cli_auth *a);
/* The Authorization value (caller wipes with node_cli_wipe_free): Basic
 * for --user (its password from --user-password-file, else asked on the
 * terminal), else Bearer with the cluster secret; NULL after a message on
 * stderr that starts with cmd. */
char *node_cli_authorization(const struct node_cli_auth *a, const char *cmd);
/* A flag's value: "--flag value" or "--flag=value" (then *i moves past
 * it); NULL if argv[*i] is not flag. */
const char *node_cli_flag(int argc, char **argv, int *i, const char *flag);
/* Ask text on the terminal without echo; the line (no newline) in out.
 * 0, or AT_EINVAL (no terminal, or end of input) after a message. */
int node_cli_prompt(const char *text, char *out, size_t size);
/* Wipe and free a secret string (NULL: nothing). */
void node_cli_wipe_free(char *s);

/* A document for an admin endpoint from file ("-": stdin), at most max
 * bytes: JSON as it is, anything else read as YAML and turned into JSON.
 * The text (caller frees), or NULL with errmsg. */
char *node_cli_read_json(const char *file, size_t max, char *errmsg);
/* The JSON text (caller frees) of a YAML document, or NULL with errmsg
 * (a syntax error and its line; anchors, aliases, several documents). */
char *node_cli_yaml_to_json(const char *text, char *errmsg);
/* The first line of file (a secret, caller frees), or NULL. */
char *node_cli_read_secret(const char *file);

#endif /* NODE_CLI_H */
