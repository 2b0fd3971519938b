/* A client of another registry: see regclient.h. */
#include "common/compat.h"

#define AT_LOG_COMP "regclient"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <strings.h>
#include <unistd.h>

#include "common/base64.h"
#include "common/common.h"
#include "node/ratelimit.h"
#include "node/regclient.h"

#define ANSWER_MAX ((size_t)1 << 20) /* any body but a manifest's */

struct node_regclient {
    char *base; /* owned, no trailing '/' */
    char *user; /* owned; NULL: anonymous */
    char *pass; /* owned */
    char *ca;   /* owned; NULL: system CAs */
    bool verify;
    uint64_t timeout_ms;
    double rate;          /* per host and second (ratelimit.h); 0: none */
    CURL *easy;           /* owned: kept for its connections */
    char *auth;           /* owned: "Authorization: ..." to send, or NULL */
    char *token_scope;    /* owned: what the bearer token in auth is for */
    uint64_t token_until; /* at_now_ms() when it expires */
    bool fixed;           /* auth is the caller's bearer: kept */
    const atomic_bool *cancel;
};

/* One request and its answer. */
struct req {
    const char *method;
    char *url;         /* owned */
    const char *scope; /* for a bearer token: repository:<r>:<actions> */
    const char *accept;
    const char *content_type;
    const void *body; /* upload from memory (PUT manifest) */
    size_t blen;
    int in_fd;        /* upload from a file or pipe (PUT blob), -1: none */
    uint64_t in_read; /* bytes read from in_fd: a pipe cannot be re-sent */
    uint64_t in_size;
    int out_fd; /* download into a file (GET blob), -1: none */
    bool follow;
    size_t max;
    /* the answer */
    long status;
    struct at_buf resp;
    struct at_sha256 sha; /* of what went to out_fd */
    uint64_t out_bytes;
    int write_err;
    char *www_auth, *content_type_in, *docker_digest, *location, *link;
    char errbuf[CURL_ERROR_SIZE];
    CURL *easy; /* borrowed: the client's */
};

static void answer_reset(struct req *r)
{
    r->status = 0;
    at_buf_release(&r->resp);
    at_buf_init(&r->resp, r->max);
    at_free(r->www_auth);
    at_free(r->content_type_in);
    at_free(r->docker_digest);
    at_free(r->location);
    at_free(r->link);
    r->www_auth = r->content_type_in = r->docker_digest = NULL;
    r->location = r->link = NULL;
    r->errbuf[0] = '\0';
}

static void req_release(struct req *r)
{
    answer_reset(r);
    at_buf_release(&r->resp);
    if (r->out_fd >= 0)
        at_sha256_release(&r->sha);
    at_free(r->url);
}

/* ---- curl callbacks ---- */

static size_t on_header(char *p, size_t size, size_t n, void *data)
{
    struct req *r = data;
    size_t len = size * n;
    static const struct {
        const char *name;
        size_t off;
    } keep[] = {
        { "www-authenticate", offsetof(struct req, www_auth) },
        { "content-type", offsetof(struct req, content_type_in) },
        { "docker-content-digest", offsetof(struct req, docker_digest) },
        { "location", offsetof(struct req, location) },
        { "link", offsetof(struct req, link) },
    };

    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        /* a new answer (after a redirect or an interim one) */
        answer_reset(r);
        return len;
    }
    const char *colon = memchr(p, ':', len);
    if (colon == NULL)
        return len;
    size_t nlen = (size_t)(colon - p);
    for (size_t i = 0; i < AT_ARRAY_SIZE(keep); i++) {
        if (strlen(keep[i].name) != nlen ||
            strncasecmp(p, keep[i].name, nlen) != 0)
            continue;
        const char *v = colon + 1;
        const char *end = p + len;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v && isspace((unsigned char)end[-1]))
            end--;
        char **field = (char **)(void *)((char *)r + keep[i].off);
        at_free(*field);
        *field = at_strndup(v, (size_t)(end - v));
    }
    return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *data)
{
    struct req *r = data;
    size_t len = size * n;
    long http = 0;

    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &http);
    if (r->out_fd >= 0 && http >= 200 && http < 300) {
        for (size_t off = 0; off < len;) {
            ssize_t w = write(r->out_fd, p + off, len - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                r->write_err = errno != 0 ? errno : EIO;
                return 0;
            }
            off += (size_t)w;
        }
        at_sha256_update(&r->sha, p, len);
        r->out_bytes += len;
        return len;
    }
    if (at_buf_append(&r->resp, p, len) != 0)
        return 0; /* over the bound: the transfer fails */
    return len;
}

