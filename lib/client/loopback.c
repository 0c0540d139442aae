/* The loopback client transport: frames go to and from a ::chat_loopback handle in the same
 * process instead of a socket, so a test (or a host's own harness) can play the server and
 * script exactly what the engine sees: refused connects, frames in any order, closes at any
 * moment.
 *
 * One mutex guards the shared state; the engine's loop thread waits on an eventfd (like the
 * WebSocket transport) and the far end waits on a condition variable. Sink callbacks run on
 * the loop thread inside poll(), one event at a time and never with the mutex held, because a
 * callback may send or close. */
#include "core/alloc.h"
#include "core/error.h"
#include "core/monowait.h"

#include <chat/client.h>
#include <chat/sys/client_transport.h>
#include <chat/testing.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

typedef struct lb_frame {
    struct lb_frame *next;
    size_t len;
    char data[];
} lb_frame;

typedef struct lb_queue {
    lb_frame *head, *tail;
} lb_queue;

enum { LB_CLOSED, LB_OPENING, LB_OPEN, LB_CLOSING, LB_REFUSED };

struct chat_loopback {
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* far end: frames from the engine, opens */
    int refs;            /* the transport state and the far end */
    int wake_fd;

    int phase;
    unsigned connects, opens;
    int refuse;
    int close_code;
    char close_reason[124];

    lb_queue to_engine, to_peer;

    const chat_client_transport_sink *sink; /* loop thread only */
    void *sink_data;
};

static void queue_push(lb_queue *q, lb_frame *f)
{
    f->next = NULL;
    if (q->tail)
        q->tail->next = f;
    else
        q->head = f;
    q->tail = f;
}

static lb_frame *queue_pop(lb_queue *q)
{
    lb_frame *f = q->head;
    if (f) {
        q->head = f->next;
        if (!q->head)
            q->tail = NULL;
    }
    return f;
}

static void queue_clear(lb_queue *q)
{
    lb_frame *f;
    while ((f = queue_pop(q)))
        chat__free(f);
}

static lb_frame *frame_new(const char *data, size_t len)
{
    lb_frame *f = chat__malloc(sizeof *f + len + 1);
    if (!f)
        return NULL;
    f->len = len;
    memcpy(f->data, data, len);
    f->data[len] = 0;
    return f;
}

static void wake_engine(chat_loopback *lb)
{
    uint64_t one = 1;
    (void)!write(lb->wake_fd, &one, sizeof one);
}

static void unref(chat_loopback *lb)
{
    pthread_mutex_lock(&lb->mu);
    int left = --lb->refs;
    pthread_mutex_unlock(&lb->mu);
    if (left)
        return;
    queue_clear(&lb->to_engine);
    queue_clear(&lb->to_peer);
    close(lb->wake_fd);
    pthread_cond_destroy(&lb->cv);
    pthread_mutex_destroy(&lb->mu);
    chat__free(lb);
}

/* ---- the engine's side (the transport vtable) -------------------------------------------- */

static void lb_destroy(void *state)
{
    chat_loopback *lb = state;
    if (!lb)
        return;
    pthread_mutex_lock(&lb->mu);
    lb->phase = LB_CLOSED;
    lb->sink = NULL;
    pthread_cond_broadcast(&lb->cv);
    pthread_mutex_unlock(&lb->mu);
    unref(lb);
}

static int lb_connect(void *state, const char *url, const chat_client_transport_sink *sink,
                      void *sink_data)
{
    chat_loopback *lb = state;
    (void)url; /* any URL: there is only one far end */
    pthread_mutex_lock(&lb->mu);
    lb->connects++;
    lb->sink = sink;
    lb->sink_data = sink_data;
    lb->phase = lb->refuse ? LB_REFUSED : LB_OPENING;
    queue_clear(&lb->to_engine); /* frames of an earlier connection never reach this one */
    pthread_cond_broadcast(&lb->cv);
    pthread_mutex_unlock(&lb->mu);
    wake_engine(lb);
    return CHAT_OK;
}

static int lb_send_text(void *state, const char *data, size_t len)
{
    chat_loopback *lb = state;
    pthread_mutex_lock(&lb->mu);
    int rc = CHAT_OK;
    if (lb->phase != LB_OPEN) {
        rc = chat__error_set(CHAT_ECLOSED, 0, "loopback connection is not open");
    } else {
        lb_frame *f = frame_new(data, len);
        if (!f)
            rc = chat__error_set(CHAT_ENOMEM, 0, "out of memory");
        else {
            queue_push(&lb->to_peer, f);
            pthread_cond_broadcast(&lb->cv);
        }
    }
    pthread_mutex_unlock(&lb->mu);
    return rc;
}

