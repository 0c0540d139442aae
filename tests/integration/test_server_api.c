/* Integration: the server embedded in-process through the public API only (<chat/chat.h>,
 * linked against the shared library), listening on 127.0.0.1 with port 0 and driven by real
 * WebSocket clients over real sockets. Every wait is bounded; where a behaviour has a second
 * party (a recipient, a contact), the test asserts what that party receives. */
#define _GNU_SOURCE
#include <chat/chat.h>
#include <chat/sys/bus.h>
#include <chat/sys/push.h>
#include <chat/sys/store.h>
#include <chat/testing.h>

#include "wsclient.h"

#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define WAIT_MS 5000                        /* bound of every wait for a frame */
#define TOKEN_TTL_MS (3600LL * 1000)

/* ---- helpers ---------------------------------------------------------------------------- */

static void key_bytes(unsigned char key[32], unsigned char seed)
{
    for (int i = 0; i < 32; i++)
        key[i] = (unsigned char)(seed * 31 + i * 7 + 1);
}

static void log_stderr(int level, const char *msg, void *user_data)
{
    (void)user_data;
    fprintf(stderr, "[libchat %d] %s\n", level, msg);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* A configuration listening on 127.0.0.1:0 with token key 1 (seed 1). */
static chat_server_config *new_config(void)
{
    chat_server_config *cfg = NULL;
    assert_int_equal(chat_server_config_new(&cfg), CHAT_OK);
    assert_non_null(cfg);
    assert_int_equal(chat_server_config_set_listen(cfg, "127.0.0.1", 0), CHAT_OK);
    unsigned char k[32];
    key_bytes(k, 1);
    assert_int_equal(chat_server_config_add_token_key(cfg, 1, k, sizeof k), CHAT_OK);
    assert_int_equal(chat_server_config_set_log(cfg, log_stderr, CHAT_LOG_WARN, NULL), CHAT_OK);
    return cfg;
}

/* Create from cfg (freed here) and start on a libchat thread. */
static chat_server *start_server(chat_server_config *cfg)
{
    chat_server *srv = NULL;
    int rc = chat_server_new(&srv, cfg);
    chat_server_config_free(cfg);
    assert_int_equal(rc, CHAT_OK);
    assert_int_equal(chat_server_start(srv), CHAT_OK);
    assert_true(chat_server_port(srv) > 0);
    return srv;
}

static char *token_for(chat_server *srv, const char *user, const char *device)
{
    char *tok = NULL;
    assert_int_equal(chat_server_issue_token(srv, user, device, TOKEN_TTL_MS, &tok), CHAT_OK);
    assert_non_null(tok);
    return tok;
}

static ws_client *connect_ws(int port)
{
    ws_client *c = NULL;
    int rc = ws_connect(&c, port, WAIT_MS);
    if (rc != 0)
        fail_msg("cannot connect to 127.0.0.1:%d: %s", port, strerror(-rc));
    return c;
}

/* Skip frames until the answer to request id (its "re"); fails the test on timeout. */
static cJSON *wait_re(ws_client *c, const char *id)
{
    long long deadline = ws_now_ms() + WAIT_MS;
    for (;;) {
        long long left = deadline - ws_now_ms();
        cJSON *o = ws_recv_json(c, left > 0 ? (int)left : 0);
        if (!o)
            fail_msg("no answer to request '%s' within %d ms (closed: %d, code %d)", id,
                     WAIT_MS, ws_is_closed(c), ws_close_code(c));
        const char *re = ws_json_str(o, "re");
        if (re && strcmp(re, id) == 0)
            return o;
        cJSON_Delete(o);
    }
}

/* Skip frames until one of type; fails the test on timeout. */
static cJSON *expect_type(ws_client *c, const char *type)
{
    cJSON *o = ws_wait_type(c, type, WAIT_MS);
    if (!o)
        fail_msg("no '%s' frame within %d ms (closed: %d, code %d)", type, WAIT_MS,
                 ws_is_closed(c), ws_close_code(c));
    return o;
}

static void assert_error(const cJSON *o, const char *code, const char *reason)
{
    assert_non_null(o);
    assert_string_equal(ws_json_str(o, "type"), "error");
    assert_string_equal(ws_json_str(o, "code"), code);
    assert_string_equal(ws_json_str(o, "reason"), reason);
}

/* Connect and authenticate with token; asserts auth_ok for (user, device). */
static ws_client *auth_client(int port, const char *token, const char *user, const char *device)
{
    ws_client *c = connect_ws(port);
    assert_int_equal(ws_sendf(c, "{\"type\":\"auth\",\"id\":\"a1\",\"v\":1,\"token\":\"%s\"}",
                              token),
                     0);
    cJSON *o = wait_re(c, "a1");
    assert_string_equal(ws_json_str(o, "type"), "auth_ok");
    assert_string_equal(ws_json_str(o, "user"), user);
    assert_string_equal(ws_json_str(o, "device"), device);
    cJSON_Delete(o);
    return c;
}

/* Authenticating with token must fail: EAUTH/auth_failed, then close 1008. */
static void assert_auth_refused(int port, const char *token)
{
    ws_client *c = connect_ws(port);
    assert_int_equal(ws_sendf(c, "{\"type\":\"auth\",\"id\":\"a1\",\"v\":1,\"token\":\"%s\"}",
                              token),
                     0);
    cJSON *o = wait_re(c, "a1");
    assert_error(o, "EAUTH", "auth_failed");
    cJSON_Delete(o);
    assert_int_equal(ws_wait_close(c, WAIT_MS), 1008);
    ws_free(c);
}

/* from sends text to user `to`; asserts the sender's ack and the recipient's msg.
 * Returns the conversation id. */
static long long direct_exchange(ws_client *from, const char *from_user, const char *from_device,
                                 ws_client *to_client, const char *to, const char *id,
                                 const char *cmid, const char *text)
{
    assert_int_equal(ws_sendf(from,
                              "{\"type\":\"send\",\"id\":\"%s\",\"to\":\"%s\",\"cmid\":\"%s\","
                              "\"text\":\"%s\"}",
                              id, to, cmid, text),
                     0);
    cJSON *ack = wait_re(from, id);
    assert_string_equal(ws_json_str(ack, "type"), "ack");
    assert_string_equal(ws_json_str(ack, "cmid"), cmid);
    long long conv = ws_json_int(ack, "conv");
    long long seq = ws_json_int(ack, "seq");
    assert_true(conv > 0);
    assert_true(seq >= 1);
    cJSON_Delete(ack);
    if (to_client) {
        cJSON *m = expect_type(to_client, "msg");
        assert_string_equal(ws_json_str(m, "from"), from_user);
        assert_string_equal(ws_json_str(m, "device"), from_device);
        assert_string_equal(ws_json_str(m, "cmid"), cmid);
        assert_string_equal(ws_json_str(m, "kind"), "text");
        assert_string_equal(ws_json_str(m, "text"), text);
        assert_int_equal(ws_json_int(m, "conv"), conv);
        assert_int_equal(ws_json_int(m, "seq"), seq);
        cJSON_Delete(m);
    }
    return conv;
}

/* The online state of user in a presence frame: 1, 0, or -1 when not listed. */
static int presence_of(const cJSON *o, const char *user)
{
    const cJSON *users = cJSON_GetObjectItemCaseSensitive(o, "users");
    const cJSON *u;
    cJSON_ArrayForEach(u, users)
    {
        const char *name = ws_json_str(u, "user");
        if (name && strcmp(name, user) == 0)
            return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(u, "online")) ? 1 : 0;
    }
    return -1;
}

