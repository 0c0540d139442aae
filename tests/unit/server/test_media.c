/* Signed media URLs (server/media.c): sign and verify round trip, every field bound by the MAC,
 * expiry, key rotation, and media id validation. Uses a server that is never started. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "chat/errors.h"
#include "server/media.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID "e93156aed53759ed6ce213144ddc92deccc401d8bbc4fe71a3f5f4bc6586d4e5"

static int64_t fake_now = 1764331200000;

static int64_t fake_clock(void *ud)
{
    (void)ud;
    return fake_now;
}

static chat_server *make_server(int with_second_key)
{
    chat_server_config *cfg = NULL;
    unsigned char k1[32], k2[32];
    memset(k1, 1, sizeof k1);
    memset(k2, 2, sizeof k2);
    assert_int_equal(chat_server_config_new(&cfg), CHAT_OK);
    assert_int_equal(chat_server_config_add_token_key(cfg, 1, k1, sizeof k1), CHAT_OK);
    if (with_second_key)
        assert_int_equal(chat_server_config_add_token_key(cfg, 2, k2, sizeof k2), CHAT_OK);
    assert_int_equal(chat_server_config_set_clock(cfg, fake_clock, NULL), CHAT_OK);
    chat_server *srv = NULL;
    assert_int_equal(chat_server_new(&srv, cfg), CHAT_OK);
    chat_server_config_free(cfg);
    return srv;
}

/* Split "/media/<id>?e=..&s=..&t=..&k=..&sig=.." into its fields (in place). */
struct url {
    char buf[1024];
    const char *id, *e, *s, *t, *k, *sig;
};

static void split(struct url *u, const char *url)
{
    snprintf(u->buf, sizeof u->buf, "%s", url);
    assert_int_equal(strncmp(u->buf, "/media/", 7), 0);
    char *q = strchr(u->buf, '?');
    assert_non_null(q);
    *q++ = 0;
    u->id = u->buf + 7;
    for (char *tok = strtok(q, "&"); tok; tok = strtok(NULL, "&")) {
        char *eq = strchr(tok, '=');
        assert_non_null(eq);
        *eq++ = 0;
        if (!strcmp(tok, "e")) u->e = eq;
        else if (!strcmp(tok, "s")) u->s = eq;
        else if (!strcmp(tok, "t")) u->t = eq;
        else if (!strcmp(tok, "k")) u->k = eq;
        else if (!strcmp(tok, "sig")) u->sig = eq;
    }
}

static int verify(chat_server *srv, const struct url *u, const char *id, const char *scope)
{
    char mime[256];
    return chat__media_verify(srv, id ? id : u->id, u->e, scope ? scope : u->s, u->t, u->k,
                              u->sig, mime, sizeof mime);
}

static void test_media_url_round_trip_and_binding(void **state)
{
    (void)state;
    chat_server *srv = make_server(0);
    char url[1024], mime[256];
    int64_t exp = fake_now / 1000 + 600;
    assert_int_equal(chat__media_sign(srv, ID, "bob", "image/svg+xml", exp, url, sizeof url),
                     CHAT_OK);
    struct url u = {0};
    split(&u, url);
    assert_string_equal(u.id, ID);
    assert_string_equal(u.s, "bob");
    assert_string_equal(u.k, "1");
    assert_int_equal(chat__media_verify(srv, u.id, u.e, u.s, u.t, u.k, u.sig, mime, sizeof mime),
                     CHAT_OK);
    assert_string_equal(mime, "image/svg+xml");
    /* every field is bound */
    assert_int_equal(verify(srv, &u, NULL, "mallory"), CHAT_EAUTH);
    char other[65];
    memcpy(other, ID, 65);
    other[0] = 'f';
    assert_int_equal(verify(srv, &u, other, NULL), CHAT_EAUTH);
    struct url v = u;
    char e2[32];
    snprintf(e2, sizeof e2, "%lld", (long long)exp + 1);
    v.e = e2;
    assert_int_equal(verify(srv, &v, NULL, NULL), CHAT_EAUTH);
    v = u;
    v.t = "aW1hZ2UvcG5n"; /* image/png */
    assert_int_equal(verify(srv, &v, NULL, NULL), CHAT_EAUTH);
    v = u;
    char sig[65];
    snprintf(sig, sizeof sig, "%s", u.sig);
    sig[10] = sig[10] == '0' ? '1' : '0';
    v.sig = sig;
    assert_int_equal(verify(srv, &v, NULL, NULL), CHAT_EAUTH);
    v = u;
    v.k = "7"; /* unknown key */
    assert_int_equal(verify(srv, &v, NULL, NULL), CHAT_EAUTH);
    v = u;
    v.sig = NULL;
    assert_int_equal(verify(srv, &v, NULL, NULL), CHAT_EAUTH);
    /* expiry: valid until e, refused from then on */
    fake_now = exp * 1000 - 1;
    assert_int_equal(verify(srv, &u, NULL, NULL), CHAT_OK);
    fake_now = exp * 1000;
    assert_int_equal(verify(srv, &u, NULL, NULL), CHAT_ETIMEDOUT);
    fake_now = 1764331200000;
    chat_server_free(srv);
}

static void test_media_url_key_rotation(void **state)
{
    (void)state;
    chat_server *old = make_server(0);
    char url[1024];
    int64_t exp = fake_now / 1000 + 600;
    assert_int_equal(chat__media_sign(old, ID, "bob", "video/mp4", exp, url, sizeof url),
                     CHAT_OK);
    chat_server_free(old);
    /* a server that rotated to key 2 still honours URLs of key 1, and signs with key 2 */
    chat_server *srv = make_server(1);
    struct url u = {0};
    split(&u, url);
    assert_int_equal(verify(srv, &u, NULL, NULL), CHAT_OK);
    char url2[1024];
    assert_int_equal(chat__media_sign(srv, ID, "bob", "video/mp4", exp, url2, sizeof url2),
                     CHAT_OK);
    struct url u2 = {0};
    split(&u2, url2);
    assert_string_equal(u2.k, "2");
    assert_string_not_equal(u2.sig, u.sig);
    assert_int_equal(verify(srv, &u2, NULL, NULL), CHAT_OK);
    chat_server_free(srv);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_media_url_round_trip_and_binding),
        cmocka_unit_test(test_media_url_key_rotation),
        cmocka_unit_test(test_media_id_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