static void lb_close(void *state)
{
    chat_loopback *lb = state;
    pthread_mutex_lock(&lb->mu);
    lb->phase = LB_CLOSED;
    queue_clear(&lb->to_engine);
    pthread_cond_broadcast(&lb->cv);
    pthread_mutex_unlock(&lb->mu);
}

/* One pending event for the engine, taken under the lock. */
enum { EV_NONE, EV_OPEN, EV_TEXT, EV_CLOSE };

static int take_event(chat_loopback *lb, lb_frame **frame, int *code, char *reason,
                      size_t reason_cap)
{
    switch (lb->phase) {
    case LB_OPENING:
        lb->phase = LB_OPEN; /* before on_open, which sends the auth frame */
        lb->opens++;
        pthread_cond_broadcast(&lb->cv);
        return EV_OPEN;
    case LB_REFUSED:
        lb->phase = LB_CLOSED;
        *code = 1006;
        snprintf(reason, reason_cap, "connection refused (loopback)");
        return EV_CLOSE;
    case LB_OPEN:
        *frame = queue_pop(&lb->to_engine);
        return *frame ? EV_TEXT : EV_NONE;
    case LB_CLOSING:
        /* frames the far end sent before closing arrive first, as on a socket */
        *frame = queue_pop(&lb->to_engine);
        if (*frame)
            return EV_TEXT;
        lb->phase = LB_CLOSED;
        *code = lb->close_code;
        snprintf(reason, reason_cap, "%s", lb->close_reason);
        return EV_CLOSE;
    default:
        return EV_NONE;
    }
}

static int lb_poll(void *state, int timeout_ms)
{
    chat_loopback *lb = state;
    pthread_mutex_lock(&lb->mu);
    int ready = lb->phase == LB_OPENING || lb->phase == LB_REFUSED || lb->phase == LB_CLOSING ||
                (lb->phase == LB_OPEN && lb->to_engine.head);
    pthread_mutex_unlock(&lb->mu);

    struct pollfd pf = {.fd = lb->wake_fd, .events = POLLIN};
    int rc = poll(&pf, 1, ready ? 0 : timeout_ms);
    if (rc < 0 && errno != EINTR)
        return chat__error_set(CHAT_EIO, errno, "poll: %s", strerror(errno));
    if (rc > 0) {
        uint64_t v;
        (void)!read(lb->wake_fd, &v, sizeof v);
    }

    for (;;) {
        lb_frame *f = NULL;
        int code = 0;
        char reason[sizeof lb->close_reason];
        pthread_mutex_lock(&lb->mu);
        int ev = take_event(lb, &f, &code, reason, sizeof reason);
        const chat_client_transport_sink *sink = lb->sink;
        void *sd = lb->sink_data;
        pthread_mutex_unlock(&lb->mu);
        if (ev == EV_NONE || !sink) {
            chat__free(f);
            return CHAT_OK;
        }
        if (ev == EV_OPEN)
            sink->on_open(sd);
        else if (ev == EV_TEXT)
            sink->on_text(f->data, f->len, sd);
        else
            sink->on_close(code, reason, sd);
        chat__free(f);
    }
}

static void lb_wake(void *state) { wake_engine(state); }

static int lb_ctl(void *state, int op, void *arg)
{
    (void)state, (void)op, (void)arg;
    return CHAT_ENOTSUP;
}

static const chat_client_transport_ops lb_ops = {
    .version = CHAT_CLIENT_TRANSPORT_OPS_VERSION,
    .destroy = lb_destroy,
    .connect = lb_connect,
    .send_text = lb_send_text,
    .close = lb_close,
    .poll = lb_poll,
    .wake = lb_wake,
    .ctl = lb_ctl,
};

const chat_client_transport_ops *chat_client_transport_loopback_ops(void) { return &lb_ops; }

int chat_client_transport_loopback_new(void **state_out, chat_loopback **peer_out)
{
    if (!state_out || !peer_out)
        return chat__error_set(CHAT_EINVAL, 0, "state_out or peer_out is NULL");
    chat_loopback *lb = chat__calloc(1, sizeof *lb);
    if (!lb)
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    lb->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (lb->wake_fd < 0) {
        int e = errno;
        chat__free(lb);
        return chat__error_set(CHAT_EIO, e, "eventfd: %s", strerror(e));
    }
    chat__cond_init_mono(&lb->cv);
    pthread_mutex_init(&lb->mu, NULL);
    lb->refs = 2;
    *state_out = lb;
    *peer_out = lb;
    return CHAT_OK;
}

