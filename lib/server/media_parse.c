/* Media input checked without a socket or a server; see media_parse.h.
 *
 * URL scheme (doc/media.md): /media/<id>?e=<exp seconds>&s=<scope>&t=<mime, base64url>
 * &k=<key id>&sig=<hex HMAC-SHA-512-256>. The MAC key is derived from the token key k (keyed
 * BLAKE2b of a fixed label), so rotating token keys rotates URL keys; the MAC covers the label,
 * the id, the expiry, the scope, the mime type and the key id, each length-delimited. A URL
 * has one spelling only: a cache in front keys on the URL text, so a second spelling that
 * verifies is a way around the cache to the origin. */
#include "server/media_parse.h"

#include "chat/errors.h"
#include "core/utf8.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define URL_LABEL "libchat media url v2"

int chat__media_id_valid(const char *s, size_t n)
{
    if (!s || n != CHAT__MEDIA_ID_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* ---- signed URLs ---- */

static int url_key(const chat__keyring *kr, unsigned kid,
                   unsigned char out[crypto_auth_KEYBYTES])
{
    const unsigned char *k = chat__keyring_find(kr, kid);
    if (!k)
        return CHAT_EAUTH;
    crypto_generichash(out, crypto_auth_KEYBYTES, (const unsigned char *)URL_LABEL,
                       sizeof URL_LABEL - 1, k, CHAT__KEY_BYTES);
    return CHAT_OK;
}

static void mac_field(crypto_auth_hmacsha512256_state *st, const char *s)
{
    size_t n = strlen(s);
    unsigned char len[2] = {(unsigned char)(n >> 8), (unsigned char)n};
    crypto_auth_hmacsha512256_update(st, len, 2);
    crypto_auth_hmacsha512256_update(st, (const unsigned char *)s, n);
}

/* The MAC of a URL; e and k as their decimal text. */
static void url_mac(const unsigned char *key, const char *id, const char *exp, const char *scope,
                    const char *mime, const char *kid, unsigned char tag[crypto_auth_BYTES])
{
    crypto_auth_hmacsha512256_state st;
    crypto_auth_hmacsha512256_init(&st, key, crypto_auth_KEYBYTES);
    mac_field(&st, URL_LABEL);
    mac_field(&st, id);
    mac_field(&st, exp);
    mac_field(&st, scope);
    mac_field(&st, mime);
    mac_field(&st, kid);
    crypto_auth_hmacsha512256_final(&st, tag);
    sodium_memzero(&st, sizeof st);
}

#define T_MAX sodium_base64_ENCODED_LEN(CHAT_MEDIA_STR_MAX, sodium_base64_VARIANT_URLSAFE_NO_PADDING)

int chat__media_sign(const chat__keyring *kr, const char *id, const char *scope,
                     const char *mime, int64_t exp_s, char *out, size_t size)
{
    if (!kr || !id || !scope || !mime || !out || !chat__media_id_valid(id, strlen(id)) ||
        !chat__id_valid(scope, strlen(scope)) || !mime[0] ||
        strlen(mime) > CHAT_MEDIA_STR_MAX || exp_s < 0 || exp_s > 999999999999999999LL)
        return CHAT_EINVAL;
    if (kr->n == 0)
        return CHAT_EAUTH;
    unsigned kid = kr->keys[kr->current].id;
    unsigned char key[crypto_auth_KEYBYTES], tag[crypto_auth_BYTES];
    if (url_key(kr, kid, key) != CHAT_OK)
        return CHAT_EAUTH;
    char exp[24], k[8], hex[2 * crypto_auth_BYTES + 1], t[T_MAX];
    snprintf(exp, sizeof exp, "%" PRId64, exp_s);
    snprintf(k, sizeof k, "%u", kid);
    url_mac(key, id, exp, scope, mime, k, tag);
    sodium_memzero(key, sizeof key);
    sodium_bin2hex(hex, sizeof hex, tag, sizeof tag);
    sodium_bin2base64(t, sizeof t, (const unsigned char *)mime, strlen(mime),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    int n = snprintf(out, size, CHAT__MEDIA_PREFIX "%s?e=%s&s=%s&t=%s&k=%s&sig=%s", id, exp,
                     scope, t, k, hex);
    return n > 0 && (size_t)n < size ? CHAT_OK : CHAT_EINVAL;
}

/* Canonical decimal: "0" or a non-zero digit and then digits, at most max_digits, at most
 * max_value. */
static int canonical_decimal(const char *s, size_t n, size_t max_digits, uint64_t max_value,
                             uint64_t *out)
{
    if (n == 0 || n > max_digits || (n > 1 && s[0] == '0'))
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(s[i] - '0'); /* max_digits <= 19: no overflow */
    }
    if (v > max_value)
        return 0;
    *out = v;
    return 1;
}

static int lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int chat__media_query_parse(const char *q, size_t len, chat__media_url *out)
{
    static const char *const names[5] = {"e", "s", "t", "k", "sig"};
    const char *val[5];
    size_t vlen[5];
    const char *p = q, *end = q ? q + len : NULL;
    if (!q || !out)
        return CHAT_EAUTH;
    for (int i = 0; i < 5; i++) {
        size_t nl = strlen(names[i]);
        if ((size_t)(end - p) < nl + 1 || memcmp(p, names[i], nl) != 0 || p[nl] != '=')
            return CHAT_EAUTH;
        p += nl + 1;
        val[i] = p;
        while (p < end && *p != '&')
            p++;
        vlen[i] = (size_t)(p - val[i]);
        if (i < 4) {
            if (p == end)
                return CHAT_EAUTH;
            p++; /* the '&' */
        }
    }
    if (p != end)
        return CHAT_EAUTH;

    chat__media_url u;
    memset(&u, 0, sizeof u);
    uint64_t v = 0;
    if (!canonical_decimal(val[0], vlen[0], CHAT__MEDIA_EXP_DIGITS, UINT64_MAX, &v))
        return CHAT_EAUTH;
    u.exp_s = (int64_t)v;
    if (!chat__id_valid(val[1], vlen[1]))
        return CHAT_EAUTH;
    memcpy(u.scope, val[1], vlen[1]);
    /* t: the base64url alphabet first (libsodium 1.0.18 decodes bytes 0x80-0xff as '_'), then
     * the decoded type must encode back to exactly t (no padding, no stray low bits). */
    size_t mlen = 0;
    char t[T_MAX];
    if (vlen[2] == 0 || vlen[2] >= sizeof t || !chat__b64url_chars_valid(val[2], vlen[2]) ||
        sodium_base642bin((unsigned char *)u.mime, CHAT_MEDIA_STR_MAX, val[2], vlen[2], NULL,
                          &mlen, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        mlen == 0 || memchr(u.mime, 0, mlen))
        return CHAT_EAUTH;
    u.mime[mlen] = 0;
    sodium_bin2base64(t, sizeof t, (const unsigned char *)u.mime, mlen,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    if (strlen(t) != vlen[2] || memcmp(t, val[2], vlen[2]) != 0)
        return CHAT_EAUTH;
    if (!canonical_decimal(val[3], vlen[3], 3, CHAT__KEY_ID_MAX, &v))
        return CHAT_EAUTH;
    u.kid = (unsigned)v;
    if (vlen[4] != 2 * sizeof u.sig || !lower_hex(val[4], vlen[4]) ||
        sodium_hex2bin(u.sig, sizeof u.sig, val[4], vlen[4], NULL, NULL, NULL) != 0)
        return CHAT_EAUTH;
    *out = u;
    return CHAT_OK;
}

int chat__media_verify(const chat__keyring *kr, int64_t now_ms, const char *id, size_t id_len,
                       const char *q, size_t q_len, chat__media_url *out)
{
    chat__media_url u;
    unsigned char key[crypto_auth_KEYBYTES], want[crypto_auth_BYTES];
    if (!kr || !chat__media_id_valid(id, id_len) ||
        chat__media_query_parse(q, q_len, &u) != CHAT_OK || url_key(kr, u.kid, key) != CHAT_OK)
        return CHAT_EAUTH;
    char idz[CHAT__MEDIA_ID_LEN + 1], exp[24], k[8];
    memcpy(idz, id, CHAT__MEDIA_ID_LEN);
    idz[CHAT__MEDIA_ID_LEN] = 0;
    snprintf(exp, sizeof exp, "%" PRId64, u.exp_s);
    snprintf(k, sizeof k, "%u", u.kid);
    url_mac(key, idz, exp, u.scope, u.mime, k, want);
    sodium_memzero(key, sizeof key);
    int ok = crypto_verify_32(want, u.sig) == 0;
    sodium_memzero(want, sizeof want);
    if (!ok)
        return CHAT_EAUTH;
    if (out)
        *out = u;
    /* exp_s * 1000 <= now_ms, without overflowing for an 18-digit e */
    if (u.exp_s <= INT64_MAX / 1000 && u.exp_s * 1000 <= now_ms)
        return CHAT_ETIMEDOUT;
    return CHAT_OK;
}

/* ---- HTTP header values ---- */

int chat__media_parse_u64(const char *s, uint64_t *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 20) /* 2^64 - 1 has 20 digits */
        return -1;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int chat__media_parse_range(const char *r, uint64_t size, uint64_t *from, uint64_t *to)
{
    if (strncmp(r, "bytes=", 6) != 0 || strchr(r, ','))
        return 0;
    r += 6;
    const char *dash = strchr(r, '-');
    if (!dash)
        return 0;
    char a[24] = "", b[24] = ""; /* longer than any number parse_u64 takes */
    size_t la = (size_t)(dash - r), lb = strlen(dash + 1);
    if (la >= sizeof a || lb >= sizeof b)
        return 0;
    memcpy(a, r, la);
    memcpy(b, dash + 1, lb + 1);
    uint64_t x = 0, y = 0;
    if (!la) {
        if (chat__media_parse_u64(b, &y))
            return 0;
        if (y == 0 || size == 0)
            return -1;
        *from = y >= size ? 0 : size - y;
        *to = size - 1;
        return 1;
    }
    if (chat__media_parse_u64(a, &x) || (lb && chat__media_parse_u64(b, &y)))
        return 0;
    if (lb && y < x)
        return 0;
    if (x >= size)
        return -1;
    *from = x;
    *to = lb && y < size ? y : size - 1;
    return 1;
}

int chat__media_utf8_ok(const unsigned char *s, size_t n)
{
    return chat__utf8_valid(s, n);
}

/* Standard base64 characters, '=' padding, and the spaces sodium is told to ignore. */
static int b64_std_chars(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '+' || *s == '/' || *s == '=' || *s == ' '))
            return 0;
    return 1;
}

int chat__media_parse_metadata(const char *s, char *name, char *mime)
{
    char item[700];
    int seen_name = 0, seen_type = 0;
    while (*s) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        if (n >= sizeof item)
            return -1;
        memcpy(item, s, n);
        item[n] = 0;
        s += n + (comma ? 1 : 0);
        char *k = item;
        while (*k == ' ')
            k++;
        char *v = strchr(k, ' ');
        if (v)
            *v++ = 0;
        int *seen = strcmp(k, "name") == 0 ? &seen_name : strcmp(k, "type") == 0 ? &seen_type
                                                                                  : NULL;
        if (seen && (*seen)++)
            return -1; /* a key twice: two readers could take different ones */
        char *dst = seen == &seen_name ? name : seen == &seen_type ? mime : NULL;
        if (!dst || !v)
            continue;
        size_t got = 0;
        if (!b64_std_chars(v) ||
            sodium_base642bin((unsigned char *)dst, CHAT_MEDIA_STR_MAX, v, strlen(v), " ", &got,
                              NULL, sodium_base64_VARIANT_ORIGINAL) != 0)
            return -1;
        dst[got] = 0;
        if (strlen(dst) != got)
            return -1;
        for (size_t i = 0; i < got; i++)
            if ((unsigned char)dst[i] < 0x20 || dst[i] == 0x7f)
                return -1;
        if (!chat__media_utf8_ok((const unsigned char *)dst, got))
            return -1;
    }
    return 0;
}

int chat__media_mime_ok(const char *m)
{
    const char *slash = strchr(m, '/');
    if (!slash || slash == m || !slash[1])
        return 0;
    for (; *m; m++)
        if (*m <= ' ' || *m >= 0x7f || *m == '"' || *m == ',')
            return 0;
    return 1;
}
