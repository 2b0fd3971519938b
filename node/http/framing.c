/* Body framing: a reader per framing (none, Content-Length, chunked)
 * adds to llhttp's framing what differs per framing: how much of a read
 * may go straight to the handler's memory, the CRLF after chunk data that
 * llhttp 8.1 does not check, and whether an unread rest may be drained.
 * parse.c picks a request's reader when its headers are complete. */
#include "common/compat.h"

#define AT_LOG_COMP "http"

#include "common/common.h"
#include "node/http/internal.h"

static size_t no_direct(const struct node_http_conn *c)
{
    AT_UNUSED(c);
    return 0;
}

static bool input_ok(struct node_http_conn *c, const char *p, size_t n)
{
    AT_UNUSED(c);
    AT_UNUSED(p);
    AT_UNUSED(n);
    return true;
}

static bool drain_nothing(const struct node_http_conn *c)
{
    AT_UNUSED(c);
    return true; /* no body: nothing to drain, the connection stays */
}

const struct node_http_body_reader node_http__body_none = {
    .name = "none",
    .present = false,
    .direct_want = no_direct,
    .check_input = input_ok,
    .check_span = input_ok,
    .drainable = drain_nothing,
};

/* The next read may go straight into the handler's memory once enough of
 * the body is left to be worth it; never more than the body has left, so a
 * pipelined request behind it stays in the connection's buffer. */
static size_t length_direct(const struct node_http_conn *c)
{
    const struct node_http_req *r = c->req;

    if (c->parser.content_length < EXT_MIN ||
        c->parser.content_length > r->content_length)
        return 0;
    return (size_t)AT_MIN(c->parser.content_length, (uint64_t)SIZE_MAX);
}

static bool length_drainable(const struct node_http_conn *c)
{
    return c->parser.content_length <= DISCARD_MAX;
}

const struct node_http_body_reader node_http__body_length = {
    .name = "length",
    .present = true,
    .direct_want = length_direct,
    .check_input = input_ok,
    .check_span = input_ok,
    .drainable = length_drainable,
};

/* The CRLF that ends a chunk's data, as far as it has arrived; the rest is
 * checked when more input comes (chunked_input). */
static bool chunked_span(struct node_http_conn *c, const char *at, size_t n)
{
    static const char crlf[] = "\r\n";
    const char *after = at + n;
    size_t avail, k;

    c->chunk_left = n < c->chunk_left ? c->chunk_left - n : 0;
    if (c->chunk_left > 0)
        return true;
    avail = (size_t)(c->parse_end - after);
    k = avail < 2 ? avail : 2;
    if (memcmp(after, crlf, k) != 0) {
        llhttp_set_error_reason(&c->parser, "chunk data not followed by CRLF");
        return false;
    }
    c->crlf_need = (int)(2 - k);
    return true;
}

static bool chunked_input(struct node_http_conn *c, const char *p, size_t n)
{
    const char *want = c->crlf_need == 2 ? "\r\n" : "\n";
    size_t k = n < (size_t)c->crlf_need ? n : (size_t)c->crlf_need;

    if (c->crlf_need == 0)
        return true;
    if (memcmp(p, want, k) != 0)
        return false;
    c->crlf_need -= (int)k;
    return true;
}

static bool never_drain(const struct node_http_conn *c)
{
    AT_UNUSED(c);
    return false; /* no bound on what is left: close instead */
}

const struct node_http_body_reader node_http__body_chunked = {
    .name = "chunked",
    .present = true,
    .direct_want = no_direct, /* chunk framing lies between the bytes */
    .check_input = chunked_input,
    .check_span = chunked_span,
    .drainable = never_drain,
};
