/* The native transport's WebSocket connections: frames in through the RFC 6455 receiver
 * (wsrx.c), messages and signs of life to the engine, frames out through the connection's
 * corked output, pings answered, and the closing handshake: a close frame, then our FIN once
 * it is out, while what the peer still sends is read and dropped (so that it is not lost to a
 * reset), for at most CHAT__UV_LINGER_MS. */
#include "transport/uv_internal.h"

#include <string.h>

static uconn *U(chat__tconn *t)
{
    return (uconn *)t;
}

/* One frame of ours (the payload follows its header, in a stack buffer for control frames). */
static int control_frame(uconn *c, int op, const void *payload, size_t len)
{
    unsigned char buf[CHAT__TRANSPORT_PRE + 125];
    memcpy(buf + CHAT__TRANSPORT_PRE, payload, len);
    unsigned char *h = chat__ws_header(buf + CHAT__TRANSPORT_PRE, op, len);
    return chat__uv_out(c, h, (size_t)(buf + CHAT__TRANSPORT_PRE + len - h));
}

void chat__uv_ws_close(uconn *c, int code, const char *reason)
{
    if (c->phase != UC_WS)
        return;
    chat__uv_ws_send_close((chat__tconn *)c, code, reason);
    chat__uv_close(c, 1);
}

static int on_message(void *ud, const char *buf, size_t len, int binary)
{
    uconn *c = ud;
    utp *tp = c->tp;
    if (binary)
        tp->sink.refused(c->conn, CHAT__TP_BINARY);
    else
        tp->sink.message(c->conn, buf, len);
    return c->phase != UC_WS || c->discard;
}

static int on_control(void *ud, int op, const unsigned char *p, size_t len)
{
    uconn *c = ud;
    if (op == CHAT__WS_OP_PING) {
        control_frame(c, CHAT__WS_OP_PONG, p, len);
        return 0;
    }
    if (op == CHAT__WS_OP_PONG)
        return 0; /* heard already */
    /* The peer closes: answer with its code (RFC 6455 5.5.1), or 1000 when it gave none. */
    unsigned char echo[2] = {0x03, 0xE8};
    if (len >= 2)
        memcpy(echo, p, 2);
    control_frame(c, CHAT__WS_OP_CLOSE, echo, 2);
    chat__uv_close(c, 1);
    return 1;
}

static const chat__wsrx_cb rx_cb = {on_message, on_control};

long chat__uv_ws_input(uconn *c, unsigned char *p, size_t n)
{
    utp *tp = c->tp;
    if (c->discard)
        return (long)n;
    tp->sink.heard(c->conn);
    if (c->phase != UC_WS)
        return -1;
    int rc = chat__wsrx_feed(c->rx, p, n, tp->cfg.frame_max, tp->cfg.frags_max, &rx_cb, c);
    switch (rc) {
    case CHAT__WSRX_OK:
        return (long)n;
    case CHAT__WSRX_STOP:
        return c->phase == UC_DEAD ? -1 : (long)n;
    case CHAT__WSRX_PROTOCOL:
        chat__uv_ws_close(c, 1002, "protocol error");
        return -1;
    case CHAT__WSRX_UTF8:
        chat__uv_ws_close(c, 1007, "invalid UTF-8");
        return -1;
    default:
        /* The engine answers these (an error frame, then its own close); what follows the
         * refused message is not read. */
        c->discard = 1;
        tp->sink.refused(c->conn, rc == CHAT__WSRX_TOO_BIG    ? CHAT__TP_TOO_BIG
                                  : rc == CHAT__WSRX_TOO_MANY ? CHAT__TP_TOO_MANY
                                                              : CHAT__TP_NOMEM);
        return c->phase == UC_DEAD ? -1 : (long)n;
    }
}

int chat__uv_ws_write(chat__tconn *t, unsigned char *data, size_t len)
{
    uconn *c = U(t);
    if (c->phase != UC_WS)
        return -1;
    unsigned char *h = chat__ws_header(data, CHAT__WS_OP_TEXT, len);
    return chat__uv_out(c, h, (size_t)(data + len - h));
}

int chat__uv_ws_busy(chat__tconn *t)
{
    return U(t)->blocked;
}

void chat__uv_ws_want_write(chat__tconn *t)
{
    uconn *c = U(t);
    c->want_write = 1;
    if (!c->blocked)
        chat__uv_mark(c);
}

void chat__uv_ws_writable(uconn *c)
{
    utp *tp = c->tp;
    if (!c->conn)
        return;
    if (tp->sink.writable(c->conn) && c->phase == UC_WS)
        chat__uv_close(c, 1); /* the engine wrote its close frame (send_close) */
}

int chat__uv_ws_ping(chat__tconn *t)
{
    return control_frame(U(t), CHAT__WS_OP_PING, "chat", 4);
}

void chat__uv_ws_send_close(chat__tconn *t, int code, const char *reason)
{
    uconn *c = U(t);
    if (c->phase != UC_WS)
        return;
    unsigned char p[2 + 123];
    size_t n = strnlen(reason, 123);
    p[0] = (unsigned char)(code >> 8);
    p[1] = (unsigned char)code;
    memcpy(p + 2, reason, n);
    control_frame(c, CHAT__WS_OP_CLOSE, p, 2 + n);
}

void chat__uv_ws_kill(chat__tconn *t)
{
    /* Not here and now: the engine is in the middle of its own walk over connections, and
     * closed() would free the one it stands on. At the iteration's end. */
    U(t)->kill = 1;
    chat__uv_mark(U(t));
}
