/* Events: allocation, delivery (callback, then queue), the queue's eventfd, and the getters. */
#define _GNU_SOURCE
#include "client/internal.h"

#include "core/alloc.h"
#include "core/monowait.h"
#include "core/error.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

chat_event *chat__event_new(int type)
{
    chat_event *ev = chat__calloc(1, sizeof *ev);
    if (ev)
        ev->type = type;
    return ev;
}

int chat__event_set_str(char **dst, const char *s)
{
    chat__free(*dst);
    *dst = s ? chat__strdup(s) : NULL;
    return !s || *dst ? CHAT_OK : CHAT_ENOMEM;
}

void chat_event_free(chat_event *ev)
{
    if (!ev)
        return;
    chat__free(ev->user);
    chat__free(ev->device);
    chat__free(ev->cmid);
    chat__free(ev->text);
    chat__free(ev->json);
    chat__free(ev->message);
    chat__free(ev);
}

void chat__event_emit(chat_client *c, chat_event *ev)
{
    if (!ev)
        return;
    if (c->ev_cb)
        c->ev_cb(c, ev, c->ev_ud);
    if (!c->queue_enabled) {
        chat_event_free(ev);
        return;
    }
    ev->next = NULL;
    pthread_mutex_lock(&c->ev_mu);
    if (c->ev_tail)
        c->ev_tail->next = ev;
    else {
        c->ev_head = ev;
        uint64_t one = 1; /* the eventfd is readable while the queue is not empty */
        (void)!write(c->ev_fd, &one, sizeof one);
    }
    c->ev_tail = ev;
    pthread_cond_broadcast(&c->ev_cond);
    pthread_mutex_unlock(&c->ev_mu);
}

/* Caller holds ev_mu. */
static chat_event *pop_locked(chat_client *c)
{
    chat_event *ev = c->ev_head;
    if (!ev)
        return NULL;
    c->ev_head = ev->next;
    if (!c->ev_head) {
        c->ev_tail = NULL;
        uint64_t v;
        (void)!read(c->ev_fd, &v, sizeof v);
    }
    ev->next = NULL;
    return ev;
}

void chat__event_queue_clear(chat_client *c)
{
    pthread_mutex_lock(&c->ev_mu);
    chat_event *ev;
    while ((ev = pop_locked(c)))
        chat_event_free(ev);
    pthread_mutex_unlock(&c->ev_mu);
}

int chat_client_event_fd(const chat_client *c)
{
    if (!c)
        return chat__error_set(CHAT_EINVAL, 0, "client is NULL");
    if (!c->queue_enabled)
        return chat__error_set(CHAT_ENOTSUP, 0, "the event queue is disabled");
    return c->ev_fd;
}

int chat_client_next_event(chat_event **out, chat_client *c)
{
    if (!out || !c)
        return chat__error_set(CHAT_EINVAL, 0, "NULL argument");
    if (!c->queue_enabled)
        return chat__error_set(CHAT_ENOTSUP, 0, "the event queue is disabled");
    pthread_mutex_lock(&c->ev_mu);
    chat_event *ev = pop_locked(c);
    pthread_mutex_unlock(&c->ev_mu);
    if (!ev)
        return CHAT_EAGAIN;
    *out = ev;
    return CHAT_OK;
}

int chat_client_wait_event(chat_event **out, chat_client *c, int timeout_ms)
{
    if (!out || !c)
        return chat__error_set(CHAT_EINVAL, 0, "NULL argument");
    if (!c->queue_enabled)
        return chat__error_set(CHAT_ENOTSUP, 0, "the event queue is disabled");
    struct timespec dl = chat__mono_deadline(timeout_ms); /* unused when timeout_ms < 0 */
    pthread_mutex_lock(&c->ev_mu);
    chat_event *ev;
    while (!(ev = pop_locked(c))) {
        int rc = timeout_ms < 0 ? pthread_cond_wait(&c->ev_cond, &c->ev_mu)
                                : pthread_cond_timedwait(&c->ev_cond, &c->ev_mu, &dl);
        if (rc == ETIMEDOUT) {
            ev = pop_locked(c);
            break;
        }
    }
    pthread_mutex_unlock(&c->ev_mu);
    if (!ev)
        return CHAT_ETIMEDOUT;
    *out = ev;
    return CHAT_OK;
}

/* ---- getters ----------------------------------------------------------------------------- */

#define S(x) ((x) ? (x) : "")

int chat_event_type(const chat_event *ev) { return ev ? ev->type : 0; }
chat_conv_id chat_event_conv(const chat_event *ev) { return ev ? ev->conv : 0; }
uint64_t chat_event_seq(const chat_event *ev) { return ev ? ev->seq : 0; }
int64_t chat_event_ts_ms(const chat_event *ev) { return ev ? ev->ts : 0; }
const char *chat_event_user(const chat_event *ev) { return ev ? S(ev->user) : ""; }
const char *chat_event_device(const chat_event *ev) { return ev ? S(ev->device) : ""; }
const char *chat_event_cmid(const chat_event *ev) { return ev ? S(ev->cmid) : ""; }
int chat_event_kind(const chat_event *ev) { return ev ? ev->kind : 0; }
const char *chat_event_json(const chat_event *ev) { return ev ? S(ev->json) : ""; }
int chat_event_code(const chat_event *ev) { return ev ? ev->code : 0; }
const char *chat_event_message(const chat_event *ev) { return ev ? S(ev->message) : ""; }
uint64_t chat_event_request(const chat_event *ev) { return ev ? ev->request : 0; }
uint64_t chat_event_delivered(const chat_event *ev) { return ev ? ev->delivered : 0; }
uint64_t chat_event_read(const chat_event *ev) { return ev ? ev->read : 0; }
int chat_event_active(const chat_event *ev) { return ev ? ev->active : 0; }
int64_t chat_event_last_seen_ms(const chat_event *ev) { return ev ? ev->last_seen : 0; }
int64_t chat_event_retry_ms(const chat_event *ev) { return ev ? ev->retry_ms : 0; }
size_t chat_event_count(const chat_event *ev) { return ev ? ev->count : 0; }
int chat_event_more(const chat_event *ev) { return ev ? ev->more : 0; }

const char *chat_event_text(const chat_event *ev, size_t *len)
{
    if (len)
        *len = ev && ev->text ? ev->text_len : 0;
    return ev ? S(ev->text) : "";
}

const char *chat_event_type_name(int type)
{
    static const char *const names[] = {
        "unknown", "connecting", "online", "offline", "auth_failed", "synced", "message",
        "sent", "send_failed", "receipt", "conv", "typing", "presence", "history", "result",
        "updated", "expired"};
    if (type < 1 || type >= (int)(sizeof names / sizeof names[0]))
        return "unknown";
    return names[type];
}
