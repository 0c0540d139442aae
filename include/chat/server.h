/**
 * @file server.h
 * @brief The server core: configuration, lifecycle, tokens and accounts.
 *
 * A host builds a ::chat_server_config, creates a ::chat_server from it, and runs it either on
 * a libchat thread (chat_server_start / chat_server_stop) or on its own thread
 * (chat_server_run / chat_server_stop_async). See doc/api.md for the thread table.
 *
 * The backend vtables that chat_server_config_set_store() and its siblings take are declared
 * in types.h and defined in the sys/ headers: include those to write or register a backend.
 */
#ifndef CHAT_SERVER_H
#define CHAT_SERVER_H

#include "common.h"
#include "types.h"

CHAT_BEGIN_DECLS

/** Limits settable with chat_server_config_set_limit(); defaults in doc/protocol.md. */
typedef enum chat_limit {
    CHAT_LIMIT_FRAME_BYTES = 1,        /**< largest WebSocket message (reassembled), 64 KiB */
    CHAT_LIMIT_FRAGMENTS = 2,          /**< fragments per WebSocket message, 64 */
    CHAT_LIMIT_JSON_DEPTH = 3,         /**< JSON nesting depth, 16 */
    CHAT_LIMIT_BODY_BYTES = 4,         /**< text body, 16 KiB */
    CHAT_LIMIT_GROUP_MEMBERS = 5,      /**< members per group, 1024 */
    CHAT_LIMIT_OUT_QUEUE_BYTES = 6,    /**< per-connection outbound queue, 1 MiB */
    CHAT_LIMIT_AUTH_DEADLINE_MS = 7,   /**< first frame must authenticate within, 5000 */
    CHAT_LIMIT_IDLE_PING_MS = 8,       /**< ping an idle connection after, 20000 */
    CHAT_LIMIT_IDLE_HANGUP_MS = 9,     /**< drop a silent connection after, 45000 */
    CHAT_LIMIT_SEND_RATE = 10,         /**< sends per second per connection, 20 */
    CHAT_LIMIT_SEND_BURST = 11,        /**< send burst per connection, 40 */
    CHAT_LIMIT_TYPING_TTL_MS = 12,     /**< a typing indicator expires after, 5000 */
    CHAT_LIMIT_PAGE_MAX = 13,          /**< most messages or conversations in one reply, 200 */
    CHAT_LIMIT_CONNECTIONS = 14,       /**< most connections, 10000 */
    CHAT_LIMIT_OUT_QUEUE_FRAMES = 15,  /**< per-connection outbound queue, 1024 frames */
    CHAT_LIMIT_TYPING_RATE = 16,       /**< typing frames per second per connection, 2 */
    CHAT_LIMIT_MEDIA_BYTES = 17,       /**< largest media upload, 100 MiB */
    CHAT_LIMIT_MEDIA_URL_TTL_MS = 18,  /**< signed download URLs stay valid for, 3600000 */
    CHAT_LIMIT_UPLOAD_TTL_MS = 19,     /**< an unfinished upload is dropped after idling, 86400000 */
    CHAT_LIMIT_UPLOADS = 20,           /**< unfinished uploads held at once, 1000 */
    CHAT_LIMIT_WRITER_QUEUE = 21,      /**< requests waiting for the store, server-wide, 16384 */
    CHAT_LIMIT_UPLOADS_PER_USER = 22,  /**< unfinished uploads of one user, 16 */
    CHAT_LIMIT_LOGINS_PENDING = 23,    /**< logins waiting for their password check, 16 */
    CHAT_LIMIT_LOGIN_RATE = 24,        /**< failed logins per account per minute (burst), 10 */
    CHAT_LIMIT_USER_SEND_RATE = 25,    /**< sends per second per user, all connections;
                                            0 (default): 2 x CHAT_LIMIT_SEND_RATE */
    CHAT_LIMIT_USER_SEND_BURST = 26,   /**< send burst per user, all connections;
                                            0 (default): 2 x CHAT_LIMIT_SEND_BURST */
    CHAT_LIMIT_PRESENCE_RATE = 27,     /**< presence queries per second per connection
                                            (burst the same), 5 */
    CHAT_LIMIT_SETTINGS_RATE = 28,     /**< settings changes per minute per connection
                                            (burst the same), 10 */
    CHAT_LIMIT_PRESENCE_GRACE_MS = 29, /**< a user whose last device left is shown online
                                            for this long before contacts are told, 2000;
                                            a reconnect within it tells them nothing */
    CHAT_LIMIT_PRESENCE_USER_RATE = 30, /**< online/offline announcements of one user per
                                            minute (burst the same), 12; later changes wait */
    CHAT_LIMIT_COMMIT_WINDOW_US = 31,  /**< under load (two or more store requests per
                                            window), a store request waits up to this long
                                            for others to share its commit (group commit),
                                            250; 0: never. Costs latency under load only,
                                            saves CPU per request. @since 0.2 */
    CHAT_LIMIT_HEAD_HINT_MS = 32,     /**< over a bus that may lose frames (not the
                                            in-process ones), a conversation quiet for this
                                            long after a message gets a position hint to its
                                            members on other nodes, again after 4x and 16x,
                                            2000; 0: never. @since 0.2 */
    CHAT_LIMIT_EDIT_WINDOW_MS = 33,    /**< an author may edit a message this long after
                                            sending it, 900000 (15 min); 0: never. @since 0.2 */
    CHAT_LIMIT_DELETE_WINDOW_MS = 34,  /**< an author may delete a message for everyone this
                                            long after sending it, 172800000 (48 h); group
                                            owners and admins at any time. @since 0.2 */
    CHAT_LIMIT_RETENTION_MS = 35,      /**< server-wide retention: a message stored from now on
                                            expires (is erased) this long after it was sent,
                                            sooner if its conversation's timer says so;
                                            0 (default): kept. @since 0.2 */
    CHAT_LIMIT_EXPIRY_SWEEP_MS = 36,   /**< how often the expiry sweep looks for messages due,
                                            1000. @since 0.2 */
    CHAT_LIMIT_EXPIRY_BATCH = 37,      /**< most messages one sweep transaction erases, 64
                                            (more follow at once, in transactions of their
                                            own). @since 0.2 */
    CHAT_LIMIT_SEARCH_RATE = 38        /**< searches per second per connection (burst the
                                            same), 5. @since 0.2 */
} chat_limit;

