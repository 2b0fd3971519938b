/* Cron schedules (cron.c): the five fields of crontab(5) in UTC, for
 * replication rules ("schedule": "*\/15 * * * *").
 *
 *   minute (0-59) hour (0-23) day-of-month (1-31) month (1-12)
 *   day-of-week (0-7, 0 and 7 are Sunday)
 *
 * Each field is "*", a number, a range "a-b", a list "a,b-c", or any of
 * these with a step "/n" ("*\/15", "1-30/2"). As in cron, when both
 * day-of-month and day-of-week are restricted a day matches either.
 * Names (jan, mon) and the @ shortcuts are not taken. */
#ifndef NODE_CRON_H
#define NODE_CRON_H

#include <time.h>

#include "common/common.h"

#define NODE_CRON_MAX 128 /* bytes of a schedule */

struct node_cron {
    uint64_t minute; /* bit n: minute n */
    uint32_t hour;
    uint32_t dom;   /* bits 1-31 */
    uint16_t month; /* bits 1-12 */
    uint8_t dow;    /* bits 0-6 */
    bool dom_any, dow_any;
};

/* Parse s. 0, or AT_EINVAL with errmsg. */
int node_cron_parse(const char *s, struct node_cron *out, char *errmsg);

/* Does the schedule fire in the minute that starts at t (UTC)? */
bool node_cron_matches(const struct node_cron *c, time_t t);

#endif /* NODE_CRON_H */
