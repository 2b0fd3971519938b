/* Token signing keys: the FSM keeps the newest META_TOKEN_KEYS_KEEP
 * TokenKeyPut records in log order. Apply is deterministic (the proposer
 * generated the key and read the clock) and checks every bound, so a
 * command from an older or hostile proposer cannot grow the state; it
 * never parses the key (the node does, when it loads the set). */
#include "common/compat.h"

#define AT_LOG_COMP "raft"

#include "raft/token_keys.h"

/* see meta.h */
bool meta_token_kid_ok(const char *kid)
{
    size_t n = kid != NULL ? strlen(kid) : 0;

    if (n == 0 || n > META_TOKEN_KID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = kid[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* A PEM block of printable text within bounds. */
static bool pem_ok(const char *pem)
{
    size_t n = pem != NULL ? strlen(pem) : 0;

    if (n == 0 || n > META_TOKEN_PEM_MAX ||
        strncmp(pem, "-----BEGIN ", 11) != 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((pem[i] < ' ' || pem[i] > '~') && pem[i] != '\n' && pem[i] != '\r')
            return false;
    }
    return true;
}

static void tkey_release(struct meta_tkey *k)
{
    at_free(k->kid);
    if (k->pem != NULL)
        explicit_bzero(k->pem, strlen(k->pem));
    at_free(k->pem);
}

static bool kid_kept(const struct meta_fsm *f, const char *kid)
{
    for (size_t i = 0; i < f->ntkeys; i++) {
        if (strcmp(f->tkeys[i].kid, kid) == 0)
            return true;
    }
    return false;
}

/* Append a checked key as the newest, dropping the oldest beyond the
 * bound. */
static void tkey_append(struct meta_fsm *f,
                        uint64_t index,
                        const Atoll__TokenKeyPut *o)
{
    struct meta_tkey *k;

    if (f->tkeys == NULL)
        f->tkeys = at_calloc(META_TOKEN_KEYS_KEEP, sizeof(*f->tkeys));
    if (f->ntkeys == META_TOKEN_KEYS_KEEP) {
        tkey_release(&f->tkeys[0]);
        memmove(&f->tkeys[0], &f->tkeys[1],
                (META_TOKEN_KEYS_KEEP - 1) * sizeof(*f->tkeys));
        f->ntkeys--;
    }
    k = &f->tkeys[f->ntkeys++];
    k->kid = at_strdup(o->kid);
    k->pem = at_strdup(o->private_key_pem);
    k->pub.kid = k->kid;
    k->pub.pem = k->pem;
    k->pub.created_ms = o->created_ms;
    k->pub.index = index;
}

/* see token_keys.h */
int meta__token_key_put(struct meta_fsm *f,
                        uint64_t index,
                        const Atoll__TokenKeyPut *o)
{
    if (o == NULL || !meta_token_kid_ok(o->kid) || !pem_ok(o->private_key_pem))
        return META_INVALID;
    if ((o->if_none && f->ntkeys > 0) || kid_kept(f, o->kid))
        return META_ACCOUNT_EXISTS;
    tkey_append(f, index, o);
    return META_OK;
}

/* see token_keys.h */
void meta__token_keys_each(const struct meta_fsm *f,
                           meta_token_key_cb each,
                           void *data)
{
    for (size_t i = 0; i < f->ntkeys; i++)
        each(data, &f->tkeys[i].pub);
}

/* see token_keys.h */
int meta__token_keys_restore(struct meta_fsm *f,
                             const Atoll__Snapshot *s,
                             char *errmsg)
{
    uint64_t last = 0;

    if (s->n_token_keys > META_TOKEN_KEYS_KEEP)
        goto bad;
    for (size_t i = 0; i < s->n_token_keys; i++) {
        const Atoll__SnapTokenKey *sk = s->token_keys[i];
        if (sk == NULL || sk->key == NULL || !meta_token_kid_ok(sk->key->kid) ||
            !pem_ok(sk->key->private_key_pem) || kid_kept(f, sk->key->kid) ||
            sk->index < last)
            goto bad;
        last = sk->index;
        tkey_append(f, sk->index, sk->key);
    }
    return 0;
bad:
    at_errmsg_printf(errmsg, "snapshot: malformed token signing keys");
    return AT_ECORRUPT;
}

/* see token_keys.h */
void meta__token_keys_release(struct meta_fsm *f)
{
    for (size_t i = 0; i < f->ntkeys; i++)
        tkey_release(&f->tkeys[i]);
    at_free(f->tkeys);
    f->tkeys = NULL;
    f->ntkeys = 0;
}
