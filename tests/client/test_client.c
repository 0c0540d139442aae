/* Client engine against a real server: both embedded through the public API only (linked
 * against the shared library), over real sockets on 127.0.0.1. Every wait is bounded. */
#define _GNU_SOURCE
#include <chat/chat.h>
#include <chat/sys/bus.h>
#include <chat/sys/push.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#define WAIT_MS 8000
#define TOKEN_TTL_MS (3600LL * 1000)

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void log_stderr(int level, const char *msg, void *user_data)
{
    fprintf(stderr, "[%s %d] %s\n", (const char *)user_data, level, msg);
}

/* ---- server ------------------------------------------------------------------------------ */

/* hint_ms < 0: the default; limit 0: no other limit set. */
static chat_server *server_up_on(const char *data_dir, int port, const chat_bus_ops *bus_ops,
                                 void *bus, int hint_ms, int limit, int64_t value)
{
    chat_server_config *cfg = NULL;
    assert_int_equal(chat_server_config_new(&cfg), CHAT_OK);
    assert_int_equal(chat_server_config_set_listen(cfg, "127.0.0.1", port), CHAT_OK);
    unsigned char k[32];
    for (int i = 0; i < 32; i++)
        k[i] = (unsigned char)(i * 7 + 3);
    assert_int_equal(chat_server_config_add_token_key(cfg, 1, k, sizeof k), CHAT_OK);
    assert_int_equal(chat_server_config_set_log(cfg, log_stderr, CHAT_LOG_WARN, "server"),
                     CHAT_OK);
    assert_int_equal(chat_server_config_set_limit(cfg, CHAT_LIMIT_SEND_RATE, 10000), CHAT_OK);
    assert_int_equal(chat_server_config_set_limit(cfg, CHAT_LIMIT_SEND_BURST, 10000), CHAT_OK);
    if (data_dir)
        assert_int_equal(chat_server_config_set_data_dir(cfg, data_dir), CHAT_OK);
    if (bus_ops)
        assert_int_equal(chat_server_config_set_bus(cfg, bus_ops, bus), CHAT_OK);
    if (hint_ms >= 0)
        assert_int_equal(chat_server_config_set_limit(cfg, CHAT_LIMIT_HEAD_HINT_MS, hint_ms),
                         CHAT_OK);
    if (limit)
        assert_int_equal(chat_server_config_set_limit(cfg, limit, value), CHAT_OK);
    chat_server *srv = NULL;
    int rc = chat_server_new(&srv, cfg);
    chat_server_config_free(cfg);
    assert_int_equal(rc, CHAT_OK);
    /* a restarted server reuses its port: retry the bind briefly */
    long long dl = now_ms() + 3000;
    while ((rc = chat_server_start(srv)) != CHAT_OK && now_ms() < dl)
        usleep(50 * 1000);
    assert_int_equal(rc, CHAT_OK);
    assert_true(chat_server_port(srv) > 0);
    return srv;
}

static chat_server *server_up(const char *data_dir, int port)
{
    return server_up_on(data_dir, port, NULL, NULL, -1, 0, 0);
}

/* A server with one more limit set. */
static chat_server *server_up_with(const char *data_dir, int port, int limit, int64_t value)
{
    return server_up_on(data_dir, port, NULL, NULL, -1, limit, value);
}

static char *token(chat_server *srv, const char *user, const char *device)
{
    char *t = NULL;
    assert_int_equal(chat_server_issue_token(srv, user, device, TOKEN_TTL_MS, &t), CHAT_OK);
    return t;
}

