/* chat-bench: an open-loop load generator for the libchat wire protocol (doc/protocol.md).
 *
 * One thread, one epoll set, many non-blocking WebSocket connections (bench/wsclient.c, no
 * libwebsockets on this side). Sends are scheduled at a fixed offered rate, never in response
 * to answers; each message carries its scheduled CLOCK_MONOTONIC send time in its text, and the
 * receiving connection (in this same process) records delivery latency in a log-bucketed
 * histogram. Every message is checked delivered exactly once: its id (the run's counter, the
 * tail of its cmid) is counted per delivery, and a copy beyond what the scenario expects (one
 * per recipient) is an error. Every run is bounded in time (--max-secs) and in messages
 * (--max-msgs).
 *
 * Scenarios (--mode):
 *   pairs    N connections as N/2 pairs of users; each sends to its partner. --rates steps the
 *            offered rate up; stepping stops once p99 passes --p99-stop-ms or messages are lost.
 *   group    one group of --members M (created with group_create); --group-senders members send
 *            to it at the stepped rates; deliveries/s across all members.
 *   idle     --conns K authenticated idle connections: server RSS delta per connection.
 *   storm    --conns K users each miss --storm-msgs messages while offline, then all reconnect
 *            at once and sync (convs since their cursor, then history after): time until all
 *            have synced.
 *   history  one user pages 50-message history pages (before = random seq) of conversations
 *            1..--history-convs filled by history-fill: request-to-answer latency. With
 *            --history-first F, conversations F..F+C-1 instead (life-bench history fills plain
 *            conversations 1..C and ones with edits and reactions C+1..2C).
 *
 * The server is either spawned (--spawn 'CMD', run as `taskset -c SERVER_CPU CMD`; it must
 * print "... listening on ADDR:PORT") or given (--port and --server-pid). Tokens: --key-file
 * (the server's key file; minted in-process with chat_server_issue_token) or --relay-tokens (the
 * token is the user name, for bench/relay and the other relays).
 *
 * --mqtt runs pairs, group and idle against an MQTT broker instead (MQTT 3.1.1 over WebSocket,
 * QoS 1; see the MQTT section below): the same messages, as the payload of PUBLISH packets.
 */
#define _GNU_SOURCE
#include "mqtt.h"
#include "wsclient.h"

#include <chat/chat.h>

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct peer {
    wsconn ws;          /* first: a wsconn* is a peer* */
    int authed, failed;
    int partner;        /* pairs: index of the partner */
    long long cursor;   /* from auth_ok */
    /* storm */
    int64_t t_start, t_done;
    int sync_pending, sync_done, synced_msgs, convs_more;
    int inflight;       /* storm fill: unacked sends */
    int to_send;        /* storm fill: messages still to send */
    int next_target;
    /* --mqtt: bytes of a packet not complete yet, and the next packet id */
    unsigned char *mq;
    size_t mq_len, mq_cap;
    unsigned pid;
} peer;

static struct opts {
    const char *mode, *host, *spawn, *key_file, *label, *data_dir;
    int port, server_pid, server_cpu, cpu, relay_tokens;
    int more_pids[7], n_more_pids; /* --server-pid A,B,...: the servers after the first */
    int port2, split_pairs;        /* --port2: the second node; --split pairs|peers */
    int aux_pids[64], n_aux_pids;  /* --aux-pids: processes the servers use (a database) */
    int aux_group[64], n_aux_groups; /* each pid's group: groups are apart by '/' */
    int conns, members, group_senders, src_addrs, text_bytes, max_connecting;
    double step_secs, drain_secs, p99_stop_ms, max_secs, settle_secs;
    long long max_msgs;
    int rates[64], n_rates;
    int storm_msgs, storm_senders, storm_window;
    int history_convs, history_requests, history_limit, history_first;
    int expect_all, random_cmids, resend_every, mqtt;
} o = {
    .mode = "pairs", .host = "127.0.0.1", .label = "server", .port = 7700, .server_cpu = 0,
    .cpu = 1, .conns = 1000, .members = 1024, .group_senders = 1, .src_addrs = 250,
    .text_bytes = 40, .max_connecting = 512, .step_secs = 3, .drain_secs = 2,
    .p99_stop_ms = 100, .max_secs = 300, .settle_secs = 2, .max_msgs = 20000000,
    .storm_msgs = 100, .storm_senders = 100, .storm_window = 64, .history_convs = 10,
    .history_requests = 5000, .history_limit = 50, .history_first = 1,
};

static peer *peers;
static int n_peers;
static chat_server *token_srv;
static pid_t child_pid;
static int64_t t_begin, deadline;
static volatile sig_atomic_t interrupted;

/* run counters */
static uint64_t n_authed, n_failed, n_errors, n_acks, n_other, deliveries, deliveries_in_window;
static uint64_t sent_total;
static hist lat;
static int64_t step_end_ns;
static long long group_conv = -1;
static int n_err_printed;

/* Exactly once: deliveries seen per message id (ids are 1..sent_total), against the copies a
 * message should make (1 in pairs, one per other member in a group). */
static uint16_t *seen;
static uint64_t seen_cap, n_dups, n_strays;
static int copies = 1;

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "chat-bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    if (child_pid > 0)
        kill(child_pid, SIGTERM);
    exit(2);
}

static int past_deadline(void) { return interrupted || mono_ns() > deadline; }

/* ---------------- server process ---------------- */

/* utime + stime in seconds from a /proc stat line, or -1. */
static double stat_cpu_s(const char *path)
{
    char buf[1024];
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

typedef struct proc_sample {
    long rss_kb, hwm_kb;
    double cpu_s;
    int64_t t;
} proc_sample;

static void sample_pid(int pid, proc_sample *s)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (f) {
        while (fgets(buf, sizeof buf, f)) {
            if (!strncmp(buf, "VmRSS:", 6))
                s->rss_kb += atol(buf + 6);
            else if (!strncmp(buf, "VmHWM:", 6))
                s->hwm_kb += atol(buf + 6);
        }
        fclose(f);
    }
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    double cpu = stat_cpu_s(path);
    if (cpu >= 0)
        s->cpu_s += cpu;
}

/* CPU seconds of each group of --aux-pids processes (those gone meanwhile count no more). */
static void aux_cpu_s(double *sum)
{
    for (int g = 0; g < 8; g++)
        sum[g] = 0;
    for (int i = 0; i < o.n_aux_pids; i++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/stat", o.aux_pids[i]);
        double cpu = stat_cpu_s(path);
        if (cpu > 0)
            sum[o.aux_group[i]] += cpu;
    }
}

/* The server's memory and CPU; with several (--server-pid A,B: the nodes of a cluster), their
 * sums. */
static proc_sample sample_server(void)
{
    proc_sample s = {0, 0, 0, mono_ns()};
    if (o.server_pid <= 0)
        return s;
    sample_pid(o.server_pid, &s);
    for (int i = 0; i < o.n_more_pids; i++)
        sample_pid(o.more_pids[i], &s);
    return s;
}

/* One line: the server's CPU time per thread, busiest first, by the threads' names (libchat
 * names its loop, writer, checkpoint... threads), so a run shows where the server's core went. */
