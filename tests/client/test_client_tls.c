/* The client engine over wss://: a real server with TLS (a certificate from a throwaway test
 * PKI made with the openssl command, tests/tls/make_pki.sh) and real clients, through the
 * public API only. The client trusts the test CA through chat_client_config_set_ca_file; a
 * server whose certificate another CA signed, or a CA the client does not trust, is refused
 * with a clear event, and the client never authenticates there. */
#define _GNU_SOURCE
#include <chat/chat.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define WAIT_MS 8000

static char pki[256];

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int make_pki(void **state)
{
    (void)state;
    const char *script = getenv("MAKE_PKI");
    assert_non_null(script);
    snprintf(pki, sizeof pki, "/tmp/libchat-tls-XXXXXX");
    assert_non_null(mkdtemp(pki));
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "sh '%s' '%s'", script, pki);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static int remove_pki(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", pki);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *pki_file(const char *name)
{
    static char path[8][512];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, 512, "%s/%s", pki, name);
    return p;
}

/* A server on 127.0.0.1:0 serving TLS with cert/key from the test PKI (memory store). */
static chat_server *tls_server(const char *cert, const char *key)
{
    chat_server_config *cfg = NULL;
    assert_int_equal(chat_server_config_new(&cfg), CHAT_OK);
    assert_int_equal(chat_server_config_set_listen(cfg, "127.0.0.1", 0), CHAT_OK);
    unsigned char k[32];
    for (int i = 0; i < 32; i++)
        k[i] = (unsigned char)(i * 7 + 3);
    assert_int_equal(chat_server_config_add_token_key(cfg, 1, k, sizeof k), CHAT_OK);
    assert_int_equal(chat_server_config_set_tls(cfg, pki_file(cert), pki_file(key)), CHAT_OK);
    chat_server *srv = NULL;
    assert_int_equal(chat_server_new(&srv, cfg), CHAT_OK);
    chat_server_config_free(cfg);
    assert_int_equal(chat_server_start(srv), CHAT_OK);
    return srv;
}

/* A client of srv at wss://host:port/, trusting ca (a PKI file name, or NULL: system store). */
static chat_client *tls_client(chat_server *srv, const char *host, const char *user,
                               const char *ca)
{
    char *tok = NULL;
    assert_int_equal(chat_server_issue_token(srv, user, "d1", 3600000, &tok), CHAT_OK);
    chat_client_config *cfg = NULL;
    char url[128];
    snprintf(url, sizeof url, "wss://%s:%d/", host, chat_server_port(srv));
    assert_int_equal(chat_client_config_new(&cfg), CHAT_OK);
    assert_int_equal(chat_client_config_set_server(cfg, url), CHAT_OK);
    assert_int_equal(chat_client_config_set_token(cfg, tok), CHAT_OK);
    assert_int_equal(chat_client_config_set_backoff(cfg, 50, 200), CHAT_OK);
    if (ca)
        assert_int_equal(chat_client_config_set_ca_file(cfg, pki_file(ca)), CHAT_OK);
    chat_client *c = NULL;
    assert_int_equal(chat_client_new(&c, cfg), CHAT_OK);
    chat_client_config_free(cfg);
    chat_string_free(tok);
    assert_int_equal(chat_client_start(c), CHAT_OK);
    return c;
}

/* Pop events until one of type (and, if text, whose text equals it). */
static chat_event *wait_for(chat_client *c, int type, const char *text)
{
    long long dl = now_ms() + WAIT_MS;
    for (;;) {
        long long left = dl - now_ms();
        chat_event *ev = NULL;
        if (left <= 0 || chat_client_wait_event(&ev, c, (int)left) != CHAT_OK)
            fail_msg("no %s event within %d ms", chat_event_type_name(type), WAIT_MS);
        if (chat_event_type(ev) == type &&
            (!text || strcmp(chat_event_text(ev, NULL), text) == 0))
            return ev;
        chat_event_free(ev);
    }
}

/* The next two connection attempts fail at TLS, with a message naming why; the client never
 * gets online meanwhile. */
static void assert_refused_at_tls(chat_client *c, const char *why)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        long long dl = now_ms() + WAIT_MS;
        for (;;) {
            long long left = dl - now_ms();
            chat_event *ev = NULL;
            if (left <= 0 || chat_client_wait_event(&ev, c, (int)left) != CHAT_OK)
                fail_msg("no OFFLINE event within %d ms", WAIT_MS);
            int type = chat_event_type(ev);
            assert_int_not_equal(type, CHAT_EVENT_ONLINE);
            assert_int_not_equal(type, CHAT_EVENT_SYNCED);
            if (type == CHAT_EVENT_OFFLINE) {
                const char *m = chat_event_message(ev);
                if (!m || !strstr(m, "closed (1015): TLS") || !strstr(m, why))
                    fail_msg("OFFLINE message '%s' does not name the TLS failure '%s'",
                             m ? m : "(null)", why);
                assert_int_equal(chat_event_code(ev), CHAT_ECLOSED);
                chat_event_free(ev);
                break;
            }
            chat_event_free(ev);
        }
    }
    assert_int_not_equal(chat_client_state(c), CHAT_CONN_ONLINE);
}

