/* Integration: push registrations and mutes over real sockets, through the public API only. A
 * recording notifier of version 2 (sys/push.h) stands in for the push service: it records every
 * user event and device event the engine makes, and reports tokens invalid through the sink the
 * engine attached. The frames push_register, push_unregister and mute are driven by a raw
 * WebSocket client.
 *
 * `test_server_push postgres`, under tests/lib/pgtemp.py: the same on the PostgreSQL store, a
 * schema of its own for each test (the memory store otherwise). */
#define _GNU_SOURCE
#include <chat/chat.h>
#include <chat/sys/push.h>
#include <chat/sys/store.h>

#include "wsclient.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#ifdef CHAT_TEST_POSTGRES
#include <libpq-fe.h>
#endif

#define WAIT_MS 5000
#define MAX_RECS 64
#define BOB_PHONE_TOKEN "00ff00ff00ff00ff00ff00ff00ff00ff"

/* ---- a recording notifier ---- */

typedef struct recorder {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    char *rec[MAX_RECS]; /* "user bob conv 1 seq 2 unread 2 title - preview -" or "device ..." */
    int n;
    int attached;
    chat_push_sink sink;
    char *logs[256]; /* the server's log lines, for the deletions the writer reports */
    int n_logs;
} recorder;

static void rec_add(recorder *r, char *line)
{
    pthread_mutex_lock(&r->mu);
    if (r->n < MAX_RECS)
        r->rec[r->n++] = line;
    else
        free(line);
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

static int rec_notify(void *st, const chat_push_event *ev)
{
    char *line = NULL;
    if (asprintf(&line, "user %s conv %lld seq %llu unread %llu from %s title %s preview %s",
                 ev->user, (long long)ev->conv, (unsigned long long)ev->seq,
                 (unsigned long long)ev->unread, ev->sender, ev->title[0] ? ev->title : "-",
                 ev->preview ? ev->preview : "-") < 0)
        return CHAT_ENOMEM;
    rec_add(st, line);
    return CHAT_OK;
}

static int rec_notify_device(void *st, const chat_push_event *ev, const chat_store_push_reg *d)
{
    char *line = NULL;
    if (asprintf(&line, "device %s/%s %s sandbox %d topic %s token %s seq %llu unread %llu",
                 d->user, d->device, d->platform == CHAT_PUSH_APNS ? "apns" : "fcm", d->sandbox,
                 d->topic[0] ? d->topic : "-", d->token, (unsigned long long)ev->seq,
                 (unsigned long long)ev->unread) < 0)
        return CHAT_ENOMEM;
    rec_add(st, line);
    return CHAT_OK;
}

static int rec_attach(void *st, const chat_push_sink *sink)
{
    recorder *r = st;
    r->attached++;
    r->sink = *sink;
    return CHAT_OK;
}

static void rec_destroy(void *st)
{
    (void)st; /* the test owns the recorder */
}

static const chat_push_ops rec_ops = {
    .version = CHAT_PUSH_OPS_VERSION,
    .destroy = rec_destroy,
    .notify = rec_notify,
    .attach = rec_attach,
    .notify_device = rec_notify_device,
};

static void rec_log(int level, const char *msg, void *ud)
{
    recorder *r = ud;
    (void)level;
    pthread_mutex_lock(&r->mu);
    if (r->n_logs < 256)
        r->logs[r->n_logs++] = strdup(msg);
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

static void rec_init(recorder *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cond, NULL);
}

static void rec_fini(recorder *r)
{
    for (int i = 0; i < r->n; i++)
        free(r->rec[i]);
    for (int i = 0; i < r->n_logs; i++)
        free(r->logs[i]);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->mu);
}

