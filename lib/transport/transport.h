/* The server transport seam: the one interface between the server engine (lib/server) and
 * whatever carries its bytes and runs its loop. The engine sees connections, HTTP
 * transactions and timers as opaque handles and calls the operations below; the transport
 * calls the engine back through a chat__transport_sink. Two transports implement it:
 *
 *   uv.c        the native transport: a libuv loop, libchat's own HTTP/1.1 (http1.c) and
 *               RFC 6455 (wsrx.c) code, OpenSSL for TLS (uv_internal.h lists its files)
 *   loopback.c  in-process, no socket: a test opens connections, feeds frames and reads what
 *               the engine wrote, one frame at a time (transport/loopback.h)
 *
 * Threading: everything runs on the loop thread (the thread inside run()), except wake(),
 * which any thread may call. Sink callbacks are made on the loop thread only.
 *
 * Buffers written through write() and http_write() carry CHAT__TRANSPORT_PRE bytes of
 * headroom before the data, which the transport may overwrite with its framing. */
#ifndef CHAT_TRANSPORT_TRANSPORT_H
#define CHAT_TRANSPORT_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#define CHAT__TRANSPORT_PRE 32

typedef struct chat__tconn chat__tconn; /* one WebSocket connection */
typedef struct chat__thttp chat__thttp; /* one HTTP transaction (or an upgrade request) */

/* A timer the engine embeds in its own structures; impl belongs to the transport. */
typedef struct chat__timer chat__timer;
struct chat__timer {
    void (*cb)(chat__timer *t);
    void *impl;
};

/* Why a message was not delivered (chat__transport_sink.refused). */
enum {
    CHAT__TP_BINARY = 1, /* a whole binary message: the protocol is text only */
    CHAT__TP_TOO_BIG,    /* over frame_max (refused as soon as its header says so) */
    CHAT__TP_TOO_MANY,   /* over frags_max frames in one message */
    CHAT__TP_PROTOCOL,   /* an RFC 6455 violation (the transport closes with 1002) */
    CHAT__TP_NOMEM
};

/* HTTP methods (chat__transport_ops.http_method). */
enum {
    CHAT__HTTP_OTHER = 0,
    CHAT__HTTP_GET,
    CHAT__HTTP_HEAD,
    CHAT__HTTP_POST,
    CHAT__HTTP_PUT,
    CHAT__HTTP_PATCH,
    CHAT__HTTP_DELETE,
    CHAT__HTTP_OPTIONS
};

/* HTTP transaction events (chat__transport_sink.http). */
enum {
    CHAT__HTTP_REQUEST = 1, /* headers in; in is the path (NUL-terminated) */
    CHAT__HTTP_BODY,        /* in[0..len) of the body */
    CHAT__HTTP_BODY_DONE,   /* the whole body (Content-Length bytes) arrived */
    CHAT__HTTP_WRITABLE,    /* after http_want_write */
    CHAT__HTTP_CLOSED       /* the connection ended; the transaction is gone */
};

/* header() results besides a length. */
#define CHAT__HDR_ABSENT 0
#define CHAT__HDR_TOO_LONG (-1)
#define CHAT__HDR_REPEATED (-2) /* sent more than once (where the transport can tell) */

typedef struct chat__http_hdr {
    const char *name; /* lower case, no colon */
    const char *value;
} chat__http_hdr;

/* What the engine asks of a transport when the loop opens. Strings are borrowed. */
typedef struct chat__transport_config {
    const char *address;  /* bind address (or interface name) */
    int port;             /* 0: an ephemeral port */
    int reuse_port;       /* SO_REUSEPORT: several processes share the port */
    const char *tls_cert, *tls_key; /* both NULL: plain ws:// */
    size_t frame_max;     /* largest message accepted, bytes */
    int64_t frags_max;    /* most frames in one message */
    int log_level;        /* the transport's own log lines at or below this level... */
    void (*log)(int level, const char *line, void *ud); /* ...go here (NULL: dropped) */
    void *log_ud;
} chat__transport_config;

/* The engine's side. conn and txn values are what open() returned and what the engine put in
 * *slot, handed back as they were. */
