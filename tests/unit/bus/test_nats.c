/* The NATS bus against a real nats-server, started by the test on 127.0.0.1 (an ephemeral
 * port, a temporary directory) and stopped at the end; skipped (exit 77) without nats-server.
 * Several bus instances in this process stand for nodes: each has a recording sink, and the
 * test plays each node's loop thread by calling poll(). A spy connection counts and injects
 * messages on the subjects. Every wait is bounded. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nats/nats.h>

#include "chat/errors.h"
#include "chat/sys/bus.h"

#define WAIT_MS 8000
#define HEARTBEAT_MS 100
#define LEASE_MS 600

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- nats-server ------------------------------------------------------------------------- */

static const char *server_bin;
static char server_dir[64];
static pid_t server_pid;
static int server_port;

static int port_open(int port)
{
    char url[64];
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", port);
    natsConnection *nc = NULL;
    natsOptions *o = NULL;
    natsOptions_Create(&o);
    natsOptions_SetURL(o, url);
    natsOptions_SetTimeout(o, 200);
    natsOptions_SetAllowReconnect(o, false);
    natsStatus s = natsConnection_Connect(&nc, o);
    natsOptions_Destroy(o);
    natsConnection_Destroy(nc);
    return s == NATS_OK;
}

/* Start nats-server; port 0 picks an ephemeral one (read back from its ports file). */
static void server_start(int port)
{
    char port_arg[16];
    snprintf(port_arg, sizeof port_arg, "%d", port ? port : -1);
    char log[128];
    snprintf(log, sizeof log, "%s/nats.log", server_dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl(server_bin, server_bin, "-a", "127.0.0.1", "-p", port_arg, "--ports_file_dir",
              server_dir, "-l", log, (char *)NULL);
        _exit(127);
    }
    server_pid = pid;
    long long dl = now_ms() + WAIT_MS;
    if (!port) {
        char path[128];
        snprintf(path, sizeof path, "%s/%s_%d.ports", server_dir, strrchr(server_bin, '/') ?
                 strrchr(server_bin, '/') + 1 : server_bin, (int)pid);
        while (!port && now_ms() < dl) {
            FILE *f = fopen(path, "r");
            char buf[512] = "";
            if (f) {
                size_t n = fread(buf, 1, sizeof buf - 1, f);
                buf[n] = 0;
                fclose(f);
                const char *p = strstr(buf, "127.0.0.1:");
                if (p)
                    port = atoi(p + 10);
            }
            if (!port)
                sleep_ms(10);
        }
        if (!port)
            fail_msg("nats-server wrote no ports file (see %s)", log);
    }
    while (!port_open(port)) {
        if (now_ms() > dl)
            fail_msg("nats-server does not accept connections on %d (see %s)", port, log);
        sleep_ms(20);
    }
    server_port = port;
}

static void server_stop(void)
{
    if (server_pid > 0) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
    }
    server_pid = 0;
}

static int setup(void **state)
{
    snprintf(server_dir, sizeof server_dir, "/tmp/libchat-nats-XXXXXX");
    assert_non_null(mkdtemp(server_dir));
    server_start(0);
    return 0;
}

