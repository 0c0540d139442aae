/* Client engine against a scripted server over the loopback transport: the test reads every
 * frame the engine sends and writes exactly the answers it wants, so the state machine, the
 * sync and the outbox are checked frame by frame, with no socket and no server. */
#define _GNU_SOURCE
#include <chat/chat.h>
#include <chat/sys/client_transport.h>
#include <chat/testing.h>

#include <cjson/cJSON.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define WAIT_MS 5000

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- harness ----------------------------------------------------------------------------- */

typedef struct harness {
    chat_client *c;
    chat_loopback *lb;
    atomic_int state_at_auth_failed; /* chat_client_state() seen from the AUTH_FAILED callback */
} harness;

static void on_event(chat_client *c, const chat_event *ev, void *ud)
{
    harness *h = ud;
    if (chat_event_type(ev) == CHAT_EVENT_AUTH_FAILED)
        atomic_store(&h->state_at_auth_failed, chat_client_state(c));
}

/* refuse: connects fail from the very first one (set before the engine starts) */
static void harness_up(harness *h, const char *cache, int refuse)
{
    memset(h, 0, sizeof *h);
    atomic_init(&h->state_at_auth_failed, -1);
    void *ts = NULL;
    assert_int_equal(chat_client_transport_loopback_new(&ts, &h->lb), CHAT_OK);
    chat_loopback_set_refuse(h->lb, refuse);
    chat_client_config *cfg = NULL;
    assert_int_equal(chat_client_config_new(&cfg), CHAT_OK);
    assert_int_equal(chat_client_config_set_server(cfg, "ws://loopback.invalid/"), CHAT_OK);
    assert_int_equal(chat_client_config_set_token(cfg, "tok-alice"), CHAT_OK);
    if (cache)
        assert_int_equal(chat_client_config_set_cache_path(cfg, cache), CHAT_OK);
    assert_int_equal(chat_client_config_set_backoff(cfg, 10, 40), CHAT_OK);
    /* no pings in the scripted exchanges */
    assert_int_equal(chat_client_config_set_heartbeat(cfg, 60000, 120000), CHAT_OK);
    assert_int_equal(chat_client_config_set_event_cb(cfg, on_event, h, NULL), CHAT_OK);
    assert_int_equal(chat_client_config_set_transport(cfg, chat_client_transport_loopback_ops(), ts),
                     CHAT_OK);
    int rc = chat_client_new(&h->c, cfg);
    chat_client_config_free(cfg);
    assert_int_equal(rc, CHAT_OK);
    assert_int_equal(chat_client_start(h->c), CHAT_OK);
}

static void harness_down(harness *h)
{
    chat_client_free(h->c);
    /* the far end outlives the client that owned the transport */
    assert_int_equal(chat_loopback_send(h->lb, "{}", 2), CHAT_ECLOSED);
    chat_loopback_free(h->lb);
}

/* The next frame the engine sent; fails the test when none comes. */
static cJSON *recv_frame(harness *h)
{
    char *s = NULL;
    if (chat_loopback_recv(&s, h->lb, WAIT_MS) != CHAT_OK)
        fail_msg("the client sent nothing within %d ms", WAIT_MS);
    cJSON *o = cJSON_Parse(s);
    if (!o)
        fail_msg("the client sent unparsable JSON: %s", s);
    chat_string_free(s);
    return o;
}

/* The next frame, which must be of type; receipts the engine sends on its own are skipped
 * when skip_receipts is set. */
static cJSON *expect_frame(harness *h, const char *type, int skip_receipts)
{
    for (;;) {
        cJSON *o = recv_frame(h);
        const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "type"));
        if (t && strcmp(t, type) == 0)
            return o;
        if (skip_receipts && t && strcmp(t, "receipt") == 0) {
            cJSON_Delete(o);
            continue;
        }
        char *js = cJSON_PrintUnformatted(o);
        fail_msg("expected a %s frame, got %s", type, js);
    }
}

static void no_frame_for(harness *h, int ms, const char *type)
{
    long long dl = now_ms() + ms;
    while (now_ms() < dl) {
        char *s = NULL;
        if (chat_loopback_recv(&s, h->lb, (int)(dl - now_ms())) != CHAT_OK)
            return;
        if (strstr(s, type))
            fail_msg("unexpected frame: %s", s);
        chat_string_free(s);
    }
}

