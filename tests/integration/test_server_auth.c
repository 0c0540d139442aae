/* Integration: a host-supplied auth backend (sys/auth.h) on a running server, through the
 * public API only. The host's verifier accepts "user:device:secret" tokens from a table; the
 * server must use it for the WebSocket auth frame, the media HTTP bearer token and
 * chat_server_revoke_token(), and keep revocation by session id and expiry working on top.
 * Real sockets on 127.0.0.1, port 0. */
#define _GNU_SOURCE
#include <chat/chat.h>
#include <chat/sys/auth.h>
#include <chat/sys/blob.h>

#include "wsclient.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define WAIT_MS 5000

/* ---- the host's verifier ---- */

typedef struct host_token {
    const char *token;   /* "user:device:secret" */
    const char *session; /* the host's session id */
    int64_t exp_ms;      /* 0: none */
} host_token;

typedef struct host_auth {
    host_token table[8];
    int n;
    atomic_int calls;
    atomic_int *destroyed; /* incremented by destroy */
} host_auth;

static int host_verify(void *state, const char *token, size_t len, int64_t now_ms,
                       chat_auth_identity *out)
{
    (void)now_ms; /* expiry is left to libchat, which must enforce exp_ms itself */
    host_auth *h = state;
    atomic_fetch_add(&h->calls, 1);
    if (len == 7 && memcmp(token, "failing", 7) == 0)
        return CHAT_EIO; /* the backend's own failure: refused as well */
    for (int i = 0; i < h->n; i++) {
        const host_token *t = &h->table[i];
        if (strlen(t->token) != len || memcmp(t->token, token, len) != 0)
            continue;
        const char *c1 = strchr(t->token, ':');
        const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            break;
        snprintf(out->user, sizeof out->user, "%.*s", (int)(c1 - t->token), t->token);
        snprintf(out->device, sizeof out->device, "%.*s", (int)(c2 - c1 - 1), c1 + 1);
        snprintf(out->session, sizeof out->session, "%s", t->session);
        out->exp_ms = t->exp_ms;
        return CHAT_OK;
    }
    snprintf(out->reason, sizeof out->reason, "not in the host's table");
    return CHAT_EAUTH;
}

static void host_destroy(void *state)
{
    host_auth *h = state;
    atomic_fetch_add(h->destroyed, 1);
    free(h);
}

static const chat_auth_ops host_ops = {
    .version = CHAT_AUTH_OPS_VERSION,
    .destroy = host_destroy,
    .verify = host_verify,
};

static atomic_int destroyed;

static host_auth *host_new(void)
{
    host_auth *h = calloc(1, sizeof *h);
    assert_non_null(h);
    h->destroyed = &destroyed;
    return h;
}

static void host_add(host_auth *h, const char *token, const char *session, int64_t exp_ms)
{
    assert_true(h->n < 8);
    h->table[h->n++] = (host_token){token, session, exp_ms};
}

static int64_t real_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void log_stderr(int level, const char *msg, void *user_data)
{
    (void)user_data;
    if (level <= CHAT_LOG_WARN)
        fprintf(stderr, "chat[%d]: %s\n", level, msg);
}

/* A server using h (ownership passes), with a token key (still required: it keys media URLs)
 * and, when blob_dir is set, a filesystem blob store there. */
static chat_server *start_with(host_auth *h, const char *blob_dir)
{
    chat_server_config *cfg = NULL;
    assert_int_equal(chat_server_config_new(&cfg), CHAT_OK);
    assert_int_equal(chat_server_config_set_listen(cfg, "127.0.0.1", 0), CHAT_OK);
    assert_int_equal(chat_server_config_set_log(cfg, log_stderr, CHAT_LOG_WARN, NULL), CHAT_OK);
    unsigned char k[32];
    for (int i = 0; i < 32; i++)
        k[i] = (unsigned char)(i * 7 + 1);
    assert_int_equal(chat_server_config_add_token_key(cfg, 1, k, sizeof k), CHAT_OK);
    assert_int_equal(chat_server_config_set_auth(cfg, &host_ops, h), CHAT_OK);
    if (blob_dir) {
        void *bs = NULL;
        assert_int_equal(chat_blob_fs_new(&bs, blob_dir), CHAT_OK);
        assert_int_equal(chat_server_config_set_blob(cfg, chat_blob_fs_ops(), bs), CHAT_OK);
    }
    chat_server *srv = NULL;
    assert_int_equal(chat_server_new(&srv, cfg), CHAT_OK);
    chat_server_config_free(cfg);
    assert_int_equal(chat_server_start(srv), CHAT_OK);
    return srv;
}

/* ---- WebSocket helpers ---- */

