/* See wsclient.h. One epoll set, level-triggered; every socket is non-blocking. */
#define _GNU_SOURCE
#include "wsclient.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

wsclient_stats ws_stats;
int ws_open_count;
size_t ws_out_limit = 4u << 20;
const char *ws_subprotocol = "libchat.v1";
int ws_binary;

static int ep = -1;
static struct sockaddr_in server_addr;
static int n_src = 1;
static ws_text_cb text_cb;
static ws_close_cb close_cb;
static char host_hdr[128];
static uint64_t rng = 0x9e3779b97f4a7c15ull;

/* ---------------- histogram ---------------- */

void hist_reset(hist *h) { memset(h, 0, sizeof *h); }

static int hist_index(uint64_t v)
{
    if (v < 8)
        return (int)v;
    int e = 63 - __builtin_clzll(v);
    int i = (e - 2) * 8 + (int)((v >> (e - 3)) & 7);
    return i < HIST_BUCKETS ? i : HIST_BUCKETS - 1;
}

static uint64_t hist_upper(int i)
{
    if (i < 8)
        return (uint64_t)i + 1;
    int e = i / 8 + 2, sub = i % 8;
    return (uint64_t)(9 + sub) << (e - 3);
}

void hist_add(hist *h, uint64_t v)
{
    h->b[hist_index(v)]++;
    h->n++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

uint64_t hist_q(const hist *h, double q)
{
    if (!h->n)
        return 0;
    uint64_t want = (uint64_t)(q * (double)h->n + 0.999999), acc = 0;
    if (want < 1)
        want = 1;
    for (int i = 0; i < HIST_BUCKETS; i++) {
        acc += h->b[i];
        if (acc >= want) {
            uint64_t u = hist_upper(i);
            return u < h->max ? u : h->max;
        }
    }
    return h->max;
}

int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---------------- buffers ---------------- */

static int reserve(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 1024;
    while (n < need)
        n *= 2;
    char *p = realloc(*buf, n);
    if (!p)
        return -1;
    *buf = p;
    *cap = n;
    return 0;
}

static void set_epout(wsconn *c, int on)
{
    if (c->epout == on)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->epout = on;
}

static void teardown(wsconn *c, int code_index, int code)
{
    if (c->state == WS_FREE || c->state == WS_CLOSED)
        return;
    int expected = c->closing;
    if (!expected) {
        ws_stats.closes++;
        ws_stats.close_by_code[code_index]++;
    }
    close(c->fd);
    c->fd = -1;
    c->state = WS_CLOSED;
    ws_open_count--;
    free(c->in);
    free(c->out);
    free(c->pending);
    free(c->frag);
    c->in = c->out = c->pending = c->frag = NULL;
    c->frag_len = c->frag_cap = 0;
    c->in_len = c->in_cap = c->out_len = c->out_off = c->out_cap = 0;
    c->pending_len = 0;
    if (close_cb)
        close_cb(c, code, expected);
}

static int code_index(int code)
{
    switch (code) {
    case 1000: return 0;
    case 1006: return 1;
    case 1008: return 2;
    case 1009: return 3;
    case 1011: return 4;
    case 1013: return 5;
    default: return 6;
    }
}

static void flush(wsconn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n > 0) {
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            set_epout(c, 1);
            return;
        }
        if (n < 0 && errno == EINTR)
            continue;
        teardown(c, 7, -1);
        return;
    }
    c->out_off = c->out_len = 0;
    if (c->state != WS_CONNECTING)
        set_epout(c, 0);
}

static int append(wsconn *c, const void *p, size_t n)
{
    if (c->out_off && c->out_off == c->out_len)
        c->out_off = c->out_len = 0;
    if (c->out_len - c->out_off + n > ws_out_limit)
        return -1;
    if (c->out_off > 65536 && c->out_off * 2 > c->out_len) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    if (reserve(&c->out, &c->out_cap, c->out_len + n))
        return -1;
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    return 0;
}

