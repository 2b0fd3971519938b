# node/ is the process (config, wiring, front, admin, metrics, CLI) and its
# sub-rooms: http/ (the HTTP server), reply/ (the handlers' context and
# reply toolkit), auth/ (who is asking: accounts, bcrypt, htpasswd),
# cluster/ (peer listener and client, fetch, relay, copies, placement, GC
# runs), oci/ (the registry API). node/main.c is linked only
# into the atoll binary; the rest is in libatoll.a.
NODE_HTTP_SRCS := node/http/conn.c node/http/tcp.c node/http/mem.c \
	node/http/file.c node/http/framing.c node/http/parse.c \
	node/http/body.c node/http/request.c node/http/response.c \
	node/http/recycle.c node/http/tables.c node/http/listener.c \
	node/http/url.c node/http/tls.c node/http/tls_ctx.c node/http/pump.c \
	node/http/push.c
NODE_REPLY_SRCS := node/reply/context.c node/reply/reply.c
NODE_AUTH_SRCS := node/auth/bcrypt.c node/auth/basic.c node/auth/cache.c \
	node/auth/htpasswd.c node/auth/verify.c node/auth/source.c \
	node/auth/jwt.c node/auth/access.c node/auth/limit.c
NODE_CLUSTER_SRCS := node/cluster/peer.c node/cluster/peer_front.c node/cluster/peer_reply.c \
	node/cluster/peer_raft.c node/cluster/peer_leader.c \
	node/cluster/peer_members.c node/cluster/peer_blobs.c \
	node/cluster/peer_hooks.c node/cluster/peer_gossip.c \
	node/cluster/peer_snapshot.c \
	node/cluster/gossip.c node/cluster/gossip_join.c node/cluster/gossip_addr.c \
	node/cluster/fetch.c node/cluster/fetch_table.c node/cluster/holders.c \
	node/cluster/relay.c node/cluster/proxy.c node/cluster/replicate.c \
	node/cluster/repl_scan.c \
	node/cluster/placement.c node/cluster/setting_put.c node/cluster/gc.c node/cluster/verify.c \
	node/cluster/bootstrap.c node/cluster/pullthrough.c
NODE_OCI_SRCS := node/oci/names.c node/oci/route.c node/oci/router.c \
	node/oci/listing.c node/oci/blobs.c node/oci/uploads.c \
	node/oci/manifests.c node/oci/manifest_parse.c
NODE_LIB_SRCS := $(NODE_HTTP_SRCS) $(NODE_REPLY_SRCS) $(NODE_AUTH_SRCS) \
	$(NODE_CLUSTER_SRCS) $(NODE_OCI_SRCS) node/config.c node/config_load.c node/server.c \
	node/cli.c node/cli_http.c node/cli_yaml.c node/cli_auth.c node/cli_accounts.c node/cli_token.c node/cli_copy.c node/cli_replication.c \
	node/join.c node/front.c node/admin.c node/admin_auth.c node/accounts.c node/token.c \
	node/token_http.c node/cli_policy.c node/gate.c node/policy.c \
	node/webhook.c node/changes.c node/events.c node/regclient.c node/copy.c node/cron.c node/semver.c node/replication_rules.c node/replication.c node/replication_http.c node/upstream.c node/ratelimit.c node/creds.c node/metrics.c node/metrics_http.c node/metrics_process.c node/loop_lag.c node/cert.c node/access_log.c
NODE_ALLOW := common proto storage raft gossip node