/* Skip frames until a presence frame saying user is online (1) or offline (0). */
static void expect_presence(ws_client *c, const char *user, int online)
{
    long long deadline = ws_now_ms() + WAIT_MS;
    for (;;) {
        long long left = deadline - ws_now_ms();
        cJSON *o = ws_wait_type(c, "presence", left > 0 ? (int)left : 0);
        if (!o)
            fail_msg("no presence frame with %s online=%d within %d ms (closed: %d)", user,
                     online, WAIT_MS, ws_is_closed(c));
        int st = presence_of(o, user);
        cJSON_Delete(o);
        if (st == online)
            return;
    }
}

/* 1 when nothing listens on 127.0.0.1:port (connection refused). */
static int port_refuses(int port)
{
    int fd = ws_tcp_connect(port, 1000);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    return fd == -ECONNREFUSED;
}

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* ---- 1. library-thread mode ------------------------------------------------------------- */

static void test_server_start_stop_twice(void **state)
{
    (void)state;
    for (int round = 0; round < 2; round++) {
        chat_server *srv = start_server(new_config());
        int port = chat_server_port(srv);
        assert_int_equal(chat_server_start(srv), CHAT_EMISUSE);

        char *ta = token_for(srv, "alice", "phone");
        char *tb = token_for(srv, "bob", "laptop");
        ws_client *a = auth_client(port, ta, "alice", "phone");
        ws_client *b = auth_client(port, tb, "bob", "laptop");
        direct_exchange(a, "alice", "phone", b, "bob", "s1", "c-1", "round trip");

        assert_int_equal(chat_server_stop(srv), CHAT_OK);
        /* Stopping closes the live connections and the listener. */
        assert_int_not_equal(ws_wait_close(a, WAIT_MS), -1);
        assert_int_not_equal(ws_wait_close(b, WAIT_MS), -1);
        assert_int_equal(chat_server_port(srv), 0);
        assert_true(port_refuses(port));
        /* stop is idempotent */
        assert_int_equal(chat_server_stop(srv), CHAT_OK);
        chat_server_free(srv);

        ws_free(a);
        ws_free(b);
        chat_string_free(ta);
        chat_string_free(tb);
    }
    chat_server_free(NULL);
}

/* ---- 2. host-thread mode ---------------------------------------------------------------- */

typedef struct run_arg {
    chat_server *srv;
    int rc;
    atomic_int returned;
} run_arg;

static void *run_thread(void *p)
{
    run_arg *a = p;
    a->rc = chat_server_run(a->srv);
    atomic_store(&a->returned, 1);
    return NULL;
}

static void test_server_run_on_host_thread(void **state)
{
    (void)state;
    chat_server_config *cfg = new_config();
    chat_server *srv = NULL;
    assert_int_equal(chat_server_new(&srv, cfg), CHAT_OK);
    chat_server_config_free(cfg);
    assert_int_equal(chat_server_port(srv), 0);

    run_arg arg = {srv, -999, 0};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_thread, &arg), 0);
    long long deadline = ws_now_ms() + WAIT_MS;
    while (chat_server_port(srv) == 0 && !atomic_load(&arg.returned) && ws_now_ms() < deadline)
        sleep_ms(5);
    int port = chat_server_port(srv);
    if (port <= 0)
        fail_msg("chat_server_run did not bind within %d ms (returned: %d, rc %d)", WAIT_MS,
                 atomic_load(&arg.returned), arg.rc);

    char *ta = token_for(srv, "alice", "phone");
    char *tb = token_for(srv, "bob", "laptop");
    ws_client *a = auth_client(port, ta, "alice", "phone");
    ws_client *b = auth_client(port, tb, "bob", "laptop");
    direct_exchange(a, "alice", "phone", b, "bob", "s1", "c-1", "from the host thread");

    assert_int_equal(chat_server_stop_async(srv), CHAT_OK);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    int jr = pthread_timedjoin_np(th, NULL, &ts);
    if (jr != 0)
        fail_msg("chat_server_run did not return within 10 s of chat_server_stop_async");
    assert_int_equal(arg.rc, CHAT_OK);
    assert_int_not_equal(ws_wait_close(a, WAIT_MS), -1);
    assert_int_not_equal(ws_wait_close(b, WAIT_MS), -1);
    assert_int_equal(chat_server_port(srv), 0);
    assert_true(port_refuses(port));

    chat_server_free(srv);
    ws_free(a);
    ws_free(b);
    chat_string_free(ta);
    chat_string_free(tb);
}

/* ---- 3. tokens ---------------------------------------------------------------------------- */

static void test_server_token_direct_message(void **state)
{
    (void)state;
    chat_server *srv = start_server(new_config());
    int port = chat_server_port(srv);
    char *ta = token_for(srv, "alice", "phone");
    char *tb = token_for(srv, "bob", "laptop");
    ws_client *a = auth_client(port, ta, "alice", "phone");
    ws_client *b = auth_client(port, tb, "bob", "laptop");

    long long conv = direct_exchange(a, "alice", "phone", b, "bob", "s1", "c-1", "hi Bob");
    /* and back, in the same conversation */
    assert_int_equal(direct_exchange(b, "bob", "laptop", a, "alice", "s2", "c-2", "hi Alice"),
                     conv);

    /* Bad ids: out is not written. */
    char *out = (char *)"untouched";
    char long_id[66];
    memset(long_id, 'x', 65);
    long_id[65] = '\0';
    assert_int_equal(chat_server_issue_token(srv, "bad user", "phone", TOKEN_TTL_MS, &out),
                     CHAT_EINVAL);
    assert_int_equal(chat_server_issue_token(srv, "alice", "", TOKEN_TTL_MS, &out), CHAT_EINVAL);
    assert_int_equal(chat_server_issue_token(srv, "", "phone", TOKEN_TTL_MS, &out), CHAT_EINVAL);
    assert_int_equal(chat_server_issue_token(srv, long_id, "phone", TOKEN_TTL_MS, &out),
                     CHAT_EINVAL);
    assert_int_equal(chat_server_issue_token(srv, "alice", "ph/one", TOKEN_TTL_MS, &out),
                     CHAT_EINVAL);
    assert_int_equal(chat_server_issue_token(srv, NULL, "phone", TOKEN_TTL_MS, &out),
                     CHAT_EINVAL);
    assert_int_equal(chat_server_issue_token(srv, "alice", "phone", 0, &out), CHAT_EINVAL);
    assert_string_equal(out, "untouched");

    ws_free(a);
    ws_free(b);
    chat_string_free(ta);
    chat_string_free(tb);
    chat_server_free(srv);
}

/* ---- 4. revocation ---------------------------------------------------------------------- */

