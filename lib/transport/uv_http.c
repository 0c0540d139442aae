/* The native transport's HTTP side: request heads and bodies in, responses out, and the
 * WebSocket upgrade (RFC 6455 4.2). One request at a time per connection: bytes of a next
 * (pipelined) request wait until the current response is complete. */
#include "transport/uv_internal.h"

#include "chat/errors.h"
#include "core/alloc.h"

#include <openssl/evp.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Every response carries these: nothing served here is a page, a frame or a script. */
static const char security_headers[] =
    "content-security-policy: default-src 'none'; frame-ancestors 'none'\r\n"
    "x-content-type-options: nosniff\r\n"
    "x-frame-options: deny\r\n"
    "referrer-policy: no-referrer\r\n";

static uconn *U(chat__thttp *h)
{
    return (uconn *)h;
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 416: return "Range Not Satisfiable";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "";
    }
}

/* A whole small response of the transport's own (a refusal before the engine is involved), then
 * the connection closes. */
static void refuse(uconn *c, int status, const char *reason, const char *message,
                   const char *extra_header)
{
    char body[256], head[1024];
    int bl = snprintf(body, sizeof body, "{\"code\":\"EINVAL\",\"reason\":\"%s\",\"message\":\"%s\"}\n",
                      reason, message);
    int hl = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                      "%s%sconnection: close\r\n\r\n",
                      status, reason_phrase(status), bl, extra_header ? extra_header : "",
                      security_headers);
    if (chat__uv_out(c, head, (size_t)hl) == 0)
        chat__uv_out(c, body, (size_t)bl);
    chat__uv_close(c, 1);
}

void chat__uv_http_event(uconn *c, int event, const void *in, size_t len)
{
    utp *tp = c->tp;
    int r = tp->sink.http(tp->sink.ud, (chat__thttp *)c, event, &c->slot, in, len);
    if (r && c->phase != UC_DEAD)
        chat__uv_close(c, 1); /* what was answered goes out first */
}

/* ---- the WebSocket upgrade ---- */

static int is_upgrade(const chat__http1_req *req)
{
    const char *up = chat__http1_field_get(req, "upgrade", NULL);
    const char *conn = chat__http1_field_get(req, "connection", NULL);
    return up && conn && chat__http1_has_token(up, "websocket") &&
           chat__http1_has_token(conn, "upgrade");
}

/* Sec-WebSocket-Accept for key: base64(SHA-1(key + the RFC's GUID)). */
static int accept_value(const char *key, char *out, size_t size)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char in[64 + sizeof guid];
    size_t kl = strlen(key);
    if (kl > 64)
        return -1;
    memcpy(in, key, kl);
    memcpy(in + kl, guid, sizeof guid - 1);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(in, kl + sizeof guid - 1, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20)
        return -1;
    if (size < sodium_base64_ENCODED_LEN(20, sodium_base64_VARIANT_ORIGINAL))
        return -1;
    sodium_bin2base64(out, size, md, 20, sodium_base64_VARIANT_ORIGINAL);
    return 0;
}

/* A key is 16 random bytes in base64: 24 characters. */
static int key_ok(const char *key)
{
    unsigned char bin[18];
    size_t n = 0;
    return key && strlen(key) == 24 &&
           sodium_base642bin(bin, sizeof bin, key, 24, NULL, &n, NULL,
                             sodium_base64_VARIANT_ORIGINAL) == 0 &&
           n == 16;
}

