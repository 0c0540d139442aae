/* Integration: token lifetime through a running server whose clock is injected
 * (chat_server_config_set_clock): expiry, not-yet-valid, and key rotation keeping old tokens
 * valid exactly until their own expiry. Real sockets on 127.0.0.1, port 0. */
#define _GNU_SOURCE
#include <chat/chat.h>

#include "wsclient.h"

#include <setjmp.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define WAIT_MS 5000
#define T0 1800000000000LL /* the fake clock's start, ms since the epoch */
#define MIN_MS 60000LL

static _Atomic int64_t fake_now = T0;

static int64_t fake_clock(void *user_data)
{
    (void)user_data;
    return atomic_load(&fake_now);
}

static void key_bytes(unsigned char key[32], unsigned char seed)
{
    for (int i = 0; i < 32; i++)
        key[i] = (unsigned char)(seed * 29 + i * 3 + 5);
}

/* A server on the fake clock holding token keys 1..n (the last one signs). */
static chat_server *start_with_keys(int n)
{
    chat_server_config *cfg = NULL;
    assert_int_equal(chat_server_config_new(&cfg), CHAT_OK);
    assert_int_equal(chat_server_config_set_listen(cfg, "127.0.0.1", 0), CHAT_OK);
    assert_int_equal(chat_server_config_set_clock(cfg, fake_clock, NULL), CHAT_OK);
    for (int i = 1; i <= n; i++) {
        unsigned char k[32];
        key_bytes(k, (unsigned char)i);
        assert_int_equal(chat_server_config_add_token_key(cfg, (unsigned)i, k, sizeof k),
                         CHAT_OK);
    }
    chat_server *srv = NULL;
    assert_int_equal(chat_server_new(&srv, cfg), CHAT_OK);
    chat_server_config_free(cfg);
    assert_int_equal(chat_server_start(srv), CHAT_OK);
    return srv;
}

static char *issue(chat_server *srv, const char *user, int64_t ttl_ms)
{
    char *tok = NULL;
    assert_int_equal(chat_server_issue_token(srv, user, "d1", ttl_ms, &tok), CHAT_OK);
    return tok;
}

