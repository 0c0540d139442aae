/* Connections: lifetime, the bounded outbound queue, the user -> connections registry. */
#include "server/req.h"

#include "core/alloc.h"
#include "core/json.h"
#include "core/monowait.h"

#include <stdio.h>
#include <string.h>

_Static_assert(CHAT__FRAME_PRE >= CHAT__TRANSPORT_PRE, "frame headroom too small for the transport");

chat__conn *chat__conn_new(chat_server *srv, chat__tconn *tc)
{
    chat__conn *c = chat__calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->srv = srv;
    c->tc = tc;
    c->id = ++srv->next_conn_id;
    c->refs = 1;
    c->user = c->device = c->session = "";
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    srv->n_conns++;
    int64_t now = chat__now_ms(srv);
    chat__bucket_init(&c->send_bucket, (double)chat__limit(srv, CHAT_LIMIT_SEND_BURST), now);
    chat__bucket_init(&c->typing_bucket, (double)chat__limit(srv, CHAT_LIMIT_TYPING_RATE), now);
    chat__bucket_init(&c->presence_bucket, (double)chat__limit(srv, CHAT_LIMIT_PRESENCE_RATE), now);
    chat__bucket_init(&c->settings_bucket, (double)chat__limit(srv, CHAT_LIMIT_SETTINGS_RATE), now);
    chat__bucket_init(&c->search_bucket, (double)chat__limit(srv, CHAT_LIMIT_SEARCH_RATE), now);
    c->err_window_ms = now;
    chat__count(&srv->stats.opened, 1);
    chat__logc(srv, CHAT_LOG_INFO, c, NULL, NULL, "connection opened");
    return c;
}

chat__conn *chat__conn_ref(chat__conn *c)
{
    c->refs++;
    return c;
}

static void queue_clear(chat__conn *c)
{
    while (c->q_count) {
        chat__frame_unref(c->q[c->q_head]);
        c->q_head = (c->q_head + 1) % c->q_cap;
        c->q_count--;
    }
    c->q_bytes = 0;
}

/* An idle connection keeps no queue array (allocated again on the next backlog). */
static void chat__conn_queue_trim(chat__conn *c)
{
    if (c->q_count == 0 && c->q) {
        chat__free(c->q);
        c->q = NULL;
        c->q_cap = 0;
        c->q_head = 0;
    }
}

void chat__conn_unref(chat__conn *c)
{
    if (--c->refs > 0)
        return;
    queue_clear(c);
    chat__free(c->q);
    chat__free(c->ids);
    chat__free(c);
}

static void unregister_user(chat__conn *c)
{
    chat_server *srv = c->srv;
    chat__conn *head = chat__strmap_get(&srv->users, c->user);
    if (head == c) {
        if (c->next_of_user)
            chat__strmap_put(&srv->users, c->user, c->next_of_user);
        else
            chat__strmap_del(&srv->users, c->user);
    } else {
        for (chat__conn *p = head; p; p = p->next_of_user)
            if (p->next_of_user == c) {
                p->next_of_user = c->next_of_user;
                break;
            }
    }
    c->next_of_user = NULL;
}

/* How a connection ended, for chat_connections_closed_total. */
static int close_kind(const chat__conn *c)
{
    if (c->hung_up)
        return CHAT__CLOSE_DROPPED;
    switch (c->close_code) {
    case 0: return CHAT__CLOSE_PEER;
    case 1000: return CHAT__CLOSE_1000;
    case 1001: return CHAT__CLOSE_1001;
    case 1002: return CHAT__CLOSE_1002;
    case 1008: return CHAT__CLOSE_1008;
    case 1009: return CHAT__CLOSE_1009;
    case 1011: return CHAT__CLOSE_1011;
    case 1013: return CHAT__CLOSE_1013;
    default: return CHAT__CLOSE_OTHER;
    }
}

/* The transport is done with the connection. */
void chat__conn_closed(chat__conn *c)
{
    chat_server *srv = c->srv;
    chat__count(&srv->stats.closed[close_kind(c)], 1);
    if (chat__log_on(srv, CHAT_LOG_INFO)) {
        char code[16];
        snprintf(code, sizeof code, "%d", c->close_code);
        chat__logc(srv, CHAT_LOG_INFO, c, NULL,
                   c->hung_up ? "dropped" : c->close_code ? code : "peer", "connection closed");
    }
    chat__conn_auth_done(c);
    c->tc = NULL;
    if (srv->sweep_next == c)
        srv->sweep_next = c->next;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    srv->n_conns--;
    queue_clear(c);
    if (c->authed) {
        unregister_user(c);
        c->authed = 0;
        srv->bus->device_down(srv->bus_st, c->user, c->device);
    }
    chat__conn_unref(c);
}