/** Flags of chat_server_config_set_flags(). */
#define CHAT_SERVER_PUSH_PREVIEWS 0x1u /**< put a text preview in push events (default off) */
/** Share the listening port with other servers (processes) that set it too (SO_REUSEPORT):
 * the kernel spreads new connections over them, so a many-core host runs one server per core
 * on one port. @since 0.2 */
#define CHAT_SERVER_REUSE_PORT 0x2u
/** Keep the text an edit replaces, in the edit's own row of the store (for the host: it is
 *  never sent to clients); erased with the message when it is deleted or expires. Default
 *  off: an edit erases the text it replaces. @since 0.2 */
#define CHAT_SERVER_KEEP_EDITS 0x4u
/**
 * Write affinity between nodes (default off): a send to a conversation goes to the node chosen
 * for it among the live nodes (rendezvous hashing), which writes it, so that one node takes
 * that conversation's lock in a shared store; without an answer in time, or when that node
 * cannot take it, the send is written here. Needs a bus with requests (bus version 4, the
 * NATS bus); over another bus it does nothing. doc/cluster.md. @since 0.2
 */
#define CHAT_SERVER_AFFINITY 0x8u

/** Most reactions a server offers (chat_server_config_set_reactions). @since 0.2 */
#define CHAT_REACTIONS_MAX 32

/**
 * New configuration with defaults. @return CHAT_OK, CHAT_EINVAL, CHAT_ENOMEM. [any thread]
 * @since 0.1
 */
CHAT_API int chat_server_config_new(chat_server_config **out);
/** Accepts NULL; destroys backend states handed over and not yet used. [any thread] @since 0.1 */
CHAT_API void chat_server_config_free(chat_server_config *cfg);

/** Listen address (default "127.0.0.1") and port (default 7700; 0 picks a free port). @since 0.1 */
CHAT_API int chat_server_config_set_listen(chat_server_config *cfg, const char *address, int port);
/**
 * Data directory for the default SQLite store (chat.db) and the default blob store (media/).
 * The directory must exist: libchat creates the files in it, not the directory itself
 * (chat_server_new() fails with CHAT_EIO). Ignored when a store is set.
 * Default: none, which means a memory store.
 * @since 0.1
 */