static size_t on_read(char *p, size_t size, size_t n, void *data)
{
    struct req *r = data;
    for (;;) {
        ssize_t got = read(r->in_fd, p, size * n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got > 0)
            r->in_read += (uint64_t)got;
        return got < 0 ? CURL_READFUNC_ABORT : (size_t)got;
    }
}

static int on_progress(void *data,
                       curl_off_t dltotal,
                       curl_off_t dlnow,
                       curl_off_t ultotal,
                       curl_off_t ulnow)
{
    const atomic_bool *cancel = data;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    return cancel != NULL && atomic_load(cancel) ? 1 : 0;
}

/* ---- requests ---- */

static char *url_of(struct node_regclient *c, const char *fmt, ...)
    AT_PRINTF(2, 3);
static char *url_of(struct node_regclient *c, const char *fmt, ...)
{
    va_list ap;
    struct at_buf b;
    at_buf_init(&b, 0);
    at_buf_puts(&b, c->base);
    va_start(ap, fmt);
    at_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    return b.data;
}

/* The message of an OCI error answer, or the status alone. */
static void answer_error(struct req *r, char *errmsg)
{
    const char *what = "";
    json_t *doc = NULL;

    if (r->resp.len > 0) {
        doc = json_loadb(r->resp.data, r->resp.len, 0, NULL);
        json_t *e = json_array_get(json_object_get(doc, "errors"), 0);
        const char *m = json_string_value(json_object_get(e, "message"));
        const char *code = json_string_value(json_object_get(e, "code"));
        if (m != NULL || code != NULL)
            what = m != NULL ? m : code;
    }
    at_errmsg_printf(errmsg, "%s %s: HTTP %ld%s%.200s", r->method, r->url,
                     r->status, what[0] != '\0' ? ": " : "", what);
    json_decref(doc);
}

static void set_method(CURL *e, struct req *r)
{
    if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "PUT") == 0 && r->in_fd >= 0) {
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(e, CURLOPT_READDATA, r);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->in_size);
    } else if (strcmp(r->method, "PUT") == 0) {
        /* a body from memory: POSTFIELDS with the PUT verb */
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->blen);
    } else if (strcmp(r->method, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
    } else if (strcmp(r->method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    }
}

static struct curl_slist *headers(struct node_regclient *c, struct req *r)
{
    struct curl_slist *h = NULL;
    char line[512];

    if (c->auth != NULL)
        h = curl_slist_append(h, c->auth);
    if (r->accept != NULL) {
        snprintf(line, sizeof(line), "Accept: %s", r->accept);
        h = curl_slist_append(h, line);
    }
    if (r->content_type != NULL) {
        snprintf(line, sizeof(line), "Content-Type: %s", r->content_type);
        h = curl_slist_append(h, line);
    }
    return curl_slist_append(h, "Expect:");
}

static int perform(struct node_regclient *c, struct req *r, char *errmsg)
{
    CURL *e = c->easy;
    struct curl_slist *h;
    CURLcode rc;

    curl_easy_reset(e);
    r->easy = e;
    answer_reset(r);
    r->write_err = 0;
    r->out_bytes = 0;
    /* a pipe (a streamed copy) is sent once: it cannot be rewound for a
     * second try after a challenge (AT_EAGAIN: the caller copies through
     * a file instead) */
    if (r->in_fd >= 0 && lseek(r->in_fd, 0, SEEK_SET) != 0 &&
        (errno != ESPIPE || r->in_read > 0)) {
        at_errmsg_printf(errmsg, "%s %s: cannot rewind the body: %s", r->method,
                         r->url, strerror(errno));
        return errno == ESPIPE ? AT_EAGAIN : AT_EIO;
    }
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "atoll");
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME,
                     (long)AT_MAX(c->timeout_ms / 1000, 1));
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    if (c->cancel != NULL) {
        curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(e, CURLOPT_XFERINFODATA, (void *)c->cancel);
    }
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#endif
    /* a redirect (blob storage elsewhere) goes without our Authorization:
     * curl drops it for another host */
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, r->follow ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 5L);
    if (c->ca != NULL)
        curl_easy_setopt(e, CURLOPT_CAINFO, c->ca);
    if (!c->verify) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (c->rate > 0) {
        char host[256];
        node_rate_host_of(r->url, host, sizeof(host));
        if (node_rate_wait(host, c->rate, c->cancel) != 0) {
            at_errmsg_printf(errmsg, "%s %s: canceled", r->method, r->url);
            return AT_EIO;
        }
    }
    h = headers(c, r);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    set_method(e, r);
    rc = curl_easy_perform(e);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h);
    if (rc != CURLE_OK) {
        if (r->write_err != 0)
            at_errmsg_printf(errmsg, "%s %s: writing: %s", r->method, r->url,
                             strerror(r->write_err));
        else
            at_errmsg_printf(
                errmsg, "%s %s: %s", r->method, r->url,
                r->errbuf[0] != '\0' ? r->errbuf : curl_easy_strerror(rc));
        return AT_EIO;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
    return 0;
}

