/* The default client transport: a small RFC 6455 WebSocket client over one non-blocking POSIX
 * socket, polled on the client's loop thread together with an eventfd for wake().
 *
 * Why not libwebsockets' client API: Debian's lws 4.1.6 is built with LWS_MAX_SMP 1 and without
 * external poll, so a client context needs its own service loop; the only thread-safe entry is
 * lws_cancel_service, and the client connection's lifecycle (connect errors, retries, close
 * reasons) is spread over a dozen callback reasons whose behaviour drifted between 4.x releases.
 * One connection per client needs none of lws's multiplexing: a poll() over two fds is the
 * whole event loop, the engine owns every timer, and the transport stays ~400 lines that the
 * tests cover end to end. TLS (wss://) is OpenSSL's, as on the server side, driven
 * non-blocking over the same socket, set up by tls.c (shared with media transfers): the
 * peer's certificate chain is verified against the configured CA file (else the system's
 * trust store) and its name against the URL's host (an IP literal against the certificate's
 * IP addresses). A failed handshake closes with 1015 and
 * a reason naming the verification error.
 *
 * Limits: name resolution (getaddrinfo) blocks the loop thread briefly; the
 * server's Sec-WebSocket-Accept is required but not verified (no SHA-1 in libsodium); incoming
 * messages are bounded at 16 MiB. */
#define _GNU_SOURCE
#include "chat/sys/client_transport.h"
#include "chat/errors.h"
#include "core/alloc.h"
#include "core/error.h"
#include "auth/keyring.h"
#include "client/internal.h"
#include "client/tls.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define WS_MAX_MESSAGE (16u * 1024 * 1024)

enum { PH_IDLE = 0, PH_TCP = 1, PH_UPGRADE = 2, PH_OPEN = 3, PH_TLS = 4 };

typedef struct buf {
    unsigned char *p;
    size_t len, cap;
} buf;

typedef struct ws_state {
    int wake_fd;
    int fd;
    int phase;
    unsigned gen; /* bumped on every close/connect: detects reentrant changes in callbacks */
    char host[256];
    char port[8];
    char path[512];
    buf in, out, msg;
    int msg_active; /* a fragmented text message is being reassembled */
    int tls;        /* wss:// */
    SSL_CTX *ctx;   /* made at the first wss:// connect, kept */
    SSL *ssl;       /* the current connection's, while tls */
    short tls_want; /* PH_TLS: POLLIN or POLLOUT, as the handshake asked */
    char *ca_file;  /* PEM CAs to trust instead of the system's; NULL: system */
    const chat_client_transport_sink *sink;
    void *sink_data;
} ws_state;

static int buf_add(buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *np = chat__realloc(b->p, cap);
        if (!np)
            return CHAT_ENOMEM;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return CHAT_OK;
}

