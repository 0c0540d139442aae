/* Statistics: the snapshot chat_server_stats() takes, its getters, and the Prometheus text
 * format. Counters are read with relaxed loads from any thread; what needs a walk over the
 * connections is gathered on the loop thread in one hand-over (stats.h). */
#include "server/internal.h"

#include "core/alloc.h"
#include "core/error.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const uint64_t chat__lat_bounds_us[CHAT__LAT_BOUNDS] = {
    50,     100,    200,    500,     1000,    2000,    5000,    10000,   20000,
    50000,  100000, 200000, 500000,  1000000, 2000000, 5000000, 10000000,
};

const unsigned char chat__lat_first[64] = {
    0,  0,  0,  0,  0,  0,  1,  2,  3,  4,  5,  6,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
    15, 16, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17,
    17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17,
};

/* How long a stats call waits for the loop thread before giving up. */
#define STATS_LOOP_TIMEOUT_MS 5000

#define ENTRIES_MAX 96

typedef struct entry {
    const char *name, *help, *label, *label_value; /* static strings */
    int kind;
    uint64_t value;                /* counter, gauge; a histogram's count */
    /* Histograms: cumulative counts, the bounds, and the unit of bounds and sum. */
    uint64_t cum[CHAT__HIST_SLOTS];
    size_t n_buckets;              /* finite bounds + the +Inf bucket */
    const uint64_t *bounds_us;     /* NULL: powers of two (batch sizes) */
    uint64_t sum;
    double scale;                  /* raw value -> reported unit */
} entry;

struct chat_stats {
    size_t n;
    entry e[ENTRIES_MAX];
};

/* ---- gathering ---- */

enum { ST_UNAUTH, ST_HANDSHAKE, ST_AUTHED, ST_CLOSING, ST_N };

typedef struct gauges {
    uint64_t state[ST_N];
    uint64_t q_frames, q_frames_max, q_bytes, q_bytes_max;
    uint64_t backlog, users;
} gauges;

static void gather(chat_server *srv, void *arg)
{
    gauges *g = arg;
    for (chat__conn *c = srv->conns; c; c = c->next) {
        int st = c->close_code ? ST_CLOSING
                 : c->authed   ? ST_AUTHED
                 : c->auth_pending ? ST_HANDSHAKE
                                   : ST_UNAUTH;
        g->state[st]++;
        g->q_frames += c->q_count;
        g->q_bytes += c->q_bytes;
        if (c->q_count > g->q_frames_max)
            g->q_frames_max = c->q_count;
        if (c->q_bytes > g->q_bytes_max)
            g->q_bytes_max = c->q_bytes;
    }
    g->backlog = srv->writer_backlog;
    g->users = srv->users.used;
}

static entry *add(chat_stats *st, int kind, const char *name, const char *help, uint64_t v)
{
    entry *e = &st->e[st->n++];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->name = name;
    e->help = help;
    e->label = e->label_value = "";
    e->value = v;
    return e;
}

static void add_labeled(chat_stats *st, int kind, const char *name, const char *help,
                        const char *label, const char *label_value, uint64_t v)
{
    entry *e = add(st, kind, name, help, v);
    e->label = label;
    e->label_value = label_value;
}

static void add_hist(chat_stats *st, const char *name, const char *help, const chat__hist *h,
                     const uint64_t *bounds_us, size_t n_bounds, double scale)
{
    entry *e = add(st, CHAT_STAT_HISTOGRAM, name, help, 0);
    uint64_t cum = 0;
    for (size_t i = 0; i <= n_bounds; i++) {
        cum += chat__counter_read(&h->n[i]);
        e->cum[i] = cum;
    }
    e->n_buckets = n_bounds + 1;
    e->bounds_us = bounds_us;
    e->value = cum;
    e->sum = chat__counter_read(&h->sum);
    e->scale = scale;
}

/* Observations in h (the ack histogram's count is the acks counter: one source). */
static uint64_t hist_count(const chat__hist *h)
{
    uint64_t n = 0;
    for (size_t i = 0; i < CHAT__HIST_SLOTS; i++)
        n += chat__counter_read(&h->n[i]);
    return n;
}