CHAT_API int chat_server_config_set_data_dir(chat_server_config *cfg, const char *dir);
/**
 * Flags of chat_store_sqlite_open() (sys/store.h) for the default store, e.g.
 * CHAT_STORE_SQLITE_SYNC_FULL.
 * @since 0.1
 */
CHAT_API int chat_server_config_set_store_flags(chat_server_config *cfg, unsigned int flags);
/**
 * The reactions users may put on messages: n emoji (UTF-8, 1..CHAT_REACTION_MAX bytes, no
 * space or control character), each a distinct string; copied. Default: 👍 ❤️ 😂 😮 😢 🙏.
 * @return CHAT_OK, CHAT_EINVAL (NULL, n 0 or above CHAT_REACTIONS_MAX, a bad or repeated
 *         emoji). [before chat_server_new] @since 0.2
 */
CHAT_API int chat_server_config_set_reactions(chat_server_config *cfg, const char *const *emoji,
                                              size_t n);
/** Set a limit; @return CHAT_EINVAL for an unknown limit or a value out of range. @since 0.1 */
CHAT_API int chat_server_config_set_limit(chat_server_config *cfg, int limit, int64_t value);
/**
 * The limit whose name is name: the enum constant's suffix in lower case ("frame_bytes",
 * "idle_ping_ms", ...). @return the ::chat_limit, or CHAT_EINVAL. [any thread]
 * @since 0.1
 */
CHAT_API int chat_server_limit_by_name(const char *name);
/** ::CHAT_SERVER_PUSH_PREVIEWS and friends. @since 0.1 */
CHAT_API int chat_server_config_set_flags(chat_server_config *cfg, unsigned int flags);
/**
 * Log sink (default: none): messages up to max_level, a ::chat_log_level. Replaces a
 * structured sink (chat_server_config_set_log_kv). @since 0.1
 */
CHAT_API int chat_server_config_set_log(chat_server_config *cfg, chat_log_cb cb, int max_level,
                                        void *user_data);
/**
 * Log through a structured sink (see ::chat_log_kv_cb): the same lines as
 * chat_server_config_set_log(), with the connection, user, device, request id and code as
 * separate fields, for JSON-lines logs. Replaces a plain sink (the last one set is used).
 * Connections opening, authenticating and closing log at CHAT_LOG_INFO, refused requests at
 * CHAT_LOG_DEBUG. No line ever carries a message body or a token.
 * @return CHAT_OK, CHAT_EINVAL. [before chat_server_new] @since 0.2
 */
CHAT_API int chat_server_config_set_log_kv(chat_server_config *cfg, chat_log_kv_cb cb,
                                           int max_level, void *user_data);
/** Clock for timers and token expiry; default chat_clock_real_ms. @since 0.1 */
CHAT_API int chat_server_config_set_clock(chat_server_config *cfg, chat_clock_fn fn,
                                          void *user_data);

/**
 * Serve TLS: wss:// for WebSocket and https:// for HTTP on the listening port, with a PEM
 * certificate (chain) file and its PEM private key file (OpenSSL).
 * Both NULL turns TLS off again (the default: plain ws://). The files are read when the server
 * starts; chat_server_start() fails with CHAT_EIO if they do not form a usable pair. ALPN
 * offers http/1.1 only (no HTTP/2), and no WebSocket extension is negotiated.
 * @return CHAT_OK, CHAT_EINVAL (one of the two missing, path too long), CHAT_EIO (a file is
 *         not readable now). [before start] @since 0.2
 */
CHAT_API int chat_server_config_set_tls(chat_server_config *cfg, const char *cert_file,
                                        const char *key_file);
/**
 * Accept WebSocket upgrades whose Origin header is origin, exactly (scheme://host[:port], as
 * browsers send it, e.g. "https://chat.example.org"). Call once per allowed origin (up to 16).
 * With none configured (the default) any Origin is accepted. Once one is configured, an upgrade
 * with any other Origin is refused with HTTP 403 before the WebSocket opens; an upgrade with no
 * Origin header (native clients, which send none) is still accepted: the check protects
 * browser users from cross-site WebSocket hijacking.
 * @return CHAT_OK, CHAT_EINVAL (empty, over 255 bytes, spaces or non-ASCII), CHAT_ELIMIT (a
 *         17th origin). [before start] @since 0.2
 */
CHAT_API int chat_server_config_add_allowed_origin(chat_server_config *cfg, const char *origin);

