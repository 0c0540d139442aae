/* The libwebsockets transport: an lws context joined to a libuv loop (epoll; lws's own poll()
 * loop collapses near 10K connections), serving WebSocket and the HTTP media side on one
 * port. It reassembles messages under the engine's caps (lws itself does not cap reassembly),
 * runs the engine's timers on libuv, and routes lws's own log lines to the engine's log.
 * LWS_CALLBACK_HTTP_CONFIRM_UPGRADE is deliberately not handled: Debian's lws 4.1.6 has a
 * use-after-free behind it (CVE-2025-11677). The HTTP accessors are in lws_http.c. */
#include "transport/lws_internal.h"
#include "transport/uvtimer.h"

#include "chat/common.h"
#include "chat/errors.h"
#include "core/alloc.h"
#include "core/error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

_Static_assert(LWS_PRE <= CHAT__TRANSPORT_PRE, "transport headroom too small for lws");

/* lws allocates this per connection; messages larger than it arrive in several chunks, which
 * on_receive reassembles anyway. 256 bytes holds a typical send frame (~150 bytes) whole and
 * keeps idle connections small: about 2.4 KiB per idle connection in all, 0.2 KiB more with 512
 * (doc/performance.md, Settings). */
#define CHAT__WS_RX_BUFFER 256

/* The most one send() may take. Left at 0, lws caps every send() at the rx buffer size
 * above: a 15 KB history page went out as ~60 sends of 256 bytes, the rest copied into lws's
 * own buffer and drained one 256-byte send per writeable event. A cap, not a buffer (nothing
 * of this size is allocated): a frame goes out in one send() and the kernel takes what fits. */
#define CHAT__WS_TX_PACKET (1u << 20)

/* ---- lws's log, routed to the engines' logs ---- */

/* lws 4.1.6 has one log sink per process: every open transport registers its engine's log
 * here, and each lws line goes to all of them (normally one). */
#define LOG_SINKS 8
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    void (*fn)(int, const char *, void *);
    void *ud;
    int level;
} log_sinks[LOG_SINKS];

static void lws_log_emit(int lws_level, const char *line)
{
    int level = lws_level == LLL_ERR ? CHAT_LOG_ERROR : lws_level == LLL_WARN ? CHAT_LOG_WARN
                                                                             : CHAT_LOG_DEBUG;
    char buf[512];
    size_t n = strnlen(line, sizeof buf - 1);
    memcpy(buf, line, n);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    /* lws prefixes its own timestamp and level: the engine's log has both already. */
    const char *msg = buf;
    const char *cut = strstr(buf, "]: ");
    if (buf[0] == '[' && cut)
        msg = cut + 3;
    pthread_mutex_lock(&log_lock);
    for (int i = 0; i < LOG_SINKS; i++)
        if (log_sinks[i].fn && level <= log_sinks[i].level) {
            char line2[540];
            snprintf(line2, sizeof line2, "libwebsockets: %s", msg);
            log_sinks[i].fn(level, line2, log_sinks[i].ud);
        }
    pthread_mutex_unlock(&log_lock);
}

static void log_register(lws_tp *tp)
{
    if (!tp->cfg.log)
        return;
    pthread_mutex_lock(&log_lock);
    for (int i = 0; i < LOG_SINKS; i++)
        if (!log_sinks[i].fn) {
            log_sinks[i].fn = tp->cfg.log;
            log_sinks[i].ud = tp->cfg.log_ud;
            log_sinks[i].level = tp->cfg.log_level;
            tp->log_slot = i + 1;
            break;
        }
    /* Errors and warnings only: lws's notices are per connection and per context start. */
    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);
    pthread_mutex_unlock(&log_lock);
}

static void log_unregister(lws_tp *tp)
{
    if (!tp->log_slot)
        return;
    pthread_mutex_lock(&log_lock);
    log_sinks[tp->log_slot - 1].fn = NULL;
    pthread_mutex_unlock(&log_lock);
    tp->log_slot = 0;
}

/* A line of the transport's own, if the engine logs its level. */
static void tp_log(const lws_tp *tp, int level, const char *line)
{
    if (tp->cfg.log && level <= tp->cfg.log_level)
        tp->cfg.log(level, line, tp->cfg.log_ud);
}

/* ---- receiving ---- */

