/* Semantic versions and ranges (semver.c), for the tag filters of
 * replication rules ("tags": {"semver": ">=1.2.0 <2.0.0"}).
 *
 * A version is MAJOR[.MINOR[.PATCH]] with an optional leading 'v', then
 * an optional -PRERELEASE and +BUILD (build is ignored): "v1.2", "1.2.3",
 * "2.0.0-rc.1". A missing part is 0.
 *
 * A range is one or more sets joined by "||"; a set is comparators
 * separated by spaces, all of which must hold: "<", "<=", ">", ">=", "="
 * (or none) before a version, "^1.2.3" (>=1.2.3 <2.0.0; ^0.2.3 is
 * <0.3.0), "~1.2.3" (>=1.2.3 <1.3.0). Versions compare as semver 2.0.0
 * says (a pre-release is lower than its release; identifiers compare
 * numerically when both are numbers). */
#ifndef NODE_SEMVER_H
#define NODE_SEMVER_H

#include "common/common.h"

#define NODE_SEMVER_RANGE_MAX 256 /* bytes */
#define NODE_SEMVER_TERMS_MAX 32  /* comparators in a range */

struct node_semver {
    uint64_t v[3];
    char pre[64]; /* "" when none */
};

struct node_semver_range {
    struct {
        int op; /* '<', 'l' (<=), '>', 'g' (>=), '=' */
        struct node_semver v;
        bool ends_set; /* the last comparator of its set */
    } t[NODE_SEMVER_TERMS_MAX];
    size_t n;
};

/* Parse a version (a tag). 0 or AT_EINVAL. */
int node_semver_parse(const char *s, struct node_semver *out);
/* <0, 0, >0 as a is lower, equal to or higher than b. */
int node_semver_cmp(const struct node_semver *a, const struct node_semver *b);
/* Parse a range. 0, or AT_EINVAL with errmsg. */
int node_semver_range_parse(const char *s,
                            struct node_semver_range *out,
                            char *errmsg);
/* Is tag a version inside the range? */
bool node_semver_range_has(const struct node_semver_range *r, const char *tag);

#endif /* NODE_SEMVER_H */
