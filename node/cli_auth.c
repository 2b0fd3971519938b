/* What the CLI's admin commands share (see cli.h): the flags that say how
 * to authenticate, the Authorization value they make (an admin user's
 * Basic credentials, or the cluster secret), and asking for a password on
 * the terminal. Secrets are wiped before their memory is freed. */
#include "common/compat.h"

#include <termios.h>

#include "common/base64.h"
#include "common/common.h"
#include "node/cli.h"

#define PASSWORD_SIZE 80 /* the longest bcrypt takes is 72 bytes */

/* see cli.h */
const char *node_cli_flag(int argc, char **argv, int *i, const char *flag)
{
    size_t n = strlen(flag);

    if (strcmp(argv[*i], flag) == 0 && *i + 1 < argc)
        return argv[++*i];
    if (strncmp(argv[*i], flag, n) == 0 && argv[*i][n] == '=')
        return argv[*i] + n + 1;
    return NULL;
}

/* see cli.h */
void node_cli_auth_init(struct node_cli_auth *a)
{
    memset(a, 0, sizeof(*a));
    a->addr = node_cli_default_addr();
    a->secret_file = getenv("ATOLL_CLUSTER_SECRET_FILE");
}

/* see cli.h */
bool node_cli_auth_flag(int argc, char **argv, int *i, struct node_cli_auth *a)
{
    const char *v;

    if ((v = node_cli_flag(argc, argv, i, "--addr")) != NULL)
        a->addr = v;
    else if ((v = node_cli_flag(argc, argv, i, "--cluster-secret-file")))
        a->secret_file = v;
    else if ((v = node_cli_flag(argc, argv, i, "--user")) != NULL)
        a->user = v;
    else if ((v = node_cli_flag(argc, argv, i, "--user-password-file")))
        a->user_password_file = v;
    else
        return false;
    return true;
}

/* see cli.h */
void node_cli_wipe_free(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

/* see cli.h */
int node_cli_prompt(const char *text, char *out, size_t size)
{
    FILE *tty = fopen("/dev/tty", "r+e");
    struct termios old, quiet;
    bool restore;
    char *line;

    if (tty == NULL) {
        fprintf(stderr,
                "atoll: no terminal to ask for a password on (use "
                "--password-stdin or a password file)\n");
        return AT_EINVAL;
    }
    restore = tcgetattr(fileno(tty), &old) == 0;
    if (restore) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(fileno(tty), TCSAFLUSH, &quiet);
    }
    fputs(text, tty);
    fflush(tty);
    line = fgets(out, (int)size, tty);
    if (restore)
        tcsetattr(fileno(tty), TCSAFLUSH, &old);
    fputs("\n", tty);
    fclose(tty);
    if (line == NULL)
        return AT_EINVAL;
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

/* The admin's password: the first line of --user-password-file, else
 * asked on the terminal. Caller wipes and frees; NULL after a message. */
static char *admin_password(const struct node_cli_auth *a, const char *cmd)
{
    char pw[PASSWORD_SIZE] = "";
    char text[160];
    char *s;

    if (a->user_password_file != NULL) {
        s = node_cli_read_secret(a->user_password_file);
        if (s == NULL)
            fprintf(stderr, "%s: cannot read a password from '%s'\n", cmd,
                    a->user_password_file);
        return s;
    }
    snprintf(text, sizeof(text), "Password for '%s': ", a->user);
    if (node_cli_prompt(text, pw, sizeof(pw)) != 0)
        return NULL;
    s = at_strdup(pw);
    explicit_bzero(pw, sizeof(pw));
    return s;
}

/* see cli.h */
char *node_cli_authorization(const struct node_cli_auth *a, const char *cmd)
{
    struct at_buf b;
    char *secret, *pair;

    if (a->user != NULL) {
        if ((secret = admin_password(a, cmd)) == NULL)
            return NULL;
        pair = at_asprintf("%s:%s", a->user, secret);
        node_cli_wipe_free(secret);
        at_buf_init(&b, 0);
        at_buf_puts(&b, "Basic ");
        at_base64_encode(pair, strlen(pair), AT_BASE64_STD, &b);
        node_cli_wipe_free(pair);
        return at_buf_take(&b, NULL);
    }
    if (a->secret_file == NULL || a->secret_file[0] == '\0') {
        fprintf(stderr,
                "%s: want --user ADMIN (--user-password-file FILE, or a "
                "terminal to ask on) or --cluster-secret-file FILE\n",
                cmd);
        return NULL;
    }
    secret = node_cli_read_secret(a->secret_file);
    if (secret == NULL) {
        fprintf(stderr, "%s: cannot read a secret from '%s'\n", cmd,
                a->secret_file);
        return NULL;
    }
    pair = at_asprintf("Bearer %s", secret);
    node_cli_wipe_free(secret);
    return pair;
}

/* see cli.h */
int node_cli_answer(const char *cmd,
                    int status,
                    int want,
                    const char *not_found,
                    char *answer)
{
    if (status != want) {
        fprintf(stderr, "%s: %s%s%s\n", cmd,
                status < 0      ? node_cli_why(status)
                : status == 401 ? "authentication failed"
                : status == 403 ? "only an admin user may do this"
                : status == 404 && not_found != NULL ? not_found
                                                     : "failed",
                answer != NULL ? ": " : "", answer != NULL ? answer : "");
        free(answer);
        return 1;
    }
    fputs(answer != NULL ? answer : "", stdout);
    free(answer);
    return 0;
}