static struct timespec deadline_in(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Wait until some record contains needle; its index, or -1 after ms. */
static int rec_find(recorder *r, const char *needle, int ms)
{
    struct timespec until = deadline_in(ms);
    pthread_mutex_lock(&r->mu);
    int found = -1;
    for (;;) {
        for (int i = 0; i < r->n && found < 0; i++)
            if (strstr(r->rec[i], needle))
                found = i;
        if (found >= 0 || pthread_cond_timedwait(&r->cond, &r->mu, &until) != 0)
            break;
    }
    pthread_mutex_unlock(&r->mu);
    return found;
}

static int rec_count(recorder *r, const char *needle)
{
    pthread_mutex_lock(&r->mu);
    int n = 0;
    for (int i = 0; i < r->n; i++)
        n += strstr(r->rec[i], needle) != NULL;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* Wait until n records contain needle; fails the test after WAIT_MS. */
static void rec_wait_count(recorder *r, const char *needle, int n)
{
    struct timespec until = deadline_in(WAIT_MS);
    pthread_mutex_lock(&r->mu);
    int have = 0;
    for (;;) {
        have = 0;
        for (int i = 0; i < r->n; i++)
            have += strstr(r->rec[i], needle) != NULL;
        if (have >= n || pthread_cond_timedwait(&r->cond, &r->mu, &until) != 0)
            break;
    }
    pthread_mutex_unlock(&r->mu);
    if (have < n)
        fail_msg("%d push records with '%s', expected %d", have, needle, n);
}

static int log_seen(recorder *r, const char *needle, int ms)
{
    struct timespec until = deadline_in(ms);
    pthread_mutex_lock(&r->mu);
    int found = 0;
    for (;;) {
        for (int i = 0; i < r->n_logs && !found; i++)
            found = strstr(r->logs[i], needle) != NULL;
        if (found || pthread_cond_timedwait(&r->cond, &r->mu, &until) != 0)
            break;
    }
    pthread_mutex_unlock(&r->mu);
    return found;
}

/* ---- a store of version 2: the memory store's table, registrations left out ---- */

static chat_store_ops v2_ops;

static const chat_store_ops *store_v2(void)
{
    v2_ops = *chat_store_memory_ops();
    v2_ops.version = 2;
    v2_ops.push_reg_put = NULL;
    v2_ops.push_reg_del = NULL;
    v2_ops.push_reg_del_token = NULL;
    v2_ops.push_reg_list = NULL;
    v2_ops.push_mute_put = NULL;
    v2_ops.push_mute_get = NULL;
    return &v2_ops;
}

/* ---- the store ---- */

/* CHAT_TEST_PG's conninfo when the tests run on PostgreSQL, else NULL (the memory store). */
static const char *pg_base;

#ifdef CHAT_TEST_POSTGRES
/* A store in a fresh schema of its own, so no test sees another's registrations. */
static void set_pg_store(chat_server_config *cfg)
{
    static int n;
    char schema[32], q[128], conninfo[1024];
    snprintf(schema, sizeof schema, "push_%d", ++n);
    snprintf(q, sizeof q, "CREATE SCHEMA %s", schema); /* the server is new each run */
    PGconn *c = PQconnectdb(pg_base);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("cannot connect to %s: %s", pg_base, PQerrorMessage(c));
    PGresult *r = PQexec(c, q);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", q, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
    snprintf(conninfo, sizeof conninfo, "%s options=-csearch_path=%s", pg_base, schema);
    void *st;
    assert_int_equal(chat_store_postgres_open(&st, conninfo, 0), CHAT_OK);
    assert_int_equal(chat_server_config_set_store(cfg, chat_store_postgres_ops(), st), CHAT_OK);
}
#endif

/* ---- the server and its clients ---- */

typedef struct fixture {
    recorder rec;
    chat_server *srv;
    int port;
    int next_id;
    long long last_seq; /* of the last send_to */
} fixture;

static void start(fixture *f, int old_store)
{
    rec_init(&f->rec);
    chat_server_config *cfg = NULL;
    assert_int_equal(chat_server_config_new(&cfg), CHAT_OK);
    assert_int_equal(chat_server_config_set_listen(cfg, "127.0.0.1", 0), CHAT_OK);
    unsigned char key[32];
    for (int i = 0; i < 32; i++)
        key[i] = (unsigned char)(0x5a ^ i);
    assert_int_equal(chat_server_config_add_token_key(cfg, 1, key, sizeof key), CHAT_OK);
    assert_int_equal(chat_server_config_set_log(cfg, rec_log, CHAT_LOG_INFO, &f->rec), CHAT_OK);
    if (old_store) {
        void *st;
        assert_int_equal(chat_store_memory_new(&st), CHAT_OK);
        assert_int_equal(chat_server_config_set_store(cfg, store_v2(), st), CHAT_OK);
    }
#ifdef CHAT_TEST_POSTGRES
    else if (pg_base)
        set_pg_store(cfg);
#endif
    assert_int_equal(chat_server_config_set_push(cfg, &rec_ops, &f->rec), CHAT_OK);
    int rc = chat_server_new(&f->srv, cfg);
    chat_server_config_free(cfg);
    assert_int_equal(rc, CHAT_OK);
    assert_int_equal(f->rec.attached, 1); /* attached once, whatever the store */
    assert_int_equal(chat_server_start(f->srv), CHAT_OK);
    f->port = chat_server_port(f->srv);
}

static void stop(fixture *f)
{
    chat_server_stop(f->srv);
    chat_server_free(f->srv);
    rec_fini(&f->rec);
}

/* Send frame (a JSON object text without "id") with a fresh id; the answer to it. */
static cJSON *call(fixture *f, ws_client *c, const char *frame)
{
    char id[16];
    snprintf(id, sizeof id, "q%d", ++f->next_id);
    assert_true(frame[0] == '{');
    assert_int_equal(ws_sendf(c, "{\"id\":\"%s\",%s", id, frame + 1), 0);
    long long end = ws_now_ms() + WAIT_MS;
    for (;;) {
        long long left = end - ws_now_ms();
        cJSON *o = ws_recv_json(c, left > 0 ? (int)left : 0);
        if (!o)
            fail_msg("no answer to %s", frame);
        const char *re = ws_json_str(o, "re");
        if (re && strcmp(re, id) == 0)
            return o;
        cJSON_Delete(o);
    }
}

/* The answer's type is ok (or, with code, an error of that code and reason). */
static void expect(fixture *f, ws_client *c, const char *frame, const char *code,
                   const char *reason)
{
    cJSON *o = call(f, c, frame);
    if (!code) {
        if (strcmp(ws_json_str(o, "type"), "ok") != 0)
            fail_msg("%s answered %s %s", frame, ws_json_str(o, "code"),
                     ws_json_str(o, "message"));
    } else {
        assert_string_equal(ws_json_str(o, "type"), "error");
        assert_string_equal(ws_json_str(o, "code"), code);
        assert_string_equal(ws_json_str(o, "reason"), reason);
    }
    cJSON_Delete(o);
}

static ws_client *login(fixture *f, const char *user, const char *device)
{
    char *tok = NULL;
    assert_int_equal(chat_server_issue_token(f->srv, user, device, 3600 * 1000LL, &tok), CHAT_OK);
    ws_client *c = NULL;
    assert_int_equal(ws_connect(&c, f->port, WAIT_MS), 0);
    char frame[1024];
    snprintf(frame, sizeof frame, "{\"type\":\"auth\",\"v\":1,\"token\":\"%s\"}", tok);
    chat_string_free(tok);
    cJSON *o = call(f, c, frame);
    assert_string_equal(ws_json_str(o, "type"), "auth_ok");
    cJSON_Delete(o);
    return c;
}

/* Send text to user; the conversation id. */
static long long send_to(fixture *f, ws_client *c, const char *user, const char *text)
{
    char frame[256];
    snprintf(frame, sizeof frame,
             "{\"type\":\"send\",\"to\":\"%s\",\"cmid\":\"m%d\",\"text\":\"%s\"}", user,
             f->next_id + 1, text);
    cJSON *o = call(f, c, frame);
    assert_string_equal(ws_json_str(o, "type"), "ack");
    long long conv = ws_json_int(o, "conv");
    f->last_seq = ws_json_int(o, "seq");
    cJSON_Delete(o);
    return conv;
}

/* Wait until the server sees user offline: alice sends probes until one pushes to user (a
 * closed socket reaches the server a moment after the close). */
static void until_pushed(fixture *f, ws_client *alice, const char *user)
{
    char needle[64];
    snprintf(needle, sizeof needle, "user %s ", user);
    for (int i = 0; i < 50; i++) {
        send_to(f, alice, user, "probe");
        if (rec_find(&f->rec, needle, 200) >= 0)
            return;
    }
    fail_msg("%s never went offline", user);
}

/* The engine makes a message's device events, then its user event, on the loop thread while
 * the test reads them: once a user event is recorded, every event of that message and the
 * earlier ones is. alice sends user one more message and waits for its user event. */
static void settle(fixture *f, ws_client *alice, const char *user)
{
    char needle[64];
    snprintf(needle, sizeof needle, "user %s ", user);
    int n = rec_count(&f->rec, needle);
    send_to(f, alice, user, "barrier");
    rec_wait_count(&f->rec, needle, n + 1);
}

static void assert_rec(fixture *f, const char *needle)
{
    if (rec_find(&f->rec, needle, WAIT_MS) < 0)
        fail_msg("no push record with '%s'", needle);
}

/* ---- tests ---- */

static void test_push_register_routes_to_each_device(void **state)
{
    fixture f = {0};
    start(&f, 0);
    ws_client *phone = login(&f, "bob", "phone");
    ws_client *tablet = login(&f, "bob", "tablet");
    /* Upper-case hex is taken and kept in lower case. */
    expect(&f, phone, "{\"type\":\"push_register\",\"platform\":\"apns\",\"token\":"
                      "\"00FF00FF00FF00FF00FF00FF00FF00FF\",\"topic\":\"com.example.chat\","
                      "\"sandbox\":true}", NULL, NULL);
    expect(&f, tablet, "{\"type\":\"push_register\",\"platform\":\"fcm\",\"token\":"
                       "\"fcm:tab-1_x.y\"}", NULL, NULL);
    ws_client *alice = login(&f, "alice", "laptop");
    /* bob online (two devices): nothing is pushed. */
    long long conv = send_to(&f, alice, "bob", "while online");
    ws_free(phone);
    ws_free(tablet);
    until_pushed(&f, alice, "bob");
    /* "while online" (seq 1) pushed nothing. */
    assert_int_equal(rec_count(&f.rec, " seq 1 "), 0);

    send_to(&f, alice, "bob", "hello");
    char needle[160];
    snprintf(needle, sizeof needle, "user bob conv %lld seq %lld unread %lld from alice title - "
             "preview -", conv, f.last_seq, f.last_seq); /* bob read nothing */
    assert_rec(&f, needle);
    snprintf(needle, sizeof needle, "device bob/phone apns sandbox 1 topic com.example.chat "
             "token " BOB_PHONE_TOKEN " seq %lld ", f.last_seq);
    assert_rec(&f, needle);
    snprintf(needle, sizeof needle, "device bob/tablet fcm sandbox 0 topic - token fcm:tab-1_x.y "
             "seq %lld ", f.last_seq);
    assert_rec(&f, needle);
    /* The sender is never a recipient. */
    assert_int_equal(rec_count(&f.rec, "user alice"), 0);
    ws_free(alice);
    stop(&f);
    (void)state;
}

static void test_push_mute_silences_every_device(void **state)
{
    fixture f = {0};
    start(&f, 0);
    ws_client *phone = login(&f, "bob", "phone");
    ws_client *laptop = login(&f, "bob", "laptop");
    ws_client *alice = login(&f, "alice", "laptop");
    expect(&f, phone, "{\"type\":\"push_register\",\"platform\":\"apns\",\"token\":\""
                      BOB_PHONE_TOKEN "\"}", NULL, NULL);
    long long conv = send_to(&f, alice, "bob", "first");
    char frame[160];
    snprintf(frame, sizeof frame, "{\"type\":\"mute\",\"conv\":%lld}", conv);
    expect(&f, phone, frame, NULL, NULL);
    /* The other device hears of it, and the conversation entry carries it. */
    cJSON *o = ws_wait_type(laptop, "mute", WAIT_MS);
    assert_non_null(o);
    assert_int_equal(ws_json_int(o, "conv"), conv);
    assert_int_equal(ws_json_int(o, "muted_until"), -1);
    cJSON_Delete(o);
    o = call(&f, laptop, "{\"type\":\"convs\"}");
    cJSON *item = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "convs"), 0);
    assert_non_null(item);
    assert_int_equal(ws_json_int(item, "muted_until"), -1);
    cJSON_Delete(o);
    /* Not a member of that conversation: refused. */
    ws_client *carol = login(&f, "carol", "phone");
    expect(&f, carol, frame, "EPERM", "not_member");
    snprintf(frame, sizeof frame, "{\"type\":\"mute\",\"conv\":%lld,\"until\":\"soon\"}", conv);
    expect(&f, phone, frame, "EINVAL", "bad_field");

    /* Muted: a message while bob is offline pushes nothing. Unmuted (an end in the past
     * counts as unmuted, and until 0 unmutes): the next one does. */
    ws_free(phone);
    ws_free(laptop);
    snprintf(frame, sizeof frame, "{\"type\":\"send\",\"conv\":%lld,\"cmid\":\"x1\",\"text\":"
                                  "\"muted\"}", conv);
    cJSON_Delete(call(&f, alice, frame)); /* seq 2 */
    phone = login(&f, "bob", "phone");
    snprintf(frame, sizeof frame, "{\"type\":\"mute\",\"conv\":%lld,\"until\":1000}", conv);
    expect(&f, phone, frame, NULL, NULL);
    o = call(&f, phone, "{\"type\":\"convs\"}");
    item = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "convs"), 0);
    assert_null(cJSON_GetObjectItem(item, "muted_until")); /* ended */
    cJSON_Delete(o);
    ws_free(phone);
    until_pushed(&f, alice, "bob");
    /* The first push bob ever got is for seq 3 or later: seq 2 was muted. */
    assert_int_equal(rec_count(&f.rec, " seq 2 "), 0);
    assert_rec(&f, "device bob/phone apns");

    phone = login(&f, "bob", "phone");
    snprintf(frame, sizeof frame, "{\"type\":\"mute\",\"conv\":%lld,\"until\":99999999999999}",
             conv);
    expect(&f, phone, frame, NULL, NULL);
    snprintf(frame, sizeof frame, "{\"type\":\"mute\",\"conv\":%lld,\"until\":0}", conv);
    expect(&f, phone, frame, NULL, NULL);
    ws_free(phone);
    settle(&f, alice, "bob");
    int n = rec_count(&f.rec, "device bob/phone");
    until_pushed(&f, alice, "bob");
    settle(&f, alice, "bob");
    assert_true(rec_count(&f.rec, "device bob/phone") > n);
    ws_free(alice);
    ws_free(carol);
    stop(&f);
    (void)state;
}

