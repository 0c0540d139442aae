/* The fixture of the loopback tests: a server on the loopback transport (transport/loopback.h)
 * with a fixed token key, and the far ends of its connections. Static helpers, one copy per
 * test program. */
#ifndef CHAT_TESTS_LB_FIXTURE_H
#define CHAT_TESTS_LB_FIXTURE_H

#include "server/internal.h"
#include "transport/loopback.h"

#include "core/alloc.h"

#include <chat/chat.h>
#include <cjson/cJSON.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define WAIT_MS 5000

typedef struct fixture {
    chat__lb *lb;
    chat_server *srv;
} fixture;

/* A configuration with the fixture's token key and these limits (pairs, 0-terminated). */
static inline chat_server_config *fixture_config(const int *limits)
{
    chat_server_config *cfg = NULL;
    assert_int_equal(chat_server_config_new(&cfg), CHAT_OK);
    unsigned char k[32];
    for (int i = 0; i < 32; i++)
        k[i] = (unsigned char)(i * 7 + 1);
    assert_int_equal(chat_server_config_add_token_key(cfg, 1, k, sizeof k), CHAT_OK);
    for (int i = 0; limits && limits[i]; i += 2)
        assert_int_equal(chat_server_config_set_limit(cfg, limits[i], limits[i + 1]), CHAT_OK);
    return cfg;
}

/* Start a server from cfg (freed here) on a new loopback. */
static inline void start_with(fixture *fx, chat_server_config *cfg)
{
    assert_int_equal(chat__lb_new(&fx->lb), CHAT_OK);
    chat__server_config_set_transport(cfg, chat__transport_loopback(), fx->lb);
    assert_int_equal(chat_server_new(&fx->srv, cfg), CHAT_OK);
    chat_server_config_free(cfg);
    assert_int_equal(chat_server_start(fx->srv), CHAT_OK);
}

static inline void start(fixture *fx, const int *limits)
{
    start_with(fx, fixture_config(limits));
}

static inline void stop(fixture *fx)
{
    chat_server_free(fx->srv);
    chat__lb_free(fx->lb);
}

/* The next frame of type type (skipping others), parsed; fails the test on timeout. */
static inline cJSON *expect(chat__lb_conn *c, const char *type)
{
    for (int i = 0; i < 50; i++) {
        char *s = NULL;
        int rc = chat__lb_recv(c, &s, WAIT_MS);
        if (rc != CHAT_OK)
            fail_msg("waiting for a '%s' frame: %s", type, chat_error_name(rc));
        cJSON *o = cJSON_Parse(s);
        chat__free(s);
        assert_non_null(o);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
        if (cJSON_IsString(t) && strcmp(t->valuestring, type) == 0)
            return o;
        cJSON_Delete(o);
    }
    fail_msg("no '%s' frame among 50", type);
    return NULL;
}

static inline void send_text(chat__lb_conn *c, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof buf);
    assert_int_equal(chat__lb_send(c, buf, (size_t)n), CHAT_OK);
}

/* A connection authenticated as (user, device) with a fresh token. */
static inline chat__lb_conn *connect_dev(fixture *fx, const char *user, const char *device)
{
    chat__lb_conn *c = NULL;
    assert_int_equal(chat__lb_connect(fx->lb, &c, "/", NULL, NULL, WAIT_MS), CHAT_OK);
    char *tok = NULL;
    assert_int_equal(chat_server_issue_token(fx->srv, user, device, 3600000, &tok), CHAT_OK);
    send_text(c, "{\"type\":\"auth\",\"id\":\"a\",\"token\":\"%s\"}", tok);
    chat_string_free(tok);
    cJSON_Delete(expect(c, "auth_ok"));
    return c;
}

static inline chat__lb_conn *connect_as(fixture *fx, const char *user)
{
    return connect_dev(fx, user, "phone");
}

#endif