static const char *const close_labels[CHAT__CLOSE_KINDS] = {
    [CHAT__CLOSE_1000] = "1000", [CHAT__CLOSE_1001] = "1001",   [CHAT__CLOSE_1002] = "1002",
    [CHAT__CLOSE_1008] = "1008", [CHAT__CLOSE_1009] = "1009",   [CHAT__CLOSE_1011] = "1011",
    [CHAT__CLOSE_1013] = "1013", [CHAT__CLOSE_OTHER] = "other", [CHAT__CLOSE_PEER] = "peer",
    [CHAT__CLOSE_DROPPED] = "dropped",
};

static void fill(chat_stats *st, chat_server *srv, const gauges *g)
{
    const chat__loop_stats *l = &srv->stats;
    const chat__writer_stats *w = &srv->writer.stats;
#define C(name, help, v) add(st, CHAT_STAT_COUNTER, name, help, chat__counter_read(&(v)))
#define G(name, help, v) add(st, CHAT_STAT_GAUGE, name, help, (uint64_t)(v))
    static const char *const states[ST_N] = {"unauthenticated", "handshake", "authenticated",
                                             "closing"};
    for (int i = 0; i < ST_N; i++)
        add_labeled(st, CHAT_STAT_GAUGE, "chat_connections",
                    "WebSocket connections by state: unauthenticated (no auth frame yet), "
                    "handshake (a login being checked), authenticated, closing (close decided)",
                    "state", states[i], g->state[i]);
    G("chat_connections_limit", "Most connections the server accepts (the connections limit)",
      chat__limit(srv, CHAT_LIMIT_CONNECTIONS));
    C("chat_connections_opened_total", "WebSocket connections opened", l->opened);
    C("chat_connections_refused_total",
      "WebSocket upgrades refused (connection limit, draining, wrong path, Origin or a body)",
      l->refused);
    for (int i = 0; i < CHAT__CLOSE_KINDS; i++)
        add_labeled(st, CHAT_STAT_COUNTER, "chat_connections_closed_total",
                    "Connections ended: by the close code the server sent, peer (the client "
                    "closed or went away first) or dropped (dropped by the server: silent, or "
                    "its close frame could not be written in time)",
                    "code", close_labels[i], chat__counter_read(&l->closed[i]));
    G("chat_users_online", "Users with an authenticated connection on this server", g->users);
    C("chat_frames_received_total", "WebSocket messages received from clients", l->frames_in);
    C("chat_received_bytes_total", "Bytes of the WebSocket messages received", l->bytes_in);
    C("chat_frames_sent_total", "Frames written to client connections", l->frames_out);
    C("chat_sent_bytes_total", "Bytes of the frames written (payloads, without framing)",
      l->bytes_out);
    C("chat_messages_stored_total",
      "Messages committed to the store (sends and membership events)", w->stored);
    C("chat_messages_delivered_total",
      "Message frames handed to a recipient's connection on this server", l->delivered);
    G("chat_acks_total", "Send acknowledgements written to senders", hist_count(&l->ack))
        ->kind = CHAT_STAT_COUNTER;
    for (int i = 1; i < CHAT__ERR_CODES; i++)
        add_labeled(st, CHAT_STAT_COUNTER, "chat_errors_total",
                    "Error frames sent to clients, by code", "code", chat_error_name(-i),
                    chat__counter_read(&l->errors[i]));
    G("chat_outbound_queue_frames", "Frames waiting in outbound queues, all connections",
      g->q_frames);
    G("chat_outbound_queue_frames_max", "Frames in the longest outbound queue", g->q_frames_max);
    G("chat_outbound_queue_bytes", "Bytes waiting in outbound queues, all connections",
      g->q_bytes);
    G("chat_outbound_queue_bytes_max", "Bytes in the fullest outbound queue", g->q_bytes_max);
    G("chat_writer_queue",
      "Client requests handed to the writer and not answered yet (the writer_queue limit "
      "applies)", g->backlog);
    G("chat_writer_queue_limit", "The writer_queue limit: sends beyond it are refused (EAGAIN)",
      chat__limit(srv, CHAT_LIMIT_WRITER_QUEUE));
    pthread_mutex_lock(&srv->writer.lock);
    size_t pending = srv->writer.n_queued;
    pthread_mutex_unlock(&srv->writer.lock);
    G("chat_writer_pending", "Jobs queued for the writer, not yet in a transaction", pending);
    C("chat_store_transactions_total", "Writer transactions (group commits)", w->batches);
    C("chat_store_requests_total", "Jobs the writer ran inside transactions", w->jobs);
    C("chat_store_errors_total",
      "Writer transactions that failed and were rolled back (their requests failed with EIO)",
      w->failed);
    C("chat_bus_errors_total", "Bus calls that failed", l->bus_errors);
    C("chat_push_errors_total", "Push notifications the notifier failed to take",
      l->push_errors);
    static const char *const ways[3] = {"out", "in", "fallback"};
    const chat__counter *aff[3] = {&l->affinity_out, &l->affinity_in, &l->affinity_fallback};
    for (int i = 0; i < 3; i++)
        add_labeled(st, CHAT_STAT_COUNTER, "chat_affinity_sends_total",
                    "Sends under write affinity: out, answered by the conversation's owner "
                    "for a client here (written or refused there); in, answered here for "
                    "another node's client; fallback, for another node but written here (no "
                    "answer, or not taken there)",
                    "way", ways[i], chat__counter_read(aff[i]));
    G("chat_draining", "1 once the server drains (chat_server_drain): not ready, closing",
      atomic_load(&srv->draining));
    add_hist(st, "chat_store_commit_seconds",
             "Time of one writer transaction, from begin to the commit's return", &w->commit_us,
             chat__lat_bounds_us, CHAT__LAT_BOUNDS, 1e-6);
    add_hist(st, "chat_store_batch_size", "Jobs per writer transaction", &w->batch, NULL,
             CHAT__BATCH_BOUNDS, 1.0);
    add_hist(st, "chat_ack_latency_seconds",
             "Server time of a send: from its frame's arrival to its ack written to the socket",
             &l->ack, chat__lat_bounds_us, CHAT__LAT_BOUNDS, 1e-6);
    add_hist(st, "chat_fanout_latency_seconds",
             "Server time of a delivery: from the message's commit to its frame written to a "
             "recipient's socket", &l->fanout, chat__lat_bounds_us, CHAT__LAT_BOUNDS, 1e-6);
#undef C
#undef G
}

