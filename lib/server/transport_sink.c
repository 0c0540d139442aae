/* The engine's side of the transport seam (transport/transport.h): what the server does when
 * the transport opens, feeds, drains or closes a connection, asks about an upgrade, or hands
 * over an HTTP event. [loop thread] */
#include "server/media.h"

#include <string.h>

/* The only path a WebSocket upgrade is accepted on (doc/protocol.md). */
#define WS_PATH "/"

static int upgrade_status(chat_server *srv, chat__thttp *h, const char *path);

static int on_upgrade(void *ud, chat__thttp *h, const char *path)
{
    chat_server *srv = ud;
    int status = upgrade_status(srv, h, path);
    if (status)
        chat__count(&srv->stats.refused, 1);
    return status;
}

static int upgrade_status(chat_server *srv, chat__thttp *h, const char *path)
{
    const chat__transport_ops *tp = srv->tp;
    if (srv->stopping || srv->drain_phase ||
        srv->n_conns >= (size_t)chat__limit(srv, CHAT_LIMIT_CONNECTIONS))
        return 503;
    if (strcmp(path, WS_PATH) != 0) {
        chat__log(srv, CHAT_LOG_INFO, "upgrade refused: path is not " WS_PATH);
        return 404;
    }
    /* An upgrade carries no body: bytes after its headers would be read as WebSocket frames. */
    char v[32];
    int cl = tp->http_header(h, "content-length", v, sizeof v);
    if ((cl > 0 && strcmp(v, "0") != 0) || cl < CHAT__HDR_ABSENT ||
        tp->http_header(h, "transfer-encoding", v, sizeof v) != CHAT__HDR_ABSENT) {
        chat__log(srv, CHAT_LOG_INFO, "upgrade refused: it carries a body");
        return 400;
    }
    if (srv->cfg.n_origins == 0)
        return 0;
    /* With allowed origins configured, an upgrade carrying any other Origin is refused (a
     * missing Origin is a native client's, and accepted). */
    char origin[CHAT__ORIGIN_MAX];
    int n = tp->http_header(h, "origin", origin, sizeof origin);
    if (n == CHAT__HDR_ABSENT)
        return 0;
    for (int i = 0; n > 0 && i < srv->cfg.n_origins; i++)
        if (strcmp(srv->cfg.origins[i], origin) == 0)
            return 0;
    chat__log(srv, CHAT_LOG_INFO, "upgrade refused: Origin not allowed");
    return 403;
}

static void *on_open(void *ud, chat__tconn *t)
{
    chat__conn *c = chat__conn_new(ud, t);
    if (c)
        chat__conn_auth_wait(c);
    return c;
}

static void on_message(void *conn, const char *buf, size_t len)
{
    chat__conn *c = conn;
    chat_server *srv = c->srv;
    chat__count(&srv->stats.frames_in, 1);
    chat__count(&srv->stats.bytes_in, len);
    /* Closing: ignore the rest. Draining: requests that arrive now are not answered (the
     * client resends what was not acked after reconnecting elsewhere), so the in-flight
     * ones finish and the connections can close. */
    if (c->close_code || srv->drain_phase)
        return;
    chat__dispatch(c, buf, len);
}

static void on_refused(void *conn, int why)
{
    chat__conn *c = conn;
    if (c->close_code)
        return;
    switch (why) {
    case CHAT__TP_BINARY:
        chat__conn_error(c, NULL, CHAT_EPROTO, "binary_frame", "frames must be text", 0);
        return;
    case CHAT__TP_TOO_BIG:
        chat__conn_error(c, NULL, CHAT_ELIMIT, "frame_too_large", "message over the frame limit",
                         0);
        chat__conn_close(c, 1009, "message too big");
        return;
    case CHAT__TP_TOO_MANY:
        chat__conn_close(c, 1009, "too many fragments");
        return;
    case CHAT__TP_PROTOCOL:
        chat__conn_close(c, 1002, "protocol error");
        return;
    default:
        chat__conn_close(c, 1011, "out of memory");
        return;
    }
}

static void on_heard(void *conn)
{
    chat__conn_heard(conn);
}

static int on_writable(void *conn)
{
    return chat__conn_writable(conn);
}

static void on_closed(void *conn)
{
    chat__conn_closed(conn);
}

static int on_http(void *ud, chat__thttp *h, int event, void **slot, const void *in, size_t len)
{
    return chat__media_http_event(ud, h, event, slot, in, len);
}

static void on_wake(void *ud)
{
    chat__server_on_wake(ud);
}

static void on_flush(void *ud)
{
    chat__server_flush(ud);
}

void chat__server_sink(chat_server *srv, chat__transport_sink *out)
{
    memset(out, 0, sizeof *out);
    out->ud = srv;
    out->wake = on_wake;
    out->flush = on_flush;
    out->upgrade = on_upgrade;
    out->open = on_open;
    out->message = on_message;
    out->refused = on_refused;
    out->heard = on_heard;
    out->writable = on_writable;
    out->closed = on_closed;
    out->http = on_http;
}

void chat__server_config_set_transport(chat_server_config *cfg, const chat__transport_ops *ops,
                                       void *arg)
{
    cfg->transport = ops;
    cfg->transport_arg = arg;
}