static void print_threads(int pid)
{
    char dir[64], path[384];
    snprintf(dir, sizeof dir, "/proc/%d/task", pid);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct {
        char name[32];
        double cpu;
    } t[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s/stat", dir, e->d_name);
        double cpu = stat_cpu_s(path);
        if (cpu < 0)
            continue;
        snprintf(path, sizeof path, "%s/%s/comm", dir, e->d_name);
        FILE *f = fopen(path, "r");
        t[n].name[0] = '\0';
        if (f) {
            if (fgets(t[n].name, sizeof t[n].name, f))
                t[n].name[strcspn(t[n].name, "\n")] = '\0';
            fclose(f);
        }
        t[n++].cpu = cpu;
    }
    closedir(d);
    for (int i = 1; i < n; i++) /* insertion sort, busiest first */
        for (int j = i; j > 0 && t[j].cpu > t[j - 1].cpu; j--) {
            __typeof__(t[0]) x = t[j];
            t[j] = t[j - 1];
            t[j - 1] = x;
        }
    printf("# server threads, CPU s:");
    if (o.n_more_pids)
        printf(" (pid %d)", pid);
    for (int i = 0; i < n; i++)
        printf(" %s %.2f%s", t[i].name, t[i].cpu, i + 1 < n ? "," : "");
    printf("\n");
}

