/**
 * @file client.h
 * @brief The client engine: connection, offline-first cache with an outbox, sync, events.
 *
 * A host builds a ::chat_client_config (server URL, credentials, cache file), creates a
 * ::chat_client, and starts it: the client then owns one **loop thread** that connects,
 * authenticates, syncs, flushes the outbox, reconnects with exponential backoff and jitter, and
 * reports everything as ::chat_event values, delivered as callbacks on the loop thread and/or
 * through a poll-style queue (chat_client_event_fd / chat_client_next_event /
 * chat_client_wait_event). See doc/client.md for the embedding guide.
 *
 * Thread tags: [any thread] calls may be made from any thread, concurrently, at any time
 * between chat_client_new() and chat_client_free() (they lock the cache or post work to the
 * loop thread and wake it); [not loop thread] calls must not be made from an event callback.
 *
 * Output parameters come first. Strings returned through `char **out` are freed with
 * chat_string_free(); lists and events with their own *_free.
 */
#ifndef CHAT_CLIENT_H
#define CHAT_CLIENT_H

#include "common.h"
#include "types.h"

CHAT_BEGIN_DECLS


/** Connection states; chat_client_state(). */
typedef enum chat_conn_state {
    CHAT_CONN_STOPPED = 0,     /**< not started, or stopped */
    CHAT_CONN_OFFLINE = 1,     /**< waiting to (re)connect (backoff) */
    CHAT_CONN_CONNECTING = 2,  /**< connecting or authenticating */
    CHAT_CONN_ONLINE = 3,      /**< authenticated (sync may still run) */
    CHAT_CONN_AUTH_FAILED = 4  /**< credentials refused; no retry until chat_client_set_token */
} chat_conn_state;

/** Event types; chat_event_type(). Getters that do not apply to a type return 0 / NULL. */
typedef enum chat_client_event_type {
    CHAT_EVENT_CONNECTING = 1,  /**< a connection attempt started */
    CHAT_EVENT_ONLINE = 2,      /**< authenticated; user(), device() */
    CHAT_EVENT_OFFLINE = 3,     /**< connection lost or failed: code() (a ::chat_status),
                                     message(), retry_ms() until the next attempt */
    CHAT_EVENT_AUTH_FAILED = 4, /**< credentials refused: code(), message() */
    CHAT_EVENT_SYNCED = 5,      /**< the resume after a connect finished; the outbox flushes */
    CHAT_EVENT_MESSAGE = 6,     /**< a new message was stored in the cache, live or by the
                                     sync (not pages fetched by chat_client_history): conv, seq,
                                     ts, user (sender), device, cmid, kind, text, json */
    CHAT_EVENT_SENT = 7,        /**< an outbox message was acked: cmid, conv, seq, ts */
    CHAT_EVENT_SEND_FAILED = 8, /**< the server refused an outbox message for good: cmid,
                                     code, message; it leaves the outbox (status FAILED) */
    CHAT_EVENT_RECEIPT = 9,     /**< a watermark moved: conv, user, delivered, read */
    CHAT_EVENT_CONV = 10,       /**< a conversation's metadata changed (new, title, members,
                                     role, unread): conv */
    CHAT_EVENT_TYPING = 11,     /**< conv, user, active() */
    CHAT_EVENT_PRESENCE = 12,   /**< user, active() (1 online), last_seen_ms() (0 = unknown) */
    CHAT_EVENT_HISTORY = 13,    /**< a history fetch completed: request, conv, code, count(),
                                     more() */
    CHAT_EVENT_RESULT = 14,     /**< completion of a request (group ops, presence query,
                                     typing, edits, deletes, reactions, searches): request,
                                     code, message, conv, seq, json (searches, threads) */
    /** A cached message changed: conv, seq (the message), user (who changed it), kind: an edit
     *  (CHAT_MSG_EDIT: text is the new text), a delete for everyone (CHAT_MSG_DELETE), a
     *  reaction (CHAT_MSG_REACT: text is the emoji, active() 1 on, 0 off); CHAT_MSG_EVENT with
     *  seq 0: every message of user in conv was erased (the account was deleted). Read the
     *  message's state from chat_client_history(). @since 0.2 */
    CHAT_EVENT_UPDATED = 15,
    /** A message expired (disappearing messages, retention) and was dropped from the cache:
     *  conv, seq. @since 0.2 */
    CHAT_EVENT_EXPIRED = 16
} chat_client_event_type;

