/**
 * @file sys/bus.h
 * @brief Delivery bus vtable: routes frames and presence between engine instances
 * (backend-author API, stable per minor release).
 *
 * The engine never assumes that all of a user's devices are connected to this process: it
 * publishes every live frame to users through the bus, and learns of users coming online or
 * going offline anywhere through the sink it attaches. The default bus is in-process.
 *
 * Threading: every method is called on the loop thread. A bus that receives from elsewhere
 * calls sink->wake (any thread) and does its delivering from poll() on the loop thread.
 *
 * Version 2 hands frames across as shared, reference-counted buffers (chat_buf): the engine
 * encodes a frame once, and the same bytes reach every local connection and every remote node
 * without a copy in the engine. A version-1 bus still works: the engine then passes bytes and
 * copies what it is given back.
 *
 * Version 3 is for buses between instances (nodes): the engine learns which other instances
 * there are, sends them messages of its own (revoked sessions, a fingerprint of its token keys),
 * and can wait until the others know of a device that just connected here, so that whatever
 * they send it after its auth_ok reaches it live. Every version-3 method is optional.
 *
 * Version 4 adds requests with an answer between instances (request, respond, sink->reply,
 * sink->request): the engine forwards a conversation's writes to the instance that usually
 * writes it, and learns at once when no instance of that name listens. Optional as well.
 */
#ifndef CHAT_SYS_BUS_H
#define CHAT_SYS_BUS_H

#include "../common.h"
#include "../types.h"

CHAT_BEGIN_DECLS

/**
 * A shared, immutable byte buffer with a reference count (an encoded frame). Whoever holds a
 * reference may read the bytes from any thread; the last chat_buf_unref frees it. The bytes
 * are followed by a NUL that is not counted in the length.
 */
typedef struct chat_buf chat_buf;

/**
 * A new buffer holding a copy of data[0..len), with one reference, which the caller owns.
 * @return CHAT_OK, CHAT_EINVAL (out NULL, or data NULL with len > 0), CHAT_ENOMEM.
 * [any thread] @since 0.2
 */
CHAT_API int chat_buf_new(chat_buf **out, const void *data, size_t len);
/** The bytes (NULL for a NULL buffer). Borrowed: valid while a reference is held. [any thread] @since 0.2 */
CHAT_API const void *chat_buf_data(const chat_buf *buf);
/** The number of bytes (0 for a NULL buffer). [any thread] @since 0.2 */
CHAT_API size_t chat_buf_len(const chat_buf *buf);
/** Take one more reference; returns buf. Accepts NULL. [any thread] @since 0.2 */
CHAT_API chat_buf *chat_buf_ref(chat_buf *buf);
/** Drop one reference; the last one frees the buffer. Accepts NULL. [any thread] @since 0.2 */
CHAT_API void chat_buf_unref(chat_buf *buf);

/** The engine's side of the bus, handed over by attach(); valid until destroy. */
typedef struct chat_bus_sink {
    /** Deliver frame to every device of user connected here except except_device (may be NULL). */
    void (*deliver)(const char *user, const char *except_device, const void *frame, size_t len,
                    void *user_data);
    /** A user's first device anywhere came online (1) or the last one went offline (0). */
    void (*presence)(const char *user, int online, void *user_data);
    /** Ask for poll() to be called soon on the loop thread. [any thread] */
    void (*wake)(void *user_data);
    void *user_data;
    /* ---- set by engines that accept version-2 tables (so always, for a version-2 bus) ---- */
    /**
     * deliver(), with the frame shared: frame is borrowed for the call, and the engine takes
     * its own references to the bytes it queues. A bus that received one frame for several
     * users calls this with the same buffer for each of them. [loop thread]
     */
    void (*deliver2)(const char *user, const char *except_device, chat_buf *frame,
                     void *user_data);
    /**
     * Live frames for devices connected here may have been lost (the bus lost its link, or saw
     * a gap in what it receives). The engine asks its connected clients to catch up from the
     * store, spread over a few seconds. [loop thread]
     */
    void (*lost)(void *user_data);
    /* ---- set by engines that accept version-3 tables ---- */
    /**
     * The device changes made before settle() answered ticket are applied on every other
     * instance the bus counts as alive, or the bus stopped waiting for them. Tickets grow;
     * one call covers every ticket up to ticket. [loop thread]
     */
    void (*settled)(uint64_t ticket, void *user_data);
    /**
     * Another instance appeared (up 1: first heard of, or back under a new incarnation) or
     * left (up 0: it said goodbye, or its lease ran out). [loop thread]
     */
    void (*node)(const char *node, int up, void *user_data);
    /** A message the engine of instance from sent with send() (borrowed). [loop thread] */
    void (*message)(const char *from, const void *msg, size_t len, void *user_data);
    /**
     * A line for the host's log (a ::chat_log_level and a message without a newline,
     * borrowed): what an operator must know of the bus (its link lost and back, a
     * misconfiguration it noticed). [loop thread]
     */
    void (*log)(int level, const char *msg, void *user_data);
    /* ---- set by engines that accept version-4 tables ---- */
    /**
     * The request of this instance's engine with this id (request()) was answered: status
     * CHAT_OK with the answer's bytes (borrowed, 0 bytes allowed), or without bytes (msg NULL)
     * CHAT_ENOTFOUND (no instance of that name listens: it left or died), CHAT_ETIMEDOUT (no
     * answer in time) or CHAT_EIO (the bus lost its link). Called once for each request that
     * request() accepted, unless the bus is destroyed first. [loop thread]
     */
    void (*reply)(uint64_t id, int status, const void *msg, size_t len, void *user_data);
    /**
     * A request of instance from's engine (borrowed). The engine answers it once with
     * respond(token), at once or later; one it never answers times out at the requester.
     * [loop thread]
     */
    void (*request)(const char *from, uint64_t token, const void *msg, size_t len,
                    void *user_data);
} chat_bus_sink;