void chat__conn_set_authed(chat__conn *c, const char *user, const char *device,
                           const char *session)
{
    chat_server *srv = c->srv;
    chat__conn_auth_done(c);
    size_t nu = strlen(user) + 1, nd = strlen(device) + 1, ns = strlen(session) + 1;
    char *ids = chat__malloc(nu + nd + ns);
    if (!ids) {
        chat__conn_close(c, 1011, "out of memory");
        return;
    }
    memcpy(ids, user, nu);
    memcpy(ids + nu, device, nd);
    memcpy(ids + nu + nd, session, ns);
    chat__free(c->ids); /* authenticated once per connection; never leak a second time */
    c->ids = ids;
    c->user = ids;
    c->device = ids + nu;
    c->session = ids + nu + nd;
    c->authed = 1;
    chat__logc(srv, CHAT_LOG_INFO, c, NULL, NULL, "authenticated");
    c->next_of_user = chat__strmap_get(&srv->users, user);
    if (chat__strmap_put(&srv->users, user, c) != CHAT_OK) {
        c->authed = 0;
        chat__conn_close(c, 1011, "out of memory");
        return;
    }
    /* A device the bus does not know gets no deliveries from other engines and shows
     * offline: the connection cannot work as one. */
    if (srv->bus->device_up(srv->bus_st, user, device) != CHAT_OK) {
        unregister_user(c);
        c->authed = 0;
        chat__conn_close(c, 1011, "out of memory");
    }
    else
        chat__cluster_hold(c);
}

void chat__conn_close(chat__conn *c, int code, const char *reason)
{
    if (!c->tc || c->close_code)
        return;
    c->close_code = code;
    c->close_reason = reason;
    c->close_ms = chat__loop_ms(c->srv);
    c->srv->tp->want_write(c->tc);
}

/* A frame's latency stamp, once it is written (stats.h). */
static void stamped_written(chat_server *srv, uint32_t stamp)
{
    chat__loop_stats *st = &srv->stats;
    uint64_t t = st->tx_state == 2 ? st->tx_us : chat__mono_ns() / 1000;
    if (st->tx_state == 1) {
        st->tx_us = t;
        st->tx_state = 2;
    }
    uint32_t us = (uint32_t)t - (stamp & ~1u);
    chat__hist_latency((stamp & 1u) == CHAT__STAMP_FANOUT ? &srv->stats.fanout : &srv->stats.ack,
                       us);
}

static inline void written(chat_server *srv, const chat__frame *f)
{
    chat__count(&srv->stats.frames_out, 1);
    chat__count(&srv->stats.bytes_out, f->len);
    if (f->stamp)
        stamped_written(srv, f->stamp);
}

void chat__conn_send(chat__conn *c, chat__frame *f)
{
    chat_server *srv = c->srv;
    const chat__transport_ops *tp = srv->tp;
    if (!c->tc || c->close_code)
        return;
    if (c->q_count >= (size_t)chat__limit(srv, CHAT_LIMIT_OUT_QUEUE_FRAMES) ||
        c->q_bytes + f->len > (size_t)chat__limit(srv, CHAT_LIMIT_OUT_QUEUE_BYTES)) {
        /* A consumer this slow cannot catch up live: drop what is queued and let it resync
         * from its cursors after reconnecting. Memory stays bounded. */
        chat__logc(srv, CHAT_LOG_WARN, c, NULL, "1013", "closing a slow consumer");
        queue_clear(c);
        chat__conn_close(c, 1013, "outbound queue full: resync");
        return;
    }
    /* Nothing queued and nothing left in the transport's partial-write buffer: write at once.
     * This saves the POLLOUT round trip (two epoll_ctl calls and a loop pass per frame). A short
     * write is kept by the transport, which then reports the connection busy and flushes it on
     * POLLOUT; the frames after it queue here, under the limits above. */
    if (c->q_count == 0 && !c->held && !tp->busy(c->tc)) {
        if (tp->write(c->tc, chat__frame_data(f), f->len))
            chat__conn_close(c, 1011, "write failed");
        else
            written(srv, f);
        return;
    }
    if (c->q_count == c->q_cap) {
        size_t ncap = c->q_cap ? c->q_cap * 2 : 8;
        chat__frame **nq = chat__malloc(ncap * sizeof *nq);
        if (!nq) {
            chat__conn_close(c, 1011, "out of memory");
            return;
        }
        for (size_t i = 0; i < c->q_count; i++)
            nq[i] = c->q[(c->q_head + i) % c->q_cap];
        chat__free(c->q);
        c->q = nq;
        c->q_cap = ncap;
        c->q_head = 0;
    }
    c->q[(c->q_head + c->q_count) % c->q_cap] = chat__frame_ref(f);
    c->q_count++;
    c->q_bytes += f->len;
    tp->want_write(c->tc);
}

/* Most frames written per WRITEABLE callback, so one busy connection cannot hold the loop. */
#define WRITES_PER_CALLBACK 64

