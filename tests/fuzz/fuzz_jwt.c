/* libFuzzer target: token verification, the claims check and base64url
 * decoding on arbitrary bytes; whatever they accept must be within the
 * bounds of jwt.h. */
#include "common/compat.h"

#include "node/auth/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The key of every kid the input names: a signature can then be checked
 * (and fail) on any well-formed header. */
static struct node_jwt_key *key;

static const struct node_jwt_key *find(void *d, const char *kid)
{
    AT_UNUSED(d);
    AT_UNUSED(kid);
    return key;
}

static void bounds(const struct node_jwt_claims *c)
{
    AT_ASSERT(c->naccess <= NODE_JWT_ACCESS_MAX);
    AT_ASSERT(strlen(c->sub) <= NODE_JWT_SUB_MAX);
    for (size_t i = 0; i < c->naccess; i++)
        AT_ASSERT(strlen(c->access[i].name) <= NODE_JWT_NAME_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char errmsg[AT_ERRMSG_SIZE];
    struct node_jwt_check chk = { "atoll",           "atoll", 1700000000,
                                  NODE_JWT_LEEWAY_S, find,    NULL };
    struct node_jwt_claims c;
    uint8_t out[256];

    if (key == NULL && node_jwt_key_new(&key, errmsg) != 0)
        return 0;
    if (node_jwt_verify((const char *)data, size, &chk, &c, errmsg) == 0)
        bounds(&c); /* a forgery would have to get here */
    memset(&c, 0, sizeof(c));
    if (node_jwt_claims_parse((const char *)data, size, &chk, &c, errmsg) == 0)
        bounds(&c);
    long n = node_jwt_b64url_decode((const char *)data, size, out, sizeof(out));
    AT_ASSERT(n <= (long)sizeof(out) && n <= (long)size);
    return 0;
}
