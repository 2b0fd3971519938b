/* atoll: the command line (serve, status, version, help). */
#define AT_LOG_COMP "main"
#include "common/compat.h"

#include <signal.h>
#include <sys/prctl.h>
#include <uv.h>

#include "common/common.h"
#include "node/cert.h"
#include "node/cli.h"
#include "node/config.h"
#include "node/server.h"

extern char **environ;

struct daemon {
    uv_loop_t *loop;
    struct node_server *server;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    uv_signal_t sighup;
    uv_prepare_t flush; /* writes the batched log lines */
    bool stopping;
};

static void on_stopped(void *data)
{
    struct daemon *d = data;

    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sighup, NULL);
    uv_close((uv_handle_t *)&d->flush, NULL);
}

/* Before the loop waits: the lines of this iteration go out in one write. */
static void on_flush(uv_prepare_t *h)
{
    AT_UNUSED(h);
    at_log_flush();
}

static void on_sighup(uv_signal_t *h, int signum)
{
    struct daemon *d = h->data;

    AT_UNUSED(signum);
    if (d->stopping)
        return;
    LOG_INFO("SIGHUP: reloading");
    node_server_reload(d->server);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct daemon *d = h->data;

    if (d->stopping) {
        LOG_WARN("second signal %d: exiting now", signum);
        at_log_flush();
        _exit(1); /* now: no atexit work (requests in flight stay) */
    }
    d->stopping = true;
    LOG_INFO("signal %d: graceful shutdown", signum);
    node_server_stop(d->server, on_stopped, d);
}

static int cmd_serve(int argc, char **argv)
{
    struct node_config cfg;
    struct daemon d;
    char errmsg[AT_ERRMSG_SIZE] = "";
    int rv;

    rv = node_config_load(&cfg, argc, argv, environ, errmsg);
    if (rv == 1)
        return 0;
    if (rv != 0) {
        fprintf(stderr, "atoll serve: %s\n", errmsg);
        fprintf(stderr, "try 'atoll serve --help'\n");
        return 2;
    }
    if (at_log_configure(cfg.log_level) != 0) {
        fprintf(stderr, "atoll serve: invalid log level '%s'\n", cfg.log_level);
        node_config_release(&cfg);
        return 2;
    }
    /* checked by node_config_load */
    (void)at_log_set_format(cfg.log_format);
    signal(SIGPIPE, SIG_IGN);
    /* Blob writes, hashing and fsyncs run in libuv's pool (4 threads by
     * default): concurrent uploads each wait on an fsync, and the disk
     * merges concurrent fsyncs, so more threads mean more throughput. Must
     * be set before the loop first uses the pool. */
    setenv("UV_THREADPOOL_SIZE", "16", 0);
    memset(&d, 0, sizeof(d));
    d.loop = uv_default_loop();
    rv = node_server_start(&d.server, d.loop, &cfg, errmsg);
    if (rv != 0) {
        LOG_ERROR("cannot start: %s", errmsg);
        node_config_release(&cfg);
        return 1;
    }
    uv_signal_init(d.loop, &d.sigterm);
    uv_signal_init(d.loop, &d.sigint);
    uv_signal_init(d.loop, &d.sighup);
    d.sigterm.data = &d;
    d.sigint.data = &d;
    d.sighup.data = &d;
    uv_signal_start(&d.sigterm, on_signal, SIGTERM);
    uv_signal_start(&d.sigint, on_signal, SIGINT);
    uv_signal_start(&d.sighup, on_sighup, SIGHUP);
    uv_prepare_init(d.loop, &d.flush);
    uv_prepare_start(&d.flush, on_flush);
    uv_unref((uv_handle_t *)&d.flush);
    at_log_batch_start();
    uv_run(d.loop, UV_RUN_DEFAULT);
    at_log_batch_stop();
    rv = uv_loop_close(d.loop);
    if (rv != 0)
        LOG_WARN("loop closed with handles still open: %s", uv_strerror(rv));
    node_config_release(&cfg);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: atoll <command> [options]\n"
            "\n"
            "commands:\n"
            "  serve     run a registry node (atoll serve --help)\n"
            "  status    show a node's status and the members table (atoll "
            "status [--addr HOST:PORT]\n"
            "            [--cluster-secret-file FILE]: with access control "
            "on, the views want it)\n"
            "  members   list members [--addr API] [--cluster-secret-file "
            "FILE]; members remove NAME /\n"
            "            members transfer [NAME] --peer PEER_HOST:PORT "
            "--cluster-secret-file FILE /\n"
            "            members handoff [NAME] (before a stop: leadership and "
            "vote to others)\n"
            "  (an https:// address verifies the node against $ATOLL_CACERT; "
            "a TLS peer port\n"
            "   also wants $ATOLL_CLIENT_CERT and $ATOLL_CLIENT_KEY)\n"
            "  gc        garbage-collect unreferenced blobs (atoll gc "
            "[--addr API] [--dry-run]\n"
            "            [--grace DURATION] [--untagged] "
            "[--cluster-secret-file FILE])\n"
            "  copy      SRC DEST: an image (or --all-tags) from one "
            "registry to another\n"
            "            (atoll copy --help)\n"
            "  replication list | add FILE | remove NAME | set FILE | run "
            "NAME | status\n"
            "  users     list | add NAME | passwd NAME | remove NAME (atoll "
            "users help)\n"
            "  robots    list | add NAME --permission GLOB:ACTIONS | remove "
            "NAME\n"
            "  token     rotate (a new signing key) | keys (atoll token "
            "help)\n"
            "  policy    get | set FILE | reset: the access policy (atoll "
            "policy help)\n"
            "  cert      ca --out DIR | node --ca DIR --name NAME --san "
            "HOST... --out DIR\n"
            "  version   print the version\n"
            "  help      this text (help serve: the options of serve)\n");
}