static long upgrade(uconn *c, size_t head_len)
{
    utp *tp = c->tp;
    const chat__http1_req *req = c->req;
    const char *key = chat__http1_field_get(req, "sec-websocket-key", NULL);
    const char *ver = chat__http1_field_get(req, "sec-websocket-version", NULL);
    if (req->method != CHAT__HTTP_GET || req->minor != 1 || !key_ok(key)) {
        refuse(c, 400, "bad_request", "not a valid WebSocket upgrade", NULL);
        return -1;
    }
    if (!ver || strcmp(ver, "13") != 0) {
        refuse(c, 426, "bad_request", "WebSocket version 13 only",
               "sec-websocket-version: 13\r\n");
        return -1;
    }
    int status = tp->shutting_down ? 503 : tp->sink.upgrade(tp->sink.ud, (chat__thttp *)c,
                                                            req->path);
    if (status) {
        refuse(c, status, status == 503 ? "busy" : "refused", "upgrade refused", NULL);
        return -1;
    }
    char acc[32];
    const char *protos = chat__http1_field_get(req, "sec-websocket-protocol", NULL);
    int chosen = protos && chat__http1_has_token(protos, "libchat.v1");
    char resp[256];
    if (accept_value(key, acc, sizeof acc) != 0) {
        refuse(c, 400, "bad_request", "not a valid WebSocket upgrade", NULL);
        return -1;
    }
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
                     "connection: Upgrade\r\nsec-websocket-accept: %s\r\n%s\r\n",
                     acc, chosen ? "sec-websocket-protocol: libchat.v1\r\n" : "");
    c->rx = chat__calloc(1, sizeof *c->rx);
    if (!c->rx || chat__uv_out(c, resp, (size_t)n) != 0) {
        chat__uv_close(c, 0);
        return -1;
    }
    chat__uv_fifo_leave(c);
    chat__free(c->head);
    chat__free(c->req);
    c->head = NULL;
    c->req = NULL;
    c->phase = UC_WS;
    c->conn = tp->sink.open(tp->sink.ud, (chat__tconn *)c);
    if (!c->conn) {
        chat__uv_ws_close(c, 1011, "server error");
        return -1;
    }
    return (long)head_len;
}

/* ---- requests ---- */

static long head_in(uconn *c, unsigned char *p, size_t n)
{
    /* Find the head's end first: it is parsed in a copy of its own, which outlives the bytes
     * that came in. */
    size_t start = 0, scan = n < CHAT__HTTP1_MAX_HEAD ? n : CHAT__HTTP1_MAX_HEAD;
    while (start + 1 < n && p[start] == '\r' && p[start + 1] == '\n')
        start += 2;
    size_t end = 0;
    for (size_t i = start; i + 3 < scan; i++)
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n') {
            end = i + 4;
            break;
        }
    if (!end) {
        if (n >= CHAT__HTTP1_MAX_HEAD) {
            refuse(c, 431, "too_large", "the request head is too large", NULL);
            return -1;
        }
        return 0;
    }
    c->head = chat__malloc(end + 1);
    c->req = chat__malloc(sizeof *c->req);
    if (!c->head || !c->req) {
        chat__uv_close(c, 0);
        return -1;
    }
    memcpy(c->head, p, end);
    c->head[end] = '\0';
    if (chat__http1_parse(c->head, end, c->req) != CHAT__HTTP1_OK) {
        refuse(c, 400, "bad_request", "malformed or unsupported request (a body is framed by "
                                      "Content-Length only)", NULL);
        return -1;
    }
    if (is_upgrade(c->req))
        return upgrade(c, end);
    const char *conn = chat__http1_field_get(c->req, "connection", NULL);
    c->http_close = c->req->minor == 0 || (conn && chat__http1_has_token(conn, "close"));
    c->body_left = c->req->content_length > 0 ? (uint64_t)c->req->content_length : 0;
    c->phase = c->body_left ? UC_BODY : UC_HTTP;
    chat__uv_fifo_join(&c->tp->http_fifo, c, CHAT__UV_HTTP_TIMEOUT_MS);
    chat__uv_http_event(c, CHAT__HTTP_REQUEST, c->req->path, strlen(c->req->path));
    return c->phase == UC_DEAD ? -1 : (long)end;
}

static long body_in(uconn *c, unsigned char *p, size_t n)
{
    size_t k = n < c->body_left ? n : (size_t)c->body_left;
    c->body_left -= k;
    if (c->slot) { /* an engine that already answered gets no more of the body */
        chat__uv_fifo_join(&c->tp->http_fifo, c, CHAT__UV_HTTP_TIMEOUT_MS);
        chat__uv_http_event(c, CHAT__HTTP_BODY, p, k);
        if (c->phase == UC_DEAD)
            return -1;
    }
    if (c->body_left == 0 && c->phase == UC_BODY) {
        if (c->req) {
            c->phase = UC_HTTP;
            if (c->slot)
                chat__uv_http_event(c, CHAT__HTTP_BODY_DONE, NULL, 0);
        } else {
            chat__uv_http_done(c); /* the transaction ended before its body did */
        }
        if (c->phase == UC_DEAD)
            return -1;
    }
    return (long)k;
}

