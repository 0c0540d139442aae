/* Session tokens: encode, MAC, verify. Every verification failure is CHAT_EAUTH with a message
 * naming the failed check; secrets are compared only through crypto_auth_verify. */
#include "auth/token.h"

#include "chat/errors.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/ids.h"

#include <sodium.h>
#include <string.h>

#define B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING
/* Offsets of the fixed head: version, key id, session, iat, exp; user_len follows. */
#define OFF_KEY 1
#define OFF_SESSION 2
#define OFF_IAT (OFF_SESSION + CHAT__TOKEN_SESSION_BYTES)
#define OFF_EXP (OFF_IAT + 8)
#define OFF_ULEN (OFF_EXP + 8)
#define TAG_BYTES crypto_auth_BYTES
#define BIN_MAX (OFF_ULEN + 1 + CHAT__ID_MAX + 1 + CHAT__ID_MAX + TAG_BYTES)

static void put_be64(unsigned char *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 7; i >= 0; i--, u >>= 8)
        p[i] = (unsigned char)u;
}

static int64_t get_be64(const unsigned char *p)
{
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = u << 8 | p[i];
    return (int64_t)u;
}

int chat__token_issue(const chat__keyring *kr, const char *user, const char *device,
                      int64_t now_ms, int64_t ttl_ms, char **out)
{
    if (!kr || !user || !device || !out)
        return chat__error_set(CHAT_EINVAL, 0, "token: NULL argument");
    size_t ulen = strnlen(user, CHAT__ID_MAX + 1), dlen = strnlen(device, CHAT__ID_MAX + 1);
    if (!chat__id_valid(user, ulen))
        return chat__error_set(CHAT_EINVAL, 0,
                               "user id must be 1..64 bytes of [A-Za-z0-9_.@-]");
    if (!chat__id_valid(device, dlen))
        return chat__error_set(CHAT_EINVAL, 0,
                               "device id must be 1..64 bytes of [A-Za-z0-9_.@-]");
    if (ttl_ms <= 0 || now_ms > INT64_MAX - ttl_ms)
        return chat__error_set(CHAT_EINVAL, 0, "token lifetime must be positive and finite");
    if (kr->n <= 0 || kr->current < 0 || kr->current >= kr->n)
        return chat__error_set(CHAT_EAUTH, 0, "no token key configured");
    int rc = chat__sodium_init();
    if (rc != CHAT_OK)
        return rc;

    unsigned char bin[BIN_MAX];
    size_t n = 0;
    bin[n++] = CHAT__TOKEN_VERSION;
    bin[n++] = (unsigned char)kr->keys[kr->current].id;
    randombytes_buf(bin + n, CHAT__TOKEN_SESSION_BYTES);
    n += CHAT__TOKEN_SESSION_BYTES;
    put_be64(bin + n, now_ms);
    n += 8;
    put_be64(bin + n, now_ms + ttl_ms);
    n += 8;
    bin[n++] = (unsigned char)ulen;
    memcpy(bin + n, user, ulen);
    n += ulen;
    bin[n++] = (unsigned char)dlen;
    memcpy(bin + n, device, dlen);
    n += dlen;
    crypto_auth(bin + n, bin, n, kr->keys[kr->current].key);
    n += TAG_BYTES;

    size_t enc_len = sodium_base64_ENCODED_LEN(n, B64);
    char *enc = chat__malloc(enc_len);
    if (!enc) {
        rc = chat__error_set(CHAT_ENOMEM, 0, "out of memory issuing a token");
    } else {
        sodium_bin2base64(enc, enc_len, bin, n, B64);
        *out = enc;
    }
    /* The encoded copy is the bearer secret now; do not leave the binary one on the stack. */
    sodium_memzero(bin, sizeof bin);
    return rc;
}