static int teardown(void **state)
{
    server_stop();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", server_dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static const char *url(void)
{
    static char u[64];
    snprintf(u, sizeof u, "nats://127.0.0.1:%d", server_port);
    return u;
}

/* ---- nodes: a bus and a recording sink ---------------------------------------------------- */

#define MAX_EV 256

typedef struct ev {
    char what; /* 'd' deliver2, 'p' presence */
    char user[65];
    char except[65];
    char frame[64];
    const chat_buf *buf;
    int online;
} ev;

typedef struct node {
    const char *name;
    void *bus;
    ev ev[MAX_EV];
    int n;
    int lost;
    atomic_int wakes;
    uint64_t settled;     /* the last ticket sink->settled reported */
    char nodes[8][72];    /* sink->node events: "+x" or "-x" */
    int n_nodes;
    char msgs[8][128];    /* sink->message: "from:bytes" */
    int n_msgs;
    char reqs[8][128];    /* sink->request: "from:bytes" */
    uint64_t req_tokens[8];
    int n_reqs;
    char replies[8][128]; /* sink->reply: "id:status:bytes" */
    int n_replies;
} node;

static void rec_deliver(const char *user, const char *except, const void *frame, size_t len,
                        void *ud)
{
    fail_msg("deliver() called: the NATS bus copied a frame");
}

static ev *rec_next(node *nd)
{
    if (nd->n >= MAX_EV)
        fail_msg("node %s: more than %d events", nd->name, MAX_EV);
    ev *e = &nd->ev[nd->n++];
    memset(e, 0, sizeof *e);
    return e;
}

static void rec_deliver2(const char *user, const char *except, chat_buf *frame, void *ud)
{
    ev *e = rec_next(ud);
    e->what = 'd';
    snprintf(e->user, sizeof e->user, "%s", user);
    snprintf(e->except, sizeof e->except, "%s", except ? except : "");
    snprintf(e->frame, sizeof e->frame, "%.*s", (int)chat_buf_len(frame),
             (const char *)chat_buf_data(frame));
    e->buf = frame;
}

static void rec_presence(const char *user, int online, void *ud)
{
    ev *e = rec_next(ud);
    e->what = 'p';
    snprintf(e->user, sizeof e->user, "%s", user);
    e->online = online;
}

static void rec_wake(void *ud)
{
    atomic_fetch_add(&((node *)ud)->wakes, 1);
}

static void rec_lost(void *ud)
{
    ((node *)ud)->lost++;
}

static void rec_settled(uint64_t ticket, void *ud)
{
    node *nd = ud;
    assert_true(ticket > nd->settled); /* tickets grow */
    nd->settled = ticket;
}

static void rec_node(const char *id, int up, void *ud)
{
    node *nd = ud;
    if (nd->n_nodes < 8)
        snprintf(nd->nodes[nd->n_nodes], sizeof nd->nodes[0], "%c%s", up ? '+' : '-', id);
    nd->n_nodes++;
}

static void rec_message(const char *from, const void *msg, size_t len, void *ud)
{
    node *nd = ud;
    if (nd->n_msgs < 8)
        snprintf(nd->msgs[nd->n_msgs], sizeof nd->msgs[0], "%s:%.*s", from, (int)len,
                 (const char *)msg);
    nd->n_msgs++;
}

static void rec_request(const char *from, uint64_t token, const void *msg, size_t len, void *ud)
{
    node *nd = ud;
    if (nd->n_reqs < 8) {
        snprintf(nd->reqs[nd->n_reqs], sizeof nd->reqs[0], "%s:%.*s", from, (int)len,
                 (const char *)msg);
        nd->req_tokens[nd->n_reqs] = token;
    }
    nd->n_reqs++;
}

static void rec_reply(uint64_t id, int status, const void *msg, size_t len, void *ud)
{
    node *nd = ud;
    assert_true(status == CHAT_OK || (msg == NULL && len == 0));
    if (nd->n_replies < 8)
        snprintf(nd->replies[nd->n_replies], sizeof nd->replies[0], "%llu:%s:%.*s",
                 (unsigned long long)id, chat_error_name(status), (int)len,
                 msg ? (const char *)msg : "");
    nd->n_replies++;
}

static void node_up(node *nd, const char *name, const char *prefix)
{
    memset(nd, 0, sizeof *nd);
    nd->name = name;
    assert_int_equal(chat_bus_nats_new(&nd->bus, url(), name), CHAT_OK);
    assert_int_equal(chat_bus_nats_set_prefix(nd->bus, prefix), CHAT_OK);
    assert_int_equal(chat_bus_nats_set_timing(nd->bus, HEARTBEAT_MS, LEASE_MS), CHAT_OK);
    chat_bus_sink sink = {
        .deliver = rec_deliver, .presence = rec_presence, .wake = rec_wake, .user_data = nd,
        .deliver2 = rec_deliver2, .lost = rec_lost, .settled = rec_settled, .node = rec_node,
        .message = rec_message, .reply = rec_reply, .request = rec_request};
    assert_int_equal(chat_bus_nats_ops()->attach(nd->bus, &sink), CHAT_OK);
}

static void node_down(node *nd)
{
    if (nd->bus)
        chat_bus_nats_ops()->destroy(nd->bus);
    nd->bus = NULL;
}

static void poll_all(node **nodes, int n)
{
    for (int i = 0; i < n; i++)
        if (nodes[i] && nodes[i]->bus)
            assert_int_equal(chat_bus_nats_ops()->poll(nodes[i]->bus), CHAT_OK);
}

/* Poll the nodes (their loop threads) until cond holds; fails after WAIT_MS. */
#define SETTLE(nodes, n, cond, what)                                                           \
    do {                                                                                       \
        long long dl_ = now_ms() + WAIT_MS;                                                    \
        for (;;) {                                                                             \
            poll_all(nodes, n);                                                                \
            if (cond)                                                                          \
                break;                                                                         \
            if (now_ms() > dl_)                                                                \
                fail_msg("timed out: %s", what);                                               \
            sleep_ms(5);                                                                       \
        }                                                                                      \
    } while (0)

/* Poll the nodes for ms, whatever happens (to show that nothing does). */
static void run_for(node **nodes, int n, int ms)
{
    long long dl = now_ms() + ms;
    while (now_ms() < dl) {
        poll_all(nodes, n);
        sleep_ms(5);
    }
}

static int online(node *nd, const char *user)
{
    return chat_bus_nats_ops()->online(nd->bus, user);
}

static int count(const node *nd, char what, const char *user, int on)
{
    int c = 0;
    for (int i = 0; i < nd->n; i++)
        if (nd->ev[i].what == what && strcmp(nd->ev[i].user, user) == 0 &&
            (what != 'p' || nd->ev[i].online == on))
            c++;
    return c;
}

static const ev *delivery(const node *nd, const char *user)
{
    for (int i = 0; i < nd->n; i++)
        if (nd->ev[i].what == 'd' && strcmp(nd->ev[i].user, user) == 0)
            return &nd->ev[i];
    return NULL;
}

static int publish(node *nd, const char *const *users, int n, const char *eu, const char *ed,
                   const char *text, unsigned flags)
{
    chat_buf *b = NULL;
    assert_int_equal(chat_buf_new(&b, text, strlen(text)), CHAT_OK);
    int rc = chat_bus_nats_ops()->publish2(nd->bus, users, (size_t)n, eu, ed, b, flags);
    chat_buf_unref(b);
    return rc;
}

/* ---- the spy: a plain NATS client on the same server -------------------------------------- */

typedef struct spy {
    natsConnection *nc;
    natsSubscription *sub;
    char kind; /* record only messages of this kind (their first byte); 0: all */
    pthread_mutex_t lock;
    int n;
    char subj[64][96];
    char data[64][512];
} spy;

static void spy_msg(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *ud)
{
    spy *s = ud;
    if (s->kind && (natsMsg_GetDataLength(m) < 1 || natsMsg_GetData(m)[0] != s->kind)) {
        natsMsg_Destroy(m);
        return;
    }
    pthread_mutex_lock(&s->lock);
    if (s->n < 64) {
        snprintf(s->subj[s->n], sizeof s->subj[0], "%s", natsMsg_GetSubject(m));
        snprintf(s->data[s->n], sizeof s->data[0], "%.*s", natsMsg_GetDataLength(m),
                 natsMsg_GetData(m));
    }
    s->n++;
    pthread_mutex_unlock(&s->lock);
    natsMsg_Destroy(m);
}

static void spy_up(spy *s, const char *subject)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    assert_int_equal(natsConnection_ConnectTo(&s->nc, url()), NATS_OK);
    if (subject) {
        assert_int_equal(natsConnection_Subscribe(&s->sub, s->nc, subject, spy_msg, s), NATS_OK);
        assert_int_equal(natsConnection_Flush(s->nc), NATS_OK);
    }
}