static const char *id_of(const cJSON *o)
{
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "id"));
    assert_non_null(id);
    return id;
}

static double num_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v))
        fail_msg("field %s is not a number", key);
    return cJSON_GetNumberValue(v);
}

static void reply(harness *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reply(harness *h, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof buf);
    assert_int_equal(chat_loopback_send(h->lb, buf, (size_t)n), CHAT_OK);
}

static chat_event *wait_event(harness *h, int type)
{
    long long dl = now_ms() + WAIT_MS;
    for (;;) {
        chat_event *ev = NULL;
        long long left = dl - now_ms();
        if (left <= 0 || chat_client_wait_event(&ev, h->c, (int)left) != CHAT_OK)
            fail_msg("no %s event within %d ms", chat_event_type_name(type), WAIT_MS);
        if (chat_event_type(ev) == type)
            return ev;
        chat_event_free(ev);
    }
}

#define MSG(conv, seq, text)                                                                   \
    "{\"type\":\"msg\",\"conv\":" #conv ",\"seq\":" #seq ",\"ts\":1764331200000,"              \
    "\"from\":\"bob\",\"device\":\"phone\",\"cmid\":\"b-" #seq "\",\"kind\":\"text\","         \
    "\"text\":\"" text "\"}"

#define CONV12(head)                                                                           \
    "{\"conv\":12,\"kind\":\"direct\",\"title\":\"\",\"role\":\"member\",\"head\":" #head      \
    ",\"delivered\":0,\"read\":0,\"unread\":" #head ",\"joined\":0,\"members\":["              \
    "{\"user\":\"alice\",\"role\":\"member\",\"delivered\":0,\"read\":0},"                     \
    "{\"user\":\"bob\",\"role\":\"member\",\"delivered\":" #head ",\"read\":" #head "}]}"

/* Answer the auth frame of a new connection and check what it carried. */
static void accept_auth(harness *h)
{
    assert_int_equal(chat_loopback_wait_open(h->lb, WAIT_MS), CHAT_OK);
    cJSON *a = expect_frame(h, "auth", 0);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a, "token")),
                        "tok-alice");
    assert_int_equal((int)num_of(a, "v"), 1);
    reply(h, "{\"type\":\"auth_ok\",\"re\":\"%s\",\"v\":1,\"user\":\"alice\",\"device\":\"d1\","
             "\"ts\":1764331200000,\"cursor\":0}", id_of(a));
    cJSON_Delete(a);
}

/* A new connection: answer its auth, then its convs request, which must resume from cursor,
 * with no conversation. */
static void connect_empty(harness *h, int cursor)
{
    accept_auth(h);
    cJSON *cv = expect_frame(h, "convs", 0);
    assert_int_equal((int)num_of(cv, "since"), cursor);
    reply(h, "{\"type\":\"convs\",\"re\":\"%s\",\"cursor\":%d,\"more\":false,\"convs\":[]}",
          id_of(cv), cursor);
    cJSON_Delete(cv);
}

/* ---- tests ------------------------------------------------------------------------------- */

/* Auth first; sync fetches exactly the missing range, and a live message past a gap makes the
 * engine fetch that conversation from the first gap, not from the newest message it has (and
 * without a conversation list: the gap says which conversation). */