/** Status of one of my messages; chat_msg_list_status(), chat_client_message_status(). */
typedef enum chat_msg_status {
    CHAT_MSG_STATUS_NONE = 0,      /**< not mine (or unknown) */
    CHAT_MSG_STATUS_SENDING = 1,   /**< in the outbox */
    CHAT_MSG_STATUS_SENT = 2,      /**< acked by the server (stored) */
    CHAT_MSG_STATUS_DELIVERED = 3, /**< every other member's delivered watermark reached it */
    CHAT_MSG_STATUS_READ = 4,      /**< every other member's read watermark reached it */
    CHAT_MSG_STATUS_FAILED = 5     /**< refused by the server (see CHAT_EVENT_SEND_FAILED) */
} chat_msg_status;

/** Event callback. [loop thread] ev is borrowed for the call; must not block nor free c. */
typedef void (*chat_client_event_cb)(chat_client *c, const chat_event *ev, void *user_data);

/* ---- configuration ---------------------------------------------------------------------- */

/** New configuration with defaults. @return CHAT_OK, CHAT_EINVAL, CHAT_ENOMEM. [any thread]
 * @since 0.1 */
CHAT_API int chat_client_config_new(chat_client_config **out);
/** Accepts NULL; destroys a transport state handed over and not used. @since 0.1 */
CHAT_API void chat_client_config_free(chat_client_config *cfg);

/** Server URL, "ws://host:port/" (required). @return CHAT_OK, CHAT_EINVAL. @since 0.1 */
CHAT_API int chat_client_config_set_server(chat_client_config *cfg, const char *url);
/** Authenticate with a token (from chat_server_issue_token or a previous login).
 * @return CHAT_OK, CHAT_EINVAL. @since 0.1 */
CHAT_API int chat_client_config_set_token(chat_client_config *cfg, const char *token);
/**
 * Authenticate with user/password/device ("login"). The token the server returns is kept in
 * the cache and used for later connections; chat_client_token() reads it.
 * @return CHAT_OK, CHAT_EINVAL. @since 0.1
 */
CHAT_API int chat_client_config_set_login(chat_client_config *cfg, const char *user,
                                          const char *password, const char *device);
/**
 * Path of the SQLite cache file (created if missing; its directory must exist). NULL (the
 * default) keeps the cache in memory: nothing, not even the outbox, survives
 * chat_client_free().
 * @return CHAT_OK, CHAT_ENOMEM. @since 0.1
 */
CHAT_API int chat_client_config_set_cache_path(chat_client_config *cfg, const char *path);
/**
 * For wss:// URLs on the default transport: trust the CA certificates of this PEM file instead
 * of the system's trust store (NULL, the default: the system's, as OpenSSL finds it). The
 * server's certificate chain must lead to one of them and name the URL's host (an IP literal
 * must be one of the certificate's IP addresses). A server that fails this is never talked to:
 * the attempt ends with ::CHAT_EVENT_OFFLINE, code CHAT_ECLOSED and a message starting
 * "closed (1015): TLS", and the client retries with backoff. The file is read at the
 * first wss:// connection and kept. Ignored by a custom transport
 * (chat_client_config_set_transport). Media transfers of a wss:// client (and downloads of
 * https:// URLs) verify their server the same way, with this file, custom transport or not.
 * @return CHAT_OK, CHAT_EINVAL (empty path), CHAT_ENOMEM. @since 0.2
 */
CHAT_API int chat_client_config_set_ca_file(chat_client_config *cfg, const char *path);
/**
 * Reconnect backoff: the n-th consecutive failure waits a uniformly random time in
 * [d/2, d] where d = min(max_ms, base_ms * 2^(n-1)). Defaults 500 ms and 30000 ms.
 * @return CHAT_OK, CHAT_EINVAL (base_ms < 1 or max_ms < base_ms). @since 0.1
 */
CHAT_API int chat_client_config_set_backoff(chat_client_config *cfg, int64_t base_ms,
                                            int64_t max_ms);
/**
 * Heartbeat: after interval_ms without any frame from the server the client sends a protocol
 * "ping"; with no answer within timeout_ms it drops the connection and reconnects. Also the
 * bound of a connection attempt (TCP + upgrade + auth). Defaults 15000 and 10000 ms.
 * @return CHAT_OK, CHAT_EINVAL. @since 0.1
 */
CHAT_API int chat_client_config_set_heartbeat(chat_client_config *cfg, int64_t interval_ms,
                                              int64_t timeout_ms);
/** Log sink (default: none). @return CHAT_OK. @since 0.1 */
CHAT_API int chat_client_config_set_log(chat_client_config *cfg, chat_log_cb cb, int max_level,
                                        void *user_data);
/**
 * Event callback, called on the loop thread for every event (in addition to the queue unless
 * it is disabled). destroy (may be NULL) is called once with user_data when the client or
 * the config is freed, or when replaced. @return CHAT_OK. @since 0.1
 */
