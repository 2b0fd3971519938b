/* Requests as handlers see them: accessors, references, handler data. */
#include "common/compat.h"

#define AT_LOG_COMP "http"

#include "common/common.h"
#include "node/http/internal.h"

/* see http.h */
enum node_http_method node_http_req_method(const struct node_http_req *r)
{
    return r->method;
}

/* see http.h */
const char *node_http_req_method_str(const struct node_http_req *r)
{
    return r->method_str;
}

/* see http.h */
const char *node_http_req_path(const struct node_http_req *r)
{
    return r->url.data != NULL ? r->url.data : "";
}

/* see http.h */
const char *node_http_req_query(const struct node_http_req *r)
{
    return r->query;
}

/* see http.h */
const char *node_http_req_header(const struct node_http_req *r,
                                 const char *name)
{
    for (size_t i = 0; i < r->nhdrs; i++) {
        if (strcasecmp(r->hdrs[i].name, name) == 0)
            return r->hdrs[i].value;
    }
    return NULL;
}

/* see http.h */
bool node_http_req_has_body(const struct node_http_req *r)
{
    return r->chunked || (r->has_length && r->content_length > 0);
}

/* see http.h */
bool node_http_req_has_length(const struct node_http_req *r)
{
    return r->has_length;
}

/* see http.h */
uint64_t node_http_req_content_length(const struct node_http_req *r)
{
    return r->content_length;
}

/* see http.h */
bool node_http_req_chunked(const struct node_http_req *r)
{
    return r->chunked;
}

/* see http.h */
const char *node_http_req_peer(const struct node_http_req *r)
{
    return r->peer;
}

/* see http.h */
void node_http_req_set_user(struct node_http_req *r, const char *name)
{
    snprintf(r->user, sizeof(r->user), "%s", name != NULL ? name : "");
}

/* see http.h */
const char *node_http_req_user(const struct node_http_req *r)
{
    return r->user[0] != '\0' ? r->user : NULL;
}

/* see http.h */
void node_http_req_set_data(struct node_http_req *r, void *data)
{
    r->data = data;
}

/* see http.h */
void node_http_req_set_context(struct node_http_req *r, void *context)
{
    r->context = context;
}

/* see http.h */
void *node_http_req_context(const struct node_http_req *r)
{
    return r->context;
}

/* see http.h */
void *node_http_req_data(const struct node_http_req *r)
{
    return r->data;
}

/* see http.h */
void node_http_req_ref(struct node_http_req *r)
{
    r->refs++;
}

/* see http.h */
void node_http_req_unref(struct node_http_req *r)
{
    AT_ASSERT(r->refs > 0);
    if (--r->refs == 0)
        node_http__req_free(r);
}

/* see http.h */
bool node_http_req_done(const struct node_http_req *r)
{
    return r->aborted || r->resp_done || r->conn == NULL;
}
