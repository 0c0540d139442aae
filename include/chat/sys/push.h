/**
 * @file sys/push.h
 * @brief Push-notifier backend vtable (backend-author API, stable per minor release), and the
 * built-in notifiers: a host callback, and the push service (APNs, FCM, signed webhooks).
 *
 * When a message is stored, every member of its conversation but the sender who has no device
 * online anywhere is a push recipient. With a store of version 3 (push registrations), the
 * engine first reads each recipient's mute of the conversation and registered devices on its
 * writer thread; a recipient who muted the conversation gets nothing, the others get one
 * notify() each and, from a version-2 notifier, one notify_device() per registered device.
 * With an older store, notify() alone, at once.
 * Threading: notify() and notify_device() run on the loop thread and must not block; a
 * notifier that does I/O queues the work for a thread of its own.
 */
#ifndef CHAT_SYS_PUSH_H
#define CHAT_SYS_PUSH_H

#include "../common.h"
#include "../types.h"
#include "store.h"

CHAT_BEGIN_DECLS

/** One push to one offline user. Every pointer is borrowed for the call. */
typedef struct chat_push_event {
    const char *user;     /**< recipient */
    chat_conv_id conv;
    int conv_kind;        /**< ::chat_conv_kind */
    const char *title;    /**< group title, "" for direct conversations */
    uint64_t seq;
    const char *sender;
    int msg_kind;         /**< ::chat_msg_kind */
    const char *preview;  /**< text preview, NULL when previews are disabled or not text */
    uint64_t unread;      /**< recipient's unread count in conv, this message included */
    int64_t ts_ms;
} chat_push_event;

/** The engine's side of a notifier, handed to attach(); valid until destroy. */
typedef struct chat_push_sink {
    /**
     * A provider called (platform, token) invalid (the app was removed, the token is malformed
     * or belongs to another app): the engine deletes every registration that holds it. token
     * is borrowed for the call. [any thread, until destroy returns]
     */
    void (*token_invalid)(int platform, const char *token, void *user_data);
    /** Log msg at a ::chat_log_level through the server's log callback. [any thread] */
    void (*log)(int level, const char *msg, void *user_data);
    void *user_data;
} chat_push_sink;

#define CHAT_PUSH_OPS_VERSION 2

/** ctl op libchat calls once at shutdown, before destroy: deliver what is queued (bounded in
 * time). Notifiers without a queue answer CHAT_ENOTSUP. */
#define CHAT_PUSH_CTL_FLUSH 2

struct chat_push_ops {
    unsigned int version; /**< CHAT_PUSH_OPS_VERSION */
    void (*destroy)(void *state);
    /** Queue or deliver one notification to a user. [loop thread, must not block] */
    int (*notify)(void *state, const chat_push_event *ev);
    /** Optional; unknown ops answer CHAT_ENOTSUP. */
    int (*ctl)(void *state, int op, void *arg);

    /* ---- version 2: device pushes (optional) ---- */

    /** Optional: called once, by chat_server_new, before any other method but destroy.
     *  @since 0.2 */
    int (*attach)(void *state, const chat_push_sink *sink);
    /**
     * Optional: queue a push of ev to one registered device of ev->user. dev is borrowed for
     * the call; dev->token is a secret (never log it). [loop thread, must not block]
     * @since 0.2
     */
    int (*notify_device)(void *state, const chat_push_event *ev, const chat_store_push_reg *dev);
};

/** Host callback of the callback notifier. [loop thread] Non-zero return is logged only. */
typedef int (*chat_push_cb)(const chat_push_event *ev, void *user_data);

/**
 * A notifier that calls cb for each event. destroy (may be NULL) is called once with
 * user_data when the notifier is destroyed.
 * @return CHAT_OK, CHAT_EINVAL (cb NULL), CHAT_ENOMEM. @since 0.1
 */
CHAT_API int chat_push_callback_new(void **state_out, chat_push_cb cb, void *user_data,
                                    void (*destroy)(void *user_data));
/** The callback notifier's vtable, static. @since 0.1 */
CHAT_API const chat_push_ops *chat_push_callback_ops(void);

/* ---- the push service: APNs, FCM and a signed webhook (doc/push.md) ---- */

/** Configuration of a push service: an opaque builder, copied by chat_push_service_new. */
typedef struct chat_push_config chat_push_config;

/** Limits of a push service (chat_push_config_set_limit); defaults in the comments. */
typedef enum chat_push_limit {
    CHAT_PUSH_LIMIT_QUEUE = 1,          /**< notifications waiting per provider, 100000 */
    CHAT_PUSH_LIMIT_COALESCE_MS = 2,    /**< a conversation's pushes to one device (or user) are
                                             at least this far apart; what comes meanwhile
                                             merges into one, 1000 */
    CHAT_PUSH_LIMIT_DEDUPE_MS = 3,      /**< a message pushed is not pushed again within this,
                                             600000 */
    CHAT_PUSH_LIMIT_TTL_MS = 4,         /**< a notification not delivered by then is dropped
                                             (APNs and FCM are told the same), 86400000 */
    CHAT_PUSH_LIMIT_BACKOFF_MS = 5,     /**< first wait after a provider failed, 1000; doubled
                                             per failure, with jitter */
    CHAT_PUSH_LIMIT_BACKOFF_MAX_MS = 6, /**< longest such wait, 300000 */
    CHAT_PUSH_LIMIT_TIMEOUT_MS = 7,     /**< per request, connecting included, 10000 */
    CHAT_PUSH_LIMIT_FLUSH_MS = 8,       /**< how long a stop tries to deliver what is queued,
                                             5000 */
    CHAT_PUSH_LIMIT_BATCH = 9           /**< requests in flight per provider, 64 */
} chat_push_limit;