CHAT_API int chat_client_config_set_event_cb(chat_client_config *cfg, chat_client_event_cb cb,
                                             void *user_data, void (*destroy)(void *user_data));
/** Enable (default) or disable the event queue; disable it when only callbacks are used, or
 * events accumulate. @return CHAT_OK. @since 0.1 */
CHAT_API int chat_client_config_set_event_queue(chat_client_config *cfg, int enabled);
/** Send delivered receipts automatically for received messages (default 1). @since 0.1 */
CHAT_API int chat_client_config_set_auto_delivered(chat_client_config *cfg, int enabled);
/**
 * Replace the default WebSocket transport. Ownership of state passes to libchat on every
 * call, even a failing one. @return CHAT_OK, CHAT_EVERSION, CHAT_EINVAL (a required method
 * missing). @since 0.1
 */
CHAT_API int chat_client_config_set_transport(chat_client_config *cfg,
                                              const chat_client_transport_ops *ops,
                                              void *state);

/* ---- lifecycle -------------------------------------------------------------------------- */

/**
 * Create a client from cfg (copied; a transport moves into the client). Opens (or creates) the
 * cache; the network is not touched until chat_client_start().
 * @return CHAT_OK, CHAT_EINVAL (no server URL or credentials), CHAT_ENOMEM, CHAT_EIO (cache),
 * CHAT_EVERSION (cache schema newer than this library). [any thread] @since 0.1
 */
CHAT_API int chat_client_new(chat_client **out, chat_client_config *cfg);
/** Start the loop thread, which connects at once. @return CHAT_OK, CHAT_EMISUSE (running),
 * CHAT_ERROR (thread). [not loop thread] @since 0.1 */
CHAT_API int chat_client_start(chat_client *c);
/** Disconnect and join the loop thread. Pending requests complete with CHAT_ECLOSED; the outbox
 * stays in the cache. @return CHAT_OK, CHAT_EMISUSE (from the loop thread). [not loop thread]
 * @since 0.1 */
CHAT_API int chat_client_stop(chat_client *c);
/** Accepts NULL. Stops first if needed, then frees everything. Queued events are dropped.
 * [not loop thread] @since 0.1 */
CHAT_API void chat_client_free(chat_client *c);

/** The current ::chat_conn_state. [any thread] @since 0.1 */
CHAT_API int chat_client_state(const chat_client *c);
/** Skip the backoff wait and connect now (also after AUTH_FAILED). [any thread] @since 0.1 */
CHAT_API int chat_client_reconnect_now(chat_client *c);
/** Replace the token (e.g. after AUTH_FAILED) and reconnect. @return CHAT_OK, CHAT_EINVAL,
 * CHAT_ENOMEM. [any thread] @since 0.1 */
CHAT_API int chat_client_set_token(chat_client *c, const char *token);
/** Drop the connection as if the network failed (tests, "airplane mode" toggles); the client
 * reconnects after its backoff. [any thread] @since 0.1 */
CHAT_API int chat_client_disconnect(chat_client *c);

/** My user id (known once authenticated; kept in the cache). @return CHAT_OK, CHAT_ENOTFOUND,
 * CHAT_ENOMEM. [any thread] @since 0.1 */
CHAT_API int chat_client_user(char **out, chat_client *c);
/** The token in use (the one configured, or the one a login returned). @return CHAT_OK,
 * CHAT_ENOTFOUND, CHAT_ENOMEM. [any thread] @since 0.1 */
CHAT_API int chat_client_token(char **out, chat_client *c);

/* ---- sending (outbox) ------------------------------------------------------------------- */

/**
 * Send text to conversation conv. The message is written to the outbox in the cache, with a
 * fresh client message id, before this returns; the loop thread sends outbox entries in order
 * whenever online and removes one only when the server acks it (CHAT_EVENT_SENT). Resends reuse
 * the cmid, so delivery is exactly-once, across reconnects and restarts (with a cache file).
 * @param out_cmid receives the cmid (16 hex characters; free with chat_string_free), or NULL.
 * @param text UTF-8, len bytes (1..16 KiB by default), copied.
 * @return CHAT_OK, CHAT_EINVAL, CHAT_EIO (cache write). [any thread] @since 0.1
 */
CHAT_API int chat_client_send_text(char **out_cmid, chat_client *c, chat_conv_id conv,
                                   const char *text, size_t len);
/** As chat_client_send_text(), to the direct conversation with user (created by the server on
 * the first send; the ack names it). [any thread] @since 0.1 */
CHAT_API int chat_client_send_text_to(char **out_cmid, chat_client *c, const char *user,
                                      const char *text, size_t len);
