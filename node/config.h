/* Node configuration: defaults < YAML file (--config) < ATOLL_* env < flags. */
#ifndef NODE_CONFIG_H
#define NODE_CONFIG_H

#include "common/common.h"

struct node_config {
    char *config_file; /* --config FILE */
    char *listen;      /* "127.0.0.1:5000" */
    char *data_dir;    /* "./data" */
    char *raft_dir;    /* "" = <data_dir>/raft */
    char *name;        /* "" = hostname */
    char *log_level;   /* "info" (spec as for at_log_configure) */
    char *log_format;  /* "text" | "json" */
    bool access_log;   /* a line per API request (component access) */
    char *tls_cert;    /* "": plain HTTP; else PEM certificate + chain (API) */
    char *tls_key;     /* "": with tls_cert, its PEM key */
    char *peer_tls_ca; /* "": plain peer traffic; else the cluster CA */
    char *peer_tls_cert;         /* with peer_tls_ca: this node's certificate */
    char *peer_tls_key;          /* with peer_tls_ca: its key */
    uint64_t reserve_bytes;      /* refuse uploads below this free space */
    uint64_t upload_ttl_ms;      /* purge idle uploads after; 24h */
    uint64_t max_manifest_bytes; /* 4 MiB */
    uint64_t header_timeout_ms;  /* 30s */
    uint64_t idle_timeout_ms;    /* 60s */
    uint64_t body_timeout_ms;    /* 60s */
    uint64_t write_timeout_ms;   /* 60s */
    uint64_t shutdown_grace_ms;  /* 10s */
    uint64_t election_timeout_ms;  /* 1000 */
    uint64_t heartbeat_timeout_ms; /* 100 */
    uint64_t leader_wait_ms;       /* 5s: no leader: wait for one */
    uint64_t raft_reserve_bytes;   /* 64MiB free in the raft dir */
    uint64_t snapshot_threshold;   /* 16384 */
    uint64_t snapshot_trailing;    /* 4096 */
    bool snapshot_fetch;           /* true: fetch snapshot files (raft) */
    /* cluster (issue 3) */
    char *peer_listen; /* "127.0.0.1:5001" */
    char *join; /* "" = bootstrap; else peer addresses/DNS names, comma list */
    uint64_t bootstrap_expect; /* 0 = off; else wait for N, one bootstraps */
    char *cluster_secret;      /* "" (never printed); filled from the file */
    char *cluster_secret_file; /* "" */
    char *role;                /* "voter" | "standby" | "edge" */
    char *read_consistency;    /* "linearizable" | "local" ("": by role) */
    uint64_t target_voters;    /* 3 (1, 3 or 5) */
    char *region;              /* "" */
    char *zone;                /* "" */
    char *advertise;           /* "": listen host, or hostname if wildcard */
    char *min_copies;          /* "auto" (2 with >= 2 nodes, else 1) or N */
    uint64_t copy_wait_ms;     /* 30s: manifest PUT waits for copies */
    bool force_new_cluster;    /* recovery after losing quorum: make this
                                  node the only voter (once) */
    uint64_t gc_grace_ms;      /* 1h: GC keeps younger unreferenced blobs */
    uint64_t gc_interval_ms;   /* 0 = no scheduled GC */
    uint64_t gc_scan_delay_ms; /* 30s: orphan scan after start/restore */
    bool gc_untagged;          /* GC also collects untagged manifests */
    /* gossip and autopilot (issue 13) */
    bool gossip;                           /* SWIM over UDP (with a secret) */
    uint64_t gossip_probe_interval_ms;     /* 1s */
    uint64_t gossip_probe_timeout_ms;      /* 500ms */
    uint64_t gossip_interval_ms;           /* 200ms */
    uint64_t gossip_suspicion_mult;        /* 4 */
    uint64_t gossip_retransmit_mult;       /* 4 */
    uint64_t gossip_push_pull_interval_ms; /* 30s */
    char *gossip_keyring_file; /* "": extra secrets that open, never seal */
    bool leave_on_terminate;   /* SIGTERM: leave the cluster for good */
    bool autopilot;            /* leader manages voters */
    uint64_t autopilot_dead_after_ms; /* 2m: replace a voter dead this long */
    uint64_t autopilot_stabilization_ms; /* 10s: alive+caught up before voter */
    uint64_t autopilot_max_lag;          /* 250 entries: "caught up" */
    uint64_t autopilot_reap_after_ms;    /* 72h: remove a standby dead this long
                                            (0: never) */
    bool auto_rejoin; /* removed while away: join again with a new raft dir */
    /* accounts (issue 12) */
    uint64_t bcrypt_cost;       /* 10 (4..31): new password hashes */
    char *htpasswd;             /* "": none; else node-local users */
    uint64_t auth_cache_ttl_ms; /* 60s: verified credentials kept */
    char *token_issuer;         /* "atoll": iss of bearer tokens */
    char *token_service;        /* "atoll": aud, the challenge's service */
    char *token_realm;          /* "": <scheme>://<host>/_atoll/token */
    uint64_t token_ttl_ms;      /* 300s (>= 60s): bearer token lifetime */
    char *auth;           /* "auto" | "on" | "off": access control on the API */
    char *auth_challenge; /* "basic" | "bearer": the API's 401 challenge */
    /* events (issue 17) */
    char *events_url;           /* "": none; else receivers, comma list */
    char *events_secret_file;   /* "": unsigned */
    char *events_tls_ca;        /* "": system CAs */
    bool events_pull;           /* also manifest GETs */
    uint64_t events_queue;      /* 10000 per receiver */
    uint64_t events_timeout_ms; /* 5s per attempt */
};

