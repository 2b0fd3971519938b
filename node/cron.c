/* Cron schedules: see cron.h. */
#include "common/compat.h"

#include <stdlib.h>

#include "common/common.h"
#include "node/cron.h"

/* A number at *p within [lo, hi]; *p moves past it. */
static bool number(const char **p, unsigned lo, unsigned hi, unsigned *out)
{
    unsigned v = 0;
    const char *s = *p;
    if (*s < '0' || *s > '9')
        return false;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (unsigned)(*s - '0');
        if (v > 100)
            return false;
        s++;
    }
    if (v < lo || v > hi)
        return false;
    *p = s;
    *out = v;
    return true;
}

/* One field, s[0..n), into bits; *any when it is a bare "*". */
static bool field(const char *s,
                  size_t n,
                  unsigned lo,
                  unsigned hi,
                  uint64_t *bits,
                  bool *any)
{
    char buf[64];
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    *bits = 0;
    *any = strcmp(buf, "*") == 0;
    for (const char *p = buf;;) {
        unsigned a, b, step = 1;
        if (*p == '*') {
            a = lo;
            b = hi;
            p++;
        } else {
            if (!number(&p, lo, hi, &a))
                return false;
            b = a;
            if (*p == '-') {
                p++;
                if (!number(&p, a, hi, &b))
                    return false;
            }
        }
        if (*p == '/') {
            p++;
            if (!number(&p, 1, hi + 1, &step))
                return false;
        }
        for (unsigned v = a; v <= b; v += step)
            *bits |= (uint64_t)1 << v;
        if (*p == '\0')
            return true;
        if (*p != ',')
            return false;
        p++;
    }
}

/* see cron.h */
int node_cron_parse(const char *s, struct node_cron *out, char *errmsg)
{
    static const unsigned lo[5] = { 0, 0, 1, 1, 0 };
    static const unsigned hi[5] = { 59, 23, 31, 12, 7 };
    uint64_t bits[5];
    bool any[5];
    const char *p = s;

    memset(out, 0, sizeof(*out));
    if (strlen(s) > NODE_CRON_MAX)
        goto bad;
    for (int i = 0; i < 5; i++) {
        while (*p == ' ' || *p == '\t')
            p++;
        size_t n = strcspn(p, " \t");
        if (!field(p, n, lo[i], hi[i], &bits[i], &any[i]))
            goto bad;
        p += n;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != '\0')
        goto bad;
    out->minute = bits[0];
    out->hour = (uint32_t)bits[1];
    out->dom = (uint32_t)bits[2];
    out->month = (uint16_t)bits[3];
    out->dow = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7f); /* 7 is 0 */
    out->dom_any = any[2];
    out->dow_any = any[4];
    return 0;
bad:
    at_errmsg_printf(errmsg,
                     "schedule '%.60s': want five cron fields (minute hour "
                     "day-of-month month day-of-week: *, n, a-b, lists, "
                     "/step)",
                     s);
    return AT_EINVAL;
}

/* see cron.h */
bool node_cron_matches(const struct node_cron *c, time_t t)
{
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL)
        return false;
    bool dom = (c->dom >> tm.tm_mday) & 1;
    bool dow = (c->dow >> tm.tm_wday) & 1;
    bool day = c->dom_any && c->dow_any ? true
               : c->dom_any             ? dow
               : c->dow_any             ? dom
                                        : dom || dow;
    return ((c->minute >> tm.tm_min) & 1) && ((c->hour >> tm.tm_hour) & 1) &&
           ((c->month >> (tm.tm_mon + 1)) & 1) && day;
}
