/* The integration tests' blocking WebSocket client: see wsclient.h. */
#define _GNU_SOURCE
#include "wsclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WS_MAX_MESSAGE (64u * 1024 * 1024)

struct ws_client {
    int fd;
    unsigned char *buf; /* received, not yet parsed */
    size_t len, cap;
    unsigned char *msg; /* a fragmented message being reassembled */
    size_t msg_len;
    int msg_opcode;     /* 0 when none in progress */
    int closed;
    int close_code;
};

long long ws_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining(long long deadline)
{
    long long left = deadline - ws_now_ms();
    return left < 0 ? 0 : (int)left;
}

int ws_tcp_connect(int port, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    if (rc < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (rc < 0) {
        struct pollfd p = {fd, POLLOUT, 0};
        int n = poll(&p, 1, timeout_ms);
        if (n <= 0) {
            close(fd);
            return n == 0 ? -ETIMEDOUT : -errno;
        }
        int err = 0;
        socklen_t el = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
            err = errno;
        if (err) {
            close(fd);
            return -err;
        }
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int send_all(int fd, const void *data, size_t len, int timeout_ms)
{
    const unsigned char *p = data;
    long long deadline = ws_now_ms() + timeout_ms;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pf = {fd, POLLOUT, 0};
            int left = remaining(deadline);
            if (left == 0 || poll(&pf, 1, left) <= 0)
                return -ETIMEDOUT;
            continue;
        }
        return n < 0 ? -errno : -EPIPE;
    }
    return 0;
}

/* Read what is available into the buffer, waiting at most until deadline.
 * Returns >0 bytes read, 0 on EOF, WS_TIMEOUT, or WS_ERROR. */
static int fill(ws_client *c, long long deadline)
{
    if (c->cap - c->len < 4096) {
        size_t ncap = c->cap ? c->cap * 2 : 8192;
        while (ncap - c->len < 4096)
            ncap *= 2;
        unsigned char *nb = realloc(c->buf, ncap);
        if (!nb)
            return WS_ERROR;
        c->buf = nb;
        c->cap = ncap;
    }
    for (;;) {
        struct pollfd pf = {c->fd, POLLIN, 0};
        int n = poll(&pf, 1, remaining(deadline));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return WS_ERROR;
        if (n == 0)
            return WS_TIMEOUT;
        ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (r < 0)
            return errno == ECONNRESET ? 0 : WS_ERROR;
        c->len += (size_t)r;
        return (int)r;
    }
}

static void consume(ws_client *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

static int send_frame(ws_client *c, int opcode, const void *payload, size_t len)
{
    if (c->closed)
        return -EPIPE;
    size_t hl = 2 + (len > 65535 ? 8 : len > 125 ? 2 : 0) + 4;
    unsigned char *f = malloc(hl + len);
    if (!f)
        return -ENOMEM;
    size_t i = 0;
    f[i++] = (unsigned char)(0x80 | opcode);
    if (len > 65535) {
        f[i++] = 0x80 | 127;
        for (int k = 7; k >= 0; k--)
            f[i++] = (unsigned char)((uint64_t)len >> (8 * k));
    } else if (len > 125) {
        f[i++] = 0x80 | 126;
        f[i++] = (unsigned char)(len >> 8);
        f[i++] = (unsigned char)len;
    } else {
        f[i++] = (unsigned char)(0x80 | len);
    }
    unsigned char mask[4];
    randombytes_buf(mask, sizeof mask);
    memcpy(f + i, mask, 4);
    i += 4;
    const unsigned char *p = payload;
    for (size_t k = 0; k < len; k++)
        f[i + k] = p[k] ^ mask[k & 3];
    int rc = send_all(c->fd, f, i + len, 5000);
    free(f);
    return rc;
}

int ws_connect(ws_client **out, int port, int timeout_ms)
{
    long long deadline = ws_now_ms() + timeout_ms;
    if (sodium_init() < 0)
        return -EIO;
    int fd = ws_tcp_connect(port, timeout_ms);
    if (fd < 0)
        return fd;
    ws_client *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return -ENOMEM;
    }
    c->fd = fd;

    unsigned char nonce[16];
    char key[sodium_base64_ENCODED_LEN(16, sodium_base64_VARIANT_ORIGINAL)];
    randombytes_buf(nonce, sizeof nonce);
    sodium_bin2base64(key, sizeof key, nonce, sizeof nonce, sodium_base64_VARIANT_ORIGINAL);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET / HTTP/1.1\r\n"
                     "Host: 127.0.0.1:%d\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Protocol: libchat.v1\r\n"
                     "\r\n",
                     port, key);
    int rc = send_all(fd, req, (size_t)n, remaining(deadline));
    if (rc < 0)
        goto fail;

    /* Read the response head; bytes after it stay buffered as frames. */
    for (;;) {
        unsigned char *end = NULL;
        for (size_t i = 0; i + 3 < c->len; i++)
            if (memcmp(c->buf + i, "\r\n\r\n", 4) == 0) {
                end = c->buf + i + 4;
                break;
            }
        if (end) {
            size_t head_len = (size_t)(end - c->buf);
            char *head = malloc(head_len + 1);
            if (!head) {
                rc = -ENOMEM;
                goto fail;
            }
            memcpy(head, c->buf, head_len);
            head[head_len] = '\0';
            consume(c, head_len);
            /* The Sec-WebSocket-Accept value is not verified (libsodium has no SHA-1); its
             * presence is. */
            int ok = strncmp(head, "HTTP/1.1 101", 12) == 0 &&
                     strcasestr(head, "\r\nSec-WebSocket-Accept:") != NULL;
            free(head);
            if (!ok) {
                rc = -EPROTO;
                goto fail;
            }
            break;
        }
        if (c->len > 16384) {
            rc = -EPROTO;
            goto fail;
        }
        int r = fill(c, deadline);
        if (r == WS_TIMEOUT) {
            rc = -ETIMEDOUT;
            goto fail;
        }
        if (r <= 0) {
            rc = r == 0 ? -ECONNRESET : -EIO;
            goto fail;
        }
    }
    *out = c;
    return 0;
fail:
    close(fd);
    free(c->buf);
    free(c);
    return rc;
}

