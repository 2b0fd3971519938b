PROTO_FILES := proto/atoll.proto
PROTO_SRCS := proto/proto.c
PROTO_ALLOW := common proto
