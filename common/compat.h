/* First include of every .c file: feature macros, common headers, bans. */
#ifndef AT_COMPAT_H
#define AT_COMPAT_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AT_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define AT_UNUSED(x)     ((void)(x))
#define AT_MIN(a, b)     ((a) < (b) ? (a) : (b))
#define AT_MAX(a, b)     ((a) > (b) ? (a) : (b))
#define AT_CONTAINER_OF(ptr, type, field) \
    ((type *)((char *)(ptr)-offsetof(type, field)))

#if defined(__GNUC__)
#define AT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define AT_NORETURN     __attribute__((noreturn))
#else
#define AT_PRINTF(f, a)
#define AT_NORETURN
#endif

/* Functions that are easy to misuse: use snprintf, memcpy with a checked
 * length, strtoul with end checks, gmtime_r/localtime_r. */
#undef strcpy
#define strcpy(d, s) BANNED_strcpy(d, s)
#undef strcat
#define strcat(d, s) BANNED_strcat(d, s)
#undef strncpy
#define strncpy(d, s, n) BANNED_strncpy(d, s, n)
#undef sprintf
#define sprintf(...) BANNED_sprintf(__VA_ARGS__)
#undef strtok
#define strtok(s, d) BANNED_strtok(s, d)
#undef gmtime
#define gmtime(t) BANNED_gmtime(t)
#undef localtime
#define localtime(t) BANNED_localtime(t)
#undef atoi
#define atoi(s) BANNED_atoi(s)

#endif /* AT_COMPAT_H */