static void print_server_threads(void)
{
    print_threads(o.server_pid);
    for (int i = 0; i < o.n_more_pids; i++)
        print_threads(o.more_pids[i]);
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void spawn_server(void)
{
    int pfd[2];
    if (pipe(pfd))
        die("pipe: %s", strerror(errno));
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "exec taskset -c %d %s", o.server_cpu, o.spawn);
    child_pid = fork();
    if (child_pid < 0)
        die("fork: %s", strerror(errno));
    if (child_pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    o.server_pid = child_pid;
    char line[1024];
    size_t len = 0;
    int64_t until = mono_ns() + 20000000000LL;
    while (mono_ns() < until) {
        struct pollfd pf = {pfd[0], POLLIN, 0};
        if (poll(&pf, 1, 200) <= 0)
            continue;
        ssize_t n = read(pfd[0], line + len, sizeof line - 1 - len);
        if (n <= 0)
            die("server exited before listening: %s", o.spawn);
        len += (size_t)n;
        line[len] = '\0';
        char *l = strstr(line, "listening on ");
        char *nl = l ? strchr(l, '\n') : NULL;
        if (l && nl) {
            *nl = '\0';
            char *colon = strrchr(l, ':');
            o.port = colon ? atoi(colon + 1) : 0;
            printf("# server: %s (pid %d, pinned to cpu %d), port %d\n", o.spawn, child_pid,
                   o.server_cpu, o.port);
            return; /* the pipe stays open: the server may print more */
        }
        if (len > sizeof line - 2)
            len = 0;
    }
    die("server did not print 'listening on' within 20 s");
}

static void stop_server(void)
{
    if (child_pid <= 0)
        return;
    kill(child_pid, SIGTERM);
    for (int i = 0; i < 100; i++) {
        if (waitpid(child_pid, NULL, WNOHANG) == child_pid) {
            child_pid = 0;
            return;
        }
        usleep(50000);
    }
    kill(child_pid, SIGKILL);
    waitpid(child_pid, NULL, 0);
    child_pid = 0;
}

/* ---------------- tokens and connections ---------------- */

/* MQTT: a connection's keep-alive, in seconds (0: none; the bench's connections may idle). */
#define MQTT_KEEPALIVE_S 0

static int auth_frame(const char *user, char *out, size_t cap)
{
    if (o.mqtt)
        return (int)mqtt_connect((unsigned char *)out, user, MQTT_KEEPALIVE_S);
    if (o.relay_tokens)
        return snprintf(out, cap, "{\"type\":\"auth\",\"id\":\"a\",\"v\":1,\"token\":\"%s\"}", user);
    char *tok = NULL;
    if (chat_server_issue_token(token_srv, user, "d", 3600 * 1000, &tok) != CHAT_OK)
        die("cannot issue a token for %s", user);
    int n = snprintf(out, cap, "{\"type\":\"auth\",\"id\":\"a\",\"v\":1,\"token\":\"%s\"}", tok);
    chat_string_free(tok);
    return n;
}

static char *user_of(int idx, char *buf, size_t cap);

/* Open peers [first, first+count) as users user_of(i), at most max_connecting in flight,
 * until all are authenticated or failed, or timeout. Returns the number authenticated. */
static int open_peers(int first, int count, double timeout_s)
{
    int next = first, end = first + count;
    uint64_t a0 = n_authed, f0 = n_failed;
    int64_t until = mono_ns() + (int64_t)(timeout_s * 1e9);
    char auth[1024], user[64];
    while (!past_deadline() && mono_ns() < until) {
        uint64_t done = (n_authed - a0) + (n_failed - f0);
        if (done >= (uint64_t)count)
            break;
        while (next < end && (uint64_t)(next - first) - done < (uint64_t)o.max_connecting) {
            peer *p = &peers[next];
            p->authed = p->failed = 0;
            /* --port2: pairs on alternate nodes (--split pairs: a message stays on its node),
             * or partners on different nodes (--split peers: every message crosses). */
            if (o.port2)
                p->ws.port = ((o.split_pairs ? next >> 1 : next) & 1) ? o.port2 : o.port;
            user_of(next, user, sizeof user);
            int n = auth_frame(user, auth, sizeof auth);
            if (ws_connect(&p->ws, auth, (size_t)n)) {
                p->failed = 1;
                n_failed++;
                done++;
            }
            next++;
        }
        ws_poll(1);
    }
    return (int)(n_authed - a0);
}

/* ---------------- frame handling ---------------- */

static long long json_int_after(const char *s, const char *key)
{
    const char *p = strstr(s, key);
    return p ? atoll(p + strlen(key)) : -1;
}

/* The message id in a delivered frame: the last 11 hex digits of its cmid (bench_cmid), 0
 * when there is none. */
static uint64_t delivered_id(const char *text, size_t len)
{
    const char *c = memmem(text, len, "\"cmid\":\"", 8);
    if (!c)
        return 0;
    c += 8;
    const char *e = memchr(c, '"', len - (size_t)(c - text));
    if (!e || e - c < 11)
        return 0;
    uint64_t id = 0;
    for (const char *p = e - 11; p < e; p++) {
        int v = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;
        if (v < 0)
            return 0;
        id = id << 4 | (uint64_t)v;
    }
    return id;
}

/* Room to count deliveries of message id (ids only grow). */
static void seen_reserve(uint64_t id)
{
    if (id < seen_cap)
        return;
    uint64_t n = seen_cap ? seen_cap : 65536;
    while (n <= id)
        n *= 2;
    uint16_t *p = realloc(seen, n * sizeof *seen);
    if (!p)
        die("out of memory for %llu message ids", (unsigned long long)n);
    memset(p + seen_cap, 0, (n - seen_cap) * sizeof *p);
    seen = p;
    seen_cap = n;
}

static void record_delivery(const char *text, size_t len)
{
    const char *t = memmem(text, len, "\"text\":\"t=", 10);
    if (!t)
        return; /* an event message */
    uint64_t id = delivered_id(text, len);
    if (id == 0 || id > sent_total) {
        n_strays++; /* not a message this run sent */
        return;
    }
    if (seen[id] >= copies) {
        n_dups++;
        return;
    }
    seen[id]++;
    int64_t sent = atoll(t + 10), now = mono_ns();
    deliveries++;
    if (now <= step_end_ns)
        deliveries_in_window++;
    if (sent > 0 && sent <= now)
        hist_add(&lat, (uint64_t)(now - sent));
}

static int storm_phase; /* storm: 0 first connect, 1 fill, 2 reconnect and sync */
static void storm_on_text(peer *p, const char *type, char *text, size_t len);
static void history_on_text(peer *p, const char *type, char *text, size_t len);

/* ---------------- MQTT 3.1.1 over WebSocket (--mqtt) ---------------- */

/* Each user's connection (client id: the user) subscribes at QoS 1 to its own topic u/USER, or
 * every member to the group's topic g/1, and is ready once the SUBACK grants QoS 1. A message
 * is a QoS 1 PUBLISH to the recipient's topic whose payload is the very send frame chat-bench
 * sends chatd (so the message bytes are the same). The broker's PUBACK is the ack; the PUBLISH
 * it delivers is the delivery, answered with a PUBACK as a QoS 1 client must. MQTT 3.1.1 has
 * no "no local": a group's sender receives its own message too, one copy more than chatd
 * makes. */

static void mqtt_topic(int idx, char *buf, size_t cap)
{
    char user[64];
    if (!strcmp(o.mode, "group"))
        snprintf(buf, cap, "g/1");
    else
        snprintf(buf, cap, "u/%s", user_of(idx, user, sizeof user));
}

static void mqtt_refused(peer *p, const char *what, int code)
{
    n_errors++;
    if (n_err_printed++ < 5)
        fprintf(stderr, "chat-bench: connection %d: %s refused (code %d)\n", p->ws.idx, what,
                code);
    ws_close(&p->ws, 1000);
}

static void mqtt_packet(peer *p, const mqtt_pkt *k)
{
    unsigned char out[256];
    switch (k->type) {
    case MQTT_CONNACK: {
        if (k->body_len < 2 || k->body[1] != 0) {
            mqtt_refused(p, "CONNECT", k->body_len < 2 ? -1 : k->body[1]);
            return;
        }
        char topic[80];
        mqtt_topic(p->ws.idx, topic, sizeof topic);
        ws_send_text(&p->ws, (char *)out, mqtt_subscribe(out, 1, topic, 1));
        return;
    }
    case MQTT_SUBACK:
        if (k->body_len < 1 || k->body[0] != 1) {
            mqtt_refused(p, "SUBSCRIBE at QoS 1", k->body_len < 1 ? -1 : k->body[0]);
            return;
        }
        p->ws.state = WS_AUTHED;
        p->authed = 1;
        n_authed++;
        return;
    case MQTT_PUBLISH:
        record_delivery((const char *)k->body, k->body_len);
        if (k->flags >> 1 & 3)
            ws_send_text(&p->ws, (char *)out, mqtt_puback(out, k->pid));
        return;
    case MQTT_PUBACK:
        n_acks++;
        return;
    default:
        n_other++;
    }
}

static void mqtt_keep(peer *p, const unsigned char *b, size_t n)
{
    if (p->mq_len + n > p->mq_cap) {
        size_t cap = p->mq_cap ? p->mq_cap : 4096;
        while (cap < p->mq_len + n)
            cap *= 2;
        unsigned char *nb = realloc(p->mq, cap);
        if (!nb)
            die("out of memory");
        p->mq = nb;
        p->mq_cap = cap;
    }
    memcpy(p->mq + p->mq_len, b, n);
    p->mq_len += n;
}

/* WebSocket messages carry a byte stream: a packet may span messages, a message hold several. */
static void mqtt_on_bytes(peer *p, const unsigned char *b, size_t n)
{
    if (p->mq_len) {
        mqtt_keep(p, b, n);
        b = p->mq;
        n = p->mq_len;
    }
    size_t off = 0;
    long l = 0;
    mqtt_pkt k;
    while (p->ws.state != WS_CLOSED && off < n && (l = mqtt_parse(b + off, n - off, &k)) > 0) {
        mqtt_packet(p, &k);
        off += (size_t)l;
    }
    if (p->ws.state == WS_CLOSED) {
        p->mq_len = 0;
        return;
    }
    if (l < 0) {
        mqtt_refused(p, "a malformed packet", -1);
        p->mq_len = 0;
        return;
    }
    if (b == p->mq) {
        memmove(p->mq, p->mq + off, n - off);
        p->mq_len = n - off;
    } else if (off < n) {
        mqtt_keep(p, b + off, n - off);
    }
}

static void on_text(wsconn *c, char *text, size_t len)
{
    peer *p = (peer *)c;
    if (o.mqtt) {
        mqtt_on_bytes(p, (unsigned char *)text, len);
        return;
    }
    if (len < 10 || strncmp(text, "{\"type\":\"", 9) != 0) {
        n_other++;
        return;
    }
    const char *t = text + 9;
    if (!strncmp(t, "msg\"", 4) || !strncmp(t, "send\"", 5)) {
        record_delivery(text, len);
    } else if (!strncmp(t, "ack\"", 4)) {
        n_acks++;
        if (p->inflight > 0)
            p->inflight--;
    } else if (!strncmp(t, "auth_ok\"", 8)) {
        c->state = WS_AUTHED;
        p->authed = 1;
        if (strcmp(o.mode, "storm") || storm_phase != 2) { /* storm: keep the old cursor */
            p->cursor = json_int_after(text, "\"cursor\":");
            if (p->cursor < 0)
                p->cursor = 0;
        }
        n_authed++;
        storm_on_text(p, t, text, len);
    } else if (!strncmp(t, "error\"", 6)) {
        n_errors++;
        if (n_err_printed++ < 5)
            fprintf(stderr, "chat-bench: error frame: %.*s\n", (int)(len > 300 ? 300 : len), text);
    } else if (!strncmp(t, "conv\"", 5)) {
        group_conv = json_int_after(text, "\"conv\":{\"conv\":");
    } else if (!strncmp(t, "convs\"", 6)) {
        storm_on_text(p, t, text, len);
    } else if (!strncmp(t, "history\"", 8)) {
        if (!strcmp(o.mode, "history"))
            history_on_text(p, t, text, len);
        else
            storm_on_text(p, t, text, len);
    } else {
        n_other++;
    }
}

static void on_close(wsconn *c, int code, int expected)
{
    peer *p = (peer *)c;
    p->mq_len = 0;
    if (!p->authed && !p->failed) {
        p->failed = 1;
        n_failed++;
    }
    if (!expected && n_err_printed++ < 5)
        fprintf(stderr, "chat-bench: connection %d closed by the server (code %d)\n", c->idx, code);
}

/* ---------------- pairs and group: stepped open-loop rates ---------------- */

static char *user_of(int idx, char *buf, size_t cap)
{
    const char *m = o.mode;
    if (!strcmp(m, "pairs"))
        snprintf(buf, cap, "u%d", idx);
    else if (!strcmp(m, "group"))
        snprintf(buf, cap, "g%d", idx);
    else if (!strcmp(m, "idle"))
        snprintf(buf, cap, "i%d", idx);
    else if (!strcmp(m, "storm"))
        snprintf(buf, cap, idx < o.conns ? "t%d" : "s%d", idx < o.conns ? idx : idx - o.conns);
    else
        snprintf(buf, cap, "h0");
    return buf;
}

static char pad[4096];

/* A message id shaped like the client core's (doc/protocol.md, send): the wall time in ms,
 * then a unique part, here the run's counter. --random-cmids: a hash of the counter instead,
 * ids in no order (what a client with random ids sends). */
static const char *bench_cmid(char out[32], unsigned long long id)
{
    if (o.random_cmids) {
        unsigned long long h = id * 0x9E3779B97F4A7C15ull;
        snprintf(out, 32, "%016llx%011llx", h ^ (h >> 29), id);
        return out;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    snprintf(out, 32, "%011llx%016llx", (unsigned long long)ms, id);
    return out;
}

static int send_one(int sender, int64_t stamp)
{
    char cmid[32];
    peer *p = &peers[sender];
    if (p->ws.state != WS_AUTHED)
        return -1;
    char buf[8192];
    int n;
    unsigned long long id = ++sent_total;
    seen_reserve(id);
    if (!strcmp(o.mode, "group"))
        n = snprintf(buf, sizeof buf,
                     "{\"type\":\"send\",\"id\":\"%llu\",\"conv\":%lld,\"cmid\":\"%s\","
                     "\"text\":\"t=%lld %s\"}",
                     id, group_conv, bench_cmid(cmid, id), (long long)stamp, pad);
    else
        n = snprintf(buf, sizeof buf,
                     "{\"type\":\"send\",\"id\":\"%llu\",\"to\":\"u%d\",\"cmid\":\"%s\","
                     "\"text\":\"t=%lld %s\"}",
                     id, p->partner, bench_cmid(cmid, id), (long long)stamp, pad);
    const char *out = buf;
    size_t len = (size_t)n;
    if (o.mqtt) {
        static unsigned char pub[sizeof buf + 128];
        char topic[80];
        mqtt_topic(p->partner, topic, sizeof topic);
        p->pid = p->pid % 65535 + 1; /* 1..65535: far more than a connection has unacked */
        len = mqtt_publish(pub, sizeof pub, topic, 1, p->pid, buf, len);
        out = (const char *)pub;
    }
    /* --resend-every: the same message again, as a client that lost the ack retries it. */
    if (o.resend_every > 0 && id % (unsigned long long)o.resend_every == 0)
        ws_send_text(&p->ws, out, len);
    return ws_send_text(&p->ws, out, len);
}

typedef struct step_result {
    int rate;
    double sent_rate, deliv_rate, gen_cpu, srv_cpu;
    uint64_t sent, expected, delivered, p50, p99, p999, max;
    long rss_kb;
    uint64_t errors, closes, lost;
} step_result;

static void print_step_header(void)
{
    printf("%-14s %6s %9s %9s %11s %8s %8s %8s %8s %7s %6s %6s %7s %7s %8s\n", "label",
           "conns", "offered/s", "sent/s", "delivered/s", "p50ms", "p99ms", "p99.9ms", "maxms",
           "lost", "errs", "closes", "srvCPU%", "genCPU%", "srvRSSMB");
}

static step_result run_step(int rate, int n_senders, int per_msg)
{
    step_result r = {0};
    r.rate = rate;
    hist_reset(&lat);
    uint64_t d0 = deliveries, e0 = n_errors + n_dups + n_strays, c0 = ws_stats.closes;
    uint64_t s0 = sent_total;
    deliveries_in_window = 0;
    proc_sample a = sample_server();
    double g0 = self_cpu_s(), x0[8], x1[8];
    aux_cpu_s(x0);
    int64_t t0 = mono_ns();
    int64_t dur = (int64_t)(o.step_secs * 1e9);
    step_end_ns = t0 + dur;
    int64_t planned = (int64_t)((double)rate * o.step_secs);
    int64_t done = 0, interval = (int64_t)(1e9 / rate);
    static int rr;
    uint64_t failed_sends = 0;
    while (!past_deadline()) {
        int64_t now = mono_ns();
        if (now >= step_end_ns || done >= planned)
            break;
        int64_t due = (now - t0) / interval + 1;
        if (due > planned)
            due = planned;
        int burst = 0;
        while (done < due && burst < 20000) {
            int64_t stamp = t0 + done * interval; /* scheduled time: no coordinated omission */
            int s = rr++ % n_senders;
            if (send_one(s, stamp))
                failed_sends++;
            done++;
            burst++;
        }
        /* Sleep until the next send is due (at most 1 ms), not a whole millisecond. */
        int64_t next = t0 + done * interval - mono_ns();
        ws_poll_ns(next < 0 ? 0 : next < 1000000 ? next : 1000000);
    }
    while (mono_ns() < step_end_ns && !past_deadline())
        ws_poll(1);
    r.sent = sent_total - s0 - failed_sends;
    proc_sample b = sample_server();
    double g1 = self_cpu_s();
    aux_cpu_s(x1);
    r.expected = r.sent * (uint64_t)per_msg;
    /* drain: no new sends; count late deliveries as delivered (latency tells they were late) */
    int64_t drain_until = mono_ns() + (int64_t)(o.drain_secs * 1e9);
    while (deliveries - d0 < r.expected && mono_ns() < drain_until && !past_deadline())
        ws_poll(5);
    double secs = (double)(b.t - t0) / 1e9;
    r.sent_rate = (double)r.sent / secs;
    r.delivered = deliveries - d0;
    r.deliv_rate = (double)deliveries_in_window / secs;
    r.srv_cpu = 100.0 * (b.cpu_s - a.cpu_s) / secs;
    r.gen_cpu = 100.0 * (g1 - g0) / secs;
    r.rss_kb = b.rss_kb;
    r.p50 = hist_q(&lat, 0.5);
    r.p99 = hist_q(&lat, 0.99);
    r.p999 = hist_q(&lat, 0.999);
    r.max = lat.max;
    r.errors = n_errors + n_dups + n_strays - e0 + failed_sends;
    r.closes = ws_stats.closes - c0;
    r.lost = r.expected > r.delivered ? r.expected - r.delivered : 0;
    printf("%-14s %6d %9d %9.0f %11.0f %8.2f %8.2f %8.2f %8.2f %7llu %6llu %6llu %7.0f %7.0f "
           "%8.1f\n",
           o.label, n_peers, rate, r.sent_rate, r.deliv_rate, r.p50 / 1e6, r.p99 / 1e6,
           r.p999 / 1e6, r.max / 1e6, (unsigned long long)r.lost, (unsigned long long)r.errors,
           (unsigned long long)r.closes, r.srv_cpu, r.gen_cpu, r.rss_kb / 1024.0);
    if (o.n_aux_pids) {
        printf("# aux CPU %% (the --aux-pids groups):");
        for (int g = 0; g < o.n_aux_groups; g++)
            printf(" %.1f", 100.0 * (x1[g] - x0[g]) / secs);
        printf("\n");
    }
    fflush(stdout);
    return r;
}

static int run_stepped(void)
{
    int n_senders, per_msg;
    if (!strcmp(o.mode, "pairs")) {
        n_peers = o.conns & ~1;
        for (int i = 0; i < n_peers; i++)
            peers[i].partner = i ^ 1;
        n_senders = n_peers;
        per_msg = 1;
    } else {
        n_peers = o.members;
        n_senders = o.group_senders < 1 ? 1 : o.group_senders > n_peers ? n_peers : o.group_senders;
        per_msg = o.mqtt ? n_peers : n_peers - 1; /* MQTT: the sender's own copy too */
    }
    copies = per_msg;
    int64_t t_open = mono_ns();
    int ok = open_peers(0, n_peers, 120);
    printf("# %d/%d connections authenticated in %.2f s\n", ok, n_peers,
           (double)(mono_ns() - t_open) / 1e9);
    if (ok != n_peers)
        die("only %d of %d connections authenticated (errors %llu)", ok, n_peers,
            (unsigned long long)n_errors);
    if (!strcmp(o.mode, "group") && o.mqtt) {
        group_conv = 1; /* the topic g/1, subscribed to by every member */
        printf("# group topic g/1 with %d subscribed members; %d sender(s)\n", n_peers, n_senders);
    } else if (!strcmp(o.mode, "group")) {
        /* g0 creates the group with every other member; the answer carries its id. */
        size_t cap = (size_t)n_peers * 16 + 256;
        char *buf = malloc(cap);
        size_t n = (size_t)snprintf(buf, cap,
                                    "{\"type\":\"group_create\",\"id\":\"g\",\"title\":\"bench\","
                                    "\"members\":[");
        for (int i = 1; i < n_peers; i++)
            n += (size_t)snprintf(buf + n, cap - n, "%s\"g%d\"", i > 1 ? "," : "", i);
        n += (size_t)snprintf(buf + n, cap - n, "]}");
        ws_send_text(&peers[0].ws, buf, n);
        free(buf);
        int64_t until = mono_ns() + 10000000000LL;
        while (group_conv < 0 && mono_ns() < until && !past_deadline())
            ws_poll(5);
        if (group_conv < 0)
            die("group_create got no answer");
        printf("# group %lld created with %d members; %d sender(s)\n", group_conv, n_peers,
               n_senders);
    }
    /* Warm-up, not reported: one message per sender (creates the 1:1 conversations). */
    {
        uint64_t d0 = deliveries;
        int warm = !strcmp(o.mode, "pairs") ? n_senders : 10;
        for (int i = 0; i < warm; i++) {
            send_one(i % n_senders, mono_ns());
            if (i % 200 == 199)
                ws_poll(1);
        }
        int64_t until = mono_ns() + 20000000000LL;
        while (deliveries - d0 < (uint64_t)warm * (uint64_t)per_msg && mono_ns() < until &&
               !past_deadline())
            ws_poll(5);
        int64_t settle = mono_ns() + 500000000LL;
        while (mono_ns() < settle)
            ws_poll(5);
        printf("# warm-up: %llu/%llu delivered\n", (unsigned long long)(deliveries - d0),
               (unsigned long long)warm * (unsigned long long)per_msg);
    }
    print_step_header();
    step_result best = {0};
    int have_best = 0, bad = 0;
    double best10 = 0; /* the same at the 10 ms bound (noise-limited on these VMs) */
    uint64_t total_lost = 0, total_err = 0, total_closes = 0;
    for (int i = 0; i < o.n_rates && !past_deadline(); i++) {
        if ((long long)sent_total + (long long)(o.rates[i] * o.step_secs) > o.max_msgs) {
            printf("# stopping: --max-msgs %lld reached\n", o.max_msgs);
            break;
        }
        step_result r = run_step(o.rates[i], n_senders, per_msg);
        total_lost += r.lost;
        total_err += r.errors;
        total_closes += r.closes;
        int over = r.p99 / 1e6 > o.p99_stop_ms || r.lost || r.errors || r.closes;
        if (!over && r.p99 / 1e6 <= 10 && r.deliv_rate > best10)
            best10 = r.deliv_rate;
        if (!over && (!have_best || r.deliv_rate > best.deliv_rate)) {
            best = r;
            have_best = 1;
        }
        if (over) {
            bad = 1;
            printf("# stopping: %s\n", r.p99 / 1e6 > o.p99_stop_ms ? "p99 over the bound"
                                                                  : "lost, errors or closes");
            break;
        }
    }
    if (have_best)
        printf("RESULT label=%s mode=%s conns=%d best_offered=%d best_delivered=%.0f p99_ms=%.2f "
               "srv_cpu=%.0f bound_ms=%.0f best10_delivered=%.0f text=%d\n",
               o.label, o.mode, n_peers, best.rate, best.deliv_rate, best.p99 / 1e6, best.srv_cpu,
               o.p99_stop_ms, best10, o.text_bytes);
    else
        printf("RESULT label=%s mode=%s conns=%d best_offered=0 best_delivered=0 p99_ms=0 "
               "srv_cpu=0 bound_ms=%.0f text=%d\n",
               o.label, o.mode, n_peers, o.p99_stop_ms, o.text_bytes);
    (void)bad;
    printf("# exactly once: %llu duplicate deliveries, %llu deliveries of messages this run did "
           "not send\n",
           (unsigned long long)n_dups, (unsigned long long)n_strays);
    if (o.expect_all &&
        (total_lost || total_err || total_closes || !have_best || n_dups || n_strays)) {
        printf("FAIL: lost %llu, errors %llu, closes %llu\n", (unsigned long long)total_lost,
               (unsigned long long)total_err, (unsigned long long)total_closes);
        return 1;
    }
    return 0;
}

/* ---------------- idle ---------------- */

/* Kernel slab memory (KiB): struct sock, file, epoll items... of both ends of every socket. */
static long slab_kib(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "Slab:", 5))
            v = atol(line + 5);
    if (f)
        fclose(f);
    return v;
}

