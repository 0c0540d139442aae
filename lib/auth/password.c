/* Password hashing with libsodium's crypto_pwhash (Argon2id). */
#include "auth/password.h"

#include "auth/keyring.h"
#include "chat/errors.h"
#include "core/error.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

_Static_assert(CHAT__PASSWORD_HASH_BYTES == crypto_pwhash_STRBYTES, "hash buffer size");

static int check_password(const char *pw, size_t len)
{
    if (!pw || len < 1 || len > CHAT__PASSWORD_MAX)
        return chat__error_set(CHAT_EINVAL, 0, "password must be 1..%d bytes",
                               CHAT__PASSWORD_MAX);
    return CHAT_OK;
}

int chat__password_hash(const char *pw, size_t len, char out[CHAT__PASSWORD_HASH_BYTES])
{
    int rc = check_password(pw, len);
    if (rc != CHAT_OK)
        return rc;
    if (!out)
        return chat__error_set(CHAT_EINVAL, 0, "password hash: NULL output");
    if ((rc = chat__sodium_init()) != CHAT_OK)
        return rc;
    /* The explicit algorithm pins Argon2id even if libsodium's default ever changes. */
    if (crypto_pwhash_str_alg(out, pw, len, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                              crypto_pwhash_MEMLIMIT_INTERACTIVE,
                              crypto_pwhash_ALG_ARGON2ID13) != 0) {
        /* libsodium's only runtime failure here is the 64 MiB allocation. */
        return chat__error_set(errno == ENOMEM ? CHAT_ENOMEM : CHAT_ERROR, errno,
                               "password hashing failed");
    }
    return CHAT_OK;
}

int chat__password_verify(const char *hash, const char *pw, size_t len)
{
    int rc = check_password(pw, len);
    if (rc != CHAT_OK)
        return rc;
    if (!hash || strnlen(hash, CHAT__PASSWORD_HASH_BYTES) >= CHAT__PASSWORD_HASH_BYTES)
        return chat__error_set(CHAT_EINVAL, 0, "password hash is not a hash string");
    if ((rc = chat__sodium_init()) != CHAT_OK)
        return rc;
    if (crypto_pwhash_str_verify(hash, pw, len) != 0)
        return chat__error_set(CHAT_EAUTH, 0, "wrong password");
    return CHAT_OK;
}

const char *chat__password_dummy_hash(void)
{
    /* Made once with crypto_pwhash_str_alg from 32 random bytes, which were then thrown away.
     * tests/unit/auth/test_password.c checks it is current (the same cost as a real hash). */
    return "$argon2id$v=19$m=65536,t=2,p=1$6hlS86Yf8ZU9Wks+N4wg9Q$"
           "nPmaspo0yrznhBSy36uqSY3d7BW14KlImtzYJhGGr94";
}

int chat__password_needs_rehash(const char *hash)
{
    if (!hash || strnlen(hash, CHAT__PASSWORD_HASH_BYTES) >= CHAT__PASSWORD_HASH_BYTES ||
        chat__sodium_init() != CHAT_OK)
        return 1;
    /* Ask the Argon2id variant: only an Argon2id hash at exactly these limits is current; it
     * answers -1 for Argon2i and unreadable strings, which also need replacing. */
    return crypto_pwhash_argon2id_str_needs_rehash(hash, crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                                   crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0;
}