static void gauges_free(void *p)
{
    chat__free(p);
}

int chat_server_stats(chat_stats **out, chat_server *srv)
{
    if (!out || !srv)
        return chat__error_set(CHAT_EINVAL, 0, "out and srv are required");
    gauges *g = chat__calloc(1, sizeof *g);
    chat_stats *st = chat__calloc(1, sizeof *st);
    if (!g || !st) {
        chat__free(g);
        chat__free(st);
        return CHAT_ENOMEM;
    }
    int rc = chat__loop_call(srv, gather, g, gauges_free, STATS_LOOP_TIMEOUT_MS);
    if (rc == CHAT_ETIMEDOUT) {
        chat__free(st); /* g belongs to the request now */
        return chat__error_set(rc, 0, "the loop thread did not answer within %d ms",
                               STATS_LOOP_TIMEOUT_MS);
    }
    if (rc != CHAT_OK && rc != CHAT_ECLOSED) { /* not running: no connections to count */
        chat__free(g);
        chat__free(st);
        return rc;
    }
    fill(st, srv, g);
    chat__free(g);
    *out = st;
    return CHAT_OK;
}

void chat_stats_free(chat_stats *st)
{
    chat__free(st);
}

size_t chat_stats_count(const chat_stats *st)
{
    return st ? st->n : 0;
}

static const entry *at(const chat_stats *st, size_t i)
{
    return st && i < st->n ? &st->e[i] : NULL;
}

const char *chat_stats_name(const chat_stats *st, size_t i)
{
    const entry *e = at(st, i);
    return e ? e->name : NULL;
}

const char *chat_stats_help(const chat_stats *st, size_t i)
{
    const entry *e = at(st, i);
    return e ? e->help : NULL;
}

int chat_stats_kind(const chat_stats *st, size_t i)
{
    const entry *e = at(st, i);
    return e ? e->kind : CHAT_EINVAL;
}

const char *chat_stats_label(const chat_stats *st, size_t i)
{
    const entry *e = at(st, i);
    return e ? e->label : NULL;
}

const char *chat_stats_label_value(const chat_stats *st, size_t i)
{
    const entry *e = at(st, i);
    return e ? e->label_value : NULL;
}