static int run_idle(void)
{
    n_peers = o.conns;
    int64_t s = mono_ns() + (int64_t)(o.settle_secs * 1e9);
    while (mono_ns() < s)
        ws_poll(10);
    proc_sample a = sample_server();
    long k0 = slab_kib();
    int64_t t0 = mono_ns();
    int ok = open_peers(0, n_peers, 240);
    double open_s = (double)(mono_ns() - t0) / 1e9;
    s = mono_ns() + (int64_t)(o.settle_secs * 1e9);
    while (mono_ns() < s && !past_deadline())
        ws_poll(10);
    proc_sample b = sample_server();
    long k1 = slab_kib();
    int still = 0;
    for (int i = 0; i < n_peers; i++)
        still += peers[i].ws.state == WS_AUTHED;
    double per = ok ? (double)(b.rss_kb - a.rss_kb) / ok : 0;
    printf("%-14s idle: %d/%d authenticated in %.2f s (%d still open); server RSS %ld -> %ld KiB "
           "(HWM %ld): %.2f KiB/conn user space; kernel slab %+ld KiB for %d socket pairs, both "
           "ends (%.2f KiB per pair, machine-wide, noisy); server CPU %.2f s; errors %llu, closes %llu\n",
           o.label, ok, n_peers, open_s, still, a.rss_kb, b.rss_kb, b.hwm_kb, per, k1 - k0, ok,
           ok ? (double)(k1 - k0) / ok : 0, b.cpu_s - a.cpu_s,
           (unsigned long long)n_errors, (unsigned long long)ws_stats.closes);
    printf("RESULT label=%s mode=idle conns=%d authed=%d kib_per_conn=%.2f open_s=%.2f\n", o.label,
           n_peers, ok, per, open_s);
    if (o.expect_all && (ok != n_peers || n_errors || ws_stats.closes))
        return 1;
    return 0;
}

