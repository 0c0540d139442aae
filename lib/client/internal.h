/* Internals of the client engine, shared by client.c (the loop thread), api.c (public entry
 * points) and event.c (events and the queue). */
#ifndef CHAT_CLIENT_INTERNAL_H
#define CHAT_CLIENT_INTERNAL_H

#include "chat/client.h"
#include "chat/sys/client_transport.h"
#include "client/cache.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>

struct chat_client_config {
    char *url, *token, *user, *password, *device, *cache_path;
    int64_t backoff_base_ms, backoff_max_ms, hb_interval_ms, hb_timeout_ms;
    chat_log_cb log_cb;
    int log_level;
    void *log_ud;
    chat_client_event_cb ev_cb;
    void *ev_ud;
    void (*ev_destroy)(void *);
    int queue_enabled, auto_delivered;
    const chat_client_transport_ops *tops;
    void *tstate;
    char *ca_file; /* PEM CAs for wss:// with the default transport; NULL: system store */
};

/* ws.c: trust the CAs of this PEM file (NULL: the system's) for wss:// on the default
 * transport's state. @return CHAT_OK, CHAT_ENOMEM. */
int chat__client_ws_set_ca_file(void *state, const char *path);

struct chat_event {
    int type;
    chat_conv_id conv;
    uint64_t seq, request, delivered, read;
    int64_t ts, last_seen, retry_ms;
    int code, kind, active, more;
    size_t count, text_len;
    char *user, *device, *cmid, *text, *json, *message;
    struct chat_event *next;
};

/* Work posted by any thread to the loop thread. */
enum {
    CMD_FLUSH = 1,      /* the outbox has new entries */
    CMD_FRAME = 2,      /* send body (a request) when online: completes `request`; seq is
                         * the pending request's `after` */
    CMD_TYPING = 3,     /* send body when online, else drop */
    CMD_READ = 4,       /* send a read receipt for conv up to seq */
    CMD_RECONNECT = 5,  /* connect now */
    CMD_DISCONNECT = 6, /* drop the connection */
    CMD_HISTORY = 7,    /* fetch history of conv before seq (limit) */
    CMD_PUSH = 8,       /* body: a push_register frame to keep sending, or NULL: unregister */
};

typedef struct chat__cmd {
    int type;
    uint64_t request, seq;
    chat_conv_id conv;
    int limit;
    int kind;    /* CMD_FRAME: what answers it (PEND_*) */
    cJSON *body; /* CMD_FRAME / CMD_TYPING, without id */
    struct chat__cmd *next;
} chat__cmd;

/* What an outstanding request id is waiting for. */
enum {
    PEND_AUTH = 1,
    PEND_CONVS = 2,
    PEND_HISTORY_SYNC = 3, /* sync: forward pages */
    PEND_HISTORY_USER = 4, /* chat_client_history: one page */
    PEND_SEND = 5,
    PEND_RECEIPT = 6,
    PEND_GROUP = 7,
    PEND_PRESENCE = 8,
    PEND_PING = 9,
    PEND_MEDIA_URL = 10, /* chat_client_media_url: RESULT with the answer as json */
    PEND_PUSH = 11,      /* push_register (after 0) or push_unregister (after 1): "ok" */
    PEND_MUTE = 12,      /* mute of conv until (int64_t)after: "ok", then RESULT */
    PEND_CHANGE = 13,    /* an edit, delete, reaction or timer: RESULT with its seq */
    PEND_JSON = 14,      /* a search, a thread's page or receipt: RESULT with the answer as
                          * json (a page's messages stored) */
};

typedef struct chat__pend {
    uint64_t id; /* the wire id (decimal) */
    int kind;
    uint64_t request, after;
    chat_conv_id conv;
    char *cmid;
    struct chat__pend *next;
} chat__pend;

typedef struct chat__fetch {
    chat_conv_id conv;
    uint64_t after;
} chat__fetch;

struct chat_client {
    /* immutable after new */
    char *url, *password, *login_user, *device;
    int64_t backoff_base_ms, backoff_max_ms, hb_interval_ms, hb_timeout_ms;
    chat_log_cb log_cb;
    int log_level;
    void *log_ud;
    chat_client_event_cb ev_cb;
    void *ev_ud;
    void (*ev_destroy)(void *);
    int queue_enabled, auto_delivered;
    const chat_client_transport_ops *tops;
    void *tstate;
    chat__cache *cache;
    char *ca_file; /* PEM CAs for https:// media transfers (media.c); NULL: system store */

    /* lifecycle */
    pthread_mutex_t life_mu;
    pthread_t thread;
    int running;
    atomic_int stop;
    pthread_t loop_tid;
    atomic_int loop_tid_valid;
    atomic_int state;
    atomic_uint_fast64_t next_request;

    /* commands (any thread -> loop) */
    pthread_mutex_t cmd_mu;
    chat__cmd *cmd_head, *cmd_tail;
    char *token; /* under cmd_mu: set_token may replace it */

    /* event queue */
    pthread_mutex_t ev_mu;
    pthread_cond_t ev_cond;
    chat_event *ev_head, *ev_tail;
    int ev_fd;

    /* me: under cmd_mu (written by the loop thread on auth_ok, read by any thread) */
    char *me;

    /* loop thread only */
    int connected;      /* transport connected (before auth) */
    int online;         /* authenticated */
    int failures;
    int auth_failed;
    int64_t next_attempt_ms;
    int64_t attempt_deadline_ms;
    int64_t last_rx_ms, ping_sent_ms;
    uint64_t next_id;
    chat__pend *pend;
    int syncing;
    uint64_t sync_cursor; /* cursor of the convs page being processed */
    int sync_more;
    int sync_first;       /* the cache has never completed a sync (no "synced" mark) */
    chat__fetch *fetch;
    size_t n_fetch, cap_fetch;
    int fetch_inflight;
    int send_inflight;
    int64_t send_retry_at_ms;
    int64_t expire_check_ms; /* next look for cached messages past their expiry */
    int64_t resync_at_ms; /* a catch-up the server asked for is due then (0: none) */
    /* The device's push registration, sent after every authentication so the server always has
     * the newest token, or an unregistration waiting for its "ok"; and the request the next
     * sending of either completes (0: none). */
    cJSON *push_frame;
    int push_unreg;
    uint64_t push_request;
};

/* event.c */
chat_event *chat__event_new(int type);
int chat__event_set_str(char **dst, const char *s);
/* Deliver ev (taking it): callback, then queue (or free). [loop thread] */
void chat__event_emit(chat_client *c, chat_event *ev);
void chat__event_queue_clear(chat_client *c);

/* client.c */
void *chat__client_loop(void *arg);
void chat__client_log(chat_client *c, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int chat__client_post(chat_client *c, chat__cmd *cmd);
int64_t chat__mono_ms(void);
/* A copy of me (NULL when unknown), under cmd_mu. */
char *chat__client_me(chat_client *c);

#endif