static void test_loopback_sync_fetches_from_the_first_gap(void **state)
{
    (void)state;
    harness h;
    harness_up(&h, NULL, 0);
    accept_auth(&h);
    chat_event_free(wait_event(&h, CHAT_EVENT_ONLINE));
    assert_int_equal(chat_client_state(h.c), CHAT_CONN_ONLINE);

    cJSON *cv = expect_frame(&h, "convs", 0);
    assert_int_equal((int)num_of(cv, "since"), 0);
    reply(&h, "{\"type\":\"convs\",\"re\":\"%s\",\"cursor\":3,\"more\":false,\"convs\":[" CONV12(2) "]}",
          id_of(cv));
    cJSON_Delete(cv);

    cJSON *hi = expect_frame(&h, "history", 1);
    assert_int_equal((int)num_of(hi, "conv"), 12);
    assert_int_equal((int)num_of(hi, "after"), 0);
    reply(&h, "{\"type\":\"history\",\"re\":\"%s\",\"conv\":12,\"more\":false,\"messages\":["
              MSG(12, 1, "one") "," MSG(12, 2, "two") "]}", id_of(hi));
    cJSON_Delete(hi);
    chat_event_free(wait_event(&h, CHAT_EVENT_SYNCED));

    /* seq 3 is lost on the way; seq 4 arrives live */
    reply(&h, MSG(12, 4, "four"));
    cJSON *hi2 = expect_frame(&h, "history", 1);
    assert_int_equal((int)num_of(hi2, "after"), 2); /* the gap, not the newest (4) */
    reply(&h, "{\"type\":\"history\",\"re\":\"%s\",\"conv\":12,\"more\":false,\"messages\":["
              MSG(12, 3, "three") "," MSG(12, 4, "four") "]}", id_of(hi2));
    cJSON_Delete(hi2);
    chat_event_free(wait_event(&h, CHAT_EVENT_SYNCED));

    chat_msg_list *l = NULL;
    uint64_t req = 0;
    assert_int_equal(chat_client_history(&l, &req, h.c, 12, 0, 50), CHAT_OK);
    assert_int_equal(chat_msg_list_count(l), 4);
    assert_true(chat_msg_list_complete(l));
    const char *want[] = {"one", "two", "three", "four"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(chat_msg_list_seq(l, i), i + 1);
        assert_string_equal(chat_msg_list_text(l, i, NULL), want[i]);
    }
    chat_msg_list_free(l);

    /* The gap fill left the inbox cursor alone: the next conversation list starts from 3. */
    reply(&h, "{\"type\":\"sync\",\"within_ms\":0}");
    cJSON *cv2 = expect_frame(&h, "convs", 1);
    assert_int_equal((int)num_of(cv2, "since"), 3);
    cJSON_Delete(cv2);
    harness_down(&h);
}

/* Sync conversation 12 up to seq 2 (the client then holds 1 and 2). */
static void sync_to_two(harness *h)
{
    accept_auth(h);
    chat_event_free(wait_event(h, CHAT_EVENT_ONLINE));
    cJSON *cv = expect_frame(h, "convs", 0);
    reply(h, "{\"type\":\"convs\",\"re\":\"%s\",\"cursor\":3,\"more\":false,\"convs\":[" CONV12(2) "]}",
          id_of(cv));
    cJSON_Delete(cv);
    cJSON *hi = expect_frame(h, "history", 1);
    reply(h, "{\"type\":\"history\",\"re\":\"%s\",\"conv\":12,\"more\":false,\"messages\":["
             MSG(12, 1, "one") "," MSG(12, 2, "two") "]}", id_of(hi));
    cJSON_Delete(hi);
    chat_event_free(wait_event(h, CHAT_EVENT_SYNCED));
}

/* A position hint ahead of the cache fetches the rest of that conversation; one the cache is
 * not behind costs nothing; one for a conversation the cache does not know takes a full sync. */
static void test_loopback_head_hint_fetches_what_was_missed(void **state)
{
    (void)state;
    harness h;
    harness_up(&h, NULL, 0);
    sync_to_two(&h);

    reply(&h, "{\"type\":\"head\",\"conv\":12,\"seq\":2}");
    no_frame_for(&h, 300, "history");

    /* seq 3 was lost, and nothing followed it: the hint is the only sign */
    reply(&h, "{\"type\":\"head\",\"conv\":12,\"seq\":3}");
    cJSON *hi = expect_frame(&h, "history", 1);
    assert_int_equal((int)num_of(hi, "conv"), 12);
    assert_int_equal((int)num_of(hi, "after"), 2);
    reply(&h, "{\"type\":\"history\",\"re\":\"%s\",\"conv\":12,\"more\":false,\"messages\":["
              MSG(12, 3, "three") "]}", id_of(hi));
    cJSON_Delete(hi);
    chat_event *ev = wait_event(&h, CHAT_EVENT_MESSAGE);
    assert_int_equal(chat_event_seq(ev), 3);
    assert_string_equal(chat_event_text(ev, NULL), "three");
    chat_event_free(ev);
    chat_event_free(wait_event(&h, CHAT_EVENT_SYNCED));

    reply(&h, "{\"type\":\"head\",\"conv\":77,\"seq\":1}");
    cJSON *cv = expect_frame(&h, "convs", 1);
    assert_int_equal((int)num_of(cv, "since"), 3);
    cJSON_Delete(cv);
    harness_down(&h);
}