static int spy_count(spy *s)
{
    pthread_mutex_lock(&s->lock);
    int n = s->n;
    pthread_mutex_unlock(&s->lock);
    return n;
}

static void spy_send(spy *s, const char *subject, const char *data)
{
    assert_int_equal(natsConnection_PublishString(s->nc, subject, data), NATS_OK);
    assert_int_equal(natsConnection_Flush(s->nc), NATS_OK);
}

static void spy_down(spy *s)
{
    if (s->sub) {
        natsSubscription_Unsubscribe(s->sub);
        natsSubscription_Destroy(s->sub);
    }
    natsConnection_Destroy(s->nc);
    pthread_mutex_destroy(&s->lock);
}

/* ---- tests -------------------------------------------------------------------------------- */

/* A user is online on every node while a device of theirs is on any node. */
static void test_nats_presence_across_nodes(void **state)
{
    node a, b;
    node_up(&a, "a", "p1");
    node_up(&b, "b", "p1");
    node *all[] = {&a, &b};
    const chat_bus_ops *ops = chat_bus_nats_ops();

    assert_int_equal(ops->device_up(a.bus, "alice", "phone"), CHAT_OK);
    assert_int_equal(count(&a, 'p', "alice", 1), 1); /* at once on its own node */
    SETTLE(all, 2, online(&b, "alice"), "b sees alice online");
    assert_int_equal(count(&b, 'p', "alice", 1), 1);

    /* a second device on the other node, and once a knows of it, the first leaves: no
     * change anywhere (had a not known yet, alice would flap offline there for as long, which
     * the engine's presence grace hides) */
    assert_int_equal(ops->device_up(b.bus, "alice", "laptop"), CHAT_OK);
    run_for(all, 2, 3 * HEARTBEAT_MS);
    assert_int_equal(ops->device_down(a.bus, "alice", "phone"), CHAT_OK);
    run_for(all, 2, 3 * HEARTBEAT_MS);
    assert_true(online(&a, "alice"));
    assert_true(online(&b, "alice"));
    assert_int_equal(count(&a, 'p', "alice", 0), 0);
    assert_int_equal(count(&b, 'p', "alice", 0), 0);

    /* the last device leaves: offline everywhere */
    assert_int_equal(ops->device_down(b.bus, "alice", "laptop"), CHAT_OK);
    SETTLE(all, 2, !online(&a, "alice"), "a sees alice offline");
    assert_int_equal(count(&a, 'p', "alice", 0), 1);
    assert_int_equal(count(&b, 'p', "alice", 0), 1);
    assert_false(online(&b, "alice"));

    /* a node that joins later learns who is where (a snapshot) */
    assert_int_equal(ops->device_up(a.bus, "carol", "pc"), CHAT_OK);
    SETTLE(all, 2, online(&b, "carol"), "b sees carol");
    node c;
    node_up(&c, "c", "p1");
    node *three[] = {&a, &b, &c};
    SETTLE(three, 3, online(&c, "carol"), "c learns of carol");
    assert_false(online(&c, "alice"));
    node_down(&c);
    node_down(&a);
    node_down(&b);
}

