/* Log sink: level filtering per component, one line per message on stderr,
 * as text or as one JSON object per line.
 *
 * A line is built in a buffer on the stack and written with one fwrite:
 * stdio locks the stream, so lines of different threads never interleave,
 * and nothing is allocated. A message or field that does not fit is cut
 * short; a JSON line always stays one valid object. */
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
static const char *level_json[] = { "debug", "info", "warn", "error", "off" };

static enum at_log_format format = AT_LOG_FORMAT_TEXT;
static FILE *stream; /* borrowed; NULL: stderr */

#define BATCH_SIZE (64 * 1024)
static _Thread_local char *batch; /* owned; NULL: not batching */
static _Thread_local size_t batch_len;

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
int at_log_set_format(const char *name)
{
    if (strcmp(name, "text") == 0)
        format = AT_LOG_FORMAT_TEXT;
    else if (strcmp(name, "json") == 0)
        format = AT_LOG_FORMAT_JSON;
    else
        return AT_EINVAL;
    return 0;
}

/* see log.h */
enum at_log_format at_log_format(void)
{
    return format;
}

/* see log.h */
void at_log_set_stream(FILE *f)
{
    stream = f;
}

static FILE *out(void)
{
    return stream != NULL ? stream : stderr;
}

/* see log.h */
void at_log_flush(void)
{
    if (batch_len > 0) {
        fwrite(batch, 1, batch_len, out());
        batch_len = 0;
    }
}

static void flush_at_exit(void)
{
    at_log_flush();
}

/* see log.h */
void at_log_batch_start(void)
{
    static bool registered;

    if (batch != NULL)
        return;
    /* not at_malloc: alloc.c logs through here (an include cycle); without
     * memory, lines are simply written one by one */
    batch = malloc(BATCH_SIZE);
    batch_len = 0;
    /* exit() runs on the thread that batches in the node (the loop's) */
    if (!registered && atexit(flush_at_exit) == 0)
        registered = true;
}

/* see log.h */
void at_log_batch_stop(void)
{
    at_log_flush();
    free(batch);
    batch = NULL;
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

/* ---- escaping ---- */

/* Length of the valid UTF-8 sequence at s (n bytes left, s[0] >= 0x80),
 * or 0 when it is not one (RFC 3629: no overlong forms, no surrogates,
 * nothing over U+10FFFF). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xbf;
    size_t len;

    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong below */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates above */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f; /* over U+10FFFF above */
    } else {
        return 0; /* a continuation byte, or c0, c1, f5..ff */
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

/* see log.h */
size_t at_log_json_escape(char *dst, size_t cap, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t out = 0, i = 0;

    while (i < n) {
        unsigned char c = u[i];
        char esc[8];
        const char *p = esc;
        size_t len = 0, take = 1;

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            len = 2;
        } else if (c < 0x20) {
            static const char shorts[] = "btn\0fr"; /* \b \t \n - \f \r */
            esc[0] = '\\';
            if (c >= '\b' && c <= '\r' && shorts[c - '\b'] != '\0') {
                esc[1] = shorts[c - '\b'];
                len = 2;
            } else {
                memcpy(esc + 1, "u00", 3);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                len = 6;
            }
        } else if (c < 0x80) {
            p = s + i;
            len = 1;
        } else if ((take = utf8_len(u + i, n - i)) != 0) {
            p = s + i;
            len = take;
        } else {
            p = "\\ufffd";
            len = 6;
            take = 1;
        }
        if (out + len >= cap)
            break;
        memcpy(dst + out, p, len);
        out += len;
        i += take;
    }
    dst[out] = '\0';
    return out;
}

/* ---- building a line ---- */

/* The closing "}\n" and a NUL always fit after LINE_ROOM bytes. */
#define LINE_ROOM (AT_LOG_LINE_MAX - 4)
#define MSG_MAX   4096
/* kept for the fields of a line that has them */
#define FIELDS_ROOM 2048

struct line {
    size_t len; /* <= LINE_ROOM */
    char buf[AT_LOG_LINE_MAX];
};

static size_t room(const struct line *l)
{
    return LINE_ROOM - l->len;
}

/* Append n bytes, or as many as fit. */
static void put(struct line *l, const char *s, size_t n)
{
    n = AT_MIN(n, room(l));
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void puts_(struct line *l, const char *s)
{
    put(l, s, strlen(s));
}

/* A JSON string of at most max bytes with its quotes, which are always
 * balanced (the room check comes first). */
static void put_jstr_max(struct line *l, const char *s, size_t n, size_t max)
{
    size_t avail = AT_MIN(room(l), max);

    if (avail < 2)
        return;
    l->buf[l->len++] = '"';
    /* the escape's NUL lands where the closing quote goes */
    l->len += at_log_json_escape(l->buf + l->len, avail - 1, s, n);
    l->buf[l->len++] = '"';
}

static void put_jstr(struct line *l, const char *s, size_t n)
{
    put_jstr_max(l, s, n, SIZE_MAX);
}

/* A text value: control characters as \xNN, and with quoted, also '"' and
 * '\\' escaped. */
static void put_text(struct line *l, const char *s, size_t n, bool quoted)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < n && room(l) > 0; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[4] = { '\\', 'x', hex[c >> 4], hex[c & 15] };

        if (c < 0x20 || c == 0x7f) {
            if (room(l) < 4)
                return;
            put(l, esc, 4);
        } else if (quoted && (c == '"' || c == '\\')) {
            if (room(l) < 2)
                return;
            esc[1] = (char)c;
            put(l, esc, 2);
        } else {
            l->buf[l->len++] = (char)c;
        }
    }
}

