/* libFuzzer target: the htpasswd parser and the Basic credentials parser
 * on arbitrary bytes. */
#include "common/compat.h"

#include "node/auth/auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char errmsg[AT_ERRMSG_SIZE];
    struct node_auth_htpasswd *h = NULL;
    char user[NODE_AUTH_NAME_SIZE], password[NODE_AUTH_PASSWORD_MAX + 1];
    char *value;

    if (node_auth_htpasswd_parse((const char *)data, size, &h, errmsg) == 0) {
        /* every user it keeps is a valid name with a bcrypt hash */
        AT_ASSERT(node_auth_htpasswd_count(h) <= size / 62 + 1);
        node_auth_htpasswd_free(h);
    }
    value = at_strndup((const char *)data, size);
    if (node_auth_basic_parse(value, user, sizeof(user), password,
                              sizeof(password)) == 0) {
        AT_ASSERT(strlen(user) < sizeof(user));
        AT_ASSERT(strchr(user, ':') == NULL);
    }
    at_free(value);
    return 0;
}