/**
 * As chat_client_send_text(), as a reply to message reply_seq (0: none) and/or in the thread
 * whose root is thread_seq (0: the main conversation) of conv; the server checks both when the
 * message goes out (a refusal is a CHAT_EVENT_SEND_FAILED). [any thread] @since 0.2
 */
CHAT_API int chat_client_send_reply(char **out_cmid, chat_client *c, chat_conv_id conv,
                                    uint64_t reply_seq, uint64_t thread_seq, const char *text,
                                    size_t len);
/** Number of messages waiting in the outbox. @return CHAT_OK, CHAT_EIO. [any thread]
 * @since 0.1 */
CHAT_API int chat_client_outbox_count(size_t *out, chat_client *c);

/* ---- media (doc/media.md) --------------------------------------------------------------- */

/**
 * Progress of a transfer: done of total bytes. [the calling thread] A non-zero return aborts
 * the transfer, which then returns CHAT_EUSER and can be resumed by calling again.
 */
typedef int (*chat_progress_cb)(uint64_t done, uint64_t total, void *user_data);

/**
 * Upload the file at path to the server the client connects to (ws://HOST:PORT → http://
 * HOST:PORT/media/uploads, wss:// → https:// verified like the transport, see
 * chat_client_config_set_ca_file) with the client's token, streamed, and return its media id. An
 * upload of the same file (path, size, modification time) that was interrupted before, even by
 * a crash, resumes from where the server stands; a connection dropped during this call is
 * resumed up to 3 times. Blocks until done.
 * @param out_media_id receives the media id; free with chat_string_free().
 * @param mime the media type, or NULL for application/octet-stream.
 * @param cb optional progress callback.
 * @return CHAT_OK, CHAT_EINVAL, CHAT_EIO (file or network; a server certificate not trusted:
 *         message "TLS: server certificate not trusted: ..."), CHAT_EAUTH (no or refused
 *         token), CHAT_ELIMIT (over the server's size limit), CHAT_ENOTSUP (media off),
 *         CHAT_EUSER (cb aborted). [any thread but the loop thread] @since 0.2
 */
CHAT_API int chat_client_upload_file(char **out_media_id, chat_client *c, const char *path,
                                     const char *mime, chat_progress_cb cb, void *user_data);

/**
 * Queue a media message to conversation conv (or the direct conversation with user), sent
 * exactly once like a text. media_json is the media object of the protocol:
 * {"id","mime","size","name"} and optionally "width", "height", "duration_ms".
 * @return CHAT_OK, CHAT_EINVAL, CHAT_EIO. [any thread] @since 0.2
 */
CHAT_API int chat_client_send_media(char **out_cmid, chat_client *c, chat_conv_id conv,
                                    const char *media_json);
/** As chat_client_send_media(), to the direct conversation with user. [any thread] @since 0.2 */
CHAT_API int chat_client_send_media_to(char **out_cmid, chat_client *c, const char *user,
                                       const char *media_json);

/**
 * Ask for a signed download URL of media_id. Completes with one CHAT_EVENT_RESULT for
 * out_request whose json() is the server's answer ({"url","expires","mime","size","name"}),
 * or whose code is the refusal (CHAT_EPERM, CHAT_ENOTFOUND; CHAT_ECLOSED when offline).
 * [any thread] @since 0.2
 */
CHAT_API int chat_client_media_url(uint64_t *out_request, chat_client *c, const char *media_id);

/**
 * Download url (the "url" of a media_url answer, relative to the server, or an absolute
 * http:// or https:// URL; TLS is verified like the transport's) into path. Bytes go to path + ".part" first; a .part left by an interrupted
 * download is continued with a Range request. When media_id is not NULL the content's BLAKE2b
 * must equal it (else CHAT_EPROTO and the .part is removed). path appears only when complete.
 * @return CHAT_OK, CHAT_EINVAL, CHAT_EIO (network, TLS: then no .part is left when there was
 *         none), CHAT_EAUTH (URL refused or expired), CHAT_ENOTFOUND,
 *         CHAT_EPROTO, CHAT_EUSER (cb aborted). [any thread but the loop thread] @since 0.2
 */
CHAT_API int chat_client_download(chat_client *c, const char *url, const char *media_id,
                                  const char *path, chat_progress_cb cb, void *user_data);

/* ---- receipts, typing, presence --------------------------------------------------------- */

/**
 * Mark conv read up to seq: updates the cache at once (unread) and sends a read receipt when
 * online (or after the next connect). Watermarks only move forward. [any thread] @since 0.1
 * @return CHAT_OK, CHAT_EINVAL, CHAT_ENOTFOUND (conversation not in the cache).
 */
