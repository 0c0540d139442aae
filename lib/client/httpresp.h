/* The head of an HTTP/1.1 response, as the client's media transfers read it (media.c): the
 * status line and header fields up to the blank line, then lookups by header name. Pure
 * functions over bytes, with no socket, so the parser can be fuzzed on its own
 * (tests/fuzz/fuzz_httpresp.c). */
#ifndef CHAT_CLIENT_HTTPRESP_H
#define CHAT_CLIENT_HTTPRESP_H

#include <stddef.h>
#include <stdint.h>

#define CHAT__HTTP_HEAD_MAX 8192 /* bytes of a head, the NUL included */

typedef struct chat__http_head {
    int status;
    size_t len;                     /* bytes taken so far */
    char head[CHAT__HTTP_HEAD_MAX]; /* those bytes, NUL-terminated */
} chat__http_head;

/* Start reading a new head. */
void chat__http_head_init(chat__http_head *h);

/*
 * Take bytes of the response from p[0..n) until the blank line ("\r\n\r\n") that ends the head;
 * *used receives how many were taken (what follows belongs to the body).
 * @return CHAT_OK (complete: status set), CHAT_EAGAIN (all n taken, the head goes on),
 *         CHAT_EPROTO (over CHAT__HTTP_HEAD_MAX - 1 bytes, or no "HTTP/1.x NNN" status line;
 *         error record set).
 */
int chat__http_head_feed(chat__http_head *h, const char *p, size_t n, size_t *used);

/* The value of the first header field called name (case-insensitive; the status line is not
 * a field), leading spaces skipped, cut to size - 1 bytes into out (size >= 1); out, or NULL
 * when there is none. */
const char *chat__http_header(const chat__http_head *h, const char *name, char *out,
                              size_t size);

/* That value read as a decimal (strtoull), *found telling whether there was one; 0 if not. */
uint64_t chat__http_header_u64(const chat__http_head *h, const char *name, int *found);

/* The complete length a 206 answer's Content-Range ("bytes a-b/total") gives, else fallback. */
uint64_t chat__http_range_total(const chat__http_head *h, uint64_t fallback);

#endif
