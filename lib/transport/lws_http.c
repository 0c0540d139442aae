/* The HTTP side of the libwebsockets transport: lws's HTTP callbacks turned into the engine's
 * CHAT__HTTP_* events, and the request accessors and response writers of transport.h over
 * lws's header table and writers. A chat__thttp here is the connection's struct lws. */
#include "transport/lws_internal.h"

#include "chat/errors.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static struct lws *W(chat__thttp *h)
{
    return (struct lws *)h;
}

/* lws frames a request body by Content-Length only: with Transfer-Encoding present, the
 * chunked body (or whatever follows) would be read as the next request on the connection
 * (RFC 9112 6.1: request smuggling). Such requests are answered 400 and the connection
 * closes, before the engine sees them. */
static int refuse_transfer_encoding(lws_tp *tp, struct lws *wsi, void **slot)
{
    if (*slot) /* a transaction left unanswered on this connection: gone with it */
        tp->sink.http(tp->sink.ud, (chat__thttp *)wsi, CHAT__HTTP_CLOSED, slot, NULL, 0);
    static const char body[] = "{\"code\":\"EINVAL\",\"reason\":\"bad_request\",\"message\":"
                               "\"Transfer-Encoding is not supported; send Content-Length\"}\n";
    unsigned char buf[LWS_PRE + sizeof body];
    memcpy(buf + LWS_PRE, body, sizeof body - 1);
    if (chat__lws_http_respond((chat__thttp *)wsi, 400, "application/json",
                               (int64_t)(sizeof body - 1), NULL, 0, 1) == 0)
        lws_write(wsi, buf + LWS_PRE, sizeof body - 1, LWS_WRITE_HTTP_FINAL);
    return -1;
}

int chat__lws_http_event(lws_tp *tp, struct lws *wsi, int reason, void **slot, void *in,
                         size_t len)
{
    int ev;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0)
            return refuse_transfer_encoding(tp, wsi, slot);
        ev = CHAT__HTTP_REQUEST;
        if (!in)
            in = (void *)"/";
        break;
    case LWS_CALLBACK_HTTP_BODY:
        ev = CHAT__HTTP_BODY;
        break;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        ev = CHAT__HTTP_BODY_DONE;
        break;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        ev = CHAT__HTTP_WRITABLE;
        break;
    case LWS_CALLBACK_CLOSED_HTTP:
        ev = CHAT__HTTP_CLOSED;
        break;
    default:
        return 0;
    }
    return tp->sink.http(tp->sink.ud, (chat__thttp *)wsi, ev, slot, in, len);
}

int chat__lws_http_method(chat__thttp *h)
{
    static const struct {
        enum lws_token_indexes tok;
        int method;
    } map[] = {
        {WSI_TOKEN_GET_URI, CHAT__HTTP_GET},       {WSI_TOKEN_HEAD_URI, CHAT__HTTP_HEAD},
        {WSI_TOKEN_POST_URI, CHAT__HTTP_POST},     {WSI_TOKEN_PUT_URI, CHAT__HTTP_PUT},
        {WSI_TOKEN_PATCH_URI, CHAT__HTTP_PATCH},   {WSI_TOKEN_DELETE_URI, CHAT__HTTP_DELETE},
        {WSI_TOKEN_OPTIONS_URI, CHAT__HTTP_OPTIONS},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (lws_hdr_total_length(W(h), map[i].tok) > 0)
            return map[i].method;
    return CHAT__HTTP_OTHER;
}

/* Headers lws parses into its own table; every other one is a custom header. */
static const struct {
    const char *name;
    enum lws_token_indexes tok;
} known[] = {
    {"authorization", WSI_TOKEN_HTTP_AUTHORIZATION},
    {"content-length", WSI_TOKEN_HTTP_CONTENT_LENGTH},
    {"content-type", WSI_TOKEN_HTTP_CONTENT_TYPE},
    {"if-none-match", WSI_TOKEN_HTTP_IF_NONE_MATCH},
    {"range", WSI_TOKEN_HTTP_RANGE},
    {"origin", WSI_TOKEN_ORIGIN},
    {"host", WSI_TOKEN_HOST},
    {"connection", WSI_TOKEN_CONNECTION},
    {"upgrade", WSI_TOKEN_UPGRADE},
    {"transfer-encoding", WSI_TOKEN_HTTP_TRANSFER_ENCODING},
    {"expect", WSI_TOKEN_HTTP_EXPECT},
};

/* A custom header, whose name lws matches as the client spelled it: tried in lower case and
 * in the usual capitalisation ("Upload-Offset"). */
static int custom_header(struct lws *wsi, const char *name, char *buf, size_t size)
{
    char spell[2][64];
    size_t n = strlen(name);
    if (n + 2 > sizeof spell[0])
        return CHAT__HDR_ABSENT;
    for (size_t i = 0; i < n; i++) {
        spell[0][i] = name[i];
        spell[1][i] = (char)(i == 0 || name[i - 1] == '-' ? toupper((unsigned char)name[i])
                                                           : name[i]);
    }
    for (int k = 0; k < 2; k++) {
        spell[k][n] = ':';
        spell[k][n + 1] = '\0';
        int len = lws_hdr_custom_length(wsi, spell[k], (int)n + 1);
        if (len < 0)
            continue;
        if ((size_t)len >= size)
            return CHAT__HDR_TOO_LONG;
        return lws_hdr_custom_copy(wsi, buf, (int)size, spell[k], (int)n + 1) < 0
                   ? CHAT__HDR_TOO_LONG
                   : len;
    }
    return CHAT__HDR_ABSENT;
}

int chat__lws_http_header(chat__thttp *h, const char *name, char *buf, size_t size)
{
    if (size)
        buf[0] = '\0';
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strcmp(known[i].name, name) != 0)
            continue;
        int n = lws_hdr_total_length(W(h), known[i].tok);
        if (n <= 0)
            return CHAT__HDR_ABSENT;
        /* lws joins a repeated header's values in its table: one value is what was sent once,
         * and the engine cannot tell a repetition here. */
        if ((size_t)n >= size)
            return CHAT__HDR_TOO_LONG;
        return lws_hdr_copy(W(h), buf, (int)size, known[i].tok) < 0 ? CHAT__HDR_TOO_LONG : n;
    }
    return custom_header(W(h), name, buf, size);
}

