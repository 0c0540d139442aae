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

/**
 * A notifier that POSTs each event as JSON to url ("http://host[:port]/path"; https is left to a
 * local gateway) from a thread of its own, with a bounded queue (events beyond it are dropped
 * and counted) and a per-request timeout.
 * @return CHAT_OK, CHAT_EINVAL (bad URL), CHAT_ENOMEM, CHAT_ERROR (thread). @since 0.1
 */
CHAT_API int chat_push_webhook_new(void **state_out, const char *url);
/** The webhook notifier's vtable, static. @since 0.1 */
CHAT_API const chat_push_ops *chat_push_webhook_ops(void);

CHAT_END_DECLS

#endif /* CHAT_SYS_PUSH_H */
