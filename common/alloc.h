/* Allocation that aborts with a message on out-of-memory. */
#ifndef AT_ALLOC_H
#define AT_ALLOC_H

void *at_malloc(size_t n);
void *at_calloc(size_t nmemb, size_t size);
void *at_realloc(void *p, size_t n);
char *at_strdup(const char *s);
char *at_strndup(const char *s, size_t n);
void *at_memdup(const void *p, size_t n);
char *at_asprintf(const char *fmt, ...) AT_PRINTF(1, 2);
#define at_free(p) free(p)

#endif /* AT_ALLOC_H */
