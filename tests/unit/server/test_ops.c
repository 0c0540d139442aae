/* Operating the engine, driven through the loopback transport: statistics counted as frames
 * go through, the drain (acks first, then 1001), readiness, the admin calls, and the
 * structured log. Each asserts on what the far ends of the connections receive. */
#include "lb_fixture.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

/* ---- a memory store that can be slowed down or broken, and a bus that can be cut ---- */

static chat_store_ops slow_ops;
static atomic_int begin_fails;
/* While the gate is shut, commits wait: requests stay in flight as long as a test wants. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_shut;

static void gate(int shut)
{
    pthread_mutex_lock(&gate_mu);
    gate_shut = shut;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
}

static int slow_begin(void *st)
{
    if (atomic_load(&begin_fails))
        return CHAT_EIO;
    return chat_store_memory_ops()->begin(st);
}

static int slow_commit(void *st)
{
    pthread_mutex_lock(&gate_mu);
    while (gate_shut)
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
    return chat_store_memory_ops()->commit(st);
}

static void set_slow_store(chat_server_config *cfg)
{
    slow_ops = *chat_store_memory_ops();
    slow_ops.begin = slow_begin;
    slow_ops.commit = slow_commit;
    void *st = NULL;
    assert_int_equal(chat_store_memory_new(&st), CHAT_OK);
    assert_int_equal(chat_server_config_set_store(cfg, &slow_ops, st), CHAT_OK);
}

static chat_bus_ops cut_bus_ops;
static atomic_int bus_down;

static int cut_bus_ctl(void *st, int op, void *arg)
{
    (void)st;
    (void)arg;
    if (op != CHAT_BUS_CTL_HEALTH)
        return CHAT_ENOTSUP;
    return atomic_load(&bus_down) ? CHAT_ECLOSED : CHAT_OK;
}

static void set_cut_bus(chat_server_config *cfg)
{
    cut_bus_ops = *chat_bus_local_ops();
    cut_bus_ops.ctl = cut_bus_ctl;
    void *st = NULL;
    assert_int_equal(chat_bus_local_new(&st), CHAT_OK);
    assert_int_equal(chat_server_config_set_bus(cfg, &cut_bus_ops, st), CHAT_OK);
}

/* ---- helpers ---- */

/* A server on the gated store, with alice and bob connected. */
static void start_gated_pair(fixture *fx, chat__lb_conn **alice, chat__lb_conn **bob)
{
    chat_server_config *cfg = fixture_config(NULL);
    set_slow_store(cfg);
    start_with(fx, cfg);
    *alice = connect_as(fx, "alice");
    *bob = connect_as(fx, "bob");
}

static uint64_t stat_of(chat_server *srv, const char *name, const char *label_value)
{
    chat_stats *st = NULL;
    assert_int_equal(chat_server_stats(&st, srv), CHAT_OK);
    size_t i;
    if (chat_stats_find(st, name, label_value, &i) != CHAT_OK)
        fail_msg("no metric %s{%s}", name, label_value ? label_value : "");
    uint64_t v = chat_stats_value(st, i);
    chat_stats_free(st);
    return v;
}

/* Read frames until the connection is closed; returns the close code, counting the frames
 * of type type into *n (may be NULL) and failing on any frame after the close. */
static int read_to_close(chat__lb_conn *c, const char *type, int *n)
{
    for (;;) {
        char *s = NULL;
        int rc = chat__lb_recv(c, &s, WAIT_MS);
        if (rc == CHAT_ECLOSED)
            return chat__lb_close_code(c);
        assert_int_equal(rc, CHAT_OK);
        cJSON *o = cJSON_Parse(s);
        chat__free(s);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
        assert_true(cJSON_IsString(t));
        assert_string_not_equal(t->valuestring, "error");
        if (n && strcmp(t->valuestring, type) == 0)
            (*n)++;
        cJSON_Delete(o);
    }
}

static void send_msgs(chat__lb_conn *c, const char *to, int from, int n)
{
    for (int i = from; i < from + n; i++)
        send_text(c, "{\"type\":\"send\",\"id\":\"s%d\",\"to\":\"%s\",\"cmid\":\"c%d\","
                     "\"text\":\"secret body %d\"}", i, to, i, i);
}