static void exchange(chat_server *srv, const char *host)
{
    chat_client *a = tls_client(srv, host, "alice", "ca.pem");
    chat_client *b = tls_client(srv, host, "bob", "ca.pem");
    chat_event_free(wait_for(a, CHAT_EVENT_SYNCED, NULL));
    chat_event_free(wait_for(b, CHAT_EVENT_SYNCED, NULL));
    char *cmid = NULL;
    assert_int_equal(chat_client_send_text_to(&cmid, a, "bob", "over wss", 8), CHAT_OK);
    chat_event_free(wait_for(a, CHAT_EVENT_SENT, NULL));
    chat_event *m = wait_for(b, CHAT_EVENT_MESSAGE, "over wss");
    assert_string_equal(chat_event_user(m), "alice");
    chat_event_free(m);
    chat_string_free(cmid);
    chat_client_free(a);
    chat_client_free(b);
}

static void test_client_wss_with_custom_ca_by_ip(void **state)
{
    (void)state;
    chat_server *srv = tls_server("server.pem", "server.key");
    exchange(srv, "127.0.0.1");
    chat_server_free(srv);
}

static void test_client_wss_with_custom_ca_by_name(void **state)
{
    (void)state;
    chat_server *srv = tls_server("server.pem", "server.key");
    exchange(srv, "localhost");
    chat_server_free(srv);
}

static void test_client_refuses_cert_of_another_ca(void **state)
{
    (void)state;
    chat_server *srv = tls_server("rogue.pem", "rogue.key");
    chat_client *c = tls_client(srv, "127.0.0.1", "alice", "ca.pem");
    assert_refused_at_tls(c, "not trusted");
    chat_client_free(c);
    chat_server_free(srv);
}

static void test_client_refuses_test_ca_without_custom_ca(void **state)
{
    (void)state;
    /* the system trust store does not know the test CA */
    chat_server *srv = tls_server("server.pem", "server.key");
    chat_client *c = tls_client(srv, "127.0.0.1", "alice", NULL);
    assert_refused_at_tls(c, "not trusted");
    chat_client_free(c);
    chat_server_free(srv);
}

static void test_client_refuses_name_not_in_cert(void **state)
{
    (void)state;
    /* the certificate is for 127.0.0.1 and localhost; 127.0.0.2 reaches the same server */
    chat_server_config *cfg = NULL;
    chat_server *srv = tls_server("server.pem", "server.key");
    (void)cfg;
    chat_client *c = tls_client(srv, "127.0.0.2", "alice", "ca.pem");
    assert_refused_at_tls(c, "not trusted");
    chat_client_free(c);
    chat_server_free(srv);
}

static void test_client_plain_ws_to_tls_server_never_online(void **state)
{
    (void)state;
    chat_server *srv = tls_server("server.pem", "server.key");
    char *tok = NULL;
    assert_int_equal(chat_server_issue_token(srv, "alice", "d1", 3600000, &tok), CHAT_OK);
    chat_client_config *cfg = NULL;
    char url[128];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", chat_server_port(srv));
    assert_int_equal(chat_client_config_new(&cfg), CHAT_OK);
    assert_int_equal(chat_client_config_set_server(cfg, url), CHAT_OK);
    assert_int_equal(chat_client_config_set_token(cfg, tok), CHAT_OK);
    assert_int_equal(chat_client_config_set_backoff(cfg, 50, 200), CHAT_OK);
    assert_int_equal(chat_client_config_set_heartbeat(cfg, 500, 1000), CHAT_OK);
    chat_client *c = NULL;
    assert_int_equal(chat_client_new(&c, cfg), CHAT_OK);
    chat_client_config_free(cfg);
    assert_int_equal(chat_client_start(c), CHAT_OK);
    chat_event_free(wait_for(c, CHAT_EVENT_OFFLINE, NULL));
    assert_int_not_equal(chat_client_state(c), CHAT_CONN_ONLINE);
    chat_client_free(c);
    chat_string_free(tok);
    chat_server_free(srv);
}

static void test_client_ca_file_argument_checks(void **state)
{
    (void)state;
    chat_client_config *cfg = NULL;
    assert_int_equal(chat_client_config_new(&cfg), CHAT_OK);
    assert_int_equal(chat_client_config_set_ca_file(cfg, ""), CHAT_EINVAL);
    assert_int_equal(chat_client_config_set_ca_file(NULL, "x"), CHAT_EINVAL);
    assert_int_equal(chat_client_config_set_ca_file(cfg, "/nonexistent/ca.pem"), CHAT_OK);
    assert_int_equal(chat_client_config_set_ca_file(cfg, NULL), CHAT_OK);
    chat_client_config_free(cfg);
}

static void test_client_missing_ca_file_is_a_tls_failure(void **state)
{
    (void)state;
    chat_server *srv = tls_server("server.pem", "server.key");
    chat_client *c = tls_client(srv, "127.0.0.1", "alice", "no-such-ca.pem");
    assert_refused_at_tls(c, "cannot load the CA file");
    chat_client_free(c);
    chat_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_wss_with_custom_ca_by_ip),
        cmocka_unit_test(test_client_wss_with_custom_ca_by_name),
        cmocka_unit_test(test_client_refuses_cert_of_another_ca),
        cmocka_unit_test(test_client_refuses_test_ca_without_custom_ca),
        cmocka_unit_test(test_client_refuses_name_not_in_cert),
        cmocka_unit_test(test_client_plain_ws_to_tls_server_never_online),
        cmocka_unit_test(test_client_ca_file_argument_checks),
        cmocka_unit_test(test_client_missing_ca_file_is_a_tls_failure),
    };
    return cmocka_run_group_tests(tests, make_pki, remove_pki);
}