static char *tmpdir(void)
{
    char tmpl[] = "/tmp/libchat-client-XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

static void rm_rf(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- clients ----------------------------------------------------------------------------- */

static chat_client *client_new(int port, const char *tok, const char *cache)
{
    chat_client_config *cfg = NULL;
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
    assert_int_equal(chat_client_config_new(&cfg), CHAT_OK);
    assert_int_equal(chat_client_config_set_server(cfg, url), CHAT_OK);
    assert_int_equal(chat_client_config_set_token(cfg, tok), CHAT_OK);
    assert_int_equal(chat_client_config_set_cache_path(cfg, cache), CHAT_OK);
    assert_int_equal(chat_client_config_set_backoff(cfg, 20, 200), CHAT_OK);
    /* A connection attempt caught in a server's shutdown can hang: the heartbeat timeout,
     * which also bounds connection attempts, gives it up quickly in tests. */
    assert_int_equal(chat_client_config_set_heartbeat(cfg, 1000, 2000), CHAT_OK);
    assert_int_equal(chat_client_config_set_log(cfg, log_stderr, getenv("CHAT_TEST_LOG") ? CHAT_LOG_DEBUG : CHAT_LOG_WARN, "client"),
                     CHAT_OK);
    chat_client *c = NULL;
    int rc = chat_client_new(&c, cfg);
    chat_client_config_free(cfg);
    assert_int_equal(rc, CHAT_OK);
    assert_int_equal(chat_client_start(c), CHAT_OK);
    return c;
}

/* Why an awaited event may not have come, for a failure message: the client's connection
 * state, and the reason of the last OFFLINE event seen while waiting. */
static const char *why_not(chat_client *c, const char *last_offline)
{
    static char buf[400];
    static const char *const states[] = {"stopped", "offline (waiting to reconnect)",
                                         "connecting", "online",
                                         "authentication failed"};
    int st = chat_client_state(c);
    snprintf(buf, sizeof buf, "the client is %s%s%s",
             st >= 0 && st <= 4 ? states[st] : "in an unknown state",
             last_offline[0] ? "; it went offline: " : "", last_offline);
    return buf;
}

static void note_offline(const chat_event *ev, char *last_offline, size_t size)
{
    if (chat_event_type(ev) == CHAT_EVENT_OFFLINE)
        snprintf(last_offline, size, "%s (%s)", chat_event_message(ev),
                 chat_error_name(chat_event_code(ev)));
}

/* Pop events until one of type matching (conv, text) arrives; the caller frees it. */
static chat_event *wait_for(chat_client *c, int type, chat_conv_id conv, const char *text)
{
    long long dl = now_ms() + WAIT_MS;
    char offline[256] = "";
    for (;;) {
        long long left = dl - now_ms();
        chat_event *ev = NULL;
        if (left <= 0 || chat_client_wait_event(&ev, c, (int)left) != CHAT_OK)
            fail_msg("no %s event (conv %lld, text %s) within %d ms; %s",
                     chat_event_type_name(type), (long long)conv, text ? text : "-",
                     WAIT_MS, why_not(c, offline));
        note_offline(ev, offline, sizeof offline);
        if (chat_event_type(ev) == type && (!conv || chat_event_conv(ev) == conv) &&
            (!text || strcmp(chat_event_text(ev, NULL), text) == 0))
            return ev;
        if (getenv("CHAT_TEST_LOG"))
            fprintf(stderr, "[test] skipped %s conv %lld seq %llu text %s code %d\n",
                    chat_event_type_name(chat_event_type(ev)),
                    (long long)chat_event_conv(ev), (unsigned long long)chat_event_seq(ev),
                    chat_event_text(ev, NULL) ? chat_event_text(ev, NULL) : "-",
                    chat_event_code(ev));
        chat_event_free(ev);
    }
}

/* Pop events until a message event of conv arrived for each of texts, in any order. */
static void wait_for_all(chat_client *c, chat_conv_id conv, const char *const *texts, int n)
{
    int seen = 0, got[8] = {0};
    long long dl = now_ms() + WAIT_MS;
    char offline[256] = "";
    while (seen < n) {
        long long left = dl - now_ms();
        chat_event *ev = NULL;
        if (left <= 0 || chat_client_wait_event(&ev, c, (int)left) != CHAT_OK)
            fail_msg("only %d of %d messages arrived within %d ms; %s", seen, n, WAIT_MS,
                     why_not(c, offline));
        note_offline(ev, offline, sizeof offline);
        if (chat_event_type(ev) == CHAT_EVENT_MESSAGE && chat_event_conv(ev) == conv)
            for (int i = 0; i < n; i++)
                if (!got[i] && strcmp(chat_event_text(ev, NULL), texts[i]) == 0) {
                    got[i] = 1;
                    seen++;
                }
        chat_event_free(ev);
    }
}

static void wait_online(chat_client *c) { chat_event_free(wait_for(c, CHAT_EVENT_SYNCED, 0, NULL)); }

/* Drain events until cond(c, arg) holds. */
static void wait_until(chat_client *c, int (*cond)(chat_client *, void *), void *arg,
                       const char *what)
{
    long long dl = now_ms() + WAIT_MS;
    char offline[256] = "";
    while (!cond(c, arg)) {
        if (now_ms() > dl)
            fail_msg("%s did not happen within %d ms; %s", what, WAIT_MS, why_not(c, offline));
        chat_event *ev = NULL;
        if (chat_client_wait_event(&ev, c, 50) == CHAT_OK) {
            note_offline(ev, offline, sizeof offline);
            chat_event_free(ev);
        }
    }
}

struct status_arg {
    const char *cmid;
    int status;
};

static int status_is(chat_client *c, void *arg)
{
    struct status_arg *a = arg;
    int st = -1;
    if (chat_client_message_status(&st, NULL, NULL, c, a->cmid) != CHAT_OK)
        return 0;
    return st == a->status;
}

static uint64_t unread_of(chat_client *c, chat_conv_id conv)
{
    chat_conv_list *l = NULL;
    assert_int_equal(chat_client_convs(&l, c), CHAT_OK);
    uint64_t u = UINT64_MAX;
    for (size_t i = 0; i < chat_conv_list_count(l); i++)
        if (chat_conv_list_id(l, i) == conv)
            u = chat_conv_list_unread(l, i);
    chat_conv_list_free(l);
    return u;
}

struct unread_arg {
    chat_conv_id conv;
    uint64_t unread;
};

static int unread_is(chat_client *c, void *arg)
{
    struct unread_arg *a = arg;
    return unread_of(c, a->conv) == a->unread;
}

/* Wait until the cache of c holds exactly `expect` messages with text in conv, the whole
 * history being cached (fetched as needed) gap-free and duplicate-free. More than expected
 * fails at once (a duplicate never goes away); fewer waits for what is still in flight. */
static void expect_text(chat_client *c, chat_conv_id conv, const char *text, size_t expect)
{
    long long dl = now_ms() + WAIT_MS;
    for (;;) {
        chat_msg_list *l = NULL;
        uint64_t req = 0;
        size_t n = 0;
        assert_int_equal(chat_client_history(&l, &req, c, conv, 0, 200), CHAT_OK);
        int complete = chat_msg_list_complete(l);
        for (size_t i = 0; complete && i < chat_msg_list_count(l); i++) {
            assert_int_equal(chat_msg_list_seq(l, i), chat_msg_list_seq(l, 0) + i);
            if (strcmp(chat_msg_list_text(l, i, NULL), text) == 0)
                n++;
        }
        chat_msg_list_free(l);
        if (complete && n > expect)
            fail_msg("%zu copies of '%s', expected %zu", n, text, expect);
        if (complete && n == expect)
            return;
        if (now_ms() > dl)
            fail_msg("'%s': %zu copies (complete %d) after %d ms, expected %zu", text, n,
                     complete, WAIT_MS, expect);
        chat_event *ev = NULL;
        if (chat_client_wait_event(&ev, c, req ? WAIT_MS : 20) == CHAT_OK)
            chat_event_free(ev);
    }
}

/* Wait until c's outbox is empty (everything acked); c has exactly one conversation: its id. */
static chat_conv_id outbox_sent_to_one_conv(chat_client *c)
{
    size_t n = 1;
    long long dl = now_ms() + WAIT_MS;
    while (n && now_ms() < dl) {
        assert_int_equal(chat_client_outbox_count(&n, c), CHAT_OK);
        chat_event *ev = NULL;
        if (chat_client_wait_event(&ev, c, 20) == CHAT_OK)
            chat_event_free(ev);
    }
    assert_int_equal(n, 0);
    chat_conv_list *l = NULL;
    assert_int_equal(chat_client_convs(&l, c), CHAT_OK);
    assert_int_equal(chat_conv_list_count(l), 1);
    chat_conv_id conv = chat_conv_list_id(l, 0);
    chat_conv_list_free(l);
    return conv;
}

/* A server on a data dir with alice (phone) and bob (laptop) online on it. */
typedef struct pair {
    char *dir;
    chat_server *srv;
    int port;
    char *ta, *tb;
    chat_client *a, *b;
} pair;

static void pair_up(pair *p)
{
    p->dir = tmpdir();
    p->srv = server_up(p->dir, 0);
    p->port = chat_server_port(p->srv);
    p->ta = token(p->srv, "alice", "phone");
    p->tb = token(p->srv, "bob", "laptop");
    p->a = client_new(p->port, p->ta, NULL);
    p->b = client_new(p->port, p->tb, NULL);
    wait_online(p->a);
    wait_online(p->b);
}

static void pair_down(pair *p)
{
    chat_client_free(p->a);
    chat_client_free(p->b);
    chat_server_free(p->srv);
    chat_string_free(p->ta);
    chat_string_free(p->tb);
    rm_rf(p->dir);
    free(p->dir);
}

/* ---- tests ------------------------------------------------------------------------------- */

static atomic_int cb_events;
static atomic_int cb_on_main;
static pthread_t main_thread;

static void count_cb(chat_client *c, const chat_event *ev, void *ud)
{
    (void)c, (void)ev, (void)ud;
    atomic_fetch_add(&cb_events, 1);
    if (pthread_equal(pthread_self(), main_thread))
        atomic_store(&cb_on_main, 1);
}

static void test_client_chat_both_ways_with_receipts(void **state)
{
    (void)state;
    chat_server *srv = server_up(NULL, 0);
    int port = chat_server_port(srv);
    char *ta = token(srv, "alice", "phone"), *tb = token(srv, "bob", "laptop");
    chat_client *a = client_new(port, ta, NULL);

    /* bob with a callback too: both delivery forms see the same events */
    chat_client_config *cfg = NULL;
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
    chat_client_config_new(&cfg);
    chat_client_config_set_server(cfg, url);
    chat_client_config_set_token(cfg, tb);
    chat_client_config_set_backoff(cfg, 20, 200);
    main_thread = pthread_self();
    chat_client_config_set_event_cb(cfg, count_cb, NULL, NULL);
    chat_client *b = NULL;
    assert_int_equal(chat_client_new(&b, cfg), CHAT_OK);
    chat_client_config_free(cfg);
    assert_int_equal(chat_client_start(b), CHAT_OK);
    wait_online(a);
    wait_online(b);
    assert_int_equal(chat_client_state(a), CHAT_CONN_ONLINE);

    char *cmid = NULL;
    assert_int_equal(chat_client_send_text_to(&cmid, a, "bob", "hi bob", 6), CHAT_OK);
    assert_int_equal(strlen(cmid), 27);
    chat_event *ev = wait_for(a, CHAT_EVENT_SENT, 0, NULL);
    assert_string_equal(chat_event_cmid(ev), cmid);
    chat_conv_id conv = chat_event_conv(ev);
    assert_int_equal(chat_event_seq(ev), 1);
    chat_event_free(ev);

    ev = wait_for(b, CHAT_EVENT_MESSAGE, conv, "hi bob");
    assert_string_equal(chat_event_user(ev), "alice");
    assert_string_equal(chat_event_cmid(ev), cmid);
    assert_int_equal(chat_event_kind(ev), CHAT_MSG_TEXT);
    chat_event_free(ev);
    struct unread_arg ua = {conv, 1};
    wait_until(b, unread_is, &ua, "bob's unread 1");

    /* bob's device acknowledged delivery on its own; read only when bob says so */
    struct status_arg sa = {cmid, CHAT_MSG_STATUS_DELIVERED};
    wait_until(a, status_is, &sa, "delivered status");
    assert_int_equal(chat_client_mark_read(b, conv, 1), CHAT_OK);
    assert_int_equal(unread_of(b, conv), 0);
    sa.status = CHAT_MSG_STATUS_READ;
    wait_until(a, status_is, &sa, "read status");

    /* and back */
    assert_int_equal(chat_client_send_text(NULL, b, conv, "hello alice", 11), CHAT_OK);
    ev = wait_for(a, CHAT_EVENT_MESSAGE, conv, "hello alice");
    assert_string_equal(chat_event_user(ev), "bob");
    assert_int_equal(chat_event_seq(ev), 2);
    chat_event_free(ev);

    /* the conversation list from the cache */
    chat_conv_list *l = NULL;
    assert_int_equal(chat_client_convs(&l, a), CHAT_OK);
    assert_int_equal(chat_conv_list_count(l), 1);
    assert_int_equal(chat_conv_list_kind(l, 0), CHAT_CONV_DIRECT);
    assert_string_equal(chat_conv_list_peer(l, 0), "bob");
    assert_int_equal(chat_conv_list_head(l, 0), 2);
    assert_int_equal(chat_conv_list_unread(l, 0), 1);
    chat_conv_list_free(l);

    assert_true(atomic_load(&cb_events) > 0);
    assert_int_equal(atomic_load(&cb_on_main), 0);
    chat_string_free(cmid);
    chat_client_free(a);
    chat_client_free(b);
    chat_string_free(ta);
    chat_string_free(tb);
    chat_server_free(srv);
}

/* ---- a bus that loses frames -------------------------------------------------------------
 * The built-in local bus behind a wrapper that drops the next `drop` message frames, as a
 * network bus may, and says so (not CHAT_BUS_CTL_RELIABLE). Frames for remote devices only
 * (position hints) reach the local devices: here they stand for the devices of other nodes.
 * lost() reaches the engine from poll(), on the loop thread, when the test asks for it. */

typedef struct lossy_bus {
    void *inner;
    chat_bus_sink sink;
    atomic_int drop;     /* message frames still to drop */
    atomic_int dropped;
    atomic_int want_lost;
} lossy_bus;

static const chat_bus_ops *inner_ops(void) { return chat_bus_local_ops(); }

static void lossy_destroy(void *st)
{
    lossy_bus *b = st;
    inner_ops()->destroy(b->inner);
    free(b);
}

static int lossy_attach(void *st, const chat_bus_sink *sink)
{
    lossy_bus *b = st;
    b->sink = *sink;
    return inner_ops()->attach(b->inner, sink);
}

static int lossy_publish2(void *st, const char *const *users, size_t n, const char *eu,
                          const char *ed, chat_buf *frame, unsigned int flags)
{
    lossy_bus *b = st;
    if (strncmp(chat_buf_data(frame), "{\"type\":\"msg\"", 13) == 0 && atomic_load(&b->drop) > 0) {
        atomic_fetch_sub(&b->drop, 1);
        atomic_fetch_add(&b->dropped, 1);
        return CHAT_OK;
    }
    return inner_ops()->publish2(b->inner, users, n, eu, ed, frame, 0);
}

static int lossy_up(void *st, const char *u, const char *d)
{
    return inner_ops()->device_up(((lossy_bus *)st)->inner, u, d);
}

static int lossy_down(void *st, const char *u, const char *d)
{
    return inner_ops()->device_down(((lossy_bus *)st)->inner, u, d);
}

static int lossy_online(void *st, const char *u)
{
    return inner_ops()->online(((lossy_bus *)st)->inner, u);
}

static int lossy_poll(void *st)
{
    lossy_bus *b = st;
    if (atomic_exchange(&b->want_lost, 0))
        b->sink.lost(b->sink.user_data);
    return CHAT_OK;
}

static int lossy_ctl(void *st, int op, void *arg)
{
    return CHAT_ENOTSUP; /* not reliable */
}

static const chat_bus_ops lossy_ops = {.version = CHAT_BUS_OPS_VERSION,
                                       .destroy = lossy_destroy,
                                       .attach = lossy_attach,
                                       .device_up = lossy_up,
                                       .device_down = lossy_down,
                                       .online = lossy_online,
                                       .poll = lossy_poll,
                                       .ctl = lossy_ctl,
                                       .publish2 = lossy_publish2};

static lossy_bus *lossy_new(void)
{
    lossy_bus *b = calloc(1, sizeof *b);
    assert_non_null(b);
    assert_int_equal(chat_bus_local_new(&b->inner), CHAT_OK);
    return b;
}

/* alice and bob online on a server over a lossy bus, with a conversation of one message. */
typedef struct lossy_pair {
    lossy_bus *bus;
    chat_server *srv;
    char *ta, *tb;
    chat_client *a, *b;
    uint64_t conv;
} lossy_pair;

static void lossy_pair_up(lossy_pair *p, int hint_ms)
{
    p->bus = lossy_new();
    p->srv = server_up_on(NULL, 0, &lossy_ops, p->bus, hint_ms, 0, 0);
    int port = chat_server_port(p->srv);
    p->ta = token(p->srv, "alice", "phone");
    p->tb = token(p->srv, "bob", "laptop");
    p->a = client_new(port, p->ta, NULL);
    p->b = client_new(port, p->tb, NULL);
    wait_online(p->a);
    wait_online(p->b);
    assert_int_equal(chat_client_send_text_to(NULL, p->a, "bob", "one", 3), CHAT_OK);
    chat_event *ev = wait_for(p->b, CHAT_EVENT_MESSAGE, 0, "one");
    p->conv = chat_event_conv(ev);
    chat_event_free(ev);
}

static void lossy_pair_down(lossy_pair *p)
{
    chat_client_free(p->a);
    chat_client_free(p->b);
    chat_string_free(p->ta);
    chat_string_free(p->tb);
    chat_server_free(p->srv);
}

/* alice sends text, acked, whose live frame the bus drops (the ack goes out before the
 * fan-out: wait for the drop itself). */
static void send_dropped(lossy_pair *p, const char *text)
{
    int before = atomic_load(&p->bus->dropped);
    atomic_store(&p->bus->drop, 1);
    assert_int_equal(chat_client_send_text(NULL, p->a, p->conv, text, strlen(text)), CHAT_OK);
    chat_event_free(wait_for(p->a, CHAT_EVENT_SENT, p->conv, NULL));
    long long dl = now_ms() + WAIT_MS;
    while (atomic_load(&p->bus->dropped) == before && now_ms() < dl)
        usleep(1000);
    assert_int_equal(atomic_load(&p->bus->dropped), before + 1);
}

/* The bus drops the live frame of "two" and nothing follows it: the position hint of the
 * quiet conversation makes bob's client fetch it. */
static void test_client_dropped_frame_found_by_position_hint(void **state)
{
    (void)state;
    lossy_pair p;
    lossy_pair_up(&p, 200);
    send_dropped(&p, "two");
    chat_event_free(wait_for(p.b, CHAT_EVENT_MESSAGE, p.conv, "two"));
    expect_text(p.b, p.conv, "two", 1);
    lossy_pair_down(&p);
}

/* Without hints, the next frame's seq shows the gap, and the client fetches it. */
static void test_client_dropped_frame_found_by_next_seq(void **state)
{
    (void)state;
    lossy_pair p;
    lossy_pair_up(&p, 0);
    send_dropped(&p, "two");
    assert_int_equal(chat_client_send_text(NULL, p.a, p.conv, "three", 5), CHAT_OK);
    const char *texts[] = {"two", "three"};
    wait_for_all(p.b, p.conv, texts, 2);
    expect_text(p.b, p.conv, "two", 1);
    expect_text(p.b, p.conv, "three", 1);
    lossy_pair_down(&p);
}

/* Without hints and with no later frame, the bus reporting a loss makes the engine prompt
 * every client to catch up. */
static void test_client_bus_loss_prompts_catch_up(void **state)
{
    (void)state;
    lossy_pair p;
    lossy_pair_up(&p, 0);
    send_dropped(&p, "two");
    atomic_store(&p.bus->want_lost, 1);
    p.bus->sink.wake(p.bus->sink.user_data);
    chat_event_free(wait_for(p.b, CHAT_EVENT_MESSAGE, p.conv, "two"));
    expect_text(p.b, p.conv, "two", 1);
    lossy_pair_down(&p);
}

static void test_client_offline_send_exactly_once(void **state)
{
    (void)state;
    char *dir = tmpdir();
    chat_server *srv = server_up(dir, 0);
    int port = chat_server_port(srv);
    char *ta = token(srv, "alice", "phone"), *tb = token(srv, "bob", "laptop");
    chat_server_free(srv); /* down: the client starts with no server */

    chat_client *a = client_new(port, ta, NULL);
    chat_event_free(wait_for(a, CHAT_EVENT_OFFLINE, 0, NULL));
    char *cmid = NULL;
    assert_int_equal(chat_client_send_text_to(&cmid, a, "bob", "sent offline", 12), CHAT_OK);
    int st = 0;
    assert_int_equal(chat_client_message_status(&st, NULL, NULL, a, cmid), CHAT_OK);
    assert_int_equal(st, CHAT_MSG_STATUS_SENDING);
    size_t n = 0;
    assert_int_equal(chat_client_outbox_count(&n, a), CHAT_OK);
    assert_int_equal(n, 1);

    srv = server_up(dir, port);
    chat_event *ev = wait_for(a, CHAT_EVENT_SENT, 0, NULL);
    assert_string_equal(chat_event_cmid(ev), cmid);
    chat_conv_id conv = chat_event_conv(ev);
    uint64_t seq = 0;
    chat_event_free(ev);
    assert_int_equal(chat_client_message_status(&st, NULL, &seq, a, cmid), CHAT_OK);
    assert_true(st >= CHAT_MSG_STATUS_SENT);
    assert_int_equal(seq, 1);
    assert_int_equal(chat_client_outbox_count(&n, a), CHAT_OK);
    assert_int_equal(n, 0);

    chat_client *b = client_new(port, tb, NULL);
    wait_online(b);
    expect_text(b, conv, "sent offline", 1);

    chat_string_free(cmid);
    chat_client_free(a);
    chat_client_free(b);
    chat_server_free(srv);
    chat_string_free(ta);
    chat_string_free(tb);
    rm_rf(dir);
    free(dir);
}

static void test_client_outbox_survives_restart(void **state)
{
    (void)state;
    char *dir = tmpdir();
    char cache[600];
    snprintf(cache, sizeof cache, "%s/alice-cache.db", dir);
    chat_server *srv = server_up(NULL, 0);
    int port = chat_server_port(srv);
    char *ta = token(srv, "alice", "phone"), *tb = token(srv, "bob", "laptop");
    chat_client *b = client_new(port, tb, NULL);
    wait_online(b);

    /* 1: written while unreachable, the app quits, the next run sends it */
    chat_client *a = client_new(1, ta, cache); /* port 1: nothing listens */
    chat_event_free(wait_for(a, CHAT_EVENT_OFFLINE, 0, NULL));
    assert_int_equal(chat_client_send_text_to(NULL, a, "bob", "before restart", 14), CHAT_OK);
    chat_client_free(a);

    /* 2: sent while online, the app quits at once (ack maybe lost); resent with the same cmid */
    a = client_new(port, ta, cache);
    chat_event_free(wait_for(a, CHAT_EVENT_SENT, 0, NULL)); /* message 1 */
    for (int i = 0; i < 5; i++)
        assert_int_equal(chat_client_send_text_to(NULL, a, "bob", "burst", 5), CHAT_OK);
    chat_client_free(a);

    a = client_new(port, ta, cache);
    wait_online(a);
    chat_conv_id conv = outbox_sent_to_one_conv(a);
    expect_text(b, conv, "before restart", 1);
    expect_text(b, conv, "burst", 5);

    chat_client_free(a);
    chat_client_free(b);
    chat_server_free(srv);
    chat_string_free(ta);
    chat_string_free(tb);
    rm_rf(dir);
    free(dir);
}

static void test_client_server_restart_resumes(void **state)
{
    (void)state;
    pair p;
    pair_up(&p);
    chat_server *srv = p.srv;
    chat_client *a = p.a, *b = p.b;
    assert_int_equal(chat_client_send_text_to(NULL, a, "bob", "one", 3), CHAT_OK);
    chat_event *ev = wait_for(b, CHAT_EVENT_MESSAGE, 0, "one");
    chat_conv_id conv = chat_event_conv(ev);
    chat_event_free(ev);

    chat_server_free(srv);
    chat_event_free(wait_for(a, CHAT_EVENT_OFFLINE, 0, NULL));
    assert_int_equal(chat_client_send_text(NULL, a, conv, "two", 3), CHAT_OK);
    assert_int_equal(chat_client_send_text(NULL, a, conv, "three", 5), CHAT_OK);

    srv = server_up(p.dir, p.port);
    /* "three" may arrive live before the sync fills in "two": either order is right. */
    const char *missed[] = {"two", "three"};
    wait_for_all(b, conv, missed, 2);
    assert_int_equal(chat_client_send_text(NULL, b, conv, "four", 4), CHAT_OK);
    chat_event_free(wait_for(a, CHAT_EVENT_MESSAGE, conv, "four"));
    const char *words[] = {"one", "two", "three", "four"};
    for (int i = 0; i < 4; i++) {
        expect_text(a, conv, words[i], 1);
        expect_text(b, conv, words[i], 1);
    }
    chat_msg_list *l = NULL;
    assert_int_equal(chat_client_history(&l, NULL, b, conv, 0, 50), CHAT_OK);
    assert_int_equal(chat_msg_list_count(l), 4);
    assert_int_equal(chat_msg_list_seq(l, 3), 4);
    chat_msg_list_free(l);

    p.srv = srv;
    pair_down(&p);
}

/* A drained server answers what it took, closes its clients with 1001 and refuses new ones;
 * the client engine keeps what it could not send in its outbox, and once a server is back on
 * the address, reconnects and sends it: every message reaches its recipient exactly once. */
static void test_client_drain_reconnects_and_resumes(void **state)
{
    (void)state;
    pair p;
    pair_up(&p);
    chat_server *srv = p.srv;
    chat_client *a = p.a, *b = p.b;
    char text[16];
    for (int i = 0; i < 10; i++) {
        snprintf(text, sizeof text, "m%d", i);
        assert_int_equal(chat_client_send_text_to(NULL, a, "bob", text, strlen(text)), CHAT_OK);
    }
    assert_int_equal(chat_server_drain(srv, 10000), CHAT_OK);
    assert_int_equal(chat_server_drain_wait(srv), CHAT_OK);
    assert_int_equal(chat_server_ready(srv, 1000), CHAT_EBUSY);
    chat_event_free(wait_for(a, CHAT_EVENT_OFFLINE, 0, NULL));
    for (int i = 10; i < 15; i++) { /* while no server takes them */
        snprintf(text, sizeof text, "m%d", i);
        assert_int_equal(chat_client_send_text_to(NULL, a, "bob", text, strlen(text)), CHAT_OK);
    }
    chat_server_free(srv);
    srv = server_up(p.dir, p.port); /* the node is back (or another took its address) */
    chat_conv_id conv = outbox_sent_to_one_conv(a);
    for (int i = 0; i < 15; i++) {
        snprintf(text, sizeof text, "m%d", i);
        expect_text(b, conv, text, 1);
    }
    p.srv = srv;
    pair_down(&p);
}

static void test_client_two_devices_stay_in_sync(void **state)
{
    (void)state;
    chat_server *srv = server_up(NULL, 0);
    int port = chat_server_port(srv);
    char *t1 = token(srv, "alice", "phone"), *t2 = token(srv, "alice", "laptop"),
         *tb = token(srv, "bob", "desk");
    chat_client *a1 = client_new(port, t1, NULL), *a2 = client_new(port, t2, NULL),
                *b = client_new(port, tb, NULL);
    wait_online(a1);
    wait_online(a2);
    wait_online(b);
    assert_int_equal(chat_client_send_text_to(NULL, b, "alice", "m1", 2), CHAT_OK);
    chat_event *ev = wait_for(a1, CHAT_EVENT_MESSAGE, 0, "m1");
    chat_conv_id conv = chat_event_conv(ev);
    chat_event_free(ev);
    assert_int_equal(chat_client_send_text(NULL, b, conv, "m2", 2), CHAT_OK);
    chat_event_free(wait_for(a1, CHAT_EVENT_MESSAGE, conv, "m2"));
    chat_event_free(wait_for(a2, CHAT_EVENT_MESSAGE, conv, "m2"));
    struct unread_arg ua = {conv, 2};
    wait_until(a2, unread_is, &ua, "unread 2 on device 2");
    assert_int_equal(unread_of(a1, conv), 2);

    /* reading on device 1 clears the unread count on device 2 */
    assert_int_equal(chat_client_mark_read(a1, conv, 2), CHAT_OK);
    ua.unread = 0;
    wait_until(a2, unread_is, &ua, "unread 0 on device 2");

    /* what device 1 sends shows on device 2 */
    assert_int_equal(chat_client_send_text(NULL, a1, conv, "from phone", 10), CHAT_OK);
    ev = wait_for(a2, CHAT_EVENT_MESSAGE, conv, "from phone");
    assert_string_equal(chat_event_user(ev), "alice");
    assert_string_equal(chat_event_device(ev), "phone");
    chat_event_free(ev);
    assert_int_equal(unread_of(a2, conv), 0);

    chat_client_free(a1);
    chat_client_free(a2);
    chat_client_free(b);
    chat_server_free(srv);
    chat_string_free(t1);
    chat_string_free(t2);
    chat_string_free(tb);
}

static void test_client_history_paging_through_cache(void **state)
{
    (void)state;
    chat_server *srv = server_up(NULL, 0);
    int port = chat_server_port(srv);
    char *ta = token(srv, "alice", "phone"), *tb = token(srv, "bob", "laptop");
    chat_client *b = client_new(port, tb, NULL);
    wait_online(b);
    char text[32];
    for (int i = 1; i <= 80; i++) {
        int n = snprintf(text, sizeof text, "m%d", i);
        assert_int_equal(chat_client_send_text_to(NULL, b, "alice", text, (size_t)n), CHAT_OK);
    }
    size_t left = 1;
    long long dl = now_ms() + WAIT_MS;
    while (left && now_ms() < dl) {
        chat_event *ev = NULL;
        if (chat_client_wait_event(&ev, b, 20) == CHAT_OK)
            chat_event_free(ev);
        chat_client_outbox_count(&left, b);
    }
    assert_int_equal(left, 0);

    /* alice's first sync caches only the newest messages */
    chat_client *a = client_new(port, ta, NULL);
    wait_online(a);
    chat_conv_list *cl = NULL;
    assert_int_equal(chat_client_convs(&cl, a), CHAT_OK);
    assert_int_equal(chat_conv_list_count(cl), 1);
    chat_conv_id conv = chat_conv_list_id(cl, 0);
    assert_int_equal(chat_conv_list_unread(cl, 0), 80);
    chat_conv_list_free(cl);

    /* Reading up to 10 leaves 70 unread, though only the newest messages are cached: the
     * recount counts the seqs it has not fetched too. */
    assert_int_equal(chat_client_mark_read(a, conv, 10), CHAT_OK);
    assert_int_equal(chat_client_convs(&cl, a), CHAT_OK);
    assert_int_equal(chat_conv_list_unread(cl, 0), 70);
    chat_conv_list_free(cl);

    chat_msg_list *l = NULL;
    assert_int_equal(chat_client_history(&l, NULL, a, conv, 0, 20), CHAT_OK);
    assert_true(chat_msg_list_complete(l));
    assert_int_equal(chat_msg_list_count(l), 20);
    assert_int_equal(chat_msg_list_seq(l, 0), 61);
    assert_string_equal(chat_msg_list_text(l, 19, NULL), "m80");
    chat_msg_list_free(l);

    /* older pages: missing, fetched, then served from the cache */
    uint64_t before = 61;
    while (before > 1) {
        uint64_t req = 0;
        assert_int_equal(chat_client_history(&l, &req, a, conv, before, 20), CHAT_OK);
        if (!chat_msg_list_complete(l)) {
            assert_true(req > 0);
            chat_msg_list_free(l);
            chat_event *ev = wait_for(a, CHAT_EVENT_HISTORY, conv, NULL);
            assert_int_equal(chat_event_request(ev), req);
            assert_int_equal(chat_event_code(ev), CHAT_OK);
            chat_event_free(ev);
            assert_int_equal(chat_client_history(&l, &req, a, conv, before, 20), CHAT_OK);
            assert_true(chat_msg_list_complete(l));
            assert_int_equal(req, 0);
        }
        size_t n = chat_msg_list_count(l);
        assert_true(n > 0);
        assert_int_equal(chat_msg_list_seq(l, n - 1), before - 1);
        snprintf(text, sizeof text, "m%llu", (unsigned long long)chat_msg_list_seq(l, 0));
        assert_string_equal(chat_msg_list_text(l, 0, NULL), text);
        before = chat_msg_list_seq(l, 0);
        chat_msg_list_free(l);
    }
    assert_int_equal(before, 1);
    chat_client_free(a);
    chat_client_free(b);
    chat_server_free(srv);
    chat_string_free(ta);
    chat_string_free(tb);
}

struct reader {
    chat_client *c;
    atomic_int got;
    int fd_ready;
};

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    struct pollfd pf = {.fd = chat_client_event_fd(r->c), .events = POLLIN};
    long long dl = now_ms() + WAIT_MS;
    while (now_ms() < dl && atomic_load(&r->got) == 0) {
        if (poll(&pf, 1, 100) > 0 && (pf.revents & POLLIN))
            r->fd_ready = 1;
        chat_event *ev = NULL;
        int rc = chat_client_next_event(&ev, r->c);
        if (rc == CHAT_EAGAIN)
            rc = chat_client_wait_event(&ev, r->c, 50);
        if (rc == CHAT_OK) {
            if (chat_event_type(ev) == CHAT_EVENT_MESSAGE &&
                strcmp(chat_event_text(ev, NULL), "ping from main") == 0)
                atomic_store(&r->got, 1);
            chat_event_free(ev);
        }
    }
    return NULL;
}

static void test_client_event_queue_foreign_thread(void **state)
{
    (void)state;
    chat_server *srv = server_up(NULL, 0);
    int port = chat_server_port(srv);
    char *ta = token(srv, "alice", "phone"), *tb = token(srv, "bob", "laptop");
    chat_client *a = client_new(port, ta, NULL), *b = client_new(port, tb, NULL);
    wait_online(a);
    assert_int_equal(chat_client_event_fd(b) >= 0, 1);
    struct reader r = {.c = b};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, reader_main, &r), 0);
    assert_int_equal(chat_client_send_text_to(NULL, a, "bob", "ping from main", 14), CHAT_OK);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&r.got), 1);
    assert_int_equal(r.fd_ready, 1);
    /* once stopped, nothing more arrives: the drained queue is empty and its fd quiet */
    assert_int_equal(chat_client_stop(b), CHAT_OK);
    chat_event *ev = NULL;
    while (chat_client_next_event(&ev, b) == CHAT_OK)
        chat_event_free(ev);
    assert_int_equal(chat_client_next_event(&ev, b), CHAT_EAGAIN);
    assert_int_equal(chat_client_wait_event(&ev, b, 10), CHAT_ETIMEDOUT);
    struct pollfd pf = {.fd = chat_client_event_fd(b), .events = POLLIN};
    assert_int_equal(poll(&pf, 1, 0), 0);
    chat_client_free(a);
    chat_client_free(b);
    chat_server_free(srv);
    chat_string_free(ta);
    chat_string_free(tb);
}