/* The key id a token names (its second byte). */
static unsigned key_id_of(const char *tok)
{
    unsigned char bin[256];
    size_t n = 0;
    assert_int_equal(sodium_base642bin(bin, sizeof bin, tok, strlen(tok), NULL, &n, NULL,
                                       sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                     0);
    assert_true(n > 2);
    return bin[1];
}

/* Authenticate on a fresh connection at the fake clock's current time. Returns 1 for auth_ok
 * (whose ts must be the fake clock's), 0 for EAUTH/auth_failed followed by close 1008. */
static int try_auth(chat_server *srv, const char *tok)
{
    ws_client *c = NULL;
    assert_int_equal(ws_connect(&c, chat_server_port(srv), WAIT_MS), 0);
    assert_int_equal(ws_sendf(c, "{\"type\":\"auth\",\"id\":\"a\",\"v\":1,\"token\":\"%s\"}", tok),
                     0);
    cJSON *o = NULL;
    for (;;) {
        o = ws_recv_json(c, WAIT_MS);
        if (!o)
            fail_msg("no answer to auth (closed %d, code %d)", ws_is_closed(c), ws_close_code(c));
        const char *re = ws_json_str(o, "re");
        if (re && strcmp(re, "a") == 0)
            break;
        cJSON_Delete(o);
    }
    int ok = strcmp(ws_json_str(o, "type"), "auth_ok") == 0;
    if (ok) {
        assert_int_equal(ws_json_int(o, "ts"), atomic_load(&fake_now));
    } else {
        assert_string_equal(ws_json_str(o, "type"), "error");
        assert_string_equal(ws_json_str(o, "code"), "EAUTH");
        assert_string_equal(ws_json_str(o, "reason"), "auth_failed");
        assert_int_equal(ws_wait_close(c, WAIT_MS), 1008);
    }
    cJSON_Delete(o);
    ws_free(c);
    return ok;
}

static void test_tokens_expire_on_the_injected_clock(void **state)
{
    (void)state;
    atomic_store(&fake_now, T0);
    chat_server *srv = start_with_keys(1);
    char *tok = issue(srv, "alice", 10 * MIN_MS);
    assert_true(try_auth(srv, tok));
    atomic_store(&fake_now, T0 + 10 * MIN_MS - 1);
    assert_true(try_auth(srv, tok));
    atomic_store(&fake_now, T0 + 10 * MIN_MS);
    assert_false(try_auth(srv, tok));
    atomic_store(&fake_now, INT64_MAX);
    assert_false(try_auth(srv, tok));
    chat_string_free(tok);
    chat_server_free(srv);
}

static void test_tokens_not_yet_valid_on_the_injected_clock(void **state)
{
    (void)state;
    atomic_store(&fake_now, T0 + 60 * MIN_MS);
    chat_server *srv = start_with_keys(1);
    char *tok = issue(srv, "alice", 120 * MIN_MS); /* iat = T0 + 1 h */
    atomic_store(&fake_now, T0);
    assert_false(try_auth(srv, tok));
    /* one minute of skew is tolerated, not a millisecond more */
    atomic_store(&fake_now, T0 + 59 * MIN_MS - 1);
    assert_false(try_auth(srv, tok));
    atomic_store(&fake_now, T0 + 59 * MIN_MS);
    assert_true(try_auth(srv, tok));
    chat_string_free(tok);
    chat_server_free(srv);
}

static void test_rotation_keeps_old_tokens_until_their_expiry(void **state)
{
    (void)state;
    atomic_store(&fake_now, T0);
    chat_server *before = start_with_keys(1);
    char *old = issue(before, "alice", 30 * MIN_MS);
    assert_int_equal(key_id_of(old), 1);
    chat_server_free(before);

    /* rotate at T0 + 20 min: key 2 signs from now on, key 1 still verifies */
    atomic_store(&fake_now, T0 + 20 * MIN_MS);
    chat_server *srv = start_with_keys(2);
    char *fresh = issue(srv, "bob", 30 * MIN_MS);
    assert_int_equal(key_id_of(fresh), 2);
    assert_true(try_auth(srv, old));
    assert_true(try_auth(srv, fresh));
    atomic_store(&fake_now, T0 + 30 * MIN_MS - 1);
    assert_true(try_auth(srv, old));
    /* the old token ends at its own expiry, though its key is still configured */
    atomic_store(&fake_now, T0 + 30 * MIN_MS);
    assert_false(try_auth(srv, old));
    assert_true(try_auth(srv, fresh));
    atomic_store(&fake_now, T0 + 50 * MIN_MS);
    assert_false(try_auth(srv, fresh));
    chat_string_free(old);
    chat_string_free(fresh);
    chat_server_free(srv);
}

static void test_revoked_token_refused_and_other_session_kept(void **state)
{
    (void)state;
    atomic_store(&fake_now, T0);
    chat_server *srv = start_with_keys(1);
    char *a = issue(srv, "alice", 10 * MIN_MS);
    char *b = issue(srv, "alice", 10 * MIN_MS);
    assert_int_equal(chat_server_revoke_token(srv, a), CHAT_OK);
    assert_false(try_auth(srv, a));
    assert_true(try_auth(srv, b));
    /* an expired token cannot be revoked (it is refused anyway) */
    atomic_store(&fake_now, T0 + 10 * MIN_MS);
    assert_int_equal(chat_server_revoke_token(srv, b), CHAT_EAUTH);
    chat_string_free(a);
    chat_string_free(b);
    chat_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens_expire_on_the_injected_clock),
        cmocka_unit_test(test_tokens_not_yet_valid_on_the_injected_clock),
        cmocka_unit_test(test_rotation_keeps_old_tokens_until_their_expiry),
        cmocka_unit_test(test_revoked_token_refused_and_other_session_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
