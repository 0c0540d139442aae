/* Fuzz target: session token decoding and verification (lib/auth/token.c).
 *
 * Byte 0 picks a mode; the rest is its input.
 *  0: the bytes are a token, verified at a fixed time against a keyring of ids 1 and 7. Nothing
 *     the fuzzer writes can carry a valid MAC, so verification must fail, with CHAT_EAUTH.
 *  1: the harness builds the binary token itself from the input (any version, key id, lengths,
 *     ids, times), MACs it with key 1 and encodes it: the parser then sees structures it could
 *     never reach through the MAC. Verification succeeds exactly when the structure is a
 *     well-formed version-1 token, the ids are valid, and the time is within [iat - 60 s, exp);
 *     a token that verifies yields exactly the fields that went in.
 *  2: the harness issues a real token for ids and times from the input, then changes it as the
 *     input says (one byte replaced, truncated or extended). The unchanged token verifies with
 *     the fields issued; any changed text fails; so does the same token under a keyring whose
 *     key 1 differs or that lacks id 1.
 * So a token that verifies was minted with the key. */
#include "fuzz.h"

#include "auth/token.h"
#include "chat/errors.h"
#include "core/alloc.h"
#include "core/ids.h"

#include <sodium.h>
#include <string.h>

#define NOW_MS 1700000000000LL

static chat__keyring ring, ring_other_key, ring_no_key;

static void setup(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    FUZZ_CHECK(chat__sodium_init() == CHAT_OK);
    unsigned char k1[32], k7[32], kx[32];
    memset(k1, 0x11, sizeof k1);
    memset(k7, 0x77, sizeof k7);
    memset(kx, 0x5a, sizeof kx);
    FUZZ_CHECK(chat__keyring_add(&ring, 7, k7, 32) == CHAT_OK);
    FUZZ_CHECK(chat__keyring_add(&ring, 1, k1, 32) == CHAT_OK);
    FUZZ_CHECK(chat__keyring_add(&ring_other_key, 1, kx, 32) == CHAT_OK);
    FUZZ_CHECK(chat__keyring_add(&ring_no_key, 7, k7, 32) == CHAT_OK);
}

static int64_t be64(const uint8_t *p)
{
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = u << 8 | p[i];
    return (int64_t)u;
}

/* Mode 1. Input: version, key_id, ulen, dlen, then 8 bytes iat offset, 8 bytes exp offset (both
 * relative to NOW_MS, signed), then user and device bytes, then extra bytes appended before the
 * tag (a length the decoder must refuse). */
static void structured(const uint8_t *in, size_t n)
{
    if (n < 20)
        return;
    unsigned char bin[34 + 1 + 255 + 1 + 255 + 64 + 32]; /* the most this input can make */
    size_t ulen = in[2], dlen = in[3];
    int64_t iat = (int64_t)((uint64_t)NOW_MS + (uint64_t)be64(in + 4));
    int64_t exp = (int64_t)((uint64_t)NOW_MS + (uint64_t)be64(in + 12));
    const uint8_t *ids = in + 20;
    size_t avail = n - 20;
    size_t ucopy = ulen < avail ? ulen : avail;
    size_t dcopy = dlen < avail - ucopy ? dlen : avail - ucopy;
    size_t extra = avail - ucopy - dcopy;
    if (extra > 64)
        extra = 64;
    size_t k = 0;
    bin[k++] = in[0];
    bin[k++] = in[1];
    memset(bin + k, 0xab, 16);
    k += 16;
    for (int i = 7; i >= 0; i--)
        bin[k + (size_t)(7 - i)] = (unsigned char)((uint64_t)iat >> (8 * i));
    k += 8;
    for (int i = 7; i >= 0; i--)
        bin[k + (size_t)(7 - i)] = (unsigned char)((uint64_t)exp >> (8 * i));
    k += 8;
    bin[k++] = (unsigned char)ulen;
    memcpy(bin + k, ids, ucopy);
    k += ucopy;
    bin[k++] = (unsigned char)dlen;
    memcpy(bin + k, ids + ucopy, dcopy);
    k += dcopy;
    memcpy(bin + k, ids + ucopy + dcopy, extra);
    k += extra;
    const unsigned char *key = chat__keyring_find(&ring, 1);
    crypto_auth(bin + k, bin, k, key);
    k += crypto_auth_BYTES;
    char enc[sizeof bin * 4 / 3 + 4];
    sodium_bin2base64(enc, sizeof enc, bin, k, sodium_base64_VARIANT_URLSAFE_NO_PADDING);

    int well_formed = in[0] == CHAT__TOKEN_VERSION && in[1] == 1 && ulen == ucopy &&
                      dlen == dcopy && extra == 0 && chat__id_valid((const char *)ids, ulen) &&
                      chat__id_valid((const char *)ids + ulen, dlen);
    int in_time = iat <= NOW_MS + CHAT__TOKEN_SKEW_MS && NOW_MS < exp;
    chat__token t;
    int rc = chat__token_verify(&ring, enc, strlen(enc), NOW_MS, &t);
    FUZZ_CHECK(rc == CHAT_OK || rc == CHAT_EAUTH);
    FUZZ_CHECK((rc == CHAT_OK) == (well_formed && in_time));
    if (rc == CHAT_OK) {
        /* The same token spelt differently: a byte outside the base64url alphabet in place of
         * one of its characters (the fuzzer picks which, and the byte). */
        size_t len = strlen(enc), pos = (size_t)in[4] % len;
        char c = enc[pos];
        enc[pos] = (char)(0x80 | in[5]);
        FUZZ_CHECK(chat__token_verify(&ring, enc, len, NOW_MS, NULL) == CHAT_EAUTH);
        enc[pos] = c;
        FUZZ_CHECK(t.key_id == 1 && t.iat_ms == iat && t.exp_ms == exp);
        FUZZ_CHECK(strlen(t.user) == ulen && memcmp(t.user, ids, ulen) == 0);
        FUZZ_CHECK(strlen(t.device) == dlen && memcmp(t.device, ids + ulen, dlen) == 0);
        FUZZ_CHECK(strcmp(t.session, "abababababababababababababababab") == 0);
    }
}