static void test_client_auth_failed_and_groups(void **state)
{
    (void)state;
    chat_server *srv = server_up(NULL, 0);
    int port = chat_server_port(srv);
    chat_client *bad = client_new(port, "AQEnot-a-token", NULL);
    chat_event *ev = wait_for(bad, CHAT_EVENT_AUTH_FAILED, 0, NULL);
    assert_int_equal(chat_event_code(ev), CHAT_EAUTH);
    chat_event_free(ev);
    long long dl = now_ms() + 2000;
    while (chat_client_state(bad) != CHAT_CONN_AUTH_FAILED && now_ms() < dl)
        usleep(10000);
    assert_int_equal(chat_client_state(bad), CHAT_CONN_AUTH_FAILED);
    chat_client_free(bad);

    char *ta = token(srv, "alice", "phone"), *tb = token(srv, "bob", "laptop"),
         *tc = token(srv, "carol", "tab");
    chat_client *a = client_new(port, ta, NULL), *b = client_new(port, tb, NULL),
                *c = client_new(port, tc, NULL);
    wait_online(a);
    wait_online(b);
    wait_online(c);
    const char *members[] = {"bob", "carol"};
    uint64_t req = 0;
    assert_int_equal(chat_client_group_create(&req, a, "Team", members, 2), CHAT_OK);
    ev = wait_for(a, CHAT_EVENT_RESULT, 0, NULL);
    assert_int_equal(chat_event_request(ev), req);
    assert_int_equal(chat_event_code(ev), CHAT_OK);
    chat_conv_id conv = chat_event_conv(ev);
    assert_true(conv > 0);
    chat_event_free(ev);
    char *cmid = NULL;
    assert_int_equal(chat_client_send_text(&cmid, a, conv, "team hi", 7), CHAT_OK);
    chat_event_free(wait_for(b, CHAT_EVENT_MESSAGE, conv, "team hi"));
    ev = wait_for(c, CHAT_EVENT_MESSAGE, conv, "team hi");
    uint64_t seq = chat_event_seq(ev);
    chat_event_free(ev);
    assert_int_equal(chat_client_mark_read(b, conv, seq), CHAT_OK);
    struct status_arg sa = {cmid, CHAT_MSG_STATUS_DELIVERED};
    wait_until(a, status_is, &sa, "group delivered");
    size_t d = 0, rd = 0, others = 0;
    dl = now_ms() + WAIT_MS;
    do {
        ev = NULL;
        if (chat_client_wait_event(&ev, a, 20) == CHAT_OK)
            chat_event_free(ev);
        assert_int_equal(chat_client_message_receipts(&d, &rd, &others, a, conv, seq), CHAT_OK);
    } while (rd < 1 && now_ms() < dl);
    assert_int_equal(others, 2);
    assert_int_equal(d, 2);
    assert_int_equal(rd, 1);

    /* typing reaches the others */
    assert_int_equal(chat_client_typing(b, conv, 1), CHAT_OK);
    ev = wait_for(c, CHAT_EVENT_TYPING, conv, NULL);
    assert_string_equal(chat_event_user(ev), "bob");
    assert_int_equal(chat_event_active(ev), 1);
    chat_event_free(ev);

    /* rename; a request while offline completes with ECLOSED */
    assert_int_equal(chat_client_group_rename(&req, a, conv, "Team 2"), CHAT_OK);
    ev = wait_for(a, CHAT_EVENT_RESULT, 0, NULL);
    assert_int_equal(chat_event_code(ev), CHAT_OK);
    chat_event_free(ev);
    const char *who[] = {"bob"};
    assert_int_equal(chat_client_presence_query(&req, c, who, 1), CHAT_OK);
    ev = wait_for(c, CHAT_EVENT_PRESENCE, 0, NULL);
    assert_string_equal(chat_event_user(ev), "bob");
    assert_int_equal(chat_event_active(ev), 1);
    chat_event_free(ev);

    /* a create under a client id, repeated (as after a lost RESULT): one group */
    chat_conv_id made[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(chat_client_group_create_id(&req, a, "g-once", "Once", members, 2),
                         CHAT_OK);
        ev = wait_for(a, CHAT_EVENT_RESULT, 0, NULL);
        assert_int_equal(chat_event_request(ev), req);
        assert_int_equal(chat_event_code(ev), CHAT_OK);
        made[i] = chat_event_conv(ev);
        chat_event_free(ev);
    }
    assert_true(made[0] > 0 && made[0] != conv);
    assert_int_equal(made[1], made[0]);
    assert_int_equal(chat_client_group_create_id(&req, a, "bad cmid", "X", members, 2),
                     CHAT_EINVAL);

    chat_string_free(cmid);
    chat_client_free(a);
    chat_client_free(b);
    chat_client_free(c);
    chat_server_free(srv);
    chat_string_free(ta);
    chat_string_free(tb);
    chat_string_free(tc);
}

