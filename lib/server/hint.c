/*
 * Position hints and catch-up prompts (hint.h).
 *
 * A client notices a dropped live frame when the next frame of that conversation skips a seq.
 * A hint covers the last frames of a burst, which no later frame follows: once a conversation
 * has been quiet for head_hint_ms after a message, its members' devices on other nodes get
 * {"type":"head","conv":C,"seq":S}, again after 4x and 16x that time (a hint can be dropped
 * too, and a bus that was down comes back). A client behind S fetches the rest from history.
 * Only the last message of a burst costs a hint: every message moves the deadline.
 */
#include "server/hint.h"

#include "server/req.h"

#include "bus/check.h"
#include "core/alloc.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define HINT_ROUNDS 3

typedef struct hint {
    chat__timenode node;
    int64_t conv;
    uint64_t seq;
    int round;     /* hints sent so far */
    size_t n;
    char **users;  /* n names, in the same allocation */
} hint;

void chat__hints_init(chat_server *srv)
{
    chat__hints *h = &srv->hints;
    chat__strmap_init(&h->convs);
    chat__timeheap_init(&h->due);
    const chat_bus_ops *bus = srv->bus;
    int reliable = bus->ctl && bus->ctl(srv->bus_st, CHAT_BUS_CTL_RELIABLE, NULL) == CHAT_OK;
    /* A version-1 bus cannot send to remote devices only: no hints over it. */
    h->on = !reliable && chat__bus_has_publish2(bus) &&
            chat__limit(srv, CHAT_LIMIT_HEAD_HINT_MS) > 0;
}

static void hint_drop(const char *key, void *value, void *ud)
{
    chat__free(value);
}

void chat__hints_free(chat_server *srv)
{
    chat__strmap_each(&srv->hints.convs, hint_drop, NULL);
    chat__strmap_clear(&srv->hints.convs);
    chat__timeheap_free(&srv->hints.due);
}

static void hint_timer_cb(chat__timer *t);

int chat__hints_start(chat_server *srv)
{
    chat__hints *h = &srv->hints;
    if (!h->on)
        return CHAT_OK;
    if (srv->tp->timer_init(srv->tp_st, &h->timer, hint_timer_cb) != CHAT_OK)
        return CHAT_ENOMEM;
    h->timer_ready = 1;
    chat__timenode *top = chat__timeheap_top(&h->due);
    if (top) /* hints left from an earlier run of the loop */
        srv->tp->timer_start(&h->timer, 1);
    return CHAT_OK;
}

void chat__hints_stop(chat_server *srv)
{
    if (srv->hints.timer_ready)
        srv->tp->timer_close(&srv->hints.timer);
    srv->hints.timer_ready = 0;
}

static int64_t round_delay(const chat_server *srv, int round)
{
    return chat__limit(srv, CHAT_LIMIT_HEAD_HINT_MS) << (2 * round); /* 1x, 4x, 16x */
}

static void arm(chat_server *srv, int64_t now)
{
    chat__hints *h = &srv->hints;
    chat__timenode *top = chat__timeheap_top(&h->due);
    if (top && h->timer_ready)
        srv->tp->timer_start(&h->timer, top->at > now ? top->at - now : 1);
}

static void conv_key(char *key, size_t size, int64_t conv)
{
    snprintf(key, size, "%" PRId64, conv);
}

static void remove_hint(chat_server *srv, hint *e)
{
    char key[24];
    conv_key(key, sizeof key, e->conv);
    chat__timeheap_del(&srv->hints.due, &e->node);
    chat__strmap_del(&srv->hints.convs, key);
    chat__free(e);
}

static hint *hint_new(int64_t conv, uint64_t seq, const chat__userlist *to)
{
    size_t names = 0;
    for (size_t i = 0; i < to->n; i++)
        names += strlen(to->users[i]) + 1;
    hint *e = chat__malloc(sizeof *e + to->n * sizeof(char *) + names);
    if (!e)
        return NULL;
    memset(&e->node, 0, sizeof e->node);
    e->conv = conv;
    e->seq = seq;
    e->round = 0;
    e->n = to->n;
    e->users = (char **)(e + 1);
    char *pos = (char *)(e->users + to->n);
    for (size_t i = 0; i < to->n; i++) {
        size_t len = strlen(to->users[i]) + 1;
        memcpy(pos, to->users[i], len);
        e->users[i] = pos;
        pos += len;
    }
    return e;
}

