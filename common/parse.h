/* Strict parsers for numbers, sizes, durations and booleans in config. */
#ifndef AT_PARSE_H
#define AT_PARSE_H

/* Whole-string decimal u64; no sign, no spaces, no overflow. 0 or AT_EINVAL. */
int at_parse_u64(const char *s, size_t len, uint64_t *out);
/* "4096", "64k", "4KiB", "10MB", "1GiB" (k/K/KB/KiB = 1024). */
int at_parse_size(const char *s, uint64_t *out);
/* "250ms", "30s", "5m", "1h", "2d"; a bare number is seconds. */
int at_parse_duration_ms(const char *s, uint64_t *out);
/* true/false, yes/no, on/off, 1/0. */
int at_parse_bool(const char *s, bool *out);

/* Comma-separated lists ("a:1,b:2"), as --join and peer lists are. */
/* Entries in list: commas + 1; 0 for "" or NULL. */
unsigned at_csv_count(const char *list);
/* Entry i (0-based, i < at_csv_count) copied into out (outsize bytes).
 * Returns 0, AT_ENOTFOUND (no such entry) or AT_ETOOBIG (empty entry or
 * one that does not fit; out is then ""). */
int at_csv_item(const char *list, unsigned i, char *out, size_t outsize);

#endif /* AT_PARSE_H */
