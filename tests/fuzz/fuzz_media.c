/* Fuzz target: media input (lib/server/media_parse.c), checked against independent models.
 *
 * Byte 0 picks a mode; the rest is its input.
 *  0: media id. Valid exactly when 64 bytes of [0-9a-f]; a valid one never holds '/' or "..".
 *  1: decimal header value. Accepted exactly when 1..20 ASCII digits within 2^64 - 1, with
 *     their value.
 *  2: Range against a size from the input. The result matches a model of RFC 9110's
 *     byte-range spec as documented (1/0/-1); a range that parses has 0 <= from <= to < size,
 *     and "bytes=<from>-<to>" printed back parses to the same range.
 *  3: the bytes as a download URL query. Verification must fail (the fuzzer cannot make a MAC);
 *     a query that parses at all is exactly the canonical text printed back from its fields (one
 *     spelling).
 *  4: the harness signs a URL for an expiry, scope and mime type from the input, then changes it
 *     as the input says (one byte replaced, inserted or removed). Signing succeeds exactly for
 *     valid arguments; the signed URL verifies with exactly the fields signed (or is expired,
 *     exactly when it is); under another key with the same id, or without the id, it fails; any
 *     changed text fails. So a URL that verifies was signed with the key.
 *  5: Upload-Metadata. What parses is well-formed UTF-8 without control characters, at most
 *     255 bytes, and encoding it back parses to the same.
 *  6: mime type check against a model. */
#include "fuzz.h"

#include "chat/errors.h"
#include "server/media_parse.h"

#include <inttypes.h>
#include <sodium.h>
#include <string.h>

#define NOW_MS 1764331200000LL

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

/* in[0..n) as a C string (cut at the first NUL, at most size - 1 bytes). */
static char *cstr(const uint8_t *in, size_t n, char *buf, size_t size)
{
    size_t k = n < size - 1 ? n : size - 1;
    memcpy(buf, in, k);
    buf[k] = 0;
    return buf;
}

static int is_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* ---- 0, 1 ---- */

static void media_id(const uint8_t *in, size_t n)
{
    int model = n == 64;
    for (size_t i = 0; model && i < n; i++)
        model = (in[i] >= '0' && in[i] <= '9') || (in[i] >= 'a' && in[i] <= 'f');
    int valid = chat__media_id_valid((const char *)in, n);
    FUZZ_CHECK(valid == model);
    if (valid) {
        FUZZ_CHECK(!memchr(in, '/', n) && !memchr(in, '.', n) && !memchr(in, 0, n));
    }
}

/* The value of a digit string, exactly: 1 with *v set if it fits in 64 bits. */
static int model_value(const char *s, size_t n, uint64_t *v)
{
    unsigned __int128 x = 0;
    for (size_t i = 0; i < n; i++) {
        x = x * 10 + (unsigned)(s[i] - '0');
        if (x > UINT64_MAX)
            return 0;
    }
    *v = (uint64_t)x;
    return 1;
}

static void decimal(const uint8_t *in, size_t n)
{
    char buf[40];
    cstr(in, n, buf, sizeof buf);
    size_t len = strlen(buf);
    uint64_t mv = 0;
    int model = len >= 1 && len <= 20 && is_digits(buf, len) && model_value(buf, len, &mv);
    uint64_t v = 12345;
    int rc = chat__media_parse_u64(buf, &v);
    FUZZ_CHECK((rc == 0) == model);
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (model)
        FUZZ_CHECK(v == mv);
    else
        FUZZ_CHECK(v == 12345);
}

/* ---- 2 ---- */

/* A digit string of 1..20 digits within 64 bits: 1 with *v set. */
static int model_num(const char *s, size_t n, uint64_t *v)
{
    return n >= 1 && n <= 20 && is_digits(s, n) && model_value(s, n, v);
}

static int model_range(const char *r, uint64_t size, uint64_t *from, uint64_t *to)
{
    size_t n = strlen(r);
    if (n < 6 || memcmp(r, "bytes=", 6) != 0 || strchr(r, ','))
        return 0;
    const char *spec = r + 6, *dash = strchr(spec, '-');
    if (!dash)
        return 0;
    size_t la = (size_t)(dash - spec), lb = strlen(dash + 1);
    uint64_t a = 0, b = 0;
    if (la == 0) { /* suffix: the last b bytes */
        if (!model_num(dash + 1, lb, &b))
            return 0;
        if (b == 0 || size == 0)
            return -1;
        *from = b >= size ? 0 : size - b;
        *to = size - 1;
        return 1;
    }
    if (!model_num(spec, la, &a) || (lb > 0 && !model_num(dash + 1, lb, &b)))
        return 0;
    if (lb > 0 && b < a)
        return 0;
    if (a >= size)
        return -1;
    *from = a;
    *to = lb > 0 && b < size - 1 ? b : size - 1;
    return 1;
}