static int frame_out(wsconn *c, int opcode, const char *data, size_t len)
{
    unsigned char hdr[14];
    size_t hl = 2;
    hdr[0] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        hdr[1] = (unsigned char)(0x80 | len);
    } else if (len < 65536) {
        hdr[1] = 0x80 | 126;
        hdr[2] = (unsigned char)(len >> 8);
        hdr[3] = (unsigned char)len;
        hl = 4;
    } else {
        hdr[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            hdr[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
        hl = 10;
    }
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    uint32_t mask = (uint32_t)rng;
    memcpy(hdr + hl, &mask, 4);
    hl += 4;
    if (c->out_len - c->out_off + hl + len > ws_out_limit) {
        ws_stats.out_overflow++;
        return -1;
    }
    if (append(c, hdr, hl))
        return -1;
    if (reserve(&c->out, &c->out_cap, c->out_len + len + 4))
        return -1;
    unsigned char *dst = (unsigned char *)c->out + c->out_len;
    const unsigned char *m = hdr + hl - 4;
    size_t i = 0;
    for (; i + 4 <= len; i += 4) {
        uint32_t w;
        memcpy(&w, data + i, 4);
        w ^= mask;
        memcpy(dst + i, &w, 4);
    }
    for (; i < len; i++)
        dst[i] = (unsigned char)data[i] ^ m[i & 3];
    c->out_len += len;
    ws_stats.frames_out++;
    ws_stats.bytes_out += len;
    return 0;
}

int ws_send_text(wsconn *c, const char *text, size_t len)
{
    if (c->state != WS_OPEN && c->state != WS_AUTHED)
        return -1;
    if (frame_out(c, ws_binary ? 2 : 1, text, len))
        return -1;
    if (!c->epout)
        flush(c);
    return 0;
}

void ws_close(wsconn *c, int code)
{
    if (c->state == WS_FREE || c->state == WS_CLOSED)
        return;
    c->closing = 1;
    if (c->state == WS_OPEN || c->state == WS_AUTHED) {
        char b[2] = {(char)(code >> 8), (char)(code & 0xff)};
        frame_out(c, 8, b, 2);
        if (c->out_len > c->out_off) {
            ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
            (void)n;
        }
    }
    teardown(c, 0, code);
}

/* ---------------- connect and upgrade ---------------- */

int ws_init(const char *host, int port, int n_src_addrs, ws_text_cb on_text, ws_close_cb on_close)
{
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return -1;
    memset(&server_addr, 0, sizeof server_addr);
    server_addr.sin_family = AF_INET;
    server_addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &server_addr.sin_addr) != 1)
        return -1;
    n_src = n_src_addrs < 1 ? 1 : n_src_addrs;
    snprintf(host_hdr, sizeof host_hdr, "%s:%d", host, port);
    text_cb = on_text;
    close_cb = on_close;
    rng ^= (uint64_t)mono_ns();
    return 0;
}

int ws_connect(wsconn *c, const char *auth, size_t auth_len)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        ws_stats.connect_fail++;
        return -1;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (n_src > 1) {
        /* Spread source addresses over 127.0.0.2.. so ephemeral ports never run out. */
        struct sockaddr_in src = {.sin_family = AF_INET};
        uint32_t a = (127u << 24) | (uint32_t)(2 + c->idx % n_src);
        src.sin_addr.s_addr = htonl(a);
        if (bind(c->fd, (struct sockaddr *)&src, sizeof src) != 0) {
            close(c->fd);
            ws_stats.connect_fail++;
            return -1;
        }
    }
    struct sockaddr_in to = server_addr;
    if (c->port)
        to.sin_port = htons((uint16_t)c->port);
    if (connect(c->fd, (struct sockaddr *)&to, sizeof to) != 0 &&
        errno != EINPROGRESS) {
        close(c->fd);
        ws_stats.connect_fail++;
        return -1;
    }
    c->state = WS_CONNECTING;
    c->closing = 0;
    c->epout = 1;
    c->in_len = c->out_len = c->out_off = 0;
    free(c->pending);
    c->pending = malloc(auth_len ? auth_len : 1);
    memcpy(c->pending, auth, auth_len);
    c->pending_len = auth_len;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    ws_open_count++;
    return 0;
}

static void on_connected(wsconn *c)
{
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) {
        ws_stats.connect_fail++;
        c->closing = 1; /* counted above, not as a close */
        teardown(c, 7, -1);
        return;
    }
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n\r\n",
                     host_hdr, ws_subprotocol);
    c->state = WS_UPGRADING;
    append(c, req, (size_t)n);
    flush(c);
}

