# gossip/ is SWIM membership with the Lifeguard refinements, as a state
# machine: time and packets come through callbacks, so the same code runs
# over UDP (node/) and in the unit tests' deterministic simulator; and the
# sealing of its packets (seal.c).
GOSSIP_SRCS := gossip/seal.c gossip/msg.c gossip/members.c \
	gossip/broadcast.c gossip/suspicion.c gossip/core.c gossip/receive.c \
	gossip/wire.c
GOSSIP_ALLOW := common proto gossip
