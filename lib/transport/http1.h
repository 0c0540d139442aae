/* An HTTP/1.1 request head (RFC 9112), parsed strictly and in place: the request line, then
 * header fields. Pure: no socket and no allocation, so it is unit-tested and fuzzed on its own.
 *
 * Refused (CHAT__HTTP1_BAD, answered 400 and the connection closed): a request line that is
 * not "METHOD SP /target SP HTTP/1.x", control bytes, whitespace before a field's colon,
 * obsolete line folding, a Content-Length that is not a decimal or comes twice,
 * Transfer-Encoding of any kind (bodies are framed by Content-Length only, so a chunked body can
 * never be read as a next request: RFC 9112 6.1), more than CHAT__HTTP1_MAX_FIELDS fields. The
 * target keeps the spelling the client sent: nothing is decoded or normalised. */
#ifndef CHAT_TRANSPORT_HTTP1_H
#define CHAT_TRANSPORT_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#define CHAT__HTTP1_MAX_HEAD 8192  /* request line and fields, with the blank line */
#define CHAT__HTTP1_MAX_FIELDS 48

#define CHAT__HTTP1_OK 0
#define CHAT__HTTP1_PARTIAL 1     /* no blank line yet */
#define CHAT__HTTP1_BAD (-1)      /* 400 */
#define CHAT__HTTP1_TOO_LONG (-2) /* 431: the head is over CHAT__HTTP1_MAX_HEAD */

typedef struct chat__http1_field {
    const char *name;  /* lower case, NUL-terminated in the buffer */
    const char *value; /* without surrounding spaces, NUL-terminated */
} chat__http1_field;

typedef struct chat__http1_req {
    int method;        /* CHAT__HTTP_* (transport.h) */
    int minor;         /* HTTP/1.minor */
    const char *path;  /* the target up to '?', as sent */
    const char *query; /* after '?', "" when none */
    int64_t content_length; /* -1: none */
    chat__http1_field field[CHAT__HTTP1_MAX_FIELDS];
    int nfields;
    size_t head_len;   /* bytes of the head, blank line included */
} chat__http1_req;

/* Find and parse a request head at the start of buf[0..len): CHAT__HTTP1_OK with *req filled
 * (buf is changed in place and must outlive req), _PARTIAL, _BAD, _TOO_LONG. Empty lines
 * before the request line are skipped (RFC 9112 2.2). */
int chat__http1_parse(char *buf, size_t len, chat__http1_req *req);

/* The value of field name (lower case): its value, NULL when absent; *count is how many times
 * it was sent. */
const char *chat__http1_field_get(const chat__http1_req *req, const char *name, int *count);

/* 1 if the comma-separated list value holds token (case-insensitive). */
int chat__http1_has_token(const char *value, const char *token);

#endif