static void buf_consume(buf *b, size_t n)
{
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

static void buf_free(buf *b)
{
    chat__free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static void drop(ws_state *s)
{
    if (s->ssl) {
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    s->phase = PH_IDLE;
    s->in.len = s->out.len = s->msg.len = 0;
    s->msg_active = 0;
    s->gen++;
}

/* The connection failed or ended: report once, then forget it. */
static void fail(ws_state *s, int code, const char *reason)
{
    const chat_client_transport_sink *sink = s->sink;
    void *sd = s->sink_data;
    drop(s);
    s->sink = NULL;
    if (sink && sink->on_close)
        sink->on_close(code, reason ? reason : "", sd);
}

static int queue_frame(ws_state *s, int opcode, const void *data, size_t len)
{
    unsigned char h[14];
    size_t hl = 0;
    h[hl++] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        h[hl++] = (unsigned char)(0x80 | len);
    } else if (len <= 0xffff) {
        h[hl++] = 0x80 | 126;
        h[hl++] = (unsigned char)(len >> 8);
        h[hl++] = (unsigned char)len;
    } else {
        h[hl++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            h[hl++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    unsigned char mask[4];
    randombytes_buf(mask, sizeof mask);
    memcpy(h + hl, mask, 4);
    hl += 4;
    size_t start = s->out.len;
    if (buf_add(&s->out, h, hl) != CHAT_OK || buf_add(&s->out, data, len) != CHAT_OK) {
        s->out.len = start;
        return CHAT_ENOMEM;
    }
    unsigned char *p = s->out.p + start + hl;
    for (size_t i = 0; i < len; i++)
        p[i] ^= mask[i & 3];
    return CHAT_OK;
}

static int parse_url(ws_state *s, const char *url)
{
    s->tls = strncmp(url, "wss://", 6) == 0;
    if (!s->tls && strncmp(url, "ws://", 5) != 0)
        return chat__error_set(CHAT_EINVAL, 0, "url: expected ws:// or wss://host:port/path");
    const char *h = url + (s->tls ? 6 : 5), *end;
    if (*h == '[') {
        end = strchr(h, ']');
        if (!end)
            return chat__error_set(CHAT_EINVAL, 0, "url: unterminated [");
        h++;
    } else {
        end = h + strcspn(h, ":/");
    }
    size_t hl = (size_t)(end - h);
    if (hl == 0 || hl >= sizeof s->host)
        return chat__error_set(CHAT_EINVAL, 0, "url: bad host");
    memcpy(s->host, h, hl);
    s->host[hl] = 0;
    if (*end == ']')
        end++;
    snprintf(s->port, sizeof s->port, s->tls ? "443" : "80");
    if (*end == ':') {
        char *e;
        long port = strtol(end + 1, &e, 10);
        if (e == end + 1 || port < 1 || port > 65535)
            return chat__error_set(CHAT_EINVAL, 0, "url: bad port");
        snprintf(s->port, sizeof s->port, "%ld", port);
        end = e;
    }
    if (*end && *end != '/')
        return chat__error_set(CHAT_EINVAL, 0, "url: bad path");
    snprintf(s->path, sizeof s->path, "%s", *end ? end : "/");
    return CHAT_OK;
}

static int ws_connect(void *state, const char *url, const chat_client_transport_sink *sink,
                      void *sink_data)
{
    ws_state *s = state;
    drop(s);
    int rc = parse_url(s, url);
    if (rc != CHAT_OK)
        return rc;
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    s->sink = sink;
    s->sink_data = sink_data;
    int grc = getaddrinfo(s->host, s->port, &hints, &ai);
    if (grc != 0 || !ai) {
        /* reported asynchronously like any other connection failure */
        s->phase = PH_TCP;
        s->fd = -1;
        return CHAT_OK;
    }
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    s->fd = fd;
    s->phase = PH_TCP; /* fd -1: poll() reports the failure */
    return CHAT_OK;
}

static int ws_send_text(void *state, const char *data, size_t len)
{
    ws_state *s = state;
    if (s->phase != PH_OPEN)
        return CHAT_ECLOSED;
    return queue_frame(s, 0x1, data, len);
}

static ssize_t io_send(ws_state *s, const void *p, size_t n);

static void ws_close(void *state)
{
    ws_state *s = state;
    if (s->phase == PH_OPEN) {
        /* best effort: a close frame (1000) without waiting for the answer */
        unsigned char code[2] = {0x03, 0xe8};
        s->out.len = 0;
        if (queue_frame(s, 0x8, code, 2) == CHAT_OK)
            (void)io_send(s, s->out.p, s->out.len);
    }
    s->sink = NULL;
    drop(s);
}

/* Plain or TLS I/O on the connected socket: bytes moved (> 0), 0 at EOF (recv), -EAGAIN when
 * the socket is not ready, another -errno (-EIO for a TLS error) otherwise. */
static ssize_t io_send(ws_state *s, const void *p, size_t n)
{
    if (!s->ssl) {
        for (;;) {
            ssize_t r = send(s->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (r >= 0)
                return r;
            if (errno != EINTR)
                return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        }
    }
    return chat__tls_write(s->ssl, p, n);
}

static ssize_t io_recv(ws_state *s, void *p, size_t n)
{
    if (!s->ssl) {
        for (;;) {
            ssize_t r = recv(s->fd, p, n, MSG_DONTWAIT);
            if (r >= 0)
                return r;
            if (errno != EINTR)
                return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        }
    }
    return chat__tls_read(s->ssl, p, n);
}

static int flush_out(ws_state *s)
{
    while (s->out.len) {
        ssize_t n = io_send(s, s->out.p, s->out.len);
        if (n == -EAGAIN)
            return 0;
        if (n < 0)
            return (int)n;
        buf_consume(&s->out, (size_t)n);
    }
    return 0;
}

/* ---- TLS (the setup and verification are tls.c's, shared with media transfers) ---- */

static void tls_failed(ws_state *s)
{
    char why[160];
    chat__tls_failure(s->ssl, why, sizeof why);
    fail(s, 1015, why);
}

static void send_upgrade(ws_state *s);

/* Advance the handshake; on success, the WebSocket upgrade follows. */
static void tls_step(ws_state *s)
{
    ERR_clear_error();
    int r = SSL_connect(s->ssl);
    if (r == 1) {
        send_upgrade(s);
        return;
    }
    int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        s->tls_want = POLLIN;
    else if (e == SSL_ERROR_WANT_WRITE)
        s->tls_want = POLLOUT;
    else
        tls_failed(s);
}

static void tls_start(ws_state *s)
{
    int rc = s->ctx ? CHAT_OK : chat__tls_ctx_new(&s->ctx, s->ca_file);
    if (rc == CHAT_OK)
        rc = chat__tls_ssl_new(&s->ssl, s->ctx, s->fd, s->host);
    if (rc != CHAT_OK) {
        fail(s, 1015, chat_error_last()->message);
        return;
    }
    s->phase = PH_TLS;
    tls_step(s);
}

static void send_upgrade(ws_state *s)
{
    unsigned char nonce[16];
    char key[sodium_base64_ENCODED_LEN(16, sodium_base64_VARIANT_ORIGINAL)];
    randombytes_buf(nonce, sizeof nonce);
    sodium_bin2base64(key, sizeof key, nonce, sizeof nonce, sodium_base64_VARIANT_ORIGINAL);
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: libchat.v1\r\n\r\n",
                     s->path, s->host, s->port, key);
    if (n < 0 || (size_t)n >= sizeof req || buf_add(&s->out, req, (size_t)n) != CHAT_OK) {
        fail(s, 1006, "cannot build the upgrade request");
        return;
    }
    s->phase = PH_UPGRADE;
}

/* Parse what is buffered. Returns after a callback changed the connection (gen moved). */
static void process_input(ws_state *s)
{
    unsigned gen = s->gen;
    if (s->phase == PH_UPGRADE) {
        if (!s->in.len)
            return; /* nothing yet (an EOF before any byte): in.p may be NULL */
        unsigned char *end = memmem(s->in.p, s->in.len, "\r\n\r\n", 4);
        if (!end) {
            if (s->in.len > 16384)
                fail(s, 1006, "upgrade response too large");
            return;
        }
        size_t hlen = (size_t)(end - s->in.p) + 4;
        char *head = chat__strndup((const char *)s->in.p, hlen);
        if (!head) {
            fail(s, 1006, "out of memory");
            return;
        }
        int ok = strncmp(head, "HTTP/1.1 101", 12) == 0 &&
                 strcasestr(head, "\r\nSec-WebSocket-Accept:") != NULL;
        chat__free(head);
        if (!ok) {
            fail(s, 1006, "the server refused the WebSocket upgrade");
            return;
        }
        buf_consume(&s->in, hlen);
        s->phase = PH_OPEN;
        if (s->sink && s->sink->on_open)
            s->sink->on_open(s->sink_data);
        if (s->gen != gen)
            return;
    }
    while (s->phase == PH_OPEN && s->in.len >= 2) {
        const unsigned char *p = s->in.p;
        int fin = p[0] & 0x80, op = p[0] & 0x0f, masked = p[1] & 0x80;
        uint64_t len = p[1] & 0x7f;
        size_t hl = 2;
        if (len == 126) {
            if (s->in.len < 4)
                return;
            len = ((uint64_t)p[2] << 8) | p[3];
            hl = 4;
        } else if (len == 127) {
            if (s->in.len < 10)
                return;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | p[2 + i];
            hl = 10;
        }
        if (masked)
            hl += 4;
        if (len > WS_MAX_MESSAGE) {
            fail(s, 1009, "message too large");
            return;
        }
        if (s->in.len < hl + len)
            return;
        unsigned char *pl = s->in.p + hl;
        if (masked)
            for (uint64_t i = 0; i < len; i++)
                pl[i] ^= p[hl - 4 + (i & 3)];
        size_t total = hl + (size_t)len;
        switch (op) {
        case 0x1: /* text */
        case 0x0: /* continuation */
            if (op == 0x1)
                s->msg.len = 0, s->msg_active = 1;
            if (!s->msg_active)
                break;
            if (s->msg.len + len > WS_MAX_MESSAGE || buf_add(&s->msg, pl, (size_t)len) != 0) {
                fail(s, 1009, "message too large");
                return;
            }
            if (fin) {
                s->msg_active = 0;
                if (s->sink && s->sink->on_text)
                    s->sink->on_text((const char *)s->msg.p, s->msg.len, s->sink_data);
                if (s->gen != gen)
                    return;
                s->msg.len = 0;
            }
            break;
        case 0x2: /* binary: not part of the protocol; ignored */
            s->msg_active = 0;
            break;
        case 0x8: { /* close */
            int code = len >= 2 ? (pl[0] << 8) | pl[1] : 1005;
            char reason[128] = "";
            if (len > 2) {
                size_t rl = (size_t)len - 2 < sizeof reason - 1 ? (size_t)len - 2
                                                                : sizeof reason - 1;
                memcpy(reason, pl + 2, rl);
                reason[rl] = 0;
            }
            unsigned char echo[2] = {(unsigned char)(code >> 8), (unsigned char)code};
            s->out.len = 0;
            if (queue_frame(s, 0x8, echo, 2) == CHAT_OK)
                (void)io_send(s, s->out.p, s->out.len);
            fail(s, code, reason);
            return;
        }
        case 0x9: /* ping */
            if (queue_frame(s, 0xA, pl, (size_t)len) != CHAT_OK) {
                fail(s, 1006, "out of memory");
                return;
            }
            break;
        default: /* pong and reserved opcodes */
            break;
        }
        buf_consume(&s->in, total);
    }
}

static int ws_poll(void *state, int timeout_ms)
{
    ws_state *s = state;
    if (s->phase == PH_TCP && s->fd < 0) {
        fail(s, 1006, "cannot resolve or connect");
        return CHAT_OK;
    }
    struct pollfd pf[2] = {{.fd = s->wake_fd, .events = POLLIN}, {.fd = -1}};
    int n = 1;
    if (s->fd >= 0) {
        pf[1].fd = s->fd;
        pf[1].events = s->phase == PH_TCP   ? POLLOUT
                       : s->phase == PH_TLS ? s->tls_want
                                            : (short)(POLLIN | (s->out.len ? POLLOUT : 0));
        n = 2;
    }
    int rc = poll(pf, (nfds_t)n, timeout_ms);
    if (rc < 0)
        return errno == EINTR ? CHAT_OK : chat__error_set(CHAT_EIO, errno, "poll: %s",
                                                          strerror(errno));
    if (pf[0].revents & POLLIN) {
        uint64_t v;
        (void)!read(s->wake_fd, &v, sizeof v);
    }
    if (n < 2 || !pf[1].revents)
        return CHAT_OK;
    short re = pf[1].revents;
    if (s->phase == PH_TCP) {
        int err = 0;
        socklen_t el = sizeof err;
        if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
            err = errno;
        if (err) {
            fail(s, 1006, strerror(err));
            return CHAT_OK;
        }
        if (s->tls)
            tls_start(s);
        else
            send_upgrade(s);
        if (s->phase != PH_UPGRADE)
            return CHAT_OK;
        re = POLLOUT;
    } else if (s->phase == PH_TLS) {
        if (re & (POLLERR | POLLHUP) && !(re & POLLIN)) {
            fail(s, 1015, "TLS handshake failed: connection closed");
            return CHAT_OK;
        }
        tls_step(s);
        if (s->phase != PH_UPGRADE)
            return CHAT_OK;
        re = POLLOUT;
    }
    if (re & POLLIN) {
        for (;;) {
            unsigned char tmp[16384];
            ssize_t r = io_recv(s, tmp, sizeof tmp);
            if (r > 0) {
                if (buf_add(&s->in, tmp, (size_t)r) != CHAT_OK) {
                    fail(s, 1006, "out of memory");
                    return CHAT_OK;
                }
                /* TLS returns one record at a time: read until the library says wait */
                if ((size_t)r < sizeof tmp && !s->ssl)
                    break;
                continue;
            }
            if (r == 0) {
                process_input(s); /* deliver what came before the EOF */
                if (s->fd >= 0)
                    fail(s, 1006, "connection closed by the server");
                return CHAT_OK;
            }
            if (r == -EAGAIN)
                break;
            fail(s, 1006, s->ssl ? "TLS error" : strerror((int)-r));
            return CHAT_OK;
        }
        process_input(s);
        if (s->fd < 0)
            return CHAT_OK;
    } else if (re & (POLLERR | POLLHUP)) {
        fail(s, 1006, "connection error");
        return CHAT_OK;
    }
    if (s->out.len) {
        int w = flush_out(s);
        if (w < 0)
            fail(s, 1006, strerror(-w));
    }
    return CHAT_OK;
}

static void ws_wake(void *state)
{
    ws_state *s = state;
    uint64_t one = 1;
    (void)!write(s->wake_fd, &one, sizeof one);
}

static void ws_destroy(void *state)
{
    ws_state *s = state;
    if (!s)
        return;
    s->sink = NULL;
    drop(s);
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    buf_free(&s->in);
    buf_free(&s->out);
    buf_free(&s->msg);
    if (s->ctx)
        SSL_CTX_free(s->ctx);
    chat__free(s->ca_file);
    chat__free(s);
}

int chat__client_ws_set_ca_file(void *state, const char *path)
{
    ws_state *s = state;
    char *copy = path ? chat__strdup(path) : NULL;
    if (path && !copy)
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    chat__free(s->ca_file);
    s->ca_file = copy;
    if (s->ctx) {
        SSL_CTX_free(s->ctx); /* made again, with the new CAs, at the next connect */
        s->ctx = NULL;
    }
    return CHAT_OK;
}

static int ws_ctl(void *state, int op, void *arg)
{
    (void)state, (void)op, (void)arg;
    return CHAT_ENOTSUP;
}

static const chat_client_transport_ops ws_ops = {
    .version = CHAT_CLIENT_TRANSPORT_OPS_VERSION,
    .destroy = ws_destroy,
    .connect = ws_connect,
    .send_text = ws_send_text,
    .close = ws_close,
    .poll = ws_poll,
    .wake = ws_wake,
    .ctl = ws_ctl,
};

const chat_client_transport_ops *chat_client_transport_ws_ops(void) { return &ws_ops; }

int chat_client_transport_ws_new(void **state_out)
{
    if (!state_out)
        return chat__error_set(CHAT_EINVAL, 0, "state_out is NULL");
    if (chat__sodium_init() != CHAT_OK)
        return CHAT_ERROR;
    ws_state *s = chat__calloc(1, sizeof *s);
    if (!s)
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    s->fd = -1;
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->wake_fd < 0) {
        int e = errno;
        chat__free(s);
        return chat__error_set(CHAT_EIO, e, "eventfd: %s", strerror(e));
    }
    *state_out = s;
    return CHAT_OK;
}
