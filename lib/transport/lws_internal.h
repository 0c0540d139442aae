/* Shared by the two files of the libwebsockets transport (lws.c: the loop and WebSocket;
 * lws_http.c: the HTTP side). */
#ifndef CHAT_TRANSPORT_LWS_INTERNAL_H
#define CHAT_TRANSPORT_LWS_INTERNAL_H

#include "transport/reasm.h"
#include "transport/transport.h"

#include <libwebsockets.h>
#include <uv.h>

/* lws's HTTP timeout (the context's timeout_secs): a transaction that makes no progress for
 * this long is dropped. lws arms it when a request arrives and re-arms it as an upload's body
 * comes in; the engine re-arms it for downloads through http_progress. */
#define CHAT__LWS_HTTP_TIMEOUT_SECS 5

typedef struct lws_tp lws_tp;
struct lws_tp {
    uv_loop_t loop;
    uv_async_t async;
    uv_prepare_t prepare;
    uv_check_t check;
    int handles_open;
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    lws_retry_bo_t retry;
    chat__transport_sink sink;
    chat__transport_config cfg; /* the limits and the log; no strings */
    int port;
    int shutting_down;
    int log_slot; /* 1 + the index of this transport's log sink, 0: none */
    lws_tp *next_abandoned;
};

/* lws's per-connection user data. */
struct pss {
    void *conn;       /* the engine's WebSocket connection */
    void *http;       /* the engine's HTTP transaction in progress */
    chat__reasm rx;   /* a message arriving in several chunks */
};

/* One HTTP callback of lws, handed to the engine as a CHAT__HTTP_* event. */
int chat__lws_http_event(lws_tp *tp, struct lws *wsi, int reason, void **slot, void *in,
                         size_t len);

int chat__lws_http_method(chat__thttp *h);
int chat__lws_http_header(chat__thttp *h, const char *name, char *buf, size_t size);
int chat__lws_http_query(chat__thttp *h, char *buf, size_t size);
int chat__lws_http_respond(chat__thttp *h, int status, const char *ctype, int64_t content_length,
                           const chat__http_hdr *hdr, int n, int close);
int chat__lws_http_write(chat__thttp *h, unsigned char *data, size_t len, int final);
int chat__lws_http_continue(chat__thttp *h);
int chat__lws_http_choked(chat__thttp *h);
void chat__lws_http_want_write(chat__thttp *h);
int chat__lws_http_complete(chat__thttp *h);
void chat__lws_http_progress(chat__thttp *h);

#endif
