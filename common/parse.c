/* Strict parsers for config values. */
#include "common/compat.h"

#include <strings.h>

#include "common/err.h"
#include "common/parse.h"

/* see parse.h */
int at_parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 20)
        return AT_EINVAL;
    for (size_t i = 0; i < len; i++) {
        unsigned d;
        if (s[i] < '0' || s[i] > '9')
            return AT_EINVAL;
        d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return AT_EINVAL;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

struct unit {
    const char *name;
    uint64_t mult;
};

static int parse_with_units(const char *s,
                            const struct unit *units,
                            size_t nunits,
                            uint64_t bare,
                            uint64_t *out)
{
    size_t n = 0;
    uint64_t v;
    const char *suffix;

    while (s[n] >= '0' && s[n] <= '9')
        n++;
    if (at_parse_u64(s, n, &v) != 0)
        return AT_EINVAL;
    suffix = s + n;
    while (*suffix == ' ')
        suffix++;
    if (*suffix == '\0') {
        if (bare != 0 && v > UINT64_MAX / bare)
            return AT_EINVAL;
        *out = v * bare;
        return 0;
    }
    for (size_t i = 0; i < nunits; i++) {
        if (strcasecmp(suffix, units[i].name) == 0) {
            if (v != 0 && v > UINT64_MAX / units[i].mult)
                return AT_EINVAL;
            *out = v * units[i].mult;
            return 0;
        }
    }
    return AT_EINVAL;
}

/* see parse.h */
int at_parse_size(const char *s, uint64_t *out)
{
    static const struct unit units[] = {
        { "b", 1 },
        { "k", 1ull << 10 },
        { "kb", 1ull << 10 },
        { "kib", 1ull << 10 },
        { "m", 1ull << 20 },
        { "mb", 1ull << 20 },
        { "mib", 1ull << 20 },
        { "g", 1ull << 30 },
        { "gb", 1ull << 30 },
        { "gib", 1ull << 30 },
        { "t", 1ull << 40 },
        { "tb", 1ull << 40 },
        { "tib", 1ull << 40 },
    };
    return parse_with_units(s, units, AT_ARRAY_SIZE(units), 1, out);
}

/* see parse.h */
int at_parse_duration_ms(const char *s, uint64_t *out)
{
    static const struct unit units[] = {
        { "ms", 1 },
        { "s", 1000 },
        { "m", 60 * 1000 },
        { "h", 3600 * 1000 },
        { "d", 24 * 3600 * 1000 },
    };
    return parse_with_units(s, units, AT_ARRAY_SIZE(units), 1000, out);
}

/* see parse.h */
int at_parse_bool(const char *s, bool *out)
{
    static const char *yes[] = { "true", "yes", "on", "1" };
    static const char *no[] = { "false", "no", "off", "0" };
    for (size_t i = 0; i < AT_ARRAY_SIZE(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return AT_EINVAL;
}

/* see parse.h */
unsigned at_csv_count(const char *list)
{
    unsigned n = 1;

    if (list == NULL || list[0] == '\0')
        return 0;
    for (; *list != '\0'; list++)
        n += *list == ',';
    return n;
}

/* see parse.h */
int at_csv_item(const char *list, unsigned i, char *out, size_t outsize)
{
    if (outsize > 0)
        out[0] = '\0';
    if (i >= at_csv_count(list))
        return AT_ENOTFOUND;
    for (; i > 0; i--)
        list = strchr(list, ',') + 1;
    size_t len = strcspn(list, ",");
    if (len == 0 || len >= outsize)
        return AT_ETOOBIG;
    memcpy(out, list, len);
    out[len] = '\0';
    return 0;
}