/** publish2() flags. */
enum {
    /** Only to devices connected to other engine instances: this one has them already. */
    CHAT_BUS_REMOTE_ONLY = 1
};

/** ctl() ops of libchat (below 1000). */
enum {
    /**
     * arg unused. A bus answers CHAT_OK when it never loses a frame between publish and
     * delivery (an in-process bus). Otherwise (any other answer) the engine sends position
     * hints for recently active conversations, so that a client learns of a frame the bus
     * dropped even when no later frame of that conversation comes. @since 0.2
     */
    CHAT_BUS_CTL_RELIABLE = 1,
    /**
     * arg unused; asked by chat_server_ready() on the loop thread, must not block. CHAT_OK
     * while the bus reaches the other engine instances, another code (CHAT_ECLOSED, CHAT_EIO)
     * while it cannot, which makes the server not ready. A bus that does not know the op
     * (CHAT_ENOTSUP) counts as connected, as an in-process bus always is. @since 0.2
     */
    CHAT_BUS_CTL_HEALTH = 2,
    /**
     * arg: a char[CHAT_BUS_NODE_MAX + 1] that receives this instance's name among the others
     * (the name sink->node reports on the other instances). A bus between instances answers
     * CHAT_OK; an in-process bus CHAT_ENOTSUP. @since 0.2
     */
    CHAT_BUS_CTL_NODE_ID = 3
};

/** The longest instance name (CHAT_BUS_CTL_NODE_ID). */
#define CHAT_BUS_NODE_MAX 64

/** The largest request or answer of request() and respond(). */
#define CHAT_BUS_REQ_MAX (256 * 1024)

/** The largest message send() carries. */
#define CHAT_BUS_MSG_MAX 4096

#define CHAT_BUS_OPS_VERSION 4