/* Mode 2. Input: what to change (0 replace, 1 truncate, 2 append, 3 nothing), where, the new
 * byte, ttl (2 bytes, seconds), then "user\0device". */
static void mutated(const uint8_t *in, size_t n)
{
    if (n < 6)
        return;
    char ids[130] = {0};
    size_t idn = n - 5 < sizeof ids - 1 ? n - 5 : sizeof ids - 1;
    memcpy(ids, in + 5, idn);
    const char *user = ids, *device = ids + strlen(ids) + 1;
    if (device > ids + idn)
        device = "d";
    int64_t ttl = ((int64_t)in[3] << 8 | in[4]) * 1000;
    char *tok = NULL;
    int rc = chat__token_issue(&ring, user, device, NOW_MS, ttl, &tok);
    if (rc != CHAT_OK) {
        FUZZ_CHECK(rc == CHAT_EINVAL);
        FUZZ_CHECK(ttl <= 0 || !chat__id_valid(user, strnlen(user, 65)) ||
                   !chat__id_valid(device, strnlen(device, 65)));
        return;
    }
    size_t len = strlen(tok);
    chat__token t;
    FUZZ_CHECK(chat__token_verify(&ring, tok, len, NOW_MS, &t) == CHAT_OK);
    FUZZ_CHECK(strcmp(t.user, user) == 0 && strcmp(t.device, device) == 0);
    FUZZ_CHECK(t.iat_ms == NOW_MS && t.exp_ms == NOW_MS + ttl && t.key_id == 1);
    FUZZ_CHECK(chat__token_verify(&ring, tok, len, NOW_MS + ttl, NULL) == CHAT_EAUTH);
    FUZZ_CHECK(chat__token_verify(&ring_other_key, tok, len, NOW_MS, NULL) == CHAT_EAUTH);
    FUZZ_CHECK(chat__token_verify(&ring_no_key, tok, len, NOW_MS, NULL) == CHAT_EAUTH);

    char buf[300];
    memcpy(buf, tok, len);
    size_t blen = len, pos = in[1] % len;
    switch (in[0] & 3) {
    case 0:
        if (buf[pos] == (char)in[2])
            break;
        buf[pos] = (char)in[2];
        if (chat__token_verify(&ring, buf, blen, NOW_MS, NULL) != CHAT_EAUTH)
            fprintf(stderr, "issued %s\nchanged %.*s\n", tok, (int)blen, buf);
        FUZZ_CHECK(chat__token_verify(&ring, buf, blen, NOW_MS, NULL) == CHAT_EAUTH);
        break;
    case 1:
        blen = pos;
        FUZZ_CHECK(chat__token_verify(&ring, buf, blen, NOW_MS, NULL) == CHAT_EAUTH);
        break;
    case 2:
        buf[blen++] = (char)in[2];
        FUZZ_CHECK(chat__token_verify(&ring, buf, blen, NOW_MS, NULL) == CHAT_EAUTH);
        break;
    default:
        break;
    }
    chat__free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0: {
        chat__token t;
        int rc = chat__token_verify(&ring, (const char *)data + 1, size - 1, NOW_MS, &t);
        FUZZ_CHECK(rc == CHAT_EAUTH);
        break;
    }
    case 1:
        structured(data + 1, size - 1);
        break;
    default:
        mutated(data + 1, size - 1);
        break;
    }
    return 0;
}