static void test_push_invalid_token_drops_the_registration(void **state)
{
    fixture f = {0};
    start(&f, 0);
    ws_client *phone = login(&f, "bob", "phone");
    ws_client *tablet = login(&f, "bob", "tablet");
    expect(&f, phone, "{\"type\":\"push_register\",\"platform\":\"apns\",\"token\":\""
                      BOB_PHONE_TOKEN "\"}", NULL, NULL);
    expect(&f, tablet, "{\"type\":\"push_register\",\"platform\":\"fcm\",\"token\":\"tab\"}",
           NULL, NULL);
    ws_free(phone);
    ws_free(tablet);
    /* The provider (here the test's thread) calls the phone's token invalid. */
    f.rec.sink.token_invalid(CHAT_PUSH_APNS, BOB_PHONE_TOKEN, f.rec.sink.user_data);
    assert_true(log_seen(&f.rec, "deleted the registrations of 1 invalid token", WAIT_MS));
    ws_client *alice = login(&f, "alice", "laptop");
    until_pushed(&f, alice, "bob");
    settle(&f, alice, "bob");
    /* The tablet got every push since, the phone none. */
    assert_int_equal(rec_count(&f.rec, "device bob/tablet"), rec_count(&f.rec, "user bob "));
    assert_int_equal(rec_count(&f.rec, "device bob/phone"), 0);
    ws_free(alice);
    stop(&f);
    (void)state;
}