/* The value of parameter name in a challenge (quoted or not), or NULL. */
static char *challenge_param(const char *ch, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = ch; (p = strcasestr(p, name)) != NULL; p += n) {
        if (p != ch && p[-1] != ' ' && p[-1] != ',')
            continue;
        if (p[n] != '=')
            continue;
        const char *v = p + n + 1;
        if (*v == '"') {
            const char *end = strchr(v + 1, '"');
            return end != NULL ? at_strndup(v + 1, (size_t)(end - v - 1))
                               : NULL;
        }
        return at_strndup(v, strcspn(v, ", "));
    }
    return NULL;
}

static void set_basic(struct node_regclient *c)
{
    struct at_buf b;
    char *pair = at_asprintf("%s:%s", c->user, c->pass);
    at_buf_init(&b, 0);
    at_buf_puts(&b, "Authorization: Basic ");
    at_base64_encode(pair, strlen(pair), AT_BASE64_STD, &b);
    explicit_bzero(pair, strlen(pair));
    at_free(pair);
    at_free(c->auth);
    c->auth = b.data;
}

static char *escape(CURL *e, const char *s)
{
    char *x = curl_easy_escape(e, s, 0);
    char *out = at_strdup(x != NULL ? x : "");
    curl_free(x);
    return out;
}

static void req_init(struct req *r,
                     const char *method,
                     char *url,
                     const char *scope)
{
    memset(r, 0, sizeof(*r));
    r->method = method;
    r->url = url;
    r->scope = scope;
    r->in_fd = -1;
    r->out_fd = -1;
    r->max = ANSWER_MAX;
    at_buf_init(&r->resp, r->max);
}

/* The token of a token endpoint's answer into c->auth. */
static int take_token(struct node_regclient *c,
                      struct req *t,
                      const char *scope,
                      char *errmsg)
{
    json_t *doc = json_loadb(t->resp.data, t->resp.len, 0, NULL);
    const char *tok = json_string_value(json_object_get(doc, "token"));
    int rv = 0;

    if (tok == NULL)
        tok = json_string_value(json_object_get(doc, "access_token"));
    json_int_t ttl = json_integer_value(json_object_get(doc, "expires_in"));
    if (tok == NULL || tok[0] == '\0' || strlen(tok) > 16384 ||
        strpbrk(tok, "\r\n") != NULL) {
        at_errmsg_printf(errmsg, "registry %s: no token from %s", c->base,
                         t->url);
        rv = AT_EIO;
    } else {
        c->auth = at_asprintf("Authorization: Bearer %s", tok);
        at_free(c->token_scope);
        c->token_scope = at_strdup(scope != NULL ? scope : "");
        /* 60 s unless the answer says otherwise; renewed 10 s early */
        c->token_until =
            at_now_ms() + (uint64_t)(ttl > 20 ? ttl - 10 : 50) * 1000;
    }
    json_decref(doc);
    return rv;
}

