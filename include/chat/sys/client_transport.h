/**
 * @file sys/client_transport.h
 * @brief Client transport vtable (backend-author API, stable per minor release).
 *
 * A client transport carries the text frames of one connection at a time between a
 * ::chat_client and a server. The default is libchat's WebSocket client
 * (chat_client_transport_ws_ops()); the loopback transport of chat/testing.h lets a test play
 * the server in-process; a host or a test may register its own with
 * chat_client_config_set_transport().
 *
 * Threading: every method except wake() is called on the client's loop thread, never
 * concurrently. The transport also owns the loop thread's wait: the engine calls poll() with
 * the time until its next timer, and poll() returns early when wake() is called from any
 * thread. Sink callbacks are called from inside poll() only, on the loop thread.
 */
#ifndef CHAT_SYS_CLIENT_TRANSPORT_H
#define CHAT_SYS_CLIENT_TRANSPORT_H

#include "../common.h"
#include "../types.h"

CHAT_BEGIN_DECLS

/**
 * What a transport reports to the engine. Every pointer is borrowed for the call.
 * For each connect() that returned CHAT_OK, the transport calls on_open at most once and then
 * on_close exactly once, unless the engine calls close() first (after which it reports nothing
 * more about that connection).
 */
typedef struct chat_client_transport_sink {
    /** The connection is established (WebSocket upgraded); frames may now be sent. */
    void (*on_open)(void *sink_data);
    /** One complete text frame (a JSON object) arrived. data is not NUL-terminated. */
    void (*on_text)(const char *data, size_t len, void *sink_data);
    /**
     * The connection failed or ended. code: the WebSocket close code (1000..4999), or 1006
     * when it ended without a close frame or never opened. reason may be "" but not NULL.
     */
    void (*on_close)(int code, const char *reason, void *sink_data);
} chat_client_transport_sink;

#define CHAT_CLIENT_TRANSPORT_OPS_VERSION 1

struct chat_client_transport_ops {
    unsigned int version; /**< CHAT_CLIENT_TRANSPORT_OPS_VERSION */
    /** Free state; the connection, if any, is dropped without callbacks. [loop thread or
     * the thread freeing the client, after the loop thread ended] */
    void (*destroy)(void *state);
    /**
     * Start connecting to url ("ws://host:port/path"); the outcome is reported through sink.
     * Any previous connection was closed by the engine first.
     * @return CHAT_OK (in progress), CHAT_EINVAL (bad URL), CHAT_ENOTSUP (scheme). [loop thread]
     */
    int (*connect)(void *state, const char *url, const chat_client_transport_sink *sink,
                   void *sink_data);
    /** Queue one text frame on the open connection. @return CHAT_OK, CHAT_ECLOSED, CHAT_ENOMEM.
     * [loop thread] */
    int (*send_text)(void *state, const char *data, size_t len);
    /** Close the connection (politely if possible); no callback follows. [loop thread] */
    void (*close)(void *state);
    /**
     * Wait up to timeout_ms (0: do not block, -1: no limit) for I/O or wake(), run the I/O and
     * call the sink. @return CHAT_OK, or a negative code for a failure of the wait itself.
     * [loop thread]
     */
    int (*poll)(void *state, int timeout_ms);
    /** Make a running or the next poll() return promptly. [any thread, async-signal-safe] */
    void (*wake)(void *state);
    /** Optional; unknown ops answer CHAT_ENOTSUP. */
    int (*ctl)(void *state, int op, void *arg);
};

/**
 * The default transport: WebSocket (RFC 6455, ws:// only) over non-blocking POSIX sockets,
 * polled on the client's loop thread.
 * @return CHAT_OK, CHAT_ENOMEM, CHAT_EIO (no eventfd). @since 0.1
 */
CHAT_API int chat_client_transport_ws_new(void **state_out);
/** The vtable of the default transport. [any thread] @since 0.1 */
CHAT_API const chat_client_transport_ops *chat_client_transport_ws_ops(void);

CHAT_END_DECLS

#endif /* CHAT_SYS_CLIENT_TRANSPORT_H */
