/* Integration, with the engine's internals in view: what a login costs the server, counted in
 * password checks on the hasher thread (chat__worker.jobs), not in time. A login for an account
 * that does not exist must run the same Argon2id check as a wrong password, and answer the
 * same, or the answer's delay tells which accounts exist (~0.2 ms against ~100 ms); it must
 * also meet the same limits. The server runs on 127.0.0.1 with the memory store, driven by a
 * real WebSocket client. The counter is read after chat_server_stop(): the loop thread has been
 * joined, and it ran the done() of every check the hasher counted. */
#define _GNU_SOURCE
#include <chat/chat.h>

#include "server/internal.h"
#include "wsclient.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define WAIT_MS 15000 /* a password check takes ~100 ms; valgrind and TSan make it much slower */

static void log_stderr(int level, const char *msg, void *user_data)
{
    (void)user_data;
    if (level <= CHAT_LOG_WARN)
        fprintf(stderr, "chat[%d]: %s\n", level, msg);
}

/* A running server with the account alice; login_rate 0: the default. */
static chat_server *start(int64_t login_rate)
{
    chat_server_config *cfg = NULL;
    assert_int_equal(chat_server_config_new(&cfg), CHAT_OK);
    assert_int_equal(chat_server_config_set_listen(cfg, "127.0.0.1", 0), CHAT_OK);
    assert_int_equal(chat_server_config_set_log(cfg, log_stderr, CHAT_LOG_WARN, NULL), CHAT_OK);
    unsigned char k[32];
    for (int i = 0; i < 32; i++)
        k[i] = (unsigned char)(i * 3 + 7);
    assert_int_equal(chat_server_config_add_token_key(cfg, 1, k, sizeof k), CHAT_OK);
    if (login_rate)
        assert_int_equal(chat_server_config_set_limit(cfg, CHAT_LIMIT_LOGIN_RATE, login_rate),
                         CHAT_OK);
    chat_server *srv = NULL;
    assert_int_equal(chat_server_new(&srv, cfg), CHAT_OK);
    chat_server_config_free(cfg);
    assert_int_equal(chat_server_user_set_password(srv, "alice", "right password"), CHAT_OK);
    assert_int_equal(chat_server_start(srv), CHAT_OK);
    return srv;
}

/* Password checks the hasher ran; stops the server (see the top of the file). */
static uint64_t checks_after_stop(chat_server *srv)
{
    assert_int_equal(chat_server_stop(srv), CHAT_OK);
    return chat__counter_read(&srv->hasher.stats.jobs);
}

/* Log in as user on a new connection; returns the answer (cJSON_Delete it). */
static cJSON *login(chat_server *srv, const char *user, const char *password)
{
    ws_client *c = NULL;
    assert_int_equal(ws_connect(&c, chat_server_port(srv), WAIT_MS), 0);
    assert_int_equal(ws_sendf(c, "{\"type\":\"login\",\"id\":\"l\",\"v\":1,\"user\":\"%s\","
                                 "\"device\":\"d1\",\"password\":\"%s\"}",
                              user, password),
                     0);
    long long deadline = ws_now_ms() + WAIT_MS;
    for (;;) {
        long long left = deadline - ws_now_ms();
        cJSON *o = ws_recv_json(c, left > 0 ? (int)left : 0);
        if (!o)
            fail_msg("no answer to the login (closed %d)", ws_is_closed(c));
        const char *re = ws_json_str(o, "re");
        if (re && strcmp(re, "l") == 0) {
            ws_free(c);
            return o;
        }
        cJSON_Delete(o);
    }
}

static void assert_refused(cJSON *o, const char *code, const char *reason)
{
    assert_string_equal(ws_json_str(o, "type"), "error");
    assert_string_equal(ws_json_str(o, "code"), code);
    assert_string_equal(ws_json_str(o, "reason"), reason);
}

static void test_login_unknown_account_runs_the_password_check(void **state)
{
    (void)state;
    chat_server *srv = start(0);
    cJSON *wrong = login(srv, "alice", "wrong password");
    cJSON *unknown = login(srv, "mallory", "wrong password");
    assert_refused(wrong, "EAUTH", "auth_failed");
    assert_refused(unknown, "EAUTH", "auth_failed");
    /* The same words too: nothing in the answer tells the two apart. */
    assert_string_equal(ws_json_str(unknown, "message"), ws_json_str(wrong, "message"));
    cJSON_Delete(wrong);
    cJSON_Delete(unknown);
    assert_int_equal(checks_after_stop(srv), 2);
    chat_server_free(srv);
}

/* The failed-login limit of an account applies whether it exists or not; a refused attempt
 * costs no check. */
static void test_login_unknown_account_meets_the_same_limit(void **state)
{
    (void)state;
    chat_server *srv = start(1);
    const char *users[] = {"alice", "mallory"};
    for (int u = 0; u < 2; u++) {
        cJSON *o = login(srv, users[u], "guess");
        assert_refused(o, "EAUTH", "auth_failed");
        cJSON_Delete(o);
        o = login(srv, users[u], "guess");
        assert_refused(o, "EAGAIN", "rate_limited");
        assert_true(ws_json_int(o, "retry_after_ms") > 0);
        cJSON_Delete(o);
    }
    assert_int_equal(checks_after_stop(srv), 2);
    chat_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_login_unknown_account_runs_the_password_check),
        cmocka_unit_test(test_login_unknown_account_meets_the_same_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