static void test_server_revoke_closes_connection(void **state)
{
    (void)state;
    chat_server *srv = start_server(new_config());
    int port = chat_server_port(srv);
    char *ta = token_for(srv, "alice", "phone");
    char *tb = token_for(srv, "bob", "laptop");
    ws_client *a = auth_client(port, ta, "alice", "phone");
    ws_client *b = auth_client(port, tb, "bob", "laptop");
    /* Make them contacts, so bob sees alice's presence. */
    direct_exchange(a, "alice", "phone", b, "bob", "s1", "c-1", "before logout");

    long long t0 = ws_now_ms();
    assert_int_equal(chat_server_revoke_token(srv, ta), CHAT_OK);
    int code = ws_wait_close(a, WAIT_MS);
    long long took = ws_now_ms() - t0;
    if (code == -1)
        fail_msg("the revoked connection stayed open for %d ms", WAIT_MS);
    assert_int_equal(code, 1008);
    assert_true(took < 2000);
    ws_free(a);
    /* The second party sees alice go offline. */
    expect_presence(b, "alice", 0);

    /* The revoked token is refused from now on. */
    assert_auth_refused(port, ta);

    /* A fresh token for alice works, and bob hears from her. */
    char *ta2 = token_for(srv, "alice", "phone");
    ws_client *a2 = auth_client(port, ta2, "alice", "phone");
    direct_exchange(a2, "alice", "phone", b, "bob", "s2", "c-2", "after login");

    /* Garbage is not a token. */
    assert_int_equal(chat_server_revoke_token(srv, "garbage"), CHAT_EAUTH);
    assert_int_equal(chat_server_revoke_token(srv, ""), CHAT_EAUTH);
    /* A token signed with a key this server does not have is not one of its tokens. */
    chat_server_config *other_cfg = NULL;
    assert_int_equal(chat_server_config_new(&other_cfg), CHAT_OK);
    unsigned char k9[32];
    key_bytes(k9, 9);
    assert_int_equal(chat_server_config_add_token_key(other_cfg, 1, k9, sizeof k9), CHAT_OK);
    chat_server *other = NULL;
    assert_int_equal(chat_server_new(&other, other_cfg), CHAT_OK);
    chat_server_config_free(other_cfg);
    char *forged = token_for(other, "bob", "laptop");
    assert_int_equal(chat_server_revoke_token(srv, forged), CHAT_EAUTH);
    /* bob's connection was not affected by any of this */
    direct_exchange(b, "bob", "laptop", a2, "alice", "s3", "c-3", "still here");

    chat_string_free(forged);
    chat_server_free(other);
    ws_free(a2);
    ws_free(b);
    chat_string_free(ta);
    chat_string_free(ta2);
    chat_string_free(tb);
    chat_server_free(srv);
}

static chat_server *start_sqlite_server(const char *dir)
{
    chat_server_config *cfg = new_config();
    assert_int_equal(chat_server_config_set_data_dir(cfg, dir), CHAT_OK);
    return start_server(cfg);
}

static void test_server_revoke_persists(void **state)
{
    (void)state;
    char dir[] = "/tmp/libchat-int-XXXXXX";
    assert_non_null(mkdtemp(dir));

    chat_server *srv = start_sqlite_server(dir);
    char *ta = token_for(srv, "alice", "phone");
    char *keep = token_for(srv, "alice", "tablet");
    ws_client *a = auth_client(chat_server_port(srv), ta, "alice", "phone");
    assert_int_equal(chat_server_revoke_token(srv, ta), CHAT_OK);
    assert_int_equal(ws_wait_close(a, WAIT_MS), 1008);
    ws_free(a);
    chat_server_free(srv);

    /* Same directory, same key: the revocation was persisted. */
    srv = start_sqlite_server(dir);
    int port = chat_server_port(srv);
    assert_auth_refused(port, ta);
    /* Other tokens of the same user are unaffected. */
    char *tb = token_for(srv, "bob", "laptop");
    ws_client *a2 = auth_client(port, keep, "alice", "tablet");
    ws_client *b = auth_client(port, tb, "bob", "laptop");
    direct_exchange(a2, "alice", "tablet", b, "bob", "s1", "c-1", "after restart");
    ws_free(a2);
    ws_free(b);
    chat_server_free(srv);

    chat_string_free(ta);
    chat_string_free(keep);
    chat_string_free(tb);
    rm_tree(dir);
}

/* ---- 5. accounts ------------------------------------------------------------------------ */

static void test_server_password_login(void **state)
{
    (void)state;
    /* Three password checks on one connection before it authenticates (a wrong password, an
     * unknown account, which is checked against a dummy hash just as long, then the right one):
     * under valgrind that outlasts the default 5 s authentication deadline. */
    chat_server_config *cfg = new_config();
    assert_int_equal(chat_server_config_set_limit(cfg, CHAT_LIMIT_AUTH_DEADLINE_MS, 60000),
                     CHAT_OK);
    chat_server *srv = start_server(cfg);
    int port = chat_server_port(srv);
    assert_int_equal(chat_server_user_set_password(srv, "carol", "pw"), CHAT_OK);

    /* Login over the socket gets auth_ok with a token. */
    ws_client *c1 = connect_ws(port);
    assert_int_equal(ws_sendf(c1, "{\"type\":\"login\",\"id\":\"l1\",\"v\":1,\"user\":\"carol\","
                                  "\"password\":\"pw\",\"device\":\"web\"}"),
                     0);
    cJSON *ok = wait_re(c1, "l1");
    assert_string_equal(ws_json_str(ok, "type"), "auth_ok");
    assert_string_equal(ws_json_str(ok, "user"), "carol");
    assert_string_equal(ws_json_str(ok, "device"), "web");
    const char *t = ws_json_str(ok, "token");
    assert_non_null(t);
    char *carol_token = strdup(t);
    cJSON_Delete(ok);

    /* The token authenticates a second connection, which then talks to a second party. */
    ws_client *c2 = auth_client(port, carol_token, "carol", "web");
    char *ta = token_for(srv, "alice", "phone");
    ws_client *a = auth_client(port, ta, "alice", "phone");
    direct_exchange(c2, "carol", "web", a, "alice", "s1", "c-1", "logged in");
    /* alice answers: both of carol's connections (login and token) receive it. */
    direct_exchange(a, "alice", "phone", c2, "carol", "s2", "c-2", "hello carol");
    cJSON *m = expect_type(c1, "msg");
    assert_string_equal(ws_json_str(m, "text"), "hello carol");
    cJSON_Delete(m);

    /* A wrong password: EAUTH/auth_failed, and the connection stays usable for a retry. */
    ws_client *c3 = connect_ws(port);
    assert_int_equal(ws_sendf(c3, "{\"type\":\"login\",\"id\":\"l2\",\"v\":1,\"user\":\"carol\","
                                  "\"password\":\"wrong\",\"device\":\"web\"}"),
                     0);
    cJSON *e = wait_re(c3, "l2");
    assert_error(e, "EAUTH", "auth_failed");
    cJSON_Delete(e);
    assert_int_equal(ws_sendf(c3, "{\"type\":\"login\",\"id\":\"l3\",\"v\":1,\"user\":\"nobody\","
                                  "\"password\":\"pw\",\"device\":\"web\"}"),
                     0);
    e = wait_re(c3, "l3");
    assert_error(e, "EAUTH", "auth_failed");
    cJSON_Delete(e);
    assert_false(ws_is_closed(c3));
    assert_int_equal(ws_sendf(c3, "{\"type\":\"login\",\"id\":\"l4\",\"v\":1,\"user\":\"carol\","
                                  "\"password\":\"pw\",\"device\":\"desk\"}"),
                     0);
    ok = wait_re(c3, "l4");
    assert_string_equal(ws_json_str(ok, "type"), "auth_ok");
    assert_string_equal(ws_json_str(ok, "device"), "desk");
    cJSON_Delete(ok);

    /* Changing the password: the old one stops working. */
    assert_int_equal(chat_server_user_set_password(srv, "carol", "pw2"), CHAT_OK);
    ws_client *c4 = connect_ws(port);
    assert_int_equal(ws_sendf(c4, "{\"type\":\"login\",\"id\":\"l5\",\"v\":1,\"user\":\"carol\","
                                  "\"password\":\"pw\",\"device\":\"web\"}"),
                     0);
    e = wait_re(c4, "l5");
    assert_error(e, "EAUTH", "auth_failed");
    cJSON_Delete(e);

    /* Invalid names and passwords. */
    assert_int_equal(chat_server_user_set_password(srv, "bad name", "pw"), CHAT_EINVAL);
    assert_int_equal(chat_server_user_set_password(srv, "", "pw"), CHAT_EINVAL);
    assert_int_equal(chat_server_user_set_password(srv, "x/y", "pw"), CHAT_EINVAL);
    assert_int_equal(chat_server_user_set_password(srv, NULL, "pw"), CHAT_EINVAL);
    assert_int_equal(chat_server_user_set_password(srv, "carol", ""), CHAT_EINVAL);
    assert_int_equal(chat_server_user_set_password(srv, "carol", NULL), CHAT_EINVAL);

    ws_free(c1);
    ws_free(c2);
    ws_free(c3);
    ws_free(c4);
    ws_free(a);
    free(carol_token);
    chat_string_free(ta);
    chat_server_free(srv);
}

