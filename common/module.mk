COMMON_SRCS := common/err.c common/log.c common/alloc.c common/buf.c \
	common/digest.c common/clock.c common/parse.c common/map.c \
	common/testbug.c common/base64.c common/dmap.c
COMMON_ALLOW := common