/**
 * Add a 32-byte token key with id key_id (0..255). The last key added signs new tokens; every
 * key verifies tokens that name it, so rotation keeps old tokens valid until they expire.
 * @return CHAT_OK, CHAT_EINVAL (length, id), CHAT_ELIMIT (more than 16 keys).
 * @since 0.1
 */
CHAT_API int chat_server_config_add_token_key(chat_server_config *cfg, unsigned int key_id,
                                              const unsigned char *key, size_t key_len);
/**
 * Load token keys from a file of lines "<key_id> <64 hex digits>"; with create set, a missing
 * file is created (mode 0600) with one random key.
 * @return CHAT_OK, CHAT_EIO, CHAT_EPROTO (bad line), CHAT_EINVAL.
 * @since 0.1
 */
CHAT_API int chat_server_config_load_key_file(chat_server_config *cfg, const char *path,
                                              int create);

/**
 * Backends. Ownership of state passes to libchat on every call, even a failing one
 * (destroy(state) is then called at once). Registration checks the version and the required
 * methods: CHAT_EVERSION, CHAT_EINVAL.
 * @since 0.1
 */
CHAT_API int chat_server_config_set_store(chat_server_config *cfg, const chat_store_ops *ops,
                                          void *state);
/** The delivery bus (see sys/bus.h); default: the in-process bus. @since 0.1 */
CHAT_API int chat_server_config_set_bus(chat_server_config *cfg, const chat_bus_ops *ops,
                                        void *state);
/** The push notifier (see sys/push.h); default: none. @since 0.1 */
CHAT_API int chat_server_config_set_push(chat_server_config *cfg, const chat_push_ops *ops,
                                         void *state);
/**
 * Authentication backend (see sys/auth.h): the one verifier of every token the server sees
 * (WebSocket auth, media HTTP bearer tokens, chat_server_revoke_token()). Default: the built-in
 * verifier of libchat's own tokens under the token keys. Revocation by session id and closing
 * connections at their token's expiry work with any backend.
 *
 * With a host backend, libchat mints no tokens: chat_server_issue_token() returns
 * CHAT_ENOTSUP and the `login` frame answers ENOTSUP/login_disabled, because the host's
 * verifier would not accept what they issue. Token keys are still required: they key the
 * signed media download URLs.
 *
 * Ownership of state passes to libchat on every call, even a failing one.
 * @return CHAT_OK, CHAT_EINVAL (cfg, ops or destroy NULL; verify NULL), CHAT_EVERSION (version
 *         not in 1..CHAT_AUTH_OPS_VERSION). [before start] @since 0.2
 */
CHAT_API int chat_server_config_set_auth(chat_server_config *cfg, const chat_auth_ops *ops,
                                         void *state);
/**
 * Media byte store (see sys/blob.h). Default: the filesystem store in <data dir>/media; with
 * neither a data dir nor a blob store, media uploads and URLs are refused. @since 0.2
 */
CHAT_API int chat_server_config_set_blob(chat_server_config *cfg, const chat_blob_ops *ops,
                                         void *state);
/**
 * Where downloads are served from, e.g. "https://cdn.example.org" (a CDN or reverse proxy that
 * forwards /media/ to this server): signed URLs become that prefix plus the path. Default: none,
 * the URL is a path on this server. @return CHAT_OK, CHAT_EINVAL (not http:// or https://, or
 * over 512 bytes), CHAT_ENOMEM. @since 0.2
 */
CHAT_API int chat_server_config_set_media_base_url(chat_server_config *cfg, const char *url);

/**
 * Create a server from cfg (copied; backends move into the server). Opens the store and starts
 * the writer thread; the network is not touched until start/run.
 * @return CHAT_OK, CHAT_EINVAL, CHAT_ENOMEM, CHAT_EIO (store), CHAT_EAUTH (no token key).
 * [any thread]
 * @since 0.1
 */
CHAT_API int chat_server_new(chat_server **out, chat_server_config *cfg);

/**
 * Bind and run the loop on a libchat thread. @return CHAT_OK, CHAT_EIO (bind), CHAT_EMISUSE.
 * @since 0.1
 */
