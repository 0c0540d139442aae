/* What the push service (service.c) asks of a provider: APNs (apns.c), FCM (fcm.c) or the
 * webhook (webhook.c). The service owns the queue, the thread, retries and counters; a
 * provider turns one queued notification into one HTTP request and its answer into an
 * outcome. Every method runs on the provider's thread. */
#ifndef CHAT_PUSH_PROVIDER_H
#define CHAT_PUSH_PROVIDER_H

#include "push/http.h"

#include <cjson/cJSON.h>
#include <stdint.h>

/* The service's limits a provider renders into its requests. */
typedef struct chat__push_env {
    int64_t ttl_ms; /* a notification older than this is useless: the provider may drop it */
    void (*log)(void *ud, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
    void *log_ud;
} chat__push_env;

/* One request being made: the provider fills url, body and up to 8 headers, all from the
 * libchat allocator; the service frees them. */
typedef struct chat__push_out {
    char *url;
    char *body;
    char *headers[8];
    const char *content_type; /* static, or NULL for JSON */
} chat__push_out;

/* What an answer means for the notification. */
enum {
    CHAT__PUSH_SENT = 0,    /* delivered to the provider */
    CHAT__PUSH_RETRY = 1,   /* the provider is unavailable or throttling: try again later, all of
                             * this provider's notifications with it (Retry-After honoured) */
    CHAT__PUSH_TOKEN = 2,   /* the device token is invalid: drop it and its registration */
    CHAT__PUSH_FAILED = 3,  /* refused for good (a bad request, our credentials): drop it */
    CHAT__PUSH_REAUTH = 4   /* our credentials expired: renew them, then retry */
};

typedef struct chat__push_provider {
    const char *name;
    /* Before a batch: make the credentials current (may fetch, e.g. an OAuth token).
     * @return CHAT_OK, or anything else to retry the whole batch later. */
    int (*refresh)(void *p, chat__http *http, int64_t now_ms);
    /* The request for ev (the queued event parsed; ev_text the JSON text it came from, whose
     * 64-bit integers are exact; count: events merged into it; created_ms: the first one's
     * arrival). @return CHAT_OK, or CHAT_EINVAL to drop it as failed. */
    int (*prepare)(void *p, const cJSON *ev, const char *ev_text, int64_t count,
                   int64_t created_ms, chat__push_out *out, int64_t now_ms);
    /* The outcome of an answer (or of no answer: r->error). */
    int (*classify)(void *p, const chat__http_req *r);
    /* Forget the credentials (a REAUTH answer). */
    void (*expire)(void *p);
    void (*free)(void *p);
} chat__push_provider;

/* Constructors: the provider state and its table, or a negative chat_status (with a message
 * naming what is wrong in the configuration). */
typedef struct chat__push_apns_conf {
    const char *key_file, *key_id, *team_id, *topic;
    const char *production_url, *sandbox_url;
} chat__push_apns_conf;
int chat__push_apns_new(void **out, const chat__push_provider **ops,
                        const chat__push_apns_conf *conf, const chat__push_env *env);

typedef struct chat__push_fcm_conf {
    const char *service_account_file, *send_url, *token_uri;
} chat__push_fcm_conf;
int chat__push_fcm_new(void **out, const chat__push_provider **ops,
                       const chat__push_fcm_conf *conf, const chat__push_env *env);

int chat__push_webhook_new(void **out, const chat__push_provider **ops, const char *url,
                           const unsigned char *secret, size_t secret_len,
                           const chat__push_env *env);

/* The webhook's signature: hex(HMAC-SHA256(secret, "<t>.<body>")) into out[65]. */
int chat__push_webhook_sign(char out[65], const unsigned char *secret, size_t secret_len,
                            int64_t t, const char *body, size_t body_len);

/* Helpers shared by the providers. */
/* A JSON field as text: the string, or "" when absent or not a string. */
const char *chat__push_str(const cJSON *ev, const char *key);
/* A JSON number field as an integer, 0 when absent. */
int64_t chat__push_int(const cJSON *ev, const char *key);
/* The alert a person reads: a title (the group, or the sender of a direct message) and a body
 * (the preview when the server sends previews, else a count of new messages). */
void chat__push_alert(const cJSON *ev, int64_t count, char *title, size_t title_size, char *body,
                      size_t body_size);
/* printf into a fresh string from the libchat allocator; NULL on ENOMEM. */
char *chat__push_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
