/* HTTP for the push providers, on libcurl: a batch of requests runs concurrently on one multi
 * handle, whose connection cache keeps one connection per host between batches. Over TLS the
 * connection speaks HTTP/2 when the server offers it (ALPN), and the requests of a batch then
 * share it as streams (APNs asks for exactly this: one long-lived connection, many pushes).
 * Certificates are verified. Used from one thread at a time; only chat__http_abort may come
 * from another. */
#ifndef CHAT_PUSH_HTTP_H
#define CHAT_PUSH_HTTP_H

#include <stddef.h>
#include <stdint.h>

typedef struct chat__http chat__http;

/* Longest answer body kept; the rest is read and dropped. */
#define CHAT__HTTP_BODY_MAX 8192

typedef struct chat__http_req {
    /* In: borrowed for the run. headers: "Name: value" lines, NULL-terminated (may be NULL). */
    const char *url;
    const char *const *headers;
    const char *body;
    size_t body_len;
    const char *content_type; /* NULL: application/json */
    /* Out. */
    int status;               /* HTTP status, 0 when none came (see error) */
    int error;                /* CHAT_OK, or why no answer came: CHAT_ETIMEDOUT, CHAT_ECLOSED
                               * (no connection), CHAT_EIO (TLS, protocol, I/O), CHAT_ECLOSED
                               * also when aborted */
    int64_t retry_after_ms;   /* from Retry-After (seconds or a date), -1 when absent */
    char resp[CHAT__HTTP_BODY_MAX + 1]; /* the answer's body, NUL-terminated */
    size_t resp_len;
    char detail[256];         /* libcurl's error text, for logs (holds no header or body) */
} chat__http_req;

typedef struct chat__http_opts {
    const char *ca_file; /* PEM CAs to trust instead of the system's; NULL: the system's */
    int timeout_ms;      /* per request, connecting included */
} chat__http_opts;

/* @return CHAT_OK, CHAT_ENOMEM, CHAT_ERROR (libcurl failed to initialise). */
int chat__http_new(chat__http **out, const chat__http_opts *opts);
void chat__http_free(chat__http *h);

/* Run reqs[0..n) concurrently until each has an answer, an error or the timeout, or until
 * chat__http_abort. @return CHAT_OK (see each request's status and error), CHAT_ECLOSED
 * (aborted: unanswered requests have error CHAT_ECLOSED), CHAT_ENOMEM. */
int chat__http_run(chat__http *h, chat__http_req *reqs, size_t n);

/* Make the current and every later run return at once. [any thread] */
void chat__http_abort(chat__http *h);

/* Parse a Retry-After value (delta seconds or an HTTP date) into ms from now_s; -1 if bad. */
int64_t chat__http_retry_after_ms(const char *value, int64_t now_s);

#endif
