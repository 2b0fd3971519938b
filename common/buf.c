/* Growable byte buffer. */
#include "common/compat.h"

#include "common/alloc.h"
#include "common/buf.h"
#include "common/err.h"

/* see buf.h */
void at_buf_init(struct at_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

/* see buf.h */
void at_buf_release(struct at_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

/* see buf.h */
void at_buf_reset(struct at_buf *b)
{
    b->len = 0;
    if (b->data != NULL)
        b->data[0] = '\0';
}

/* see buf.h */
int at_buf_reserve(struct at_buf *b, size_t n)
{
    size_t need;
    size_t cap;

    if (n > SIZE_MAX - b->len - 1)
        return AT_ETOOBIG;
    need = b->len + n + 1;
    if (b->max != 0 && need - 1 > b->max)
        return AT_ETOOBIG;
    if (need <= b->cap)
        return 0;
    cap = b->cap != 0 ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    b->data = at_realloc(b->data, cap);
    b->cap = cap;
    return 0;
}

/* see buf.h */
int at_buf_append(struct at_buf *b, const void *p, size_t n)
{
    int rv = at_buf_reserve(b, n);
    if (rv != 0)
        return rv;
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

/* see buf.h */
int at_buf_puts(struct at_buf *b, const char *s)
{
    return at_buf_append(b, s, strlen(s));
}

/* see buf.h: formats into the spare room first, so a short append that
 * fits (the common case) costs one vsnprintf, not two */
int at_buf_vprintf(struct at_buf *b, const char *fmt, va_list ap)
{
    size_t room = b->cap > b->len ? b->cap - b->len : 0;
    va_list ap2;
    int n;
    int rv;

    va_copy(ap2, ap);
    n = vsnprintf(room > 0 ? b->data + b->len : NULL, room, fmt, ap2);
    va_end(ap2);
    if (n >= 0 && (size_t)n < room &&
        (b->max == 0 || (size_t)n <= b->max - b->len)) {
        b->len += (size_t)n;
        return 0;
    }
    if (room > 0)
        b->data[b->len] = '\0'; /* undo a truncated attempt */
    if (n < 0)
        return AT_EINVAL;
    rv = at_buf_reserve(b, (size_t)n);
    if (rv != 0)
        return rv;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

/* see buf.h */
int at_buf_printf(struct at_buf *b, const char *fmt, ...)
{
    va_list ap;
    int rv;

    va_start(ap, fmt);
    rv = at_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rv;
}

/* see buf.h */
int at_buf_json_str(struct at_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    int rv = at_buf_reserve(b, n + 2);
    size_t plain = 0;

    if (rv != 0)
        return rv;
    while (plain < n && s[plain] != '"' && s[plain] != '\\' &&
           (unsigned char)s[plain] >= 0x20)
        plain++;
    if (plain == n) {
        /* Nothing to escape (names, tags, digests): one copy. */
        b->data[b->len++] = '"';
        memcpy(b->data + b->len, s, n);
        b->len += n;
        b->data[b->len++] = '"';
        b->data[b->len] = '\0';
        return 0;
    }
    b->data[b->len++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7];
        size_t elen = 0;

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            elen = 2;
        } else if (c < 0x20) {
            esc[0] = '\\';
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            elen = 6;
        }
        rv = elen != 0 ? at_buf_append(b, esc, elen)
                       : at_buf_append(b, (const char *)&c, 1);
        if (rv != 0)
            return rv;
    }
    return at_buf_append(b, "\"", 1);
}

/* see buf.h */
char *at_buf_take(struct at_buf *b, size_t *len)
{
    char *p = b->data;
    if (len != NULL)
        *len = b->len;
    if (p == NULL)
        p = at_strdup("");
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
