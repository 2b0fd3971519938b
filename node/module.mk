# node/main.c is linked only into the atoll binary; the rest is in libatoll.a
NODE_LIB_SRCS := node/http.c node/url.c node/api.c node/blobs.c node/uploads.c \
	node/manifests.c node/manifest_parse.c node/config.c node/server.c node/cli.c \
	node/peer.c node/peer_api.c node/fetch.c node/proxy.c node/gc.c \
	node/replicate.c node/placement.c node/verify.c
NODE_ALLOW := common proto storage raft node