/* A catch-up prompt: the engine asks for the conversation list within the window it was
 * given, once even when prompted twice. */
static void test_loopback_sync_prompt_catches_up(void **state)
{
    (void)state;
    harness h;
    harness_up(&h, NULL, 0);
    sync_to_two(&h);

    reply(&h, "{\"type\":\"sync\",\"within_ms\":200}");
    reply(&h, "{\"type\":\"sync\",\"within_ms\":200}");
    cJSON *cv = expect_frame(&h, "convs", 1);
    assert_int_equal((int)num_of(cv, "since"), 3);
    reply(&h, "{\"type\":\"convs\",\"re\":\"%s\",\"cursor\":5,\"more\":false,\"convs\":[" CONV12(3) "]}",
          id_of(cv));
    cJSON_Delete(cv);
    cJSON *hi = expect_frame(&h, "history", 1);
    assert_int_equal((int)num_of(hi, "after"), 2);
    reply(&h, "{\"type\":\"history\",\"re\":\"%s\",\"conv\":12,\"more\":false,\"messages\":["
              MSG(12, 3, "three") "]}", id_of(hi));
    cJSON_Delete(hi);
    chat_event_free(wait_event(&h, CHAT_EVENT_SYNCED));
    no_frame_for(&h, 400, "convs");
    harness_down(&h);
}

/* A refused token: the state is AUTH_FAILED already when the event arrives, and the engine
 * stops retrying. */
static void test_loopback_auth_failed_stops_retrying(void **state)
{
    (void)state;
    harness h;
    harness_up(&h, NULL, 0);
    assert_int_equal(chat_loopback_wait_open(h.lb, WAIT_MS), CHAT_OK);
    cJSON *a = expect_frame(&h, "auth", 0);
    reply(&h, "{\"type\":\"error\",\"re\":\"%s\",\"code\":\"EAUTH\",\"reason\":\"auth_failed\","
              "\"message\":\"token expired\"}", id_of(a));
    cJSON_Delete(a);
    chat_event *ev = wait_event(&h, CHAT_EVENT_AUTH_FAILED);
    assert_int_equal(chat_event_code(ev), CHAT_EAUTH);
    chat_event_free(ev);
    assert_int_equal(atomic_load(&h.state_at_auth_failed), CHAT_CONN_AUTH_FAILED);
    assert_int_equal(chat_client_state(h.c), CHAT_CONN_AUTH_FAILED);
    usleep(200 * 1000); /* 5x the longest backoff */
    assert_int_equal(chat_loopback_connects(h.lb), 1);
    harness_down(&h);
}

/* Refused connects are retried with backoff; a message sent offline goes out once online, is
 * resent with the same cmid after the connection dies before its ack, and never again after
 * the ack. */
