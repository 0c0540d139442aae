/* Media input without lws or a server (server/media_parse.c): signed URLs (round trip, every
 * field bound by the MAC, expiry, key rotation, one canonical spelling), media ids, Range,
 * decimal header values, Upload-Metadata and mime types. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "chat/errors.h"
#include "server/media_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID "e93156aed53759ed6ce213144ddc92deccc401d8bbc4fe71a3f5f4bc6586d4e5"
#define NOW_MS 1764331200000LL

static void make_ring(chat__keyring *kr, int with_second_key)
{
    unsigned char k1[32], k2[32];
    memset(k1, 1, sizeof k1);
    memset(k2, 2, sizeof k2);
    memset(kr, 0, sizeof *kr);
    assert_int_equal(chat__sodium_init(), CHAT_OK);
    assert_int_equal(chat__keyring_add(kr, 1, k1, sizeof k1), CHAT_OK);
    if (with_second_key)
        assert_int_equal(chat__keyring_add(kr, 2, k2, sizeof k2), CHAT_OK);
}

/* Verify "/media/<id>?<query>" as the HTTP side does. */
static int verify_url(const chat__keyring *kr, int64_t now_ms, const char *url,
                      chat__media_url *out)
{
    assert_int_equal(strncmp(url, "/media/", 7), 0);
    const char *id = url + 7, *q = strchr(id, '?');
    assert_non_null(q);
    return chat__media_verify(kr, now_ms, id, (size_t)(q - id), q + 1, strlen(q + 1), out);
}

/* url with the first occurrence of from replaced by to. */
static const char *replaced(const char *url, const char *from, const char *to)
{
    static char buf[1024];
    const char *at = strstr(url, from);
    assert_non_null(at);
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - url), url, to, at + strlen(from));
    return buf;
}

static void signed_url(const chat__keyring *kr, const char *scope, const char *mime,
                       int64_t exp, char *url, size_t size)
{
    assert_int_equal(chat__media_sign(kr, ID, scope, mime, exp, url, size), CHAT_OK);
}

static void test_media_url_round_trip_and_binding(void **state)
{
    (void)state;
    chat__keyring kr;
    make_ring(&kr, 0);
    char url[1024];
    int64_t exp = NOW_MS / 1000 + 600;
    signed_url(&kr, "bob", "image/svg+xml", exp, url, sizeof url);
    chat__media_url u;
    assert_int_equal(verify_url(&kr, NOW_MS, url, &u), CHAT_OK);
    assert_string_equal(u.mime, "image/svg+xml");
    assert_string_equal(u.scope, "bob");
    assert_int_equal(u.exp_s, exp);
    assert_int_equal(u.kid, 1);
    /* every field is bound */
    assert_int_equal(verify_url(&kr, NOW_MS, replaced(url, "s=bob", "s=mallory"), NULL),
                     CHAT_EAUTH);
    assert_int_equal(verify_url(&kr, NOW_MS, replaced(url, "/media/e", "/media/f"), NULL),
                     CHAT_EAUTH);
    char e1[32], e2[32];
    snprintf(e1, sizeof e1, "e=%lld", (long long)exp);
    snprintf(e2, sizeof e2, "e=%lld", (long long)exp + 1);
    assert_int_equal(verify_url(&kr, NOW_MS, replaced(url, e1, e2), NULL), CHAT_EAUTH);
    /* image/png instead of image/svg+xml */
    const char *t = strstr(url, "&t=") + 3;
    char tfield[64];
    snprintf(tfield, sizeof tfield, "t=%.*s", (int)(strchr(t, '&') - t), t);
    assert_int_equal(verify_url(&kr, NOW_MS, replaced(url, tfield, "t=aW1hZ2UvcG5n"), NULL),
                     CHAT_EAUTH);
    char flipped[1024];
    snprintf(flipped, sizeof flipped, "%s", url);
    char *sig = strstr(flipped, "sig=") + 4;
    sig[10] = sig[10] == '0' ? '1' : '0';
    assert_int_equal(verify_url(&kr, NOW_MS, flipped, NULL), CHAT_EAUTH);
    /* k is bound too: an unknown key, and a known key that did not sign */
    assert_int_equal(verify_url(&kr, NOW_MS, replaced(url, "&k=1&", "&k=7&"), NULL),
                     CHAT_EAUTH);
    /* a missing field */
    *strstr(flipped, "&sig=") = 0;
    assert_int_equal(verify_url(&kr, NOW_MS, flipped, NULL), CHAT_EAUTH);
    /* expiry: valid until e, refused from then on */
    assert_int_equal(verify_url(&kr, exp * 1000 - 1, url, NULL), CHAT_OK);
    assert_int_equal(verify_url(&kr, exp * 1000, url, NULL), CHAT_ETIMEDOUT);
    /* the largest e does not overflow the expiry check */
    signed_url(&kr, "bob", "a/b", 999999999999999999LL, url, sizeof url);
    assert_int_equal(verify_url(&kr, NOW_MS, url, NULL), CHAT_OK);
    assert_int_equal(chat__media_sign(&kr, ID, "bob", "a/b", 1000000000000000000LL, url,
                                      sizeof url),
                     CHAT_EINVAL);
}