/* ---------------- storm ---------------- */

static int n_synced, n_sync_mismatch;
static hist sync_lat;

static void storm_send_convs(peer *p, long long since)
{
    char buf[128];
    int n = snprintf(buf, sizeof buf, "{\"type\":\"convs\",\"id\":\"c\",\"since\":%lld,\"limit\":200}",
                     since);
    ws_send_text(&p->ws, buf, (size_t)n);
}

static void storm_send_history(peer *p, long long conv, long long after)
{
    char buf[160];
    int n = snprintf(buf, sizeof buf,
                     "{\"type\":\"history\",\"id\":\"h\",\"conv\":%lld,\"after\":%lld,\"limit\":200}",
                     conv, after);
    ws_send_text(&p->ws, buf, (size_t)n);
    p->sync_pending++;
}

static void storm_check_done(peer *p)
{
    if (p->sync_done || p->sync_pending || p->convs_more)
        return;
    p->sync_done = 1;
    p->t_done = mono_ns();
    n_synced++;
    hist_add(&sync_lat, (uint64_t)(p->t_done - p->t_start));
    if (p->synced_msgs != o.storm_msgs)
        n_sync_mismatch++;
}

static void storm_on_text(peer *p, const char *type, char *text, size_t len)
{
    if (strcmp(o.mode, "storm") || storm_phase != 2 || p->ws.idx >= o.conns)
        return;
    if (!strncmp(type, "auth_ok\"", 8)) {
        storm_send_convs(p, p->cursor);
        p->convs_more = 1;
    } else if (!strncmp(type, "convs\"", 6)) {
        /* each conversation object starts {"conv":N,"kind": */
        const char *s = text;
        while ((s = strstr(s, "{\"conv\":")) != NULL) {
            long long conv = atoll(s + 8);
            storm_send_history(p, conv, 0);
            s += 8;
        }
        long long cur = json_int_after(text, "\"cursor\":");
        if (strstr(text, "\"more\":true")) {
            storm_send_convs(p, cur);
        } else {
            p->convs_more = 0;
            storm_check_done(p);
        }
    } else if (!strncmp(type, "history\"", 8)) {
        int msgs = 0;
        const char *s = text, *last = NULL;
        while ((s = memmem(s, len - (size_t)(s - text), "{\"type\":\"msg\"", 13)) != NULL) {
            if (memmem(s, len - (size_t)(s - text), "\"kind\":\"text\"", 13))
                msgs++;
            last = s;
            s += 13;
        }
        p->synced_msgs += msgs;
        p->sync_pending--;
        if (strstr(text, "\"more\":true") && last) {
            long long conv = json_int_after(text, "\"conv\":");
            long long seq = json_int_after(last, "\"seq\":");
            storm_send_history(p, conv, seq);
        }
        storm_check_done(p);
    }
}