/* One message per node that holds recipients, whatever their number; the frame reaches every
 * recipient there as one shared buffer. */
static void test_nats_frame_crosses_once_per_node(void **state)
{
    node a, b, c;
    node_up(&a, "a", "p2");
    node_up(&b, "b", "p2");
    node_up(&c, "c", "p2");
    node *all[] = {&a, &b, &c};
    const chat_bus_ops *ops = chat_bus_nats_ops();
    assert_int_equal(ops->device_up(a.bus, "alice", "phone"), CHAT_OK);
    assert_int_equal(ops->device_up(b.bus, "bob", "phone"), CHAT_OK);
    assert_int_equal(ops->device_up(b.bus, "bob", "laptop"), CHAT_OK);
    assert_int_equal(ops->device_up(b.bus, "carol", "pc"), CHAT_OK);
    assert_int_equal(ops->device_up(c.bus, "dave", "pc"), CHAT_OK);
    SETTLE(all, 3, online(&a, "bob") && online(&a, "carol") && online(&a, "dave"),
           "a knows where everyone is");

    spy s;
    spy_up(&s, NULL);
    s.kind = 'F'; /* frames, not the nodes' acknowledgements of each other's announcements */
    assert_int_equal(natsConnection_Subscribe(&s.sub, s.nc, "p2.node.*", spy_msg, &s), NATS_OK);
    assert_int_equal(natsConnection_Flush(s.nc), NATS_OK);
    a.n = b.n = c.n = 0;
    const char *users[] = {"alice", "bob", "carol", "dave", "erin"};
    assert_int_equal(publish(&a, users, 5, "alice", "phone", "{\"hello\":1}", 0), CHAT_OK);
    SETTLE(all, 3, delivery(&b, "carol") && delivery(&c, "dave"), "b and c deliver");
    assert_int_equal(spy_count(&s), 2); /* b and c once each; none for erin (nowhere) */
    int to_b = strcmp(s.subj[0], "p2.node.b") == 0 ? 0 : 1;
    assert_string_equal(s.subj[to_b], "p2.node.b");
    assert_string_equal(s.subj[1 - to_b], "p2.node.c");
    assert_non_null(strstr(s.data[to_b], "\nbob carol\n{\"hello\":1}"));

    /* b: bob and carol from one buffer; c: dave; a: its own user locally, excluded device */
    assert_int_equal(count(&b, 'd', "bob", 0), 1);
    assert_ptr_equal(delivery(&b, "bob")->buf, delivery(&b, "carol")->buf);
    assert_string_equal(delivery(&b, "bob")->frame, "{\"hello\":1}");
    assert_int_equal(count(&b, 'd', "alice", 0), 0);
    assert_int_equal(count(&c, 'd', "dave", 0), 1);
    assert_string_equal(delivery(&a, "alice")->except, "phone");

    /* remote only (a position hint): nothing local, still once per node */
    a.n = 0;
    assert_int_equal(publish(&a, users, 5, NULL, NULL, "hint", CHAT_BUS_REMOTE_ONLY), CHAT_OK);
    SETTLE(all, 3, spy_count(&s) == 4 && count(&c, 'd', "dave", 0) == 2, "the hint arrives");
    assert_int_equal(count(&a, 'd', "alice", 0), 0);
    spy_down(&s);
    node_down(&a);
    node_down(&b);
    node_down(&c);
}

/* A node whose heartbeat stops (its loop is stuck, its process died) is dropped after the
 * lease, with its users; one that stops cleanly says so at once. */