/* ---- statistics ---- */

static void test_ops_stats_count_a_conversation(void **state)
{
    (void)state;
    fixture fx;
    start(&fx, NULL);
    chat__lb_conn *alice = connect_as(&fx, "alice"), *bob = connect_as(&fx, "bob");
    send_msgs(alice, "bob", 0, 3);
    for (int i = 0; i < 3; i++) {
        cJSON_Delete(expect(alice, "ack"));
        cJSON_Delete(expect(bob, "msg"));
    }
    send_text(alice, "{\"type\":\"history\",\"id\":\"h\"}"); /* no conv: EINVAL */
    cJSON_Delete(expect(alice, "error"));
    assert_int_equal(chat__lb_settle(fx.lb, WAIT_MS), CHAT_OK);

    chat_server *srv = fx.srv;
    assert_int_equal(stat_of(srv, "chat_frames_received_total", NULL), 2 + 3 + 1);
    assert_int_equal(stat_of(srv, "chat_connections_opened_total", NULL), 2);
    assert_int_equal(stat_of(srv, "chat_connections", "authenticated"), 2);
    assert_int_equal(stat_of(srv, "chat_connections", "unauthenticated"), 0);
    assert_int_equal(stat_of(srv, "chat_users_online", NULL), 2);
    assert_int_equal(stat_of(srv, "chat_messages_stored_total", NULL), 3);
    assert_int_equal(stat_of(srv, "chat_messages_delivered_total", NULL), 3);
    assert_int_equal(stat_of(srv, "chat_acks_total", NULL), 3);
    assert_int_equal(stat_of(srv, "chat_ack_latency_seconds", NULL), 3);
    assert_int_equal(stat_of(srv, "chat_fanout_latency_seconds", NULL), 3);
    assert_int_equal(stat_of(srv, "chat_errors_total", "EINVAL"), 1);
    assert_int_equal(stat_of(srv, "chat_errors_total", "EPERM"), 0);
    assert_true(stat_of(srv, "chat_store_commit_seconds", NULL) >= 3);
    assert_true(stat_of(srv, "chat_frames_sent_total", NULL) >= 2 + 3 + 3 + 1);
    assert_int_equal(stat_of(srv, "chat_writer_queue", NULL), 0);
    assert_int_equal(stat_of(srv, "chat_draining", NULL), 0);

    /* A histogram: cumulative buckets ending in +Inf at its count; sum in seconds. */
    chat_stats *st = NULL;
    assert_int_equal(chat_server_stats(&st, srv), CHAT_OK);
    size_t i;
    assert_int_equal(chat_stats_find(st, "chat_ack_latency_seconds", NULL, &i), CHAT_OK);
    assert_int_equal(chat_stats_kind(st, i), CHAT_STAT_HISTOGRAM);
    size_t nb = chat_stats_buckets(st, i);
    assert_true(nb > 2);
    assert_true(isinf(chat_stats_bucket_bound(st, i, nb - 1)));
    assert_true(chat_stats_bucket_bound(st, i, 0) < chat_stats_bucket_bound(st, i, 1));
    for (size_t b = 1; b < nb; b++)
        assert_true(chat_stats_bucket_count(st, i, b - 1) <= chat_stats_bucket_count(st, i, b));
    assert_int_equal(chat_stats_bucket_count(st, i, nb - 1), 3);
    assert_true(chat_stats_sum(st, i) >= 0.0 && chat_stats_sum(st, i) < 60.0);
    /* The text format: a family's HELP and TYPE, then its samples. */
    char *text = NULL;
    assert_int_equal(chat_stats_text(&text, st), CHAT_OK);
    assert_non_null(strstr(text, "# TYPE chat_messages_stored_total counter\n"
                                 "chat_messages_stored_total 3\n"));
    assert_non_null(strstr(text, "chat_errors_total{code=\"EINVAL\"} 1\n"));
    assert_non_null(strstr(text, "chat_connections{state=\"authenticated\"} 2\n"));
    assert_non_null(strstr(text, "# TYPE chat_ack_latency_seconds histogram\n"));
    assert_non_null(strstr(text, "chat_ack_latency_seconds_bucket{le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(text, "chat_ack_latency_seconds_count 3\n"));
    chat_string_free(text);
    chat_stats_free(st);

    /* Bob goes away: counted as closed by the peer. */
    chat__lb_hangup(bob);
    assert_int_equal(chat__lb_settle(fx.lb, WAIT_MS), CHAT_OK);
    assert_int_equal(stat_of(srv, "chat_connections_closed_total", "peer"), 1);
    assert_int_equal(stat_of(srv, "chat_connections", "authenticated"), 1);
    stop(&fx);
}

/* The histogram's bucket lookup (an octave table and one compare) puts every value where a
 * scan of the bounds would. */
static void test_ops_latency_buckets(void **state)
{
    (void)state;
    uint64_t values[4 * CHAT__LAT_BOUNDS + 70];
    size_t n = 0;
    for (size_t i = 0; i < CHAT__LAT_BOUNDS; i++) {
        uint64_t b = chat__lat_bounds_us[i];
        values[n++] = b - 1;
        values[n++] = b;
        values[n++] = b + 1;
        values[n++] = 2 * b - 1;
    }
    for (int k = 0; k < 64; k++)
        values[n++] = (uint64_t)1 << k;
    values[n++] = 0;
    values[n++] = UINT64_MAX;
    for (size_t v = 0; v < n; v++) {
        size_t want = 0;
        while (want < CHAT__LAT_BOUNDS && values[v] > chat__lat_bounds_us[want])
            want++;
        chat__hist h;
        memset(&h, 0, sizeof h);
        chat__hist_latency(&h, values[v]);
        for (size_t i = 0; i < CHAT__HIST_SLOTS; i++)
            if (chat__counter_read(&h.n[i]) != (i == want))
                fail_msg("%llu us went to bucket %zu, not %zu", (unsigned long long)values[v],
                         i, want);
    }
}

/* A server that never started has statistics too (no connections). */
static void test_ops_stats_not_running(void **state)
{
    (void)state;
    chat_server_config *cfg = fixture_config(NULL);
    chat_server *srv = NULL;
    assert_int_equal(chat_server_new(&srv, cfg), CHAT_OK);
    chat_server_config_free(cfg);
    assert_int_equal(stat_of(srv, "chat_connections", "authenticated"), 0);
    assert_int_equal(stat_of(srv, "chat_connections_limit", NULL), 10000);
    char *text = NULL;
    assert_int_equal(chat_server_metrics_text(&text, srv), CHAT_OK);
    assert_non_null(strstr(text, "chat_frames_received_total 0\n"));
    chat_string_free(text);
    assert_int_equal(chat_server_alive(srv, 100), CHAT_ECLOSED);
    assert_int_equal(chat_server_ready(srv, 100), CHAT_ECLOSED);
    chat_server_free(srv);
}

/* ---- the drain ---- */

/* Requests taken before the drain are answered, then every connection closes with 1001; no
 * error frame on the way; new connections are refused with 503. */
static void test_ops_drain_answers_then_closes_1001(void **state)
{
    (void)state;
    fixture fx;
    chat__lb_conn *alice, *bob;
    start_gated_pair(&fx, &alice, &bob);
    gate(1); /* the writer holds every commit: the sends stay in flight */
    send_msgs(alice, "bob", 0, 10);
    assert_int_equal(chat__lb_settle(fx.lb, WAIT_MS), CHAT_OK); /* all ten taken */
    /* The ten sends, and the presence snapshot that follows bob's auth_ok. */
    assert_true(stat_of(fx.srv, "chat_writer_queue", NULL) >= 10);
    assert_int_equal(chat_server_drain(fx.srv, 30000), CHAT_OK);
    assert_int_equal(chat_server_ready(fx.srv, 1000), CHAT_EBUSY);
    assert_int_equal(chat__lb_settle(fx.lb, WAIT_MS), CHAT_OK);
    assert_int_equal(chat__lb_close_code(alice), 0); /* still open: its requests are pending */
    assert_int_equal(chat__lb_close_code(bob), 0);
    gate(0);
    int acks = 0, msgs = 0;
    assert_int_equal(read_to_close(alice, "ack", &acks), 1001);
    assert_int_equal(read_to_close(bob, "msg", &msgs), 1001);
    assert_int_equal(acks, 10);
    assert_int_equal(msgs, 10);
    assert_int_equal(chat_server_drain_wait(fx.srv), CHAT_OK);
    assert_int_equal(stat_of(fx.srv, "chat_connections_closed_total", "1001"), 2);
    assert_int_equal(stat_of(fx.srv, "chat_draining", NULL), 1);
    chat__lb_conn *late = NULL;
    int status = 0;
    assert_int_equal(chat__lb_connect(fx.lb, &late, "/", NULL, &status, WAIT_MS), CHAT_EPERM);
    assert_int_equal(status, 503);
    stop(&fx);
}

/* A frame that arrives once the drain began is not answered (its sender resends after
 * reconnecting), and a reader that does not read is dropped at the deadline. */
static void test_ops_drain_deadline_drops(void **state)
{
    (void)state;
    fixture fx;
    chat__lb_conn *alice, *bob;
    start_gated_pair(&fx, &alice, &bob);
    assert_int_equal(chat__lb_settle(fx.lb, WAIT_MS), CHAT_OK);
    chat__lb_set_window(bob, 0); /* bob stops reading: his close cannot get out */
    gate(1);
    send_msgs(alice, "bob", 0, 1); /* in flight when the drain begins */
    assert_int_equal(chat__lb_settle(fx.lb, WAIT_MS), CHAT_OK);
    assert_int_equal(chat_server_drain(fx.srv, 1000), CHAT_OK);
    assert_int_equal(chat__lb_settle(fx.lb, WAIT_MS), CHAT_OK);
    send_msgs(alice, "bob", 1, 1); /* after the drain began: not taken */
    assert_int_equal(chat__lb_settle(fx.lb, WAIT_MS), CHAT_OK);
    gate(0);
    int acks = 0;
    assert_int_equal(read_to_close(alice, "ack", &acks), 1001);
    assert_int_equal(acks, 1);
    assert_int_equal(chat__lb_close_code(bob), 0);
    chat__lb_advance(fx.lb, 1100); /* the deadline, before the 2 s close grace */
    assert_int_equal(chat_server_drain_wait(fx.srv), CHAT_ETIMEDOUT);
    assert_int_equal(chat__lb_close_code(bob), 1006);
    assert_int_equal(stat_of(fx.srv, "chat_messages_stored_total", NULL), 1);
    assert_int_equal(stat_of(fx.srv, "chat_connections_closed_total", "dropped"), 1);
    stop(&fx);
}

/* ---- liveness and readiness ---- */

static void test_ops_ready_follows_store_and_bus(void **state)
{
    (void)state;
    fixture fx;
    chat_server_config *cfg = fixture_config(NULL);
    set_slow_store(cfg);
    set_cut_bus(cfg);
    start_with(&fx, cfg);
    assert_int_equal(chat_server_alive(fx.srv, 1000), CHAT_OK);
    assert_int_equal(chat_server_ready(fx.srv, 1000), CHAT_OK);
    atomic_store(&bus_down, 1);
    assert_int_equal(chat_server_ready(fx.srv, 1000), CHAT_EIO);
    atomic_store(&bus_down, 0);
    atomic_store(&begin_fails, 1);
    assert_int_equal(chat_server_ready(fx.srv, 1000), CHAT_EIO);
    atomic_store(&begin_fails, 0);
    chat__lb_conn *alice = connect_as(&fx, "alice");
    gate(1); /* a commit that does not return: the store does not answer */
    send_msgs(alice, "bob", 0, 1);
    assert_int_equal(chat__lb_settle(fx.lb, WAIT_MS), CHAT_OK);
    assert_int_equal(chat_server_ready(fx.srv, 50), CHAT_ETIMEDOUT);
    gate(0);
    cJSON_Delete(expect(alice, "ack"));
    assert_int_equal(chat_server_ready(fx.srv, 5000), CHAT_OK);
    stop(&fx);
}

/* ---- administration ---- */

static cJSON *admin_user(chat_server *srv, const char *user)
{
    char *s = NULL;
    assert_int_equal(chat_server_admin_user(&s, srv, user), CHAT_OK);
    cJSON *o = cJSON_Parse(s);
    chat_string_free(s);
    assert_non_null(o);
    return o;
}

static const cJSON *device_of(const cJSON *u, const char *device)
{
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItem(u, "devices"))
    if (strcmp(cJSON_GetObjectItem(d, "device")->valuestring, device) == 0)
        return d;
    return NULL;
}

static void test_ops_admin_user_disconnect_revoke(void **state)
{
    (void)state;
    fixture fx;
    start(&fx, NULL);
    chat__lb_conn *phone = connect_dev(&fx, "alice", "phone");
    chat__lb_conn *laptop = connect_dev(&fx, "alice", "laptop");
    chat__lb_conn *tablet = connect_dev(&fx, "alice", "tablet");
    char *old_laptop = NULL;
    assert_int_equal(chat_server_issue_token(fx.srv, "alice", "laptop", 3600000, &old_laptop),
                     CHAT_OK);

    cJSON *u = admin_user(fx.srv, "alice");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(u, "online")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(u, "devices")), 3);
    const cJSON *conns = cJSON_GetObjectItem(device_of(u, "tablet"), "connections");
    assert_int_equal(cJSON_GetArraySize(conns), 1);
    uint64_t tablet_id = (uint64_t)cJSON_GetObjectItem(cJSON_GetArrayItem(conns, 0), "id")
                             ->valuedouble;
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(conns, 0), "state")->valuestring,
                        "authenticated");
    cJSON_Delete(u);

    /* Disconnect one connection: that one hears 1008, the others nothing. */
    assert_int_equal(chat_server_admin_disconnect(fx.srv, tablet_id), CHAT_OK);
    assert_int_equal(read_to_close(tablet, NULL, NULL), 1008);
    assert_int_equal(chat_server_admin_disconnect(fx.srv, tablet_id), CHAT_ENOTFOUND);
    assert_int_equal(chat_server_admin_disconnect(fx.srv, 999999), CHAT_ENOTFOUND);

    /* Revoke the laptop: its connection closes, its tokens are refused, a new one works. */
    assert_int_equal(chat_server_admin_revoke_device(fx.srv, "alice", "laptop"), CHAT_OK);
    assert_int_equal(read_to_close(laptop, NULL, NULL), 1008);
    assert_int_equal(chat__lb_close_code(phone), 0);
    chat__lb_conn *again = NULL;
    assert_int_equal(chat__lb_connect(fx.lb, &again, "/", NULL, NULL, WAIT_MS), CHAT_OK);
    send_text(again, "{\"type\":\"auth\",\"id\":\"a\",\"token\":\"%s\"}", old_laptop);
    cJSON *e = expect(again, "error");
    assert_string_equal(cJSON_GetObjectItem(e, "code")->valuestring, "EAUTH");
    cJSON_Delete(e);
    chat_string_free(old_laptop);
    struct timespec ms2 = {0, 2000000}; /* a token issued after the revocation's millisecond */
    nanosleep(&ms2, NULL);
    chat__lb_conn *fresh = connect_dev(&fx, "alice", "laptop");
    (void)fresh;

    u = admin_user(fx.srv, "alice");
    assert_true(cJSON_GetObjectItem(device_of(u, "laptop"), "revoked_ms")->valuedouble > 0);
    assert_true(cJSON_GetObjectItem(device_of(u, "phone"), "revoked_ms")->valuedouble == 0);
    cJSON_Delete(u);
    assert_int_equal(chat_server_admin_revoke_device(fx.srv, "alice", "bad device"),
                     CHAT_EINVAL);
    stop(&fx);
}

