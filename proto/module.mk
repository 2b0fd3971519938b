PROTO_FILES := proto/atoll.proto
PROTO_SRCS := proto/proto.c proto/peer.c
PROTO_ALLOW := common proto