void chat__hint_note(chat_server *srv, int64_t conv, uint64_t seq, const chat__userlist *to)
{
    chat__hints *h = &srv->hints;
    if (!h->on || !to->n)
        return;
    char key[24];
    conv_key(key, sizeof key, conv);
    hint *old = chat__strmap_get(&h->convs, key);
    if (old && old->seq > seq)
        return; /* an older commit finishing late: the newer one is hinted already */
    /* A new entry each time: the members may have changed with the message. */
    hint *e = hint_new(conv, seq, to);
    if (!e || chat__timeheap_reserve(&h->due, h->due.n + 1) != CHAT_OK ||
        chat__strmap_put(&h->convs, key, e) != CHAT_OK) {
        /* Without the hint, only a later frame or a reconnect shows a loss to the client. */
        chat__log(srv, CHAT_LOG_WARN, "position hint of conversation %s dropped: out of memory",
                  key);
        if (e && chat__strmap_get(&h->convs, key) == e)
            chat__strmap_del(&h->convs, key);
        chat__free(e);
        if (old) /* the map may have lost it: drop it everywhere */
            remove_hint(srv, old);
        return;
    }
    if (old) {
        chat__timeheap_del(&h->due, &old->node);
        chat__free(old);
    }
    int64_t now = chat__now_ms(srv);
    chat__timeheap_set(&h->due, &e->node, now + round_delay(srv, 0));
    arm(srv, now);
}

static void send_hint(chat_server *srv, const hint *e)
{
    char text[96];
    int n = snprintf(text, sizeof text, "{\"type\":\"head\",\"conv\":%" PRId64 ",\"seq\":%" PRIu64 "}",
                     e->conv, e->seq);
    chat__frame *f = chat__frame_new(text, (size_t)n);
    if (!f)
        return;
    int rc = srv->bus->publish2(srv->bus_st, (const char *const *)e->users, e->n, NULL, NULL, f,
                                CHAT_BUS_REMOTE_ONLY);
    if (rc != CHAT_OK)
        chat__log(srv, CHAT_LOG_WARN, "bus publish of a position hint failed: %s",
                  chat_error_name(rc));
    chat__frame_unref(f);
}

static void hint_timer_cb(chat__timer *t)
{
    chat_server *srv = CHAT__SERVER_OF_TIMER(t, hints.timer);
    int64_t now = chat__now_ms(srv);
    chat__timenode *top;
    while ((top = chat__timeheap_top(&srv->hints.due)) && top->at <= now) {
        hint *e = CHAT__TIMENODE_ENTRY(top, hint, node);
        send_hint(srv, e);
        if (++e->round < HINT_ROUNDS)
            chat__timeheap_set(&srv->hints.due, top, now + round_delay(srv, e->round));
        else
            remove_hint(srv, e);
    }
    arm(srv, now);
}

/* ---- the bus lost frames ---- */

void chat__hint_lost(chat_server *srv)
{
    /* Catching up costs each client a conversation-list request: spread them over a window
     * that grows with the number of clients (2 ms each, 1 to 30 s). */
    int64_t within = (int64_t)srv->n_conns * 2;
    within = within < 1000 ? 1000 : within > 30000 ? 30000 : within;
    char text[64];
    int n = snprintf(text, sizeof text, "{\"type\":\"sync\",\"within_ms\":%" PRId64 "}", within);
    chat__frame *f = chat__frame_new(text, (size_t)n);
    if (!f) {
        chat__log(srv, CHAT_LOG_WARN, "catch-up prompt dropped: out of memory");
        return;
    }
    size_t told = 0;
    for (chat__conn *c = srv->conns; c; c = c->next) {
        if (c->authed && c->tc) {
            chat__conn_send(c, f);
            told++;
        }
    }
    chat__frame_unref(f);
    chat__log(srv, CHAT_LOG_INFO, "the bus may have lost live frames: %zu clients asked to "
                                  "catch up within %" PRId64 " ms", told, within);
}