static int run_storm(void)
{
    int k = o.conns, s = o.storm_senders < 1 ? 1 : o.storm_senders;
    if (s > k)
        s = k;
    n_peers = k + s;
    /* phase 0: every target connects once (learning its cursor), then leaves */
    int64_t t = mono_ns();
    int ok = open_peers(0, k, 120);
    printf("# storm: %d/%d users connected once in %.2f s (cursor learned), now going offline\n",
           ok, k, (double)(mono_ns() - t) / 1e9);
    for (int i = 0; i < k; i++)
        ws_close(&peers[i].ws, 1000);
    int64_t settle = mono_ns() + 1000000000LL;
    while (mono_ns() < settle)
        ws_poll(10);
    /* phase 1: senders fill, windowed (the fill rate is not the figure) */
    storm_phase = 1;
    ok = open_peers(k, s, 60);
    if (ok != s)
        die("storm: only %d/%d senders connected", ok, s);
    long long total = (long long)k * o.storm_msgs;
    for (int j = 0; j < s; j++) {
        peer *p = &peers[k + j];
        int targets = k / s + (j < k % s);
        p->to_send = targets * o.storm_msgs;
        p->next_target = j;
    }
    uint64_t a0 = n_acks;
    t = mono_ns();
    long long sent = 0;
    while (!past_deadline() && (long long)(n_acks - a0) < total) {
        for (int j = 0; j < s; j++) {
            peer *p = &peers[k + j];
            while (p->to_send > 0 && p->inflight < o.storm_window && p->ws.state == WS_AUTHED) {
                /* round-robin over this sender's targets: target j, j+s, j+2s, ... */
                char buf[sizeof pad + 256], cmid[32];
                unsigned long long id = ++sent_total;
                seen_reserve(id);
                int n = snprintf(buf, sizeof buf,
                                 "{\"type\":\"send\",\"id\":\"%llu\",\"to\":\"t%d\",\"cmid\":"
                                 "\"%s\",\"text\":\"t=0 offline message %s\"}",
                                 id, p->next_target, bench_cmid(cmid, id), pad);
                ws_send_text(&p->ws, buf, (size_t)n);
                p->next_target += s;
                if (p->next_target >= k)
                    p->next_target = j;
                p->to_send--;
                p->inflight++;
                sent++;
            }
        }
        ws_poll(1);
        if (n_errors > 100)
            die("storm fill: too many errors");
    }
    double fill_s = (double)(mono_ns() - t) / 1e9;
    printf("# storm: %lld messages to %d offline users stored (acked %llu) in %.2f s "
           "(%.0f/s, window %d per sender, %d senders)\n",
           sent, k, (unsigned long long)(n_acks - a0), fill_s, (double)(n_acks - a0) / fill_s,
           o.storm_window, s);
    for (int j = 0; j < s; j++)
        ws_close(&peers[k + j].ws, 1000);
    settle = mono_ns() + 1000000000LL;
    while (mono_ns() < settle)
        ws_poll(10);
    /* phase 2: all reconnect at once and sync */
    storm_phase = 2;
    hist_reset(&sync_lat);
    proc_sample a = sample_server();
    int64_t t0 = mono_ns();
    for (int i = 0; i < k; i++) {
        peers[i].t_start = t0;
        peers[i].sync_done = peers[i].sync_pending = peers[i].synced_msgs = 0;
    }
    int saved = o.max_connecting;
    o.max_connecting = k; /* all at once */
    ok = open_peers(0, k, 60);
    o.max_connecting = saved;
    int64_t until = mono_ns() + 60000000000LL;
    while (n_synced < ok && mono_ns() < until && !past_deadline())
        ws_poll(2);
    int64_t last = 0;
    for (int i = 0; i < k; i++)
        if (peers[i].sync_done && peers[i].t_done > last)
            last = peers[i].t_done;
    proc_sample b = sample_server();
    double all_s = last ? (double)(last - t0) / 1e9 : -1;
    printf("%-14s storm: %d users x %d missed messages; %d reconnected, %d synced, %d with a wrong "
           "count; all synced in %.2f s (per user p50 %.0f ms, p99 %.0f ms, max %.0f ms); server "
           "CPU %.2f s, RSS %ld KiB; errors %llu, closes %llu\n",
           o.label, k, o.storm_msgs, ok, n_synced, n_sync_mismatch, all_s,
           hist_q(&sync_lat, 0.5) / 1e6, hist_q(&sync_lat, 0.99) / 1e6, sync_lat.max / 1e6,
           b.cpu_s - a.cpu_s, b.rss_kb, (unsigned long long)n_errors,
           (unsigned long long)ws_stats.closes);
    printf("RESULT label=%s mode=storm users=%d msgs=%d synced=%d mismatch=%d all_synced_s=%.2f "
           "fill_per_s=%.0f\n",
           o.label, k, o.storm_msgs, n_synced, n_sync_mismatch, all_s,
           (double)(n_acks - a0) / fill_s);
    if (o.expect_all && (n_synced != k || n_sync_mismatch || n_errors))
        return 1;
    return 0;
}

