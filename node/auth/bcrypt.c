/* bcrypt through libxcrypt: make a hash, check a password against one.
 * Both are slow on purpose (about 80 ms at cost 10) and block: callers run
 * them in the thread pool, never on the loop. This is the one file that
 * includes <crypt.h>. */
#include "common/compat.h"

#include <crypt.h>

#include "node/auth/internal.h"

/* see internal.h */
bool node_auth__equal(const char *a, const char *b)
{
    size_t n = strlen(a);
    size_t m = strlen(b);
    unsigned char diff = n == m ? 0 : 1;

    /* time depends on the length of a (the stored side) only */
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ (i < m ? b[i] : 0));
    return diff == 0;
}

/* see internal.h */
int node_auth__bcrypt_hash(const char *secret,
                           unsigned cost,
                           char *out,
                           size_t size)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data *cd;
    const char *h;
    int rv = AT_EINVAL;

    /* NULL random bytes: libxcrypt draws them from the kernel */
    if (crypt_gensalt_rn("$2b$", cost, NULL, 0, salt, sizeof(salt)) == NULL)
        return AT_EINVAL;
    cd = at_calloc(1, sizeof(*cd));
    h = crypt_r(secret, salt, cd);
    if (h != NULL && h[0] == '$' && strlen(h) < size) {
        memcpy(out, h, strlen(h) + 1);
        rv = 0;
    }
    explicit_bzero(cd, sizeof(*cd));
    at_free(cd);
    return rv;
}

/* see internal.h */
bool node_auth__bcrypt_check(const char *secret, const char *hash)
{
    struct crypt_data *cd = at_calloc(1, sizeof(*cd));
    const char *h = crypt_r(secret, hash, cd);
    /* a failed crypt_r returns NULL or a string starting with '*' */
    bool ok = h != NULL && h[0] == '$' && node_auth__equal(hash, h);

    explicit_bzero(cd, sizeof(*cd));
    at_free(cd);
    return ok;
}
