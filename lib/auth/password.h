/* Standalone-mode passwords: Argon2id through crypto_pwhash_str at the INTERACTIVE limits
 * (about 130 ms and 64 MiB per call here). These block; the server caps how many run at once
 * and keeps them off the loop thread. */
#ifndef CHAT_AUTH_PASSWORD_H
#define CHAT_AUTH_PASSWORD_H

#include <stddef.h>

#define CHAT__PASSWORD_MAX 1024 /* bytes; bounds the work an attacker can make us hash */
#define CHAT__PASSWORD_HASH_BYTES 128 /* crypto_pwhash_STRBYTES, NUL included */

/*
 * Hash pw[0..len) (any bytes, need not be NUL-terminated) into out, a NUL-terminated
 * "$argon2id$..." string with a random salt.
 * @return CHAT_OK, CHAT_EINVAL (NULL, len not 1..1024), CHAT_ENOMEM (libsodium could not get
 *         the memory), CHAT_ERROR. [any thread, blocking]
 */
int chat__password_hash(const char *pw, size_t len, char out[CHAT__PASSWORD_HASH_BYTES]);

/*
 * Check pw[0..len) against hash (a NUL-terminated string from chat__password_hash, or an
 * older Argon2i/Argon2id hash), in constant time with respect to the password.
 * @return CHAT_OK, CHAT_EAUTH (mismatch, or a hash libsodium cannot read), CHAT_EINVAL (NULL,
 *         len not 1..1024, hash not NUL-terminated within 128 bytes). [any thread, blocking]
 */
int chat__password_verify(const char *hash, const char *pw, size_t len);

/* An Argon2id hash at the current INTERACTIVE limits of a random password nobody knows. A login
 * for an account that does not exist is checked against it, on the same path as a wrong
 * password, so the time of the answer does not tell which accounts exist. [any thread] */
const char *chat__password_dummy_hash(void);

/* 1 if hash is not Argon2id at the current INTERACTIVE limits (or unreadable), so it should
 * be replaced after the next successful verify; 0 if it is current. [any thread] */
int chat__password_needs_rehash(const char *hash);

#endif