static void test_loopback_outbox_resends_until_acked(void **state)
{
    (void)state;
    harness h;
    harness_up(&h, NULL, 1);
    char *cmid = NULL;
    assert_int_equal(chat_client_send_text_to(&cmid, h.c, "bob", "hello", 5), CHAT_OK);
    /* Time first: 11 hex digits of the Unix time in ms, then 16 random ones, so a device's ids
     * ascend (the order of the server's dedupe index). */
    assert_int_equal(strlen(cmid), 27);
    assert_int_equal(strspn(cmid, "0123456789abcdef"), 27);
    char ms_hex[12];
    memcpy(ms_hex, cmid, 11);
    ms_hex[11] = '\0';
    long long wall_ms = (long long)time(NULL) * 1000, id_ms = strtoll(ms_hex, NULL, 16);
    assert_true(id_ms > wall_ms - 60000 && id_ms < wall_ms + 60000);
    long long dl = now_ms() + WAIT_MS;
    while (chat_loopback_connects(h.lb) < 4 && now_ms() < dl)
        usleep(5 * 1000);
    if (chat_loopback_connects(h.lb) < 4)
        fail_msg("%u connects within %d ms", chat_loopback_connects(h.lb), WAIT_MS);
    chat_loopback_set_refuse(h.lb, 0);

    for (int round = 0; round < 2; round++) {
        connect_empty(&h, 0);
        cJSON *s = expect_frame(&h, "send", 1);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, "cmid")), cmid);
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(s, "to")), "bob");
        if (round == 0) {
            /* the connection dies before the ack */
            cJSON_Delete(s);
            assert_int_equal(chat_loopback_close(h.lb, 1001, "going away"), CHAT_OK);
            continue;
        }
        reply(&h, "{\"type\":\"ack\",\"re\":\"%s\",\"conv\":7,\"cmid\":\"%s\",\"seq\":1,"
                  "\"ts\":1764331200000,\"dup\":true}", id_of(s), cmid);
        cJSON_Delete(s);
    }
    chat_event *sent = wait_event(&h, CHAT_EVENT_SENT);
    assert_string_equal(chat_event_cmid(sent), cmid);
    assert_int_equal(chat_event_seq(sent), 1);
    chat_event_free(sent);
    size_t n = 99;
    assert_int_equal(chat_client_outbox_count(&n, h.c), CHAT_OK);
    assert_int_equal(n, 0);
    /* the ack named a conversation the cache does not know yet: the engine asks for it */
    cJSON *cv7 = expect_frame(&h, "convs", 1);
    reply(&h, "{\"type\":\"convs\",\"re\":\"%s\",\"cursor\":1,\"more\":false,\"convs\":[{"
              "\"conv\":7,\"kind\":\"direct\",\"title\":\"\",\"role\":\"member\",\"head\":1,"
              "\"delivered\":1,\"read\":1,\"unread\":0,\"joined\":0,\"members\":["
              "{\"user\":\"alice\",\"role\":\"member\",\"delivered\":1,\"read\":1},"
              "{\"user\":\"bob\",\"role\":\"member\",\"delivered\":0,\"read\":0}]}]}",
          id_of(cv7));
    cJSON_Delete(cv7);
    chat_event_free(wait_event(&h, CHAT_EVENT_SYNCED));

    /* after the ack, a new connection resends nothing */
    assert_int_equal(chat_loopback_close(h.lb, 1001, "going away"), CHAT_OK);
    connect_empty(&h, 1); /* resumes from the stored cursor */
    chat_event_free(wait_event(&h, CHAT_EVENT_SYNCED));
    no_frame_for(&h, 200, "\"send\"");
    chat_string_free(cmid);
    harness_down(&h);
}

/* Conversation ids are chat_conv_id (int64_t): ids outside 1..2^53-1 (negative ones, 0, and
 * those a JSON number cannot carry exactly) are refused before anything is queued, and the
 * largest id goes out and comes back unchanged (cJSON's own printing would send ...990). */
static void test_loopback_conv_ids_in_range(void **state)
{
    (void)state;
    harness h;
    harness_up(&h, NULL, 0);
    const chat_conv_id bad[] = {-1, 0, (chat_conv_id)1 << 53, INT64_MIN, INT64_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t req = 0;
        chat_msg_list *l = NULL;
        assert_int_equal(chat_client_send_text(NULL, h.c, bad[i], "x", 1), CHAT_EINVAL);
        assert_int_equal(chat_client_send_media(NULL, h.c, bad[i], "{}"), CHAT_EINVAL);
        assert_int_equal(chat_client_mark_read(h.c, bad[i], 1), CHAT_EINVAL);
        assert_int_equal(chat_client_typing(h.c, bad[i], 1), CHAT_EINVAL);
        assert_int_equal(chat_client_group_leave(&req, h.c, bad[i]), CHAT_EINVAL);
        assert_int_equal(chat_client_history(&l, NULL, h.c, bad[i], 0, 10), CHAT_EINVAL);
        assert_null(l);
    }
    size_t n = 99;
    assert_int_equal(chat_client_outbox_count(&n, h.c), CHAT_OK);
    assert_int_equal(n, 0);

    const chat_conv_id big = ((chat_conv_id)1 << 53) - 1;
    char *cmid = NULL;
    assert_int_equal(chat_client_send_text(&cmid, h.c, big, "hi", 2), CHAT_OK);
    connect_empty(&h, 0);
    cJSON *s = expect_frame(&h, "send", 1);
    if (num_of(s, "conv") != (double)big)
        fail_msg("the send frame carries conv %.17g", num_of(s, "conv"));
    reply(&h, "{\"type\":\"ack\",\"re\":\"%s\",\"conv\":%lld,\"cmid\":\"%s\",\"seq\":1,"
              "\"ts\":1764331200000}", id_of(s), (long long)big, cmid);
    cJSON_Delete(s);
    chat_event *sent = wait_event(&h, CHAT_EVENT_SENT);
    assert_true(chat_event_conv(sent) == big);
    chat_event_free(sent);
    chat_conv_id conv = 0;
    uint64_t seq = 0;
    int st = 0;
    assert_int_equal(chat_client_message_status(&st, &conv, &seq, h.c, cmid), CHAT_OK);
    assert_true(conv == big);
    assert_int_equal(seq, 1);
    chat_string_free(cmid);
    harness_down(&h);
}