/* Messages queued offline flush on the reconnect while the host reads the history: the
 * cache never holds one twice (one row per seq, each cmid once), and a view that reads the
 * outbox first, then the history, and leaves out of the outbox what the history holds,
 * lists each message exactly once at every moment of the flush (chat-cli's /history). */
static void test_client_history_during_outbox_flush(void **state)
{
    (void)state;
    enum { N = 60 };
    char *dir = tmpdir();
    chat_server *srv = server_up(dir, 0);
    int port = chat_server_port(srv);
    char *ta = token(srv, "alice", "phone");
    chat_client *a = client_new(port, ta, NULL);
    wait_online(a);
    assert_int_equal(chat_client_send_text_to(NULL, a, "bob", "first", 5), CHAT_OK);
    chat_event *ev = wait_for(a, CHAT_EVENT_SENT, 0, NULL);
    chat_conv_id conv = chat_event_conv(ev);
    chat_event_free(ev);

    chat_server_free(srv);
    chat_event_free(wait_for(a, CHAT_EVENT_OFFLINE, 0, NULL));
    char text[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(text[i], sizeof text[i], "queued %02d", i);
        assert_int_equal(chat_client_send_text(NULL, a, conv, text[i], strlen(text[i])),
                         CHAT_OK);
    }
    srv = server_up(dir, port);

    int views = 0, midway = 0;
    size_t left = N, was = N;
    long long dl = now_ms() + WAIT_MS; /* for the next ack: slow under valgrind, never stuck */
    char offline[256] = "";
    while (left > 0) {
        if (left < was) {
            was = left;
            dl = now_ms() + WAIT_MS;
        }
        if (now_ms() > dl)
            fail_msg("%zu of %d messages still queued, none acked in the last %d ms; %s", left,
                     N, WAIT_MS, why_not(a, offline));
        chat_msg_list *ob = NULL, *h = NULL;
        assert_int_equal(chat_client_outbox(&ob, a), CHAT_OK);
        assert_int_equal(chat_client_history(&h, NULL, a, conv, 0, 200), CHAT_OK);
        assert_true(chat_msg_list_complete(h));
        int seen[N + 1] = {0};
        size_t hn = chat_msg_list_count(h), queued = 0;
        for (size_t i = 0; i < hn; i++) {
            assert_int_equal(chat_msg_list_seq(h, i), i + 1); /* one row per seq */
            for (size_t j = 0; j < i; j++)
                assert_string_not_equal(chat_msg_list_cmid(h, j), chat_msg_list_cmid(h, i));
            const char *t = chat_msg_list_text(h, i, NULL);
            for (int k = 0; k < N; k++)
                seen[k] += strcmp(t, text[k]) == 0;
            seen[N] += strcmp(t, "first") == 0;
        }
        for (size_t i = 0; i < chat_msg_list_count(ob); i++) {
            const char *cmid = chat_msg_list_cmid(ob, i);
            int listed = 0;
            for (size_t j = 0; j < hn; j++)
                listed |= strcmp(chat_msg_list_cmid(h, j), cmid) == 0;
            if (listed)
                continue;
            queued++;
            for (int k = 0; k < N; k++)
                seen[k] += strcmp(chat_msg_list_text(ob, i, NULL), text[k]) == 0;
        }
        for (int k = 0; k <= N; k++)
            if (seen[k] != 1)
                fail_msg("view %d lists '%s' %d times (%zu in the history, %zu queued)", views,
                         k < N ? text[k] : "first", seen[k], hn, queued);
        views++;
        midway += queued > 0 && hn > 1;
        chat_msg_list_free(ob);
        chat_msg_list_free(h);
        assert_int_equal(chat_client_outbox_count(&left, a), CHAT_OK);
        chat_event *e = NULL;
        if (chat_client_wait_event(&e, a, 1) == CHAT_OK) {
            note_offline(e, offline, sizeof offline);
            chat_event_free(e);
        }
    }
    if (getenv("CHAT_TEST_LOG"))
        fprintf(stderr, "[test] %d views, %d during the flush\n", views, midway);

    chat_client_free(a);
    chat_server_free(srv);
    chat_string_free(ta);
    rm_rf(dir);
    free(dir);
}

