/* chat-bench's client side: a minimal RFC 6455 client (HTTP upgrade, masked text frames, ping
 * answers, close codes) on non-blocking sockets driven by one epoll loop, and the
 * log-bucketed latency histogram. No libwebsockets on this side: it must stay cheaper per
 * message than the servers it measures. */
#ifndef CHAT_BENCH_WSCLIENT_H
#define CHAT_BENCH_WSCLIENT_H

#include <stddef.h>
#include <stdint.h>

/* ---- histogram: 8 linear sub-buckets per power of two (<= 12.5% wide), values in ns ---- */
#define HIST_BUCKETS 512
typedef struct hist {
    uint64_t b[HIST_BUCKETS];
    uint64_t n, max, sum;
} hist;

void hist_reset(hist *h);
void hist_add(hist *h, uint64_t v);
/* The value at quantile q (0..1): the upper edge of its bucket, capped at the maximum seen. */
uint64_t hist_q(const hist *h, double q);

int64_t mono_ns(void);

/* ---- connections ---- */
enum {
    WS_FREE = 0,
    WS_CONNECTING, /* TCP connect in progress */
    WS_UPGRADING,  /* HTTP upgrade sent, waiting for 101 */
    WS_OPEN,       /* WebSocket open, auth sent */
    WS_AUTHED,     /* auth_ok received */
    WS_CLOSED
};

typedef struct wsconn wsconn;
typedef void (*ws_text_cb)(wsconn *c, char *text, size_t len);
typedef void (*ws_close_cb)(wsconn *c, int code, int expected);

struct wsconn {
    int fd;
    int idx;
    int state;
    int closing;      /* we closed it on purpose */
    int epout;        /* EPOLLOUT registered */
    char *in;
    size_t in_len, in_cap;
    char *out;
    size_t out_off, out_len, out_cap;
    char *pending;    /* the auth frame, sent once the upgrade completes */
    size_t pending_len;
    char *frag;       /* reassembly of fragmented messages */
    size_t frag_len, frag_cap;
    void *user;       /* scenario data */
    int port;         /* the server port of this connection; 0: ws_init's */
};

typedef struct wsclient_stats {
    uint64_t connect_fail, upgrade_fail, closes, close_by_code[8]; /* 1000,1006,1008,1009,1011,1013,other,eof */
    uint64_t out_overflow;  /* frames dropped because the socket's user-space backlog was full */
    uint64_t frames_in, bytes_in, frames_out, bytes_out;
} wsclient_stats;

extern wsclient_stats ws_stats;

/* Set up the epoll loop; returns 0 or -1. */
int ws_init(const char *host, int port, int n_src_addrs, ws_text_cb on_text, ws_close_cb on_close);
/* Start a non-blocking connect; the upgrade follows by itself. `auth` is sent as the first frame
 * once the WebSocket is open (copied). Returns 0 or -1 (counted in connect_fail). */
int ws_connect(wsconn *c, const char *auth, size_t auth_len);
/* Queue one masked text frame (binary when ws_binary is set) and try to write at once. Returns
 * 0, or -1 when dropped. */
int ws_send_text(wsconn *c, const char *text, size_t len);
/* Send a close frame and close the socket. */
void ws_close(wsconn *c, int code);
/* Wait up to timeout_ms for events and handle them. Returns the number of events. */
int ws_poll(int timeout_ms);
int ws_poll_ns(int64_t timeout_ns); /* the same, to the nanosecond (-1: no timeout) */
/* Sockets currently open (any state). */
extern int ws_open_count;
/* Bytes of user-space backlog allowed per connection (default 4 MiB). */
extern size_t ws_out_limit;
/* The subprotocol asked for in the upgrade (default "libchat.v1"), and whether frames sent are
 * binary instead of text (0). Set before ws_init. */
extern const char *ws_subprotocol;
extern int ws_binary;

#endif