/* A bearer token for scope from the challenge's realm. */
static int fetch_token(struct node_regclient *c,
                       const char *challenge,
                       const char *scope,
                       char *errmsg)
{
    char *realm = challenge_param(challenge, "realm");
    char *service = challenge_param(challenge, "service");
    char *asked = challenge_param(challenge, "scope");
    const char *sc = asked != NULL ? asked : scope;
    struct req t;
    int rv;

    if (realm == NULL || (strncmp(realm, "https://", 8) != 0 &&
                          strncmp(realm, "http://", 7) != 0)) {
        at_errmsg_printf(errmsg,
                         "registry %s: a bearer challenge without a usable "
                         "realm",
                         c->base);
        at_free(realm);
        at_free(service);
        at_free(asked);
        return AT_EINVAL;
    }
    char *esvc = escape(c->easy, service != NULL ? service : "");
    char *escope = escape(c->easy, sc != NULL ? sc : "");
    req_init(&t, "GET",
             at_asprintf("%s%sservice=%s%s%s", realm,
                         strchr(realm, '?') != NULL ? "&" : "?", esvc,
                         sc != NULL ? "&scope=" : "", sc != NULL ? escope : ""),
             NULL);
    at_free(esvc);
    at_free(escope);
    at_free(c->auth);
    c->auth = NULL;
    if (c->user != NULL)
        set_basic(c); /* the token endpoint takes the credentials */
    rv = perform(c, &t, errmsg);
    at_free(c->auth);
    c->auth = NULL;
    if (rv == 0 && t.status != 200) {
        answer_error(&t, errmsg);
        rv = t.status == 401 || t.status == 403 ? AT_EINVAL : AT_EIO;
    }
    if (rv == 0)
        rv = take_token(c, &t, scope, errmsg);
    req_release(&t);
    at_free(realm);
    at_free(service);
    at_free(asked);
    return rv;
}

/* Answer a 401's challenge: Basic with the credentials, or a token. */
static int authenticate(struct node_regclient *c, struct req *r, char *errmsg)
{
    const char *ch = r->www_auth;

    if (ch != NULL && strncasecmp(ch, "Basic", 5) == 0) {
        if (c->user == NULL) {
            at_errmsg_printf(
                errmsg, "registry %s wants a user name and password", c->base);
            return AT_EINVAL;
        }
        set_basic(c);
        return 0;
    }
    if (ch != NULL && strncasecmp(ch, "Bearer", 6) == 0)
        return fetch_token(c, ch, r->scope, errmsg);
    at_errmsg_printf(errmsg,
                     "%s %s: HTTP 401 without a challenge this client "
                     "answers",
                     r->method, r->url);
    return AT_EINVAL;
}

/* perform, answering one challenge; then the status as an AT_E* code. */
static int run(struct node_regclient *c, struct req *r, char *errmsg)
{
    /* a bearer token is for one scope: another scope starts without it */
    if (c->token_scope != NULL &&
        (r->scope == NULL || strcmp(c->token_scope, r->scope) != 0 ||
         at_now_ms() >= c->token_until)) {
        at_free(c->auth);
        c->auth = NULL;
        at_free(c->token_scope);
        c->token_scope = NULL;
    }
    int rv = perform(c, r, errmsg);
    if (rv == 0 && r->status == 401 && !c->fixed) {
        char *ch = r->www_auth != NULL ? at_strdup(r->www_auth) : NULL;
        struct req keep = *r;
        keep.www_auth = ch;
        rv = authenticate(c, &keep, errmsg);
        at_free(ch);
        if (rv == 0) {
            if (r->out_fd >= 0) {
                at_sha256_release(&r->sha);
                at_sha256_init(&r->sha);
            }
            rv = perform(c, r, errmsg);
        }
    }
    if (rv != 0)
        return rv;
    if (r->status >= 200 && r->status < 300)
        return 0;
    answer_error(r, errmsg);
    if (r->status == 404)
        return AT_ENOTFOUND;
    if (r->status == 400 || r->status == 401 || r->status == 403 ||
        r->status == 405)
        return AT_EINVAL;
    return AT_EIO;
}