/* ---------------- history ---------------- */

static int64_t hist_sent_at;
static int hist_waiting;
static long long hist_head;

static void history_on_text(peer *p, const char *type, char *text, size_t len)
{
    (void)p;
    (void)type;
    if (hist_head == 0) {
        const char *s = text, *last = NULL;
        while ((s = strstr(s, "\"seq\":")) != NULL)
            last = s++;
        hist_head = last ? atoll(last + 6) : 1;
    } else {
        hist_add(&lat, (uint64_t)(mono_ns() - hist_sent_at));
        deliveries += (uint64_t)(len > 0);
    }
    hist_waiting = 0;
}

static int run_history(void)
{
    n_peers = 1;
    if (open_peers(0, 1, 20) != 1)
        die("history: cannot authenticate as h0");
    char buf[256];
    int n = snprintf(buf, sizeof buf,
                     "{\"type\":\"history\",\"id\":\"0\",\"conv\":%d,\"limit\":1}",
                     o.history_first);
    hist_waiting = 1;
    ws_send_text(&peers[0].ws, buf, (size_t)n);
    while (hist_waiting && !past_deadline())
        ws_poll(5);
    if (hist_head < 2)
        die("history: conversation %d is empty (fill the store with history-fill first)",
            o.history_first);
    hist_reset(&lat);
    uint64_t seed = 12345;
    int64_t t0 = mono_ns();
    int done = 0;
    for (; done < o.history_requests && !past_deadline(); done++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        long long conv = o.history_first + (long long)((seed >> 33) % (uint64_t)o.history_convs);
        long long before = 2 + (long long)((seed >> 11) % (uint64_t)(hist_head - 1));
        n = snprintf(buf, sizeof buf,
                     "{\"type\":\"history\",\"id\":\"%d\",\"conv\":%lld,\"before\":%lld,"
                     "\"limit\":%d}",
                     done, conv, before, o.history_limit);
        hist_waiting = 1;
        hist_sent_at = mono_ns();
        ws_send_text(&peers[0].ws, buf, (size_t)n);
        while (hist_waiting && !past_deadline())
            ws_poll(5);
    }
    double secs = (double)(mono_ns() - t0) / 1e9;
    printf("%-14s history over the wire: %d pages of %d (conv %d..%d, head ~%lld), %.0f pages/s; "
           "p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms; errors %llu\n",
           o.label, done, o.history_limit, o.history_first, o.history_first + o.history_convs - 1,
           hist_head, done / secs,
           hist_q(&lat, 0.5) / 1e6, hist_q(&lat, 0.99) / 1e6, hist_q(&lat, 0.999) / 1e6,
           lat.max / 1e6, (unsigned long long)n_errors);
    printf("RESULT label=%s mode=history first_conv=%d pages=%d p50_ms=%.3f p99_ms=%.3f\n",
           o.label, o.history_first, done,
           hist_q(&lat, 0.5) / 1e6, hist_q(&lat, 0.99) / 1e6);
    return n_errors ? 1 : 0;
}

/* ---------------- main ---------------- */

static const char usage[] =
    "usage: chat-bench --mode pairs|group|idle|storm|history [options]\n"
    "server:  --spawn 'CMD' (run pinned to --server-cpu, default 0) | --port N --server-pid PID\n"
    "         --host 127.0.0.1  --cpu N (generator cpu, default 1)  --label NAME\n"
    "cluster: --port2 N (a second node; pairs mode)  --split pairs (each pair on one node,\n"
    "         alternating) | peers (partners on different nodes: every message crosses)\n"
    "         --server-pid A,B (the nodes' CPU and memory are summed)\n"
    "         --aux-pids P,Q/R (each step also prints the CPU of each group of these\n"
    "         processes, groups apart by '/': a database's, a bus's)\n"
    "tokens:  --key-file FILE (the server's token keys) | --relay-tokens (token = user name)\n"
    "         | --mqtt (an MQTT 3.1.1 broker over WebSocket, QoS 1: pairs, group, idle)\n"
    "load:    --conns N (pairs, idle, storm users; default 1000)  --members M (group, 1024)\n"
    "         --group-senders K (1)  --rates R1,R2,... (offered msgs/s per step)\n"
    "         --step-secs S (3)  --drain-secs S (2)  --p99-stop-ms MS (100)  --text-bytes N (40)\n"
    "         --random-cmids (message ids in no order, instead of time first as the client's)\n"
    "         --resend-every N (send every Nth message twice, as a client retrying it: a server\n"
    "         that dedupes by cmid delivers it once, any other twice, which counts as errors)\n"
    "         --storm-msgs N (100)  --storm-senders S (100)  --storm-window W (64)\n"
    "         --history-convs C (10)  --history-requests N (5000)  --history-limit L (50)\n"
    "         --history-first F (1: the first conversation)\n"
    "bounds:  --max-secs S (300)  --max-msgs N (20000000)  --max-connecting N (512)\n"
    "         --src-addrs N (source addresses 127.0.0.2.., 250)  --settle-secs S (2)\n"
    "checks:  --expect-all (exit 1 on any error, close or lost message)\n";

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (!strcmp(a, name) && v && ++i)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            return 0;
        } else if (ARG("--mode")) o.mode = v;
        else if (ARG("--host")) o.host = v;
        else if (ARG("--port")) o.port = atoi(v);
        else if (ARG("--spawn")) o.spawn = v;
        else if (ARG("--server-pid")) {
            char *end;
            o.server_pid = (int)strtol(v, &end, 10);
            while (*end == ',' && o.n_more_pids < 7)
                o.more_pids[o.n_more_pids++] = (int)strtol(end + 1, &end, 10);
        } else if (ARG("--aux-pids")) {
            o.n_aux_groups = 1;
            for (char *p = (char *)v; *p && o.n_aux_pids < 64;) {
                char *end;
                long pid = strtol(p, &end, 10);
                if (end == p || pid <= 0)
                    die("--aux-pids takes pids apart by ',' in groups apart by '/'");
                o.aux_group[o.n_aux_pids] = o.n_aux_groups - 1;
                o.aux_pids[o.n_aux_pids++] = (int)pid;
                if (*end == '/' && o.n_aux_groups < 8)
                    o.n_aux_groups++;
                p = *end ? end + 1 : end;
            }
        } else if (ARG("--port2")) o.port2 = atoi(v);
        else if (ARG("--split")) {
            if (strcmp(v, "pairs") && strcmp(v, "peers"))
                die("--split is pairs or peers");
            o.split_pairs = !strcmp(v, "pairs");
        }
        else if (ARG("--server-cpu")) o.server_cpu = atoi(v);
        else if (ARG("--cpu")) o.cpu = atoi(v);
        else if (ARG("--label")) o.label = v;
        else if (ARG("--key-file")) o.key_file = v;
        else if (!strcmp(a, "--relay-tokens")) o.relay_tokens = 1;
        else if (!strcmp(a, "--mqtt")) o.mqtt = 1;
        else if (!strcmp(a, "--expect-all")) o.expect_all = 1;
        else if (!strcmp(a, "--random-cmids")) o.random_cmids = 1;
        else if (ARG("--resend-every")) o.resend_every = atoi(v);
        else if (ARG("--conns")) o.conns = atoi(v);
        else if (ARG("--members")) o.members = atoi(v);
        else if (ARG("--group-senders")) o.group_senders = atoi(v);
        else if (ARG("--step-secs")) o.step_secs = atof(v);
        else if (ARG("--drain-secs")) o.drain_secs = atof(v);
        else if (ARG("--p99-stop-ms")) o.p99_stop_ms = atof(v);
        else if (ARG("--text-bytes")) o.text_bytes = atoi(v);
        else if (ARG("--storm-msgs")) o.storm_msgs = atoi(v);
        else if (ARG("--storm-senders")) o.storm_senders = atoi(v);
        else if (ARG("--storm-window")) o.storm_window = atoi(v);
        else if (ARG("--history-convs")) o.history_convs = atoi(v);
        else if (ARG("--history-requests")) o.history_requests = atoi(v);
        else if (ARG("--history-limit")) o.history_limit = atoi(v);
        else if (ARG("--history-first")) o.history_first = atoi(v);
        else if (ARG("--max-secs")) o.max_secs = atof(v);
        else if (ARG("--max-msgs")) o.max_msgs = atoll(v);
        else if (ARG("--max-connecting")) o.max_connecting = atoi(v);
        else if (ARG("--src-addrs")) o.src_addrs = atoi(v);
        else if (ARG("--settle-secs")) o.settle_secs = atof(v);
        else if (ARG("--rates")) {
            o.n_rates = 0;
            for (char *s = (char *)v; *s && o.n_rates < 64;) {
                o.rates[o.n_rates++] = atoi(s);
                char *c = strchr(s, ',');
                if (!c)
                    break;
                s = c + 1;
            }
        } else {
            fprintf(stderr, "chat-bench: unknown or incomplete option %s\n%s", a, usage);
            return 2;
        }
