/* Argon2id password hashes: verify, refusal, length bounds, rehash detection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sodium.h>
#include <string.h>

#include "auth/password.h"
#include "chat/errors.h"

static void test_password_hash_then_verify(void **state)
{
    (void)state;
    char hash[CHAT__PASSWORD_HASH_BYTES];
    assert_int_equal(chat__password_hash("correct horse", 13, hash), CHAT_OK);
    assert_true(strstr(hash, "$argon2id$v=19$") == hash);
    assert_int_equal(chat__password_verify(hash, "correct horse", 13), CHAT_OK);
    /* salted: the same password hashes differently */
    char hash2[CHAT__PASSWORD_HASH_BYTES];
    assert_int_equal(chat__password_hash("correct horse", 13, hash2), CHAT_OK);
    assert_string_not_equal(hash, hash2);
    /* the length is what counts: an embedded NUL is part of the password, not its end */
    assert_int_equal(chat__password_hash("a\0b", 3, hash), CHAT_OK);
    assert_int_equal(chat__password_verify(hash, "a\0b", 3), CHAT_OK);
    assert_int_equal(chat__password_verify(hash, "a", 1), CHAT_EAUTH);
}

static void test_password_wrong_password_refused(void **state)
{
    (void)state;
    char hash[CHAT__PASSWORD_HASH_BYTES];
    assert_int_equal(chat__password_hash("correct horse", 13, hash), CHAT_OK);
    assert_int_equal(chat__password_verify(hash, "correct hors", 12), CHAT_EAUTH);
    assert_int_equal(chat__password_verify(hash, "Correct horse", 13), CHAT_EAUTH);
    assert_int_equal(chat__password_verify(hash, "correct horse!", 14), CHAT_EAUTH);
    assert_int_equal(chat_error_last()->code, CHAT_EAUTH);
    assert_int_equal(chat__password_verify("$argon2id$garbage", "x", 1), CHAT_EAUTH);
}

static void test_password_length_bounds(void **state)
{
    (void)state;
    static char pw[1025];
    memset(pw, 'p', sizeof pw);
    char hash[CHAT__PASSWORD_HASH_BYTES];
    assert_int_equal(chat__password_hash(pw, 1025, hash), CHAT_EINVAL);
    assert_int_equal(chat__password_hash(pw, 0, hash), CHAT_EINVAL);
    assert_int_equal(chat__password_hash(NULL, 1, hash), CHAT_EINVAL);
    assert_int_equal(chat__password_hash(pw, 1024, hash), CHAT_OK);
    assert_int_equal(chat__password_verify(hash, pw, 1024), CHAT_OK);
    assert_int_equal(chat__password_verify(hash, pw, 1025), CHAT_EINVAL);
    assert_int_equal(chat__password_verify(hash, pw, 0), CHAT_EINVAL);
    /* a hash buffer with no NUL in its 128 bytes is not read past its end */
    char unterminated[CHAT__PASSWORD_HASH_BYTES];
    memset(unterminated, '$', sizeof unterminated);
    assert_int_equal(chat__password_verify(unterminated, pw, 1), CHAT_EINVAL);
}

static void test_password_needs_rehash(void **state)
{
    (void)state;
    char hash[CHAT__PASSWORD_HASH_BYTES];
    assert_int_equal(chat__password_hash("pw", 2, hash), CHAT_OK);
    assert_int_equal(chat__password_needs_rehash(hash), 0);
    /* weaker Argon2id parameters */
    char weak[crypto_pwhash_STRBYTES];
    assert_int_equal(crypto_pwhash_str_alg(weak, "pw", 2, crypto_pwhash_OPSLIMIT_MIN,
                                           8192, crypto_pwhash_ALG_ARGON2ID13), 0);
    assert_int_equal(chat__password_verify(weak, "pw", 2), CHAT_OK);
    assert_int_equal(chat__password_needs_rehash(weak), 1);
    /* an Argon2i hash still verifies, but is not the algorithm we want */
    char argon2i[crypto_pwhash_STRBYTES];
    assert_int_equal(crypto_pwhash_str_alg(argon2i, "pw", 2,
                                           crypto_pwhash_argon2i_OPSLIMIT_INTERACTIVE,
                                           crypto_pwhash_argon2i_MEMLIMIT_INTERACTIVE,
                                           crypto_pwhash_ALG_ARGON2I13), 0);
    assert_int_equal(chat__password_verify(argon2i, "pw", 2), CHAT_OK);
    assert_int_equal(chat__password_needs_rehash(argon2i), 1);
    assert_int_equal(chat__password_needs_rehash("not a hash"), 1);
    assert_int_equal(chat__password_needs_rehash(NULL), 1);
}

/* The hash unknown accounts are checked against costs what a real one does (Argon2id at the
 * current limits) and matches nothing a client would send. */
static void test_password_dummy_hash_is_current(void **state)
{
    (void)state;
    const char *dummy = chat__password_dummy_hash();
    assert_int_equal(strncmp(dummy, "$argon2id$", 10), 0);
    assert_int_equal(chat__password_needs_rehash(dummy), 0);
    assert_int_equal(chat__password_verify(dummy, "x", 1), CHAT_EAUTH);
    assert_int_equal(chat__password_verify(dummy, "password", 8), CHAT_EAUTH);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_password_hash_then_verify),
        cmocka_unit_test(test_password_wrong_password_refused),
        cmocka_unit_test(test_password_length_bounds),
        cmocka_unit_test(test_password_needs_rehash),
        cmocka_unit_test(test_password_dummy_hash_is_current),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