/** @return CHAT_OK, CHAT_EINVAL, CHAT_ENOMEM. [any thread] @since 0.2 */
CHAT_API int chat_push_config_new(chat_push_config **out);
/** Accepts NULL; wipes the webhook secret. @since 0.2 */
CHAT_API void chat_push_config_free(chat_push_config *cfg);
/**
 * Keep each provider's queue in dir/push-<provider>.db (apns, fcm, webhook), so what is
 * queued survives a restart. NULL (the default): in memory, lost at a stop. @since 0.2
 */
CHAT_API int chat_push_config_set_queue_dir(chat_push_config *cfg, const char *dir);
/** PEM file of the CAs to trust for every provider instead of the system's (a private gateway,
 *  tests). NULL: the system's. @since 0.2 */
CHAT_API int chat_push_config_set_ca_file(chat_push_config *cfg, const char *path);
/**
 * Push to APNs with token-based authentication: key_file is the team's .p8 key (PEM), key_id
 * its 10-character id, team_id the team's, topic the app's bundle id, used for devices that
 * registered none (may be NULL). The key is read by chat_push_service_new.
 * @return CHAT_OK, CHAT_EINVAL (a missing argument), CHAT_ENOMEM. @since 0.2
 */
CHAT_API int chat_push_config_set_apns(chat_push_config *cfg, const char *key_file,
                                       const char *key_id, const char *team_id,
                                       const char *topic);
/** Where APNs is: production_url (default https://api.push.apple.com) and sandbox_url (default:
 *  production_url when that is set, else https://api.sandbox.push.apple.com). @since 0.2 */
CHAT_API int chat_push_config_set_apns_endpoints(chat_push_config *cfg,
                                                 const char *production_url,
                                                 const char *sandbox_url);
/** Push to FCM (HTTP v1) with a service account key file (the JSON the Firebase console gives).
 *  @since 0.2 */
CHAT_API int chat_push_config_set_fcm(chat_push_config *cfg, const char *service_account_file);
/** Where FCM is: send_url (default https://fcm.googleapis.com; requests go to
 *  send_url/v1/projects/<project>/messages:send) and token_uri (default: the key file's).
 *  @since 0.2 */
CHAT_API int chat_push_config_set_fcm_endpoints(chat_push_config *cfg, const char *send_url,
                                                const char *token_uri);
/**
 * POST each user event as JSON to url (https://, certificates verified; http:// for a gateway
 * on the same host), signed with secret (at least 16 bytes; NULL: unsigned) in the header
 * X-Libchat-Signature (doc/push.md). The secret is copied. @since 0.2
 */
CHAT_API int chat_push_config_set_webhook(chat_push_config *cfg, const char *url,
                                          const void *secret, size_t secret_len);
/** @return CHAT_OK, CHAT_EINVAL (unknown limit or value out of range). @since 0.2 */
CHAT_API int chat_push_config_set_limit(chat_push_config *cfg, int limit, int64_t value);
/** The ::chat_push_limit named name ("coalesce_ms"), or CHAT_EINVAL. @since 0.2 */
CHAT_API int chat_push_limit_by_name(const char *name);

/**
 * A push service for chat_server_config_set_push(): device events go to APNs or FCM by the
 * device's platform (a platform without credentials is skipped), user events to the webhook.
 * Keys and the service account are read here; a bad one fails now, naming the file. Each
 * configured provider gets a persistent queue, a thread (started when the server attaches it)
 * and one connection. Tokens and keys never reach the log.
 * @return CHAT_OK, CHAT_EINVAL (nothing configured, a bad key or account file), CHAT_EIO
 * (unreadable file or queue), CHAT_ENOMEM, CHAT_ERROR. [any thread] @since 0.2
 */
CHAT_API int chat_push_service_new(void **state_out, const chat_push_config *cfg);
/** The push service's vtable, static. @since 0.2 */
CHAT_API const chat_push_ops *chat_push_service_ops(void);
/**
 * The service's counters as JSON, per provider: {"apns":{"pending":0,"queued":…,"sent":…,
 * "failed":…,"retried":…,"dropped":…,"coalesced":…,"deduped":…,"invalid_tokens":…},…}; *out
 * is freed with chat_string_free. Valid while the server that owns state lives.
 * @return CHAT_OK, CHAT_EINVAL, CHAT_ENOMEM. [any thread] @since 0.2
 */
CHAT_API int chat_push_service_stats(char **out_json, void *state);

/**
 * A push service with a webhook alone, unsigned, its queue in memory: POSTs each user event as
 * JSON to url (https:// with certificate verification, or http://).
 * @return CHAT_OK, CHAT_EINVAL (bad URL), CHAT_ENOMEM, CHAT_ERROR (thread). @since 0.1
 */
CHAT_API int chat_push_webhook_new(void **state_out, const char *url);
/** The same table as chat_push_service_ops(), static. @since 0.1 */
CHAT_API const chat_push_ops *chat_push_webhook_ops(void);

CHAT_END_DECLS

#endif /* CHAT_SYS_PUSH_H */