/* ---- the message lifecycle ------------------------------------------------------------ */

static const char THUMBS[] = "\xf0\x9f\x91\x8d";

/* Send text to bob from a and return its seq (conv in *conv). */
static uint64_t sent_to(chat_client *a, const char *to, const char *text, uint64_t *conv)
{
    char *cmid = NULL;
    assert_int_equal(chat_client_send_text_to(&cmid, a, to, text, strlen(text)), CHAT_OK);
    chat_event *ev;
    for (;;) {
        ev = wait_for(a, CHAT_EVENT_SENT, 0, NULL);
        if (strcmp(chat_event_cmid(ev), cmid) == 0)
            break;
        chat_event_free(ev);
    }
    uint64_t seq = chat_event_seq(ev);
    *conv = chat_event_conv(ev);
    chat_event_free(ev);
    chat_string_free(cmid);
    return seq;
}

/* Wait for the RESULT of request req: its code. */
static int result_of(chat_client *c, uint64_t req, uint64_t *seq)
{
    for (;;) {
        chat_event *ev = wait_for(c, CHAT_EVENT_RESULT, 0, NULL);
        if (chat_event_request(ev) == req) {
            int code = chat_event_code(ev);
            if (seq)
                *seq = chat_event_seq(ev);
            chat_event_free(ev);
            return code;
        }
        chat_event_free(ev);
    }
}

