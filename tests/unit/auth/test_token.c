/* Keyring and session tokens: round trip, every refusal, rotation, and the key file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/keyring.h"
#include "auth/token.h"
#include "chat/errors.h"
#include "core/alloc.h"

#define NOW 1700000000000LL
#define TTL (15 * 60 * 1000LL)

static void fill_key(unsigned char *key, unsigned char seed)
{
    for (int i = 0; i < 32; i++)
        key[i] = (unsigned char)(seed + i);
}

static void ring_with(chat__keyring *kr, unsigned id, unsigned char seed)
{
    unsigned char key[32];
    memset(kr, 0, sizeof *kr);
    fill_key(key, seed);
    assert_int_equal(chat__keyring_add(kr, id, key, sizeof key), CHAT_OK);
}

static char *issue(const chat__keyring *kr, const char *user, const char *device, int64_t now)
{
    char *tok = NULL;
    assert_int_equal(chat__token_issue(kr, user, device, now, TTL, &tok), CHAT_OK);
    assert_non_null(tok);
    return tok;
}

/* Verify and also check the failure's message, so a refusal for the wrong reason fails. */
static void assert_refused(const chat__keyring *kr, const char *tok, size_t len, int64_t now,
                           const char *why)
{
    chat__token t;
    memset(&t, 0x5a, sizeof t);
    assert_int_equal(chat__token_verify(kr, tok, len, now, &t), CHAT_EAUTH);
    assert_int_equal(chat_error_last()->code, CHAT_EAUTH);
    if (why)
        assert_non_null(strstr(chat_error_last()->message, why));
    assert_int_equal(t.key_id, 0x5a5a5a5au); /* out untouched */
}

static void test_token_round_trip(void **state)
{
    (void)state;
    chat__keyring kr;
    ring_with(&kr, 3, 1);
    char *tok = issue(&kr, "alice@example.org", "phone-1", NOW);
    size_t len = strlen(tok);
    assert_true(len >= CHAT__TOKEN_MIN_CHARS && len <= CHAT__TOKEN_MAX_CHARS);
    assert_int_equal(strspn(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                 "0123456789-_"), len);
    chat__token t;
    assert_int_equal(chat__token_verify(&kr, tok, len, NOW, &t), CHAT_OK);
    assert_int_equal(t.key_id, 3);
    assert_string_equal(t.user, "alice@example.org");
    assert_string_equal(t.device, "phone-1");
    assert_true(t.iat_ms == NOW);
    assert_true(t.exp_ms == NOW + TTL);
    assert_int_equal(strlen(t.session), 32);
    assert_int_equal(strspn(t.session, "0123456789abcdef"), 32);
    assert_int_equal(chat__token_verify(&kr, tok, len, NOW, NULL), CHAT_OK);

    /* a second token for the same pair is a different session */
    char *tok2 = issue(&kr, "alice@example.org", "phone-1", NOW);
    chat__token t2;
    assert_int_equal(chat__token_verify(&kr, tok2, strlen(tok2), NOW, &t2), CHAT_OK);
    assert_string_not_equal(t.session, t2.session);
    chat__free(tok);
    chat__free(tok2);
}

static void test_token_length_extremes_round_trip(void **state)
{
    (void)state;
    chat__keyring kr;
    ring_with(&kr, 0, 9);
    char id64[65];
    memset(id64, 'z', 64);
    id64[64] = '\0';
    const char *pairs[][2] = {{"a", "b"}, {id64, id64}};
    for (int i = 0; i < 2; i++) {
        char *tok = issue(&kr, pairs[i][0], pairs[i][1], NOW);
        assert_int_equal(strlen(tok), i ? CHAT__TOKEN_MAX_CHARS : CHAT__TOKEN_MIN_CHARS);
        chat__token t;
        assert_int_equal(chat__token_verify(&kr, tok, strlen(tok), NOW, &t), CHAT_OK);
        assert_string_equal(t.user, pairs[i][0]);
        assert_string_equal(t.device, pairs[i][1]);
        chat__free(tok);
    }
}