static void test_push_token_follows_the_last_registration(void **state)
{
    fixture f = {0};
    start(&f, 0);
    ws_client *bob = login(&f, "bob", "phone");
    expect(&f, bob, "{\"type\":\"push_register\",\"platform\":\"apns\",\"token\":\""
                    BOB_PHONE_TOKEN "\"}", NULL, NULL);
    ws_free(bob);
    /* carol signs in on the same phone: the token is hers now. */
    ws_client *carol = login(&f, "carol", "phone");
    expect(&f, carol, "{\"type\":\"push_register\",\"platform\":\"apns\",\"token\":\""
                      BOB_PHONE_TOKEN "\"}", NULL, NULL);
    ws_free(carol);
    ws_client *alice = login(&f, "alice", "laptop");
    until_pushed(&f, alice, "bob");
    until_pushed(&f, alice, "carol");
    assert_rec(&f, "device carol/phone apns");
    assert_int_equal(rec_count(&f.rec, "device bob/"), 0);
    /* Unregistering (or logging out) ends a device's pushes. */
    settle(&f, alice, "carol");
    int n = rec_count(&f.rec, "device carol/");
    carol = login(&f, "carol", "phone");
    expect(&f, carol, "{\"type\":\"push_unregister\"}", NULL, NULL);
    expect(&f, carol, "{\"type\":\"push_unregister\"}", NULL, NULL); /* again: still ok */
    ws_free(carol);
    until_pushed(&f, alice, "carol");
    settle(&f, alice, "carol");
    assert_int_equal(rec_count(&f.rec, "device carol/"), n);
    ws_free(alice);
    stop(&f);
    (void)state;
}

