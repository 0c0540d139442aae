/* The WebSocket transport: a libwebsockets context joined to the server's libuv loop (epoll;
 * lws's own poll() loop collapses near 10K connections). It reassembles messages under the
 * configured caps (lws itself does not cap reassembly) and hands them to the dispatcher.
 * LWS_CALLBACK_HTTP_CONFIRM_UPGRADE is deliberately not handled: Debian's lws 4.1.6 has a
 * use-after-free behind it (CVE-2025-11677). */
#include "server/internal.h"
#include "server/media.h"

#include "core/alloc.h"
#include "core/error.h"
#include "transport/reasm.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

_Static_assert(LWS_PRE <= CHAT__FRAME_PRE, "frame headroom too small for lws");

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

struct pss {
    chat__conn *conn;
    void *http; /* the HTTP transaction in progress (server/media_http.c) */
};

static int on_receive(chat__conn *c, struct lws *wsi, const char *in, size_t len)
{
    chat_server *srv = c->srv;
    chat__conn_heard(c);
    if (c->close_code)
        return 0; /* closing: ignore the rest */
    size_t remaining = lws_remaining_packet_payload(wsi);
    unsigned int flags = (lws_is_first_fragment(wsi) ? CHAT__REASM_FIRST : 0) |
                         (remaining ? CHAT__REASM_MORE : 0) |
                         (lws_is_final_fragment(wsi) ? CHAT__REASM_FINAL : 0) |
                         (lws_frame_is_binary(wsi) ? CHAT__REASM_BINARY : 0);
    size_t limit = (size_t)chat__limit(srv, CHAT_LIMIT_FRAME_BYTES);
    if (!c->rx.open && len <= limit &&
        (flags & (CHAT__REASM_FIRST | CHAT__REASM_MORE | CHAT__REASM_FINAL)) ==
            (CHAT__REASM_FIRST | CHAT__REASM_FINAL)) {
        /* The whole message in one chunk (the usual case): no copy, and an idle connection
         * keeps no reassembly buffer. */
        if (flags & CHAT__REASM_BINARY)
            chat__conn_error(c, NULL, CHAT_EPROTO, "binary_frame", "frames must be text", 0);
        else
            chat__dispatch(c, in, len);
        return 0;
    }
    switch (chat__reasm_feed(&c->rx, in, len, flags, remaining, limit,
                             chat__limit(srv, CHAT_LIMIT_FRAGMENTS))) {
    case CHAT__REASM_PARTIAL:
        return 0;
    case CHAT__REASM_TOO_BIG:
        chat__conn_error(c, NULL, CHAT_ELIMIT, "frame_too_large", "message over the frame limit",
                         0);
        chat__conn_close(c, 1009, "message too big");
        return 0;
    case CHAT__REASM_TOO_MANY:
        chat__conn_close(c, 1009, "too many fragments");
        return 0;
    case CHAT__REASM_PROTOCOL:
        chat__conn_close(c, 1002, "bad fragment sequence");
        return 0;
    case CHAT__REASM_NOMEM:
        chat__conn_close(c, 1011, "out of memory");
        return 0;
    default:
        break;
    }
    if (c->rx.binary)
        chat__conn_error(c, NULL, CHAT_EPROTO, "binary_frame", "frames must be text", 0);
    else
        chat__dispatch(c, c->rx.buf, c->rx.len);
    /* Idle connections keep no reassembly buffer: only a message that came in several chunks
     * needed one. */
    chat__reasm_free(&c->rx);
    return 0;
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

/* With allowed origins configured, an upgrade carrying any other Origin is refused (a missing
 * Origin is a native client's, and accepted). Returns 1 when allowed. */
static int origin_allowed(const chat_server *srv, struct lws *wsi)
{
    if (srv->cfg.n_origins == 0)
        return 1;
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
    if (n <= 0)
        return 1;
    char origin[CHAT__ORIGIN_MAX];
    if (n >= (int)sizeof origin || lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN) != n)
        return 0;
    for (int i = 0; i < srv->cfg.n_origins; i++)
        if (strcmp(srv->cfg.origins[i], origin) == 0)
            return 1;
    return 0;
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    struct lws_context *ctx = lws_get_context(wsi);
    chat_server *srv = ctx ? lws_context_user(ctx) : NULL;
    struct pss *p = user;

    switch (reason) {
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION: {
        const struct lws_filter_network_conn_args *a = user;
        return a && fd_in_reserve(a->accept_fd); /* non-zero: lws closes the socket */
    }
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        if (srv->stopping || srv->n_conns >= (size_t)chat__limit(srv, CHAT_LIMIT_CONNECTIONS))
            return 1; /* refuse the upgrade */
        if (!origin_allowed(srv, wsi)) {
            chat__log(srv, CHAT_LOG_INFO, "upgrade refused: Origin not allowed");
            lws_return_http_status(wsi, HTTP_STATUS_FORBIDDEN, NULL);
            return 1;
        }
        return 0;
    case LWS_CALLBACK_ESTABLISHED:
        p->conn = chat__conn_new(srv, wsi);
        if (!p->conn)
            return -1;
        chat__conn_auth_wait(p->conn);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        return p->conn ? on_receive(p->conn, wsi, in, len) : -1;
    case LWS_CALLBACK_RECEIVE_PONG:
        if (p->conn)
            chat__conn_heard(p->conn);
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
        return p->conn ? chat__conn_writable(p->conn) : -1;
    case LWS_CALLBACK_CLOSED:
        if (p->conn) {
            chat__conn_closed(p->conn);
            p->conn = NULL;
        }
        return 0;
    case LWS_CALLBACK_HTTP:
    case LWS_CALLBACK_HTTP_BODY:
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
    case LWS_CALLBACK_HTTP_WRITEABLE:
    case LWS_CALLBACK_CLOSED_HTTP:
        /* Media uploads and downloads; everything else on HTTP is a 404. */
        return p ? chat__http_callback(srv, wsi, (int)reason, &p->http, in, len) : 0;
    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {
    {"libchat.v1", ws_callback, sizeof(struct pss), CHAT__WS_RX_BUFFER, 0, NULL,
     CHAT__WS_TX_PACKET},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

int chat__ws_probe_listen(chat_server *srv)
{
    if (srv->cfg.port == 0)
        return CHAT_OK;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, srv->cfg.address, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)srv->cfg.port);
        len = sizeof *in4;
    } else if (inet_pton(AF_INET6, srv->cfg.address, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)srv->cfg.port);
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
        return chat__error_set(CHAT_EIO, err, "cannot listen on %s:%d: %s", srv->cfg.address,
                               srv->cfg.port, strerror(err));
    return CHAT_OK;
}