/* ---- 6. key rotation -------------------------------------------------------------------- */

static void test_server_key_rotation(void **state)
{
    (void)state;
    unsigned char k1[32], k2[32], k9[32];
    key_bytes(k1, 1);
    key_bytes(k2, 2);
    key_bytes(k9, 9);

    /* Old server: key 1 only. */
    chat_server *old_srv = start_server(new_config());
    char *old_token = token_for(old_srv, "alice", "phone");

    /* Rotated server: keys 1 and 2; key 2 signs new tokens. */
    chat_server_config *cfg = NULL;
    assert_int_equal(chat_server_config_new(&cfg), CHAT_OK);
    assert_int_equal(chat_server_config_set_listen(cfg, "127.0.0.1", 0), CHAT_OK);
    assert_int_equal(chat_server_config_add_token_key(cfg, 1, k1, sizeof k1), CHAT_OK);
    assert_int_equal(chat_server_config_add_token_key(cfg, 2, k2, sizeof k2), CHAT_OK);
    assert_int_equal(chat_server_config_add_token_key(cfg, 3, k2, 31), CHAT_EINVAL);
    assert_int_equal(chat_server_config_add_token_key(cfg, 256, k2, sizeof k2), CHAT_EINVAL);
    chat_server *srv = start_server(cfg);
    int port = chat_server_port(srv);

    /* The key-1 token still authenticates after rotation. */
    ws_client *a = auth_client(port, old_token, "alice", "phone");
    char *new_token = token_for(srv, "bob", "laptop");
    ws_client *b = auth_client(port, new_token, "bob", "laptop");
    direct_exchange(a, "alice", "phone", b, "bob", "s1", "c-1", "rotated");
    direct_exchange(b, "bob", "laptop", a, "alice", "s2", "c-2", "rotated back");

    /* A token the rotated server signed names key 2, which the old server lacks. */
    assert_auth_refused(chat_server_port(old_srv), new_token);

    /* Same key id, other bytes: refused. */
    chat_server_config *fcfg = NULL;
    assert_int_equal(chat_server_config_new(&fcfg), CHAT_OK);
    assert_int_equal(chat_server_config_add_token_key(fcfg, 1, k9, sizeof k9), CHAT_OK);
    chat_server *forger = NULL;
    assert_int_equal(chat_server_new(&forger, fcfg), CHAT_OK);
    chat_server_config_free(fcfg);
    char *forged = token_for(forger, "alice", "phone");
    assert_auth_refused(port, forged);

    chat_string_free(forged);
    chat_server_free(forger);
    ws_free(a);
    ws_free(b);
    chat_string_free(old_token);
    chat_string_free(new_token);
    chat_server_free(srv);
    chat_server_free(old_srv);
}

/* ---- 7. queued bus ---------------------------------------------------------------------- */

static void test_server_queued_bus_delivery(void **state)
{
    (void)state;
    chat_server_config *cfg = new_config();
    void *bus = NULL;
    assert_int_equal(chat_bus_queued_new(&bus), CHAT_OK);
    assert_int_equal(chat_server_config_set_bus(cfg, chat_bus_queued_ops(), bus), CHAT_OK);
    chat_server *srv = start_server(cfg);
    int port = chat_server_port(srv);

    char *ta = token_for(srv, "alice", "phone");
    char *tb = token_for(srv, "bob", "laptop");
    ws_client *a = auth_client(port, ta, "alice", "phone");
    ws_client *b = auth_client(port, tb, "bob", "laptop");

    /* 1:1 message through the queue. */
    direct_exchange(a, "alice", "phone", b, "bob", "s1", "c-1", "queued hello");
    direct_exchange(b, "bob", "laptop", a, "alice", "s2", "c-2", "queued reply");

    /* Presence through the queue: bob leaves, alice sees him offline... */
    ws_free(b);
    expect_presence(a, "bob", 0);
    /* ...bob comes back: his snapshot shows alice online, and alice sees him online. */
    b = connect_ws(port);
    assert_int_equal(ws_sendf(b, "{\"type\":\"auth\",\"id\":\"a2\",\"v\":1,\"token\":\"%s\"}", tb),
                     0);
    cJSON *ok = wait_re(b, "a2");
    assert_string_equal(ws_json_str(ok, "type"), "auth_ok");
    cJSON_Delete(ok);
    cJSON *snap = expect_type(b, "presence");
    assert_int_equal(presence_of(snap, "alice"), 1);
    cJSON_Delete(snap);
    expect_presence(a, "bob", 1);
    direct_exchange(a, "alice", "phone", b, "bob", "s3", "c-3", "welcome back");

    ws_free(a);
    ws_free(b);
    chat_string_free(ta);
    chat_string_free(tb);
    chat_server_free(srv);
}

/* A version-1 bus, as a host wrote it before frames were shared: bytes in publish, bytes out
 * through sink->deliver, synchronously. The engine copies what it gets back. */
typedef struct v1_bus {
    chat_bus_sink sink;
    int publishes;
    int devices[2]; /* devices up of alice, bob */
} v1_bus;

static int v1_user(const char *user)
{
    return strcmp(user, "alice") == 0 ? 0 : strcmp(user, "bob") == 0 ? 1 : -1;
}