static void test_push_logout_drops_the_registration(void **state)
{
    fixture f = {0};
    start(&f, 0);
    ws_client *bob = login(&f, "bob", "phone");
    expect(&f, bob, "{\"type\":\"push_register\",\"platform\":\"fcm\",\"token\":\"bobs\"}", NULL,
           NULL);
    expect(&f, bob, "{\"type\":\"logout\"}", NULL, NULL);
    ws_free(bob);
    ws_client *alice = login(&f, "alice", "laptop");
    until_pushed(&f, alice, "bob");
    settle(&f, alice, "bob");
    assert_int_equal(rec_count(&f.rec, "device bob/"), 0);
    ws_free(alice);
    stop(&f);
    (void)state;
}

static void test_push_register_refuses_bad_fields(void **state)
{
    fixture f = {0};
    start(&f, 0);
    ws_client *c = login(&f, "bob", "phone");
    static const char *const bad[] = {
        "{\"type\":\"push_register\",\"platform\":\"webpush\",\"token\":\"00ff00ff00ff00ff\"}",
        "{\"type\":\"push_register\",\"platform\":\"apns\",\"token\":\"00ff00ff00ff00fg\"}",
        "{\"type\":\"push_register\",\"platform\":\"apns\",\"token\":\"00ff00ff00ff00f\"}",
        "{\"type\":\"push_register\",\"platform\":\"apns\",\"token\":\"00ff\"}",
        "{\"type\":\"push_register\",\"platform\":\"fcm\",\"token\":\"a b\"}",
        "{\"type\":\"push_register\",\"platform\":\"fcm\",\"token\":\"\"}",
        "{\"type\":\"push_register\",\"platform\":\"fcm\",\"token\":7}",
        "{\"type\":\"push_register\",\"platform\":\"fcm\",\"token\":\"t\",\"topic\":\"a/b\"}",
        "{\"type\":\"push_register\",\"platform\":\"fcm\",\"token\":\"t\",\"sandbox\":\"yes\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect(&f, c, bad[i], "EINVAL", "bad_field");
    expect(&f, c, "{\"type\":\"push_register\",\"platform\":\"fcm\"}", "EINVAL", "missing_field");
    char big[700];
    memset(big, 'a', sizeof big);
    big[sizeof big - 1] = '\0';
    char frame[800];
    snprintf(frame, sizeof frame,
             "{\"type\":\"push_register\",\"platform\":\"fcm\",\"token\":\"%s\"}", big);
    expect(&f, c, frame, "EINVAL", "bad_field");
    ws_free(c);
    /* Before authentication: refused like any other request. */
    assert_int_equal(ws_connect(&c, f.port, WAIT_MS), 0);
    expect(&f, c, "{\"type\":\"push_register\",\"platform\":\"fcm\",\"token\":\"t\"}", "EAUTH",
           "not_authenticated");
    ws_free(c);
    stop(&f);
    (void)state;
}

/* A store of version 2 keeps no registrations: the frames answer ENOTSUP and pushes go to
 * notify() alone, as before registrations existed. */
static void test_push_old_store_notifies_users_only(void **state)
{
    fixture f = {0};
    start(&f, 1);
    ws_client *bob = login(&f, "bob", "phone");
    expect(&f, bob, "{\"type\":\"push_register\",\"platform\":\"fcm\",\"token\":\"t\"}", "ENOTSUP",
           "push_disabled");
    expect(&f, bob, "{\"type\":\"push_unregister\"}", "ENOTSUP", "push_disabled");
    ws_client *alice = login(&f, "alice", "laptop");
    long long conv = send_to(&f, alice, "bob", "hi");
    char frame[96];
    snprintf(frame, sizeof frame, "{\"type\":\"mute\",\"conv\":%lld}", conv);
    expect(&f, bob, frame, "ENOTSUP", "push_disabled");
    ws_free(bob);
    until_pushed(&f, alice, "bob");
    settle(&f, alice, "bob");
    assert_int_equal(rec_count(&f.rec, "device "), 0);
    ws_free(alice);
    stop(&f);
    (void)state;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "postgres") == 0) {
#ifdef CHAT_TEST_POSTGRES
        if (!(pg_base = getenv("CHAT_TEST_PG"))) {
            fprintf(stderr, "test_server_push postgres: CHAT_TEST_PG is not set (run it through "
                            "tests/lib/pgtemp.py run -- ...); skipped\n");
            return 77;
        }
#else
        fprintf(stderr, "test_server_push postgres: built without libpq; skipped\n");
        return 77;
#endif
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_register_routes_to_each_device),
        cmocka_unit_test(test_push_mute_silences_every_device),
        cmocka_unit_test(test_push_invalid_token_drops_the_registration),
        cmocka_unit_test(test_push_token_follows_the_last_registration),
        cmocka_unit_test(test_push_logout_drops_the_registration),
        cmocka_unit_test(test_push_register_refuses_bad_fields),
        cmocka_unit_test(test_push_old_store_notifies_users_only),
    };
    return cmocka_run_group_tests_name(pg_base ? "integration/push/postgres" : "integration/push",
                                       tests, NULL, NULL);
}