struct chat_bus_ops {
    unsigned int version; /**< CHAT_BUS_OPS_VERSION (1 to 4 are accepted) */
    void (*destroy)(void *state);
    /** Called once before any other method. */
    int (*attach)(void *state, const chat_bus_sink *sink);
    /**
     * Deliver frame to every device of each of users[0..n_users) wherever it is connected,
     * except the device (except_user, except_device) when both are non-NULL. Required in
     * version 1; optional from version 2 when publish2 is set (then never called).
     */
    int (*publish)(void *state, const char *const *users, size_t n_users,
                   const char *except_user, const char *except_device,
                   const void *frame, size_t len);
    /** A device of user connected to this engine / disconnected from it. */
    int (*device_up)(void *state, const char *user, const char *device);
    int (*device_down)(void *state, const char *user, const char *device);
    /** 1 when user has a device online anywhere, else 0. */
    int (*online)(void *state, const char *user);
    /** Optional: deliver what arrived since the last call (after sink->wake). */
    int (*poll)(void *state);
    /** Optional; unknown ops answer CHAT_ENOTSUP. */
    int (*ctl)(void *state, int op, void *arg);
    /* ---- version 2 ---- */
    /**
     * publish(), with the frame shared: frame is borrowed for the call, and a bus that keeps
     * it afterwards (to deliver it later, to send it) takes a reference with chat_buf_ref.
     * A bus delivers the frame to local devices through sink->deliver2, never by copying.
     * flags: 0 or CHAT_BUS_REMOTE_ONLY. Optional: without it the engine calls publish.
     */
    int (*publish2)(void *state, const char *const *users, size_t n_users,
                    const char *except_user, const char *except_device, chat_buf *frame,
                    unsigned int flags);
    /* ---- version 3 (each optional) ---- */
    /**
     * The device changes made so far (device_up, device_down) and the messages sent to all
     * (send() with node NULL) are on their way to the other instances. *ticket receives 0
     * when there is nothing to wait for, else a number that
     * sink->settled reports once every other live instance has applied them, or once the bus
     * stops waiting: it must stop within a bound of its own (about 250 ms), since an instance
     * that does not answer must not hold a client back for long. The engine holds the output
     * of a connection that just authenticated until then, so that its auth_ok means every
     * instance routes to it, and a logout's answer, so that it means every instance refuses
     * the token. @return CHAT_OK, or anything else for "do not wait".
     */
    int (*settle)(void *state, uint64_t *ticket);
    /**
     * Send msg[0..len) (1 to CHAT_BUS_MSG_MAX bytes, borrowed) to the engine of instance node,
     * or of every other instance when node is NULL (sink->message there). At most once; in
     * order between two instances. @return CHAT_OK, CHAT_EINVAL, CHAT_ENOTFOUND (no such
     * instance), CHAT_EIO.
     */
    int (*send)(void *state, const char *node, const void *msg, size_t len);
    /* ---- version 4 (optional, both or neither) ---- */
    /**
     * Send msg[0..len) (1 to CHAT_BUS_REQ_MAX bytes, borrowed) to the engine of instance node
     * as a request (sink->request there), and report its answer through sink->reply with id
     * (the engine's number for it) within timeout_ms, or sooner with the reason there is none.
     * At most once: a request that timed out may still have been served. @return CHAT_OK
     * (sink->reply will be called), CHAT_EINVAL, CHAT_ENOTFOUND (no such instance),
     * CHAT_ECLOSED (the bus has no link now), CHAT_ENOMEM, CHAT_EIO; on any error sink->reply
     * is not called.
     */
    int (*request)(void *state, const char *node, const void *msg, size_t len,
                   int64_t timeout_ms, uint64_t id);
    /**
     * Answer the request token (sink->request) with msg[0..len) (0 to CHAT_BUS_REQ_MAX bytes,
     * borrowed); once per token. @return CHAT_OK, CHAT_EINVAL, CHAT_ENOTFOUND (no such token),
     * CHAT_EIO.
     */
    int (*respond)(void *state, uint64_t token, const void *msg, size_t len);
};

/** The in-process bus (the default): delivers synchronously. @since 0.1 */
CHAT_API int chat_bus_local_new(void **state_out);
/** The in-process bus's vtable, static. @since 0.1 */
CHAT_API const chat_bus_ops *chat_bus_local_ops(void);

/**
 * A bus between engine instances (nodes) over a NATS core server (libnats; nats-server 2.9 or
 * later), for several servers sharing one store. Each node receives on a subject of its own
 * and publishes a live frame once per node that has a recipient; presence travels on one
 * stream per node with a heartbeat, so the users of a node that stops sending it go offline
 * after the lease. Delivery between nodes is at most once: the engine's position hints and
 * catch-up prompts let clients fetch what was lost from the store. While the NATS server is
 * unreachable the bus reconnects with backoff, and delivery on this node goes on.
 * doc/backends.md describes the subjects and messages.
 *
 * url: one or more NATS URLs, comma-separated ("nats://127.0.0.1:4222"). node_id: this node's
 * name, 1-64 of [A-Za-z0-9_-], unique among the nodes sharing the prefix (a node that restarts
 * under the same name replaces its former self). The connection is made when the engine
 * attaches the bus (chat_server_new); a server that is down then is retried in the background.
 * @return CHAT_OK, CHAT_EINVAL (a NULL argument, a bad node id or url), CHAT_ENOMEM,
 * CHAT_ENOTSUP (this libchat was built without NATS). @since 0.2
 */
CHAT_API int chat_bus_nats_new(void **state_out, const char *url, const char *node_id);
/** The NATS bus's table; NULL when libchat was built without NATS. @since 0.2 */
CHAT_API const chat_bus_ops *chat_bus_nats_ops(void);
/**
 * Subjects start with prefix ("chat" by default; 1-64 of [A-Za-z0-9_-]): clusters with
 * different prefixes share a NATS server without seeing each other.
 * @return CHAT_OK, CHAT_EINVAL, CHAT_EMISUSE (attached already), CHAT_ENOTSUP.
 * [before chat_server_config_set_bus] @since 0.2
 */
CHAT_API int chat_bus_nats_set_prefix(void *state, const char *prefix);
/**
 * A node publishes a heartbeat every heartbeat_ms (1000 by default, 10 ms to 10 min); a node
 * not heard from for lease_ms (5000 by default, at least two heartbeats, at most 1 h) is
 * dropped with its users. Every node of a cluster should use the same values.
 * @return CHAT_OK, CHAT_EINVAL, CHAT_EMISUSE (attached already), CHAT_ENOTSUP.
 * [before chat_server_config_set_bus] @since 0.2
 */
CHAT_API int chat_bus_nats_set_timing(void *state, int64_t heartbeat_ms, int64_t lease_ms);

CHAT_END_DECLS

#endif /* CHAT_SYS_BUS_H */