static void range(const uint8_t *in, size_t n)
{
    if (n < 9)
        return;
    uint64_t size = 0;
    if (in[0] & 1) {
        size = in[1] % 16; /* small sizes: the edges */
    } else {
        for (int i = 1; i < 9; i++)
            size = size << 8 | in[i];
    }
    char r[160];
    cstr(in + 9, n - 9, r, sizeof r);
    uint64_t from = 7, to = 7, mfrom = 0, mto = 0;
    int rc = chat__media_parse_range(r, size, &from, &to);
    int model = model_range(r, size, &mfrom, &mto);
    FUZZ_CHECK(rc == model);
    if (rc != 1)
        return;
    FUZZ_CHECK(from == mfrom && to == mto);
    FUZZ_CHECK(from <= to && to < size);
    char again[64];
    snprintf(again, sizeof again, "bytes=%" PRIu64 "-%" PRIu64, from, to);
    uint64_t f2 = 0, t2 = 0;
    FUZZ_CHECK(chat__media_parse_range(again, size, &f2, &t2) == 1);
    FUZZ_CHECK(f2 == from && t2 == to);
}

/* ---- 3, 4 ---- */

#define ID "e93156aed53759ed6ce213144ddc92deccc401d8bbc4fe71a3f5f4bc6586d4e5"