static void test_ops_admin_conv(void **state)
{
    (void)state;
    fixture fx;
    start(&fx, NULL);
    chat__lb_conn *alice = connect_as(&fx, "alice");
    send_msgs(alice, "bob", 0, 2);
    cJSON *ack = expect(alice, "ack");
    int64_t conv = (int64_t)cJSON_GetObjectItem(ack, "conv")->valuedouble;
    cJSON_Delete(ack);
    cJSON_Delete(expect(alice, "ack"));
    char *s = NULL;
    assert_int_equal(chat_server_admin_conv(&s, fx.srv, conv), CHAT_OK);
    cJSON *o = cJSON_Parse(s);
    chat_string_free(s);
    assert_int_equal(cJSON_GetObjectItem(o, "head")->valueint, 2);
    assert_string_equal(cJSON_GetObjectItem(o, "kind")->valuestring, "direct");
    const cJSON *m = cJSON_GetObjectItem(o, "members");
    assert_int_equal(cJSON_GetArraySize(m), 2);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 0), "user")->valuestring,
                        "alice");
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 0), "read")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 1), "read")->valueint, 0);
    cJSON_Delete(o);
    assert_int_equal(chat_server_admin_conv(&s, fx.srv, conv + 100), CHAT_ENOTFOUND);
    stop(&fx);
}

