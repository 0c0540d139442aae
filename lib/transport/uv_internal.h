/* The native transport's shared structures: libuv for the loop and sockets, and libchat's own
 * HTTP/1.1 (http1.c) and RFC 6455 (wsrx.c) parsers, with OpenSSL under them for TLS. Files:
 *
 *   uv.c       the loop, listening, accepting, reading, the output buffers and their flush,
 *              closing, deadlines, timers, the ops table
 *   uv_http.c  HTTP requests: the head, the body, responses, the WebSocket upgrade
 *   uv_ws.c    WebSocket connections: messages in, frames out, ping, close
 *   uv_tls.c   TLS through memory BIOs
 *
 * A chat__tconn and a chat__thttp are both a uconn. Everything runs on the loop thread. */
#ifndef CHAT_TRANSPORT_UV_INTERNAL_H
#define CHAT_TRANSPORT_UV_INTERNAL_H

#include "transport/http1.h"
#include "transport/transport.h"
#include "transport/wsrx.h"

#include <uv.h>

/* Every request head must be complete this long after the connection opened or the previous
 * response ended (keep-alive), and an HTTP transaction that makes no progress for this long
 * is dropped. */
#define CHAT__UV_HTTP_TIMEOUT_MS 5000
/* A connection closed with a close frame or an HTTP "connection: close" is given this long to
 * read what was sent and close its side, so that what it has not read yet is not lost to a
 * reset; then it is dropped. */
#define CHAT__UV_LINGER_MS 2000
/* Output held for one connection before a write is tried at once instead of at the end of the
 * loop iteration. */
#define CHAT__UV_CORK_BYTES (256 * 1024)
/* Bytes read per read callback (one buffer per loop, shared by every connection). */
#define CHAT__UV_READ_BYTES (64 * 1024)

enum {
    UC_HEAD,   /* reading a request head */
    UC_BODY,   /* a request body is arriving */
    UC_HTTP,   /* the request is in; its response is under way */
    UC_WS,     /* an open WebSocket */
    UC_LINGER, /* closing politely: output drains, then our FIN, input is discarded */
    UC_DEAD    /* uv_close called */
};

typedef struct utp utp;
typedef struct uconn uconn;
typedef struct utls utls;

/* A FIFO of connections sharing one timeout: each joins at the tail with its deadline, so
 * the head is always the next to expire and one timer serves them all. */
typedef struct ufifo {
    uconn *head, *tail;
    uv_timer_t timer;
    int64_t armed_for;
} ufifo;

struct uconn {
    uv_tcp_t tcp;
    utp *tp;
    int phase;
    uconn *all_prev, *all_next;       /* every connection */
    uconn *fifo_prev, *fifo_next;     /* the deadline FIFO it waits in, if any */
    ufifo *fifo;
    int64_t deadline;
    uconn *dirty_next;                /* output to flush or a writable to serve */
    unsigned dirty : 1, want_write : 1, blocked : 1, reading : 1, shut : 1, eof : 1,
        stopped_reading : 1, discard : 1, http_close : 1, closing_engine : 1, kill : 1;
    /* Input not consumed yet (a partial head, a head waiting for the current response). */
    char *in;
    size_t in_len, in_cap;
    /* Output not yet handed to the kernel (plaintext under TLS). */
    unsigned char *out;
    size_t out_len, out_cap;
    uv_write_t *wreq;                 /* a write in flight (blocked) */
    /* HTTP */
    char *head;                       /* the current request's head, parsed in place */
    chat__http1_req *req;
    void *slot;                       /* the engine's transaction */
    uint64_t body_left;
    /* WebSocket */
    void *conn;                       /* the engine's connection */
    chat__wsrx *rx;
    utls *tls;
};

struct utp {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t async;
    uv_prepare_t prepare;
    uv_check_t check;
    uv_idle_t idle;                   /* runs while writables are pending: the loop must not sleep */
    ufifo http_fifo, linger_fifo;
    int handles_open, idle_on;
    chat__transport_sink sink;
    chat__transport_config cfg;       /* limits and log only */
    int port;
    int shutting_down;
    uconn *all;
    size_t n_conns;
    uconn *dirty;
    void *ssl_ctx;                    /* SSL_CTX, NULL: plain */
    unsigned char *rbuf;              /* CHAT__UV_READ_BYTES + 1: the read buffer */
    unsigned char *pbuf;              /* the same for plaintext under TLS */
    int in_read;                      /* rbuf is in use by a read callback */
};

