/* atoll copy: an image (or every tag of a repository) from one registry to
 * another, digests kept: the command line around the copy engine
 * (copy.h) and the registry client (regclient.h). Credentials come from
 * files, never from the command line; errors go to stderr with the
 * registry's words (exit 1), usage errors exit 2. */
#include "common/compat.h"

#include <regex.h>
#include <stdio.h>
#include <unistd.h>

#include "common/common.h"
#include "node/cli.h"
#include "node/config.h"
#include "node/copy.h"
#include "node/creds.h"
#include "node/ratelimit.h"
#include "node/regclient.h"
#include "node/replication_rules.h"

struct side {
    char *base; /* owned: "https://host:port" */
    char *repo; /* owned */
    char *ref;  /* owned: a tag or a digest; NULL: none given */
    const char *creds_file;
    const char *ca;
    bool verify;
    struct node_regclient *c; /* owned */
};

struct copier {
    struct side src, dst;
    /* --all-tags: which tags (POSIX extended regexes, unanchored) */
    regex_t include, exclude;
    bool has_include, has_exclude;
    struct node_semver_range semver;
    bool has_semver;
    bool delete_missing;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: atoll copy [options] SRC DEST\n"
            "  SRC, DEST: [http://|https://]HOST[:PORT]/REPO[:TAG|@DIGEST]\n"
            "  (https unless http:// is given; DEST without a tag or digest\n"
            "  takes SRC's)\n"
            "  --all-tags                 every tag of SRC's repository\n"
            "  --tags-regex RE            with --all-tags: only the tags RE "
            "matches\n"
            "                             (POSIX extended, unanchored: "
            "'^v[0-9]+\\.')\n"
            "  --exclude-regex RE         and none that RE matches\n"
            "  --semver RANGE             and only versions in RANGE "
            "('>=1.2 <2', '^1.4')\n"
            "  --delete-missing           with --all-tags: delete from DEST "
            "the tags these\n"
            "                             filters select that SRC no longer "
            "has\n"
            "  --src-creds-file FILE      'user:password' on its first line, "
            "or JSON by\n"
            "                             host, or a Docker config.json\n"
            "  --dest-creds-file FILE\n"
            "  --src-ca FILE, --dest-ca FILE   PEM CAs to trust (https)\n"
            "  --src-tls-verify BOOL, --dest-tls-verify BOOL (true)\n"
            "  --timeout DURATION         connect limit and stall limit "
            "(30s)\n"
            "  --rate N                   at most N requests per second to "
            "each host\n");
}

/* "[scheme://]host[:port]/repo[:tag|@digest]" */
static int parse_ref(const char *s, struct side *sd)
{
    const char *scheme = "https://";
    if (strncmp(s, "https://", 8) == 0) {
        s += 8;
    } else if (strncmp(s, "http://", 7) == 0) {
        scheme = "http://";
        s += 7;
    } else if (strncmp(s, "docker://", 9) == 0) {
        s += 9;
    }
    const char *slash = strchr(s, '/');
    if (slash == NULL || slash == s || slash[1] == '\0')
        return AT_EINVAL;
    sd->base = at_asprintf("%s%.*s", scheme, (int)(slash - s), s);
    const char *repo = slash + 1;
    const char *at = strchr(repo, '@');
    const char *last_slash = strrchr(repo, '/');
    const char *colon = strrchr(repo, ':');
    if (at != NULL) {
        sd->repo = at_strndup(repo, (size_t)(at - repo));
        sd->ref = at_strdup(at + 1);
    } else if (colon != NULL && (last_slash == NULL || colon > last_slash)) {
        sd->repo = at_strndup(repo, (size_t)(colon - repo));
        sd->ref = at_strdup(colon + 1);
    } else {
        sd->repo = at_strdup(repo);
    }
    return sd->repo[0] != '\0' && (sd->ref == NULL || sd->ref[0] != '\0')
               ? 0
               : AT_EINVAL;
}

/* The client of a side, with its credentials file read. */
static int side_open(struct side *sd,
                     uint64_t timeout_ms,
                     double rate,
                     const char *what)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    char *text = NULL, *user = NULL, *pass = NULL;
    int rv;

    if (sd->creds_file != NULL) {
        rv = node_creds_read(what, sd->creds_file, &text, errmsg);
        if (rv == 0)
            rv = node_creds_for(text, sd->base, &user, &pass, errmsg);
        node_creds_wipe(text);
        if (rv != 0) {
            fprintf(stderr, "atoll copy: %s '%s': %s\n", what, sd->creds_file,
                    errmsg);
            return rv;
        }
    }
    struct node_regclient_opts o = {
        .base = sd->base,
        .username = user,
        .password = pass,
        .ca_file = sd->ca,
        .tls_verify = sd->verify,
        .timeout_ms = timeout_ms,
        .rate = rate,
    };
    rv = node_regclient_new(&sd->c, &o, errmsg);
    node_creds_wipe(user);
    node_creds_wipe(pass);
    if (rv != 0)
        fprintf(stderr, "atoll copy: %s: %s\n", sd->base, errmsg);
    return rv;
}

static void side_release(struct side *sd)
{
    node_regclient_free(sd->c);
    at_free(sd->base);
    at_free(sd->repo);
    at_free(sd->ref);
}