CHAT_API int chat_client_mark_read(chat_client *c, chat_conv_id conv, uint64_t seq);
/** Typing indicator start (active 1) or stop (0); dropped when offline (never queued).
 * [any thread] @since 0.1 */
CHAT_API int chat_client_typing(chat_client *c, chat_conv_id conv, int active);
/** Ask for the presence of users: CHAT_EVENT_PRESENCE per known contact, then one
 * CHAT_EVENT_RESULT. @param out_request receives the request id (or NULL). [any thread]
 * @since 0.1 */
CHAT_API int chat_client_presence_query(uint64_t *out_request, chat_client *c,
                                        const char *const *users, size_t n_users);

/* ---- groups (completion: one CHAT_EVENT_RESULT per request; ECLOSED when offline) ------ */

/** Create a group; RESULT carries the new conv. [any thread] @since 0.1 */
CHAT_API int chat_client_group_create(uint64_t *out_request, chat_client *c, const char *title,
                                      const char *const *members, size_t n_members);
/**
 * Create a group under a client id the host chose and keeps (1-64 printable ASCII, no space), so
 * the call can be repeated after an ECLOSED or lost RESULT: the server answers the group the first
 * call created (this user and device), and creates no second one. @return CHAT_EINVAL for a bad
 * cmid, else as chat_client_group_create. [any thread] @since 0.2
 */
CHAT_API int chat_client_group_create_id(uint64_t *out_request, chat_client *c, const char *cmid,
                                         const char *title, const char *const *members,
                                         size_t n_members);
/** [any thread] @since 0.1 */
CHAT_API int chat_client_group_add(uint64_t *out_request, chat_client *c, chat_conv_id conv,
                                   const char *const *users, size_t n_users);
/** [any thread] @since 0.1 */
CHAT_API int chat_client_group_remove(uint64_t *out_request, chat_client *c, chat_conv_id conv,
                                      const char *const *users, size_t n_users);
/** [any thread] @since 0.1 */
CHAT_API int chat_client_group_leave(uint64_t *out_request, chat_client *c, chat_conv_id conv);
/** [any thread] @since 0.1 */
CHAT_API int chat_client_group_rename(uint64_t *out_request, chat_client *c, chat_conv_id conv,
                                      const char *title);
/** role: CHAT_ROLE_MEMBER, _ADMIN or _OWNER. [any thread] @since 0.1 */
CHAT_API int chat_client_group_set_role(uint64_t *out_request, chat_client *c,
                                        chat_conv_id conv, const char *user, int role);

/* ---- push notifications (doc/push.md) ----------------------------------------------------- */

/** Longest push token chat_client_push_register() accepts, in bytes. */
#define CHAT_CLIENT_PUSH_TOKEN_MAX 512

/**
 * Register this device for push notifications while it is offline: platform "apns" (token: the
 * device token in hex; topic: the app's bundle id, NULL or "" for the server's default;
 * sandbox 1 for the development environment) or "fcm" (token: the registration token; topic
 * and sandbox unused). The client keeps the registration and sends it after every connect, so
 * call it again whenever the platform hands the app a new token; a later call replaces an
 * earlier one. Completes with one CHAT_EVENT_RESULT when the server stored it (offline: at the
 * next connect); ECLOSED when the connection dropped first (it is sent again at the next
 * connect), ENOTSUP when the server keeps no registrations, EINVAL when it refused the token.
 * @return CHAT_OK, CHAT_EINVAL (platform, token or topic malformed), CHAT_ENOMEM.
 * [any thread] @since 0.2
 */
CHAT_API int chat_client_push_register(uint64_t *out_request, chat_client *c,
                                       const char *platform, const char *token,
                                       const char *topic, int sandbox);
/**
 * Stop push notifications to this device (call it before logging out). Sent now, or at the next
 * connect when offline; one CHAT_EVENT_RESULT when the server answered. [any thread] @since 0.2
 */
CHAT_API int chat_client_push_unregister(uint64_t *out_request, chat_client *c);
/**
 * Mute conv for this user (every device of it) until until_ms (ms since the epoch), INT64_MAX
 * until unmuted; 0 unmutes. A muted conversation makes no push; messages still arrive. Other
 * devices learn of it live (CHAT_EVENT_CONV) and at their next sync. One CHAT_EVENT_RESULT;
 * ECLOSED when offline, EPERM when not a member.
 * @return CHAT_OK, CHAT_EINVAL. [any thread] @since 0.2
 */
CHAT_API int chat_client_mute(uint64_t *out_request, chat_client *c, chat_conv_id conv,
                              int64_t until_ms);