int chat__ws_start(chat_server *srv)
{
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    void *loops[1] = {&srv->loop};
    /* No lws idle policy (its per-connection timers cost O(connections) each to re-arm): a
     * zero policy turns it off, and conntimer.c pings and hangs up instead. */
    memset(&srv->retry, 0, sizeof srv->retry);

    info.port = srv->cfg.port ? srv->cfg.port : CONTEXT_PORT_NO_LISTEN_SERVER;
    if (srv->cfg.port == 0)
        info.port = 0; /* lws binds an ephemeral port for 0 */
    info.iface = srv->cfg.address;
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8 |
                   LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE;
    info.foreign_loops = loops;
    info.user = srv;
    info.pcontext = &srv->lws;
    /* HTTP/1.1 only: no h2 in ALPN (lws 4.1.6's HTTP/2 code carries known CVEs). No
     * info.extensions (no permessage-deflate) and no plugins: both stay NULL. */
    info.alpn = "http/1.1";
    if (srv->cfg.tls_cert[0]) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = srv->cfg.tls_cert;
        info.ssl_private_key_filepath = srv->cfg.tls_key;
    }
    info.retry_and_idle_policy = &srv->retry;
    info.vhost_name = "default";
    info.max_http_header_data = 4096; /* signed media URLs and bearer tokens */
    info.timeout_secs = CHAT__HTTP_TIMEOUT_SECS;
    /* lws reads every socket through this per-thread buffer. Over TLS, a read smaller than a
     * TLS record (16 KiB of plaintext) leaves the rest decrypted inside OpenSSL, where epoll
     * cannot see it, and lws 4.1.6 on the libuv loop does not come back for it: an HTTP body
     * whose last record was split stalled a few bytes short until the 5 s timeout. With room
     * for a whole record, each read drains one. (4096 by default; one buffer per thread.) */
    info.pt_serv_buf_size = 32768;
    srv->lws = lws_create_context(&info);
    /* On a foreign loop lws 4.1.6 returns a context even when binding failed: the listening
     * vhost is what tells. The caller tears the context down through the loop. */
    srv->vhost = srv->lws ? lws_get_vhost_by_name(srv->lws, "default") : NULL;
    int port = srv->vhost ? lws_get_vhost_listen_port(srv->vhost) : 0;
    if (port <= 0)
        return chat__error_set(CHAT_EIO, 0,
                               srv->cfg.tls_cert[0]
                                   ? "cannot listen on %s:%d (or the TLS certificate and key "
                                     "are not a usable pair)"
                                   : "cannot listen on %s:%d",
                               srv->cfg.address, srv->cfg.port);
    atomic_store(&srv->port, port);
    chat__conntimer_start(srv);
    chat__log(srv, CHAT_LOG_INFO, "listening on %s:%d", srv->cfg.address,
              atomic_load(&srv->port));
    return CHAT_OK;
}

void chat__ws_stop(chat_server *srv)
{
    lws_sul_cancel(&srv->typing_sul);
    chat__conntimer_stop(srv);
    if (srv->lws)
        lws_context_destroy(srv->lws);
}