/* The commands other than serve take the cluster secret from a file only
 * (a value on their command line would show in ps while they run): say
 * so, rather than a bare usage line. */
static bool secret_on_line(int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--cluster-secret") == 0 ||
            strncmp(argv[i], "--cluster-secret=", 17) == 0) {
            fprintf(stderr,
                    "atoll %s: takes the cluster secret from a file: "
                    "--cluster-secret-file FILE or $ATOLL_CLUSTER_SECRET_FILE "
                    "(not --cluster-secret: a value on the command line "
                    "shows in ps)\n",
                    argv[1]);
            return true;
        }
    }
    return false;
}

/* ATOLL_MALLOC_HUGEPAGES=1: run glibc's malloc on transparent huge pages
 * (glibc.malloc.hugetlb=1, glibc 2.35 and later; the kernel's THP mode
 * "madvise", Debian's default, is enough): a page fault per 2 MiB of heap
 * instead of per 4 KiB, and page tables 512 times smaller. At 1M tags that
 * halved a restart (9.1 to 4.4 s: the restore's allocations were mostly
 * page faults here) and the fork of each snapshot (103 to 52 ms). Not the
 * default: with it, probe requests early in a load saw 100-180 ms stalls
 * (direct compaction on fault is the suspect; not isolated). glibc reads the
 * setting from the environment at exec only, so the node execs itself once with
 * it (same pid), unless GLIBC_TUNABLES is set already (the operator's own). */
static void malloc_hugepages(char **argv)
{
    const char *opt = getenv("ATOLL_MALLOC_HUGEPAGES");
    /* the process keeps its name: an exec of /proc/self/exe names it
     * "exe" (ps, top, pgrep and the kernel's messages show that name) */
    const char *base = strrchr(argv[0], '/');
    prctl(PR_SET_NAME, base != NULL ? base + 1 : argv[0], 0, 0, 0);
    if (getenv("GLIBC_TUNABLES") != NULL || opt == NULL ||
        strcmp(opt, "1") != 0)
        return;
    if (setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1", 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    unsetenv("GLIBC_TUNABLES"); /* no exec: go on as we are */
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "serve") == 0) {
        malloc_hugepages(argv);
        return cmd_serve(argc - 2, argv + 2);
    }
    if (strcmp(argv[1], "help") == 0 && argc > 2 &&
        strcmp(argv[2], "serve") == 0) {
        char help[] = "--help";
        char *args[] = { help, NULL };
        return cmd_serve(1, args);
    }
    if (secret_on_line(argc, argv))
        return 2;
    if (strcmp(argv[1], "status") == 0)
        return node_cli_status(argc - 2, argv + 2);
    if (strcmp(argv[1], "members") == 0)
        return node_cli_members(argc - 2, argv + 2);
    if (strcmp(argv[1], "gc") == 0)
        return node_cli_gc(argc - 2, argv + 2);
    if (strcmp(argv[1], "copy") == 0)
        return node_cli_copy(argc - 2, argv + 2);
    if (strcmp(argv[1], "replication") == 0)
        return node_cli_replication(argc - 2, argv + 2);
    if (strcmp(argv[1], "users") == 0)
        return node_cli_users(argc - 2, argv + 2);
    if (strcmp(argv[1], "robots") == 0)
        return node_cli_robots(argc - 2, argv + 2);
    if (strcmp(argv[1], "token") == 0)
        return node_cli_token(argc - 2, argv + 2);
    if (strcmp(argv[1], "policy") == 0)
        return node_cli_policy(argc - 2, argv + 2);
    if (strcmp(argv[1], "cert") == 0)
        return node_cert_cli(argc - 2, argv + 2);
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("atoll %s\n", ATOLL_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "atoll: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
