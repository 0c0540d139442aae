/**
 * @file testing.h
 * @brief Test-support API: the loopback client transport and the queued bus.
 *
 * Not part of libchat's stable ABI and not included by chat.h. These functions are exported
 * only by a libchat built with `-Dtesting_api=true` (under the version node LIBCHAT_TESTING,
 * which carries no compatibility promise: it may change in any release); the test suite always
 * gets them, from an uninstalled build of the library. A host's own test harness may use them
 * through such a build; applications must not.
 */
#ifndef CHAT_TESTING_H
#define CHAT_TESTING_H

#include "common.h"
#include "types.h"

CHAT_BEGIN_DECLS

/* ---- the loopback client transport: an in-process far end instead of a socket --------------- */

/**
 * The far end of a loopback transport. A test or a host harness holds it and plays the server:
 * it reads the frames the engine sends, answers with any frames it likes, refuses connects and
 * closes connections at chosen moments, with no socket and no timing noise. Every call below is
 * [any thread]; the handle stays valid until chat_loopback_free(), even after the client that
 * owns the transport state is freed.
 */
typedef struct chat_loopback chat_loopback;

/**
 * A loopback transport: hand *state_out to chat_client_config_set_transport() with
 * chat_client_transport_loopback_ops(); keep *peer_out. Any server URL is accepted.
 * @return CHAT_OK, CHAT_EINVAL, CHAT_ENOMEM, CHAT_EIO (no eventfd).
 */
CHAT_API int chat_client_transport_loopback_new(void **state_out, chat_loopback **peer_out);
/** The vtable of the loopback transport. [any thread] */
CHAT_API const chat_client_transport_ops *chat_client_transport_loopback_ops(void);
/** Release the far end. Accepts NULL. */
CHAT_API void chat_loopback_free(chat_loopback *lb);
/** While refuse is non-zero, connects fail (the engine sees close code 1006). */
CHAT_API void chat_loopback_set_refuse(chat_loopback *lb, int refuse);
/** Wait until a connection is open. @return CHAT_OK or CHAT_ETIMEDOUT. */
CHAT_API int chat_loopback_wait_open(chat_loopback *lb, int timeout_ms);
/**
 * The next frame the engine sent, in order, waiting up to timeout_ms for one. Free *frame_out
 * with chat_string_free(). @return CHAT_OK, CHAT_ETIMEDOUT, CHAT_EINVAL.
 */
CHAT_API int chat_loopback_recv(char **frame_out, chat_loopback *lb, int timeout_ms);
/** Deliver one text frame to the engine.
 * @return CHAT_OK, CHAT_ECLOSED (no open connection), CHAT_ENOMEM. */
CHAT_API int chat_loopback_send(chat_loopback *lb, const char *data, size_t len);
/**
 * Close the connection from the far end with a WebSocket close code (1000..4999); frames sent
 * before still arrive first. @return CHAT_OK, CHAT_EINVAL, CHAT_ECLOSED.
 */
CHAT_API int chat_loopback_close(chat_loopback *lb, int code, const char *reason);
/** Connects the engine attempted so far (refused ones included). */
CHAT_API unsigned chat_loopback_connects(chat_loopback *lb);

/* ---- the queued bus ---------------------------------------------------------------------- */

/**
 * A bus (see sys/bus.h) that serializes every frame and presence change into a queue and
 * delivers it later from poll(), as a networked bus would. It keeps the engine honest about
 * the seam; the test suite runs the integration and wire tests on it.
 */
CHAT_API int chat_bus_queued_new(void **state_out);
/** The queued bus's vtable, static. */
CHAT_API const chat_bus_ops *chat_bus_queued_ops(void);

CHAT_END_DECLS

#endif /* CHAT_TESTING_H */