/* Fill defaults, then the YAML file named by --config / ATOLL_CONFIG, then
 * ATOLL_* variables from envp, then flags from argv (argv[0] is the first
 * flag, not the program name). Returns 0, AT_EINVAL with errmsg for bad input
 * (unknown key or flag, bad value, unreadable file), or 1 when --help was
 * given (usage already printed to stdout). */
int node_config_load(struct node_config *c,
                     int argc,
                     char **argv,
                     char **envp,
                     char *errmsg);
void node_config_release(struct node_config *c);
/* The first line of a secret file (option key, for messages): 1 to
 * NODE_SECRET_MAX bytes into *out (caller frees). Returns 0, or AT_EINVAL
 * with errmsg naming the option and the file. */
#define NODE_SECRET_MAX 4096
int node_config_read_secret(const char *key,
                            const char *path,
                            char **out,
                            char *errmsg);
/* Print every option: flag, env var, YAML key, default, help. */
void node_config_usage(FILE *f);

/* ---- the option table (config.c), read by the loader (config_load.c);
 * not for other callers ---- */
enum node_opt_type {
    NODE_OPT_STRING,
    NODE_OPT_SIZE,
    NODE_OPT_DURATION,
    NODE_OPT_UINT,
    NODE_OPT_BOOL,
};

struct node_opt {
    const char *key;  /* YAML key */
    const char *flag; /* command-line flag */
    const char *env;  /* environment variable */
    enum node_opt_type type;
    size_t offset; /* into struct node_config */
    const char *def;
    const char *help;
    bool secret;  /* never print the value */
    bool no_yaml; /* not settable from the file (e.g. the file itself) */
    /* Extra validation of a string value; NULL = none. */
    int (*check)(const char *value, char *why, size_t whylen);
};

/* The table, a row per option ([0] is the config file itself): defaults,
 * YAML keys, ATOLL_* variables, flags and usage all follow from it. */
extern const struct node_opt node_opts[];
extern const size_t node_nopts;
/* More rows than this is a build mistake (the loader refuses to run). */
#define NODE_OPTS_MAX 192

#endif /* NODE_CONFIG_H */