CHAT_API int chat_server_start(chat_server *srv);
/** Bind and run the loop on the calling thread until chat_server_stop_async(). @since 0.1 */
CHAT_API int chat_server_run(chat_server *srv);
/**
 * Ask the loop to stop: connections close, pending commits finish (to let clients get their
 * acks first, drain before: chat_server_drain()). [any thread] @since 0.1
 */
CHAT_API int chat_server_stop_async(chat_server *srv);
/** Stop a server started with chat_server_start() and wait for its thread. @since 0.1 */
CHAT_API int chat_server_stop(chat_server *srv);
/** Accepts NULL. Stops first if needed; flushes the store; frees everything. @since 0.1 */
CHAT_API void chat_server_free(chat_server *srv);

/** The bound port once started (useful with port 0), else 0. [any thread] @since 0.1 */
CHAT_API int chat_server_port(const chat_server *srv);

/**
 * @name Health, readiness and draining
 * For load balancers and orchestrators; chatd serves them as /healthz and /readyz.
 * @{
 */

/**
 * Liveness: the loop thread answers a hand-over within timeout_ms (it is not wedged).
 * @return CHAT_OK, CHAT_ECLOSED (not running), CHAT_ETIMEDOUT. [any thread] @since 0.2
 */
CHAT_API int chat_server_alive(chat_server *srv, int64_t timeout_ms);
/**
 * Readiness: running and not draining, the loop thread answers, the bus is connected (ctl
 * ::CHAT_BUS_CTL_HEALTH), and the store answers a read through the writer, all within
 * timeout_ms. The reason of a refusal is in chat_error_last()->message.
 * @return CHAT_OK; CHAT_EBUSY (draining); CHAT_ECLOSED (not running); CHAT_EIO (the bus is
 *         not connected, or the store failed); CHAT_ETIMEDOUT (the loop or the store did not
 *         answer in time). [any thread but the loop thread] @since 0.2
 */
CHAT_API int chat_server_ready(chat_server *srv, int64_t timeout_ms);
/**
 * Drain the server, to take it out of rotation without losing anything: from this call on it
 * is not ready, refuses new WebSocket connections (HTTP 503), and stops taking requests from
 * its clients (frames that arrive are not answered: clients resend what was not acked). Once
 * every request already taken has been answered (its commit finished, its ack queued), every
 * connection is closed with 1001 after its queued frames, so clients reconnect elsewhere. At
 * deadline_ms after the call, connections still open are dropped. Returns at once; see
 * chat_server_drain_wait(). A server drains once: a second call changes nothing, and it stays
 * drained until stopped (stop it, then free it, or start it again to serve anew only after
 * a new chat_server_new()).
 * @return CHAT_OK, CHAT_EINVAL (deadline_ms < 0). [any thread] @since 0.2
 */
CHAT_API int chat_server_drain(chat_server *srv, int64_t deadline_ms);
/**
 * Wait until the drain started by chat_server_drain() has finished (bounded by its deadline).
 * @return CHAT_OK (every connection closed after its requests were answered), CHAT_ETIMEDOUT
 *         (the deadline passed: the rest were dropped), CHAT_ECLOSED (the server stopped
 *         first), CHAT_EMISUSE (no drain started, or called on the loop thread).
 * [any thread but the loop thread] @since 0.2
 */
CHAT_API int chat_server_drain_wait(chat_server *srv);

/** @} */

/**
 * @name Statistics
 * A snapshot of the server's counters, gauges and histograms as named metrics: iterate them
 * with chat_stats_count() and the getters, look one up with chat_stats_find(), or format them
 * all with chat_stats_text(). Names, labels and units are those of the Prometheus text format
 * (every metric is listed in doc/operations.md); a later version may add metrics, never
 * rename them. Counters count from chat_server_new().
 *
 * Why an iterator over named metrics rather than a struct: a host (or a binding) exports
 * them without knowing each one, metrics are added without an ABI change, and labeled
 * series (errors by code) and histograms need no fixed-size arrays in a public layout.
 * @{
 */

/** What a metric is (chat_stats_kind()). */
typedef enum chat_stat_kind {
    CHAT_STAT_COUNTER = 1,  /**< only grows */
    CHAT_STAT_GAUGE = 2,    /**< a current value */
    CHAT_STAT_HISTOGRAM = 3 /**< observations in buckets, with their count and sum */
} chat_stat_kind;