static void test_nats_silent_node_goes_offline_after_lease(void **state)
{
    node a, b;
    node_up(&a, "a", "p3");
    node_up(&b, "b", "p3");
    node *all[] = {&a, &b};
    const chat_bus_ops *ops = chat_bus_nats_ops();
    assert_int_equal(ops->device_up(b.bus, "bob", "phone"), CHAT_OK);
    assert_int_equal(ops->device_up(b.bus, "ben", "phone"), CHAT_OK);
    SETTLE(all, 2, online(&a, "bob") && online(&a, "ben"), "a sees b's users");

    /* b's loop no longer runs: only a is polled */
    long long t0 = now_ms();
    node *only_a[] = {&a};
    SETTLE(only_a, 1, !online(&a, "bob") && !online(&a, "ben"), "b's users dropped");
    assert_true(now_ms() - t0 >= LEASE_MS - 2 * HEARTBEAT_MS); /* not before the lease */
    assert_int_equal(count(&a, 'p', "bob", 0), 1);
    /* b may have acked messages it never published: a's clients are to catch up */
    SETTLE(only_a, 1, a.lost == 1, "a tells its engine that frames may be lost");

    /* b comes back to life: a learns its users again */
    SETTLE(all, 2, online(&a, "bob") && online(&a, "ben"), "b's users back");

    /* a clean stop: its users leave without waiting for the lease */
    node_down(&b);
    SETTLE(only_a, 1, !online(&a, "bob"), "b said bye");
    node_down(&a);
}

/* nats-server restarts: the nodes reconnect, tell their engines that frames may have been
 * lost, and delivery between them resumes; local delivery never stopped. */
static void test_nats_server_restart_delivery_resumes(void **state)
{
    node a, b;
    node_up(&a, "a", "p4");
    node_up(&b, "b", "p4");
    node *all[] = {&a, &b};
    const chat_bus_ops *ops = chat_bus_nats_ops();
    assert_int_equal(ops->device_up(a.bus, "alice", "phone"), CHAT_OK);
    assert_int_equal(ops->device_up(b.bus, "bob", "phone"), CHAT_OK);
    SETTLE(all, 2, online(&a, "bob") && online(&b, "alice"), "both see each other");

    int port = server_port;
    server_stop();
    const char *to[] = {"alice", "bob"};
    a.n = 0;
    publish(&a, to, 2, NULL, NULL, "while down", 0); /* bob's copy may or may not go out */
    assert_non_null(delivery(&a, "alice")); /* local delivery works without NATS */
    poll_all(all, 2);

    server_start(port);
    SETTLE(all, 2, a.lost > 0 && b.lost > 0, "both nodes report the reconnect as a loss");
    SETTLE(all, 2, online(&a, "bob") && online(&b, "alice"), "presence comes back");
    /* The first frames may still meet a subscription the server has not taken back yet
     * (delivery is at most once): publish until one arrives. */
    b.n = 0;
    long long dl = now_ms() + WAIT_MS;
    while (!delivery(&b, "bob") || strcmp(delivery(&b, "bob")->frame, "after") != 0) {
        if (now_ms() > dl)
            fail_msg("delivery does not resume");
        b.n = 0;
        assert_int_equal(publish(&a, to, 2, NULL, NULL, "after", 0), CHAT_OK);
        run_for(all, 2, 50);
    }
    node_down(&a);
    node_down(&b);
}

/* The receiving side of the wire format, driven by hand: a gap in a link's frame numbers is
 * reported as a loss; a gap in a node's announcements asks it for a snapshot, which then
 * replaces what was known of it; garbage is ignored. */
