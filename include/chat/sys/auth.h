/**
 * @file sys/auth.h
 * @brief Authentication backend vtable (backend-author API, stable per minor release).
 *
 * An auth backend turns the bearer token a client presents into an identity: the user, the
 * device, a session id and an expiry. The server asks it everywhere a token is checked: the
 * WebSocket `auth` frame, the media HTTP endpoints (`Authorization: Bearer`), and
 * chat_server_revoke_token(). The default backend verifies libchat's own tokens (MAC'd under
 * the token keys, see chat_server_issue_token()); a host with its own identity provider
 * replaces it with chat_server_config_set_auth().
 *
 * Whatever the backend says, libchat still:
 * - checks the identity: user, device and session must be ids (1..64 bytes of
 *   [A-Za-z0-9_.@-]); anything else refuses the token;
 * - refuses a token once now_ms >= exp_ms (exp_ms 0: the token does not expire);
 * - refuses a token whose session id was revoked (chat_server_revoke_token(), the `logout`
 *   frame); revocations are persisted in the store until the session's expiry;
 * - closes a connection when its token expires (close 1008 "token expired");
 * - answers a refused token with the error frame EAUTH/auth_failed and close 1008 (HTTP 401
 *   for media), without telling the client why: the reason goes to the server's log.
 *
 * Threading: verify() runs on the server's loop thread, and on the calling thread of
 * chat_server_revoke_token() (which any thread may call). libchat serializes the calls with a
 * lock, so one instance never runs two at once. verify() must not block: every connection of
 * the server waits while it runs. A backend whose identity provider is remote verifies
 * signatures locally (e.g. a JWT against public keys it fetched beforehand and refreshes from
 * a thread of its own) or answers from a cache it fills off the loop thread; it never makes a
 * network round trip inside verify().
 */
#ifndef CHAT_SYS_AUTH_H
#define CHAT_SYS_AUTH_H

#include "../common.h"
#include "../types.h"

CHAT_BEGIN_DECLS

/** Bytes of chat_auth_identity::reason, the NUL included. */
#define CHAT_AUTH_REASON_MAX 128

/** Longest token libchat passes to verify(), in bytes; longer ones are refused unseen. */
#define CHAT_AUTH_TOKEN_MAX 4096

/**
 * What verify() fills in. libchat zeroes it before each call. Strings are NUL-terminated
 * within their arrays.
 */
typedef struct chat_auth_identity {
    char user[CHAT_ID_MAX + 1];    /**< the authenticated user id */
    char device[CHAT_ID_MAX + 1];  /**< the device id */
    /**
     * The session id, the unit of revocation: every token with this id is refused once one of
     * them is revoked. A backend without sessions of its own may use a digest of the token
     * (hex, at most 64 characters).
     */
    char session[CHAT_ID_MAX + 1];
    int64_t exp_ms;                /**< expiry, ms since the epoch; 0: none */
    /** On refusal, why (for the server's log, never sent to the client); may stay empty. */
    char reason[CHAT_AUTH_REASON_MAX];
    /**
     * When the token was issued, ms since the epoch; 0 (what libchat zeroed): unknown.
     * chat_server_admin_revoke_device() refuses a device's tokens issued before the
     * revocation, and every token of that device whose issue time is unknown. @since 0.2
     */
    int64_t iat_ms;
} chat_auth_identity;

#define CHAT_AUTH_OPS_VERSION 1

struct chat_auth_ops {
    unsigned int version; /**< CHAT_AUTH_OPS_VERSION */
    void (*destroy)(void *state);

    /**
     * Verify token[0..len) (not NUL-terminated; 1..CHAT_AUTH_TOKEN_MAX bytes) at now_ms (the
     * server's clock, which the host may inject with chat_server_config_set_clock()).
     * Required.
     * @param out zeroed by libchat; fill user, device, session and exp_ms on success, and
     *        optionally reason on refusal.
     * @return CHAT_OK (the token is good), CHAT_EAUTH (refused: malformed, forged, expired,
     *         unknown). Any other code is logged and also refuses the token.
     * [loop thread or chat_server_revoke_token()'s caller, serialized; must not block]
     */
    int (*verify)(void *state, const char *token, size_t len, int64_t now_ms,
                  chat_auth_identity *out);

    /** Optional escape hatch; ops below 1000 are libchat's. Unknown ops: CHAT_ENOTSUP. */
    int (*ctl)(void *state, int op, void *arg);
};

CHAT_END_DECLS

#endif /* CHAT_SYS_AUTH_H */
