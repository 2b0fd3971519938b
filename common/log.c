/* Log sink: level filtering per component, one line per message on stderr. */
#include "common/compat.h"

#include <pthread.h>
#include <time.h>

#include "common/err.h"
#include "common/log.h"

#define MAX_COMPS 16

struct comp_level {
    char name[24];
    enum at_log_level level;
};

static enum at_log_level default_level = AT_LOG_LEVEL_INFO;
static struct comp_level comps[MAX_COMPS];
static int ncomps;

static const char *level_names[] = { "DEBUG", "INFO", "WARN", "ERROR", "OFF" };

static int parse_level(const char *s, size_t n, enum at_log_level *out)
{
    for (int i = 0; i < (int)AT_ARRAY_SIZE(level_names); i++) {
        if (strlen(level_names[i]) == n &&
            strncasecmp(s, level_names[i], n) == 0) {
            *out = (enum at_log_level)i;
            return 0;
        }
    }
    return AT_EINVAL;
}

/* see log.h */
int at_log_configure(const char *spec)
{
    enum at_log_level def = default_level;
    struct comp_level tmp[MAX_COMPS];
    int n = 0;
    const char *p = spec;

    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        const char *colon = memchr(p, ':', len);
        enum at_log_level lvl;

        if (len == 0) {
            /* skip empty items */
        } else if (colon == NULL) {
            if (parse_level(p, len, &lvl) != 0)
                return AT_EINVAL;
            def = lvl;
        } else {
            size_t nlen = (size_t)(colon - p);
            if (nlen == 0 || nlen >= sizeof(tmp[0].name) || n == MAX_COMPS)
                return AT_EINVAL;
            if (parse_level(colon + 1, len - nlen - 1, &lvl) != 0)
                return AT_EINVAL;
            memcpy(tmp[n].name, p, nlen);
            tmp[n].name[nlen] = '\0';
            tmp[n].level = lvl;
            n++;
        }
        p = end != NULL ? end + 1 : NULL;
    }
    default_level = def;
    memcpy(comps, tmp, sizeof(tmp[0]) * (size_t)n);
    ncomps = n;
    return 0;
}

/* see log.h */
bool at_log_enabled(const char *comp, enum at_log_level level)
{
    for (int i = 0; i < ncomps; i++) {
        if (strcmp(comps[i].name, comp) == 0)
            return level >= comps[i].level;
    }
    return level >= default_level;
}

/* see log.h */
void at_log_write(const char *comp,
                  enum at_log_level level,
                  const char *file,
                  int line,
                  const char *func,
                  const char *fmt,
                  ...)
{
    char msg[1024];
    char ts[32];
    struct timespec now;
    struct tm tm;
    va_list ap;
    const char *base = strrchr(file, '/');

    AT_UNUSED(func);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    /* One fprintf per line: stdio locks the stream, lines never interleave. */
    fprintf(stderr, "%s.%03ldZ %-5s %s %s:%d %s\n", ts, now.tv_nsec / 1000000,
            level_names[level], comp, base != NULL ? base + 1 : file, line,
            msg);
}