static cJSON *wait_re(ws_client *c, const char *id)
{
    long long deadline = ws_now_ms() + WAIT_MS;
    for (;;) {
        long long left = deadline - ws_now_ms();
        cJSON *o = ws_recv_json(c, left > 0 ? (int)left : 0);
        if (!o)
            fail_msg("no answer to '%s' (closed %d, code %d)", id, ws_is_closed(c),
                     ws_close_code(c));
        const char *re = ws_json_str(o, "re");
        if (re && strcmp(re, id) == 0)
            return o;
        cJSON_Delete(o);
    }
}

static ws_client *auth_client(chat_server *srv, const char *token, const char *user,
                              const char *device)
{
    ws_client *c = NULL;
    assert_int_equal(ws_connect(&c, chat_server_port(srv), WAIT_MS), 0);
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

static void assert_auth_refused(chat_server *srv, const char *token)
{
    ws_client *c = NULL;
    assert_int_equal(ws_connect(&c, chat_server_port(srv), WAIT_MS), 0);
    assert_int_equal(ws_sendf(c, "{\"type\":\"auth\",\"id\":\"a1\",\"v\":1,\"token\":\"%s\"}",
                              token),
                     0);
    cJSON *o = wait_re(c, "a1");
    assert_string_equal(ws_json_str(o, "type"), "error");
    assert_string_equal(ws_json_str(o, "code"), "EAUTH");
    assert_string_equal(ws_json_str(o, "reason"), "auth_failed");
    cJSON_Delete(o);
    assert_int_equal(ws_wait_close(c, WAIT_MS), 1008);
    ws_free(c);
}

/* ---- tests ---- */

static void test_auth_host_verifier_chat(void **state)
{
    (void)state;
    atomic_store(&destroyed, 0);
    host_auth *h = host_new();
    host_add(h, "alice:phone:s3cret", "sess-alice-1", 0);
    host_add(h, "bob:web:hunter2", "sess-bob-1", real_now_ms() + 3600000);
    chat_server *srv = start_with(h, NULL);
    ws_client *a = auth_client(srv, "alice:phone:s3cret", "alice", "phone");
    ws_client *b = auth_client(srv, "bob:web:hunter2", "bob", "web");
    assert_true(atomic_load(&h->calls) >= 2);

    assert_int_equal(ws_sendf(a, "{\"type\":\"send\",\"id\":\"s1\",\"to\":\"bob\",\"cmid\":\"m1\","
                                 "\"text\":\"hi bob\"}"),
                     0);
    cJSON *ack = wait_re(a, "s1");
    assert_string_equal(ws_json_str(ack, "type"), "ack");
    cJSON_Delete(ack);
    cJSON *m = ws_wait_type(b, "msg", WAIT_MS);
    assert_non_null(m);
    assert_string_equal(ws_json_str(m, "from"), "alice");
    assert_string_equal(ws_json_str(m, "device"), "phone");
    assert_string_equal(ws_json_str(m, "text"), "hi bob");
    cJSON_Delete(m);

    /* libchat mints no tokens the host's verifier would not accept */
    char *tok = NULL;
    assert_int_equal(chat_server_issue_token(srv, "carol", "d1", 60000, &tok), CHAT_ENOTSUP);
    assert_null(tok);
    ws_client *l = NULL;
    assert_int_equal(ws_connect(&l, chat_server_port(srv), WAIT_MS), 0);
    assert_int_equal(ws_sendf(l, "{\"type\":\"login\",\"id\":\"l1\",\"v\":1,\"user\":\"bob\","
                                 "\"device\":\"web\",\"password\":\"pw\"}"),
                     0);
    cJSON *o = wait_re(l, "l1");
    assert_string_equal(ws_json_str(o, "code"), "ENOTSUP");
    assert_string_equal(ws_json_str(o, "reason"), "login_disabled");
    cJSON_Delete(o);
    ws_free(l);

    ws_free(a);
    ws_free(b);
    assert_int_equal(atomic_load(&destroyed), 0);
    chat_server_free(srv);
    assert_int_equal(atomic_load(&destroyed), 1); /* exactly once, at free */
}

static void test_auth_host_verifier_refusals(void **state)
{
    (void)state;
    atomic_store(&destroyed, 0);
    host_auth *h = host_new();
    host_add(h, "alice:phone:s3cret", "sess-alice-1", 0);
    host_add(h, "bad user:phone:x", "sess-bad", 0);       /* not an id: libchat refuses */
    host_add(h, "carol:phone:nosession", "", 0);          /* no session id: refused */
    host_add(h, "dave:phone:old", "sess-dave", real_now_ms() - 1); /* expired */
    chat_server *srv = start_with(h, NULL);
    assert_auth_refused(srv, "alice:phone:wrong");
    assert_auth_refused(srv, "bad user:phone:x");
    assert_auth_refused(srv, "carol:phone:nosession");
    assert_auth_refused(srv, "dave:phone:old");
    /* libchat's own token format means nothing to this server */
    assert_auth_refused(srv, "AQEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_auth_refused(srv, "failing");
    /* an oversized token is refused without reaching the verifier */
    int calls = atomic_load(&h->calls);
    char big[5001];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_auth_refused(srv, big);
    assert_int_equal(atomic_load(&h->calls), calls);
    assert_int_equal(chat_server_revoke_token(srv, "alice:phone:wrong"), CHAT_EAUTH);
    ws_free(auth_client(srv, "alice:phone:s3cret", "alice", "phone"));
    chat_server_free(srv);
    assert_int_equal(atomic_load(&destroyed), 1);
}

static void test_auth_host_verifier_revocation(void **state)
{
    (void)state;
    host_auth *h = host_new();
    host_add(h, "alice:phone:one", "sess-a", 0);
    host_add(h, "alice:tablet:one", "sess-a", 0); /* same session: revoked together */
    host_add(h, "alice:laptop:two", "sess-b", 0);
    host_add(h, "bob:web:three", "sess-c", 0);
    chat_server *srv = start_with(h, NULL);
    ws_client *a1 = auth_client(srv, "alice:phone:one", "alice", "phone");
    ws_client *a2 = auth_client(srv, "alice:laptop:two", "alice", "laptop");

    assert_int_equal(chat_server_revoke_token(srv, "alice:phone:one"), CHAT_OK);
    assert_int_equal(ws_wait_close(a1, WAIT_MS), 1008);
    assert_auth_refused(srv, "alice:phone:one");
    assert_auth_refused(srv, "alice:tablet:one");
    /* the other session lives on */
    assert_int_equal(ws_sendf(a2, "{\"type\":\"convs\",\"id\":\"p1\"}"), 0);
    cJSON *o = wait_re(a2, "p1");
    assert_string_not_equal(ws_json_str(o, "type"), "error");
    cJSON_Delete(o);
    assert_false(ws_is_closed(a2));

    /* logout revokes the host's session too */
    ws_client *b = auth_client(srv, "bob:web:three", "bob", "web");
    assert_int_equal(ws_sendf(b, "{\"type\":\"logout\",\"id\":\"o1\"}"), 0);
    o = wait_re(b, "o1");
    assert_string_equal(ws_json_str(o, "type"), "ok");
    cJSON_Delete(o);
    assert_int_equal(ws_wait_close(b, WAIT_MS), 1000);
    assert_auth_refused(srv, "bob:web:three");

    ws_free(a1);
    ws_free(a2);
    ws_free(b);
    chat_server_free(srv);
}

static void test_auth_host_verifier_expiry_closes(void **state)
{
    (void)state;
    host_auth *h = host_new();
    host_add(h, "alice:phone:brief", "sess-brief", real_now_ms() + 700);
    chat_server *srv = start_with(h, NULL);
    ws_client *a = auth_client(srv, "alice:phone:brief", "alice", "phone");
    long long t0 = ws_now_ms();
    assert_int_equal(ws_wait_close(a, WAIT_MS), 1008);
    assert_true(ws_now_ms() - t0 < 3000);
    ws_free(a);
    /* the host's verifier still accepts it; libchat refuses it past exp_ms */
    assert_auth_refused(srv, "alice:phone:brief");
    chat_server_free(srv);
}

/* One HTTP/1.1 request on a fresh connection; returns the status and the whole response. */
static int http_request(int port, const char *req, size_t req_len, char *resp, size_t cap)
{
    int fd = ws_tcp_connect(port, WAIT_MS);
    assert_true(fd >= 0);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    struct timeval tv = {WAIT_MS / 1000, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(send(fd, req, req_len, MSG_NOSIGNAL), (ssize_t)req_len);
    size_t n = 0;
    for (;;) {
        ssize_t r = recv(fd, resp + n, cap - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
        resp[n] = '\0';
        if (n >= cap - 1)
            break;
        char *body = strstr(resp, "\r\n\r\n");
        char *cl = strcasestr(resp, "\r\ncontent-length:");
        if (body && cl && cl < body && n >= (size_t)(body + 4 - resp) + strtoul(cl + 17, NULL, 10))
            break;
    }
    resp[n] = '\0';
    close(fd);
    int status = 0;
    if (sscanf(resp, "HTTP/1.1 %d", &status) != 1)
        fail_msg("not an HTTP response: '%s'", resp);
    assert_int_equal(sscanf(resp, "HTTP/1.1 %d", &status), 1);
    return status;
}

static int upload(chat_server *srv, const char *token, char *resp, size_t cap)
{
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "POST /media/uploads HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Authorization: Bearer %s\r\nUpload-Length: 5\r\nContent-Length: 5\r\n"
                     "Content-Type: application/offset+octet-stream\r\n"
                     "Connection: close\r\n\r\nhello",
                     token);
    return http_request(chat_server_port(srv), req, (size_t)n, resp, cap);
}

static void test_auth_host_verifier_media_upload(void **state)
{
    (void)state;
    char dir[] = "/tmp/chat-auth-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    host_auth *h = host_new();
    host_add(h, "alice:phone:s3cret", "sess-alice-1", 0);
    chat_server *srv = start_with(h, dir);
    char resp[4096];
    assert_int_equal(upload(srv, "alice:phone:s3cret", resp, sizeof resp), 201);
    assert_non_null(strstr(resp, "\"media\":\""));
    assert_non_null(strstr(resp, "\"size\":5"));
    assert_int_equal(upload(srv, "alice:phone:wrong", resp, sizeof resp), 401);
    assert_int_equal(chat_server_revoke_token(srv, "alice:phone:s3cret"), CHAT_OK);
    assert_int_equal(upload(srv, "alice:phone:s3cret", resp, sizeof resp), 401);
    chat_server_free(srv);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static atomic_int reg_destroyed;
static void reg_destroy(void *state)
{
    (void)state;
    atomic_fetch_add(&reg_destroyed, 1);
}

static void test_auth_registration_checks(void **state)
{
    (void)state;
    static const chat_auth_ops v0 = {.version = 0, .destroy = reg_destroy,
                                     .verify = host_verify};
    static const chat_auth_ops v99 = {.version = CHAT_AUTH_OPS_VERSION + 1,
                                      .destroy = reg_destroy, .verify = host_verify};
    static const chat_auth_ops no_verify = {.version = CHAT_AUTH_OPS_VERSION,
                                            .destroy = reg_destroy};
    static const chat_auth_ops no_destroy = {.version = CHAT_AUTH_OPS_VERSION,
                                             .verify = host_verify};
    static const chat_auth_ops good = {.version = CHAT_AUTH_OPS_VERSION,
                                       .destroy = reg_destroy, .verify = host_verify};
    chat_server_config *cfg = NULL;
    assert_int_equal(chat_server_config_new(&cfg), CHAT_OK);
    atomic_store(&reg_destroyed, 0);

    assert_int_equal(chat_server_config_set_auth(cfg, &v0, NULL), CHAT_EVERSION);
    assert_non_null(strstr(chat_error_last()->message, "auth"));
    assert_int_equal(atomic_load(&reg_destroyed), 1);
    assert_int_equal(chat_server_config_set_auth(cfg, &v99, NULL), CHAT_EVERSION);
    assert_int_equal(atomic_load(&reg_destroyed), 2);
    assert_int_equal(chat_server_config_set_auth(cfg, &no_verify, NULL), CHAT_EINVAL);
    assert_non_null(strstr(chat_error_last()->message, "verify"));
    assert_int_equal(atomic_load(&reg_destroyed), 3);
    assert_int_equal(chat_server_config_set_auth(cfg, &no_destroy, NULL), CHAT_EINVAL);
    assert_int_equal(chat_server_config_set_auth(cfg, NULL, NULL), CHAT_EINVAL);
    assert_int_equal(chat_server_config_set_auth(NULL, &good, NULL), CHAT_EINVAL);
    assert_int_equal(atomic_load(&reg_destroyed), 4);

    /* replacing destroys the previous state; freeing the config destroys the last */
    assert_int_equal(chat_server_config_set_auth(cfg, &good, NULL), CHAT_OK);
    assert_int_equal(chat_server_config_set_auth(cfg, &good, NULL), CHAT_OK);
    assert_int_equal(atomic_load(&reg_destroyed), 5);
    chat_server_config_free(cfg);
    assert_int_equal(atomic_load(&reg_destroyed), 6);

    /* a config that fails chat_server_new (no token key) keeps its backend for free */
    assert_int_equal(chat_server_config_new(&cfg), CHAT_OK);
    assert_int_equal(chat_server_config_set_auth(cfg, &good, NULL), CHAT_OK);
    chat_server *srv = NULL;
    assert_int_equal(chat_server_new(&srv, cfg), CHAT_EAUTH);
    assert_null(srv);
    assert_int_equal(atomic_load(&reg_destroyed), 6);
    chat_server_config_free(cfg);
    assert_int_equal(atomic_load(&reg_destroyed), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_host_verifier_chat),
        cmocka_unit_test(test_auth_host_verifier_refusals),
        cmocka_unit_test(test_auth_host_verifier_revocation),
        cmocka_unit_test(test_auth_host_verifier_expiry_closes),
        cmocka_unit_test(test_auth_host_verifier_media_upload),
        cmocka_unit_test(test_auth_registration_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