static void test_nats_gaps_are_detected(void **state)
{
    node b;
    node_up(&b, "b", "p5");
    node *all[] = {&b};
    spy s;
    spy_up(&s, "p5.node.x");

    spy_send(&s, "p5.node.b", "F x 00000000000000aa 1 - - 1\nbob\none");
    spy_send(&s, "p5.node.b", "F x 00000000000000aa 2 bob phone 2\nbob ben\ntwo");
    SETTLE(all, 1, count(&b, 'd', "ben", 0) == 1, "frames 1 and 2");
    assert_string_equal(delivery(&b, "ben")->frame, "two");
    assert_int_equal(b.lost, 0);
    const ev *e = &b.ev[b.n - 2]; /* bob's copy of "two" skips bob's phone */
    assert_string_equal(e->user, "bob");
    assert_string_equal(e->except, "phone");
    spy_send(&s, "p5.node.b", "F x 00000000000000aa 4 - - 1\nbob\nfour");
    SETTLE(all, 1, b.lost == 1, "frame 3 reported lost");
    assert_int_equal(count(&b, 'd', "bob", 0), 3);

    /* garbage of every kind changes nothing and crashes nothing */
    const char *junk[] = {"", "F", "F x", "F x zz 1 - - 1\nbob\n", "F x 1 1 - - 1", "Q",
                          "R", "F x 00000000000000aa 5 - - 1\n"};
    for (size_t i = 0; i < sizeof junk / sizeof *junk; i++)
        spy_send(&s, "p5.node.b", junk[i]);
    const char *pjunk[] = {"H", "H 0 1", "A zz 1\n+u", "S 1 1 x 1\nu", "B", "H 1 -1"};
    for (size_t i = 0; i < sizeof pjunk / sizeof *pjunk; i++)
        spy_send(&s, "p5.pres.y", pjunk[i]);

    /* node x announces u1 (b acknowledges it), then u3 two numbers later: b asks x for a
     * snapshot, and acknowledges what it applied */
    spy_send(&s, "p5.pres.x", "A 00000000000000aa 1\n+u1 +u2");
    SETTLE(all, 1, online(&b, "u1") && online(&b, "u2") && spy_count(&s) >= 1,
           "x's first announcement");
    assert_string_equal(s.data[0], "K b 00000000000000aa 1");
    spy_send(&s, "p5.pres.x", "A 00000000000000aa 3\n+u3");
    SETTLE(all, 1, spy_count(&s) >= 2, "b asks x for a snapshot");
    assert_string_equal(s.data[1], "R b");
    assert_false(online(&b, "u3"));
    spy_send(&s, "p5.pres.x", "S 00000000000000aa 3 0 0\nu2");
    spy_send(&s, "p5.pres.x", "S 00000000000000aa 3 1 1\nu3");
    SETTLE(all, 1, online(&b, "u3") && !online(&b, "u1") && spy_count(&s) >= 3,
           "the snapshot replaced x's users");
    assert_string_equal(s.data[2], "K b 00000000000000aa 3");
    assert_true(online(&b, "u2"));
    spy_send(&s, "p5.pres.x", "A 00000000000000aa 4\n-u2");
    SETTLE(all, 1, !online(&b, "u2"), "announcements continue after the snapshot");

    /* x restarts (a new epoch): what the old x had is gone */
    spy_send(&s, "p5.pres.x", "H 00000000000000bb 0");
    SETTLE(all, 1, !online(&b, "u3"), "a new epoch drops the old users");
    spy_down(&s);
    node_down(&b);
}

/* The spy's record i, polling node a until it is there. */
static const char *spy_wait(spy *s, int i, node *a)
{
    node *all[] = {a};
    SETTLE(all, 1, spy_count(s) > i, "the spy hears from a");
    return s->data[i];
}

/* settle(): a device that connects is announced, and the ticket settles once every live node
 * acknowledged the announcement; a node that never answers holds it only for a bounded time,
 * and one that went quiet not at all. Node x is played by hand. */
static void test_nats_settle_waits_for_acknowledgements(void **state)
{
    node a;
    node_up(&a, "a", "p7");
    node *all[] = {&a};
    const chat_bus_ops *ops = chat_bus_nats_ops();
    uint64_t t = 99;
    assert_int_equal(ops->device_up(a.bus, "alice", "phone"), CHAT_OK);
    assert_int_equal(ops->settle(a.bus, &t), CHAT_OK);
    assert_true(t == 0); /* no other node: nothing to wait for */

    spy s;
    spy_up(&s, "p7.pres.a");
    spy_send(&s, "p7.pres.x", "H 00000000000000cc 0");
    SETTLE(all, 1, a.n_nodes == 1, "a hears of x");
    assert_string_equal(a.nodes[0], "+x");
    assert_int_equal(ops->device_up(a.bus, "bob", "phone"), CHAT_OK);
    assert_int_equal(ops->settle(a.bus, &t), CHAT_OK);
    assert_true(t > 0);
    /* the poll that publishes the announcement cannot settle it: x has not answered */
    const char *ann = NULL;
    for (int i = 0; !ann; i++) {
        const char *d = spy_wait(&s, i, &a);
        if (d[0] == 'A' && strstr(d, "+bob"))
            ann = d;
    }
    assert_true(a.settled < t);
    char epoch[17];
    unsigned long long aseq = 0;
    assert_int_equal(sscanf(ann, "A %16s %llu", epoch, &aseq), 2);
    assert_true(aseq == t);
    char ack[96];
    snprintf(ack, sizeof ack, "K x %s %llu", epoch, aseq);
    spy_send(&s, "p7.node.a", ack);
    SETTLE(all, 1, a.settled >= t, "x's acknowledgement settles the ticket");

    /* x stays alive but never answers: the ticket settles all the same */
    assert_int_equal(ops->device_up(a.bus, "carol", "phone"), CHAT_OK);
    spy_send(&s, "p7.pres.x", "H 00000000000000cc 0");
    assert_int_equal(ops->settle(a.bus, &t), CHAT_OK);
    assert_true(t > 0);
    SETTLE(all, 1, a.settled >= t, "a ticket nobody answers settles after the bound");

    /* x goes quiet: it no longer counts, so nothing waits */
    sleep_ms(3 * HEARTBEAT_MS);
    assert_int_equal(ops->device_up(a.bus, "dave", "phone"), CHAT_OK);
    poll_all(all, 1);
    assert_int_equal(ops->settle(a.bus, &t), CHAT_OK);
    assert_true(t == 0);
    spy_down(&s);
    node_down(&a);
}