static char *scope_of(const char *repo, bool push)
{
    return at_asprintf("repository:%s:%s", repo, push ? "pull,push" : "pull");
}

/* ---- the API ---- */

/* see regclient.h */
int node_regclient_new(struct node_regclient **out,
                       const struct node_regclient_opts *o,
                       char *errmsg)
{
    size_t n = strlen(o->base);

    *out = NULL;
    if ((strncmp(o->base, "https://", 8) != 0 &&
         strncmp(o->base, "http://", 7) != 0) ||
        n > 1024 || strpbrk(o->base, " \t\r\n") != NULL) {
        at_errmsg_printf(errmsg,
                         "a registry is http://HOST[:PORT] or "
                         "https://HOST[:PORT]");
        return AT_EINVAL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        at_errmsg_printf(errmsg, "curl_global_init failed");
        return AT_EIO;
    }
    struct node_regclient *c = at_calloc(1, sizeof(*c));
    while (n > 0 && o->base[n - 1] == '/')
        n--;
    c->base = at_strndup(o->base, n);
    c->user = o->username != NULL ? at_strdup(o->username) : NULL;
    c->pass = at_strdup(o->password != NULL ? o->password : "");
    c->ca = o->ca_file != NULL && o->ca_file[0] != '\0' ? at_strdup(o->ca_file)
                                                        : NULL;
    c->verify = o->tls_verify;
    c->cancel = o->cancel;
    c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 30000;
    c->rate = o->rate;
    if (o->bearer != NULL && o->bearer[0] != '\0') {
        c->auth = at_asprintf("Authorization: Bearer %s", o->bearer);
        c->fixed = true;
    }
    c->easy = curl_easy_init();
    if (c->easy == NULL) {
        node_regclient_free(c);
        at_errmsg_printf(errmsg, "curl_easy_init failed");
        return AT_ENOMEM;
    }
    *out = c;
    return 0;
}

/* see regclient.h */
void node_regclient_free(struct node_regclient *c)
{
    if (c == NULL)
        return;
    if (c->easy != NULL)
        curl_easy_cleanup(c->easy);
    if (c->pass != NULL)
        explicit_bzero(c->pass, strlen(c->pass));
    if (c->auth != NULL)
        explicit_bzero(c->auth, strlen(c->auth));
    at_free(c->auth);
    at_free(c->token_scope);
    at_free(c->pass);
    at_free(c->user);
    at_free(c->ca);
    at_free(c->base);
    at_free(c);
}

/* see regclient.h */
void node_regclient_manifest_release(struct node_regclient_manifest *m)
{
    at_free(m->body);
    at_free(m->media_type);
    m->body = m->media_type = NULL;
    m->len = 0;
}

/* The answer's bytes are its digest (and the one asked for, the one the
 * registry stated): 0 or AT_EDIGEST. */
static int manifest_check(struct req *r,
                          const struct at_digest *want,
                          struct at_digest *got,
                          char *errmsg)
{
    struct at_digest said;

    at_digest_of(r->resp.data, r->resp.len, got);
    if ((want != NULL && !at_digest_equal(want, got)) ||
        (r->docker_digest != NULL &&
         at_digest_parse(r->docker_digest, strlen(r->docker_digest), &said) ==
             0 &&
         !at_digest_equal(&said, got))) {
        at_errmsg_printf(errmsg,
                         "GET %s: the manifest's bytes do not match its "
                         "digest",
                         r->url);
        return AT_EDIGEST;
    }
    return 0;
}