/* ---- the structured log ---- */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[65536];
static size_t log_len;

static void log_kv(int level, const char *msg, const char *const *fields, void *ud)
{
    (void)ud;
    pthread_mutex_lock(&log_mu);
    log_len += (size_t)snprintf(log_buf + log_len, sizeof log_buf - log_len, "%d|%s", level, msg);
    for (size_t i = 0; fields[i] && log_len < sizeof log_buf; i += 2)
        log_len += (size_t)snprintf(log_buf + log_len, sizeof log_buf - log_len, "|%s=%s",
                                    fields[i], fields[i + 1]);
    if (log_len < sizeof log_buf - 1)
        log_buf[log_len++] = '\n';
    log_buf[log_len] = '\0';
    pthread_mutex_unlock(&log_mu);
}

static void test_ops_log_fields_and_no_secrets(void **state)
{
    (void)state;
    fixture fx;
    chat_server_config *cfg = fixture_config(NULL);
    assert_int_equal(chat_server_config_set_log_kv(cfg, log_kv, CHAT_LOG_DEBUG, NULL), CHAT_OK);
    log_len = 0;
    start_with(&fx, cfg);
    char *tok = NULL;
    assert_int_equal(chat_server_issue_token(fx.srv, "alice", "phone", 3600000, &tok), CHAT_OK);
    chat__lb_conn *alice = NULL;
    assert_int_equal(chat__lb_connect(fx.lb, &alice, "/", NULL, NULL, WAIT_MS), CHAT_OK);
    send_text(alice, "{\"type\":\"auth\",\"id\":\"a\",\"token\":\"%s\"}", tok);
    cJSON_Delete(expect(alice, "auth_ok"));
    send_msgs(alice, "bob", 0, 1);
    cJSON_Delete(expect(alice, "ack"));
    send_text(alice, "{\"type\":\"send\",\"id\":\"r7\",\"to\":\"bob\",\"cmid\":\"c9\"}");
    cJSON_Delete(expect(alice, "error"));
    chat__lb_hangup(alice);
    assert_int_equal(chat__lb_settle(fx.lb, WAIT_MS), CHAT_OK);
    stop(&fx);
    pthread_mutex_lock(&log_mu);
    assert_non_null(strstr(log_buf, "2|connection opened|conn=1\n"));
    assert_non_null(strstr(log_buf, "2|authenticated|conn=1|user=alice|device=phone\n"));
    assert_non_null(strstr(log_buf, "3|request refused: missing_field|conn=1|user=alice|"
                                     "device=phone|req=r7|code=EINVAL\n"));
    assert_non_null(strstr(log_buf, "2|connection closed|conn=1|user=alice|device=phone|"
                                     "code=peer\n"));
    assert_null(strstr(log_buf, tok));
    assert_null(strstr(log_buf, "secret body"));
    pthread_mutex_unlock(&log_mu);
    chat_string_free(tok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops_stats_count_a_conversation),
        cmocka_unit_test(test_ops_stats_not_running),
        cmocka_unit_test(test_ops_latency_buckets),
        cmocka_unit_test(test_ops_drain_answers_then_closes_1001),
        cmocka_unit_test(test_ops_drain_deadline_drops),
        cmocka_unit_test(test_ops_ready_follows_store_and_bus),
        cmocka_unit_test(test_ops_admin_user_disconnect_revoke),
        cmocka_unit_test(test_ops_admin_conv),
        cmocka_unit_test(test_ops_log_fields_and_no_secrets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
