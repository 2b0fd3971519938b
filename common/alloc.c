/* Allocation wrappers and the assertion failure path. */
#include "common/compat.h"

#include <execinfo.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/check.h"
#include "common/log.h"

AT_NORETURN static void oom(size_t n)
{
    fprintf(stderr, "fatal: out of memory allocating %zu bytes\n", n);
    abort();
}

/* see alloc.h */
void *at_malloc(size_t n)
{
    void *p = malloc(n != 0 ? n : 1);
    if (p == NULL)
        oom(n);
    return p;
}

/* see alloc.h */
void *at_calloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb != 0 ? nmemb : 1, size != 0 ? size : 1);
    if (p == NULL)
        oom(nmemb * size);
    return p;
}

/* see alloc.h */
void *at_realloc(void *p, size_t n)
{
    void *q = realloc(p, n != 0 ? n : 1);
    if (q == NULL)
        oom(n);
    return q;
}

/* see alloc.h */
char *at_strdup(const char *s)
{
    return at_memdup(s, strlen(s) + 1);
}

/* see alloc.h */
char *at_strndup(const char *s, size_t n)
{
    char *p = at_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

/* see alloc.h */
void *at_memdup(const void *p, size_t n)
{
    void *q = at_malloc(n);
    if (n > 0)
        memcpy(q, p, n);
    return q;
}

/* see alloc.h */
char *at_asprintf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    int rv;

    va_start(ap, fmt);
    rv = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (rv < 0)
        oom(0);
    return s;
}

/* see check.h */
void at_assert_fail(const char *expr,
                    const char *file,
                    int line,
                    const char *func)
{
    void *frames[32];
    int n;

    at_log_flush(); /* the lines that led here first */
    fprintf(stderr, "assertion failed: %s (%s:%d %s)\n", expr, file, line,
            func);
    n = backtrace(frames, (int)AT_ARRAY_SIZE(frames));
    backtrace_symbols_fd(frames, n, STDERR_FILENO);
    abort();
}