static void release(ws_client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    free(c->msg);
    free(c);
}

void ws_free(ws_client *c)
{
    if (!c)
        return;
    if (!c->closed) {
        unsigned char code[2] = {1000 >> 8, 1000 & 0xff};
        send_frame(c, 8, code, 2);
    }
    release(c);
}

void ws_drop(ws_client *c)
{
    if (!c)
        return;
    struct linger lg = {1, 0}; /* RST instead of FIN */
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    release(c);
}

int ws_send_text(ws_client *c, const char *text, size_t len)
{
    return send_frame(c, 1, text, len);
}

int ws_sendf(ws_client *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -ENOMEM;
    int rc = ws_send_text(c, s, (size_t)n);
    free(s);
    return rc;
}

int ws_send_close(ws_client *c, int code)
{
    unsigned char p[2] = {(unsigned char)(code >> 8), (unsigned char)(code & 0xff)};
    return send_frame(c, 8, p, 2);
}

static void mark_closed(ws_client *c, int code)
{
    if (!c->closed) {
        c->closed = 1;
        c->close_code = code;
    }
}

/* Parse one frame from the buffer. Returns 1 with a frame, 0 when more bytes are needed,
 * WS_ERROR on a malformed frame. */
static int parse_frame(ws_client *c, int *fin, int *opcode, unsigned char **payload,
                       size_t *plen)
{
    if (c->len < 2)
        return 0;
    const unsigned char *b = c->buf;
    int masked = b[1] & 0x80;
    uint64_t len = b[1] & 0x7f;
    size_t hl = 2;
    if (len == 126) {
        if (c->len < 4)
            return 0;
        len = (uint64_t)b[2] << 8 | b[3];
        hl = 4;
    } else if (len == 127) {
        if (c->len < 10)
            return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | b[2 + i];
        hl = 10;
    }
    if (len > WS_MAX_MESSAGE)
        return WS_ERROR;
    unsigned char mask[4] = {0, 0, 0, 0};
    if (masked) {
        if (c->len < hl + 4)
            return 0;
        memcpy(mask, b + hl, 4);
        hl += 4;
    }
    if (c->len < hl + len)
        return 0;
    unsigned char *p = malloc((size_t)len + 1);
    if (!p)
        return WS_ERROR;
    for (size_t i = 0; i < len; i++)
        p[i] = b[hl + i] ^ (masked ? mask[i & 3] : 0);
    p[len] = '\0';
    *fin = (b[0] & 0x80) != 0;
    *opcode = b[0] & 0x0f;
    *payload = p;
    *plen = (size_t)len;
    consume(c, hl + (size_t)len);
    return 1;
}

