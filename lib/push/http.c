/* HTTP for the push providers on libcurl (see http.h). One multi handle per provider thread:
 * its connection cache outlives the easy handles, so a provider reuses one connection per
 * host, and with PIPEWAIT a batch's requests wait for that connection and multiplex over it
 * (HTTP/2) instead of opening one connection each. */
#include "push/http.h"

#include "chat/errors.h"
#include "chat/version.h"
#include "core/alloc.h"
#include "core/error.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct chat__http {
    CURLM *multi;
    char *ca_file;
    long timeout_ms;
    atomic_int aborted;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

/* Once per process, as libcurl asks; it is thread-safe in the libcurl Debian ships (built
 * with the "threadsafe" feature), and the once makes any other build safe too. */
static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int chat__http_new(chat__http **out, const chat__http_opts *opts)
{
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return chat__error_set(CHAT_ERROR, (int)curl_init_rc, "push: libcurl init failed: %s",
                               curl_easy_strerror(curl_init_rc));
    chat__http *h = chat__calloc(1, sizeof *h);
    if (!h)
        return chat__error_set(CHAT_ENOMEM, 0, "push: out of memory");
    h->multi = curl_multi_init();
    if (opts->ca_file && !(h->ca_file = chat__strdup(opts->ca_file)))
        goto oom;
    if (!h->multi)
        goto oom;
    curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    /* One connection per host: HTTP/2 multiplexes on it; an HTTP/1.1 webhook gets its requests
     * one after the other, as a gateway expects. */
    curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 1L);
    h->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 10000;
    *out = h;
    return CHAT_OK;
oom:
    chat__http_free(h);
    return chat__error_set(CHAT_ENOMEM, 0, "push: out of memory");
}

void chat__http_free(chat__http *h)
{
    if (!h)
        return;
    if (h->multi)
        curl_multi_cleanup(h->multi);
    chat__free(h->ca_file);
    chat__free(h);
}

void chat__http_abort(chat__http *h)
{
    atomic_store(&h->aborted, 1);
    curl_multi_wakeup(h->multi);
}

int64_t chat__http_retry_after_ms(const char *value, int64_t now_s)
{
    while (*value == ' ' || *value == '\t')
        value++;
    if (*value >= '0' && *value <= '9') {
        char *end;
        long long s = strtoll(value, &end, 10);
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
            end++;
        if (*end || s < 0 || s > 7 * 24 * 3600)
            return -1;
        return (int64_t)s * 1000;
    }
    time_t t = curl_getdate(value, NULL);
    if (t == (time_t)-1)
        return -1;
    return t <= now_s ? 0 : ((int64_t)t - now_s) * 1000;
}

/* ---- one transfer ---- */

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    chat__http_req *r = ud;
    size_t len = size * n, room = CHAT__HTTP_BODY_MAX - r->resp_len;
    size_t take = len < room ? len : room;
    memcpy(r->resp + r->resp_len, data, take);
    r->resp_len += take;
    r->resp[r->resp_len] = '\0';
    return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    chat__http_req *r = ud;
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (len > sizeof name - 1 && len < 128 && strncasecmp(data, name, sizeof name - 1) == 0) {
        char v[128];
        memcpy(v, data + sizeof name - 1, len - (sizeof name - 1));
        v[len - (sizeof name - 1)] = '\0';
        r->retry_after_ms = chat__http_retry_after_ms(v, (int64_t)time(NULL));
    }
    return len;
}

static int map_curl_error(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return CHAT_ETIMEDOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        return CHAT_ECLOSED;
    default:
        return CHAT_EIO;
    }
}

typedef struct transfer {
    CURL *easy;
    struct curl_slist *headers;
} transfer;

static int setup(chat__http *h, chat__http_req *r, transfer *t)
{
    static const char user_agent[] = "libchat/" CHAT_VERSION_STRING;
    char ctype[96];
    snprintf(ctype, sizeof ctype, "Content-Type: %s",
             r->content_type ? r->content_type : "application/json");
    struct curl_slist *l = curl_slist_append(NULL, ctype);
    /* No "Expect: 100-continue" round trip before the body. */
    if (l)
        l = curl_slist_append(l, "Expect:");
    for (const char *const *hd = r->headers; l && hd && *hd; hd++) {
        struct curl_slist *nl = curl_slist_append(l, *hd);
        if (!nl) {
            curl_slist_free_all(l);
            l = NULL;
        } else {
            l = nl;
        }
    }
    t->headers = l;
    t->easy = curl_easy_init();
    if (!l || !t->easy)
        return CHAT_ENOMEM;
    CURL *e = t->easy;
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https,http");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (h->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_file);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, h->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->timeout_ms);
    curl_easy_setopt(e, CURLOPT_USERAGENT, user_agent);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, l);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->detail);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    return CHAT_OK;
}

static void finish(chat__http_req *r, CURL *e, CURLcode rc)
{
    if (rc == CURLE_OK) {
        long status = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        r->status = (int)status;
        r->error = CHAT_OK;
    } else {
        r->error = map_curl_error(rc);
        if (!r->detail[0])
            snprintf(r->detail, sizeof r->detail, "%s", curl_easy_strerror(rc));
    }
}

int chat__http_run(chat__http *h, chat__http_req *reqs, size_t n)
{
    transfer *t = chat__calloc(n ? n : 1, sizeof *t);
    if (!t)
        return chat__error_set(CHAT_ENOMEM, 0, "push: out of memory");
    int rc = CHAT_OK;
    size_t added = 0;
    for (size_t i = 0; i < n; i++) {
        chat__http_req *r = &reqs[i];
        r->status = 0;
        r->error = CHAT_ECLOSED;
        r->retry_after_ms = -1;
        r->resp_len = 0;
        r->resp[0] = '\0';
        r->detail[0] = '\0';
        if (setup(h, r, &t[i]) != CHAT_OK ||
            curl_multi_add_handle(h->multi, t[i].easy) != CURLM_OK) {
            rc = CHAT_ENOMEM;
            break;
        }
        added = i + 1;
    }
    int running = rc == CHAT_OK ? 1 : 0;
    while (running && !atomic_load(&h->aborted)) {
        if (curl_multi_perform(h->multi, &running) != CURLM_OK)
            break;
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(h->multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            chat__http_req *r = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            if (r)
                finish(r, m->easy_handle, m->data.result);
        }
        if (running)
            curl_multi_poll(h->multi, NULL, 0, 1000, NULL);
    }
    if (atomic_load(&h->aborted) && rc == CHAT_OK)
        rc = CHAT_ECLOSED;
    for (size_t i = 0; i < n; i++) {
        if (t[i].easy) {
            if (i < added)
                curl_multi_remove_handle(h->multi, t[i].easy);
            curl_easy_cleanup(t[i].easy);
        }
        curl_slist_free_all(t[i].headers);
    }
    chat__free(t);
    return rc == CHAT_ENOMEM ? chat__error_set(CHAT_ENOMEM, 0, "push: out of memory") : rc;
}