/* The whole cached history of conv, fetched from the server where the cache lacks it. */
static chat_msg_list *whole_history(chat_client *c, uint64_t conv)
{
    long long dl = now_ms() + WAIT_MS;
    for (;;) {
        chat_msg_list *l = NULL;
        uint64_t req = 0;
        assert_int_equal(chat_client_history(&l, &req, c, conv, 0, 200), CHAT_OK);
        if (chat_msg_list_complete(l))
            return l;
        chat_msg_list_free(l);
        if (now_ms() > dl)
            fail_msg("history of %llu never complete", (unsigned long long)conv);
        chat_event_free(wait_for(c, CHAT_EVENT_HISTORY, conv, NULL));
    }
}

static size_t index_of(const chat_msg_list *l, uint64_t seq)
{
    for (size_t i = 0; i < chat_msg_list_count(l); i++)
        if (chat_msg_list_seq(l, i) == seq)
            return i;
    fail_msg("seq %llu not listed", (unsigned long long)seq);
    return 0;
}

/* Two caches hold the same messages, in the same state. */
static void same_lists(const chat_msg_list *x, const chat_msg_list *y)
{
    assert_int_equal(chat_msg_list_count(x), chat_msg_list_count(y));
    for (size_t i = 0; i < chat_msg_list_count(x); i++) {
        assert_int_equal(chat_msg_list_seq(x, i), chat_msg_list_seq(y, i));
        assert_string_equal(chat_msg_list_text(x, i, NULL), chat_msg_list_text(y, i, NULL));
        assert_int_equal(chat_msg_list_deleted(x, i), chat_msg_list_deleted(y, i));
        assert_int_equal(chat_msg_list_edited_ms(x, i), chat_msg_list_edited_ms(y, i));
        assert_int_equal(chat_msg_list_reply_to(x, i), chat_msg_list_reply_to(y, i));
        assert_int_equal(chat_msg_list_thread(x, i), chat_msg_list_thread(y, i));
        assert_string_equal(chat_msg_list_reactions(x, i), chat_msg_list_reactions(y, i));
    }
}

/* Bob's cache, away while alice edits, deletes, reacts and replies, comes back and converges
 * to what a cache made fresh from the server shows. */
static void test_client_lifecycle_converges_after_sync(void **state)
{
    (void)state;
    char *dir = tmpdir();
    char cache[300];
    snprintf(cache, sizeof cache, "%s/bob.db", dir);
    chat_server *srv = server_up(NULL, 0);
    int port = chat_server_port(srv);
    char *ta = token(srv, "alice", "phone"), *tb = token(srv, "bob", "laptop"),
         *tb2 = token(srv, "bob", "tablet");
    chat_client *a = client_new(port, ta, NULL);
    chat_client *b = client_new(port, tb, cache);
    wait_online(a);
    wait_online(b);
    uint64_t conv = 0, seq[6];
    char text[16];
    for (int i = 0; i < 5; i++) {
        snprintf(text, sizeof text, "m%d words", i + 1);
        seq[i] = sent_to(a, "bob", text, &conv);
    }
    chat_event_free(wait_for(b, CHAT_EVENT_MESSAGE, conv, "m5 words"));
    chat_client_free(b); /* away */

    uint64_t req;
    assert_int_equal(chat_client_edit(&req, a, conv, seq[0], "m1 fixed", 8), CHAT_OK);
    assert_int_equal(result_of(a, req, NULL), CHAT_OK);
    assert_int_equal(chat_client_delete(&req, a, conv, seq[1]), CHAT_OK);
    assert_int_equal(result_of(a, req, NULL), CHAT_OK);
    assert_int_equal(chat_client_react(&req, a, conv, seq[2], THUMBS, 1), CHAT_OK);
    assert_int_equal(result_of(a, req, NULL), CHAT_OK);
    assert_int_equal(chat_client_react(&req, a, conv, seq[3], THUMBS, 1), CHAT_OK);
    assert_int_equal(result_of(a, req, NULL), CHAT_OK);
    assert_int_equal(chat_client_react(&req, a, conv, seq[3], THUMBS, 0), CHAT_OK);
    assert_int_equal(result_of(a, req, NULL), CHAT_OK);
    char *cmid = NULL;
    assert_int_equal(chat_client_send_reply(&cmid, a, conv, seq[2], 0, "about m3", 8), CHAT_OK);
    chat_event *ev = wait_for(a, CHAT_EVENT_SENT, conv, NULL);
    seq[5] = chat_event_seq(ev);
    chat_event_free(ev);
    chat_string_free(cmid);
    /* refused: not bob's message to edit; a reaction the server does not offer */
    chat_client *b2 = client_new(port, tb2, NULL);
    wait_online(b2);
    assert_int_equal(chat_client_edit(&req, b2, conv, seq[0], "hack", 4), CHAT_OK);
    assert_int_equal(result_of(b2, req, NULL), CHAT_EPERM);
    assert_int_equal(chat_client_react(&req, b2, conv, seq[0], "x", 1), CHAT_OK);
    assert_int_equal(result_of(b2, req, NULL), CHAT_EINVAL);

    /* back: the sync carries the changes; each is announced */
    b = client_new(port, tb, cache);
    int edited = 0, deleted = 0, reacted = 0;
    long long dl = now_ms() + WAIT_MS;
    for (int synced = 0; !synced || !edited || !deleted || !reacted;) {
        if (now_ms() > dl)
            fail_msg("sync: edited %d deleted %d reacted %d synced %d", edited, deleted, reacted,
                     synced);
        ev = NULL;
        if (chat_client_wait_event(&ev, b, 50) != CHAT_OK)
            continue;
        int t = chat_event_type(ev);
        synced |= t == CHAT_EVENT_SYNCED;
        if (t == CHAT_EVENT_UPDATED) {
            assert_string_equal(chat_event_user(ev), "alice");
            if (chat_event_kind(ev) == CHAT_MSG_EDIT && chat_event_seq(ev) == seq[0])
                edited = strcmp(chat_event_text(ev, NULL), "m1 fixed") == 0;
            deleted |= chat_event_kind(ev) == CHAT_MSG_DELETE && chat_event_seq(ev) == seq[1];
            reacted |= chat_event_kind(ev) == CHAT_MSG_REACT && chat_event_seq(ev) == seq[2];
        }
        chat_event_free(ev);
    }
    chat_msg_list *l = whole_history(b, conv);
    assert_int_equal(chat_msg_list_count(l), 6); /* changes are applied, not listed */
    size_t i = index_of(l, seq[0]);
    assert_string_equal(chat_msg_list_text(l, i, NULL), "m1 fixed");
    assert_true(chat_msg_list_edited_ms(l, i) > 0);
    i = index_of(l, seq[1]);
    assert_true(chat_msg_list_deleted(l, i));
    assert_string_equal(chat_msg_list_text(l, i, NULL), "");
    i = index_of(l, seq[2]);
    assert_int_equal(chat_msg_list_reaction_count(l, i, THUMBS), 1);
    char want[64];
    snprintf(want, sizeof want, "[{\"emoji\":\"%s\",\"users\":[\"alice\"]}]", THUMBS);
    assert_string_equal(chat_msg_list_reactions(l, i), want);
    assert_string_equal(chat_msg_list_reactions(l, index_of(l, seq[3])), "");
    assert_int_equal(chat_msg_list_reply_to(l, index_of(l, seq[5])), seq[2]);
    /* the same as a cache made from the server now */
    chat_msg_list *fresh = whole_history(b2, conv);
    same_lists(l, fresh);
    /* unread counts what counts: five of alice's texts, not the deleted one, no change */
    struct unread_arg ua = {conv, 5};
    wait_until(b, unread_is, &ua, "bob's unread 5");
    wait_until(b2, unread_is, &ua, "the fresh cache's unread 5");
    /* the local index follows: the new words, not the deleted message's */
    chat_msg_list *hits = NULL;
    assert_int_equal(chat_client_search_local(&hits, b, "FIXED", 0, 10), CHAT_OK);
    assert_int_equal(chat_msg_list_count(hits), 1);
    assert_int_equal(chat_msg_list_seq(hits, 0), seq[0]);
    chat_msg_list_free(hits);
    assert_int_equal(chat_client_search_local(&hits, b, "m2", conv, 10), CHAT_OK);
    assert_int_equal(chat_msg_list_count(hits), 0);
    chat_msg_list_free(hits);
    assert_int_equal(chat_client_search_local(&hits, b, "words", conv, 10), CHAT_OK);
    assert_int_equal(chat_msg_list_count(hits), 3); /* m3, m4, m5 */
    chat_msg_list_free(hits);
    assert_int_equal(chat_client_search_local(&hits, b, "", 0, 10), CHAT_EINVAL);

    chat_msg_list_free(l);
    chat_msg_list_free(fresh);
    chat_client_free(a);
    chat_client_free(b);
    chat_client_free(b2);
    chat_server_free(srv);
    chat_string_free(ta);
    chat_string_free(tb);
    chat_string_free(tb2);
    rm_rf(dir);
    free(dir);
}

static int expired_seq(const chat_event *ev, uint64_t seq)
{
    return chat_event_type(ev) == CHAT_EVENT_EXPIRED && chat_event_seq(ev) == seq;
}