/* ---- changing sent messages, timers, search (completion: one CHAT_EVENT_RESULT per request;
 *      ECLOSED when offline; doc/protocol.md for the rules and refusals) ------------------- */

/** Edit my text message seq of conv (text: UTF-8, len bytes, copied). Members' caches (mine
 * too) then show the new text: CHAT_EVENT_UPDATED. [any thread] @since 0.2 */
CHAT_API int chat_client_edit(uint64_t *out_request, chat_client *c, chat_conv_id conv, uint64_t seq,
                              const char *text, size_t len);
/** Delete message seq of conv for everyone: it becomes a tombstone in every cache
 * (chat_msg_list_deleted). [any thread] @since 0.2 */
CHAT_API int chat_client_delete(uint64_t *out_request, chat_client *c, chat_conv_id conv,
                                uint64_t seq);
/** Put my reaction emoji on message seq of conv (on 1) or take it off (on 0). [any thread]
 * @since 0.2 */
CHAT_API int chat_client_react(uint64_t *out_request, chat_client *c, chat_conv_id conv,
                               uint64_t seq, const char *emoji, int on);
/** Disappearing messages: messages sent to conv from now on expire ttl_ms after they were sent
 * (0: never). [any thread] @since 0.2 */
CHAT_API int chat_client_set_timer(uint64_t *out_request, chat_client *c, chat_conv_id conv,
                                   int64_t ttl_ms);
/** Mark the thread of root seq of conv read up to seq (its own watermark; the main
 * conversation's unread never counts thread replies). [any thread] @since 0.2 */
CHAT_API int chat_client_mark_thread_read(uint64_t *out_request, chat_client *c, chat_conv_id conv,
                                          uint64_t root, uint64_t seq);
/**
 * Fetch a page of the thread of message root of conv from the server (replies after
 * after_seq, at most limit): the RESULT's json() is the server's history answer (with "root"
 * and "unread"), and the replies are stored in the cache. [any thread] @since 0.2
 */
CHAT_API int chat_client_thread(uint64_t *out_request, chat_client *c, chat_conv_id conv,
                                uint64_t root, uint64_t after_seq, int limit);
/**
 * Search the server for messages holding every word of query, in all my conversations (conv 0)
 * or in conv, newest first, at most limit (1..200), older than cursor before (0: from the
 * newest). The RESULT's json() is the server's answer: {"messages":[…],"more":…,"cursor":…};
 * pass "cursor" as before for the next page. [any thread] @since 0.2
 */
CHAT_API int chat_client_search(uint64_t *out_request, chat_client *c, const char *query,
                                chat_conv_id conv, uint64_t before, int limit);
/**
 * Search the cache (offline, no request): the cached text messages holding every word of query
 * (and media messages by file name), in conv (0: all), as they are now (never deleted or
 * expired ones), most recently cached first, at most limit (1..200). Whole words, case and
 * accents not minded.
 * @return CHAT_OK, CHAT_EINVAL, CHAT_ENOMEM, CHAT_EIO. [any thread] @since 0.2
 */
CHAT_API int chat_client_search_local(chat_msg_list **out, chat_client *c, const char *query,
                                      chat_conv_id conv, int limit);

/* ---- reading the cache (synchronous) ---------------------------------------------------- */

/** The cached conversations, most recent activity first. [any thread] @since 0.1
 * @return CHAT_OK, CHAT_ENOMEM, CHAT_EIO. */
CHAT_API int chat_client_convs(chat_conv_list **out, chat_client *c);
/**
 * @name Conversation list getters
 * Entry i (i < count) of a list from chat_client_convs(). [any thread] @since 0.1
 * @{
 */
CHAT_API size_t chat_conv_list_count(const chat_conv_list *l);
CHAT_API chat_conv_id chat_conv_list_id(const chat_conv_list *l, size_t i);
/** ::chat_conv_kind */
CHAT_API int chat_conv_list_kind(const chat_conv_list *l, size_t i);
/** Group title ("" for direct conversations). Borrowed from l. */
CHAT_API const char *chat_conv_list_title(const chat_conv_list *l, size_t i);
/** Direct conversations: the other user; groups: "". Borrowed from l. */
CHAT_API const char *chat_conv_list_peer(const chat_conv_list *l, size_t i);
/** My ::chat_role (CHAT_ROLE_NONE after I left or was removed). */
CHAT_API int chat_conv_list_role(const chat_conv_list *l, size_t i);
CHAT_API uint64_t chat_conv_list_head(const chat_conv_list *l, size_t i);
CHAT_API uint64_t chat_conv_list_read(const chat_conv_list *l, size_t i);
CHAT_API uint64_t chat_conv_list_unread(const chat_conv_list *l, size_t i);
CHAT_API size_t chat_conv_list_member_count(const chat_conv_list *l, size_t i);
/** My mute of the conversation: 0 not muted, -1 until unmuted, else when it ends (ms since the
 *  epoch, in the future). @since 0.2 */
