/* Error codes and error message helpers. */
#include "common/compat.h"

#include "common/err.h"

/* see err.h */
const char *at_strerror(int rv)
{
    switch (rv) {
    case 0:
        return "ok";
#define AT_ERR_CASE(name, value, text) \
    case value:                        \
        return text;
        AT_ERRNO_MAP(AT_ERR_CASE)
#undef AT_ERR_CASE
    default:
        return "unknown error";
    }
}

/* see err.h */
int at_err_from_errno(int neg_errno)
{
    switch (-neg_errno) {
    case 0:
        return 0;
    case ENOMEM:
        return AT_ENOMEM;
    case ENOSPC:
    case EDQUOT:
        return AT_ENOSPC;
    case ENOENT:
        return AT_ENOTFOUND;
    case EEXIST:
        return AT_EEXIST;
    case EINVAL:
        return AT_EINVAL;
    case EFBIG:
    case E2BIG:
        return AT_ETOOBIG;
    case ETIMEDOUT:
        return AT_ETIMEDOUT;
    case ECANCELED:
        return AT_ECANCELED;
    case EBUSY:
        return AT_EBUSY;
    default:
        return AT_EIO;
    }
}

/* see err.h */
void at_errmsg_printf(char *errmsg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, AT_ERRMSG_SIZE, fmt, ap);
    va_end(ap);
}

/* see err.h */
void at_errmsg_wrapf(char *errmsg, const char *fmt, ...)
{
    char prefix[AT_ERRMSG_SIZE];
    char old[AT_ERRMSG_SIZE];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, errmsg, AT_ERRMSG_SIZE);
    old[AT_ERRMSG_SIZE - 1] = '\0';
    snprintf(errmsg, AT_ERRMSG_SIZE, "%s: %s", prefix, old);
}
