/* Growable byte buffer with an optional size bound. */
#ifndef AT_BUF_H
#define AT_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct at_buf {
    char *data; /* owned; always NUL-terminated when len < cap */
    size_t len;
    size_t cap;
    size_t max; /* 0 = unbounded; appends past it fail with AT_ETOOBIG */
};

void at_buf_init(struct at_buf *b, size_t max);
/* Frees the contents; the struct may be reused after at_buf_init. */
void at_buf_release(struct at_buf *b);
void at_buf_reset(struct at_buf *b);
/* Ensure room for n more bytes (plus a NUL). 0 or AT_ETOOBIG. */
int at_buf_reserve(struct at_buf *b, size_t n);
int at_buf_append(struct at_buf *b, const void *p, size_t n);
int at_buf_puts(struct at_buf *b, const char *s);
int at_buf_printf(struct at_buf *b, const char *fmt, ...) AT_PRINTF(2, 3);
/* The same with a va_list (ap is consumed). On error the buffer is as it
 * was: AT_ETOOBIG past max, AT_EINVAL for a bad format. */
int at_buf_vprintf(struct at_buf *b, const char *fmt, va_list ap)
    AT_PRINTF(2, 0);
/* Append s as a JSON string literal, quotes included. */
int at_buf_json_str(struct at_buf *b, const char *s, size_t n);
/* Hand the data out (caller frees with free()); the buffer becomes empty. */
char *at_buf_take(struct at_buf *b, size_t *len);

#endif /* AT_BUF_H */