int ws_recv(ws_client *c, int timeout_ms, char **out, size_t *len)
{
    long long deadline = ws_now_ms() + timeout_ms;
    *out = NULL;
    *len = 0;
    for (;;) {
        if (c->closed)
            return WS_CLOSED;
        int fin, op;
        unsigned char *p;
        size_t n;
        int r = parse_frame(c, &fin, &op, &p, &n);
        if (r < 0)
            return WS_ERROR;
        if (r == 0) {
            int f = fill(c, deadline);
            if (f == 0) {
                mark_closed(c, WS_CLOSE_ABNORMAL);
                return WS_CLOSED;
            }
            if (f < 0)
                return f;
            continue;
        }
        switch (op) {
        case 8: { /* close: record the code and answer it */
            int code = n >= 2 ? (p[0] << 8 | p[1]) : WS_CLOSE_NO_STATUS;
            unsigned char echo[2] = {(unsigned char)(code >> 8), (unsigned char)code};
            if (n >= 2)
                send_frame(c, 8, echo, 2);
            else
                send_frame(c, 8, NULL, 0);
            free(p);
            mark_closed(c, code);
            return WS_CLOSED;
        }
        case 9: /* ping */
            send_frame(c, 10, p, n);
            free(p);
            continue;
        case 10: /* pong */
            free(p);
            continue;
        case 0: /* continuation */
            if (!c->msg_opcode || c->msg_len + n > WS_MAX_MESSAGE) {
                free(p);
                return WS_ERROR;
            }
            {
                unsigned char *nm = realloc(c->msg, c->msg_len + n + 1);
                if (!nm) {
                    free(p);
                    return WS_ERROR;
                }
                memcpy(nm + c->msg_len, p, n);
                c->msg = nm;
                c->msg_len += n;
                c->msg[c->msg_len] = '\0';
                free(p);
            }
            if (!fin)
                continue;
            op = c->msg_opcode;
            p = c->msg;
            n = c->msg_len;
            c->msg = NULL;
            c->msg_len = 0;
            c->msg_opcode = 0;
            break;
        case 1:
        case 2:
            if (c->msg_opcode) {
                free(p);
                return WS_ERROR;
            }
            if (!fin) {
                c->msg = p;
                c->msg_len = n;
                c->msg_opcode = op;
                continue;
            }
            break;
        default:
            free(p);
            return WS_ERROR;
        }
        *out = (char *)p;
        *len = n;
        return op == 1 ? WS_TEXT : WS_BINARY;
    }
}

cJSON *ws_recv_json(ws_client *c, int timeout_ms)
{
    char *s;
    size_t n;
    int r = ws_recv(c, timeout_ms, &s, &n);
    if (r != WS_TEXT) {
        free(s);
        return NULL;
    }
    cJSON *o = cJSON_ParseWithLength(s, n);
    free(s);
    return o;
}

cJSON *ws_wait_type(ws_client *c, const char *type, int timeout_ms)
{
    long long deadline = ws_now_ms() + timeout_ms;
    for (;;) {
        int left = remaining(deadline);
        char *s;
        size_t n;
        int r = ws_recv(c, left, &s, &n);
        if (r != WS_TEXT) {
            free(s);
            return NULL;
        }
        cJSON *o = cJSON_ParseWithLength(s, n);
        free(s);
        const char *t = ws_json_str(o, "type");
        if (t && strcmp(t, type) == 0)
            return o;
        cJSON_Delete(o);
        if (left == 0)
            return NULL;
    }
}

int ws_wait_close(ws_client *c, int timeout_ms)
{
    long long deadline = ws_now_ms() + timeout_ms;
    for (;;) {
        char *s;
        size_t n;
        int r = ws_recv(c, remaining(deadline), &s, &n);
        free(s);
        if (r == WS_CLOSED)
            return c->close_code;
        if (r == WS_TIMEOUT)
            return -1;
        if (r == WS_ERROR) {
            mark_closed(c, WS_CLOSE_ABNORMAL);
            return c->close_code;
        }
    }
}

int ws_is_closed(const ws_client *c)
{
    return c->closed;
}

int ws_close_code(const ws_client *c)
{
    return c->closed ? c->close_code : 0;
}

const char *ws_json_str(const cJSON *o, const char *key)
{
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

long long ws_json_int(const cJSON *o, const char *key)
{
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    return cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;
}