static void on_receive(lws_tp *tp, struct pss *p, struct lws *wsi, const char *in, size_t len)
{
    void *conn = p->conn;
    tp->sink.heard(conn);
    size_t remaining = lws_remaining_packet_payload(wsi);
    unsigned int flags = (lws_is_first_fragment(wsi) ? CHAT__REASM_FIRST : 0) |
                         (remaining ? CHAT__REASM_MORE : 0) |
                         (lws_is_final_fragment(wsi) ? CHAT__REASM_FINAL : 0) |
                         (lws_frame_is_binary(wsi) ? CHAT__REASM_BINARY : 0);
    size_t limit = tp->cfg.frame_max;
    if (!p->rx.open && len <= limit &&
        (flags & (CHAT__REASM_FIRST | CHAT__REASM_MORE | CHAT__REASM_FINAL)) ==
            (CHAT__REASM_FIRST | CHAT__REASM_FINAL)) {
        /* The whole message in one chunk (the usual case): no copy, and an idle connection
         * keeps no reassembly buffer. lws leaves room for a NUL after the payload. */
        if (flags & CHAT__REASM_BINARY)
            tp->sink.refused(conn, CHAT__TP_BINARY);
        else
            tp->sink.message(conn, in, len);
        return;
    }
    switch (chat__reasm_feed(&p->rx, in, len, flags, remaining, limit, tp->cfg.frags_max)) {
    case CHAT__REASM_PARTIAL:
        return;
    case CHAT__REASM_TOO_BIG:
        tp->sink.refused(conn, CHAT__TP_TOO_BIG);
        return;
    case CHAT__REASM_TOO_MANY:
        tp->sink.refused(conn, CHAT__TP_TOO_MANY);
        return;
    case CHAT__REASM_PROTOCOL:
        tp->sink.refused(conn, CHAT__TP_PROTOCOL);
        return;
    case CHAT__REASM_NOMEM:
        tp->sink.refused(conn, CHAT__TP_NOMEM);
        return;
    default:
        break;
    }
    if (p->rx.binary)
        tp->sink.refused(conn, CHAT__TP_BINARY);
    else
        tp->sink.message(conn, p->rx.buf, p->rx.len);
    /* Idle connections keep no reassembly buffer: only a message that came in several chunks
     * needed one. */
    chat__reasm_free(&p->rx);
}

/* A new socket whose descriptor lies in the top of the process's range is refused at once.
 * Descriptors are allocated lowest first, so a high one means the process is nearly out; the
 * reserve this keeps free means accept() itself never fails with EMFILE, which would leave the
 * connection in the backlog and the listening socket readable forever (lws 4.1.6 then spins a
 * core logging "accept: errno 24"). The reserve also leaves room for the store's files. */