/* Engines talk through the bus: to one node, or to all; they hear of nodes coming and going. */
static void test_nats_messages_between_engines(void **state)
{
    node a, b;
    node_up(&a, "a", "p8");
    node_up(&b, "b", "p8");
    node *all[] = {&a, &b};
    const chat_bus_ops *ops = chat_bus_nats_ops();
    SETTLE(all, 2, a.n_nodes == 1 && b.n_nodes == 1, "a and b hear of each other");
    assert_string_equal(a.nodes[0], "+b");
    assert_string_equal(b.nodes[0], "+a");
    assert_int_equal(ops->send(a.bus, "b", "to b", 4), CHAT_OK);
    assert_int_equal(ops->send(b.bus, NULL, "{\"to\":\"all\"}", 12), CHAT_OK);
    SETTLE(all, 2, a.n_msgs == 1 && b.n_msgs == 1, "both messages arrive");
    assert_string_equal(b.msgs[0], "a:to b");
    assert_string_equal(a.msgs[0], "b:{\"to\":\"all\"}");
    assert_int_equal(ops->send(a.bus, "nobody", "x", 1), CHAT_ENOTFOUND);
    assert_int_equal(ops->send(a.bus, "b", "", 0), CHAT_EINVAL);
    char big[CHAT_BUS_MSG_MAX + 1];
    memset(big, 'x', sizeof big);
    assert_int_equal(ops->send(a.bus, NULL, big, sizeof big), CHAT_EINVAL);
    node_down(&b); /* says goodbye */
    SETTLE(all, 1, a.n_nodes == 2, "a hears that b left");
    assert_string_equal(a.nodes[1], "-b");
    node_down(&a);
}

/* Requests between engines: answered, unanswered (timed out), to a node that has no
 * subscription any more (NATS answers "no responders" at once), to no node at all. */
static void test_nats_requests_between_engines(void **state)
{
    node a, b;
    node_up(&a, "a", "p10");
    node_up(&b, "b", "p10");
    node *all[] = {&a, &b};
    const chat_bus_ops *ops = chat_bus_nats_ops();
    char self[CHAT_BUS_NODE_MAX + 1] = "";
    assert_int_equal(ops->ctl(a.bus, CHAT_BUS_CTL_NODE_ID, self), CHAT_OK);
    assert_string_equal(self, "a");
    SETTLE(all, 2, a.n_nodes == 1 && b.n_nodes == 1, "a and b hear of each other");
    assert_int_equal(ops->request(a.bus, "b", "ping", 4, 5000, 7), CHAT_OK);
    SETTLE(all, 2, b.n_reqs == 1, "b gets the request");
    assert_string_equal(b.reqs[0], "a:ping");
    assert_int_equal(ops->respond(b.bus, b.req_tokens[0], "pong", 4), CHAT_OK);
    assert_int_equal(ops->respond(b.bus, b.req_tokens[0], "again", 5), CHAT_ENOTFOUND);
    SETTLE(all, 2, a.n_replies == 1, "a gets the answer");
    assert_string_equal(a.replies[0], "7:OK:pong");
    /* not answered: reported once, when its time is up */
    long long t0 = now_ms();
    assert_int_equal(ops->request(a.bus, "b", "slow", 4, 300, 8), CHAT_OK);
    SETTLE(all, 2, a.n_replies == 2, "the unanswered request times out");
    assert_true(now_ms() - t0 >= 300);
    assert_string_equal(a.replies[1], "8:ETIMEDOUT:");
    assert_int_equal(b.n_reqs, 2);
    assert_int_equal(ops->respond(b.bus, b.req_tokens[1], "late", 4), CHAT_OK);
    run_for(all, 2, 100);
    assert_int_equal(a.n_replies, 2); /* a late answer is dropped */
    /* a node a still counts as alive (a heartbeat of a process that is gone) */
    spy ghost;
    spy_up(&ghost, NULL);
    spy_send(&ghost, "p10.pres.ghost", "H 00000000000000ab 0");
    spy_down(&ghost);
    SETTLE(all, 2, a.n_nodes == 2, "a hears of the ghost");
    assert_int_equal(ops->request(a.bus, "ghost", "anyone?", 7, 5000, 9), CHAT_OK);
    SETTLE(all, 2, a.n_replies == 3, "no responders, at once");
    assert_string_equal(a.replies[2], "9:ENOTFOUND:");
    /* misuse */
    assert_int_equal(ops->request(a.bus, "nobody", "x", 1, 1000, 10), CHAT_ENOTFOUND);
    assert_int_equal(ops->request(a.bus, "b", "", 0, 1000, 10), CHAT_EINVAL);
    assert_int_equal(ops->request(a.bus, "b", "x", 1, 0, 10), CHAT_EINVAL);
    assert_int_equal(ops->respond(b.bus, 12345, "x", 1), CHAT_ENOTFOUND);
    node_down(&b);
    node_down(&a);
}