/* A text value that a split on spaces keeps whole goes bare. */
static bool text_bare(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= ' ' || c == 0x7f || c == '"' || c == '\\' || c == '=')
            return false;
    }
    return true;
}

/* RFC 3339 UTC with milliseconds. The seconds part is formatted once per
 * second and thread. */
static void put_time(struct line *l)
{
    static _Thread_local time_t last_sec = (time_t)-1;
    static _Thread_local char last_ts[32];
    struct timespec now;
    char ms[8];

    clock_gettime(CLOCK_REALTIME, &now);
    if (now.tv_sec != last_sec) {
        struct tm tm;
        gmtime_r(&now.tv_sec, &tm);
        strftime(last_ts, sizeof(last_ts), "%Y-%m-%dT%H:%M:%S", &tm);
        last_sec = now.tv_sec;
    }
    puts_(l, last_ts);
    snprintf(ms, sizeof(ms), ".%03dZ", (int)(now.tv_nsec / 1000000));
    puts_(l, ms);
}

static void put_num(struct line *l, const struct at_log_field *f)
{
    char num[32];
    int n;

    if (f->type == AT_LOG_FIELD_MICROS) {
        int64_t v = f->i < 0 ? 0 : f->i;
        n = snprintf(num, sizeof(num), "%" PRId64 ".%03d", v / 1000,
                     (int)(v % 1000));
    } else {
        n = snprintf(num, sizeof(num), "%" PRId64, f->i);
    }
    put(l, num, (size_t)n);
}

static void put_fields_json(struct line *l,
                            const struct at_log_field *fields,
                            size_t nf)
{
    for (size_t i = 0; i < nf; i++) {
        const struct at_log_field *f = &fields[i];
        const char *s = f->s != NULL ? f->s : "-";

        /* key, quotes, separators and a number, or skip: never half */
        if (room(l) < strlen(f->key) + 40)
            return;
        put(l, ",", 1);
        put_jstr(l, f->key, strlen(f->key));
        put(l, ":", 1);
        if (f->type == AT_LOG_FIELD_STR)
            put_jstr(l, s, strlen(s));
        else
            put_num(l, f);
    }
}

static void put_fields_text(struct line *l,
                            const struct at_log_field *fields,
                            size_t nf)
{
    for (size_t i = 0; i < nf; i++) {
        const struct at_log_field *f = &fields[i];
        const char *s = f->s != NULL ? f->s : "-";

        put(l, " ", 1);
        puts_(l, f->key);
        put(l, "=", 1);
        if (f->type != AT_LOG_FIELD_STR) {
            put_num(l, f);
        } else if (text_bare(s)) {
            put_text(l, s, strlen(s), false);
        } else {
            put(l, "\"", 1);
            put_text(l, s, strlen(s), true);
            put(l, "\"", 1);
        }
    }
}

static void log_vwrite(const char *comp,
                       enum at_log_level level,
                       const char *file,
                       int line,
                       const struct at_log_field *fields,
                       size_t nf,
                       const char *fmt,
                       va_list ap) AT_PRINTF(7, 0);

static void log_vwrite(const char *comp,
                       enum at_log_level level,
                       const char *file,
                       int line,
                       const struct at_log_field *fields,
                       size_t nf,
                       const char *fmt,
                       va_list ap)
{
    struct line l;
    char msg[MSG_MAX];
    char where[64];
    const char *base = strrchr(file, '/');
    int mlen = vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t mn = mlen < 0 ? 0 : AT_MIN((size_t)mlen, sizeof(msg) - 1);

    l.len = 0;
    snprintf(where, sizeof(where), "%s:%d", base != NULL ? base + 1 : file,
             line);
    if (format == AT_LOG_FORMAT_JSON) {
        puts_(&l, "{\"time\":\"");
        put_time(&l);
        puts_(&l, "\",\"level\":\"");
        puts_(&l, level_json[level]);
        puts_(&l, "\",\"component\":");
        put_jstr(&l, comp, strlen(comp));
        puts_(&l, ",\"caller\":");
        put_jstr(&l, where, strlen(where));
        puts_(&l, ",\"msg\":");
        /* a long message is cut before the fields are */
        put_jstr_max(&l, msg, mn, nf > 0 ? room(&l) - FIELDS_ROOM : SIZE_MAX);
        put_fields_json(&l, fields, nf);
        l.buf[l.len++] = '}';
    } else {
        char lvl[8];
        put_time(&l);
        snprintf(lvl, sizeof(lvl), " %-5s ", level_names[level]);
        puts_(&l, lvl);
        puts_(&l, comp);
        put(&l, " ", 1);
        puts_(&l, where);
        put(&l, " ", 1);
        put_text(&l, msg, mn, false);
        put_fields_text(&l, fields, nf);
    }
    l.buf[l.len++] = '\n';
    if (batch != NULL && level < AT_LOG_LEVEL_WARN) {
        if (batch_len + l.len > BATCH_SIZE)
            at_log_flush();
        memcpy(batch + batch_len, l.buf, l.len);
        batch_len += l.len;
        return;
    }
    at_log_flush();
    fwrite(l.buf, 1, l.len, out());
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
    va_list ap;

    AT_UNUSED(func);
    va_start(ap, fmt);
    log_vwrite(comp, level, file, line, NULL, 0, fmt, ap);
    va_end(ap);
}

/* see log.h */
void at_log_write_fields(const char *comp,
                         enum at_log_level level,
                         const char *file,
                         int line,
                         const struct at_log_field *fields,
                         size_t nf,
                         const char *fmt,
                         ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vwrite(comp, level, file, line, fields, nf, fmt, ap);
    va_end(ap);
}