static void v1_destroy(void *st)
{
    free(st);
}

static int v1_attach(void *st, const chat_bus_sink *sink)
{
    ((v1_bus *)st)->sink = *sink;
    return CHAT_OK;
}

static int v1_publish(void *st, const char *const *users, size_t n, const char *except_user,
                      const char *except_device, const void *frame, size_t len)
{
    v1_bus *b = st;
    b->publishes++;
    for (size_t i = 0; i < n; i++) {
        int skip = except_user && except_device && strcmp(users[i], except_user) == 0;
        b->sink.deliver(users[i], skip ? except_device : NULL, frame, len, b->sink.user_data);
    }
    return CHAT_OK;
}

static int v1_device(void *st, const char *user, int delta)
{
    v1_bus *b = st;
    int u = v1_user(user);
    if (u < 0)
        return CHAT_OK;
    int was = b->devices[u] > 0;
    b->devices[u] += delta;
    if (was != (b->devices[u] > 0))
        b->sink.presence(user, b->devices[u] > 0, b->sink.user_data);
    return CHAT_OK;
}

static int v1_up(void *st, const char *user, const char *device)
{
    return v1_device(st, user, 1);
}

static int v1_down(void *st, const char *user, const char *device)
{
    return v1_device(st, user, -1);
}

static int v1_online(void *st, const char *user)
{
    int u = v1_user(user);
    return u >= 0 && ((v1_bus *)st)->devices[u] > 0;
}

static void test_server_bus_version_1_still_works(void **state)
{
    (void)state;
    static const chat_bus_ops v1_ops = {.version = 1,
                                        .destroy = v1_destroy,
                                        .attach = v1_attach,
                                        .publish = v1_publish,
                                        .device_up = v1_up,
                                        .device_down = v1_down,
                                        .online = v1_online};
    v1_bus *bus = calloc(1, sizeof *bus);
    assert_non_null(bus);
    chat_server_config *cfg = new_config();
    assert_int_equal(chat_server_config_set_bus(cfg, &v1_ops, bus), CHAT_OK);
    chat_server *srv = start_server(cfg);
    int port = chat_server_port(srv);
    char *ta = token_for(srv, "alice", "phone");
    char *tb = token_for(srv, "bob", "laptop");
    ws_client *a = auth_client(port, ta, "alice", "phone");
    ws_client *b = auth_client(port, tb, "bob", "laptop");
    direct_exchange(a, "alice", "phone", b, "bob", "s1", "c-1", "over a v1 bus");
    direct_exchange(b, "bob", "laptop", a, "alice", "s2", "c-2", "and back");
    assert_true(bus->publishes >= 2);
    ws_free(b);
    expect_presence(a, "bob", 0);
    ws_free(a);
    chat_string_free(ta);
    chat_string_free(tb);
    chat_server_free(srv);
}

static int fake_destroyed;
static void fake_destroy(void *state);

/* A version-2 table may set publish2 alone; one with neither publish method is refused. */
static void test_server_bus_version_2_needs_a_publish(void **state)
{
    (void)state;
    static const chat_bus_ops none = {.version = 2,
                                      .destroy = fake_destroy,
                                      .attach = v1_attach,
                                      .device_up = v1_up,
                                      .device_down = v1_down,
                                      .online = v1_online};
    static const chat_bus_ops v1_no_publish = {.version = 1,
                                               .destroy = fake_destroy,
                                               .attach = v1_attach,
                                               .device_up = v1_up,
                                               .device_down = v1_down,
                                               .online = v1_online,
                                               .publish2 = NULL};
    int marker = 0;
    chat_server_config *cfg = new_config();
    fake_destroyed = 0;
    assert_int_equal(chat_server_config_set_bus(cfg, &none, &marker), CHAT_EINVAL);
    assert_non_null(strstr(chat_error_last()->message, "publish"));
    assert_int_equal(chat_server_config_set_bus(cfg, &v1_no_publish, &marker), CHAT_EINVAL);
    assert_int_equal(fake_destroyed, 2);
    void *local = NULL;
    assert_int_equal(chat_bus_local_new(&local), CHAT_OK);
    assert_null(chat_bus_local_ops()->publish); /* the built-ins are publish2 only */
    assert_int_equal(chat_server_config_set_bus(cfg, chat_bus_local_ops(), local), CHAT_OK);
    chat_server_config_free(cfg);
}

/* ---- 8. push callback ------------------------------------------------------------------- */

typedef struct push_rec {
    char user[CHAT_ID_MAX + 1];
    char sender[CHAT_ID_MAX + 1];
    char title[CHAT_TITLE_MAX + 1];
    int has_preview;
    char preview[256];
    uint64_t unread, seq;
    int64_t conv;
    int conv_kind, msg_kind;
} push_rec;

typedef struct push_log {
    pthread_mutex_t lock;
    int n;
    push_rec ev[16];
    int destroyed;
} push_log;

static int on_push(const chat_push_event *ev, void *user_data)
{
    push_log *log = user_data;
    pthread_mutex_lock(&log->lock);
    if (log->n < 16) {
        push_rec *r = &log->ev[log->n];
        snprintf(r->user, sizeof r->user, "%s", ev->user ? ev->user : "(null)");
        snprintf(r->sender, sizeof r->sender, "%s", ev->sender ? ev->sender : "(null)");
        snprintf(r->title, sizeof r->title, "%s", ev->title ? ev->title : "(null)");
        r->has_preview = ev->preview != NULL;
        snprintf(r->preview, sizeof r->preview, "%s", ev->preview ? ev->preview : "");
        r->unread = ev->unread;
        r->seq = ev->seq;
        r->conv = ev->conv;
        r->conv_kind = ev->conv_kind;
        r->msg_kind = ev->msg_kind;
    }
    log->n++;
    pthread_mutex_unlock(&log->lock);
    return 0;
}

static void on_push_destroy(void *user_data)
{
    push_log *log = user_data;
    pthread_mutex_lock(&log->lock);
    log->destroyed++;
    pthread_mutex_unlock(&log->lock);
}

static int push_count(push_log *log)
{
    pthread_mutex_lock(&log->lock);
    int n = log->n;
    pthread_mutex_unlock(&log->lock);
    return n;
}

/* Wait (bounded) until the callback saw n events. */
static void wait_pushes(push_log *log, int n)
{
    long long deadline = ws_now_ms() + WAIT_MS;
    while (push_count(log) < n && ws_now_ms() < deadline)
        sleep_ms(5);
    if (push_count(log) < n)
        fail_msg("push callback saw %d events, expected %d", push_count(log), n);
}

static chat_server *start_push_server(push_log *log, unsigned int flags)
{
    chat_server_config *cfg = new_config();
    if (flags)
        assert_int_equal(chat_server_config_set_flags(cfg, flags), CHAT_OK);
    void *st = NULL;
    assert_int_equal(chat_push_callback_new(&st, on_push, log, on_push_destroy), CHAT_OK);
    assert_int_equal(chat_server_config_set_push(cfg, chat_push_callback_ops(), st), CHAT_OK);
    return start_server(cfg);
}