static int fd_in_reserve(int fd)
{
    struct rlimit rl;
    if (fd < 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 0;
    rlim_t reserve = rl.rlim_cur / 16;
    reserve = reserve < 16 ? 16 : reserve > 256 ? 256 : reserve;
    return (rlim_t)fd + reserve >= rl.rlim_cur;
}

/* The upgrade's path, as lws parsed it ("/" when it cannot be read). */
static void upgrade_path(struct lws *wsi, char *buf, int size)
{
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI);
    if (n <= 0 || n >= size || lws_hdr_copy(wsi, buf, size, WSI_TOKEN_GET_URI) < 0)
        snprintf(buf, (size_t)size, "/");
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    lws_tp *tp = ctx ? lws_context_user(ctx) : NULL;
    struct pss *p = user;

    switch (reason) {
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION: {
        const struct lws_filter_network_conn_args *a = user;
        return a && fd_in_reserve(a->accept_fd); /* non-zero: lws closes the socket */
    }
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
        if (tp->shutting_down)
            return 1;
        char path[256];
        upgrade_path(wsi, path, sizeof path);
        int status = tp->sink.upgrade(tp->sink.ud, (chat__thttp *)wsi, path);
        if (status == 0)
            return 0;
        if (status > 0 && status != 503)
            lws_return_http_status(wsi, (unsigned)status, NULL);
        return 1; /* refuse the upgrade */
    }
    case LWS_CALLBACK_ESTABLISHED:
        p->conn = tp->sink.open(tp->sink.ud, (chat__tconn *)wsi);
        return p->conn ? 0 : -1;
    case LWS_CALLBACK_RECEIVE:
        if (!p->conn)
            return -1;
        on_receive(tp, p, wsi, in, len);
        return 0;
    case LWS_CALLBACK_RECEIVE_PONG:
        if (p->conn)
            tp->sink.heard(p->conn);
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        /* lws 4.1.6 echoes a 1-byte close payload back as is; RFC 6455 5.5.1 allows 0 or >= 2
         * bytes, and 7.4.1 wants 1002 for it. */
        if (len == 1) {
            lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, (unsigned char *)"bad close",
                             9);
            return -1;
        }
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return p->conn ? tp->sink.writable(p->conn) : -1;
    case LWS_CALLBACK_CLOSED:
        chat__reasm_free(&p->rx);
        if (p->conn) {
            void *conn = p->conn;
            p->conn = NULL;
            tp->sink.closed(conn);
        }
        return 0;
    case LWS_CALLBACK_HTTP:
    case LWS_CALLBACK_HTTP_BODY:
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
    case LWS_CALLBACK_HTTP_WRITEABLE:
    case LWS_CALLBACK_CLOSED_HTTP:
        return p ? chat__lws_http_event(tp, wsi, (int)reason, &p->http, in, len) : 0;
    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {
    {"libchat.v1", ws_callback, sizeof(struct pss), CHAT__WS_RX_BUFFER, 0, NULL,
     CHAT__WS_TX_PACKET},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---- the loop ---- */

static void on_async(uv_async_t *h)
{
    lws_tp *tp = h->data;
    tp->sink.wake(tp->sink.ud);
}

static void on_prepare(uv_prepare_t *h)
{
    lws_tp *tp = h->data;
    tp->sink.flush(tp->sink.ud);
}

static void on_check(uv_check_t *h)
{
    lws_tp *tp = h->data;
    tp->sink.flush(tp->sink.ud);
}

/* Bind the configured address and port once, so an address in use fails cleanly (CHAT_EIO)
 * before lws is involved. */
static int probe_listen(const chat__transport_config *cfg)
{
    if (cfg->port == 0 || cfg->reuse_port)
        return CHAT_OK;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, cfg->address, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)cfg->port);
        len = sizeof *in4;
    } else if (inet_pton(AF_INET6, cfg->address, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)cfg->port);
        len = sizeof *in6;
    } else {
        return CHAT_OK; /* a name or an interface: lws resolves it */
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return chat__error_set(CHAT_EIO, errno, "socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc = bind(fd, (struct sockaddr *)&ss, len);
    int err = errno;
    close(fd);
    if (rc != 0)
        return chat__error_set(CHAT_EIO, err, "cannot listen on %s:%d: %s", cfg->address,
                               cfg->port, strerror(err));
    return CHAT_OK;
}

static int create_context(lws_tp *tp, const chat__transport_config *cfg)
{
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    void *loops[1] = {&tp->loop};
    /* No lws idle policy (its per-connection timers cost O(connections) each to re-arm): a
     * zero policy turns it off, and the engine pings and hangs up instead. */
    memset(&tp->retry, 0, sizeof tp->retry);
    info.port = cfg->port; /* 0: lws binds an ephemeral port */
    info.iface = cfg->address;
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8 |
                   LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE;
    if (cfg->reuse_port)
        info.options |= LWS_SERVER_OPTION_ALLOW_LISTEN_SHARE;
    info.foreign_loops = loops;
    info.user = tp;
    info.pcontext = &tp->ctx;
    /* HTTP/1.1 only: no h2 in ALPN (lws 4.1.6's HTTP/2 code carries known CVEs). No
     * info.extensions (no permessage-deflate) and no plugins: both stay NULL. */
    info.alpn = "http/1.1";
    if (cfg->tls_cert) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = cfg->tls_cert;
        info.ssl_private_key_filepath = cfg->tls_key;
    }
    info.retry_and_idle_policy = &tp->retry;
    info.vhost_name = "default";
    info.max_http_header_data = 4096; /* signed media URLs and bearer tokens */
    info.timeout_secs = CHAT__LWS_HTTP_TIMEOUT_SECS;
    /* lws reads every socket through this per-thread buffer. Over TLS, a read smaller than a
     * TLS record (16 KiB of plaintext) leaves the rest decrypted inside OpenSSL, where epoll
     * cannot see it, and lws 4.1.6 on the libuv loop does not come back for it: an HTTP body
     * whose last record was split stalled a few bytes short until the timeout. With room for
     * a whole record, each read drains one. (4096 by default; one buffer per thread.) */
    info.pt_serv_buf_size = 32768;
    tp->ctx = lws_create_context(&info);
    /* On a foreign loop lws 4.1.6 returns a context even when binding failed: the listening
     * vhost is what tells. */
    tp->vhost = tp->ctx ? lws_get_vhost_by_name(tp->ctx, "default") : NULL;
    tp->port = tp->vhost ? lws_get_vhost_listen_port(tp->vhost) : 0;
    if (tp->port <= 0)
        return chat__error_set(CHAT_EIO, 0,
                               cfg->tls_cert ? "cannot listen on %s:%d (or the TLS certificate "
                                               "and key are not a usable pair)"
                                             : "cannot listen on %s:%d",
                               cfg->address, cfg->port);
    return CHAT_OK;
}