/* see regclient.h */
int node_regclient_get_manifest(struct node_regclient *c,
                                const char *repo,
                                const char *ref,
                                struct node_regclient_manifest *out,
                                char *errmsg)
{
    struct req r;
    struct at_digest want;
    bool by_digest = at_digest_parse(ref, strlen(ref), &want) == 0;
    char *scope = scope_of(repo, false);
    int rv;

    memset(out, 0, sizeof(*out));
    req_init(&r, "GET", url_of(c, "/v2/%s/manifests/%s", repo, ref), scope);
    r.accept = NODE_REGCLIENT_ACCEPT;
    r.max = NODE_REGCLIENT_MANIFEST_MAX;
    at_buf_release(&r.resp);
    at_buf_init(&r.resp, r.max);
    rv = run(c, &r, errmsg);
    if (rv == 0)
        rv = manifest_check(&r, by_digest ? &want : NULL, &out->digest, errmsg);
    if (rv == 0) {
        const char *ct = r.content_type_in != NULL ? r.content_type_in : "";
        out->media_type = at_strndup(ct, strcspn(ct, "; "));
        out->len = r.resp.len;
        out->body = at_malloc(r.resp.len + 1);
        memcpy(out->body, r.resp.data, r.resp.len);
        out->body[r.resp.len] = '\0';
    }
    req_release(&r);
    at_free(scope);
    return rv;
}

/* One request without a body to send, for its status. */
static int simple(struct node_regclient *c,
                  const char *method,
                  char *url,
                  const char *repo,
                  bool push,
                  const char *accept,
                  char *errmsg)
{
    char *scope = scope_of(repo, push);
    struct req r;

    req_init(&r, method, url, scope);
    r.accept = accept;
    r.follow = true;
    int rv = run(c, &r, errmsg);
    req_release(&r);
    at_free(scope);
    return rv;
}

/* see regclient.h */
int node_regclient_has_manifest(struct node_regclient *c,
                                const char *repo,
                                const struct at_digest *d,
                                char *errmsg)
{
    char ds[AT_DIGEST_STR_SIZE];
    return simple(
        c, "HEAD",
        url_of(c, "/v2/%s/manifests/%s", repo, at_digest_format(d, ds)), repo,
        false, NODE_REGCLIENT_ACCEPT, errmsg);
}

/* see regclient.h */
int node_regclient_put_manifest(struct node_regclient *c,
                                const char *repo,
                                const char *ref,
                                const void *body,
                                size_t len,
                                const char *media_type,
                                char *errmsg)
{
    char *scope = scope_of(repo, true);
    struct req r;

    req_init(&r, "PUT", url_of(c, "/v2/%s/manifests/%s", repo, ref), scope);
    r.body = body;
    r.blen = len;
    r.content_type = media_type;
    int rv = run(c, &r, errmsg);
    req_release(&r);
    at_free(scope);
    return rv;
}