static bool regex_flag(const char *v, regex_t *re, bool *has)
{
    char errmsg[AT_ERRMSG_SIZE] = "";
    if (*has)
        regfree(re);
    *has = node_repl_regex_ok(v, errmsg) &&
           regcomp(re, v, REG_EXTENDED | REG_NOSUB) == 0;
    if (!*has)
        fprintf(stderr, "atoll copy: %s\n", errmsg);
    return *has;
}

static void copier_release(struct copier *cp)
{
    side_release(&cp->src);
    side_release(&cp->dst);
    if (cp->has_include)
        regfree(&cp->include);
    if (cp->has_exclude)
        regfree(&cp->exclude);
}

static bool bool_flag(const char *v, bool *out)
{
    return at_parse_bool(v, out) == 0;
}

/* see cli.h */
int node_cli_copy(int argc, char **argv)
{
    struct copier cp = { .src = { .verify = true }, .dst = { .verify = true } };
    const char *pos[2] = { NULL, NULL };
    unsigned npos = 0;
    bool all = false;
    uint64_t timeout_ms = 30000;
    double rate = 0;
    int rv = 0;

    for (int i = 0; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--all-tags") == 0) {
            all = true;
        } else if (strcmp(argv[i], "--delete-missing") == 0) {
            cp.delete_missing = true;
        } else if ((v = node_cli_flag(argc, argv, &i, "--tags-regex"))) {
            if (!regex_flag(v, &cp.include, &cp.has_include))
                goto bad;
        } else if ((v = node_cli_flag(argc, argv, &i, "--semver"))) {
            char errmsg[AT_ERRMSG_SIZE] = "";
            if (node_semver_range_parse(v, &cp.semver, errmsg) != 0) {
                fprintf(stderr, "atoll copy: %s\n", errmsg);
                goto bad;
            }
            cp.has_semver = true;
        } else if ((v = node_cli_flag(argc, argv, &i, "--exclude-regex"))) {
            if (!regex_flag(v, &cp.exclude, &cp.has_exclude))
                goto bad;
        } else if ((v = node_cli_flag(argc, argv, &i, "--src-creds-file"))) {
            cp.src.creds_file = v;
        } else if ((v = node_cli_flag(argc, argv, &i, "--dest-creds-file"))) {
            cp.dst.creds_file = v;
        } else if ((v = node_cli_flag(argc, argv, &i, "--src-ca"))) {
            cp.src.ca = v;
        } else if ((v = node_cli_flag(argc, argv, &i, "--dest-ca"))) {
            cp.dst.ca = v;
        } else if ((v = node_cli_flag(argc, argv, &i, "--src-tls-verify"))) {
            if (!bool_flag(v, &cp.src.verify))
                goto bad;
        } else if ((v = node_cli_flag(argc, argv, &i, "--dest-tls-verify"))) {
            if (!bool_flag(v, &cp.dst.verify))
                goto bad;
        } else if ((v = node_cli_flag(argc, argv, &i, "--timeout"))) {
            if (at_parse_duration_ms(v, &timeout_ms) != 0 || timeout_ms == 0)
                goto bad;
        } else if ((v = node_cli_flag(argc, argv, &i, "--rate"))) {
            char *end;
            rate = strtod(v, &end);
            if (*end != '\0' || !(rate > 0 && rate <= NODE_RATE_MAX))
                goto bad;
        } else if (argv[i][0] != '-' && npos < 2) {
            pos[npos++] = argv[i];
        } else {
            goto bad;
        }
    }
    if (npos != 2 || parse_ref(pos[0], &cp.src) != 0 ||
        parse_ref(pos[1], &cp.dst) != 0 || (all && cp.src.ref != NULL) ||
        (!all && cp.src.ref == NULL) ||
        (!all && (cp.has_include || cp.has_exclude || cp.has_semver ||
                  cp.delete_missing)))
        goto bad;
    if (cp.dst.ref == NULL && cp.src.ref != NULL)
        cp.dst.ref = at_strdup(cp.src.ref);
    if (side_open(&cp.src, timeout_ms, rate, "--src-creds-file") != 0 ||
        side_open(&cp.dst, timeout_ms, rate, "--dest-creds-file") != 0) {
        rv = 1;
        goto out;
    }
    struct node_copy e = {
        .src = cp.src.c,
        .dst = cp.dst.c,
        .src_repo = cp.src.repo,
        .dst_repo = cp.dst.repo,
        .include = cp.has_include ? &cp.include : NULL,
        .exclude = cp.has_exclude ? &cp.exclude : NULL,
        .semver = cp.has_semver ? &cp.semver : NULL,
        .delete_missing = cp.delete_missing,
    };
    rv = all ? node_copy_repo(&e) : node_copy_image(&e, cp.src.ref, cp.dst.ref);
    printf("copied %" PRIu64 " manifest(s) and %" PRIu64 " blob(s), %" PRIu64
           " bytes; already there: %" PRIu64 " manifest(s), %" PRIu64
           " blob(s); deleted %" PRIu64 " tag(s)\n",
           e.manifests, e.blobs, e.bytes, e.manifests_there, e.blobs_there,
           e.deleted);
    rv = rv == 0 ? 0 : 1;
out:
    copier_release(&cp);
    return rv;
bad:
    usage(stderr);
    copier_release(&cp);
    return 2;
}