static void handles_close(lws_tp *tp)
{
    if (!tp->handles_open)
        return;
    tp->handles_open = 0;
    uv_close((uv_handle_t *)&tp->prepare, NULL);
    uv_close((uv_handle_t *)&tp->check, NULL);
    uv_close((uv_handle_t *)&tp->async, NULL);
}

/* Let lws finish closing its handles on the loop (its destroy is two-stage on a foreign
 * loop), then close the loop. */
static void loop_close(lws_tp *tp)
{
    handles_close(tp);
    if (tp->ctx)
        lws_context_destroy(tp->ctx);
    uv_run(&tp->loop, UV_RUN_DEFAULT);
    if (tp->ctx)
        lws_context_destroy(tp->ctx);
    uv_run(&tp->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&tp->loop) != 0)
        tp_log(tp, CHAT_LOG_WARN, "event loop closed with handles still open");
    tp->ctx = NULL;
}

/* Loops given up on (see tp_open), kept reachable: they are not leaked by mistake. */
static pthread_mutex_t abandoned_lock = PTHREAD_MUTEX_INITIALIZER;
static lws_tp *abandoned;

static int tp_open(void **out, void *arg, const chat__transport_config *cfg,
                   const chat__transport_sink *sink)
{
    (void)arg;
    int rc = probe_listen(cfg);
    if (rc != CHAT_OK)
        return rc;
    lws_tp *tp = chat__calloc(1, sizeof *tp);
    if (!tp)
        return CHAT_ENOMEM;
    tp->sink = *sink;
    tp->cfg = *cfg;
    tp->cfg.address = NULL; /* borrowed for open only */
    tp->cfg.tls_cert = tp->cfg.tls_key = NULL;
    if (uv_loop_init(&tp->loop) != 0) {
        chat__free(tp);
        return chat__error_set(CHAT_ERROR, 0, "cannot create the event loop");
    }
    uv_async_init(&tp->loop, &tp->async, on_async);
    uv_prepare_init(&tp->loop, &tp->prepare);
    uv_check_init(&tp->loop, &tp->check);
    tp->async.data = tp->prepare.data = tp->check.data = tp;
    uv_prepare_start(&tp->prepare, on_prepare);
    uv_check_start(&tp->check, on_check);
    /* They never keep the loop alive by themselves. */
    uv_unref((uv_handle_t *)&tp->prepare);
    uv_unref((uv_handle_t *)&tp->check);
    tp->handles_open = 1;
    log_register(tp);
    rc = create_context(tp, cfg);
    if (rc != CHAT_OK) {
        /* lws 4.1.6 on a foreign loop hands back a half-destroyed context when the vhost
         * fails (the probe above makes that a lost race): running the loop over it crashes,
         * so this loop is abandoned, not closed. */
        if (tp->ctx) {
            tp_log(tp, CHAT_LOG_ERROR, "listening failed after the probe; event loop abandoned");
            log_unregister(tp);
            pthread_mutex_lock(&abandoned_lock);
            tp->next_abandoned = abandoned;
            abandoned = tp;
            pthread_mutex_unlock(&abandoned_lock);
            return rc;
        }
        log_unregister(tp);
        loop_close(tp);
        chat__free(tp);
        return rc;
    }
    char line[320];
    snprintf(line, sizeof line, "listening on %s:%d", cfg->address, tp->port);
    tp_log(tp, CHAT_LOG_INFO, line);
    *out = tp;
    return CHAT_OK;
}

static void tp_run(void *st)
{
    lws_tp *tp = st;
    uv_run(&tp->loop, UV_RUN_DEFAULT);
}

static void tp_wake(void *st)
{
    lws_tp *tp = st;
    uv_async_send(&tp->async);
}

static void tp_shutdown(void *st)
{
    lws_tp *tp = st;
    if (tp->shutting_down)
        return;
    tp->shutting_down = 1;
    /* lws closes every connection and its own handles; once ours are closed too, uv_run()
     * returns. */
    if (tp->ctx)
        lws_context_destroy(tp->ctx);
    handles_close(tp);
}