static void test_server_push_offline(void **state)
{
    (void)state;
    push_log log;
    memset(&log, 0, sizeof log);
    pthread_mutex_init(&log.lock, NULL);

    chat_server *srv = start_push_server(&log, 0);
    int port = chat_server_port(srv);
    char *ta = token_for(srv, "alice", "phone");
    char *tb = token_for(srv, "bob", "laptop");
    ws_client *a = auth_client(port, ta, "alice", "phone");

    /* bob is offline: each message pushes to him, with his growing unread count. */
    long long conv = direct_exchange(a, "alice", "phone", NULL, "bob", "s1", "c-1", "hello 1");
    assert_int_equal(direct_exchange(a, "alice", "phone", NULL, "bob", "s2", "c-2", "hello 2"),
                     conv);
    wait_pushes(&log, 2);
    pthread_mutex_lock(&log.lock);
    for (int i = 0; i < 2; i++) {
        push_rec *r = &log.ev[i];
        assert_string_equal(r->user, "bob");
        assert_string_equal(r->sender, "alice");
        assert_int_equal(r->unread, (uint64_t)(i + 1));
        assert_int_equal(r->seq, (uint64_t)(i + 1));
        assert_int_equal(r->conv, conv);
        assert_int_equal(r->conv_kind, CHAT_CONV_DIRECT);
        assert_int_equal(r->msg_kind, CHAT_MSG_TEXT);
        assert_string_equal(r->title, "");
        assert_false(r->has_preview); /* previews are off by default */
    }
    pthread_mutex_unlock(&log.lock);

    /* bob online: he gets the message live and no push is made. */
    ws_client *b = auth_client(port, tb, "bob", "laptop");
    direct_exchange(a, "alice", "phone", b, "bob", "s3", "c-3", "hello 3");
    /* The push would be made on the loop thread right after the ack; give it time. */
    sleep_ms(300);
    assert_int_equal(push_count(&log), 2);
    /* The sender is never pushed: bob's answer to online alice pushes nothing either. */
    direct_exchange(b, "bob", "laptop", a, "alice", "s4", "c-4", "hi");
    sleep_ms(300);
    assert_int_equal(push_count(&log), 2);

    ws_free(a);
    ws_free(b);
    chat_server_free(srv);
    assert_int_equal(log.destroyed, 1);

    /* With previews on, the text comes along. */
    memset(log.ev, 0, sizeof log.ev);
    log.n = 0;
    log.destroyed = 0;
    srv = start_push_server(&log, CHAT_SERVER_PUSH_PREVIEWS);
    port = chat_server_port(srv);
    chat_string_free(ta);
    ta = token_for(srv, "alice", "phone");
    a = auth_client(port, ta, "alice", "phone");
    direct_exchange(a, "alice", "phone", NULL, "bob", "s1", "c-1", "hello preview");
    direct_exchange(a, "alice", "phone", NULL, "bob", "s2", "c-2", "second preview");
    wait_pushes(&log, 2);
    pthread_mutex_lock(&log.lock);
    assert_string_equal(log.ev[0].user, "bob");
    assert_string_equal(log.ev[0].sender, "alice");
    assert_true(log.ev[0].has_preview);
    assert_string_equal(log.ev[0].preview, "hello preview");
    assert_int_equal(log.ev[0].unread, 1);
    assert_true(log.ev[1].has_preview);
    assert_string_equal(log.ev[1].preview, "second preview");
    assert_int_equal(log.ev[1].unread, 2);
    pthread_mutex_unlock(&log.lock);
    ws_free(a);
    chat_server_free(srv);
    assert_int_equal(log.destroyed, 1);

    chat_string_free(ta);
    chat_string_free(tb);
    pthread_mutex_destroy(&log.lock);
}

/* ---- 9. configuration errors ------------------------------------------------------------ */

static void test_server_config_limit_errors(void **state)
{
    (void)state;
    chat_server_config *cfg = NULL;
    assert_int_equal(chat_server_config_new(&cfg), CHAT_OK);
    assert_int_equal(chat_server_config_set_limit(cfg, 0, 100), CHAT_EINVAL);
    assert_int_equal(chat_server_config_set_limit(cfg, 999, 100), CHAT_EINVAL);
    assert_int_equal(chat_server_config_set_limit(cfg, -3, 100), CHAT_EINVAL);
    assert_int_equal(chat_server_config_set_limit(cfg, CHAT_LIMIT_FRAME_BYTES, -1), CHAT_EINVAL);
    assert_int_equal(chat_server_config_set_limit(cfg, CHAT_LIMIT_FRAME_BYTES, 1), CHAT_EINVAL);
    assert_int_equal(chat_server_config_set_limit(cfg, CHAT_LIMIT_FRAME_BYTES, INT64_MAX),
                     CHAT_EINVAL);
    assert_int_equal(chat_server_config_set_limit(cfg, CHAT_LIMIT_SEND_RATE, 0), CHAT_EINVAL);
    assert_int_equal(chat_server_config_set_limit(cfg, CHAT_LIMIT_FRAME_BYTES, 128 * 1024),
                     CHAT_OK);
    assert_int_equal(chat_server_config_set_limit(NULL, CHAT_LIMIT_FRAME_BYTES, 128 * 1024),
                     CHAT_EINVAL);

    assert_int_equal(chat_server_limit_by_name("frame_bytes"), CHAT_LIMIT_FRAME_BYTES);
    assert_int_equal(chat_server_limit_by_name("idle_ping_ms"), CHAT_LIMIT_IDLE_PING_MS);
    assert_int_equal(chat_server_limit_by_name("typing_rate"), CHAT_LIMIT_TYPING_RATE);
    assert_int_equal(chat_server_limit_by_name("no_such_limit"), CHAT_EINVAL);
    assert_int_equal(chat_server_limit_by_name(""), CHAT_EINVAL);
    assert_int_equal(chat_server_limit_by_name(NULL), CHAT_EINVAL);

    assert_int_equal(chat_server_config_set_flags(cfg, 0x80u), CHAT_EINVAL);
    assert_int_equal(chat_server_config_set_listen(cfg, "127.0.0.1", 70000), CHAT_EINVAL);
    chat_server_config_free(cfg);
    chat_server_config_free(NULL);
}

static void test_server_new_without_key(void **state)
{
    (void)state;
    chat_server_config *cfg = NULL;
    assert_int_equal(chat_server_config_new(&cfg), CHAT_OK);
    chat_server *srv = (chat_server *)&cfg; /* sentinel: must stay untouched */
    chat_server *sentinel = srv;
    assert_int_equal(chat_server_new(&srv, cfg), CHAT_EAUTH);
    assert_ptr_equal(srv, sentinel);
    assert_int_equal(chat_error_last()->code, CHAT_EAUTH);
    chat_server_config_free(cfg);
}

/* A counting fake store: only destroy matters, the table is refused before any other call. */
static int fake_destroyed;
static void fake_destroy(void *state)
{
    (void)state;
    fake_destroyed++;
}

static int fake_request(void *state, const char *node, const void *msg, size_t len,
                        int64_t timeout_ms, uint64_t id)
{
    return CHAT_OK;
}

