/* A small blocking WebSocket client for the integration tests: plain POSIX sockets, masked
 * text frames, bounded waits everywhere (every call takes a timeout and never blocks past it).
 * It answers pings, reassembles fragmented messages, and records the close code the server
 * sends. Not a general-purpose client: one text message at a time, no extensions. */
#ifndef CHAT_TEST_WSCLIENT_H
#define CHAT_TEST_WSCLIENT_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* Results of ws_recv(). */
#define WS_TEXT 1       /* a text message arrived */
#define WS_BINARY 2     /* a binary message arrived */
#define WS_CLOSED 0     /* the server closed: see ws_close_code() */
#define WS_TIMEOUT (-1) /* nothing arrived in time */
#define WS_ERROR (-2)   /* protocol or socket error */

/* Close code recorded when the TCP connection ended without a close frame (RFC 6455 7.1.5). */
#define WS_CLOSE_ABNORMAL 1006
/* Close code recorded when the close frame carried no code. */
#define WS_CLOSE_NO_STATUS 1005

typedef struct ws_client ws_client;

/* Plain TCP connect to 127.0.0.1:port within timeout_ms; returns the fd or -errno. */
int ws_tcp_connect(int port, int timeout_ms);

/* Connect and upgrade (path "/", subprotocol libchat.v1). Returns 0 or -errno / -EPROTO when
 * the server refuses the upgrade. */
int ws_connect(ws_client **out, int port, int timeout_ms);

/* Send a close frame (best effort) and free everything. Accepts NULL. */
void ws_free(ws_client *c);

/* Close the socket abruptly (no close frame) and free everything. Accepts NULL. */
void ws_drop(ws_client *c);

/* Send one masked text message. Returns 0 or -errno. */
int ws_send_text(ws_client *c, const char *text, size_t len);

/* Send one masked text message built with printf formatting. */
int ws_sendf(ws_client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Send a masked close frame with code (no reason). */
int ws_send_close(ws_client *c, int code);

/* Wait up to timeout_ms for one complete message. On WS_TEXT/WS_BINARY *out (NUL-terminated,
 * free()) and *len receive the payload. Pings are answered and never returned. */
int ws_recv(ws_client *c, int timeout_ms, char **out, size_t *len);

/* Next text message parsed as JSON within timeout_ms, or NULL (timeout, close, error, or not
 * JSON). Free with cJSON_Delete(). */
cJSON *ws_recv_json(ws_client *c, int timeout_ms);

/* Skip messages until one whose "type" is type arrives within timeout_ms; NULL otherwise. */
cJSON *ws_wait_type(ws_client *c, const char *type, int timeout_ms);

/* Skip messages until the server closes; returns the close code, or -1 on timeout. */
int ws_wait_close(ws_client *c, int timeout_ms);

/* 1 once the server closed the connection (close frame or EOF). */
int ws_is_closed(const ws_client *c);

/* The code of the server's close frame, WS_CLOSE_ABNORMAL on EOF, 0 while open. */
int ws_close_code(const ws_client *c);

/* Milliseconds on a monotonic clock. */
long long ws_now_ms(void);

/* JSON field helpers: NULL / -1 when absent or of another type. */
const char *ws_json_str(const cJSON *o, const char *key);
long long ws_json_int(const cJSON *o, const char *key);

#endif /* CHAT_TEST_WSCLIENT_H */