/**
 * Take a snapshot of srv's statistics. Cheap on the serving threads: counters are read as they
 * are, and one hand-over to the loop thread counts connections by state and queue depths
 * (it waits at most 5 s for the loop). Works whether the server runs or not.
 * @param out receives the snapshot; free with chat_stats_free().
 * @return CHAT_OK, CHAT_EINVAL, CHAT_ENOMEM, CHAT_ETIMEDOUT (the loop thread did not answer).
 * [any thread] @since 0.2
 */
CHAT_API int chat_server_stats(chat_stats **out, chat_server *srv);
/** Number of metrics in the snapshot (one per label value). [any thread] @since 0.2 */
CHAT_API size_t chat_stats_count(const chat_stats *st);
/** Metric i's name, e.g. "chat_frames_received_total"; NULL when i is out of range. @since 0.2 */
CHAT_API const char *chat_stats_name(const chat_stats *st, size_t i);
/** One line saying what metric i counts, with its unit. @since 0.2 */
CHAT_API const char *chat_stats_help(const chat_stats *st, size_t i);
/** A ::chat_stat_kind, or CHAT_EINVAL. @since 0.2 */
CHAT_API int chat_stats_kind(const chat_stats *st, size_t i);
/** Metric i's label name ("code", "state"), or "" when it has none. @since 0.2 */
CHAT_API const char *chat_stats_label(const chat_stats *st, size_t i);
/** Metric i's label value ("EINVAL", "authenticated"), or "". @since 0.2 */
CHAT_API const char *chat_stats_label_value(const chat_stats *st, size_t i);
/** A counter's or gauge's value; a histogram's number of observations. @since 0.2 */
CHAT_API uint64_t chat_stats_value(const chat_stats *st, size_t i);
/** A histogram's sum of observations in its unit (seconds for *_seconds); else 0. @since 0.2 */
CHAT_API double chat_stats_sum(const chat_stats *st, size_t i);
/** A histogram's number of buckets, the last one +Inf; 0 for other kinds. @since 0.2 */
CHAT_API size_t chat_stats_buckets(const chat_stats *st, size_t i);
/** Bucket b's upper bound (inclusive, Prometheus' "le"): +infinity for the last. @since 0.2 */
CHAT_API double chat_stats_bucket_bound(const chat_stats *st, size_t i, size_t b);
/** Observations at or below bucket b's bound (cumulative). @since 0.2 */
CHAT_API uint64_t chat_stats_bucket_count(const chat_stats *st, size_t i, size_t b);
/**
 * The index of the metric named name whose label value is label_value (NULL: the first of
 * that name). @return CHAT_OK with *index set, CHAT_ENOTFOUND, CHAT_EINVAL. @since 0.2
 */
CHAT_API int chat_stats_find(const chat_stats *st, const char *name, const char *label_value,
                             size_t *index);
/**
 * The snapshot in the Prometheus text exposition format (version 0.0.4), with HELP and TYPE
 * lines, for any host's /metrics endpoint.
 * @param out receives the text; free with chat_string_free().
 * @return CHAT_OK, CHAT_EINVAL, CHAT_ENOMEM. [any thread] @since 0.2
 */
CHAT_API int chat_stats_text(char **out, const chat_stats *st);
/** Accepts NULL. [any thread] @since 0.2 */
CHAT_API void chat_stats_free(chat_stats *st);
/**
 * chat_server_stats() and chat_stats_text() in one call: what a /metrics endpoint serves.
 * @return as chat_server_stats(). [any thread] @since 0.2
 */
CHAT_API int chat_server_metrics_text(char **out, chat_server *srv);

/** @} */

/**
 * @name Administration
 * Queries answer JSON documents (their fields are in doc/operations.md), for admin tools and
 * HTTP endpoints; free them with chat_string_free(). chatd serves these to `chatd admin`.
 * @{
 */

/**
 * A user's devices and their connections to this server, and the user's revoked devices:
 * {"user", "online" (anywhere, through the bus), "devices": [{"device", "revoked_ms" (0: not
 * revoked), "connections": [{"id", "state", "age_ms", "queue_frames", "queue_bytes"}]}]}.
 * Tokens are not recorded, so a device appears while it is connected or once revoked.
 * @return CHAT_OK, CHAT_EINVAL (not a user id), CHAT_ENOMEM, CHAT_ETIMEDOUT (the loop thread
 *         did not answer in 5 s). [any thread] @since 0.2
 */