static void test_token_expired(void **state)
{
    (void)state;
    chat__keyring kr;
    ring_with(&kr, 1, 1);
    char *tok = issue(&kr, "u", "d", NOW);
    assert_int_equal(chat__token_verify(&kr, tok, strlen(tok), NOW + TTL - 1, NULL), CHAT_OK);
    assert_refused(&kr, tok, strlen(tok), NOW + TTL, "expired");
    assert_refused(&kr, tok, strlen(tok), INT64_MAX, "expired");
    chat__free(tok);
}

static void test_token_not_yet_valid(void **state)
{
    (void)state;
    chat__keyring kr;
    ring_with(&kr, 1, 1);
    char *tok = issue(&kr, "u", "d", NOW);
    /* up to 60 s of clock skew is tolerated, not a millisecond more */
    assert_int_equal(chat__token_verify(&kr, tok, strlen(tok), NOW - 60000, NULL), CHAT_OK);
    assert_refused(&kr, tok, strlen(tok), NOW - 60001, "not yet valid");
    chat__free(tok);
}

static void test_token_tampered_byte_refused(void **state)
{
    (void)state;
    chat__keyring kr;
    ring_with(&kr, 1, 1);
    /* a second key id in the ring, so a flipped key id byte can land on a known key */
    unsigned char key[32];
    fill_key(key, 2);
    assert_int_equal(chat__keyring_add(&kr, 0, key, sizeof key), CHAT_OK); /* signs */
    char *tok = issue(&kr, "alice", "laptop", NOW);
    unsigned char bin[256];
    size_t n = 0;
    assert_int_equal(sodium_base642bin(bin, sizeof bin, tok, strlen(tok), NULL, &n, NULL,
                                       sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
    char enc[400];
    const unsigned char flips[] = {0x01, 0x80, 0xff};
    for (size_t i = 0; i < n; i++) {
        for (size_t f = 0; f < sizeof flips; f++) {
            bin[i] ^= flips[f];
            sodium_bin2base64(enc, sizeof enc, bin, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
            assert_refused(&kr, enc, strlen(enc), NOW, NULL);
            bin[i] ^= flips[f];
        }
    }
    /* the untouched bytes still verify, so the loop above really changed something */
    sodium_bin2base64(enc, sizeof enc, bin, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    assert_int_equal(chat__token_verify(&kr, enc, strlen(enc), NOW, NULL), CHAT_OK);
    /* a flipped tag byte is a bad signature, a flipped version byte malformed */
    bin[n - 1] ^= 1;
    sodium_bin2base64(enc, sizeof enc, bin, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    assert_refused(&kr, enc, strlen(enc), NOW, "bad signature");
    bin[n - 1] ^= 1;
    bin[0] ^= 1;
    sodium_bin2base64(enc, sizeof enc, bin, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    assert_refused(&kr, enc, strlen(enc), NOW, "malformed");
    chat__free(tok);
}

/* libsodium 1.0.18 decodes any byte 0x80-0xff as '_' (found by tests/fuzz/fuzz_token.c): a
 * token spelt with such a byte in place of a character must not verify. */
static void test_token_non_alphabet_byte_refused(void **state)
{
    (void)state;
    chat__keyring kr;
    ring_with(&kr, 1, 1);
    char *tok = NULL;
    /* issue until the token has a '_' (each one has ~1.5 on average) */
    for (int i = 0; i < 100 && (!tok || !strchr(tok, '_')); i++) {
        chat__free(tok);
        tok = issue(&kr, "alice", "laptop", NOW);
    }
    assert_non_null(strchr(tok, '_'));
    size_t len = strlen(tok);
    char *alt = chat__strdup(tok);
    assert_non_null(alt);
    for (size_t i = 0; i < len; i++) {
        const unsigned char bytes[] = {0x80, 0xb2, 0xdf, 0xff, ' ', '=', '+', '/', '.'};
        for (size_t b = 0; b < sizeof bytes; b++) {
            alt[i] = (char)bytes[b];
            assert_refused(&kr, alt, len, NOW, "malformed");
        }
        alt[i] = tok[i];
    }
    assert_int_equal(chat__token_verify(&kr, alt, len, NOW, NULL), CHAT_OK);
    chat__free(alt);
    chat__free(tok);
}

static void test_token_truncated_or_extended_refused(void **state)
{
    (void)state;
    chat__keyring kr;
    ring_with(&kr, 1, 1);
    char *tok = issue(&kr, "alice", "laptop", NOW);
    size_t len = strlen(tok);
    for (size_t l = 0; l < len; l++)
        assert_refused(&kr, tok, l, NOW, NULL);
    char longer[512];
    snprintf(longer, sizeof longer, "%sA", tok);
    assert_refused(&kr, longer, strlen(longer), NOW, "malformed");
    snprintf(longer, sizeof longer, "%s=", tok);
    assert_refused(&kr, longer, strlen(longer), NOW, "malformed");
    /* standard-alphabet base64 and embedded junk are not accepted */
    snprintf(longer, sizeof longer, "%s", tok);
    longer[10] = '+';
    assert_refused(&kr, longer, len, NOW, "malformed");
    longer[10] = ' ';
    assert_refused(&kr, longer, len, NOW, "malformed");
    assert_refused(&kr, "", 0, NOW, "malformed");
    chat__free(tok);
}

static void test_token_unknown_key_id(void **state)
{
    (void)state;
    chat__keyring a, b;
    ring_with(&a, 7, 1);
    ring_with(&b, 8, 1);
    char *tok = issue(&a, "u", "d", NOW);
    assert_refused(&b, tok, strlen(tok), NOW, "unknown key id 7");
    /* same id, different key: the MAC catches it */
    ring_with(&b, 7, 2);
    assert_refused(&b, tok, strlen(tok), NOW, "bad signature");
    chat__free(tok);
}

static void test_token_rotation_keeps_old_tokens(void **state)
{
    (void)state;
    chat__keyring kr;
    ring_with(&kr, 1, 1);
    char *old = issue(&kr, "u", "d", NOW);
    unsigned char key2[32];
    fill_key(key2, 2);
    assert_int_equal(chat__keyring_add(&kr, 2, key2, sizeof key2), CHAT_OK);
    char *fresh = issue(&kr, "u", "d", NOW);
    chat__token t;
    assert_int_equal(chat__token_verify(&kr, old, strlen(old), NOW, &t), CHAT_OK);
    assert_int_equal(t.key_id, 1);
    assert_int_equal(chat__token_verify(&kr, fresh, strlen(fresh), NOW, &t), CHAT_OK);
    assert_int_equal(t.key_id, 2);
    /* dropping key 1 (a ring with key 2 only) retires the old token */
    chat__keyring only2;
    memset(&only2, 0, sizeof only2);
    assert_int_equal(chat__keyring_add(&only2, 2, key2, sizeof key2), CHAT_OK);
    assert_refused(&only2, old, strlen(old), NOW, "unknown key id 1");
    assert_int_equal(chat__token_verify(&only2, fresh, strlen(fresh), NOW, NULL), CHAT_OK);
    chat__free(old);
    chat__free(fresh);
}

/* Every character position of the encoded token, replaced by every other character of the
 * base64url alphabet: all refused (a change lands in the MAC'd bytes, in the tag, or in
 * trailing bits the decoder refuses). */
static void test_token_every_char_substitution_refused(void **state)
{
    (void)state;
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                   "0123456789-_";
    chat__keyring kr;
    ring_with(&kr, 1, 1);
    char *tok = issue(&kr, "alice", "laptop", NOW);
    size_t len = strlen(tok);
    char buf[CHAT__TOKEN_MAX_CHARS + 1];
    memcpy(buf, tok, len + 1);
    size_t tried = 0;
    for (size_t i = 0; i < len; i++) {
        for (size_t a = 0; a < sizeof alphabet - 1; a++) {
            if (alphabet[a] == tok[i])
                continue;
            buf[i] = alphabet[a];
            assert_int_equal(chat__token_verify(&kr, buf, len, NOW, NULL), CHAT_EAUTH);
            tried++;
        }
        buf[i] = tok[i];
    }
    assert_int_equal(tried, len * 63);
    assert_int_equal(chat__token_verify(&kr, buf, len, NOW, NULL), CHAT_OK);
    chat__free(tok);
}

/* Truncated or extended at the byte level and re-encoded as valid base64url: every length
 * from 0 to one past the real one is refused as malformed (fixed layout, exact length). */
static void test_token_every_binary_length_refused(void **state)
{
    (void)state;
    chat__keyring kr;
    ring_with(&kr, 1, 1);
    char *tok = issue(&kr, "alice", "laptop", NOW);
    unsigned char bin[300];
    size_t n = 0;
    assert_int_equal(sodium_base642bin(bin, sizeof bin, tok, strlen(tok), NULL, &n, NULL,
                                       sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
    memset(bin + n, 0, sizeof bin - n);
    char enc[512];
    for (size_t l = 0; l <= n + 40; l++) {
        if (l == n)
            continue;
        sodium_bin2base64(enc, sizeof enc, bin, l, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        assert_refused(&kr, enc, strlen(enc), NOW, "malformed");
    }
    sodium_bin2base64(enc, sizeof enc, bin, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    assert_int_equal(chat__token_verify(&kr, enc, strlen(enc), NOW, NULL), CHAT_OK);
    chat__free(tok);
}

/* After rotation an old token stays valid until its own expiry, then is refused as expired
 * (not as an unknown key: key 1 is still in the ring). */
static void test_token_rotation_old_token_until_expiry(void **state)
{
    (void)state;
    chat__keyring kr;
    ring_with(&kr, 1, 1);
    char *old = issue(&kr, "u", "d", NOW);
    unsigned char key2[32];
    fill_key(key2, 2);
    assert_int_equal(chat__keyring_add(&kr, 2, key2, sizeof key2), CHAT_OK);
    char *fresh = issue(&kr, "u", "d", NOW + TTL / 2);
    assert_int_equal(chat__token_verify(&kr, old, strlen(old), NOW + TTL - 1, NULL), CHAT_OK);
    assert_refused(&kr, old, strlen(old), NOW + TTL, "expired");
    assert_int_equal(chat__token_verify(&kr, fresh, strlen(fresh), NOW + TTL, NULL), CHAT_OK);
    assert_refused(&kr, fresh, strlen(fresh), NOW + TTL / 2 + TTL, "expired");
    chat__free(old);
    chat__free(fresh);
}

/* Clock values at the ends of int64: no overflow turns a refusal into an acceptance. */
static void test_token_clock_extremes(void **state)
{
    (void)state;
    chat__keyring kr;
    ring_with(&kr, 1, 1);
    char *tok = issue(&kr, "u", "d", NOW);
    assert_refused(&kr, tok, strlen(tok), INT64_MIN, "not yet valid");
    assert_refused(&kr, tok, strlen(tok), -1, "not yet valid");
    assert_refused(&kr, tok, strlen(tok), INT64_MAX - 1, "expired");
    chat__free(tok);
    /* a token issued at the far end of time: its exp cannot overflow */
    char *late = NULL;
    assert_int_equal(chat__token_issue(&kr, "u", "d", INT64_MAX - 10, 100, &late), CHAT_EINVAL);
    assert_null(late);
    assert_int_equal(chat__token_issue(&kr, "u", "d", INT64_MAX - 100, 100, &late), CHAT_OK);
    assert_int_equal(chat__token_verify(&kr, late, strlen(late), INT64_MAX - 1, NULL), CHAT_OK);
    assert_refused(&kr, late, strlen(late), INT64_MAX, "expired");
    chat__free(late);
}

static void test_token_issue_refuses_bad_input(void **state)
{
    (void)state;
    chat__keyring kr;
    ring_with(&kr, 1, 1);
    char id65[66];
    memset(id65, 'x', 65);
    id65[65] = '\0';
    const char *bad[] = {"", id65, "a b", "a/b", "\xc3\xa9", "a\tb", "a:b"};
    char *tok = (char *)0x1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(chat__token_issue(&kr, bad[i], "d", NOW, TTL, &tok), CHAT_EINVAL);
        assert_int_equal(chat__token_issue(&kr, "u", bad[i], NOW, TTL, &tok), CHAT_EINVAL);
    }
    assert_int_equal(chat__token_issue(&kr, "u", "d", NOW, 0, &tok), CHAT_EINVAL);
    assert_int_equal(chat__token_issue(&kr, "u", "d", NOW, -1, &tok), CHAT_EINVAL);
    assert_int_equal(chat__token_issue(&kr, "u", "d", INT64_MAX - 10, 11, &tok), CHAT_EINVAL);
    assert_int_equal(chat__token_issue(&kr, NULL, "d", NOW, TTL, &tok), CHAT_EINVAL);
    chat__keyring empty;
    memset(&empty, 0, sizeof empty);
    assert_int_equal(chat__token_issue(&empty, "u", "d", NOW, TTL, &tok), CHAT_EAUTH);
    assert_true(tok == (char *)0x1); /* out untouched */
}

static void test_keyring_add_limits(void **state)
{
    (void)state;
    chat__keyring kr;
    unsigned char key[32] = {0};
    memset(&kr, 0, sizeof kr);
    assert_int_equal(chat__keyring_add(&kr, 256, key, 32), CHAT_EINVAL);
    assert_int_equal(chat__keyring_add(&kr, 1, key, 31), CHAT_EINVAL);
    assert_int_equal(chat__keyring_add(&kr, 1, key, 33), CHAT_EINVAL);
    assert_int_equal(chat__keyring_add(&kr, 1, NULL, 32), CHAT_EINVAL);
    for (unsigned id = 0; id < 16; id++)
        assert_int_equal(chat__keyring_add(&kr, id * 10, key, 32), CHAT_OK);
    assert_int_equal(chat__keyring_add(&kr, 255, key, 32), CHAT_ELIMIT);
    /* replacing an existing id is not a new key, and makes it current */
    key[0] = 9;
    assert_int_equal(chat__keyring_add(&kr, 30, key, 32), CHAT_OK);
    assert_int_equal(kr.n, 16);
    assert_int_equal(kr.keys[kr.current].id, 30);
    assert_int_equal(chat__keyring_find(&kr, 30)[0], 9);
    assert_null(chat__keyring_find(&kr, 31));
    chat__keyring_wipe(&kr);
    assert_int_equal(kr.n, 0);
    assert_null(chat__keyring_find(&kr, 30));
}

/* A private temporary directory per key-file test. */
static int tmpdir_setup(void **state)
{
    char *dir = strdup("/tmp/chat-keyring-XXXXXX");
    if (!dir || !mkdtemp(dir))
        return -1;
    *state = dir;
    return 0;
}

static int tmpdir_teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", (char *)*state);
    int rc = system(cmd);
    free(*state);
    return rc == 0 ? 0 : -1;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static void test_keyring_file_created_0600_and_reloads(void **state)
{
    char path[256];
    snprintf(path, sizeof path, "%s/keys", (char *)*state);
    chat__keyring a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    assert_int_equal(chat__keyring_load_file(&a, path, 0), CHAT_EIO); /* no create: missing */
    assert_int_equal(chat__keyring_load_file(&a, path, 1), CHAT_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.keys[a.current].id, 1);
    /* a second load, with create set, reads the same file rather than making a new key */
    assert_int_equal(chat__keyring_load_file(&b, path, 1), CHAT_OK);
    assert_int_equal(b.n, 1);
    assert_int_equal(b.keys[0].id, 1);
    assert_memory_equal(a.keys[0].key, b.keys[0].key, 32);
    unsigned char zero[32] = {0};
    assert_memory_not_equal(a.keys[0].key, zero, 32);
    /* and tokens from one verify with the other */
    char *tok = issue(&a, "u", "d", NOW);
    assert_int_equal(chat__token_verify(&b, tok, strlen(tok), NOW, NULL), CHAT_OK);
    chat__free(tok);
}

static void test_keyring_file_format(void **state)
{
    char path[256];
    snprintf(path, sizeof path, "%s/keys", (char *)*state);
    write_file(path,
               "# rotated keys, newest last\n"
               "\n"
               "  7   000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f  \r\n"
               "\t# indented comment\n"
               "200 FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF", 0600);
    chat__keyring kr;
    memset(&kr, 0, sizeof kr);
    assert_int_equal(chat__keyring_load_file(&kr, path, 0), CHAT_OK);
    assert_int_equal(kr.n, 2);
    assert_int_equal(kr.keys[kr.current].id, 200);
    assert_int_equal(chat__keyring_find(&kr, 7)[31], 0x1f);
    assert_int_equal(chat__keyring_find(&kr, 200)[0], 0xff);
}

static void test_keyring_file_bad_line_names_line(void **state)
{
    char path[256];
    snprintf(path, sizeof path, "%s/keys", (char *)*state);
    const char *good = "1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
    const char *bad_lines[] = {
        "2 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1\n",   /* 63 hex */
        "2 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0\n", /* 65 */
        "2 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g\n",  /* not hex */
        "256 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
        "-1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
        "2 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f x\n",
        "2000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
        "1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", /* repeated */
        "2\n",
    };
    for (size_t i = 0; i < sizeof bad_lines / sizeof bad_lines[0]; i++) {
        char text[512];
        snprintf(text, sizeof text, "# keys\n%s%s", good, bad_lines[i]);
        write_file(path, text, 0600);
        chat__keyring kr;
        ring_with(&kr, 9, 9);
        chat__keyring before = kr;
        assert_int_equal(chat__keyring_load_file(&kr, path, 0), CHAT_EPROTO);
        assert_non_null(strstr(chat_error_last()->message, "line 3"));
        /* all or nothing: the good line 2 was not added */
        assert_memory_equal(&kr, &before, sizeof kr);
    }
    write_file(path, "# nothing but comments\n\n", 0600);
    chat__keyring kr;
    memset(&kr, 0, sizeof kr);
    assert_int_equal(chat__keyring_load_file(&kr, path, 0), CHAT_EPROTO);
}

static void test_keyring_file_readable_by_others_refused(void **state)
{
    char path[256];
    snprintf(path, sizeof path, "%s/keys", (char *)*state);
    const char *text = "1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n";
    const mode_t modes[] = {0644, 0640, 0604, 0660, 0606};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        write_file(path, text, modes[i]);
        chat__keyring kr;
        memset(&kr, 0, sizeof kr);
        assert_int_equal(chat__keyring_load_file(&kr, path, 1), CHAT_EIO);
        assert_non_null(strstr(chat_error_last()->message, "group or others"));
        assert_int_equal(kr.n, 0);
    }
    write_file(path, text, 0400);
    chat__keyring kr;
    memset(&kr, 0, sizeof kr);
    assert_int_equal(chat__keyring_load_file(&kr, path, 0), CHAT_OK);
    /* a directory is not a key file */
    memset(&kr, 0, sizeof kr);
    assert_int_equal(chat__keyring_load_file(&kr, (char *)*state, 0), CHAT_EIO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_round_trip),
        cmocka_unit_test(test_token_length_extremes_round_trip),
        cmocka_unit_test(test_token_expired),
        cmocka_unit_test(test_token_not_yet_valid),
        cmocka_unit_test(test_token_tampered_byte_refused),
        cmocka_unit_test(test_token_truncated_or_extended_refused),
        cmocka_unit_test(test_token_non_alphabet_byte_refused),
        cmocka_unit_test(test_token_unknown_key_id),
        cmocka_unit_test(test_token_rotation_keeps_old_tokens),
        cmocka_unit_test(test_token_every_char_substitution_refused),
        cmocka_unit_test(test_token_every_binary_length_refused),
        cmocka_unit_test(test_token_rotation_old_token_until_expiry),
        cmocka_unit_test(test_token_clock_extremes),
        cmocka_unit_test(test_token_issue_refuses_bad_input),
        cmocka_unit_test(test_keyring_add_limits),
        cmocka_unit_test_setup_teardown(test_keyring_file_created_0600_and_reloads,
                                        tmpdir_setup, tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_keyring_file_format, tmpdir_setup,
                                        tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_keyring_file_bad_line_names_line, tmpdir_setup,
                                        tmpdir_teardown),
        cmocka_unit_test_setup_teardown(test_keyring_file_readable_by_others_refused,
                                        tmpdir_setup, tmpdir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