static void test_media_url_key_rotation(void **state)
{
    (void)state;
    chat__keyring old, kr;
    make_ring(&old, 0);
    char url[1024], url2[1024];
    int64_t exp = NOW_MS / 1000 + 600;
    signed_url(&old, "bob", "video/mp4", exp, url, sizeof url);
    /* a server that rotated to key 2 still honours URLs of key 1, and signs with key 2 */
    make_ring(&kr, 1);
    assert_int_equal(verify_url(&kr, NOW_MS, url, NULL), CHAT_OK);
    signed_url(&kr, "bob", "video/mp4", exp, url2, sizeof url2);
    assert_non_null(strstr(url2, "&k=2&"));
    assert_int_equal(verify_url(&kr, NOW_MS, url2, NULL), CHAT_OK);
    /* the same key under two ids: the key id is in the MAC, so only the id that signed works */
    chat__keyring twin;
    unsigned char k1[32];
    memset(k1, 1, sizeof k1);
    make_ring(&twin, 0);
    assert_int_equal(chat__keyring_add(&twin, 9, k1, sizeof k1), CHAT_OK);
    assert_int_equal(verify_url(&twin, NOW_MS, url, NULL), CHAT_OK);
    assert_int_equal(verify_url(&twin, NOW_MS, replaced(url, "&k=1&", "&k=9&"), NULL),
                     CHAT_EAUTH);
}

