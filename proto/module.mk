PROTO_FILES := proto/atoll.proto proto/gossip.proto
PROTO_SRCS := proto/proto.c proto/peer.c
PROTO_ALLOW := common proto
