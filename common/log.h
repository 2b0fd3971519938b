/* One log sink for every module, with per-component levels, in text or in
 * JSON (one object per line). */
#ifndef AT_LOG_H
#define AT_LOG_H

enum at_log_level {
    AT_LOG_LEVEL_DEBUG = 0,
    AT_LOG_LEVEL_INFO,
    AT_LOG_LEVEL_WARN,
    AT_LOG_LEVEL_ERROR,
    AT_LOG_LEVEL_OFF,
};

enum at_log_format {
    AT_LOG_FORMAT_TEXT = 0, /* "<time> <LEVEL> <comp> <file>:<line> <msg>" */
    AT_LOG_FORMAT_JSON,     /* {"time":..,"level":..,"component":.., ...} */
};

/* Configure levels from a spec such as "info" or "warn,raft:debug,http:info".
 * Returns 0, or AT_EINVAL for an unparseable spec (levels left unchanged). */
int at_log_configure(const char *spec);

/* Choose the format by name, "text" or "json". Returns 0, or AT_EINVAL for
 * another name (format left unchanged). Call before other threads log. */
int at_log_set_format(const char *name);
enum at_log_format at_log_format(void);

/* Where lines go: stderr unless set (tests give a memory stream). f is
 * borrowed; NULL means stderr again. */
void at_log_set_stream(FILE *f);

/* True when a message of this level for this component would be written. */
bool at_log_enabled(const char *comp, enum at_log_level level);

/* Write one line (at most AT_LOG_LINE_MAX bytes; longer messages and fields
 * are cut short, the line stays valid). Text: "<time> <LEVEL> <comp>
 * <file>:<line> <msg>", with control characters of msg shown as \xNN so that
 * one message is one line. JSON: {"time","level","component","caller","msg"}
 * with strings escaped (control characters, and bytes that are not UTF-8
 * shown as U+FFFD). */
void at_log_write(const char *comp,
                  enum at_log_level level,
                  const char *file,
                  int line,
                  const char *func,
                  const char *fmt,
                  ...) AT_PRINTF(6, 7);

#define AT_LOG_LINE_MAX 8192

/* Batching, for an event loop's thread: from at_log_batch_start on, this
 * thread's lines below WARN collect in a buffer (64 KiB), written when it
 * is full, before a WARN or ERROR line of the thread, at at_log_flush (the
 * loop calls it before it waits for I/O), at at_log_batch_stop, at exit
 * and before an assertion aborts. One write then carries many lines: at
 * tens of thousands of requests a second, a write per access line would
 * cost more than the requests. Other threads write each line at once. */
void at_log_batch_start(void);
void at_log_flush(void);
void at_log_batch_stop(void);

/* A named value appended to a line: separate keys in JSON, " key=value"
 * in text (quoted and escaped when the value needs it). */
enum at_log_field_type {
    AT_LOG_FIELD_STR,   /* s (NULL shown as "-") */
    AT_LOG_FIELD_INT,   /* i */
    AT_LOG_FIELD_MICROS /* i microseconds, shown as milliseconds "1.234" */
};
struct at_log_field {
    const char *key; /* borrowed; letters, digits and '_' */
    enum at_log_field_type type;
    const char *s; /* borrowed */
    int64_t i;
};
#define AT_LOG_STR(k, v)              \
    {                                 \
        (k), AT_LOG_FIELD_STR, (v), 0 \
    }
#define AT_LOG_INT(k, v)                          \
    {                                             \
        (k), AT_LOG_FIELD_INT, NULL, (int64_t)(v) \
    }
#define AT_LOG_MICROS(k, v)                          \
    {                                                \
        (k), AT_LOG_FIELD_MICROS, NULL, (int64_t)(v) \
    }

/* at_log_write with nf fields after the message (fields borrowed). */
void at_log_write_fields(const char *comp,
                         enum at_log_level level,
                         const char *file,
                         int line,
                         const struct at_log_field *fields,
                         size_t nf,
                         const char *fmt,
                         ...) AT_PRINTF(7, 8);

/* Escape n bytes of s as the inside of a JSON string into dst (cap bytes,
 * cap > 0), NUL-terminated: '"', '\\' and control characters escaped,
 * invalid UTF-8 (stray continuation bytes, overlong forms, surrogates,
 * code points over U+10FFFF, truncated sequences) replaced byte by byte
 * with \ufffd. Never splits an escape or a character: stops early when the
 * next one does not fit. Returns the bytes written (without the NUL). */
size_t at_log_json_escape(char *dst, size_t cap, const char *s, size_t n);

#ifndef AT_LOG_COMP
#define AT_LOG_COMP "atoll"
#endif

#define AT_LOG_(level, ...)                                                \
    do {                                                                   \
        if (at_log_enabled(AT_LOG_COMP, level))                            \
            at_log_write(AT_LOG_COMP, level, __FILE__, __LINE__, __func__, \
                         __VA_ARGS__);                                     \
    } while (0)

#define LOG_DEBUG(...) AT_LOG_(AT_LOG_LEVEL_DEBUG, __VA_ARGS__)
#define LOG_INFO(...)  AT_LOG_(AT_LOG_LEVEL_INFO, __VA_ARGS__)
#define LOG_WARN(...)  AT_LOG_(AT_LOG_LEVEL_WARN, __VA_ARGS__)
#define LOG_ERROR(...) AT_LOG_(AT_LOG_LEVEL_ERROR, __VA_ARGS__)

/* An audit line (component "audit", at info): who changed what, from
 * where, at which log index. */
#define LOG_AUDIT(...)                                                   \
    do {                                                                 \
        if (at_log_enabled("audit", AT_LOG_LEVEL_INFO))                  \
            at_log_write("audit", AT_LOG_LEVEL_INFO, __FILE__, __LINE__, \
                         __func__, __VA_ARGS__);                         \
    } while (0)

/* A line with fields: LOG_FIELDS(AT_LOG_LEVEL_INFO, f, n, "fmt", ...). */
#define LOG_FIELDS(level, fields, nf, ...)                              \
    do {                                                                \
        if (at_log_enabled(AT_LOG_COMP, level))                         \
            at_log_write_fields(AT_LOG_COMP, level, __FILE__, __LINE__, \
                                fields, nf, __VA_ARGS__);               \
    } while (0)

#endif /* AT_LOG_H */
