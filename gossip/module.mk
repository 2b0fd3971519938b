GOSSIP_SRCS := gossip/seal.c
GOSSIP_ALLOW := common proto gossip