/* The memory store's methods under a table of the given version, registered as a host's. */
static chat_server *start_with_store_version(unsigned int version, chat_store_ops *ops)
{
    *ops = *chat_store_memory_ops();
    ops->version = version;
    void *st = NULL;
    assert_int_equal(chat_store_memory_new(&st), CHAT_OK);
    chat_server_config *cfg = new_config();
    assert_int_equal(chat_server_config_set_store(cfg, ops, st), CHAT_OK);
    return start_server(cfg);
}

static void react_to(ws_client *c, const char *id, long long conv, int seq, const char *emoji)
{
    assert_int_equal(ws_sendf(c, "{\"type\":\"react\",\"id\":\"%s\",\"conv\":%lld,\"seq\":%d,"
                                 "\"emoji\":\"%s\"}", id, conv, seq, emoji),
                     0);
    cJSON *ack = wait_re(c, id);
    assert_string_equal(ws_json_str(ack, "type"), "ok");
    cJSON_Delete(ack);
}

/* A history page's text messages with their reactions, as bob's client reads them. */
static char *page_reactions(ws_client *c, long long conv)
{
    assert_int_equal(ws_sendf(c, "{\"type\":\"history\",\"id\":\"h\",\"conv\":%lld}", conv), 0);
    cJSON *o = wait_re(c, "h");
    assert_string_equal(ws_json_str(o, "type"), "history");
    char buf[1024] = "";
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(o, "messages"))
    {
        if (strcmp(ws_json_str(m, "kind"), "text") != 0)
            continue;
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(m, "reactions");
        char *txt = r ? cJSON_PrintUnformatted(r) : NULL;
        size_t len = strlen(buf);
        snprintf(buf + len, sizeof buf - len, "%s:%s;", ws_json_str(m, "text"),
                 txt ? txt : "-");
        free(txt);
    }
    cJSON_Delete(o);
    return strdup(buf);
}

/* A history page shows the same reactions whether the store hands them over with the rows
 * (version 6) or the engine reads them apart (version 5, whose rows libchat reads without
 * the version-6 fields). */
static void test_server_store_version_5_reactions(void **state)
{
    (void)state;
    char *seen[2];
    for (int i = 0; i < 2; i++) {
        static chat_store_ops ops[2];
        chat_server *srv = start_with_store_version(i ? 6 : 5, &ops[i]);
        int port = chat_server_port(srv);
        char *ta = token_for(srv, "alice", "phone");
        char *tb = token_for(srv, "bob", "laptop");
        ws_client *a = auth_client(port, ta, "alice", "phone");
        ws_client *b = auth_client(port, tb, "bob", "laptop");
        long long conv = direct_exchange(a, "alice", "phone", b, "bob", "s1", "c-1", "one");
        direct_exchange(a, "alice", "phone", b, "bob", "s2", "c-2", "two");
        direct_exchange(a, "alice", "phone", b, "bob", "s3", "c-3", "three");
        /* in the order of their names: one millisecond may hold both (ties go by name) */
        react_to(a, "r1", conv, 1, "\xf0\x9f\x91\x8d");
        react_to(b, "r2", conv, 1, "\xf0\x9f\x91\x8d");
        react_to(a, "r3", conv, 1, "\xe2\x9d\xa4\xef\xb8\x8f");
        react_to(b, "r4", conv, 3, "\xf0\x9f\x98\x82");
        seen[i] = page_reactions(b, conv);
        ws_free(a);
        ws_free(b);
        chat_string_free(ta);
        chat_string_free(tb);
        chat_server_free(srv);
    }
    assert_string_equal(seen[0], "one:[{\"emoji\":\"\xe2\x9d\xa4\xef\xb8\x8f\",\"users\":[\"alice\"]},"
                                 "{\"emoji\":\"\xf0\x9f\x91\x8d\",\"users\":[\"alice\",\"bob\"]}];"
                                 "two:-;three:[{\"emoji\":\"\xf0\x9f\x98\x82\",\"users\":[\"bob\"]}];");
    assert_string_equal(seen[1], seen[0]);
    free(seen[0]);
    free(seen[1]);
}

static void test_server_store_version_refused(void **state)
{
    (void)state;
    static const chat_store_ops v99 = {.version = 99, .destroy = fake_destroy};
    static const chat_store_ops v0 = {.version = 0, .destroy = fake_destroy};
    static const chat_bus_ops bus_v99 = {.version = 99, .destroy = fake_destroy};
    static const chat_push_ops push_v99 = {.version = 99, .destroy = fake_destroy};
    int marker = 0;

    chat_server_config *cfg = new_config();
    fake_destroyed = 0;
    assert_int_equal(chat_server_config_set_store(cfg, &v99, &marker), CHAT_EVERSION);
    assert_int_equal(fake_destroyed, 1);
    assert_int_equal(chat_server_config_set_store(cfg, &v0, &marker), CHAT_EVERSION);
    assert_int_equal(fake_destroyed, 2);
    assert_int_equal(chat_server_config_set_bus(cfg, &bus_v99, &marker), CHAT_EVERSION);
    assert_int_equal(fake_destroyed, 3);
    assert_int_equal(chat_server_config_set_push(cfg, &push_v99, &marker), CHAT_EVERSION);
    assert_int_equal(fake_destroyed, 4);
    /* version 4: request without respond (or the reverse) is a broken table */
    chat_bus_ops half = *chat_bus_local_ops();
    half.version = 4;
    half.destroy = fake_destroy;
    half.request = fake_request;
    assert_int_equal(chat_server_config_set_bus(cfg, &half, &marker), CHAT_EINVAL);
    assert_int_equal(fake_destroyed, 5);

    /* The refused backends are not used: the server still works on its defaults, and no
     * destroy is repeated at free. */
    chat_server *srv = start_server(cfg);
    char *ta = token_for(srv, "alice", "phone");
    char *tb = token_for(srv, "bob", "laptop");
    ws_client *a = auth_client(chat_server_port(srv), ta, "alice", "phone");
    ws_client *b = auth_client(chat_server_port(srv), tb, "bob", "laptop");
    direct_exchange(a, "alice", "phone", b, "bob", "s1", "c-1", "on defaults");
    ws_free(a);
    ws_free(b);
    chat_string_free(ta);
    chat_string_free(tb);
    chat_server_free(srv);
    assert_int_equal(fake_destroyed, 5);
}

static void assert_start_fails_on(int port)
{
    chat_server_config *cfg = new_config();
    assert_int_equal(chat_server_config_set_listen(cfg, "127.0.0.1", port), CHAT_OK);
    chat_server *srv = NULL;
    assert_int_equal(chat_server_new(&srv, cfg), CHAT_OK);
    chat_server_config_free(cfg);
    int rc = chat_server_start(srv);
    if (rc != CHAT_EIO)
        fail_msg("chat_server_start on taken port %d returned %d (%s), bound port %d; "
                 "expected CHAT_EIO",
                 port, rc, chat_error_name(rc), chat_server_port(srv));
    assert_int_equal(chat_server_port(srv), 0);
    chat_server_free(srv);
}

/* Two servers that both ask for it share one port (SO_REUSEPORT); the second keeps serving
 * the port when the first stops. Without the flag the port stays taken
 * (test_server_start_port_taken). */
