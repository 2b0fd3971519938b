/* One log sink for every module, with per-component levels. */
#ifndef AT_LOG_H
#define AT_LOG_H

enum at_log_level {
    AT_LOG_LEVEL_DEBUG = 0,
    AT_LOG_LEVEL_INFO,
    AT_LOG_LEVEL_WARN,
    AT_LOG_LEVEL_ERROR,
    AT_LOG_LEVEL_OFF,
};

/* Configure levels from a spec such as "info" or "warn,raft:debug,http:info".
 * Returns 0, or AT_EINVAL for an unparseable spec (levels left unchanged). */
int at_log_configure(const char *spec);

/* True when a message of this level for this component would be written. */
bool at_log_enabled(const char *comp, enum at_log_level level);

/* Write one line: "<time> <LEVEL> <comp> <file>:<line> <msg>" to stderr. */
void at_log_write(const char *comp,
                  enum at_log_level level,
                  const char *file,
                  int line,
                  const char *func,
                  const char *fmt,
                  ...) AT_PRINTF(6, 7);

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

#endif /* AT_LOG_H */
