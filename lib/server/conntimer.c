/* Connection timers without a timer per connection.
 *
 * A timer per connection costs a (re)arm per ping, pong and authentication; lws 4.1.6's
 * idle-ping policy did that with its sorted timer list, and with 19K idle connections kept a
 * core about 55 % busy doing nothing else. Here instead:
 * - the authentication deadline is the same for every connection, so unauthenticated
 *   connections wait in a FIFO in arrival order, with one timer for the oldest (O(1) each);
 * - idle pings, hang-ups, token expiry and the close deadline are found by a sweep over the
 *   connections that visits each once a second (a quarter of the ping interval when that is
 *   shorter), a tenth of them per tick, so the loop never stalls for a whole pass (~10 ms at
 *   100K connections).
 * [loop thread] */
#include "server/internal.h"

#define SWEEP_SLICES 10

/* A connection whose close was decided is dropped this long after the decision if it is still
 * there: its close frame may wait forever behind a full socket buffer when the peer does not
 * read, whatever the peer sends meanwhile. With the sweep's pass of a second, it is gone within
 * three seconds. */
#define CLOSE_GRACE_MS 2000

/* The time between two ticks of the sweep; a whole pass takes SWEEP_SLICES of them. */
static int64_t sweep_tick_ms(const chat_server *srv)
{
    int64_t p = chat__limit(srv, CHAT_LIMIT_IDLE_PING_MS) / 4;
    p = (p < 1000 ? p : 1000) / SWEEP_SLICES;
    return p > 0 ? p : 1;
}

static void sweep_cb(chat__timer *t)
{
    chat_server *srv = CHAT__SERVER_OF_TIMER(t, sweep_timer);
    int64_t now = chat__loop_ms(srv);
    int64_t now_ms = chat__now_ms(srv); /* tokens expire on the server's (injectable) clock */
    int64_t ping_ms = chat__limit(srv, CHAT_LIMIT_IDLE_PING_MS);
    int64_t hangup_ms = chat__limit(srv, CHAT_LIMIT_IDLE_HANGUP_MS);
    /* This tick's slice, from where the last one stopped (new connections join at the head,
     * so they are reached by the next pass). */
    size_t left = srv->n_conns / SWEEP_SLICES + 1;
    chat__conn *c = srv->sweep_next ? srv->sweep_next : srv->conns;
    for (; c && left; c = c->next, left--) {
        if (!c->tc || c->hung_up)
            continue;
        int64_t silent = now - c->last_rx_ms;
        if (silent >= hangup_ms || (c->close_code && now - c->close_ms >= CLOSE_GRACE_MS)) {
            /* Nothing heard since a ping went out (the peer is gone or cannot read), or a
             * decided close still waiting: a close frame can wait forever behind a full socket
             * buffer, so drop the socket. */
            c->hung_up = 1;
            srv->tp->kill(c->tc);
        } else if (c->close_code) {
            continue;
        } else if (c->authed && now_ms >= c->session_exp_ms) {
            chat__conn_close(c, 1008, "token expired");
        } else if (silent >= ping_ms && !c->ping_sent) {
            c->ping_sent = 1;
            c->ping_due = 1;
            srv->tp->want_write(c->tc);
        }
    }
    srv->sweep_next = c; /* NULL: the next tick starts a new pass */
    srv->tp->timer_start(&srv->sweep_timer, sweep_tick_ms(srv));
}

static void authq_cb(chat__timer *t);

int chat__conntimer_start(chat_server *srv)
{
    srv->authq_head = srv->authq_tail = NULL;
    srv->sweep_next = NULL;
    if (srv->tp->timer_init(srv->tp_st, &srv->sweep_timer, sweep_cb) != CHAT_OK)
        return CHAT_ENOMEM;
    if (srv->tp->timer_init(srv->tp_st, &srv->authq_timer, authq_cb) != CHAT_OK) {
        srv->tp->timer_close(&srv->sweep_timer);
        return CHAT_ENOMEM;
    }
    srv->tp->timer_start(&srv->sweep_timer, sweep_tick_ms(srv));
    return CHAT_OK;
}

void chat__conntimer_stop(chat_server *srv)
{
    srv->tp->timer_close(&srv->sweep_timer);
    srv->tp->timer_close(&srv->authq_timer);
}

static void authq_cb(chat__timer *t)
{
    chat_server *srv = CHAT__SERVER_OF_TIMER(t, authq_timer);
    int64_t now = chat__loop_ms(srv);
    int64_t deadline_ms = chat__limit(srv, CHAT_LIMIT_AUTH_DEADLINE_MS);
    chat__conn *c;
    while ((c = srv->authq_head) && now - c->born_ms >= deadline_ms) {
        chat__conn_auth_done(c);
        chat__conn_close(c, 1008, "authentication timeout");
    }
    if (c)
        srv->tp->timer_start(&srv->authq_timer, c->born_ms + deadline_ms - now);
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
        srv->tp->timer_start(&srv->authq_timer, chat__limit(srv, CHAT_LIMIT_AUTH_DEADLINE_MS));
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