typedef struct chat__transport_sink {
    void *ud; /* the engine */
    /* wake() was called. */
    void (*wake)(void *ud);
    /* The loop is about to wait, or has just polled: hand over what this iteration queued. */
    void (*flush)(void *ud);
    /* An upgrade to WebSocket at path: 0 accepts it; an HTTP status (403, 404, 503)
     * refuses it with that status. The request's headers are readable through h. */
    int (*upgrade)(void *ud, chat__thttp *h, const char *path);
    /* The connection is open; returns the engine's connection, NULL refuses (closed 1011). */
    void *(*open)(void *ud, chat__tconn *t);
    /* One whole text message (NUL-terminated at len). */
    void (*message)(void *conn, const char *buf, size_t len);
    /* A message was refused (CHAT__TP_*); the engine decides what the peer hears and whether
     * the connection closes (for CHAT__TP_PROTOCOL the transport has closed it already). */
    void (*refused)(void *conn, int why);
    /* Bytes arrived on the connection (a frame, a pong): it is alive. */
    void (*heard)(void *conn);
    /* want_write() was called and the connection can take bytes. Non-zero closes it. */
    int (*writable)(void *conn);
    /* The connection is gone; t is invalid from here on. */
    void (*closed)(void *conn);
    /* One HTTP event (CHAT__HTTP_*). *slot is the engine's pointer for the transaction (NULL
     * before the request). Non-zero closes the connection. */
    int (*http)(void *ud, chat__thttp *h, int event, void **slot, const void *in, size_t len);
} chat__transport_sink;

typedef struct chat__transport_ops {
    const char *name;

    /* ---- the loop ---- */
    /* Create the loop and start listening. CHAT_EIO (the address cannot be bound), CHAT_ENOMEM.
     * arg is the transport's own (the loopback takes its test handle). */
    int (*open)(void **out, void *arg, const chat__transport_config *cfg,
                const chat__transport_sink *sink);
    /* Run until shutdown() and every connection is closed. */
    void (*run)(void *st);
    /* Make run() call sink->wake soon. [any thread] */
    void (*wake)(void *st);
    /* Stop accepting and close every connection (1001); run() then returns. */
    void (*shutdown)(void *st);
    /* Free what open() made; after run() returned (or instead of it). */
    void (*close)(void *st);
    /* The loop's clock in ms, monotonic, read once per loop iteration. */
    int64_t (*now_ms)(void *st);
    /* The bound port. */
    int (*port)(void *st);

    /* ---- timers ---- */
    int (*timer_init)(void *st, chat__timer *t, void (*cb)(chat__timer *t)); /* CHAT_ENOMEM */
    void (*timer_start)(chat__timer *t, int64_t delay_ms); /* (re)arm, one shot */
    void (*timer_stop)(chat__timer *t);
    void (*timer_close)(chat__timer *t); /* t may then be reused with timer_init */

    /* ---- WebSocket connections ---- */
    /* Write one text message. A partial write is kept by the transport (then busy() is
     * true until it drained). Non-zero: the connection failed. */
    int (*write)(chat__tconn *t, unsigned char *data, size_t len);
    /* Bytes of an earlier write are still waiting in the transport. */
    int (*busy)(chat__tconn *t);
    /* Call sink->writable once the connection can take bytes. */
    void (*want_write)(chat__tconn *t);
    /* Send a ping (the pong comes back as heard()). Non-zero: failed. */
    int (*ping)(chat__tconn *t);
    /* Send a close frame (code, reason of at most 123 bytes) and prepare the socket to close
     * cleanly; the engine then returns non-zero from writable(). */
    void (*send_close)(chat__tconn *t, int code, const char *reason);
    /* Drop the connection now, without a close handshake (the peer is gone or stalled);
     * closed() follows from the loop. */
    void (*kill)(chat__tconn *t);

    /* ---- HTTP ---- */
    int (*http_method)(chat__thttp *h);
    /* Copy header name (lower case, no colon) into buf: its length, or CHAT__HDR_*. */
    int (*http_header)(chat__thttp *h, const char *name, char *buf, size_t size);
    /* The query string as the client sent it, without '?': its length, or -1 when it does
     * not fit (or cannot be rebuilt unambiguously). */
    int (*http_query)(chat__thttp *h, char *buf, size_t size);
    /* The status line and headers: content_length < 0 sends none; close asks the transport
     * to end the connection after this response. Every response also carries the transport's
     * security headers (nosniff, a restrictive Content-Security-Policy, no framing).
     * Non-zero: failed. */
    int (*http_respond)(chat__thttp *h, int status, const char *ctype, int64_t content_length,
                        const chat__http_hdr *hdr, int n, int close);
    /* Body bytes (with headroom); final marks the last. Non-zero: failed. */
    int (*http_write)(chat__thttp *h, unsigned char *data, size_t len, int final);
    /* An interim "100 Continue" (the client sent Expect: 100-continue). Non-zero: failed. */
    int (*http_continue)(chat__thttp *h);
    /* The socket's buffer is full: wait for WRITABLE before writing more. */
    int (*http_choked)(chat__thttp *h);
    void (*http_want_write)(chat__thttp *h);
    /* The response is complete: 0 keeps the connection for the next request, non-zero means
     * the engine must return non-zero (close). */
    int (*http_complete)(chat__thttp *h);
    /* The transaction is making progress: push its inactivity timeout back. */
    void (*http_progress)(chat__thttp *h);
} chat__transport_ops;

/* The native transport (uv.c). */
const chat__transport_ops *chat__transport_native(void);

#endif
