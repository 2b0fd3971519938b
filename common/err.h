/* Error codes shared by every module, and their text. */
#ifndef AT_ERR_H
#define AT_ERR_H

#define AT_ERRMSG_SIZE 256

/* X(name, value, text) */
#define AT_ERRNO_MAP(X)                    \
    X(AT_ENOMEM, -1, "out of memory")      \
    X(AT_EINVAL, -2, "invalid argument")   \
    X(AT_ETOOBIG, -3, "too big")           \
    X(AT_EPROTO, -4, "protocol error")     \
    X(AT_ECORRUPT, -5, "corrupt data")     \
    X(AT_EIO, -6, "i/o error")             \
    X(AT_ENOSPC, -7, "no space left")      \
    X(AT_ENOTFOUND, -8, "not found")       \
    X(AT_EEXIST, -9, "already exists")     \
    X(AT_EBUSY, -10, "busy")               \
    X(AT_EDIGEST, -11, "digest mismatch")  \
    X(AT_ERANGE, -12, "out of range")      \
    X(AT_ECANCELED, -13, "canceled")       \
    X(AT_ENOTLEADER, -14, "not leader")    \
    X(AT_EUNKNOWN, -15, "outcome unknown") \
    X(AT_ESHUTDOWN, -16, "shutting down")  \
    X(AT_ETIMEDOUT, -17, "timed out")      \
    X(AT_EUNSUPPORTED, -18, "unsupported") \
    X(AT_EAGAIN, -19, "try again later")

enum {
#define AT_ERR_ENUM(name, value, text) name = value,
    AT_ERRNO_MAP(AT_ERR_ENUM)
#undef AT_ERR_ENUM
};

/* Text of an AT_E* code (or "ok" for 0). Never NULL. */
const char *at_strerror(int rv);

/* Map a negative errno value (as libuv returns) to an AT_E* code. */
int at_err_from_errno(int neg_errno);

/* Write a message into a caller's AT_ERRMSG_SIZE buffer. */
void at_errmsg_printf(char *errmsg, const char *fmt, ...) AT_PRINTF(2, 3);

/* Prepend context to an existing message: "<context>: <old message>". */
void at_errmsg_wrapf(char *errmsg, const char *fmt, ...) AT_PRINTF(2, 3);

#endif /* AT_ERR_H */