long chat__uv_http_input(uconn *c, unsigned char *p, size_t n)
{
    return c->phase == UC_HEAD ? head_in(c, p, n) : body_in(c, p, n);
}

void chat__uv_http_done(uconn *c)
{
    chat__free(c->head);
    chat__free(c->req);
    c->head = NULL;
    c->req = NULL;
    c->slot = NULL;
    if (c->body_left) {
        c->phase = UC_BODY; /* the rest of an unread body is skipped first */
        return;
    }
    c->phase = UC_HEAD;
    chat__uv_fifo_join(&c->tp->http_fifo, c, CHAT__UV_HTTP_TIMEOUT_MS);
    chat__uv_mark(c); /* a pipelined request may be waiting */
}

/* ---- accessors and writers ---- */

int chat__uv_http_method(chat__thttp *h)
{
    return U(h)->req ? U(h)->req->method : CHAT__HTTP_OTHER;
}

int chat__uv_http_header(chat__thttp *h, const char *name, char *buf, size_t size)
{
    if (size)
        buf[0] = '\0';
    if (!U(h)->req)
        return CHAT__HDR_ABSENT;
    int count = 0;
    const char *v = chat__http1_field_get(U(h)->req, name, &count);
    if (!v)
        return CHAT__HDR_ABSENT;
    if (count > 1)
        return CHAT__HDR_REPEATED;
    size_t n = strlen(v);
    if (n >= size)
        return CHAT__HDR_TOO_LONG;
    memcpy(buf, v, n + 1);
    return (int)n;
}

int chat__uv_http_query(chat__thttp *h, char *buf, size_t size)
{
    const char *q = U(h)->req ? U(h)->req->query : "";
    size_t n = strlen(q);
    if (n >= size)
        return -1;
    memcpy(buf, q, n + 1);
    return (int)n;
}

int chat__uv_http_respond(chat__thttp *h, int status, const char *ctype, int64_t content_length,
                          const chat__http_hdr *hdr, int n, int close)
{
    uconn *c = U(h);
    char buf[4096];
    size_t used = 0;
#define ADD(...)                                                                            \
    do {                                                                                    \
        int k_ = snprintf(buf + used, sizeof buf - used, __VA_ARGS__);                      \
        if (k_ < 0 || (size_t)k_ >= sizeof buf - used)                                      \
            return -1;                                                                      \
        used += (size_t)k_;                                                                 \
    } while (0)
    ADD("HTTP/1.1 %d %s\r\n", status, reason_phrase(status));
    if (ctype && ctype[0])
        ADD("content-type: %s\r\n", ctype);
    if (content_length >= 0)
        ADD("content-length: %lld\r\n", (long long)content_length);
    for (int i = 0; i < n; i++)
        ADD("%s: %s\r\n", hdr[i].name, hdr[i].value);
    if (close)
        c->http_close = 1;
    ADD("%s%s\r\n", security_headers, c->http_close ? "connection: close\r\n" : "");
#undef ADD
    return chat__uv_out(c, buf, used);
}

int chat__uv_http_write(chat__thttp *h, unsigned char *data, size_t len, int final)
{
    (void)final;
    return chat__uv_out(U(h), data, len);
}

int chat__uv_http_continue(chat__thttp *h)
{
    static const char go[] = "HTTP/1.1 100 Continue\r\n\r\n";
    return chat__uv_out(U(h), go, sizeof go - 1);
}

int chat__uv_http_choked(chat__thttp *h)
{
    return U(h)->blocked || U(h)->out_len >= CHAT__UV_CORK_BYTES / 2;
}

void chat__uv_http_want_write(chat__thttp *h)
{
    uconn *c = U(h);
    c->want_write = 1;
    if (!c->blocked)
        chat__uv_mark(c);
}

int chat__uv_http_complete(chat__thttp *h)
{
    uconn *c = U(h);
    if (c->http_close)
        return -1;
    chat__uv_http_done(c);
    return 0;
}

void chat__uv_http_progress(chat__thttp *h)
{
    uconn *c = U(h);
    if (c->phase == UC_BODY || c->phase == UC_HTTP)
        chat__uv_fifo_join(&c->tp->http_fifo, c, CHAT__UV_HTTP_TIMEOUT_MS);
}
