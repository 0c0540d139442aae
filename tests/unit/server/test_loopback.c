/* The engine driven frame by frame through the loopback transport (transport/loopback.h): no
 * socket, a loop clock that moves only when the test moves it, and readers that stall on
 * demand. What a second party receives is asserted on its own connection. */
#include "lb_fixture.h"

static void test_loopback_message_reaches_peer(void **state)
{
    (void)state;
    fixture fx;
    start(&fx, NULL);
    chat__lb_conn *alice = connect_as(&fx, "alice"), *bob = connect_as(&fx, "bob");
    send_text(alice, "{\"type\":\"send\",\"id\":\"s1\",\"to\":\"bob\",\"cmid\":\"c1\",\"text\":\"hi\"}");
    cJSON *ack = expect(alice, "ack");
    cJSON *msg = expect(bob, "msg");
    assert_string_equal(cJSON_GetObjectItem(msg, "text")->valuestring, "hi");
    assert_string_equal(cJSON_GetObjectItem(msg, "from")->valuestring, "alice");
    assert_int_equal(cJSON_GetObjectItem(msg, "seq")->valueint,
                     cJSON_GetObjectItem(ack, "seq")->valueint);
    cJSON_Delete(ack);
    cJSON_Delete(msg);
    stop(&fx);
}

/* A connection the server decided to close is gone within seconds of the decision although
 * its peer does not read (the close frame never gets out) and keeps sending frames. */
static void test_loopback_stalled_reader_dropped_after_close(void **state)
{
    (void)state;
    fixture fx;
    const int limits[] = {CHAT_LIMIT_OUT_QUEUE_FRAMES, 8, CHAT_LIMIT_SEND_RATE, 1000,
                          CHAT_LIMIT_SEND_BURST, 1000, 0};
    start(&fx, limits);
    chat__lb_conn *alice = connect_as(&fx, "alice"), *bob = connect_as(&fx, "bob");
    chat__lb_set_window(bob, 0); /* bob stops reading */
    for (int i = 0; i < 16; i++)
        send_text(alice, "{\"type\":\"send\",\"id\":\"s%d\",\"to\":\"bob\",\"cmid\":\"c%d\","
                         "\"text\":\"m%d\"}", i, i, i);
    for (int i = 0; i < 16; i++)
        cJSON_Delete(expect(alice, "ack"));
    /* Bob's queue overflowed: the server decided to close him (1013). He keeps talking. */
    assert_int_equal(chat__lb_settle(fx.lb, WAIT_MS), CHAT_OK);
    int64_t t0 = chat__lb_now(fx.lb);
    while (chat__lb_close_code(bob) == 0 && chat__lb_now(fx.lb) - t0 < 10000) {
        chat__lb_send(bob, "{\"type\":\"ping\"}", 15);
        chat__lb_send_pong(bob);
        chat__lb_advance(fx.lb, 100);
    }
    assert_int_equal(chat__lb_close_code(bob), 1006); /* dropped: the close frame never left */
    assert_true(chat__lb_now(fx.lb) - t0 <= 3500);
    stop(&fx);
}

/* An idle connection is pinged, and dropped when it stays silent; one that answers is kept. */
static void test_loopback_idle_ping_and_hangup(void **state)
{
    (void)state;
    fixture fx;
    const int limits[] = {CHAT_LIMIT_IDLE_PING_MS, 2000, CHAT_LIMIT_IDLE_HANGUP_MS, 5000, 0};
    start(&fx, limits);
    chat__lb_conn *quiet = connect_as(&fx, "alice"), *live = connect_as(&fx, "bob");
    for (int i = 0; i < 80; i++) { /* 8 s of loop time */
        if (chat__lb_pings(live) > 0)
            chat__lb_send_pong(live);
        chat__lb_advance(fx.lb, 100);
    }
    assert_true(chat__lb_pings(quiet) >= 1);
    assert_int_equal(chat__lb_close_code(quiet), 1006);
    assert_int_equal(chat__lb_close_code(live), 0);
    stop(&fx);
}