/* Every other spelling of a valid URL is refused, though each decodes to the same fields. */
static void test_media_url_has_one_spelling(void **state)
{
    (void)state;
    chat__keyring kr;
    make_ring(&kr, 0);
    char url[1024], upper[1100];
    int64_t exp = NOW_MS / 1000 + 600;
    /* "text/x" encodes to dGV4dC94: no padding, and mutable last-character bits below */
    signed_url(&kr, "bob", "text/x", exp, url, sizeof url);
    assert_int_equal(verify_url(&kr, NOW_MS, url, NULL), CHAT_OK);
    const char *froms[][2] = {
        {"&k=1&", "&k=01&"},   {"&k=1&", "&k=001&"},  {"&k=1&", "&k=+1&"},
        {"?e=", "?e=0"},       {"?e=", "?e=+"},       {"t=dGV4dC94", "t=dGV4dC94="},
        {"t=dGV4dC94", "t=dGV4dC9\xb8"},              {"t=dGV4dC94", "t=dGV4dC94\xff"},
        {"t=dGV4dC94", "t=dGV4dC95"},                 /* stray low bits */
        {"?e=", "?x=1&e="},    {"&sig=", "&k=1&sig="}, {"&sig=", "&sig=&sig="},
        {"&s=bob", "&s=bob&"}, {"&s=bob&t=dGV4dC94", "&t=dGV4dC94&s=bob"},
        {"&s=bob", "&s=bob&s=bob"},                   {"?e=", "?&e="},
    };
    for (size_t i = 0; i < sizeof froms / sizeof froms[0]; i++)
        assert_int_equal(verify_url(&kr, NOW_MS, replaced(url, froms[i][0], froms[i][1]), NULL),
                         CHAT_EAUTH);
    /* upper-case hex */
    snprintf(upper, sizeof upper, "%s", url);
    for (char *p = strstr(upper, "sig=") + 4; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    assert_int_equal(verify_url(&kr, NOW_MS, upper, NULL), CHAT_EAUTH);
    /* a trailing '&', and a query that stops short */
    snprintf(upper, sizeof upper, "%s&", url);
    assert_int_equal(verify_url(&kr, NOW_MS, upper, NULL), CHAT_EAUTH);
    assert_int_equal(chat__media_verify(&kr, NOW_MS, ID, 64, "", 0, NULL), CHAT_EAUTH);
}

static void test_media_query_parse_fields(void **state)
{
    (void)state;
    chat__media_url u;
    const char *sig = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    char q[256];
    snprintf(q, sizeof q, "e=0&s=a.b@c&t=eC95&k=255&sig=%s", sig);
    assert_int_equal(chat__media_query_parse(q, strlen(q), &u), CHAT_OK);
    assert_int_equal(u.exp_s, 0);
    assert_int_equal(u.kid, 255);
    assert_string_equal(u.scope, "a.b@c");
    assert_string_equal(u.mime, "x/y");
    snprintf(q, sizeof q, "e=1&s=a&t=eC95&k=256&sig=%s", sig);
    assert_int_equal(chat__media_query_parse(q, strlen(q), &u), CHAT_EAUTH);
    snprintf(q, sizeof q, "e=1234567890123456789&s=a&t=eC95&k=1&sig=%s", sig);
    assert_int_equal(chat__media_query_parse(q, strlen(q), &u), CHAT_EAUTH);
    snprintf(q, sizeof q, "e=1&s=a b&t=eC95&k=1&sig=%s", sig);
    assert_int_equal(chat__media_query_parse(q, strlen(q), &u), CHAT_EAUTH);
    snprintf(q, sizeof q, "e=1&s=a&t=&k=1&sig=%s", sig);
    assert_int_equal(chat__media_query_parse(q, strlen(q), &u), CHAT_EAUTH);
    snprintf(q, sizeof q, "e=1&s=a&t=AA&k=1&sig=%s", sig); /* a NUL byte */
    assert_int_equal(chat__media_query_parse(q, strlen(q), &u), CHAT_EAUTH);
    snprintf(q, sizeof q, "e=1&s=a&t=eC95&k=1&sig=%.63s", sig);
    assert_int_equal(chat__media_query_parse(q, strlen(q), &u), CHAT_EAUTH);
    /* the length given is what is read: a NUL inside it is not an end */
    snprintf(q, sizeof q, "e=1&s=a&t=eC95&k=1&sig=%s", sig);
    size_t n = strlen(q);
    assert_int_equal(chat__media_query_parse(q, n + 1, &u), CHAT_EAUTH);
    assert_int_equal(chat__media_query_parse(q, n - 1, &u), CHAT_EAUTH);
}

static void test_media_id_valid(void **state)
{
    (void)state;
    assert_true(chat__media_id_valid(ID, 64));
    assert_false(chat__media_id_valid(ID, 63));
    assert_false(chat__media_id_valid("../../etc/passwd", 16));
    char up[65];
    memcpy(up, ID, 65);
    up[3] = 'A';
    assert_false(chat__media_id_valid(up, 64));
    up[3] = '/';
    assert_false(chat__media_id_valid(up, 64));
    assert_false(chat__media_id_valid(NULL, 0));
}

static void test_media_parse_u64(void **state)
{
    (void)state;
    uint64_t v = 7;
    assert_int_equal(chat__media_parse_u64("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(chat__media_parse_u64("9999999999999999999", &v), 0);
    assert_true(v == 9999999999999999999ULL);
    assert_int_equal(chat__media_parse_u64("007", &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(chat__media_parse_u64("18446744073709551615", &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(chat__media_parse_u64("18446744073709551616", &v), -1);
    assert_int_equal(chat__media_parse_u64("000000000000000000001", &v), -1);
    assert_int_equal(chat__media_parse_u64("", &v), -1);
    assert_int_equal(chat__media_parse_u64("+1", &v), -1);
    assert_int_equal(chat__media_parse_u64("1 ", &v), -1);
    assert_int_equal(chat__media_parse_u64("-1", &v), -1);
}

static void test_media_parse_range(void **state)
{
    (void)state;
    uint64_t a = 0, b = 0;
    assert_int_equal(chat__media_parse_range("bytes=0-9", 100, &a, &b), 1);
    assert_true(a == 0 && b == 9);
    assert_int_equal(chat__media_parse_range("bytes=90-", 100, &a, &b), 1);
    assert_true(a == 90 && b == 99);
    assert_int_equal(chat__media_parse_range("bytes=90-1000", 100, &a, &b), 1);
    assert_true(a == 90 && b == 99);
    assert_int_equal(chat__media_parse_range("bytes=-10", 100, &a, &b), 1);
    assert_true(a == 90 && b == 99);
    assert_int_equal(chat__media_parse_range("bytes=-1000", 100, &a, &b), 1);
    assert_true(a == 0 && b == 99);
    assert_int_equal(chat__media_parse_range("bytes=100-", 100, &a, &b), -1);
    assert_int_equal(chat__media_parse_range("bytes=-0", 100, &a, &b), -1);
    assert_int_equal(chat__media_parse_range("bytes=-5", 0, &a, &b), -1);
    assert_int_equal(chat__media_parse_range("bytes=0-", 0, &a, &b), -1);
    assert_int_equal(chat__media_parse_range("bytes=5-4", 100, &a, &b), 0);
    assert_int_equal(chat__media_parse_range("bytes=0-1,5-6", 100, &a, &b), 0);
    assert_int_equal(chat__media_parse_range("bytes=-", 100, &a, &b), 0);
    assert_int_equal(chat__media_parse_range("bytes=a-", 100, &a, &b), 0);
    assert_int_equal(chat__media_parse_range("items=0-1", 100, &a, &b), 0);
    assert_int_equal(chat__media_parse_range("bytes=-x", 100, &a, &b), 0);
    /* a range the server answers for the largest object can be sent back (fuzz) */
    assert_int_equal(chat__media_parse_range("bytes=184746073709551614-18446744073709551614",
                                             UINT64_MAX, &a, &b),
                     1);
    assert_true(a == 184746073709551614ULL && b == UINT64_MAX - 1);
}

static void test_media_parse_metadata(void **state)
{
    (void)state;
    char name[CHAT_MEDIA_STR_MAX + 1], mime[CHAT_MEDIA_STR_MAX + 1];
    name[0] = mime[0] = 0;
    /* clip.mp4, video/mp4; an unknown key and a key without a value are ignored */
    assert_int_equal(chat__media_parse_metadata("name Y2xpcC5tcDQ=,type dmlkZW8vbXA0,x eA==,y",
                                                name, mime),
                     0);
    assert_string_equal(name, "clip.mp4");
    assert_string_equal(mime, "video/mp4");
    /* a key twice */
    assert_int_equal(chat__media_parse_metadata("name eA==,name eQ==", name, mime), -1);
    /* bytes outside the alphabet, a control character (\n), a NUL, bad UTF-8 */
    assert_int_equal(chat__media_parse_metadata("name eA\xbd=", name, mime), -1);
    assert_int_equal(chat__media_parse_metadata("name Cg==", name, mime), -1);
    assert_int_equal(chat__media_parse_metadata("name AA==", name, mime), -1);
    assert_int_equal(chat__media_parse_metadata("name /w==", name, mime), -1);
}

static void test_media_mime_ok(void **state)
{
    (void)state;
    assert_true(chat__media_mime_ok("image/png"));
    assert_true(chat__media_mime_ok("application/vnd.a+json;charset=utf-8"));
    assert_false(chat__media_mime_ok("image"));
    assert_false(chat__media_mime_ok("/png"));
    assert_false(chat__media_mime_ok("image/"));
    assert_false(chat__media_mime_ok("image/png x"));
    assert_false(chat__media_mime_ok("image/p\"ng"));
    assert_false(chat__media_mime_ok("a/b,c/d"));
    assert_false(chat__media_mime_ok("a/\xc3\xa9"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_media_url_round_trip_and_binding),
        cmocka_unit_test(test_media_url_key_rotation),
        cmocka_unit_test(test_media_url_has_one_spelling),
        cmocka_unit_test(test_media_query_parse_fields),
        cmocka_unit_test(test_media_id_valid),
        cmocka_unit_test(test_media_parse_u64),
        cmocka_unit_test(test_media_parse_range),
        cmocka_unit_test(test_media_parse_metadata),
        cmocka_unit_test(test_media_mime_ok),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