/* ---- the far end ------------------------------------------------------------------------- */

/* Wait under lb->mu until ready(lb) or the deadline; @return 1 when ready. */
static int wait_until(chat_loopback *lb, int (*ready)(chat_loopback *), int timeout_ms)
{
    struct timespec dl = chat__mono_deadline(timeout_ms);
    while (!ready(lb))
        if (pthread_cond_timedwait(&lb->cv, &lb->mu, &dl) == ETIMEDOUT)
            return ready(lb);
    return 1;
}

static int has_frame(chat_loopback *lb) { return lb->to_peer.head != NULL; }
static int is_open(chat_loopback *lb) { return lb->phase == LB_OPEN; }

void chat_loopback_free(chat_loopback *lb)
{
    if (lb)
        unref(lb);
}

void chat_loopback_set_refuse(chat_loopback *lb, int refuse)
{
    pthread_mutex_lock(&lb->mu);
    lb->refuse = refuse != 0;
    pthread_mutex_unlock(&lb->mu);
}

int chat_loopback_wait_open(chat_loopback *lb, int timeout_ms)
{
    pthread_mutex_lock(&lb->mu);
    int ok = wait_until(lb, is_open, timeout_ms);
    pthread_mutex_unlock(&lb->mu);
    return ok ? CHAT_OK : chat__error_set(CHAT_ETIMEDOUT, 0, "no open loopback connection");
}

int chat_loopback_recv(char **frame_out, chat_loopback *lb, int timeout_ms)
{
    if (!frame_out)
        return chat__error_set(CHAT_EINVAL, 0, "frame_out is NULL");
    *frame_out = NULL;
    pthread_mutex_lock(&lb->mu);
    wait_until(lb, has_frame, timeout_ms);
    lb_frame *f = queue_pop(&lb->to_peer);
    pthread_mutex_unlock(&lb->mu);
    if (!f)
        return chat__error_set(CHAT_ETIMEDOUT, 0, "no frame from the client");
    /* the frame's header is dropped: hand out a plain string the caller frees with
     * chat_string_free() */
    char *s = chat__malloc(f->len + 1);
    if (!s) {
        chat__free(f);
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    }
    memcpy(s, f->data, f->len + 1);
    chat__free(f);
    *frame_out = s;
    return CHAT_OK;
}

int chat_loopback_send(chat_loopback *lb, const char *data, size_t len)
{
    if (!data)
        return chat__error_set(CHAT_EINVAL, 0, "data is NULL");
    pthread_mutex_lock(&lb->mu);
    int rc = CHAT_OK;
    if (lb->phase != LB_OPEN && lb->phase != LB_OPENING) {
        rc = chat__error_set(CHAT_ECLOSED, 0, "no open loopback connection");
    } else {
        lb_frame *f = frame_new(data, len);
        if (!f)
            rc = chat__error_set(CHAT_ENOMEM, 0, "out of memory");
        else
            queue_push(&lb->to_engine, f);
    }
    pthread_mutex_unlock(&lb->mu);
    if (rc == CHAT_OK)
        wake_engine(lb);
    return rc;
}

int chat_loopback_close(chat_loopback *lb, int code, const char *reason)
{
    if (code < 1000 || code > 4999)
        return chat__error_set(CHAT_EINVAL, 0, "close code %d outside 1000..4999", code);
    pthread_mutex_lock(&lb->mu);
    int rc = CHAT_OK;
    if (lb->phase != LB_OPEN && lb->phase != LB_OPENING) {
        rc = chat__error_set(CHAT_ECLOSED, 0, "no open loopback connection");
    } else {
        lb->phase = LB_CLOSING;
        lb->close_code = code;
        snprintf(lb->close_reason, sizeof lb->close_reason, "%s", reason ? reason : "");
    }
    pthread_mutex_unlock(&lb->mu);
    if (rc == CHAT_OK)
        wake_engine(lb);
    return rc;
}

unsigned chat_loopback_connects(chat_loopback *lb)
{
    pthread_mutex_lock(&lb->mu);
    unsigned n = lb->connects;
    pthread_mutex_unlock(&lb->mu);
    return n;
}