CHAT_API int64_t chat_conv_list_muted_until(const chat_conv_list *l, size_t i);
CHAT_API void chat_conv_list_free(chat_conv_list *l);
/** @} */

/**
 * Up to limit messages of conv with seq < before_seq (0: from the newest), ascending, from the
 * cache. If the cache lacks some of that range, the list holds the contiguous cached tail of it
 * (possibly empty), chat_msg_list_complete() is 0, and the engine fetches the rest from the
 * server: a CHAT_EVENT_HISTORY (request = *out_request) follows, after which the same call is
 * served from the cache.
 * @param out_request receives the fetch's request id, 0 when none was needed; may be NULL.
 * @return CHAT_OK, CHAT_EINVAL, CHAT_ENOMEM, CHAT_EIO. [any thread] @since 0.1
 */
CHAT_API int chat_client_history(chat_msg_list **out, uint64_t *out_request, chat_client *c,
                                 chat_conv_id conv, uint64_t before_seq, int limit);
/** Messages in the outbox (status SENDING or FAILED), oldest first; seq() is 0, conv() 0 when
 * sent to a user. [any thread] @since 0.1 */
CHAT_API int chat_client_outbox(chat_msg_list **out, chat_client *c);
/**
 * @name Message list getters
 * Entry i (i < count) of a list from chat_client_history() or chat_client_outbox().
 * [any thread] @since 0.1
 * @{
 */
CHAT_API size_t chat_msg_list_count(const chat_msg_list *l);
/** 1 when the list covers the whole range asked for (or reaches the conversation's start). */
CHAT_API int chat_msg_list_complete(const chat_msg_list *l);
CHAT_API chat_conv_id chat_msg_list_conv(const chat_msg_list *l, size_t i);
CHAT_API uint64_t chat_msg_list_seq(const chat_msg_list *l, size_t i);
CHAT_API int64_t chat_msg_list_ts_ms(const chat_msg_list *l, size_t i);
/** Sender's user id; borrowed from l (as are all strings below). */
CHAT_API const char *chat_msg_list_from(const chat_msg_list *l, size_t i);
CHAT_API const char *chat_msg_list_cmid(const chat_msg_list *l, size_t i);
/** ::chat_msg_kind */
CHAT_API int chat_msg_list_kind(const chat_msg_list *l, size_t i);
/** Text of a text message ("" for others), with its length in *len when len is not NULL. */
CHAT_API const char *chat_msg_list_text(const chat_msg_list *l, size_t i, size_t *len);
/** The message as its JSON wire object (media and event payloads), "" in the outbox. */
CHAT_API const char *chat_msg_list_json(const chat_msg_list *l, size_t i);
/** ::chat_msg_status for my messages, CHAT_MSG_STATUS_NONE for others'. */
CHAT_API int chat_msg_list_status(const chat_msg_list *l, size_t i);
/** How many other members have delivered / read it, out of how many (groups' N of M). */
CHAT_API size_t chat_msg_list_delivered_count(const chat_msg_list *l, size_t i);
CHAT_API size_t chat_msg_list_read_count(const chat_msg_list *l, size_t i);
CHAT_API size_t chat_msg_list_others(const chat_msg_list *l, size_t i);
/** When the message was last edited (ms), 0 never. @since 0.2 */
CHAT_API int64_t chat_msg_list_edited_ms(const chat_msg_list *l, size_t i);
/** 1 when the message was deleted for everyone: a tombstone (no text, no media). @since 0.2 */
CHAT_API int chat_msg_list_deleted(const chat_msg_list *l, size_t i);
/** When the message expires (disappearing messages), 0 never. @since 0.2 */
CHAT_API int64_t chat_msg_list_expires_ms(const chat_msg_list *l, size_t i);
/** The seq of the message it replies to, 0 none. @since 0.2 */
CHAT_API uint64_t chat_msg_list_reply_to(const chat_msg_list *l, size_t i);
/** The root of the thread it belongs to, 0 the main conversation. @since 0.2 */
CHAT_API uint64_t chat_msg_list_thread(const chat_msg_list *l, size_t i);
/** Its reactions, a JSON array [{"emoji":"👍","users":["bob","carol"]}], "" when none.
 * @since 0.2 */
CHAT_API const char *chat_msg_list_reactions(const chat_msg_list *l, size_t i);
/** How many users put reaction emoji on it. @since 0.2 */
CHAT_API size_t chat_msg_list_reaction_count(const chat_msg_list *l, size_t i,
                                             const char *emoji);