CHAT_API int chat_server_admin_user(char **out, chat_server *srv, const char *user);
/**
 * Close connection conn_id (an "id" of chat_server_admin_user() or of the log's "conn" field)
 * with 1008 "disconnected by an operator". Its client may reconnect; to keep a device out,
 * revoke it. @return CHAT_OK, CHAT_EINVAL, CHAT_ENOTFOUND (no such open connection),
 * CHAT_ETIMEDOUT. [any thread] @since 0.2
 */
CHAT_API int chat_server_admin_disconnect(chat_server *srv, uint64_t conn_id);
/**
 * Revoke a device: every token of (user, device) issued up to now is refused from now on,
 * across restarts (the record goes to the store before this returns), and the device's
 * connections are closed with 1008 "device revoked". A token issued later (a new login on that
 * device) is accepted. With an auth backend that does not report when a token was issued
 * (chat_auth_identity::iat_ms 0), every token of the device is refused from then on.
 * @return CHAT_OK, CHAT_EINVAL (not ids), CHAT_EIO (the store failed), CHAT_EMISUSE (on the
 *         loop thread). [any thread but the loop thread; blocks for a commit] @since 0.2
 */
CHAT_API int chat_server_admin_revoke_device(chat_server *srv, const char *user,
                                             const char *device);
/**
 * A conversation's head and members, read from the store: {"conv", "kind", "title", "head",
 * "created_ms", "member_count", "members": [{"user", "role", "delivered", "read",
 * "delivered_ts", "read_ts"}]} (members who left have role "none"). Works on a server that is not running.
 * @return CHAT_OK, CHAT_EINVAL, CHAT_ENOTFOUND, CHAT_EIO, CHAT_EMISUSE (on the loop thread).
 * [any thread but the loop thread; waits for the writer] @since 0.2
 */
CHAT_API int chat_server_admin_conv(char **out, chat_server *srv, chat_conv_id conv);

/** @} */

/**
 * Issue a token for (user, device) valid for ttl_ms, signed with the current key.
 * @param out receives a NUL-terminated token; free with chat_string_free().
 * @return CHAT_OK, CHAT_EINVAL (ids: 1..64 bytes of [A-Za-z0-9_.@-]). [any thread]
 * @since 0.1
 */
CHAT_API int chat_server_issue_token(chat_server *srv, const char *user, const char *device,
                                     int64_t ttl_ms, char **out);
/**
 * Revoke a token (logout): it is refused from now on, persisted across restarts, and live
 * connections authenticated with it are closed. The refusal takes effect at once in this
 * process; the record reaches the store with the writer's next group commit (milliseconds
 * later), so a crash inside that window forgets it. @return CHAT_OK, CHAT_EAUTH (not a valid
 * token). [any thread]
 * @since 0.1
 */
CHAT_API int chat_server_revoke_token(chat_server *srv, const char *token);

/**
 * Create or update a standalone account with an Argon2id password hash, for servers that do
 * not get their users from a host. Blocks for the hash and the commit.
 * @return CHAT_OK, CHAT_EINVAL (name or password), CHAT_EIO. [any thread, not the loop thread]
 * @since 0.1
 */
CHAT_API int chat_server_user_set_password(chat_server *srv, const char *user,
                                           const char *password);

/**
 * Delete an account: its password (no more logins), every token issued for it so far (refused
 * from now on, across restarts; a host auth backend's tokens for the name are refused for good),
 * its live connections (closed with 1008 "account deleted"), its devices' push registrations,
 * its reactions and its memberships
 * (it leaves every conversation: the others receive an event "account_deleted", and a group it
 * owned gets a new owner as when an owner leaves), and the bodies of every message it sent:
 * erased, as deletes for everyone are (tombstones keep their seqs; media no other message
 * refers to leave the blob store). Runs in many small transactions, so the server keeps serving
 * meanwhile; blocks until done. A user that never existed is deleted all the same (its name is
 * refused from then on). A new account under the name (chat_server_user_set_password) starts
 * empty. Needs a store of version 5.
 * @return CHAT_OK, CHAT_EINVAL (not a user id), CHAT_ENOTSUP (store older than version 5),
 *         CHAT_EIO. [any thread, not the loop thread] @since 0.2
 */
CHAT_API int chat_server_user_delete(chat_server *srv, const char *user);

CHAT_END_DECLS

#endif /* CHAT_SERVER_H */