/* Live: an edit reaches the other cache, a disappearing message leaves both, a thread reply
 * does not count in the conversation's unread, a deleted account's messages are erased. */
static void test_client_lifecycle_live(void **state)
{
    (void)state;
    chat_server *srv = server_up_with(NULL, 0, CHAT_LIMIT_EXPIRY_SWEEP_MS, 50);
    int port = chat_server_port(srv);
    char *ta = token(srv, "alice", "phone"), *tb = token(srv, "bob", "laptop");
    chat_client *a = client_new(port, ta, NULL);
    chat_client *b = client_new(port, tb, NULL);
    wait_online(a);
    wait_online(b);
    uint64_t conv = 0, req, ev_seq;
    uint64_t s1 = sent_to(a, "bob", "before the timer", &conv);
    chat_event_free(wait_for(b, CHAT_EVENT_MESSAGE, conv, "before the timer"));

    assert_int_equal(chat_client_edit(&req, a, conv, s1, "edited live", 11), CHAT_OK);
    chat_event *ev = wait_for(b, CHAT_EVENT_UPDATED, conv, "edited live");
    assert_int_equal(chat_event_kind(ev), CHAT_MSG_EDIT);
    assert_int_equal(chat_event_seq(ev), s1);
    chat_event_free(ev);
    assert_int_equal(result_of(a, req, &ev_seq), CHAT_OK);
    assert_int_equal(ev_seq, s1 + 1);

    /* a thread reply: bob's conversation unread does not move */
    assert_int_equal(chat_client_mark_read(b, conv, s1 + 1), CHAT_OK);
    char *cmid = NULL;
    assert_int_equal(chat_client_send_reply(&cmid, a, conv, 0, s1, "in the thread", 13),
                     CHAT_OK);
    ev = wait_for(b, CHAT_EVENT_MESSAGE, conv, "in the thread");
    uint64_t t1 = chat_event_seq(ev);
    chat_event_free(ev);
    chat_string_free(cmid);
    assert_int_equal(unread_of(b, conv), 0);
    assert_int_equal(chat_client_thread(&req, b, conv, s1, 0, 50), CHAT_OK);
    ev = wait_for(b, CHAT_EVENT_RESULT, 0, NULL);
    assert_int_equal(chat_event_code(ev), CHAT_OK);
    assert_non_null(strstr(chat_event_json(ev), "\"unread\":1"));
    chat_event_free(ev);
    chat_msg_list *l = whole_history(b, conv);
    assert_int_equal(chat_msg_list_thread(l, index_of(l, t1)), s1);
    chat_msg_list_free(l);

    /* disappearing messages */
    assert_int_equal(chat_client_set_timer(&req, b, conv, 1000), CHAT_OK);
    assert_int_equal(result_of(b, req, NULL), CHAT_OK);
    uint64_t s2 = sent_to(a, "bob", "vanishing words", &conv);
    long long dl = now_ms() + WAIT_MS;
    for (int got = 0; !got;) {
        if (now_ms() > dl)
            fail_msg("no EXPIRED event for seq %llu", (unsigned long long)s2);
        ev = NULL;
        if (chat_client_wait_event(&ev, b, 50) == CHAT_OK) {
            got = expired_seq(ev, s2);
            chat_event_free(ev);
        }
    }
    l = whole_history(b, conv);
    for (size_t i = 0; i < chat_msg_list_count(l); i++)
        assert_int_not_equal(chat_msg_list_seq(l, i), s2); /* dropped */
    chat_msg_list_free(l);
    chat_msg_list *hits = NULL;
    assert_int_equal(chat_client_search_local(&hits, b, "vanishing", 0, 10), CHAT_OK);
    assert_int_equal(chat_msg_list_count(hits), 0);
    chat_msg_list_free(hits);
    /* server search: what is left */
    assert_int_equal(chat_client_search(&req, b, "edited", 0, 0, 10), CHAT_OK);
    ev = wait_for(b, CHAT_EVENT_RESULT, 0, NULL);
    assert_int_equal(chat_event_code(ev), CHAT_OK);
    assert_non_null(strstr(chat_event_json(ev), "edited live"));
    chat_event_free(ev);

    /* alice's account goes: her connection is closed, her messages erased in bob's cache */
    assert_int_equal(chat_server_user_delete(srv, "alice"), CHAT_OK);
    ev = wait_for(b, CHAT_EVENT_UPDATED, conv, NULL);
    assert_int_equal(chat_event_kind(ev), CHAT_MSG_EVENT);
    assert_string_equal(chat_event_user(ev), "alice");
    chat_event_free(ev);
    l = whole_history(b, conv);
    assert_true(chat_msg_list_deleted(l, index_of(l, s1)));
    assert_true(chat_msg_list_deleted(l, index_of(l, t1)));
    chat_msg_list_free(l);
    chat_event_free(wait_for(a, CHAT_EVENT_AUTH_FAILED, 0, NULL));

    chat_client_free(a);
    chat_client_free(b);
    chat_server_free(srv);
    chat_string_free(ta);
    chat_string_free(tb);
}

