/* Per-thread free lists of requests and small write buffers.
 *
 * With many connections, the requests of one loop iteration are all alive at
 * once (a request goes when its response write completes, in a later
 * iteration): more objects of each size than malloc's per-thread cache holds.
 * malloc then goes through its bins, whose cost grows with the heap's
 * fragmentation: a follower that had applied a long log served the same GET
 * 20% slower than a fresh single node. So a thread keeps freed requests, with
 * their buffers, and small write buffers on free lists (bounded). Under ASan a
 * kept object is poisoned until it is reused. */
#include "common/compat.h"

#define AT_LOG_COMP "http"

#include <sanitizer/asan_interface.h>

#include "common/common.h"
#include "node/http/internal.h"

/* How many freed requests and small write buffers a thread keeps, the
 * largest request buffer kept with its request, and the size of a recycled
 * write buffer. */
#define RECYCLE_MAX  256
#define REQ_BUF_KEEP 4096
#define WRITE_SMALL  2048

static _Thread_local struct node_http_req *req_free_list;
static _Thread_local unsigned req_free_count;
static _Thread_local struct node_http_write *write_free_list;
static _Thread_local unsigned write_free_count;
/* servers of this thread not yet freed: objects are kept only while there
 * is one, and the last one to go frees them (so nothing is kept at exit) */
static _Thread_local unsigned recycle_servers;

static void buf_keep(struct at_buf *b)
{
    if (b->cap > REQ_BUF_KEEP) {
        at_buf_release(b);
        return;
    }
    at_buf_reset(b);
    if (b->data != NULL)
        ASAN_POISON_MEMORY_REGION(b->data, b->cap);
}

static void buf_reuse(struct at_buf *b)
{
    if (b->data != NULL)
        ASAN_UNPOISON_MEMORY_REGION(b->data, b->cap);
}

/* Free a request and everything it owns (kept buffers unpoisoned first). */
static void req_destroy(struct node_http_req *r)
{
    if (r->hdrs != NULL)
        ASAN_UNPOISON_MEMORY_REGION(r->hdrs, r->hdrs_cap * sizeof(*r->hdrs));
    buf_reuse(&r->url);
    buf_reuse(&r->cur_name);
    buf_reuse(&r->cur_value);
    buf_reuse(&r->resp_hdrs);
    at_free(r->hdrs);
    at_buf_release(&r->url);
    at_buf_release(&r->cur_name);
    at_buf_release(&r->cur_value);
    at_buf_release(&r->resp_hdrs);
    at_free(r);
}

/* The thread's last server is gone: free what the thread kept. */
static void recycle_drain(void)
{
    while (req_free_list != NULL) {
        struct node_http_req *r = req_free_list;

        ASAN_UNPOISON_MEMORY_REGION(r, sizeof(*r));
        req_free_list = r->next_free;
        req_destroy(r);
    }
    while (write_free_list != NULL) {
        struct node_http_write *w = write_free_list;

        ASAN_UNPOISON_MEMORY_REGION(w, WRITE_SMALL);
        write_free_list = w->next_free;
        at_free(w);
    }
    req_free_count = write_free_count = 0;
}

/* see internal.h */
struct node_http_req *node_http__req_new(struct node_http_conn *c)
{
    struct node_http_req *r = req_free_list;

    if (r != NULL) {
        struct node_http_req keep;

        ASAN_UNPOISON_MEMORY_REGION(r, sizeof(*r));
        req_free_list = r->next_free;
        req_free_count--;
        keep = *r;
        memset(r, 0, sizeof(*r));
        r->url = keep.url;
        r->cur_name = keep.cur_name;
        r->cur_value = keep.cur_value;
        r->resp_hdrs = keep.resp_hdrs;
        r->hdrs = keep.hdrs;
        r->hdrs_cap = keep.hdrs_cap;
        buf_reuse(&r->url);
        buf_reuse(&r->cur_name);
        buf_reuse(&r->cur_value);
        buf_reuse(&r->resp_hdrs);
        if (r->hdrs != NULL)
            ASAN_UNPOISON_MEMORY_REGION(r->hdrs,
                                        r->hdrs_cap * sizeof(*r->hdrs));
    } else {
        r = at_calloc(1, sizeof(*r));
        at_buf_init(&r->url, NODE_HTTP_MAX_URL);
        at_buf_init(&r->cur_name, 0);
        at_buf_init(&r->cur_value, 0);
        at_buf_init(&r->resp_hdrs, 0);
    }
    r->conn = c;
    r->refs = 1;
    r->status = 200;
    r->method_str = "";
    snprintf(r->peer, sizeof(r->peer), "%s", c->peer);
    return r;
}

/* see internal.h */
void node_http__req_free(struct node_http_req *r)
{
    for (size_t i = 0; i < r->nhdrs; i++) {
        at_free(r->hdrs[i].name);
        at_free(r->hdrs[i].value);
    }
    r->nhdrs = 0;
    if (req_free_count >= RECYCLE_MAX || recycle_servers == 0) {
        req_destroy(r);
        return;
    }
    if (r->hdrs_cap * sizeof(*r->hdrs) > REQ_BUF_KEEP) {
        at_free(r->hdrs);
        r->hdrs = NULL;
        r->hdrs_cap = 0;
    } else if (r->hdrs != NULL) {
        ASAN_POISON_MEMORY_REGION(r->hdrs, r->hdrs_cap * sizeof(*r->hdrs));
    }
    buf_keep(&r->url);
    buf_keep(&r->cur_name);
    buf_keep(&r->cur_value);
    buf_keep(&r->resp_hdrs);
    r->next_free = req_free_list;
    req_free_list = r;
    req_free_count++;
    ASAN_POISON_MEMORY_REGION(r, sizeof(*r));
}

/* see internal.h */
struct node_http_write *node_http__write_new(struct node_http_conn *c,
                                             size_t len)
{
    struct node_http_write *w;
    bool small = len <= WRITE_SMALL - sizeof(*w);

    if (small && write_free_list != NULL) {
        w = write_free_list;
        ASAN_UNPOISON_MEMORY_REGION(w, WRITE_SMALL);
        write_free_list = w->next_free;
        write_free_count--;
    } else {
        w = at_malloc(small ? WRITE_SMALL : sizeof(*w) + len);
    }
    w->conn = c;
    w->next_free = NULL;
    w->len = len;
    w->cap = small ? WRITE_SMALL - sizeof(*w) : len;
    return w;
}

/* see internal.h */
void node_http__write_free(struct node_http_write *w)
{
    if (w->cap != WRITE_SMALL - sizeof(*w) || write_free_count >= RECYCLE_MAX ||
        recycle_servers == 0) {
        at_free(w);
        return;
    }
    w->next_free = write_free_list;
    write_free_list = w;
    write_free_count++;
    ASAN_POISON_MEMORY_REGION(w, WRITE_SMALL);
}

/* see internal.h */
void node_http__recycle_hold(void)
{
    recycle_servers++;
}

/* see internal.h */
void node_http__recycle_release(void)
{
    /* A server freed on another thread than the one that started it: this
     * thread kept nothing for it. */
    if (recycle_servers == 0)
        return;
    if (--recycle_servers == 0)
        recycle_drain();
}
