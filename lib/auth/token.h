/* Session tokens: MAC'd with crypto_auth (HMAC-SHA-512-256) under a keyring key. The server
 * issues and verifies its own tokens, so a symmetric MAC suffices (reliability.md section 5.2).
 *
 * Binary layout, then base64url without padding:
 *   version(1) = 1 | key_id(1) | session_id(16, random) | iat_ms(8, big-endian)
 *   | exp_ms(8, big-endian) | user_len(1) | user | device_len(1) | device
 *   | tag(32) = crypto_auth over every byte before it
 * There is no algorithm field to negotiate. Revocation (by session id) is the server's job. */
#ifndef CHAT_AUTH_TOKEN_H
#define CHAT_AUTH_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "auth/keyring.h"

#define CHAT__TOKEN_VERSION 1
#define CHAT__TOKEN_SESSION_BYTES 16
/* Clock skew tolerated on iat, so a token from a server a little ahead still works. */
#define CHAT__TOKEN_SKEW_MS 60000
/* Encoded length bounds: ids of 1 byte each, and of 64 bytes each. */
#define CHAT__TOKEN_MIN_CHARS 94
#define CHAT__TOKEN_MAX_CHARS 262

typedef struct chat__token {
    unsigned key_id;
    char session[2 * CHAT__TOKEN_SESSION_BYTES + 1]; /* lower-case hex, NUL-terminated */
    int64_t iat_ms, exp_ms;
    char user[65];   /* NUL-terminated, valid per chat__id_valid */
    char device[65];
} chat__token;

/*
 * Issue a token for (user, device), NUL-terminated C strings, valid from now_ms for ttl_ms,
 * MAC'd with the keyring's current key and a fresh random session id.
 * @param out receives the base64url token, NUL-terminated, from chat__malloc (free with
 *        chat__free); written only on success.
 * @return CHAT_OK, CHAT_EINVAL (NULL, ids not valid per chat__id_valid, ttl_ms <= 0, or
 *         now_ms + ttl_ms overflows), CHAT_EAUTH (keyring empty), CHAT_ENOMEM, CHAT_ERROR
 *         (libsodium failed to initialise).
 */
int chat__token_issue(const chat__keyring *kr, const char *user, const char *device,
                      int64_t now_ms, int64_t ttl_ms, char **out);

/*
 * Verify tok[0..len) (need not be NUL-terminated) at now_ms. Checks, in order: length, base64,
 * version and field lengths ("malformed token"); the key id ("unknown key id"); the MAC in
 * constant time ("bad signature"); iat_ms <= now_ms + 60 s ("not yet valid"); now_ms < exp_ms
 * ("expired"); the id alphabets ("invalid ids").
 * @param out if not NULL, receives the fields; written only on success.
 * @return CHAT_OK, CHAT_EAUTH (any failure above, with that message in the error record),
 *         CHAT_EINVAL (NULL kr or tok), CHAT_ERROR (libsodium failed to initialise).
 */
int chat__token_verify(const chat__keyring *kr, const char *tok, size_t len, int64_t now_ms,
                       chat__token *out);

#endif