/* The checks that need no key: decode tok into bin and locate the variable fields. */
static int decode(const char *tok, size_t len, unsigned char *bin, size_t *bin_len,
                  size_t *ulen, size_t *dlen)
{
    const char *end = NULL;
    if (len < CHAT__TOKEN_MIN_CHARS || len > CHAT__TOKEN_MAX_CHARS)
        return 0;
    /* libsodium 1.0.18 decodes every byte 0x80-0xff as '_', so a token would have 128
     * spellings per '_'. Found by tests/fuzz/fuzz_token.c. */
    if (!chat__b64url_chars_valid(tok, len))
        return 0;
    /* Fails on any other non-alphabet byte (no ignore set), padding, or non-zero trailing bits. */
    if (sodium_base642bin(bin, BIN_MAX, tok, len, NULL, bin_len, &end, B64) != 0 ||
        end != tok + len)
        return 0;
    if (*bin_len < OFF_ULEN + 1 || bin[0] != CHAT__TOKEN_VERSION)
        return 0;
    *ulen = bin[OFF_ULEN];
    if (*ulen < 1 || *ulen > CHAT__ID_MAX || OFF_ULEN + 1 + *ulen >= *bin_len)
        return 0;
    *dlen = bin[OFF_ULEN + 1 + *ulen];
    if (*dlen < 1 || *dlen > CHAT__ID_MAX ||
        OFF_ULEN + 1 + *ulen + 1 + *dlen + TAG_BYTES != *bin_len)
        return 0;
    return 1;
}

int chat__token_verify(const chat__keyring *kr, const char *tok, size_t len, int64_t now_ms,
                       chat__token *out)
{
    if (!kr || !tok)
        return chat__error_set(CHAT_EINVAL, 0, "token: NULL argument");
    int rc = chat__sodium_init();
    if (rc != CHAT_OK)
        return rc;

    unsigned char bin[BIN_MAX];
    size_t n = 0, ulen = 0, dlen = 0;
    const unsigned char *key = NULL;
    const char *user, *device;
    chat__token t;
    if (!decode(tok, len, bin, &n, &ulen, &dlen)) {
        rc = chat__error_set(CHAT_EAUTH, 0, "malformed token");
        goto done;
    }
    key = chat__keyring_find(kr, bin[OFF_KEY]);
    if (!key) {
        rc = chat__error_set(CHAT_EAUTH, 0, "unknown key id %u", (unsigned)bin[OFF_KEY]);
        goto done;
    }
    if (crypto_auth_verify(bin + n - TAG_BYTES, bin, n - TAG_BYTES, key) != 0) {
        rc = chat__error_set(CHAT_EAUTH, 0, "bad signature");
        goto done;
    }
    /* Authentic from here on: the fields are ours, but still checked against the clock. */
    t.iat_ms = get_be64(bin + OFF_IAT);
    t.exp_ms = get_be64(bin + OFF_EXP);
    if (now_ms < INT64_MAX - CHAT__TOKEN_SKEW_MS && t.iat_ms > now_ms + CHAT__TOKEN_SKEW_MS) {
        rc = chat__error_set(CHAT_EAUTH, 0, "token not yet valid");
        goto done;
    }
    if (now_ms >= t.exp_ms) {
        rc = chat__error_set(CHAT_EAUTH, 0, "token expired");
        goto done;
    }
    user = (const char *)bin + OFF_ULEN + 1;
    device = user + ulen + 1;
    if (!chat__id_valid(user, ulen) || !chat__id_valid(device, dlen)) {
        rc = chat__error_set(CHAT_EAUTH, 0, "token has invalid ids");
        goto done;
    }
    if (out) {
        t.key_id = bin[OFF_KEY];
        sodium_bin2hex(t.session, sizeof t.session, bin + OFF_SESSION,
                       CHAT__TOKEN_SESSION_BYTES);
        memcpy(t.user, user, ulen);
        t.user[ulen] = '\0';
        memcpy(t.device, device, dlen);
        t.device[dlen] = '\0';
        *out = t;
    }
    rc = CHAT_OK;
done:
    sodium_memzero(bin, sizeof bin);
    return rc;
}