CHAT_API void chat_msg_list_free(chat_msg_list *l);
/** @} */

/**
 * Status of my message with client message id cmid, and where it landed.
 * @param out_status a ::chat_msg_status; out_conv/out_seq (may be NULL) 0 while SENDING.
 * @return CHAT_OK, CHAT_ENOTFOUND, CHAT_EIO. [any thread] @since 0.1
 */
CHAT_API int chat_client_message_status(int *out_status, chat_conv_id *out_conv,
                                        uint64_t *out_seq, chat_client *c, const char *cmid);
/** Delivered and read counts of message (conv, seq) among the other members (groups' N of M).
 * [any thread] @since 0.1 */
CHAT_API int chat_client_message_receipts(size_t *out_delivered, size_t *out_read,
                                          size_t *out_others, chat_client *c, chat_conv_id conv,
                                          uint64_t seq);

/* ---- the event queue -------------------------------------------------------------------- */

/** A file descriptor readable while events are queued (eventfd), for the host's poll loop;
 * owned by the client. @return the fd, or CHAT_ENOTSUP when the queue is disabled.
 * [any thread] @since 0.1 */
CHAT_API int chat_client_event_fd(const chat_client *c);
/** Pop the oldest queued event without blocking. @return CHAT_OK, CHAT_EAGAIN (none),
 * CHAT_ENOTSUP (queue disabled). [any thread] @since 0.1 */
CHAT_API int chat_client_next_event(chat_event **out, chat_client *c);
/** As chat_client_next_event(), waiting up to timeout_ms (-1: no limit) for one.
 * @return CHAT_OK, CHAT_ETIMEDOUT, CHAT_ENOTSUP. [any thread] @since 0.1 */
CHAT_API int chat_client_wait_event(chat_event **out, chat_client *c, int timeout_ms);
/** Accepts NULL. [any thread] @since 0.1 */
CHAT_API void chat_event_free(chat_event *ev);

/**
 * @name Event getters
 * [any thread]; strings are borrowed until chat_event_free() and never NULL ("" when absent).
 * @since 0.1
 * @{
 */

CHAT_API int chat_event_type(const chat_event *ev);
/** Static name of an event type ("message"), "unknown" otherwise. */
CHAT_API const char *chat_event_type_name(int type);
CHAT_API chat_conv_id chat_event_conv(const chat_event *ev);
CHAT_API uint64_t chat_event_seq(const chat_event *ev);
CHAT_API int64_t chat_event_ts_ms(const chat_event *ev);
/** Sender (MESSAGE), receipt owner, typist, presence user, or me (ONLINE). */
CHAT_API const char *chat_event_user(const chat_event *ev);
CHAT_API const char *chat_event_device(const chat_event *ev);
CHAT_API const char *chat_event_cmid(const chat_event *ev);
/** ::chat_msg_kind of a MESSAGE. */
CHAT_API int chat_event_kind(const chat_event *ev);
/** Text of a text MESSAGE, with its length in *len when len is not NULL. */
CHAT_API const char *chat_event_text(const chat_event *ev, size_t *len);
/** The wire frame behind the event as JSON (media and event payloads), or "". */
CHAT_API const char *chat_event_json(const chat_event *ev);
/** A ::chat_status: CHAT_OK or the failure (OFFLINE, AUTH_FAILED, SEND_FAILED, RESULT, ...). */
CHAT_API int chat_event_code(const chat_event *ev);
/** Human-readable detail or the wire error's reason. */
CHAT_API const char *chat_event_message(const chat_event *ev);
/** The request id a RESULT or HISTORY completes. */
CHAT_API uint64_t chat_event_request(const chat_event *ev);
CHAT_API uint64_t chat_event_delivered(const chat_event *ev);
CHAT_API uint64_t chat_event_read(const chat_event *ev);
/** TYPING: 1 start, 0 stop. PRESENCE: 1 online. UPDATED (a reaction): 1 on, 0 off. */
CHAT_API int chat_event_active(const chat_event *ev);
CHAT_API int64_t chat_event_last_seen_ms(const chat_event *ev);
/** OFFLINE: milliseconds until the next attempt. */
CHAT_API int64_t chat_event_retry_ms(const chat_event *ev);
/** HISTORY: messages stored by the fetch. */
CHAT_API size_t chat_event_count(const chat_event *ev);
/** HISTORY: 1 when the server has more in that direction. */
CHAT_API int chat_event_more(const chat_event *ev);
/** @} */

CHAT_END_DECLS

#endif /* CHAT_CLIENT_H */