/* uv.c */
void chat__uv_log(const utp *tp, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int chat__uv_out(uconn *c, const void *data, size_t len); /* buffer output; 0 or -1 (nomem) */
void chat__uv_mark(uconn *c);                             /* flush c at the iteration's end */
void chat__uv_close(uconn *c, int linger);                /* linger: drain output first */
void chat__uv_fifo_join(ufifo *f, uconn *c, int64_t timeout_ms);
void chat__uv_fifo_leave(uconn *c);
void chat__uv_consume_input(uconn *c); /* process what waits in c->in (after a phase change) */
/* The engine is done with this connection (closed() or the HTTP CLOSED event), once. */
void chat__uv_release_engine(uconn *c);

/* uv_http.c: bytes in UC_HEAD and UC_BODY; returns what it took, -1 when the connection was
 * closed. */
long chat__uv_http_input(uconn *c, unsigned char *p, size_t n);
void chat__uv_http_done(uconn *c); /* the transaction ended: back to UC_HEAD */
int chat__uv_http_method(chat__thttp *h);
int chat__uv_http_header(chat__thttp *h, const char *name, char *buf, size_t size);
int chat__uv_http_query(chat__thttp *h, char *buf, size_t size);
int chat__uv_http_respond(chat__thttp *h, int status, const char *ctype, int64_t content_length,
                          const chat__http_hdr *hdr, int n, int close);
int chat__uv_http_write(chat__thttp *h, unsigned char *data, size_t len, int final);
int chat__uv_http_continue(chat__thttp *h);
int chat__uv_http_choked(chat__thttp *h);
void chat__uv_http_want_write(chat__thttp *h);
int chat__uv_http_complete(chat__thttp *h);
void chat__uv_http_progress(chat__thttp *h);
/* An HTTP event to the engine; a non-zero answer closes the connection (politely). */
void chat__uv_http_event(uconn *c, int event, const void *in, size_t len);

/* uv_ws.c */
long chat__uv_ws_input(uconn *c, unsigned char *p, size_t n);
int chat__uv_ws_write(chat__tconn *t, unsigned char *data, size_t len);
int chat__uv_ws_busy(chat__tconn *t);
void chat__uv_ws_want_write(chat__tconn *t);
int chat__uv_ws_ping(chat__tconn *t);
void chat__uv_ws_send_close(chat__tconn *t, int code, const char *reason);
void chat__uv_ws_kill(chat__tconn *t);
void chat__uv_ws_writable(uconn *c); /* the connection may take bytes: tell the engine */
/* Send a close frame of our own (shutdown, protocol errors) and close politely. */
void chat__uv_ws_close(uconn *c, int code, const char *reason);

/* uv_tls.c */
int chat__uv_tls_ctx(utp *tp, const char *cert, const char *key); /* CHAT_OK or CHAT_EIO */
void chat__uv_tls_ctx_free(utp *tp);
int chat__uv_tls_new(uconn *c);                                  /* CHAT_OK, CHAT_ENOMEM */
void chat__uv_tls_free(uconn *c);
/* Ciphertext in: plaintext is handed to chat__uv_plain_input. -1: the TLS session failed. */
int chat__uv_tls_input(uconn *c, const unsigned char *p, size_t n);
/* Plaintext c->out[0..len) out: ciphertext appended to *raw (grown as needed). */
int chat__uv_tls_encrypt(uconn *c, const unsigned char *p, size_t len, unsigned char **raw,
                         size_t *raw_len, size_t *raw_cap);
/* Ciphertext the TLS engine has to send by itself (handshake, alerts). */
int chat__uv_tls_pending(uconn *c, unsigned char **raw, size_t *raw_len, size_t *raw_cap);

/* uv.c: plaintext bytes for the current phase. -1: the connection was closed. */
int chat__uv_plain_input(uconn *c, unsigned char *p, size_t n);

#endif
