/* Connection timers without a timer per connection.
 *
 * lws 4.1.6 keeps every scheduled timer of a thread in one sorted list and inserts by walking it
 * from the head, so a timer per connection costs O(connections) per (re)arm. Its idle-ping
 * policy re-arms one per connection at every ping and pong: with 19K idle connections that kept
 * a core about 55 % busy doing nothing else, and a token-expiry timer per connection made each
 * authentication walk the whole list. Here instead:
 * - the authentication deadline is the same for every connection, so unauthenticated
 *   connections wait in a FIFO in arrival order, with one timer for the oldest (O(1) each);
 * - idle pings, hang-ups and token expiry are found by a sweep over the connections that
 *   visits each once a second (a quarter of the ping interval when that is shorter), a tenth of
 *   them per tick, so the loop never stalls for a whole pass (~10 ms at 100K connections).
 * [loop thread] */
#include "server/internal.h"

#define SWEEP_SLICES 10

/* The time between two ticks of the sweep; a whole pass takes SWEEP_SLICES of them. */
static int64_t sweep_tick_us(const chat_server *srv)
{
    int64_t p = chat__limit(srv, CHAT_LIMIT_IDLE_PING_MS) * 1000 / 4;
    return (p < 1000000 ? p : 1000000) / SWEEP_SLICES;
}

static void sweep_cb(lws_sorted_usec_list_t *sul)
{
    chat_server *srv = lws_container_of(sul, chat_server, sweep_sul);
    int64_t now = chat__loop_ms(srv);
    int64_t now_ms = chat__now_ms(srv); /* tokens expire on the server's (injectable) clock */
    int64_t ping_ms = chat__limit(srv, CHAT_LIMIT_IDLE_PING_MS);
    int64_t hangup_ms = chat__limit(srv, CHAT_LIMIT_IDLE_HANGUP_MS);
    /* This tick's slice, from where the last one stopped (new connections join at the head,
     * so they are reached by the next pass). */
    size_t left = srv->n_conns / SWEEP_SLICES + 1;
    chat__conn *c = srv->sweep_next ? srv->sweep_next : srv->conns;
    for (; c && left; c = c->next, left--) {
        if (!c->wsi || c->hung_up)
            continue;
        int64_t silent = now - c->last_rx_ms;
        if (silent >= hangup_ms) {
            /* Nothing heard since a ping went out: the peer is gone or cannot read. A close
             * frame could wait forever behind a full socket buffer, so drop the socket. */
            c->hung_up = 1;
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        } else if (c->close_code) {
            continue;
        } else if (c->authed && now_ms >= c->session_exp_ms) {
            chat__conn_close(c, 1008, "token expired");
        } else if (silent >= ping_ms && !c->ping_sent) {
            c->ping_sent = 1;
            c->ping_due = 1;
            lws_callback_on_writable(c->wsi);
        }
    }
    srv->sweep_next = c; /* NULL: the next tick starts a new pass */
    lws_sul_schedule(srv->lws, 0, &srv->sweep_sul, sweep_cb, sweep_tick_us(srv));
}

void chat__conntimer_start(chat_server *srv)
{
    srv->authq_head = srv->authq_tail = NULL;
    srv->sweep_next = NULL;
    lws_sul_schedule(srv->lws, 0, &srv->sweep_sul, sweep_cb, sweep_tick_us(srv));
}

void chat__conntimer_stop(chat_server *srv)
{
    lws_sul_cancel(&srv->sweep_sul);
    lws_sul_cancel(&srv->authq_sul);
}

static void authq_cb(lws_sorted_usec_list_t *sul)
{
    chat_server *srv = lws_container_of(sul, chat_server, authq_sul);
    int64_t now = chat__loop_ms(srv);
    int64_t deadline_ms = chat__limit(srv, CHAT_LIMIT_AUTH_DEADLINE_MS);
    chat__conn *c;
    while ((c = srv->authq_head) && now - c->born_ms >= deadline_ms) {
        chat__conn_auth_done(c);
        chat__conn_close(c, 1008, "authentication timeout");
    }
    if (c)
        lws_sul_schedule(srv->lws, 0, &srv->authq_sul, authq_cb,
                         (c->born_ms + deadline_ms - now) * LWS_US_PER_MS);
}

void chat__conn_auth_wait(chat__conn *c)
{
    chat_server *srv = c->srv;
    c->born_ms = c->last_rx_ms = chat__loop_ms(srv);
    c->authq_next = NULL;
    c->authq_prev = srv->authq_tail;
    if (srv->authq_tail)
        srv->authq_tail->authq_next = c;
    else
        srv->authq_head = c;
    srv->authq_tail = c;
    c->in_authq = 1;
    if (srv->authq_head == c)
        lws_sul_schedule(srv->lws, 0, &srv->authq_sul, authq_cb,
                         chat__limit(srv, CHAT_LIMIT_AUTH_DEADLINE_MS) * 1000);
}

void chat__conn_auth_done(chat__conn *c)
{
    chat_server *srv = c->srv;
    if (!c->in_authq)
        return;
    /* Removing the head leaves the timer armed for it; it then fires early, finds nothing
     * due and re-arms for the new head. */
    if (c->authq_prev)
        c->authq_prev->authq_next = c->authq_next;
    else
        srv->authq_head = c->authq_next;
    if (c->authq_next)
        c->authq_next->authq_prev = c->authq_prev;
    else
        srv->authq_tail = c->authq_prev;
    c->authq_prev = c->authq_next = NULL;
    c->in_authq = 0;
}
