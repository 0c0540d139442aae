/* Connection cuts (reliability plan T4): real client engines (include/chat/client.h, their
 * outbox promises exactly-once) talk to an in-process server through cutproxy, which cuts
 * every connection after a random number of bytes in one direction or the other (FIN or RST),
 * inside the HTTP upgrade, the auth, a sync page or a send. The clients reconnect, resend their
 * outbox and resync on their own.
 *
 * Pass: every message sent is acked once (one SENT event per cmid, never SEND_FAILED), every
 * peer gets one MESSAGE event per message (no duplicate, none missing), the seqs each client saw
 * per conversation have no hole, and the server's history holds every message exactly once
 * with seqs 1..N.
 *
 * CHAT_CUT_MSGS: messages per sender per conversation (default 150); CHAT_CUT_SEED replays. */
#define _GNU_SOURCE
#include <chat/chat.h>

#include "../integration/wsclient.h"
#include "cutproxy.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define TOKEN_TTL_MS (3600LL * 1000)
#define DEADLINE_MS 30000
#define MAX_N 400
#define MAX_SEQ 4096

static void log_cb(int level, const char *msg, void *user_data)
{
    if (getenv("CHAT_TEST_LOG"))
        fprintf(stderr, "[%s %d] %s\n", (const char *)user_data, level, msg);
}

/* ---- bookkeeping ------------------------------------------------------------------------- */

#define N_CLIENTS 3

typedef struct peer {
    const char *user, *device;
    chat_client *c;
    char *token;
    int onlines;                    /* ONLINE events: one per (re)connect */
    int synced;                     /* SYNCED events */
    int sent_events;                /* SENT events */
    int msg_events;                 /* MESSAGE events for texts of others */
    int expect_msgs;                /* texts of others it must receive */
    unsigned char seen[2][MAX_SEQ]; /* [direct 0 / group 1][seq]: MESSAGE or SENT events */
} peer;

typedef struct text_rec {
    char text[32];
    char *cmid;
    int conv_kind;                  /* 0 direct, 1 group */
    int acks;                       /* SENT events */
    int got[N_CLIENTS];             /* MESSAGE events per client */
} text_rec;

static peer peers[N_CLIENTS] = {
    {.user = "alice", .device = "phone"},
    {.user = "bob", .device = "laptop"},
    {.user = "carol", .device = "tablet"},
};
static text_rec texts[4 * MAX_N];
static int n_texts;
static uint64_t direct_conv, group_conv;