/* The query as the client sent it, rebuilt from lws's arguments (each one URL-decoded: a
 * decoded '&' inside one is refused, it would read as two), joined by '&'. */
int chat__lws_http_query(chat__thttp *h, char *q, size_t size)
{
    struct lws *wsi = W(h);
    size_t n = 0;
    q[0] = 0;
    for (int i = 0;; i++) {
        if (size - n < 2)
            return -1;
        int len = lws_hdr_copy_fragment(wsi, q + n, (int)(size - n), WSI_TOKEN_HTTP_URI_ARGS, i);
        if (len < 0) {
            if (lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, i) > 0)
                return -1; /* there, but too long */
            if (n)
                q[--n] = 0; /* the last '&' */
            return (int)n;
        }
        if (n + (size_t)len + 2 > size || memchr(q + n, '&', (size_t)len) ||
            strlen(q + n) != (size_t)len)
            return -1;
        n += (size_t)len;
        q[n++] = '&';
        q[n] = 0;
    }
}

int chat__lws_http_respond(chat__thttp *h, int status, const char *ctype, int64_t content_length,
                           const chat__http_hdr *hdr, int n, int close)
{
    struct lws *wsi = W(h);
    unsigned char buf[LWS_PRE + 2048];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
    if (lws_add_http_common_headers(wsi, (unsigned)status, ctype && ctype[0] ? ctype : NULL,
                                    content_length >= 0 ? (lws_filepos_t)content_length
                                                        : LWS_ILLEGAL_HTTP_CONTENT_LEN,
                                    &p, end))
        return -1;
    for (int i = 0; i < n; i++) {
        char name[40];
        snprintf(name, sizeof name, "%s:", hdr[i].name);
        if (lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                        (const unsigned char *)hdr[i].value,
                                        (int)strlen(hdr[i].value), &p, end))
            return -1;
    }
    if (close && lws_add_http_header_by_name(wsi, (const unsigned char *)"connection:",
                                             (const unsigned char *)"close", 5, &p, end))
        return -1;
    return lws_finalize_write_http_header(wsi, start, &p, end) ? -1 : 0;
}

int chat__lws_http_write(chat__thttp *h, unsigned char *data, size_t len, int final)
{
    return lws_write(W(h), data, len, final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < (int)len
               ? -1
               : 0;
}

int chat__lws_http_continue(chat__thttp *h)
{
    static const char go[] = "HTTP/1.1 100 Continue\r\n\r\n";
    unsigned char buf[LWS_PRE + sizeof go];
    memcpy(buf + LWS_PRE, go, sizeof go - 1);
    return lws_write(W(h), buf + LWS_PRE, sizeof go - 1, LWS_WRITE_HTTP) < (int)sizeof go - 1
               ? -1
               : 0;
}

int chat__lws_http_choked(chat__thttp *h)
{
    return lws_send_pipe_choked(W(h));
}

void chat__lws_http_want_write(chat__thttp *h)
{
    lws_callback_on_writable(W(h));
}

int chat__lws_http_complete(chat__thttp *h)
{
    return lws_http_transaction_completed(W(h)) ? -1 : 0;
}

void chat__lws_http_progress(chat__thttp *h)
{
    /* lws armed its timeout when the request came and extends it only for bodies coming in:
     * without this, every download longer than the timeout was cut, however fast it went. */
    lws_set_timeout(W(h), PENDING_TIMEOUT_HTTP_CONTENT, CHAT__LWS_HTTP_TIMEOUT_SECS);
}
