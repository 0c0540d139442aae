/* The loopback server transport: the engine runs as usual (its loop thread, writer and
 * timers) but its connections end in this process instead of in sockets. A test holds the far
 * end of every connection: it opens connections, sends whole messages, reads each frame the
 * engine wrote, stalls a reader, hangs up, issues HTTP requests, and moves the loop's clock.
 *
 *   chat__lb *lb;
 *   chat__lb_new(&lb);
 *   chat__server_config_set_transport(cfg, chat__transport_loopback(), lb);
 *   chat_server_new(&srv, cfg); chat_server_start(srv);
 *   chat__lb_conn *c; chat__lb_connect(lb, &c, 1000);
 *   chat__lb_send(c, "{\"type\":\"auth\",...}");
 *   char *frame; chat__lb_recv(c, &frame, 1000); ... chat__free(frame);
 *   chat_server_free(srv); chat__lb_free(lb);
 *
 * Every function here may be called from any thread but the server's loop thread. Timers fire
 * only when the test moves the clock (chat__lb_advance): nothing happens behind its back. */
#ifndef CHAT_TRANSPORT_LOOPBACK_H
#define CHAT_TRANSPORT_LOOPBACK_H

#include "transport/transport.h"

#include <stddef.h>
#include <stdint.h>

typedef struct chat__lb chat__lb;
typedef struct chat__lb_conn chat__lb_conn;

const chat__transport_ops *chat__transport_loopback(void);

/* CHAT_OK, CHAT_ENOMEM. */
int chat__lb_new(chat__lb **out);
/* After the server using it was freed. Frees every connection handle too. */
void chat__lb_free(chat__lb *lb);

/* The loop's clock (ms; starts at 1,000,000). Moving it fires the timers that fell due and
 * returns once they ran. */
int64_t chat__lb_now(chat__lb *lb);
void chat__lb_advance(chat__lb *lb, int64_t ms);
/* Wait until the loop has nothing left to do (every frame handed over, every writable
 * served): CHAT_OK or CHAT_ETIMEDOUT. Writer-thread jobs in flight are not waited for. */
int chat__lb_settle(chat__lb *lb, int timeout_ms);

/* Open a WebSocket connection (an upgrade at path with this Origin, or NULL for none).
 * CHAT_OK with *out set; CHAT_EPERM with *status_out set (the HTTP status) when the engine
 * refused the upgrade; CHAT_ETIMEDOUT; CHAT_ECLOSED (the server is not running). */
int chat__lb_connect(chat__lb *lb, chat__lb_conn **out, const char *path, const char *origin,
                     int *status_out, int timeout_ms);
/* One whole text message. CHAT_OK, CHAT_ECLOSED, CHAT_ENOMEM. */
int chat__lb_send(chat__lb_conn *c, const char *text, size_t len);
/* A message the transport refuses before the engine sees it (CHAT__TP_BINARY, _TOO_BIG...). */
int chat__lb_send_refused(chat__lb_conn *c, int why);
/* A pong (or any bytes the engine only hears as signs of life). */
int chat__lb_send_pong(chat__lb_conn *c);
/* The next frame the engine wrote (NUL-terminated, free with chat__free), in order:
 * CHAT_OK; CHAT_ECLOSED once every frame was read and the connection is closed (then
 * chat__lb_close_code tells how); CHAT_ETIMEDOUT. Pings are counted, not returned. */
int chat__lb_recv(chat__lb_conn *c, char **out, int timeout_ms);
/* Frames written and not yet read. */
size_t chat__lb_pending(chat__lb_conn *c);
/* The close code the engine sent (1000-4999), 1006 when the transport dropped the connection
 * without one (kill), 0 while open. */
int chat__lb_close_code(chat__lb_conn *c);
/* Pings the engine sent so far. */
unsigned chat__lb_pings(chat__lb_conn *c);
/* The reader's buffer: how many more bytes the connection takes before writes stay in the
 * transport (busy). SIZE_MAX (the default): never full; 0: a reader that stopped reading.
 * Raising it lets held bytes through and serves a pending writable. */
void chat__lb_set_window(chat__lb_conn *c, size_t bytes);
/* The peer goes away: the engine hears closed(). */
void chat__lb_hangup(chat__lb_conn *c);

/* ---- HTTP ---- */

typedef struct chat__lb_http_req {
    int method;                /* CHAT__HTTP_* */
    const char *path;          /* "/media/uploads" */
    const char *query;         /* without '?', or NULL */
    const char *const *headers; /* name, value, name, value, ..., NULL (names lower case) */
    const void *body;
    size_t body_len;           /* sent in chunks of at most chunk bytes (0: one chunk) */
    size_t chunk;
} chat__lb_http_req;

typedef struct chat__lb_http_resp {
    int status;
    char headers[2048]; /* "name: value\n" lines, names lower case */
    char *body;         /* NUL-terminated; chat__free */
    size_t body_len;
    int closed;         /* the engine asked to close the connection after it */
} chat__lb_http_resp;

/* Run one HTTP transaction on a connection of its own. CHAT_OK with *resp filled (free its
 * body), CHAT_ETIMEDOUT, CHAT_ECLOSED (no response: the engine closed the connection). */
int chat__lb_http(chat__lb *lb, const chat__lb_http_req *req, chat__lb_http_resp *resp,
                  int timeout_ms);
/* The value of a header of resp (NULL when absent), into buf. */
const char *chat__lb_http_header(const chat__lb_http_resp *resp, const char *name, char *buf,
                                 size_t size);

#endif
