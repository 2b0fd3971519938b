/* The CLI's one blocking HTTP request (see cli.h: node_cli_http), over
 * plain HTTP or HTTPS, with libcurl's easy interface.
 *
 * An address is "host:port", "http://host:port" or "https://host:port".
 * Once an https:// address was given, scheme-less ones (the API addresses
 * that /_atoll/members lists) use HTTPS too. HTTPS verifies the server
 * against $ATOLL_CACERT when set (a PEM file: a private cluster CA), else
 * the system's trust store; $ATOLL_CLIENT_CERT and $ATOLL_CLIENT_KEY give a
 * client certificate (a peer listener with mutual TLS asks for one). */
#include "common/compat.h"

#include <curl/curl.h>

#include "common/common.h"
#include "node/cli.h"
#include "proto/peer.h"

#define REPLY_MAX (16 * 1024 * 1024)

static bool sticky_https;

struct answer {
    struct at_buf body;
    bool too_big;
};

static size_t on_body(char *p, size_t size, size_t n, void *data)
{
    struct answer *a = data;

    if (at_buf_append(&a->body, p, size * n) != 0) {
        a->too_big = true;
        return 0;
    }
    return size * n;
}

/* "https://h:p" -> the URL base; "h:p" -> http:// or, once https was
 * seen, https://. Caller frees. */
static char *base_url(const char *addr)
{
    if (strncmp(addr, "https://", 8) == 0) {
        sticky_https = true;
        return at_strdup(addr);
    }
    if (strncmp(addr, "http://", 7) == 0)
        return at_strdup(addr);
    return at_asprintf("%s://%s", sticky_https ? "https" : "http", addr);
}

static void tls_options(CURL *c)
{
    const char *ca = getenv("ATOLL_CACERT");
    const char *cert = getenv("ATOLL_CLIENT_CERT");
    const char *key = getenv("ATOLL_CLIENT_KEY");

    if (ca != NULL && ca[0] != '\0')
        curl_easy_setopt(c, CURLOPT_CAINFO, ca);
    if (cert != NULL && cert[0] != '\0')
        curl_easy_setopt(c, CURLOPT_SSLCERT, cert);
    if (key != NULL && key[0] != '\0')
        curl_easy_setopt(c, CURLOPT_SSLKEY, key);
    curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
}

/* why the last node_cli_http call failed to get an answer */
static char last_why[CURL_ERROR_SIZE] = "no answer";

/* see cli.h */
const char *node_cli_why(int status)
{
    return status == AT_EIO ? last_why
           : status < 0     ? at_strerror(status)
                            : "unexpected HTTP status";
}

/* see cli.h */
int node_cli_http(const char *method,
                  const char *addr,
                  const char *path,
                  const char *authz,
                  const char *json,
                  char **body)
{
    struct answer a = { .too_big = false };
    struct curl_slist *hdrs = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    char *base = base_url(addr);
    char *url = at_asprintf("%s%s", base, path);
    char *auth = NULL;
    char *version = NULL;
    long status = 0;
    CURL *c = curl_easy_init();
    CURLcode rc;

    free(base);
    if (c == NULL) {
        free(url);
        return AT_ENOMEM;
    }
    at_buf_init(&a.body, REPLY_MAX);
    /* the peer protocol version is for the peer listener (the API port
     * ignores it) */
    version =
        at_asprintf("%s: %d", PROTO_PEER_VERSION_HEADER, PROTO_PEER_VERSION);
    hdrs = curl_slist_append(hdrs, version);
    hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (authz != NULL) {
        auth = at_asprintf("Authorization: %s", authz);
        hdrs = curl_slist_append(hdrs, auth);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &a);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (json != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(json));
    }
    tls_options(c);
    rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    } else {
        long os_errno = 0;
        curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &os_errno);
        snprintf(last_why, sizeof(last_why), "cannot reach '%s': %s", addr,
                 os_errno != 0       ? strerror((int)os_errno)
                 : errbuf[0] != '\0' ? errbuf
                                     : curl_easy_strerror(rc));
    }
    if (rc != CURLE_OK && strncmp(url, "https://", 8) == 0 &&
        rc != CURLE_COULDNT_CONNECT)
        fprintf(stderr,
                "atoll: %s: %s (HTTPS: ATOLL_CACERT names the CA's PEM "
                "file; a peer port with mutual TLS also wants "
                "ATOLL_CLIENT_CERT and ATOLL_CLIENT_KEY)\n",
                addr, errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
    curl_easy_cleanup(c);
    curl_slist_free_all(hdrs);
    if (auth != NULL) {
        explicit_bzero(auth, strlen(auth));
        free(auth);
    }
    free(version);
    free(url);
    if (rc != CURLE_OK || a.too_big || status < 100) {
        at_buf_release(&a.body);
        return rc == CURLE_OK ? AT_EPROTO : AT_EIO;
    }
    *body = at_strndup(a.body.data != NULL ? a.body.data : "", a.body.len);
    at_buf_release(&a.body);
    return (int)status;
}