#undef ARG
    }
    if (!o.n_rates) {
        static const int def[] = {2000, 5000, 10000, 20000, 30000, 40000, 50000, 60000, 80000};
        o.n_rates = (int)(sizeof def / sizeof def[0]);
        memcpy(o.rates, def, sizeof def);
    }
    for (int i = 0; i < o.n_rates; i++)
        if (o.rates[i] <= 0)
            die("rates must be positive");
    if (!o.key_file && !o.relay_tokens && !o.mqtt)
        die("give --key-file FILE (chatd's token keys), --relay-tokens or --mqtt");
    if (o.mqtt && strcmp(o.mode, "pairs") && strcmp(o.mode, "group") && strcmp(o.mode, "idle"))
        die("--mqtt runs the pairs, group and idle scenarios only");
    if (o.mqtt) {
        ws_subprotocol = "mqtt";
        ws_binary = 1;
    }
    if (o.text_bytes < 0 || o.text_bytes > 4000)
        die("--text-bytes must be 0..4000");
    memset(pad, 'x', (size_t)o.text_bytes);

    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    t_begin = mono_ns();
    deadline = t_begin + (int64_t)(o.max_secs * 1e9);

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(o.cpu, &set);
    int pinned = sched_setaffinity(0, sizeof set, &set) == 0;

    if (o.key_file) {
        chat_server_config *cfg;
        if (chat_server_config_new(&cfg) || chat_server_config_load_key_file(cfg, o.key_file, 0) ||
            chat_server_new(&token_srv, cfg))
            die("cannot load token keys from %s", o.key_file);
        chat_server_config_free(cfg);
    }
    if (o.spawn)
        spawn_server();

    int cap = o.conns;
    if (!strcmp(o.mode, "group"))
        cap = o.members;
    else if (!strcmp(o.mode, "storm"))
        cap = o.conns + (o.storm_senders > 0 ? o.storm_senders : 1);
    else if (!strcmp(o.mode, "history"))
        cap = 1;
    if ((rlim_t)cap + 64 > rl.rlim_cur)
        die("%d connections need more than RLIMIT_NOFILE %llu allows", cap,
            (unsigned long long)rl.rlim_cur);
    peers = calloc((size_t)cap, sizeof *peers);
    for (int i = 0; i < cap; i++)
        peers[i].ws.idx = i;
    if (ws_init(o.host, o.port, o.src_addrs, on_text, on_close))
        die("bad --host %s", o.host);
    printf("# chat-bench mode=%s label=%s server=%s:%d pid=%d server-cpu=%d generator-cpu=%d%s "
           "nofile=%llu src-addrs=%d text=%d bytes step=%.1fs\n",
           o.mode, o.label, o.host, o.port, o.server_pid, o.server_cpu, o.cpu,
           pinned ? " (pinned)" : " (NOT pinned)", (unsigned long long)rl.rlim_cur, o.src_addrs,
           o.text_bytes, o.step_secs);
    fflush(stdout);

    int rc;
    if (!strcmp(o.mode, "pairs") || !strcmp(o.mode, "group"))
        rc = run_stepped();
    else if (!strcmp(o.mode, "idle"))
        rc = run_idle();
    else if (!strcmp(o.mode, "storm"))
        rc = run_storm();
    else if (!strcmp(o.mode, "history"))
        rc = run_history();
    else
        die("unknown mode %s", o.mode);
    if (past_deadline())
        printf("# note: stopped by --max-secs %.0f or a signal\n", o.max_secs);
    proc_sample end = sample_server();
    if (o.server_pid > 0)
        printf("# server at end: RSS %ld KiB, HWM %ld KiB, CPU %.2f s; generator CPU %.2f s; "
               "frames in %llu out %llu, payload bytes in %llu out %llu\n",
               end.rss_kb, end.hwm_kb, end.cpu_s, self_cpu_s(),
               (unsigned long long)ws_stats.frames_in, (unsigned long long)ws_stats.frames_out,
               (unsigned long long)ws_stats.bytes_in, (unsigned long long)ws_stats.bytes_out);
    if (o.server_pid > 0)
        print_server_threads();
    for (int i = 0; i < cap; i++) {
        if (peers[i].ws.state == WS_FREE || peers[i].ws.state == WS_CLOSED)
            continue;
        if (o.mqtt) {
            unsigned char d[2];
            ws_send_text(&peers[i].ws, (char *)d, mqtt_disconnect(d));
        }
        ws_close(&peers[i].ws, 1000);
    }
    for (int i = 0; i < cap; i++)
        free(peers[i].mq);
    stop_server();
    chat_server_free(token_srv);
    free(peers);
    return rc;
}