uint64_t chat_stats_value(const chat_stats *st, size_t i)
{
    const entry *e = at(st, i);
    return e ? e->value : 0;
}

double chat_stats_sum(const chat_stats *st, size_t i)
{
    const entry *e = at(st, i);
    return e && e->kind == CHAT_STAT_HISTOGRAM ? (double)e->sum * e->scale : 0.0;
}

size_t chat_stats_buckets(const chat_stats *st, size_t i)
{
    const entry *e = at(st, i);
    return e ? e->n_buckets : 0;
}

double chat_stats_bucket_bound(const chat_stats *st, size_t i, size_t b)
{
    const entry *e = at(st, i);
    if (!e || b >= e->n_buckets)
        return NAN;
    if (b == e->n_buckets - 1)
        return INFINITY;
    uint64_t raw = e->bounds_us ? e->bounds_us[b] : (uint64_t)1 << b;
    return (double)raw * e->scale;
}

uint64_t chat_stats_bucket_count(const chat_stats *st, size_t i, size_t b)
{
    const entry *e = at(st, i);
    return e && b < e->n_buckets ? e->cum[b] : 0;
}

int chat_stats_find(const chat_stats *st, const char *name, const char *label_value,
                    size_t *index)
{
    if (!st || !name || !index)
        return CHAT_EINVAL;
    for (size_t i = 0; i < st->n; i++)
        if (strcmp(st->e[i].name, name) == 0 &&
            (!label_value || strcmp(st->e[i].label_value, label_value) == 0)) {
            *index = i;
            return CHAT_OK;
        }
    return CHAT_ENOTFOUND;
}

/* ---- the Prometheus text format (exposition format 0.0.4) ---- */

typedef struct buf {
    char *p;
    size_t len, cap;
    int failed;
} buf;

__attribute__((format(printf, 2, 3))) static void put(buf *b, const char *fmt, ...);

static void put(buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = b->failed ? 0 : vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (b->failed || n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 8192;
        while (cap - b->len <= (size_t)n)
            cap *= 2;
        char *np = chat__realloc(b->p, cap);
        if (!np) {
            b->failed = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
}

static const char *kind_name(int kind)
{
    return kind == CHAT_STAT_COUNTER ? "counter" : kind == CHAT_STAT_GAUGE ? "gauge"
                                                                          : "histogram";
}

int chat_stats_text(char **out, const chat_stats *st)
{
    if (!out || !st)
        return chat__error_set(CHAT_EINVAL, 0, "out and st are required");
    buf b = {NULL, 0, 0, 0};
    for (size_t i = 0; i < st->n; i++) {
        const entry *e = &st->e[i];
        if (i == 0 || strcmp(st->e[i - 1].name, e->name) != 0)
            put(&b, "# HELP %s %s\n# TYPE %s %s\n", e->name, e->help, e->name,
                kind_name(e->kind));
        if (e->kind != CHAT_STAT_HISTOGRAM) {
            if (e->label[0])
                put(&b, "%s{%s=\"%s\"} %" PRIu64 "\n", e->name, e->label, e->label_value,
                    e->value);
            else
                put(&b, "%s %" PRIu64 "\n", e->name, e->value);
            continue;
        }
        for (size_t k = 0; k + 1 < e->n_buckets; k++)
            put(&b, "%s_bucket{le=\"%.9g\"} %" PRIu64 "\n", e->name,
                chat_stats_bucket_bound(st, i, k), e->cum[k]);
        put(&b, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", e->name, e->value);
        put(&b, "%s_sum %.9g\n%s_count %" PRIu64 "\n", e->name, (double)e->sum * e->scale,
            e->name, e->value);
    }
    if (b.failed || !b.p) {
        chat__free(b.p);
        return CHAT_ENOMEM;
    }
    *out = b.p;
    return CHAT_OK;
}

int chat_server_metrics_text(char **out, chat_server *srv)
{
    if (!out || !srv)
        return chat__error_set(CHAT_EINVAL, 0, "out and srv are required");
    chat_stats *st = NULL;
    int rc = chat_server_stats(&st, srv);
    if (rc != CHAT_OK)
        return rc;
    rc = chat_stats_text(out, st);
    chat_stats_free(st);
    return rc;
}