/* Frames the server never sends are dropped whole, however much of them a lax parser could
 * read: an ack with text after the JSON value, with a repeated key, with its request id spelt
 * with a leading zero or a sign. Only the exact ack completes the send. */
static void test_loopback_malformed_frames_are_dropped(void **state)
{
    (void)state;
    harness h;
    harness_up(&h, NULL, 0);
    connect_empty(&h, 0);
    chat_event_free(wait_event(&h, CHAT_EVENT_SYNCED));
    char *cmid = NULL;
    assert_int_equal(chat_client_send_text_to(&cmid, h.c, "bob", "hello", 5), CHAT_OK);
    cJSON *s = expect_frame(&h, "send", 1);
    const char *id = id_of(s);
#define ACK(re, seq) "{\"type\":\"ack\",\"re\":\"" re "\",\"conv\":7,\"cmid\":\"%s\",\"seq\":" seq \
                     ",\"ts\":1764331200000}"
    reply(&h, ACK("%s", "91") "junk", id, cmid);
    reply(&h, ACK("%s", "92") "{\"type\":\"ping\"}", id, cmid);
    reply(&h, "{\"type\":\"ack\",\"seq\":1,\"seq\":93,\"re\":\"%s\",\"conv\":7,\"cmid\":\"%s\","
              "\"ts\":1764331200000}", id, cmid);
    reply(&h, ACK("0%s", "94"), id, cmid);
    reply(&h, ACK("+%s", "95"), id, cmid);
    reply(&h, ACK("%s", "1"), id, cmid);
#undef ACK
    cJSON_Delete(s);
    chat_event *sent = wait_event(&h, CHAT_EVENT_SENT);
    assert_string_equal(chat_event_cmid(sent), cmid);
    assert_int_equal(chat_event_seq(sent), 1);
    chat_event_free(sent);
    chat_string_free(cmid);
    harness_down(&h);
}

/* The two halves may be released in either order. */
static void test_loopback_halves_freed_in_any_order(void **state)
{
    (void)state;
    void *ts = NULL;
    chat_loopback *lb = NULL;
    assert_int_equal(chat_client_transport_loopback_new(&ts, &lb), CHAT_OK);
    chat_loopback_free(lb);
    chat_client_transport_loopback_ops()->destroy(ts);

    assert_int_equal(chat_client_transport_loopback_new(&ts, &lb), CHAT_OK);
    chat_client_transport_loopback_ops()->destroy(ts);
    assert_int_equal(chat_loopback_send(lb, "{}", 2), CHAT_ECLOSED);
    assert_int_equal(chat_loopback_close(lb, 1000, ""), CHAT_ECLOSED);
    assert_int_equal(chat_loopback_wait_open(lb, 10), CHAT_ETIMEDOUT);
    char *s = NULL;
    assert_int_equal(chat_loopback_recv(&s, lb, 10), CHAT_ETIMEDOUT);
    assert_null(s);
    chat_loopback_free(lb);
    assert_int_equal(chat_client_transport_loopback_new(NULL, &lb), CHAT_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loopback_sync_fetches_from_the_first_gap),
        cmocka_unit_test(test_loopback_head_hint_fetches_what_was_missed),
        cmocka_unit_test(test_loopback_sync_prompt_catches_up),
        cmocka_unit_test(test_loopback_auth_failed_stops_retrying),
        cmocka_unit_test(test_loopback_outbox_resends_until_acked),
        cmocka_unit_test(test_loopback_conv_ids_in_range),
        cmocka_unit_test(test_loopback_malformed_frames_are_dropped),
        cmocka_unit_test(test_loopback_halves_freed_in_any_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