/* The canonical query of u. */
static void print_query(const chat__media_url *u, char *out, size_t size)
{
    char t[400], hex[65];
    sodium_bin2base64(t, sizeof t, (const unsigned char *)u->mime, strlen(u->mime),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_bin2hex(hex, sizeof hex, u->sig, sizeof u->sig);
    snprintf(out, size, "e=%" PRId64 "&s=%s&t=%s&k=%u&sig=%s", u->exp_s, u->scope, t, u->kid,
             hex);
}

static void query(const uint8_t *in, size_t n)
{
    const char *q = (const char *)in;
    FUZZ_CHECK(chat__media_verify(&ring, NOW_MS, ID, 64, q, n, NULL) == CHAT_EAUTH);
    chat__media_url u;
    if (chat__media_query_parse(q, n, &u) != CHAT_OK)
        return;
    char again[1024];
    print_query(&u, again, sizeof again);
    FUZZ_CHECK(strlen(again) == n && memcmp(again, q, n) == 0);
    FUZZ_CHECK(chat__id_valid(u.scope, strlen(u.scope)) && u.mime[0] && u.kid <= 255);
}

/* Verify "/media/<id>?<query>" the way the HTTP side splits it. */
static int verify_url(const chat__keyring *kr, const char *url, size_t len,
                      chat__media_url *out)
{
    if (len < 7 || memcmp(url, "/media/", 7) != 0)
        return CHAT_EAUTH;
    const char *id = url + 7, *qm = memchr(id, '?', len - 7);
    if (!qm)
        return CHAT_EAUTH;
    return chat__media_verify(kr, NOW_MS, id, (size_t)(qm - id), qm + 1,
                              len - (size_t)(qm + 1 - url), out);
}

/* Input: what to change (0 replace, 1 insert, 2 remove, 3 nothing), where (2 bytes), the byte,
 * expiry (8 bytes, big-endian, signed), then "scope\0mime". */
static void signed_url(const uint8_t *in, size_t n)
{
    if (n < 12)
        return;
    int64_t exp = 0;
    for (int i = 4; i < 12; i++)
        exp = (int64_t)((uint64_t)exp << 8 | in[i]);
    if (in[0] & 4) /* mostly plausible expiries around now */
        exp = NOW_MS / 1000 + (int8_t)in[5] * 60;
    char rest[600];
    size_t rn = n - 12 < sizeof rest - 2 ? n - 12 : sizeof rest - 2;
    memcpy(rest, in + 12, rn);
    rest[rn] = rest[rn + 1] = 0;
    const char *scope = rest, *mime = rest + strlen(rest) + 1;
    if (mime > rest + rn)
        mime = "";
    char url[1024];
    int rc = chat__media_sign(&ring, ID, scope, mime, exp, url, sizeof url);
    int args_ok = chat__id_valid(scope, strlen(scope)) && mime[0] &&
                  strlen(mime) <= CHAT_MEDIA_STR_MAX && exp >= 0 &&
                  exp <= 999999999999999999LL;
    FUZZ_CHECK((rc == CHAT_OK) == args_ok);
    if (rc != CHAT_OK) {
        FUZZ_CHECK(rc == CHAT_EINVAL);
        return;
    }
    size_t len = strlen(url);
    chat__media_url u;
    int want = exp <= INT64_MAX / 1000 && exp * 1000 <= NOW_MS ? CHAT_ETIMEDOUT : CHAT_OK;
    FUZZ_CHECK(verify_url(&ring, url, len, &u) == want);
    FUZZ_CHECK(u.exp_s == exp && u.kid == 1 && strcmp(u.scope, scope) == 0 &&
               strcmp(u.mime, mime) == 0);
    FUZZ_CHECK(verify_url(&ring_other_key, url, len, NULL) == CHAT_EAUTH);
    FUZZ_CHECK(verify_url(&ring_no_key, url, len, NULL) == CHAT_EAUTH);

    char bad[1100];
    size_t pos = ((size_t)in[1] << 8 | in[2]) % (len + 1), blen = len;
    memcpy(bad, url, len);
    switch (in[0] & 3) {
    case 0:
        if (pos == len || bad[pos] == (char)in[3])
            return;
        bad[pos] = (char)in[3];
        break;
    case 1:
        memmove(bad + pos + 1, bad + pos, len - pos);
        bad[pos] = (char)in[3];
        blen++;
        break;
    case 2:
        if (pos == len)
            return;
        memmove(bad + pos, bad + pos + 1, len - pos - 1);
        blen--;
        break;
    default:
        return;
    }
    rc = verify_url(&ring, bad, blen, NULL);
    if (rc != CHAT_EAUTH)
        fprintf(stderr, "signed  %s\nchanged %.*s\n", url, (int)blen, bad);
    FUZZ_CHECK(rc == CHAT_EAUTH);
}

/* ---- 5, 6 ---- */

static void metadata(const uint8_t *in, size_t n)
{
    char s[1024], name[CHAT_MEDIA_STR_MAX + 1] = "", mime[CHAT_MEDIA_STR_MAX + 1] = "";
    cstr(in, n, s, sizeof s);
    if (chat__media_parse_metadata(s, name, mime) != 0)
        return;
    const char *vals[2] = {name, mime};
    for (int i = 0; i < 2; i++) {
        size_t len = strlen(vals[i]);
        FUZZ_CHECK(len <= CHAT_MEDIA_STR_MAX);
        FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)vals[i], len));
        for (size_t k = 0; k < len; k++)
            FUZZ_CHECK((unsigned char)vals[i][k] >= 0x20 && vals[i][k] != 0x7f);
    }
    char bn[400], bm[400], again[900], n2[CHAT_MEDIA_STR_MAX + 1] = "",
                                        m2[CHAT_MEDIA_STR_MAX + 1] = "";
    sodium_bin2base64(bn, sizeof bn, (const unsigned char *)name, strlen(name),
                      sodium_base64_VARIANT_ORIGINAL);
    sodium_bin2base64(bm, sizeof bm, (const unsigned char *)mime, strlen(mime),
                      sodium_base64_VARIANT_ORIGINAL);
    snprintf(again, sizeof again, "name %s,type %s", bn, bm);
    FUZZ_CHECK(chat__media_parse_metadata(again, n2, m2) == 0);
    FUZZ_CHECK(strcmp(n2, name) == 0 && strcmp(m2, mime) == 0);
}

static void mime_type(const uint8_t *in, size_t n)
{
    char m[300];
    cstr(in, n, m, sizeof m);
    size_t len = strlen(m);
    const char *slash = strchr(m, '/');
    int model = slash && slash != m && (size_t)(slash - m) + 1 < len;
    for (size_t i = 0; model && i < len; i++) {
        unsigned char c = (unsigned char)m[i];
        model = c > 0x20 && c < 0x7f && c != '"' && c != ',';
    }
    FUZZ_CHECK(chat__media_mime_ok(m) == model);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size < 1)
        return 0;
    const uint8_t *in = data + 1;
    size_t n = size - 1;
    switch (data[0] % 7) {
    case 0:
        media_id(in, n);
        break;
    case 1:
        decimal(in, n);
        break;
    case 2:
        range(in, n);
        break;
    case 3:
        query(in, n);
        break;
    case 4:
        signed_url(in, n);
        break;
    case 5:
        metadata(in, n);
        break;
    default:
        mime_type(in, n);
        break;
    }
    return 0;
}
