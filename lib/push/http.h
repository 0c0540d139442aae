/* A minimal blocking HTTP/1.1 POST client for the webhook worker thread. */
#ifndef CHAT_PUSH_HTTP_H
#define CHAT_PUSH_HTTP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

typedef struct chat__http_url {
    char *host; /* without brackets for IPv6 literals */
    char *authority; /* Host header value: as written in the URL */
    char *path; /* "/" when the URL has none; includes any query */
    char port[6];
} chat__http_url;

/* Parse "http://host[:port][/path]". @return CHAT_OK, CHAT_EINVAL (with a message), CHAT_ENOMEM. */
int chat__http_url_parse(chat__http_url *out, const char *url);
void chat__http_url_clear(chat__http_url *u);

/* Lets another thread cut a request short: abort sets stop and shuts the socket down, which
 * wakes any blocked connect-wait, send or recv at once. */
typedef struct chat__http_abort {
    pthread_mutex_t mu;
    int fd; /* socket in use, or -1; guarded by mu */
    atomic_int stop;
} chat__http_abort;

void chat__http_abort_init(chat__http_abort *a);
void chat__http_abort_fire(chat__http_abort *a);
void chat__http_abort_destroy(chat__http_abort *a);

/*
 * POST body as application/json with Connection: close; every phase is bounded by timeout_ms.
 * @return the HTTP status (100..599), or a negative code: CHAT_ECLOSED when no connection
 * was made (nothing sent, so safe to retry), CHAT_ETIMEDOUT, CHAT_EPROTO, CHAT_EIO.
 */
int chat__http_post(const chat__http_url *url, const char *body, size_t len, int timeout_ms,
                    chat__http_abort *abort_ctl);

#endif