static void handle_frames(wsconn *c)
{
    size_t off = 0;
    while (c->state != WS_CLOSED && c->in_len - off >= 2) {
        unsigned char *p = (unsigned char *)c->in + off;
        size_t avail = c->in_len - off;
        int fin = p[0] & 0x80, op = p[0] & 0x0f, masked = p[1] & 0x80;
        uint64_t plen = p[1] & 0x7f;
        size_t hl = 2;
        if (plen == 126) {
            if (avail < 4)
                break;
            plen = ((uint64_t)p[2] << 8) | p[3];
            hl = 4;
        } else if (plen == 127) {
            if (avail < 10)
                break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = (plen << 8) | p[2 + i];
            hl = 10;
        }
        if (masked)
            hl += 4;
        if (avail < hl + plen)
            break;
        char *payload = (char *)p + hl;
        if (masked)
            for (uint64_t i = 0; i < plen; i++)
                payload[i] ^= (char)p[hl - 4 + (i & 3)];
        ws_stats.frames_in++;
        ws_stats.bytes_in += plen;
        if (op == 1 || op == 0 || op == 2) {
            if (!fin || op == 0 || c->frag_len) {
                /* Fragmented message: reassemble (rare with these servers). */
                reserve(&c->frag, &c->frag_cap, c->frag_len + plen + 1);
                memcpy(c->frag + c->frag_len, payload, plen);
                c->frag_len += plen;
                if (fin) {
                    c->frag[c->frag_len] = '\0';
                    size_t fl = c->frag_len;
                    c->frag_len = 0;
                    text_cb(c, c->frag, fl);
                    if (c->state == WS_CLOSED)
                        return;
                }
            } else {
                char save = payload[plen];
                payload[plen] = '\0';
                text_cb(c, payload, plen);
                if (c->state == WS_CLOSED)
                    return;
                payload[plen] = save;
            }
        } else if (op == 8) {
            int code = plen >= 2 ? ((unsigned char)payload[0] << 8) | (unsigned char)payload[1]
                                 : 1005;
            if (!c->closing && getenv("CHAT_BENCH_DEBUG"))
                fprintf(stderr, "close %d: %.*s\n", code, (int)(plen > 2 ? plen - 2 : 0),
                        payload + 2);
            teardown(c, code_index(code), code);
            return;
        } else if (op == 9) {
            frame_out(c, 10, payload, plen);
            flush(c);
        }
        off += hl + plen;
    }
    if (c->state == WS_CLOSED)
        return;
    if (off) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
}

static void on_readable(wsconn *c)
{
    if (reserve(&c->in, &c->in_cap, c->in_len + 65536 + 1)) {
        teardown(c, 7, -1);
        return;
    }
    ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len - 1);
    if (n == 0) {
        teardown(c, 7, -1);
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            teardown(c, 7, -1);
        return;
    }
    c->in_len += (size_t)n;
    if (c->state == WS_UPGRADING) {
        c->in[c->in_len] = '\0';
        char *end = strstr(c->in, "\r\n\r\n");
        if (!end)
            return;
        if (strncmp(c->in, "HTTP/1.1 101", 12) != 0) {
            ws_stats.upgrade_fail++;
            if (getenv("CHAT_BENCH_DEBUG"))
                fprintf(stderr, "upgrade refused: %.60s\n", c->in);
            c->closing = 1;
            teardown(c, 7, -1);
            return;
        }
        size_t hdr = (size_t)(end + 4 - c->in);
        memmove(c->in, c->in + hdr, c->in_len - hdr);
        c->in_len -= hdr;
        c->state = WS_OPEN;
        if (c->pending_len)
            ws_send_text(c, c->pending, c->pending_len);
        free(c->pending);
        c->pending = NULL;
        c->pending_len = 0;
    }
    if (c->state == WS_OPEN || c->state == WS_AUTHED)
        handle_frames(c);
}

int ws_poll(int timeout_ms)
{
    return ws_poll_ns((int64_t)timeout_ms * 1000000);
}

int ws_poll_ns(int64_t timeout_ns)
{
    struct epoll_event evs[512];
    /* epoll_pwait2 sleeps to the nanosecond; epoll_wait's milliseconds would make an open-loop
     * sender late by up to one whenever the server's answers are few (no wake-up meanwhile). */
    struct timespec ts = {timeout_ns / 1000000000, timeout_ns % 1000000000};
    int n = epoll_pwait2(ep, evs, 512, timeout_ns < 0 ? NULL : &ts, NULL);
    if (n < 0 && errno == ENOSYS)
        n = epoll_wait(ep, evs, 512, timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000));
    for (int i = 0; i < n; i++) {
        wsconn *c = evs[i].data.ptr;
        if (c->state == WS_CLOSED || c->state == WS_FREE)
            continue;
        if (c->state == WS_CONNECTING) {
            if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                on_connected(c);
            continue;
        }
        if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
            on_readable(c);
        if (c->state != WS_CLOSED && (evs[i].events & EPOLLOUT))
            flush(c);
    }
    return n < 0 ? 0 : n;
}
