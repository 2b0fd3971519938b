/* Small tables of the HTTP server: status reasons, method names, Range. */
#include "common/compat.h"

#define AT_LOG_COMP "http"

#include "common/common.h"
#include "node/http/internal.h"

/* see internal.h */
const char *node_http__status_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

/* see internal.h */
enum node_http_method node_http__method_map(uint8_t m)
{
    switch (m) {
    case HTTP_GET:
        return NODE_HTTP_GET;
    case HTTP_HEAD:
        return NODE_HTTP_HEAD;
    case HTTP_POST:
        return NODE_HTTP_POST;
    case HTTP_PUT:
        return NODE_HTTP_PUT;
    case HTTP_PATCH:
        return NODE_HTTP_PATCH;
    case HTTP_DELETE:
        return NODE_HTTP_DELETE;
    case HTTP_OPTIONS:
        return NODE_HTTP_OPTIONS;
    default:
        return NODE_HTTP_OTHER;
    }
}

/* ---- Range ---- */

static int parse_digits(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;

    if (n == 0)
        return AT_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return AT_EINVAL;
        if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
            return AT_EINVAL;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/* see http.h */
int node_http_parse_range(const char *value,
                          uint64_t size,
                          uint64_t *start,
                          uint64_t *end)
{
    const char *spec, *dash;
    size_t len;
    uint64_t a, b;

    if (value == NULL || strncasecmp(value, "bytes=", 6) != 0)
        return AT_EINVAL;
    spec = value + 6;
    len = strlen(spec);
    /* Optional whitespace around the single range-spec. */
    while (len > 0 && (*spec == ' ' || *spec == '\t')) {
        spec++;
        len--;
    }
    while (len > 0 && (spec[len - 1] == ' ' || spec[len - 1] == '\t'))
        len--;
    if (memchr(spec, ',', len) != NULL)
        return AT_EINVAL; /* several ranges: serve the whole resource */
    dash = memchr(spec, '-', len);
    if (dash == NULL)
        return AT_EINVAL;
    if (dash == spec) {
        /* suffix-range: the last b bytes */
        if (parse_digits(dash + 1, len - 1, &b) != 0)
            return AT_EINVAL;
        if (b == 0 || size == 0)
            return AT_ERANGE;
        *start = b >= size ? 0 : size - b;
        *end = size - 1;
        return 0;
    }
    if (parse_digits(spec, (size_t)(dash - spec), &a) != 0)
        return AT_EINVAL;
    if ((size_t)(dash - spec) + 1 == len) {
        b = UINT64_MAX;
    } else {
        if (parse_digits(dash + 1, len - (size_t)(dash - spec) - 1, &b) != 0)
            return AT_EINVAL;
        if (a > b)
            return AT_EINVAL;
    }
    if (a >= size)
        return AT_ERANGE;
    *start = a;
    *end = b >= size ? size - 1 : b;
    return 0;
}