/* The first column of the first row of sql, an integer, in the SQLite file at path. */
static int count_rows(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

/* A cache as the release before the message lifecycle left it (schema 3: mutes, no search
 * index, no unread column) is upgraded when a client opens it: its messages are found by the
 * local search, its mutes and unread counts stay. Offline: nothing from a server mixes in. */
static void test_client_cache_upgraded_from_schema_3(void **state)
{
    (void)state;
    char *dir = tmpdir();
    char cache[300];
    snprintf(cache, sizeof cache, "%s/old.db", dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(cache, &db), SQLITE_OK);
    static const char old_schema[] =
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE convs(conv INTEGER PRIMARY KEY, kind INTEGER NOT NULL DEFAULT 1,"
        " title TEXT NOT NULL DEFAULT '', role INTEGER NOT NULL DEFAULT 1,"
        " head INTEGER NOT NULL DEFAULT 0, delivered INTEGER NOT NULL DEFAULT 0,"
        " read INTEGER NOT NULL DEFAULT 0, joined INTEGER NOT NULL DEFAULT 0,"
        " last_ts INTEGER NOT NULL DEFAULT 0,"
        " muted_until INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE members(conv INTEGER NOT NULL, user TEXT NOT NULL,"
        " role INTEGER NOT NULL, delivered INTEGER NOT NULL DEFAULT 0,"
        " read INTEGER NOT NULL DEFAULT 0, delivered_ts INTEGER NOT NULL DEFAULT 0,"
        " read_ts INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(conv, user));"
        "CREATE TABLE messages(conv INTEGER NOT NULL, seq INTEGER NOT NULL,"
        " ts INTEGER NOT NULL, sender TEXT NOT NULL, device TEXT NOT NULL, cmid TEXT NOT NULL,"
        " kind INTEGER NOT NULL, text TEXT NOT NULL, json TEXT NOT NULL, PRIMARY KEY(conv, seq));"
        "CREATE INDEX messages_cmid ON messages(cmid) WHERE cmid <> '';"
        "CREATE TABLE outbox(id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " cmid TEXT NOT NULL UNIQUE, conv INTEGER NOT NULL, to_user TEXT, text TEXT NOT NULL,"
        " created_ms INTEGER NOT NULL, failed INTEGER NOT NULL DEFAULT 0,"
        " error TEXT NOT NULL DEFAULT '', media TEXT);"
        "INSERT INTO convs(conv, kind, role, head, delivered, read, last_ts, muted_until)"
        " VALUES(5, 1, 1, 2, 2, 1, 1001, -1);"
        "INSERT INTO members(conv, user, role) VALUES(5, 'alice', 1), (5, 'bob', 1);"
        "INSERT INTO messages VALUES(5, 1, 1000, 'alice', 'phone', 'c1', 1, 'harbour lunch',"
        " '{\"type\":\"msg\",\"conv\":5,\"seq\":1,\"ts\":1000,\"from\":\"alice\","
        "\"device\":\"phone\",\"cmid\":\"c1\",\"kind\":\"text\",\"text\":\"harbour lunch\"}');"
        "INSERT INTO messages VALUES(5, 2, 1001, 'alice', 'phone', 'c2', 1, 'see you',"
        " '{\"type\":\"msg\",\"conv\":5,\"seq\":2,\"ts\":1001,\"from\":\"alice\","
        "\"device\":\"phone\",\"cmid\":\"c2\",\"kind\":\"text\",\"text\":\"see you\"}');"
        "PRAGMA user_version=3;";
    char *err = NULL;
    if (sqlite3_exec(db, old_schema, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("old cache: %s", err ? err : "?");
    sqlite3_close(db);

    /* a token for bob, then no server where the client connects */
    chat_server *srv = server_up(NULL, 0);
    int port = chat_server_port(srv);
    char *tb = token(srv, "bob", "laptop");
    chat_server_free(srv);
    chat_client *b = client_new(port, tb, cache);

    chat_msg_list *hits = NULL;
    assert_int_equal(chat_client_search_local(&hits, b, "HARBOUR", 0, 10), CHAT_OK);
    assert_int_equal(chat_msg_list_count(hits), 1);
    assert_int_equal(chat_msg_list_seq(hits, 0), 1);
    assert_int_equal(chat_msg_list_conv(hits, 0), 5);
    chat_msg_list_free(hits);
    chat_conv_list *convs = NULL;
    assert_int_equal(chat_client_convs(&convs, b), CHAT_OK);
    assert_int_equal(chat_conv_list_count(convs), 1);
    assert_int_equal(chat_conv_list_id(convs, 0), 5);
    assert_int_equal(chat_conv_list_unread(convs, 0), 1);
    assert_int_equal(chat_conv_list_muted_until(convs, 0), -1);
    chat_conv_list_free(convs);
    chat_client_free(b);

    assert_int_equal(count_rows(cache, "PRAGMA user_version"), 4);
    chat_string_free(tb);
    rm_rf(dir);
    free(dir);
}

/* ---- push registration and mutes ---------------------------------------------------------- */

/* A notifier that counts device pushes per token (version 2 of sys/push.h). */
typedef struct device_pushes {
    pthread_mutex_t mu;
    char last[1024]; /* "user/device platform sandbox topic token" of the last device push */
    int n;
} device_pushes;

static int dp_notify(void *st, const chat_push_event *ev)
{
    (void)st, (void)ev;
    return CHAT_OK;
}

static int dp_device(void *st, const chat_push_event *ev, const chat_store_push_reg *d)
{
    device_pushes *p = st;
    (void)ev;
    pthread_mutex_lock(&p->mu);
    snprintf(p->last, sizeof p->last, "%s/%s %d %d %s %s", d->user, d->device, d->platform,
             d->sandbox, d->topic, d->token);
    p->n++;
    pthread_mutex_unlock(&p->mu);
    return CHAT_OK;
}

static void dp_destroy(void *st) { (void)st; }

static const chat_push_ops dp_ops = {.version = CHAT_PUSH_OPS_VERSION, .destroy = dp_destroy,
                                     .notify = dp_notify, .notify_device = dp_device};

static int dp_count(device_pushes *p)
{
    pthread_mutex_lock(&p->mu);
    int n = p->n;
    pthread_mutex_unlock(&p->mu);
    return n;
}

static chat_event *wait_result(chat_client *c, uint64_t req)
{
    for (;;) {
        chat_event *ev = wait_for(c, CHAT_EVENT_RESULT, 0, NULL);
        if (chat_event_request(ev) == req)
            return ev;
        chat_event_free(ev);
    }
}

static int64_t muted_of(chat_client *c, chat_conv_id conv)
{
    chat_conv_list *l = NULL;
    assert_int_equal(chat_client_convs(&l, c), CHAT_OK);
    int64_t m = -2;
    for (size_t i = 0; i < chat_conv_list_count(l); i++)
        if (chat_conv_list_id(l, i) == conv)
            m = chat_conv_list_muted_until(l, i);
    chat_conv_list_free(l);
    return m;
}

struct muted_arg {
    chat_conv_id conv;
    int64_t until;
};

static int muted_is(chat_client *c, void *arg)
{
    struct muted_arg *a = arg;
    return muted_of(c, a->conv) == a->until;
}

static void test_client_push_register_and_mute(void **state)
{
    (void)state;
    device_pushes dp = {.mu = PTHREAD_MUTEX_INITIALIZER};
    chat_server_config *cfg = NULL;
    assert_int_equal(chat_server_config_new(&cfg), CHAT_OK);
    assert_int_equal(chat_server_config_set_listen(cfg, "127.0.0.1", 0), CHAT_OK);
    unsigned char k[32] = {1, 2, 3};
    assert_int_equal(chat_server_config_add_token_key(cfg, 1, k, sizeof k), CHAT_OK);
    assert_int_equal(chat_server_config_set_push(cfg, &dp_ops, &dp), CHAT_OK);
    chat_server *srv = NULL;
    assert_int_equal(chat_server_new(&srv, cfg), CHAT_OK);
    chat_server_config_free(cfg);
    assert_int_equal(chat_server_start(srv), CHAT_OK);
    int port = chat_server_port(srv);
    char *ta = token(srv, "alice", "phone"), *tb = token(srv, "bob", "phone"),
         *tb2 = token(srv, "bob", "laptop");

    /* Refused at the call: nothing is queued. */
    uint64_t req = 0;
    chat_client *b = client_new(port, tb, NULL);
    assert_int_equal(chat_client_push_register(&req, b, "webpush", "x", NULL, 0), CHAT_EINVAL);
    assert_int_equal(chat_client_push_register(&req, b, "apns", "12xz", NULL, 0), CHAT_EINVAL);
    assert_int_equal(chat_client_push_register(&req, b, "fcm", "a b", NULL, 0), CHAT_EINVAL);
    assert_int_equal(chat_client_mute(&req, b, 0, 0), CHAT_EINVAL);
    /* Registered as soon as it can be (the client may not be online yet). */
    assert_int_equal(chat_client_push_register(&req, b, "apns", "ABCDEF0123456789ABCDEF0123456789",
                                               "com.example.app", 1),
                     CHAT_OK);
    chat_event *ev = wait_result(b, req);
    assert_int_equal(chat_event_code(ev), CHAT_OK);
    chat_event_free(ev);

    chat_client *a = client_new(port, ta, NULL), *b2 = client_new(port, tb2, NULL);
    wait_online(a);
    wait_online(b2);
    char *cmid = NULL;
    assert_int_equal(chat_client_send_text_to(&cmid, a, "bob", "hi bob", 6), CHAT_OK);
    chat_string_free(cmid);
    ev = wait_for(b, CHAT_EVENT_MESSAGE, 0, "hi bob");
    chat_conv_id conv = chat_event_conv(ev);
    chat_event_free(ev);
    chat_event_free(wait_for(b2, CHAT_EVENT_MESSAGE, conv, "hi bob"));
    assert_int_equal(muted_of(b, conv), 0);
    /* A mute reaches bob's other device, in its cache. */
    assert_int_equal(chat_client_mute(&req, b, conv, INT64_MAX), CHAT_OK);
    ev = wait_result(b, req);
    assert_int_equal(chat_event_code(ev), CHAT_OK);
    chat_event_free(ev);
    assert_int_equal(muted_of(b, conv), -1);
    struct muted_arg ma = {conv, -1};
    wait_until(b2, muted_is, &ma, "the mute on the other device");
    assert_int_equal(chat_client_mute(&req, b, conv, 0), CHAT_OK);
    chat_event_free(wait_result(b, req));
    ma.until = 0;
    wait_until(b2, muted_is, &ma, "the unmute on the other device");

    /* bob gone: alice's messages push to his registered phone. */
    chat_client_free(b);
    chat_client_free(b2);
    long long dl = now_ms() + WAIT_MS;
    while (dp_count(&dp) == 0 && now_ms() < dl) {
        assert_int_equal(chat_client_send_text(&cmid, a, conv, "ping", 4), CHAT_OK);
        chat_string_free(cmid);
        usleep(50 * 1000);
    }
    assert_true(dp_count(&dp) > 0);
    pthread_mutex_lock(&dp.mu);
    assert_string_equal(dp.last, "bob/phone 1 1 com.example.app abcdef0123456789abcdef0123456789");
    pthread_mutex_unlock(&dp.mu);

    /* Unregistered while offline: sent at the next connect, then no more device pushes. */
    b = client_new(port, tb, NULL);
    assert_int_equal(chat_client_push_unregister(&req, b), CHAT_OK);
    ev = wait_result(b, req);
    assert_int_equal(chat_event_code(ev), CHAT_OK);
    chat_event_free(ev);
    chat_client_free(b);

    chat_client_free(a);
    chat_server_free(srv);
    chat_string_free(ta);
    chat_string_free(tb);
    chat_string_free(tb2);
}

/* A deleted account's devices lose their push registrations (their tokens leave the store);
 * other users' stay. */
static void test_client_account_deletion_forgets_push_tokens(void **state)
{
    (void)state;
    char *dir = tmpdir();
    chat_server *srv = server_up(dir, 0);
    int port = chat_server_port(srv);
    char *ta = token(srv, "alice", "phone"), *tb = token(srv, "bob", "phone");
    chat_client *a = client_new(port, ta, NULL), *b = client_new(port, tb, NULL);
    uint64_t req = 0;
    assert_int_equal(chat_client_push_register(&req, a, "fcm", "alice-token-1", NULL, 0), CHAT_OK);
    chat_event *ev = wait_result(a, req);
    assert_int_equal(chat_event_code(ev), CHAT_OK);
    chat_event_free(ev);
    assert_int_equal(chat_client_push_register(&req, b, "fcm", "bob-token-1", NULL, 0), CHAT_OK);
    ev = wait_result(b, req);
    assert_int_equal(chat_event_code(ev), CHAT_OK);
    chat_event_free(ev);
    assert_int_equal(chat_server_user_delete(srv, "alice"), CHAT_OK);
    chat_client_free(a);
    chat_client_free(b);
    chat_server_free(srv);
    char db[300];
    snprintf(db, sizeof db, "%s/chat.db", dir);
    assert_int_equal(count_rows(db, "SELECT count(*) FROM push_regs WHERE user = 'alice'"), 0);
    assert_int_equal(count_rows(db, "SELECT count(*) FROM push_regs WHERE user = 'bob'"), 1);
    chat_string_free(ta);
    chat_string_free(tb);
    rm_rf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_chat_both_ways_with_receipts),
        cmocka_unit_test(test_client_offline_send_exactly_once),
        cmocka_unit_test(test_client_dropped_frame_found_by_position_hint),
        cmocka_unit_test(test_client_dropped_frame_found_by_next_seq),
        cmocka_unit_test(test_client_bus_loss_prompts_catch_up),
        cmocka_unit_test(test_client_outbox_survives_restart),
        cmocka_unit_test(test_client_server_restart_resumes),
        cmocka_unit_test(test_client_drain_reconnects_and_resumes),
        cmocka_unit_test(test_client_two_devices_stay_in_sync),
        cmocka_unit_test(test_client_history_paging_through_cache),
        cmocka_unit_test(test_client_event_queue_foreign_thread),
        cmocka_unit_test(test_client_push_register_and_mute),
        cmocka_unit_test(test_client_auth_failed_and_groups),
        cmocka_unit_test(test_client_history_during_outbox_flush),
        cmocka_unit_test(test_client_lifecycle_converges_after_sync),
        cmocka_unit_test(test_client_lifecycle_live),
        cmocka_unit_test(test_client_cache_upgraded_from_schema_3),
        cmocka_unit_test(test_client_account_deletion_forgets_push_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