/* see regclient.h */
int node_regclient_has_blob(struct node_regclient *c,
                            const char *repo,
                            const struct at_digest *d,
                            uint64_t *size,
                            char *errmsg)
{
    char ds[AT_DIGEST_STR_SIZE];
    int rv = simple(c, "HEAD",
                    url_of(c, "/v2/%s/blobs/%s", repo, at_digest_format(d, ds)),
                    repo, false, NULL, errmsg);
    if (rv == 0 && size != NULL) {
        curl_off_t cl = -1;
        curl_easy_getinfo(c->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        *size = cl > 0 ? (uint64_t)cl : 0;
    }
    return rv;
}

/* see regclient.h */
int node_regclient_get_blob(struct node_regclient *c,
                            const char *repo,
                            const struct at_digest *d,
                            int fd,
                            uint64_t *size,
                            char *errmsg)
{
    char ds[AT_DIGEST_STR_SIZE];
    char *scope = scope_of(repo, false);
    struct at_digest got;
    struct req r;

    req_init(&r, "GET",
             url_of(c, "/v2/%s/blobs/%s", repo, at_digest_format(d, ds)),
             scope);
    r.follow = true;
    r.out_fd = fd;
    at_sha256_init(&r.sha);
    int rv = run(c, &r, errmsg);
    if (rv == 0) {
        at_sha256_final(&r.sha, &got);
        at_sha256_init(&r.sha); /* req_release releases it */
        if (!at_digest_equal(&got, d)) {
            at_errmsg_printf(errmsg, "GET %s: the bytes are not %s", r.url, ds);
            rv = AT_EDIGEST;
        }
    }
    *size = r.out_bytes;
    req_release(&r);
    at_free(scope);
    return rv;
}

/* An upload's Location as a URL (it may be a path). */
static char *location_url(struct node_regclient *c, const char *loc)
{
    if (strncmp(loc, "http://", 7) == 0 || strncmp(loc, "https://", 8) == 0)
        return at_strdup(loc);
    return at_asprintf("%s%s%s", c->base, loc[0] == '/' ? "" : "/", loc);
}

/* see regclient.h */
int node_regclient_put_blob(struct node_regclient *c,
                            const char *repo,
                            const struct at_digest *d,
                            int fd,
                            uint64_t size,
                            const char *from,
                            char *errmsg)
{
    char ds[AT_DIGEST_STR_SIZE];
    char *scope = scope_of(repo, true);
    struct req r;
    int rv;

    at_digest_format(d, ds);
    req_init(&r, "POST",
             from != NULL ? url_of(c, "/v2/%s/blobs/uploads/?mount=%s&from=%s",
                                   repo, ds, from)
                          : url_of(c, "/v2/%s/blobs/uploads/", repo),
             scope);
    rv = run(c, &r, errmsg);
    if (rv == 0 && r.status != 201 && (r.status != 202 || r.location == NULL)) {
        at_errmsg_printf(errmsg,
                         "POST %s: HTTP %ld without an upload "
                         "location",
                         r.url, r.status);
        rv = AT_EIO;
    }
    if (rv != 0 || r.status == 201) { /* 201: mounted */
        req_release(&r);
        at_free(scope);
        return rv;
    }
    char *loc = location_url(c, r.location);
    req_release(&r);
    req_init(&r, "PUT",
             at_asprintf("%s%sdigest=%s", loc,
                         strchr(loc, '?') != NULL ? "&" : "?", ds),
             scope);
    at_free(loc);
    r.in_fd = fd;
    r.in_size = size;
    r.content_type = "application/octet-stream";
    rv = run(c, &r, errmsg);
    req_release(&r);
    at_free(scope);
    return rv;
}

/* The next page of a tags list: Link: <url>; rel="next". */
static char *next_page(struct node_regclient *c, const char *link)
{
    const char *lt, *gt;
    if (link == NULL || strstr(link, "rel=\"next\"") == NULL ||
        (lt = strchr(link, '<')) == NULL || (gt = strchr(lt, '>')) == NULL)
        return NULL;
    char *path = at_strndup(lt + 1, (size_t)(gt - lt - 1));
    char *url = location_url(c, path);
    at_free(path);
    return url;
}

static void names_take(struct req *r, const char *key, char ***names, size_t *n)
{
    json_t *doc = json_loadb(r->resp.data, r->resp.len, 0, NULL);
    json_t *arr = json_object_get(doc, key);
    size_t i;
    json_t *v;

    json_array_foreach(arr, i, v)
    {
        const char *t = json_string_value(v);
        if (t == NULL)
            continue;
        *names = at_realloc(*names, (*n + 1) * sizeof(**names));
        (*names)[(*n)++] = at_strdup(t);
    }
    json_decref(doc);
}

/* A paged list (tags, catalog): url's pages, key's strings. */
static int names(struct node_regclient *c,
                 char *url,
                 const char *scope,
                 const char *key,
                 char ***out,
                 size_t *n,
                 char *errmsg)
{
    int rv = 0;
    unsigned pages = 0;

    *out = NULL;
    *n = 0;
    while (url != NULL && rv == 0) {
        struct req r;
        if (++pages > 100000) {
            at_errmsg_printf(errmsg, "%s: too many pages", url);
            at_free(url);
            rv = AT_EIO;
            break;
        }
        req_init(&r, "GET", url, scope);
        rv = run(c, &r, errmsg);
        url = NULL;
        if (rv == 0) {
            names_take(&r, key, out, n);
            url = next_page(c, r.link);
        }
        req_release(&r);
    }
    if (rv != 0) {
        for (size_t i = 0; i < *n; i++)
            at_free((*out)[i]);
        at_free(*out);
        *out = NULL;
        *n = 0;
    }
    return rv;
}

/* see regclient.h */
int node_regclient_tags(struct node_regclient *c,
                        const char *repo,
                        char ***tags,
                        size_t *n,
                        char *errmsg)
{
    char *scope = scope_of(repo, false);
    int rv = names(c, url_of(c, "/v2/%s/tags/list?n=1000", repo), scope, "tags",
                   tags, n, errmsg);
    at_free(scope);
    return rv;
}

/* see regclient.h */
int node_regclient_catalog(struct node_regclient *c,
                           char ***repos,
                           size_t *n,
                           char *errmsg)
{
    return names(c, url_of(c, "/v2/_catalog?n=1000"), "registry:catalog:*",
                 "repositories", repos, n, errmsg);
}

/* see regclient.h */
int node_regclient_ping(struct node_regclient *c, char *errmsg)
{
    struct req r;
    req_init(&r, "GET", url_of(c, "/v2/"), NULL);
    int rv = run(c, &r, errmsg);
    req_release(&r);
    return rv;
}

/* see regclient.h */
int node_regclient_resolve(struct node_regclient *c,
                           const char *repo,
                           const char *ref,
                           struct at_digest *d,
                           char *errmsg)
{
    char *scope = scope_of(repo, false);
    struct req r;

    req_init(&r, "HEAD", url_of(c, "/v2/%s/manifests/%s", repo, ref), scope);
    r.accept = NODE_REGCLIENT_ACCEPT;
    int rv = run(c, &r, errmsg);
    if (rv == 0 &&
        (r.docker_digest == NULL ||
         at_digest_parse(r.docker_digest, strlen(r.docker_digest), d) != 0)) {
        at_errmsg_printf(errmsg, "HEAD %s: no Docker-Content-Digest", r.url);
        rv = AT_EIO;
    }
    req_release(&r);
    at_free(scope);
    return rv;
}

/* see regclient.h */
int node_regclient_delete(struct node_regclient *c,
                          const char *repo,
                          const char *ref,
                          char *errmsg)
{
    char *scope = scope_of(repo, true);
    struct req r;

    req_init(&r, "DELETE", url_of(c, "/v2/%s/manifests/%s", repo, ref), scope);
    int rv = run(c, &r, errmsg);
    /* distribution: 405 when deletes are off, 400 (or 405) for a tag */
    if ((rv == AT_EINVAL && (r.status == 400 || r.status == 405)) ||
        (rv != 0 && r.status == 405))
        rv = AT_EUNSUPPORTED;
    req_release(&r);
    at_free(scope);
    return rv;
}

/* see regclient.h */
int node_regclient_referrers(struct node_regclient *c,
                             const char *repo,
                             const struct at_digest *d,
                             struct at_digest **out,
                             size_t *n,
                             char *errmsg)
{
    char ds[AT_DIGEST_STR_SIZE];
    char *scope = scope_of(repo, false);
    struct req r;

    *out = NULL;
    *n = 0;
    req_init(&r, "GET",
             url_of(c, "/v2/%s/referrers/%s", repo, at_digest_format(d, ds)),
             scope);
    r.accept = "application/vnd.oci.image.index.v1+json";
    r.max = NODE_REGCLIENT_MANIFEST_MAX;
    at_buf_release(&r.resp);
    at_buf_init(&r.resp, r.max);
    int rv = run(c, &r, errmsg);
    if (rv == 0) {
        json_t *doc = json_loadb(r.resp.data, r.resp.len, 0, NULL);
        json_t *list = json_object_get(doc, "manifests");
        size_t i;
        json_t *v;
        *out = at_calloc(json_array_size(list) + 1, sizeof(**out));
        json_array_foreach(list, i, v)
        {
            const char *s = json_string_value(json_object_get(v, "digest"));
            if (s != NULL && at_digest_parse(s, strlen(s), &(*out)[*n]) == 0)
                (*n)++;
        }
        json_decref(doc);
    } else if (rv == AT_EINVAL && (r.status == 400 || r.status == 405)) {
        rv = AT_ENOTFOUND; /* a registry without the API */
    }
    req_release(&r);
    at_free(scope);
    return rv;
}

/* see regclient.h */
const char *node_regclient_auth(const struct node_regclient *c)
{
    return c->auth;
}