static void test_server_reuse_port_shares_the_port(void **state)
{
    (void)state;
    chat_server_config *cfg = new_config();
    assert_int_equal(chat_server_config_set_flags(cfg, CHAT_SERVER_REUSE_PORT), CHAT_OK);
    chat_server *first = start_server(cfg);
    int port = chat_server_port(first);
    cfg = new_config();
    assert_int_equal(chat_server_config_set_listen(cfg, "127.0.0.1", port), CHAT_OK);
    assert_int_equal(chat_server_config_set_flags(cfg, CHAT_SERVER_REUSE_PORT), CHAT_OK);
    chat_server *second = start_server(cfg);
    assert_int_equal(chat_server_port(second), port);
    char *tok = token_for(first, "alice", "phone"); /* same key: valid on both */
    for (int i = 0; i < 8; i++)
        ws_free(auth_client(port, tok, "alice", "phone"));
    chat_server_free(first);
    for (int i = 0; i < 8; i++)
        ws_free(auth_client(port, tok, "alice", "phone"));
    chat_string_free(tok);
    chat_server_free(second);
}

/* The library's threads raise no SIGPIPE in the host. The test keeps SIGPIPE's default action
 * (which ends the process) and, from inside the push callback the server calls on its own
 * thread, writes into a socket whose peer is gone, as a write into a reset connection would. */
static atomic_int pipe_probed, pipe_errno;

static int pipe_probe_push(const chat_push_event *ev, void *user_data)
{
    (void)ev;
    (void)user_data;
    int sv[2];
    if (atomic_exchange(&pipe_probed, 1) || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return 0;
    close(sv[1]);
    if (write(sv[0], "x", 1) < 0)
        atomic_store(&pipe_errno, errno);
    close(sv[0]);
    return 0;
}

static void test_server_threads_raise_no_sigpipe(void **state)
{
    (void)state;
    void (*old)(int) = signal(SIGPIPE, SIG_DFL);
    atomic_store(&pipe_probed, 0);
    atomic_store(&pipe_errno, 0);
    chat_server_config *cfg = new_config();
    void *st = NULL;
    assert_int_equal(chat_push_callback_new(&st, pipe_probe_push, NULL, NULL), CHAT_OK);
    assert_int_equal(chat_server_config_set_push(cfg, chat_push_callback_ops(), st), CHAT_OK);
    chat_server *srv = start_server(cfg);
    int port = chat_server_port(srv);
    char *tok = token_for(srv, "alice", "phone");
    ws_client *a = auth_client(port, tok, "alice", "phone");
    direct_exchange(a, "alice", "phone", NULL, "bob", "s1", "c-1", "to offline bob");
    long long deadline = ws_now_ms() + WAIT_MS;
    while (!atomic_load(&pipe_probed) && ws_now_ms() < deadline)
        sleep_ms(5);
    /* A peer resetting while replies are on their way. */
    for (int round = 0; round < 10; round++) {
        ws_client *c = auth_client(port, tok, "alice", "phone");
        for (int i = 0; i < 64; i++)
            assert_int_equal(ws_sendf(c, "{\"type\":\"ping\",\"id\":\"p%d\"}", i), 0);
        ws_drop(c);
    }
    direct_exchange(a, "alice", "phone", NULL, "bob", "s2", "c-2", "the server still serves");
    ws_free(a);
    chat_string_free(tok);
    chat_server_free(srv);
    signal(SIGPIPE, old);
    assert_int_equal(atomic_load(&pipe_probed), 1);
    assert_int_equal(atomic_load(&pipe_errno), EPIPE);
}

static void collect_log(int level, const char *msg, void *user_data)
{
    (void)level;
    char *buf = user_data;
    size_t used = strlen(buf);
    snprintf(buf + used, 4096 - used, "%s\n", msg);
}

/* The transport's complaints reach the host's log callback, never stderr directly. */
static void test_server_transport_log_routed(void **state)
{
    (void)state;
    const char *expect = "TLS: cannot use the certificate";
    char dir[] = "/tmp/chat-tls-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/bad.pem", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("not a certificate\n", f);
    fclose(f);
    static char log[4096];
    log[0] = '\0';
    chat_server_config *cfg = new_config();
    assert_int_equal(chat_server_config_set_log(cfg, collect_log, CHAT_LOG_WARN, log), CHAT_OK);
    assert_int_equal(chat_server_config_set_tls(cfg, path, path), CHAT_OK);
    chat_server *srv = NULL;
    assert_int_equal(chat_server_new(&srv, cfg), CHAT_OK);
    chat_server_config_free(cfg);
    assert_int_equal(chat_server_start(srv), CHAT_EIO);
    chat_server_free(srv);
    if (!strstr(log, expect))
        fail_msg("'%s' not in the log:\n%s", expect, log);
    unlink(path);
    rmdir(dir);
}


static void test_server_start_port_taken(void **state)
{
    (void)state;
    /* Taken by a plain listening socket. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 4), 0);
    socklen_t sl = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    assert_start_fails_on(ntohs(sa.sin_port));
    close(fd);

    /* Taken by another libchat server, which keeps serving. */
    chat_server *first = start_server(new_config());
    int port = chat_server_port(first);
    assert_start_fails_on(port);
    char *ta = token_for(first, "alice", "phone");
    char *tb = token_for(first, "bob", "laptop");
    ws_client *a = auth_client(port, ta, "alice", "phone");
    ws_client *b = auth_client(port, tb, "bob", "laptop");
    direct_exchange(a, "alice", "phone", b, "bob", "s1", "c-1", "still serving");
    ws_free(a);
    ws_free(b);
    chat_string_free(ta);
    chat_string_free(tb);
    chat_server_free(first);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_start_stop_twice),
        cmocka_unit_test(test_server_run_on_host_thread),
        cmocka_unit_test(test_server_token_direct_message),
        cmocka_unit_test(test_server_revoke_closes_connection),
        cmocka_unit_test(test_server_revoke_persists),
        cmocka_unit_test(test_server_password_login),
        cmocka_unit_test(test_server_key_rotation),
        cmocka_unit_test(test_server_queued_bus_delivery),
        cmocka_unit_test(test_server_bus_version_1_still_works),
        cmocka_unit_test(test_server_bus_version_2_needs_a_publish),
        cmocka_unit_test(test_server_push_offline),
        cmocka_unit_test(test_server_config_limit_errors),
        cmocka_unit_test(test_server_new_without_key),
        cmocka_unit_test(test_server_store_version_refused),
        cmocka_unit_test(test_server_store_version_5_reactions),
        cmocka_unit_test(test_server_start_port_taken),
        cmocka_unit_test(test_server_transport_log_routed),
        cmocka_unit_test(test_server_reuse_port_shares_the_port),
        cmocka_unit_test(test_server_threads_raise_no_sigpipe),
    };
    /* CHAT_TEST_FILTER=test_server_push* runs a subset, CHAT_TEST_SKIP=... skips some
     * (cmocka globs: * and ?). */
    const char *filter = getenv("CHAT_TEST_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    const char *skip = getenv("CHAT_TEST_SKIP");
    if (skip && *skip)
        cmocka_set_skip_filter(skip);
    return cmocka_run_group_tests_name("integration-server-api", tests, NULL, NULL);
}