static text_rec *find_text(const char *t)
{
    for (int i = 0; i < n_texts; i++)
        if (strcmp(texts[i].text, t) == 0)
            return &texts[i];
    return NULL;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- setup ------------------------------------------------------------------------------- */

static chat_server *server_up(const char *dir)
{
    chat_server_config *cfg = NULL;
    assert_int_equal(chat_server_config_new(&cfg), CHAT_OK);
    assert_int_equal(chat_server_config_set_listen(cfg, "127.0.0.1", 0), CHAT_OK);
    unsigned char k[32];
    for (int i = 0; i < 32; i++)
        k[i] = (unsigned char)(i * 11 + 5);
    assert_int_equal(chat_server_config_add_token_key(cfg, 1, k, sizeof k), CHAT_OK);
    assert_int_equal(chat_server_config_set_log(cfg, log_cb, CHAT_LOG_WARN, "server"), CHAT_OK);
    assert_int_equal(chat_server_config_set_limit(cfg, CHAT_LIMIT_SEND_RATE, 100000), CHAT_OK);
    assert_int_equal(chat_server_config_set_limit(cfg, CHAT_LIMIT_SEND_BURST, 100000), CHAT_OK);
    assert_int_equal(chat_server_config_set_data_dir(cfg, dir), CHAT_OK);
    chat_server *srv = NULL;
    int rc = chat_server_new(&srv, cfg);
    chat_server_config_free(cfg);
    assert_int_equal(rc, CHAT_OK);
    assert_int_equal(chat_server_start(srv), CHAT_OK);
    return srv;
}

static ws_client *ws_auth(int port, const char *token)
{
    ws_client *w = NULL;
    assert_int_equal(ws_connect(&w, port, 5000), 0);
    assert_int_equal(ws_sendf(w, "{\"type\":\"auth\",\"id\":\"a\",\"v\":1,\"token\":\"%s\"}", token),
                     0);
    cJSON *o = ws_wait_type(w, "auth_ok", 5000);
    assert_non_null(o);
    cJSON_Delete(o);
    return w;
}

/* The answer to request id over a direct (uncut) connection. */
static cJSON *ws_answer(ws_client *w, const char *id)
{
    long long dl = ws_now_ms() + 10000;
    for (;;) {
        long long left = dl - ws_now_ms();
        cJSON *o = ws_recv_json(w, left > 0 ? (int)left : 0);
        assert_non_null(o);
        const char *re = ws_json_str(o, "re");
        if (re && strcmp(re, id) == 0)
            return o;
        cJSON_Delete(o);
    }
}

static chat_client *client_up(int port, peer *p)
{
    chat_client_config *cfg = NULL;
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
    assert_int_equal(chat_client_config_new(&cfg), CHAT_OK);
    assert_int_equal(chat_client_config_set_server(cfg, url), CHAT_OK);
    assert_int_equal(chat_client_config_set_token(cfg, p->token), CHAT_OK);
    assert_int_equal(chat_client_config_set_backoff(cfg, 5, 50), CHAT_OK);
    assert_int_equal(chat_client_config_set_heartbeat(cfg, 1000, 2000), CHAT_OK);
    assert_int_equal(chat_client_config_set_log(cfg, log_cb, CHAT_LOG_DEBUG, (void *)p->user),
                     CHAT_OK);
    chat_client *c = NULL;
    int rc = chat_client_new(&c, cfg);
    chat_client_config_free(cfg);
    assert_int_equal(rc, CHAT_OK);
    assert_int_equal(chat_client_start(c), CHAT_OK);
    return c;
}

/* ---- events ------------------------------------------------------------------------------ */

static int conv_slot(uint64_t conv)
{
    if (conv == group_conv)
        return 1;
    if (!direct_conv)
        direct_conv = conv; /* named by the first ack or message of the 1:1 */
    assert_int_equal(conv, direct_conv);
    return 0;
}

static void mark_seq(peer *p, uint64_t conv, uint64_t seq, int from_msg)
{
    assert_true(seq > 0 && seq < MAX_SEQ);
    int slot = conv_slot(conv);
    if (from_msg && p->seen[slot][seq])
        fail_msg("%s: conv %llu seq %llu delivered twice", p->user, (unsigned long long)conv,
                 (unsigned long long)seq);
    p->seen[slot][seq] = 1;
}

static void on_event(int who, chat_event *ev)
{
    peer *p = &peers[who];
    switch (chat_event_type(ev)) {
    case CHAT_EVENT_ONLINE:
        p->onlines++;
        break;
    case CHAT_EVENT_SYNCED:
        p->synced++;
        break;
    case CHAT_EVENT_SENT: {
        text_rec *t = NULL;
        for (int i = 0; i < n_texts && !t; i++)
            if (texts[i].cmid && strcmp(texts[i].cmid, chat_event_cmid(ev)) == 0)
                t = &texts[i];
        assert_non_null(t);
        if (++t->acks > 1)
            fail_msg("%s acked twice", t->text);
        p->sent_events++;
        mark_seq(p, chat_event_conv(ev), chat_event_seq(ev), 0);
        break;
    }
    case CHAT_EVENT_SEND_FAILED:
        fail_msg("%s: send %s failed for good: %s", p->user, chat_event_cmid(ev),
                 chat_event_message(ev));
        break;
    case CHAT_EVENT_MESSAGE: {
        mark_seq(p, chat_event_conv(ev), chat_event_seq(ev), 1);
        if (chat_event_kind(ev) != CHAT_MSG_TEXT || strcmp(chat_event_user(ev), p->user) == 0)
            break;
        text_rec *t = find_text(chat_event_text(ev, NULL));
        if (!t)
            fail_msg("%s: unknown text '%s'", p->user, chat_event_text(ev, NULL));
        if (++t->got[who] > 1)
            fail_msg("%s received '%s' twice", p->user, t->text);
        p->msg_events++;
        break;
    }
    default:
        break;
    }
}

static int all_done(void)
{
    for (int i = 0; i < n_texts; i++)
        if (texts[i].acks != 1)
            return 0;
    for (int i = 0; i < N_CLIENTS; i++)
        if (peers[i].msg_events != peers[i].expect_msgs)
            return 0;
    return 1;
}

static void queue_text(peer *p, int kind, int i)
{
    text_rec *t = &texts[n_texts++];
    snprintf(t->text, sizeof t->text, "%s-%c-%d", p->user, kind ? 'g' : 'd', i);
    t->conv_kind = kind;
    if (kind)
        assert_int_equal(chat_client_send_text(&t->cmid, p->c, group_conv, t->text,
                                               strlen(t->text)),
                         CHAT_OK);
    else
        assert_int_equal(chat_client_send_text_to(&t->cmid, p->c,
                                                  p == &peers[0] ? "bob" : "alice", t->text,
                                                  strlen(t->text)),
                         CHAT_OK);
}

/* Server side: history of conv over a direct connection, seqs 1..N, each text once. */
static int check_history(int port, const char *token, uint64_t conv, int expect_texts)
{
    ws_client *w = ws_auth(port, token);
    long long after = 0;
    int texts_seen = 0, n = 0;
    for (int page = 0; page < 100; page++) {
        char id[16];
        snprintf(id, sizeof id, "h%d", page);
        assert_int_equal(ws_sendf(w, "{\"type\":\"history\",\"id\":\"%s\",\"conv\":%llu,"
                                     "\"after\":%lld,\"limit\":200}",
                                  id, (unsigned long long)conv, after),
                         0);
        cJSON *o = ws_answer(w, id);
        assert_string_equal(ws_json_str(o, "type"), "history");
        cJSON *m;
        cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(o, "messages"))
        {
            long long seq = ws_json_int(m, "seq");
            if (seq != after + 1)
                fail_msg("conv %llu: seq %lld after %lld (a gap)", (unsigned long long)conv, seq,
                         after);
            after = seq;
            n++;
            if (strcmp(ws_json_str(m, "kind"), "text") != 0)
                continue;
            text_rec *t = find_text(ws_json_str(m, "text"));
            assert_non_null(t);
            texts_seen++;
        }
        int more = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "more"));
        cJSON_Delete(o);
        if (!more)
            break;
    }
    ws_free(w);
    /* Each text is unique: as many texts as sent, in a gap-free history, means once each. */
    assert_int_equal(texts_seen, expect_texts);
    return n;
}

