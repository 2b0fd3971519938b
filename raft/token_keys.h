/* Token signing keys in the FSM (token_keys.c): apply of TokenKeyPut,
 * reads, and their part of snapshots. */
#ifndef META_TOKEN_KEYS_H
#define META_TOKEN_KEYS_H

#include "proto/proto.h"
#include "raft/state.h"

/* One kept key; pub borrows the owned strings. */
struct meta_tkey {
    struct meta_token_key pub;
    char *kid; /* owned */
    char *pem; /* owned; wiped when freed */
};

/* Apply a TokenKeyPut at log index: META_OK, META_ACCOUNT_EXISTS (if_none
 * with a key present, or a kid already kept), META_INVALID (out of
 * bounds). */
int meta__token_key_put(struct meta_fsm *f,
                        uint64_t index,
                        const Atoll__TokenKeyPut *o);
/* Each key, oldest first. */
void meta__token_keys_each(const struct meta_fsm *f,
                           meta_token_key_cb each,
                           void *data);
/* Fill the keys of a fresh FSM from a snapshot (none in older ones):
 * AT_ECORRUPT with errmsg for a malformed or duplicate key, or too
 * many. */
int meta__token_keys_restore(struct meta_fsm *f,
                             const Atoll__Snapshot *s,
                             char *errmsg);
void meta__token_keys_release(struct meta_fsm *f);

#endif /* META_TOKEN_KEYS_H */