/* A connection that does not authenticate in time is closed with 1008. */
static void test_loopback_auth_deadline(void **state)
{
    (void)state;
    fixture fx;
    const int limits[] = {CHAT_LIMIT_AUTH_DEADLINE_MS, 1000, 0};
    start(&fx, limits);
    chat__lb_conn *c = NULL;
    assert_int_equal(chat__lb_connect(fx.lb, &c, "/", NULL, NULL, WAIT_MS), CHAT_OK);
    chat__lb_advance(fx.lb, 900);
    assert_int_equal(chat__lb_close_code(c), 0);
    chat__lb_advance(fx.lb, 200);
    char *s = NULL;
    while (chat__lb_recv(c, &s, WAIT_MS) == CHAT_OK)
        chat__free(s);
    assert_int_equal(chat__lb_close_code(c), 1008);
    stop(&fx);
}

/* The upgrade is accepted on "/" only, and refused with a body. */
static void test_loopback_upgrade_path(void **state)
{
    (void)state;
    fixture fx;
    start(&fx, NULL);
    chat__lb_conn *c = NULL;
    int status = 0;
    assert_int_equal(chat__lb_connect(fx.lb, &c, "/other", NULL, &status, WAIT_MS), CHAT_EPERM);
    assert_int_equal(status, 404);
    assert_int_equal(chat__lb_connect(fx.lb, &c, "/", NULL, &status, WAIT_MS), CHAT_OK);
    stop(&fx);
}

/* A binary message gets an error frame; an oversized one an error and close 1009. */
static void test_loopback_refused_messages(void **state)
{
    (void)state;
    fixture fx;
    start(&fx, NULL);
    chat__lb_conn *c = connect_as(&fx, "alice");
    assert_int_equal(chat__lb_send_refused(c, CHAT__TP_BINARY), CHAT_OK);
    cJSON *e = expect(c, "error");
    assert_string_equal(cJSON_GetObjectItem(e, "reason")->valuestring, "binary_frame");
    cJSON_Delete(e);
    assert_int_equal(chat__lb_send_refused(c, CHAT__TP_TOO_BIG), CHAT_OK);
    e = expect(c, "error");
    assert_string_equal(cJSON_GetObjectItem(e, "reason")->valuestring, "frame_too_large");
    cJSON_Delete(e);
    char *s = NULL;
    while (chat__lb_recv(c, &s, WAIT_MS) == CHAT_OK)
        chat__free(s);
    assert_int_equal(chat__lb_close_code(c), 1009);
    stop(&fx);
}

/* HTTP through the loopback: a media request without a token is refused with 401; a repeated
 * Upload-Length with 400 (the loopback, unlike lws, tells a repeated header). */
static void test_loopback_http_upload_refusals(void **state)
{
    (void)state;
    fixture fx;
    start(&fx, NULL);
    chat__lb_http_resp r;
    const char *none[] = {"upload-length", "5", NULL};
    chat__lb_http_req req = {CHAT__HTTP_POST, "/media/uploads", NULL, none, NULL, 0, 0};
    assert_int_equal(chat__lb_http(fx.lb, &req, &r, WAIT_MS), CHAT_OK);
    /* No data dir and no blob store: media is off. */
    assert_int_equal(r.status, 503);
    chat__free(r.body);
    stop(&fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loopback_message_reaches_peer),
        cmocka_unit_test(test_loopback_stalled_reader_dropped_after_close),
        cmocka_unit_test(test_loopback_idle_ping_and_hangup),
        cmocka_unit_test(test_loopback_auth_deadline),
        cmocka_unit_test(test_loopback_upgrade_path),
        cmocka_unit_test(test_loopback_refused_messages),
        cmocka_unit_test(test_loopback_http_upload_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