static void test_cuts_client_engines_exactly_once(void **state)
{
    (void)state;
    const char *m = getenv("CHAT_CUT_MSGS");
    int n_each = m ? atoi(m) : 150;
    assert_true(n_each > 0 && n_each <= MAX_N);
    const char *sd = getenv("CHAT_CUT_SEED");
    unsigned int seed = sd ? (unsigned)strtoul(sd, NULL, 10) : (unsigned)time(NULL);
    printf("[cuts] seed %u (CHAT_CUT_SEED replays), %d messages per sender per conversation\n",
           seed, n_each);

    char dir[] = "/tmp/libchat-cuts-XXXXXX";
    assert_non_null(mkdtemp(dir));
    chat_server *srv = server_up(dir);
    int port = chat_server_port(srv);
    for (int i = 0; i < N_CLIENTS; i++)
        assert_int_equal(chat_server_issue_token(srv, peers[i].user, peers[i].device,
                                                 TOKEN_TTL_MS, &peers[i].token),
                         CHAT_OK);
    /* The group, created over a direct connection. */
    ws_client *w = ws_auth(port, peers[0].token);
    assert_int_equal(ws_sendf(w, "{\"type\":\"group_create\",\"id\":\"g\",\"title\":\"Cut\","
                                 "\"members\":[\"bob\",\"carol\"]}"),
                     0);
    cJSON *o = ws_answer(w, "g");
    assert_string_equal(ws_json_str(o, "type"), "conv");
    group_conv = (uint64_t)ws_json_int(cJSON_GetObjectItemCaseSensitive(o, "conv"), "conv");
    cJSON_Delete(o);
    ws_free(w);

    cutproxy *px = cutproxy_start(port, seed, 16384, 10);
    assert_non_null(px);
    for (int i = 0; i < N_CLIENTS; i++)
        peers[i].c = client_up(cutproxy_port(px), &peers[i]);
    /* alice and bob each send n_each texts to each other and n_each into the group, one of
     * each every few ms, so the cuts fall while messages flow both ways; carol only
     * receives. The traffic starts once every device has synced once: a brand-new cache
     * starts each conversation at its newest page (doc/client.md), so what was sent before
     * a device's first sync is history to it, not news. */
    int queued = 0;
    peers[0].expect_msgs = 2 * n_each;
    peers[1].expect_msgs = 2 * n_each;
    peers[2].expect_msgs = 2 * n_each;

    long long t0 = now_ms(), dl = t0 + DEADLINE_MS, next_queue = t0;
    while (queued < n_each || !all_done()) {
        int all_synced = 1;
        for (int i = 0; i < N_CLIENTS; i++)
            all_synced &= peers[i].synced > 0;
        if (all_synced && queued < n_each && now_ms() >= next_queue) {
            for (int s = 0; s < 2; s++) {
                queue_text(&peers[s], 0, queued);
                queue_text(&peers[s], 1, queued);
            }
            queued++;
            next_queue = now_ms() + 4;
        }
        if (now_ms() > dl) {
            size_t left[2] = {0, 0};
            chat_client_outbox_count(&left[0], peers[0].c);
            chat_client_outbox_count(&left[1], peers[1].c);
            for (int i = 0; i < n_texts; i++)
                for (int j = 0; j < N_CLIENTS; j++) {
                    int sender = texts[i].text[0] == 'a' ? 0 : 1;
                    int member = texts[i].conv_kind || j != 2;
                    if (j != sender && member && !texts[i].got[j])
                        fprintf(stderr, "%s never received %s\n", peers[j].user,
                                texts[i].text);
                }
            fail_msg("not done in %d ms: outbox alice %zu bob %zu; received alice %d/%d bob "
                     "%d/%d carol %d/%d; states %d %d %d; onlines %d %d %d",
                     DEADLINE_MS, left[0], left[1], peers[0].msg_events, peers[0].expect_msgs,
                     peers[1].msg_events, peers[1].expect_msgs, peers[2].msg_events,
                     peers[2].expect_msgs, chat_client_state(peers[0].c),
                     chat_client_state(peers[1].c), chat_client_state(peers[2].c),
                     peers[0].onlines, peers[1].onlines, peers[2].onlines);
        }
        for (int i = 0; i < N_CLIENTS; i++) {
            chat_event *ev = NULL;
            while (chat_client_wait_event(&ev, peers[i].c, 2) == CHAT_OK) {
                on_event(i, ev);
                chat_event_free(ev);
            }
        }
    }
    long long took = now_ms() - t0;
    /* Let late duplicates show up, if any. */
    long long quiet = now_ms() + 300;
    while (now_ms() < quiet)
        for (int i = 0; i < N_CLIENTS; i++) {
            chat_event *ev = NULL;
            while (chat_client_wait_event(&ev, peers[i].c, 2) == CHAT_OK) {
                on_event(i, ev);
                chat_event_free(ev);
            }
        }
    cutproxy_stats ps;
    cutproxy_stats_get(px, &ps);
    for (int i = 0; i < N_CLIENTS; i++) {
        size_t left = 1;
        assert_int_equal(chat_client_outbox_count(&left, peers[i].c), CHAT_OK);
        assert_int_equal(left, 0);
        chat_client_free(peers[i].c);
    }
    cutproxy_stop(px);

    /* No hole in what any client saw, from its first seq to its last, per conversation. */
    int holes = 0;
    for (int i = 0; i < N_CLIENTS; i++)
        for (int s = 0; s < 2; s++) {
            int lo = 0, hi = 0;
            for (int q = 1; q < MAX_SEQ; q++)
                if (peers[i].seen[s][q]) {
                    if (!lo)
                        lo = q;
                    hi = q;
                }
            for (int q = lo; q && q <= hi; q++)
                if (!peers[i].seen[s][q]) {
                    fprintf(stderr, "%s: conv slot %d: seq %d never seen\n", peers[i].user, s, q);
                    holes++;
                }
        }
    assert_int_equal(holes, 0);

    int nd = check_history(port, peers[0].token, direct_conv, 2 * n_each);
    int ng = check_history(port, peers[0].token, group_conv, 2 * n_each);
    printf("[cuts] %d messages (%d in the 1:1, %d in the group incl. events), each acked once "
           "and received once by every peer in %lld ms; proxy: %ld connections, %ld cut "
           "client->server, %ld cut server->client (%ld by RST, %ld past the auth), %lld/%lld "
           "bytes relayed; "
           "reconnects alice %d bob %d carol %d; duplicates=0 gaps=0\n",
           n_texts, nd, ng, took, ps.accepted, ps.cut_up, ps.cut_down, ps.resets, ps.cut_late, ps.bytes_up,
           ps.bytes_down, peers[0].onlines, peers[1].onlines, peers[2].onlines);
    assert_true(ps.cut_up + ps.cut_down > 0);

    chat_server_free(srv);
    for (int i = 0; i < n_texts; i++)
        chat_string_free(texts[i].cmid);
    for (int i = 0; i < N_CLIENTS; i++)
        chat_string_free(peers[i].token);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* Pop events of c until a SYNCED event (the resume after a connect finished). */
static void wait_synced(chat_client *c, int *messages, const char *from)
{
    long long dl = now_ms() + 10000;
    for (;;) {
        chat_event *ev = NULL;
        long long left = dl - now_ms();
        if (left <= 0 || chat_client_wait_event(&ev, c, (int)left) != CHAT_OK)
            fail_msg("no SYNCED event within 10 s (the client is %s: the server down, or the "
                     "sync stuck)",
                     chat_client_state(c) == CHAT_CONN_ONLINE ? "online" : "not online");
        int t = chat_event_type(ev);
        if (t == CHAT_EVENT_MESSAGE && strcmp(chat_event_user(ev), from) == 0)
            (*messages)++;
        chat_event_free(ev);
        if (t == CHAT_EVENT_SYNCED)
            return;
    }
}

/* A device that has synced before goes offline; meanwhile a new 1:1 conversation gets more
 * messages than the first page a brand-new cache fetches (50). Back online, the device must
 * get every one of them: they are new to it, not old history. */
static void test_cuts_new_conv_while_offline_fully_synced(void **state)
{
    (void)state;
    char dir[] = "/tmp/libchat-cuts-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cache[64];
    snprintf(cache, sizeof cache, "%s/bob-cache.db", dir);
    chat_server *srv = server_up(dir);
    int port = chat_server_port(srv);
    char *ta = NULL;
    peer bob = {.user = "bob", .device = "laptop"};
    assert_int_equal(chat_server_issue_token(srv, "alice", "phone", TOKEN_TTL_MS, &ta), CHAT_OK);
    assert_int_equal(chat_server_issue_token(srv, "bob", "laptop", TOKEN_TTL_MS, &bob.token),
                     CHAT_OK);

    /* bob syncs once (an empty inbox), then goes offline */
    int got = 0;
    chat_client_config *cfg = NULL;
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
    for (int round = 0; round < 2; round++) {
        assert_int_equal(chat_client_config_new(&cfg), CHAT_OK);
        assert_int_equal(chat_client_config_set_server(cfg, url), CHAT_OK);
        assert_int_equal(chat_client_config_set_token(cfg, bob.token), CHAT_OK);
        assert_int_equal(chat_client_config_set_cache_path(cfg, cache), CHAT_OK);
        assert_int_equal(chat_client_config_set_backoff(cfg, 5, 50), CHAT_OK);
        chat_client *b = NULL;
        assert_int_equal(chat_client_new(&b, cfg), CHAT_OK);
        chat_client_config_free(cfg);
        assert_int_equal(chat_client_start(b), CHAT_OK);
        wait_synced(b, &got, "alice");
        chat_client_free(b);
        if (round == 1)
            break;
        /* alice writes 60 messages in a new 1:1 while bob is offline */
        ws_client *w = ws_auth(port, ta);
        for (int i = 0; i < 60; i++) {
            char id[16];
            snprintf(id, sizeof id, "s%d", i);
            assert_int_equal(ws_sendf(w, "{\"type\":\"send\",\"id\":\"%s\",\"to\":\"bob\","
                                         "\"cmid\":\"o%d\",\"text\":\"offline %d\"}",
                                      id, i, i),
                             0);
            cJSON *o = ws_answer(w, id);
            assert_string_equal(ws_json_str(o, "type"), "ack");
            cJSON_Delete(o);
        }
        ws_free(w);
    }
    printf("[cuts] new 1:1 with 60 messages while offline: %d MESSAGE events after the resync\n",
           got);
    assert_int_equal(got, 60);
    chat_server_free(srv);
    chat_string_free(ta);
    chat_string_free(bob.token);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cuts_new_conv_while_offline_fully_synced),
        cmocka_unit_test(test_cuts_client_engines_exactly_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