static void tp_close(void *st)
{
    lws_tp *tp = st;
    if (!tp)
        return;
    loop_close(tp);
    log_unregister(tp);
    chat__free(tp);
}

static int64_t tp_now_ms(void *st)
{
    lws_tp *tp = st;
    return (int64_t)uv_now(&tp->loop);
}

static int tp_port(void *st)
{
    return ((lws_tp *)st)->port;
}

/* ---- timers: libuv's heap (lws 4.1.6's timers are a sorted list, and on libuv it re-arms
 * them only after servicing a socket) ---- */

static int tp_timer_init(void *st, chat__timer *t, void (*cb)(chat__timer *t))
{
    return chat__uvtimer_init(&((lws_tp *)st)->loop, t, cb);
}

/* ---- WebSocket connections ---- */

static int tp_write(chat__tconn *t, unsigned char *data, size_t len)
{
    return lws_write((struct lws *)t, data, len, LWS_WRITE_TEXT) < 0 ? -1 : 0;
}

static int tp_busy(chat__tconn *t)
{
    return lws_partial_buffered((struct lws *)t);
}

static void tp_want_write(chat__tconn *t)
{
    lws_callback_on_writable((struct lws *)t);
}

static int tp_ping(chat__tconn *t)
{
    /* With a payload: lws 4.1.6 does not report an empty PONG (LWS_CALLBACK_RECEIVE_PONG),
     * so the answer would go unseen. */
    unsigned char buf[LWS_PRE + 4];
    memcpy(buf + LWS_PRE, "chat", 4);
    return lws_write((struct lws *)t, buf + LWS_PRE, 4, LWS_WRITE_PING) < 0 ? -1 : 0;
}

static void tp_send_close(chat__tconn *t, int code, const char *reason)
{
    struct lws *wsi = (struct lws *)t;
    /* Write the close frame ourselves: with lws 4.1.6 on the libuv loop, the frame that
     * lws_close_reason() prepares is never sent when WRITEABLE returns -1. Opcode 4 is lws's
     * internal LWS_WRITE_CLOSE, which its header hides. */
    unsigned char buf[LWS_PRE + 2 + 123];
    size_t n = strnlen(reason, 123);
    unsigned char *p = buf + LWS_PRE;
    p[0] = (unsigned char)(code >> 8);
    p[1] = (unsigned char)(code & 0xff);
    memcpy(p + 2, reason, n);
    lws_write(wsi, p, 2 + n, (enum lws_write_protocol)4);
    /* Closing a socket with unread input sends RST, and a peer that receives the RST may lose
     * the close frame (and the error frames before it) still in its buffer. A peer that kept
     * sending after the cause (an error flood) would then never see the code. Discard what has
     * arrived, a bounded amount, so the close goes out as a FIN. */
    int fd = lws_get_socket_fd(wsi);
    char junk[4096];
    for (int i = 0; fd >= 0 && i < 16; i++)
        if (recv(fd, junk, sizeof junk, MSG_DONTWAIT) <= 0)
            break;
}

static void tp_kill(chat__tconn *t)
{
    lws_set_timeout((struct lws *)t, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

static const chat__transport_ops lws_ops = {
    .name = "libwebsockets",
    .open = tp_open,
    .run = tp_run,
    .wake = tp_wake,
    .shutdown = tp_shutdown,
    .close = tp_close,
    .now_ms = tp_now_ms,
    .port = tp_port,
    .timer_init = tp_timer_init,
    .timer_start = chat__uvtimer_start,
    .timer_stop = chat__uvtimer_stop,
    .timer_close = chat__uvtimer_close,
    .write = tp_write,
    .busy = tp_busy,
    .want_write = tp_want_write,
    .ping = tp_ping,
    .send_close = tp_send_close,
    .kill = tp_kill,
    .http_method = chat__lws_http_method,
    .http_header = chat__lws_http_header,
    .http_query = chat__lws_http_query,
    .http_respond = chat__lws_http_respond,
    .http_write = chat__lws_http_write,
    .http_continue = chat__lws_http_continue,
    .http_choked = chat__lws_http_choked,
    .http_want_write = chat__lws_http_want_write,
    .http_complete = chat__lws_http_complete,
    .http_progress = chat__lws_http_progress,
};

const chat__transport_ops *chat__transport_lws(void)
{
    return &lws_ops;
}