int chat__conn_writable(chat__conn *c)
{
    const chat__transport_ops *tp = c->srv->tp;
    if (c->held)
        return 0; /* cluster.c asks again when it lets go */
    if (c->ping_due && !c->close_code && !tp->busy(c->tc)) {
        /* The idle sweep asked for a ping (conntimer.c). */
        c->ping_due = 0;
        if (tp->ping(c->tc))
            return -1;
        if (tp->busy(c->tc)) {
            tp->want_write(c->tc);
            return 0;
        }
    }
    if (c->q_count) {
        /* Several frames per callback, while the kernel takes them whole: a write that went
         * out only in part is kept by the transport (busy), and the rest waits. */
        int budget = WRITES_PER_CALLBACK;
        do {
            chat__frame *f = c->q[c->q_head];
            c->q_head = (c->q_head + 1) % c->q_cap;
            c->q_count--;
            c->q_bytes -= f->len;
            int failed = tp->write(c->tc, chat__frame_data(f), f->len);
            if (!failed)
                written(c->srv, f);
            chat__frame_unref(f);
            if (failed)
                return -1;
        } while (c->q_count && --budget > 0 && !tp->busy(c->tc));
        if (c->q_count || c->close_code)
            tp->want_write(c->tc);
        else
            chat__conn_queue_trim(c);
        return 0;
    }
    if (c->close_code) {
        tp->send_close(c->tc, c->close_code, c->close_reason);
        return -1;
    }
    return 0;
}

/* {"type":"error","re":…,"code":…,"reason":…,"message":…,"retry_after_ms":…}, encoded
 * directly: one allocation, and no field that can go missing. */
static void error_fb(chat__fb *b, const cJSON *re, int code, const char *reason,
                     const char *message, int64_t retry_after_ms)
{
#define LIT(s) chat__fb_raw(b, s, sizeof s - 1)
    const char *name = chat_error_name(code);
    LIT("{\"type\":\"error\"");
    if (re) {
        LIT(",\"re\":");
        chat__fb_id(b, re);
    }
    LIT(",\"code\":");
    chat__fb_str(b, name, strlen(name));
    LIT(",\"reason\":");
    chat__fb_str(b, reason, strlen(reason));
    LIT(",\"message\":");
    chat__fb_str(b, message, strlen(message));
    if (retry_after_ms > 0) {
        LIT(",\"retry_after_ms\":");
        chat__fb_i64(b, retry_after_ms);
    }
    LIT("}");
#undef LIT
}

static void error_frame(chat__conn *c, const cJSON *re, int code, const char *reason,
                        const char *message, int64_t retry_after_ms)
{
    chat__fb b = {NULL, 0};
    error_fb(&b, re, code, reason, message, retry_after_ms);
    chat__frame *f = chat__fb_alloc(&b);
    if (!f) {
        /* The client would wait for an answer that never comes: close instead. */
        chat__conn_close(c, 1011, "out of memory");
        return;
    }
    if (code < 0 && -code < CHAT__ERR_CODES)
        chat__count(&c->srv->stats.errors[-code], 1);
    chat__logc(c->srv, CHAT_LOG_DEBUG, c, re, chat_error_name(code), "request refused: %s",
               reason);
    error_fb(&b, re, code, reason, message, retry_after_ms);
    chat__conn_send(c, f);
    chat__frame_unref(f);
}

void chat__conn_decline(chat__conn *c, const cJSON *re, int code, const char *reason,
                        const char *message, int64_t retry_after_ms)
{
    error_frame(c, re, code, reason, message, retry_after_ms);
}

void chat__conn_error(chat__conn *c, const cJSON *re, int code, const char *reason,
                      const char *message, int64_t retry_after_ms)
{
    chat_server *srv = c->srv;
    error_frame(c, re, code, reason, message, retry_after_ms);
    /* A client that keeps sending frames we refuse is abusive: close it. */
    int64_t now = chat__now_ms(srv);
    if (now - c->err_window_ms > 10000) {
        c->err_window_ms = now;
        c->err_count = 0;
    }
    if (++c->err_count > 50)
        chat__conn_close(c, 1008, "too many errors");
}

void chat__deliver_local(chat_server *srv, const char *user, const char *except_device,
                         chat__frame *f)
{
    chat__conn *c = chat__strmap_get(&srv->users, user);
    if (!c)
        return;
    /* Message frames (text, media, events) all begin so (chat__msg_frame, chat__msg_json). */
    static const char msg_head[] = "{\"type\":\"msg\"";
    int is_msg = f && f->len >= sizeof msg_head - 1 &&
                 memcmp(chat__frame_data(f), msg_head, sizeof msg_head - 1) == 0;
    for (; c; c = c->next_of_user) {
        if (except_device && strcmp(c->device, except_device) == 0)
            continue;
        if (!f) { /* a connection that misses a frame must not stay connected and silently
                   * behind: it resyncs from its cursors after reconnecting, as a slow consumer
                   * does */
            chat__conn_close(c, 1011, "out of memory");
            continue;
        }
        chat__conn_send(c, f);
        if (is_msg)
            chat__count(&srv->stats.delivered, 1);
    }
}