/* Started while nats-server is down: local delivery works, and the node joins once it is up. */
static void test_nats_starts_while_server_is_down(void **state)
{
    int port = server_port;
    server_stop();
    node a;
    node_up(&a, "a", "p6");
    const chat_bus_ops *ops = chat_bus_nats_ops();
    assert_int_equal(ops->device_up(a.bus, "alice", "phone"), CHAT_OK);
    const char *to[] = {"alice"};
    assert_int_equal(publish(&a, to, 1, NULL, NULL, "local", 0), CHAT_OK);
    assert_non_null(delivery(&a, "alice"));
    server_start(port);
    node b;
    node_up(&b, "b", "p6");
    node *all[] = {&a, &b};
    SETTLE(all, 2, online(&b, "alice"), "b learns of alice once a is connected");
    node_down(&a);
    node_down(&b);
}

static void test_nats_rejects_misuse(void **state)
{
    void *bus = NULL;
    assert_int_equal(chat_bus_nats_new(&bus, url(), "bad.name"), CHAT_EINVAL);
    assert_int_equal(chat_bus_nats_new(&bus, url(), ""), CHAT_EINVAL);
    assert_int_equal(chat_bus_nats_new(&bus, "", "a"), CHAT_EINVAL);
    assert_int_equal(chat_bus_nats_new(NULL, url(), "a"), CHAT_EINVAL);
    assert_int_equal(chat_bus_nats_new(&bus, url(), "a"), CHAT_OK);
    assert_int_equal(chat_bus_nats_set_prefix(bus, "a.b"), CHAT_EINVAL);
    assert_int_equal(chat_bus_nats_set_timing(bus, 100, 150), CHAT_EINVAL);
    assert_int_equal(chat_bus_nats_set_timing(bus, 5, 100), CHAT_EINVAL);
    const chat_bus_ops *ops = chat_bus_nats_ops();
    const char *u[] = {"x"};
    chat_buf *buf = NULL;
    assert_int_equal(chat_buf_new(&buf, "x", 1), CHAT_OK);
    assert_int_equal(ops->publish2(bus, u, 1, NULL, NULL, buf, 0), CHAT_EMISUSE);
    node nd;
    memset(&nd, 0, sizeof nd);
    chat_bus_sink no_lost = {
        .deliver = rec_deliver, .presence = rec_presence, .wake = rec_wake, .user_data = &nd,
        .deliver2 = rec_deliver2};
    assert_int_equal(ops->attach(bus, &no_lost), CHAT_EINVAL);
    chat_bus_sink sink = {
        .deliver = rec_deliver, .presence = rec_presence, .wake = rec_wake, .user_data = &nd,
        .deliver2 = rec_deliver2, .lost = rec_lost};
    assert_int_equal(ops->attach(bus, &sink), CHAT_OK);
    assert_int_equal(chat_bus_nats_set_prefix(bus, "other"), CHAT_EMISUSE);
    assert_int_equal(ops->device_up(bus, "has space", "d"), CHAT_EINVAL);
    assert_int_equal(ops->device_down(bus, "nobody", "d"), CHAT_ENOTFOUND);
    assert_int_equal(ops->ctl(bus, CHAT_BUS_CTL_RELIABLE, NULL), CHAT_ENOTSUP);
    chat_buf_unref(buf);
    ops->destroy(bus);
}

int main(void)
{
    server_bin = getenv("NATS_SERVER");
    if (!server_bin || !*server_bin || access(server_bin, X_OK) != 0) {
        printf("SKIP: nats-server not found (set NATS_SERVER, or apt-get install nats-server)\n");
        return 77;
    }
    if (!chat_bus_nats_ops()) {
        printf("SKIP: this libchat was built without NATS\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_nats_presence_across_nodes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nats_frame_crosses_once_per_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nats_silent_node_goes_offline_after_lease, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_nats_server_restart_delivery_resumes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_nats_gaps_are_detected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nats_settle_waits_for_acknowledgements, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_nats_messages_between_engines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nats_requests_between_engines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nats_starts_while_server_is_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nats_rejects_misuse, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
