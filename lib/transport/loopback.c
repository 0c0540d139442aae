/* The loopback server transport (loopback.h). One mutex guards everything the test and the
 * loop thread share; the loop thread never holds it while it calls the engine, because the
 * engine calls back into the transport (write, want_write, ...) from there. Both the
 * WebSocket connections and the HTTP transactions are chat__lb_conn, so chat__tconn and
 * chat__thttp handles are the same pointers. */
#include "transport/loopback.h"

#include "chat/errors.h"
#include "core/alloc.h"
#include "core/monowait.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define LB_EPOCH_MS 1000000
#define LB_MAX_HDRS 32

typedef struct lb_frame {
    struct lb_frame *next;
    int kind; /* LB_TEXT, LB_PONG, or a CHAT__TP_* refusal */
    size_t len;
    char data[];
} lb_frame;

enum { LB_TEXT = 100, LB_PONG };

typedef struct lb_queue {
    lb_frame *head, *tail;
    size_t n;
} lb_queue;

enum { C_OPENING, C_OPEN, C_CLOSED, C_REFUSED };

struct chat__lb_conn {
    chat__lb *lb;
    chat__lb_conn *next_all;
    int state;
    void *conn;          /* the engine's connection (WebSocket) [loop] */
    void *slot;          /* the engine's transaction (HTTP) [loop] */
    int status;          /* the upgrade's refusal */
    char *path, *query;
    char *hdr[2 * LB_MAX_HDRS];
    int nhdr;
    lb_queue in, out;    /* to the engine; from the engine */
    lb_queue held;       /* written past the window */
    size_t window;
    int want_write, closing, kill, hangup;
    int close_code;
    unsigned pings;
    /* HTTP */
    int http, method;
    const unsigned char *body; /* borrowed from the request until the transaction ends */
    size_t body_len, body_sent, chunk;
    int requested, body_done, complete;
    chat__lb_http_resp *resp;
};

typedef struct lb_timer {
    struct lb_timer *next;
    chat__timer *t;
    int64_t due;
    int armed;
    chat__lb *lb;
} lb_timer;

struct chat__lb {
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* anything changed, both ways */
    _Atomic int64_t now;
    chat__transport_sink sink;
    int running, shutting_down;
    int wake;
    int idle;            /* the loop waits with nothing to do */
    unsigned long passes;
    chat__lb_conn *conns;
    lb_timer *timers;
};

/* ---- queues ---- */

static lb_frame *frame_new(int kind, const void *data, size_t len)
{
    lb_frame *f = chat__malloc(sizeof *f + len + 1);
    if (!f)
        return NULL;
    f->next = NULL;
    f->kind = kind;
    f->len = len;
    if (len)
        memcpy(f->data, data, len);
    f->data[len] = '\0';
    return f;
}

static void q_push(lb_queue *q, lb_frame *f)
{
    f->next = NULL;
    if (q->tail)
        q->tail->next = f;
    else
        q->head = f;
    q->tail = f;
    q->n++;
}

static lb_frame *q_pop(lb_queue *q)
{
    lb_frame *f = q->head;
    if (f) {
        q->head = f->next;
        if (!q->head)
            q->tail = NULL;
        q->n--;
    }
    return f;
}

static void q_clear(lb_queue *q)
{
    lb_frame *f;
    while ((f = q_pop(q)))
        chat__free(f);
}

static void changed(chat__lb *lb)
{
    lb->idle = 0;
    pthread_cond_broadcast(&lb->cv);
}

static int64_t mono_ms(void)
{
    return (int64_t)(chat__mono_ns() / 1000000);
}

/* Wait on the condition until timeout_ms since start passed; 0 when the time is up. */
static int wait_until(chat__lb *lb, int64_t start, int timeout_ms)
{
    int64_t left = timeout_ms - (mono_ms() - start);
    if (left <= 0)
        return 0;
    struct timespec at = chat__mono_deadline((int)left);
    pthread_cond_timedwait(&lb->cv, &lb->mu, &at);
    return 1;
}

/* ---- the test's side ---- */

int chat__lb_new(chat__lb **out)
{
    chat__lb *lb = chat__calloc(1, sizeof *lb);
    if (!lb)
        return CHAT_ENOMEM;
    pthread_mutex_init(&lb->mu, NULL);
    chat__cond_init_mono(&lb->cv);
    atomic_store(&lb->now, LB_EPOCH_MS);
    *out = lb;
    return CHAT_OK;
}

static void conn_free(chat__lb_conn *c)
{
    q_clear(&c->in);
    q_clear(&c->out);
    q_clear(&c->held);
    for (int i = 0; i < c->nhdr; i++)
        chat__free(c->hdr[i]);
    chat__free(c->path);
    chat__free(c->query);
    chat__free(c);
}

void chat__lb_free(chat__lb *lb)
{
    if (!lb)
        return;
    while (lb->conns) {
        chat__lb_conn *c = lb->conns;
        lb->conns = c->next_all;
        conn_free(c);
    }
    while (lb->timers) {
        lb_timer *t = lb->timers;
        lb->timers = t->next;
        chat__free(t);
    }
    pthread_cond_destroy(&lb->cv);
    pthread_mutex_destroy(&lb->mu);
    chat__free(lb);
}

int64_t chat__lb_now(chat__lb *lb)
{
    return atomic_load(&lb->now);
}

static int has_work(chat__lb *lb);

int chat__lb_settle(chat__lb *lb, int timeout_ms)
{
    int64_t start = mono_ms();
    pthread_mutex_lock(&lb->mu);
    int rc = CHAT_OK;
    while (lb->running && (!lb->idle || has_work(lb)))
        if (!wait_until(lb, start, timeout_ms)) {
            rc = CHAT_ETIMEDOUT;
            break;
        }
    pthread_mutex_unlock(&lb->mu);
    return rc;
}

void chat__lb_advance(chat__lb *lb, int64_t ms)
{
    pthread_mutex_lock(&lb->mu);
    atomic_fetch_add(&lb->now, ms);
    changed(lb);
    pthread_mutex_unlock(&lb->mu);
    chat__lb_settle(lb, 5000);
}

static chat__lb_conn *conn_add(chat__lb *lb)
{
    chat__lb_conn *c = chat__calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->lb = lb;
    c->window = SIZE_MAX;
    c->next_all = lb->conns;
    lb->conns = c;
    return c;
}

static int add_header(chat__lb_conn *c, const char *name, const char *value)
{
    if (c->nhdr + 2 > 2 * LB_MAX_HDRS)
        return CHAT_ELIMIT;
    char *n = chat__strdup(name), *v = chat__strdup(value);
    if (!n || !v) {
        chat__free(n);
        chat__free(v);
        return CHAT_ENOMEM;
    }
    c->hdr[c->nhdr++] = n;
    c->hdr[c->nhdr++] = v;
    return CHAT_OK;
}

int chat__lb_connect(chat__lb *lb, chat__lb_conn **out, const char *path, const char *origin,
                     int *status_out, int timeout_ms)
{
    int64_t start = mono_ms();
    pthread_mutex_lock(&lb->mu);
    if (!lb->running || lb->shutting_down) {
        pthread_mutex_unlock(&lb->mu);
        return CHAT_ECLOSED;
    }
    chat__lb_conn *c = conn_add(lb);
    int rc = c ? CHAT_OK : CHAT_ENOMEM;
    if (c && !(c->path = chat__strdup(path ? path : "/")))
        rc = CHAT_ENOMEM;
    if (c && rc == CHAT_OK && origin)
        rc = add_header(c, "origin", origin);
    if (rc != CHAT_OK) {
        if (c)
            c->state = C_CLOSED;
        pthread_mutex_unlock(&lb->mu);
        return rc;
    }
    c->state = C_OPENING;
    changed(lb);
    while (c->state == C_OPENING)
        if (!wait_until(lb, start, timeout_ms)) {
            pthread_mutex_unlock(&lb->mu);
            return CHAT_ETIMEDOUT;
        }
    rc = c->state == C_OPEN ? CHAT_OK : c->state == C_REFUSED ? CHAT_EPERM : CHAT_ECLOSED;
    if (status_out)
        *status_out = c->status;
    pthread_mutex_unlock(&lb->mu);
    if (rc == CHAT_OK)
        *out = c;
    return rc;
}

static int send_kind(chat__lb_conn *c, int kind, const char *data, size_t len)
{
    chat__lb *lb = c->lb;
    lb_frame *f = frame_new(kind, data, len);
    if (!f)
        return CHAT_ENOMEM;
    pthread_mutex_lock(&lb->mu);
    if (c->state != C_OPEN || c->hangup || c->close_code) {
        pthread_mutex_unlock(&lb->mu);
        chat__free(f);
        return CHAT_ECLOSED;
    }
    q_push(&c->in, f);
    changed(lb);
    pthread_mutex_unlock(&lb->mu);
    return CHAT_OK;
}

int chat__lb_send(chat__lb_conn *c, const char *text, size_t len)
{
    return send_kind(c, LB_TEXT, text, len);
}

int chat__lb_send_refused(chat__lb_conn *c, int why)
{
    return send_kind(c, why, NULL, 0);
}

int chat__lb_send_pong(chat__lb_conn *c)
{
    return send_kind(c, LB_PONG, NULL, 0);
}

int chat__lb_recv(chat__lb_conn *c, char **out, int timeout_ms)
{
    chat__lb *lb = c->lb;
    int64_t start = mono_ms();
    pthread_mutex_lock(&lb->mu);
    int rc;
    for (;;) {
        lb_frame *f = q_pop(&c->out);
        if (f) {
            pthread_mutex_unlock(&lb->mu);
            /* The frame's own allocation holds the text after its header: hand over a copy
             * the caller frees with chat__free. */
            char *s = chat__malloc(f->len + 1);
            if (!s) {
                chat__free(f);
                return CHAT_ENOMEM;
            }
            memcpy(s, f->data, f->len + 1);
            chat__free(f);
            *out = s;
            return CHAT_OK;
        }
        if (c->state == C_CLOSED) {
            rc = CHAT_ECLOSED;
            break;
        }
        if (!wait_until(lb, start, timeout_ms)) {
            rc = CHAT_ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&lb->mu);
    return rc;
}

size_t chat__lb_pending(chat__lb_conn *c)
{
    pthread_mutex_lock(&c->lb->mu);
    size_t n = c->out.n;
    pthread_mutex_unlock(&c->lb->mu);
    return n;
}

int chat__lb_close_code(chat__lb_conn *c)
{
    pthread_mutex_lock(&c->lb->mu);
    int code = c->state == C_CLOSED ? (c->close_code ? c->close_code : 1006) : 0;
    pthread_mutex_unlock(&c->lb->mu);
    return code;
}

unsigned chat__lb_pings(chat__lb_conn *c)
{
    pthread_mutex_lock(&c->lb->mu);
    unsigned n = c->pings;
    pthread_mutex_unlock(&c->lb->mu);
    return n;
}

/* Move held frames to the reader while they fit. [mu held] */
static void drain_held(chat__lb_conn *c)
{
    while (c->held.head && c->held.head->len <= c->window) {
        lb_frame *f = q_pop(&c->held);
        if (c->window != SIZE_MAX)
            c->window -= f->len;
        q_push(&c->out, f);
    }
}

void chat__lb_set_window(chat__lb_conn *c, size_t bytes)
{
    pthread_mutex_lock(&c->lb->mu);
    c->window = bytes;
    drain_held(c);
    changed(c->lb);
    pthread_mutex_unlock(&c->lb->mu);
}

static void set_flag(chat__lb *lb, int *flag, int value);

void chat__lb_hangup(chat__lb_conn *c)
{
    set_flag(c->lb, &c->hangup, 1);
}

/* ---- HTTP, the test's side ---- */

int chat__lb_http(chat__lb *lb, const chat__lb_http_req *req, chat__lb_http_resp *resp,
                  int timeout_ms)
{
    int64_t start = mono_ms();
    memset(resp, 0, sizeof *resp);
    pthread_mutex_lock(&lb->mu);
    if (!lb->running || lb->shutting_down) {
        pthread_mutex_unlock(&lb->mu);
        return CHAT_ECLOSED;
    }
    chat__lb_conn *c = conn_add(lb);
    int rc = c ? CHAT_OK : CHAT_ENOMEM;
    if (c) {
        c->http = 1;
        c->method = req->method;
        c->path = chat__strdup(req->path);
        c->query = chat__strdup(req->query ? req->query : "");
        if (!c->path || !c->query)
            rc = CHAT_ENOMEM;
        for (int i = 0; rc == CHAT_OK && req->headers && req->headers[i]; i += 2)
            rc = add_header(c, req->headers[i], req->headers[i + 1]);
        c->body = req->body;
        c->body_len = req->body_len;
        c->chunk = req->chunk ? req->chunk : req->body_len;
        c->resp = resp;
    }
    if (rc != CHAT_OK) {
        if (c)
            c->state = C_CLOSED;
        pthread_mutex_unlock(&lb->mu);
        return rc;
    }
    c->state = C_OPEN;
    changed(lb);
    while (!c->complete && c->state != C_CLOSED)
        if (!wait_until(lb, start, timeout_ms)) {
            rc = CHAT_ETIMEDOUT;
            break;
        }
    /* A response followed by a close (the engine answered non-zero) is a response too. */
    if (rc == CHAT_OK && !c->complete && !resp->status)
        rc = CHAT_ECLOSED;
    /* The request's body is the caller's: the loop must not read it after this returns. */
    c->body_len = c->body_sent;
    if (rc != CHAT_OK) {
        c->hangup = 1;
        changed(lb);
    }
    c->resp = NULL;
    pthread_mutex_unlock(&lb->mu);
    return rc;
}

const char *chat__lb_http_header(const chat__lb_http_resp *resp, const char *name, char *buf,
                                 size_t size)
{
    size_t n = strlen(name);
    for (const char *p = resp->headers; *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > n + 1 && strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            size_t vl = len - (size_t)(v - p);
            if (vl >= size)
                vl = size - 1;
            memcpy(buf, v, vl);
            buf[vl] = '\0';
            return buf;
        }
        p += len + (eol ? 1 : 0);
    }
    return NULL;
}

/* ---- the loop ---- */

static int conn_has_work(const chat__lb_conn *c, int shutting_down)
{
    if (c->state == C_OPENING)
        return 1;
    if (c->state != C_OPEN)
        return 0;
    if (c->hangup || c->kill || c->closing || shutting_down || c->in.head)
        return 1;
    if (c->want_write && !c->held.head && c->window > 0)
        return 1;
    if (c->http && (!c->requested || (!c->body_done && c->slot)))
        return 1;
    return 0;
}

static int has_work(chat__lb *lb)
{
    if (lb->wake)
        return 1;
    for (chat__lb_conn *c = lb->conns; c; c = c->next_all)
        if (conn_has_work(c, lb->shutting_down))
            return 1;
    int64_t now = atomic_load(&lb->now);
    for (lb_timer *t = lb->timers; t; t = t->next)
        if (t->armed && t->due <= now)
            return 1;
    return 0;
}

/* The connection is gone: tell the engine (outside the lock) and mark it. [mu held] */
static void conn_close(chat__lb *lb, chat__lb_conn *c, int code)
{
    if (!c->close_code)
        c->close_code = code;
    void *conn = c->conn, *slot = c->slot;
    c->conn = NULL;
    c->state = C_CLOSED;
    c->want_write = 0;
    q_clear(&c->in);
    pthread_mutex_unlock(&lb->mu);
    if (c->http)
        lb->sink.http(lb->sink.ud, (chat__thttp *)c, CHAT__HTTP_CLOSED, &slot, NULL, 0);
    else if (conn)
        lb->sink.closed(conn);
    pthread_mutex_lock(&lb->mu);
    c->slot = slot;
    changed(lb);
}

/* One HTTP event to the engine; a non-zero answer ends the connection. [mu held] */
static void http_event(chat__lb *lb, chat__lb_conn *c, int ev, const void *in, size_t len)
{
    void *slot = c->slot;
    pthread_mutex_unlock(&lb->mu);
    int r = lb->sink.http(lb->sink.ud, (chat__thttp *)c, ev, &slot, in, len);
    pthread_mutex_lock(&lb->mu);
    c->slot = slot;
    if (r && c->state == C_OPEN) {
        if (c->resp)
            c->resp->closed = 1;
        conn_close(lb, c, 1006);
    }
}

/* Serve one connection's pending work. [mu held; may drop it] */
static void conn_step(chat__lb *lb, chat__lb_conn *c)
{
    if (c->state == C_OPENING) {
        char *path = c->path;
        pthread_mutex_unlock(&lb->mu);
        int status = lb->shutting_down ? 503
                                       : lb->sink.upgrade(lb->sink.ud, (chat__thttp *)c, path);
        void *conn = status == 0 ? lb->sink.open(lb->sink.ud, (chat__tconn *)c) : NULL;
        pthread_mutex_lock(&lb->mu);
        c->conn = conn;
        c->status = status;
        c->state = status ? C_REFUSED : conn ? C_OPEN : C_CLOSED;
        if (c->state == C_CLOSED)
            c->close_code = 1011;
        changed(lb);
        return;
    }
    if (c->state != C_OPEN)
        return;
    if (c->hangup) {
        conn_close(lb, c, 1006);
        return;
    }
    if (c->kill) {
        conn_close(lb, c, 1006);
        return;
    }
    if (c->closing || lb->shutting_down) {
        conn_close(lb, c, 1001);
        return;
    }
    if (c->http) {
        if (!c->requested) {
            c->requested = 1;
            http_event(lb, c, CHAT__HTTP_REQUEST, c->path, strlen(c->path));
        } else if (c->slot && c->body_sent < c->body_len) {
            size_t n = c->body_len - c->body_sent;
            if (n > c->chunk)
                n = c->chunk;
            const unsigned char *p = c->body + c->body_sent;
            c->body_sent += n;
            http_event(lb, c, CHAT__HTTP_BODY, p, n);
        } else if (c->slot && !c->body_done) {
            c->body_done = 1;
            if (c->body_len)
                http_event(lb, c, CHAT__HTTP_BODY_DONE, NULL, 0);
        }
        if (c->state == C_OPEN && c->want_write) {
            c->want_write = 0;
            http_event(lb, c, CHAT__HTTP_WRITABLE, NULL, 0);
        }
        return;
    }
    lb_frame *f = q_pop(&c->in);
    if (f) {
        void *conn = c->conn;
        pthread_mutex_unlock(&lb->mu);
        lb->sink.heard(conn);
        if (f->kind == LB_TEXT)
            lb->sink.message(conn, f->data, f->len);
        else if (f->kind != LB_PONG)
            lb->sink.refused(conn, f->kind);
        chat__free(f);
        pthread_mutex_lock(&lb->mu);
        return;
    }
    if (c->want_write && !c->held.head && c->window > 0) {
        c->want_write = 0;
        void *conn = c->conn;
        pthread_mutex_unlock(&lb->mu);
        int r = lb->sink.writable(conn);
        pthread_mutex_lock(&lb->mu);
        if (r && c->state == C_OPEN)
            c->closing = 1;
    }
}

static void lb_run(void *st)
{
    chat__lb *lb = st;
    pthread_mutex_lock(&lb->mu);
    for (;;) {
        lb->passes++;
        int did = 0;
        if (lb->wake) {
            lb->wake = 0;
            did = 1;
            pthread_mutex_unlock(&lb->mu);
            lb->sink.wake(lb->sink.ud);
            pthread_mutex_lock(&lb->mu);
        }
        for (chat__lb_conn *c = lb->conns; c; c = c->next_all)
            if (conn_has_work(c, lb->shutting_down)) {
                did = 1;
                conn_step(lb, c);
            }
        int64_t now = atomic_load(&lb->now);
        for (lb_timer *t = lb->timers; t; t = t->next)
            if (t->armed && t->due <= now) {
                did = 1;
                t->armed = 0;
                chat__timer *ct = t->t;
                pthread_mutex_unlock(&lb->mu);
                ct->cb(ct);
                pthread_mutex_lock(&lb->mu);
                break; /* the callback may have closed timers: walk again */
            }
        pthread_mutex_unlock(&lb->mu);
        lb->sink.flush(lb->sink.ud);
        pthread_mutex_lock(&lb->mu);
        if (lb->shutting_down && !has_work(lb))
            break;
        /* Idle again after every wake-up that brought no work: a change that made none
         * (a hang-up of a connection already closed) must not keep chat__lb_settle waiting. */
        while (!did && !has_work(lb)) {
            if (!lb->idle) {
                lb->idle = 1;
                pthread_cond_broadcast(&lb->cv);
            }
            pthread_cond_wait(&lb->cv, &lb->mu);
        }
    }
    lb->running = 0;
    changed(lb);
    pthread_mutex_unlock(&lb->mu);
}

/* ---- the engine's side ---- */

static int lb_open(void **out, void *arg, const chat__transport_config *cfg,
                   const chat__transport_sink *sink)
{
    (void)cfg;
    chat__lb *lb = arg;
    if (!lb)
        return CHAT_EINVAL;
    pthread_mutex_lock(&lb->mu);
    lb->sink = *sink;
    lb->running = 1;
    lb->shutting_down = 0;
    lb->idle = 0;
    pthread_mutex_unlock(&lb->mu);
    *out = lb;
    return CHAT_OK;
}

/* Set one of the shared flags and wake whoever waits. */
static void set_flag(chat__lb *lb, int *flag, int value)
{
    pthread_mutex_lock(&lb->mu);
    *flag = value;
    changed(lb);
    pthread_mutex_unlock(&lb->mu);
}

static void lb_wake(void *st)
{
    set_flag(st, &((chat__lb *)st)->wake, 1);
}

static void lb_shutdown(void *st)
{
    set_flag(st, &((chat__lb *)st)->shutting_down, 1);
}

static void lb_close(void *st)
{
    set_flag(st, &((chat__lb *)st)->running, 0);
}

static int64_t lb_now_ms(void *st)
{
    return atomic_load(&((chat__lb *)st)->now);
}

static int lb_port(void *st)
{
    (void)st;
    return 1; /* no socket; non-zero so that the engine reads it as listening */
}

static int lb_timer_init(void *st, chat__timer *t, void (*cb)(chat__timer *t))
{
    chat__lb *lb = st;
    lb_timer *lt = chat__calloc(1, sizeof *lt);
    if (!lt)
        return CHAT_ENOMEM;
    lt->t = t;
    lt->lb = lb;
    t->cb = cb;
    t->impl = lt;
    pthread_mutex_lock(&lb->mu);
    lt->next = lb->timers;
    lb->timers = lt;
    pthread_mutex_unlock(&lb->mu);
    return CHAT_OK;
}

static void lb_timer_start(chat__timer *t, int64_t delay_ms)
{
    lb_timer *lt = t->impl;
    if (!lt)
        return;
    pthread_mutex_lock(&lt->lb->mu);
    lt->due = atomic_load(&lt->lb->now) + (delay_ms > 0 ? delay_ms : 0);
    lt->armed = 1;
    changed(lt->lb);
    pthread_mutex_unlock(&lt->lb->mu);
}

static void lb_timer_stop(chat__timer *t)
{
    lb_timer *lt = t->impl;
    if (!lt)
        return;
    pthread_mutex_lock(&lt->lb->mu);
    lt->armed = 0;
    pthread_mutex_unlock(&lt->lb->mu);
}

static void lb_timer_close(chat__timer *t)
{
    lb_timer *lt = t->impl;
    if (!lt)
        return;
    chat__lb *lb = lt->lb;
    pthread_mutex_lock(&lb->mu);
    for (lb_timer **p = &lb->timers; *p; p = &(*p)->next)
        if (*p == lt) {
            *p = lt->next;
            break;
        }
    pthread_mutex_unlock(&lb->mu);
    chat__free(lt);
    t->impl = NULL;
}

static chat__lb_conn *C(const void *h)
{
    return (chat__lb_conn *)h;
}

static int lb_write(chat__tconn *t, unsigned char *data, size_t len)
{
    chat__lb_conn *c = C(t);
    lb_frame *f = frame_new(LB_TEXT, data, len);
    if (!f)
        return -1;
    pthread_mutex_lock(&c->lb->mu);
    q_push(&c->held, f);
    drain_held(c);
    changed(c->lb);
    pthread_mutex_unlock(&c->lb->mu);
    return 0;
}

static int lb_busy(chat__tconn *t)
{
    chat__lb_conn *c = C(t);
    pthread_mutex_lock(&c->lb->mu);
    int busy = c->held.head != NULL;
    pthread_mutex_unlock(&c->lb->mu);
    return busy;
}

static void lb_want_write(chat__tconn *t)
{
    set_flag(C(t)->lb, &C(t)->want_write, 1);
}

static int lb_ping(chat__tconn *t)
{
    chat__lb_conn *c = C(t);
    pthread_mutex_lock(&c->lb->mu);
    c->pings++;
    pthread_mutex_unlock(&c->lb->mu);
    return 0;
}

static void lb_send_close(chat__tconn *t, int code, const char *reason)
{
    (void)reason;
    chat__lb_conn *c = C(t);
    pthread_mutex_lock(&c->lb->mu);
    c->close_code = code;
    pthread_mutex_unlock(&c->lb->mu);
}

static void lb_kill(chat__tconn *t)
{
    set_flag(C(t)->lb, &C(t)->kill, 1);
}

static int lb_http_method(chat__thttp *h)
{
    return C(h)->method;
}

static int lb_http_header(chat__thttp *h, const char *name, char *buf, size_t size)
{
    chat__lb_conn *c = C(h);
    int found = -1, count = 0;
    for (int i = 0; i < c->nhdr; i += 2)
        if (strcasecmp(c->hdr[i], name) == 0) {
            if (found < 0)
                found = i;
            count++;
        }
    if (size)
        buf[0] = '\0';
    if (found < 0)
        return CHAT__HDR_ABSENT;
    if (count > 1)
        return CHAT__HDR_REPEATED;
    size_t n = strlen(c->hdr[found + 1]);
    if (n >= size)
        return CHAT__HDR_TOO_LONG;
    memcpy(buf, c->hdr[found + 1], n + 1);
    return (int)n;
}

static int lb_http_query(chat__thttp *h, char *buf, size_t size)
{
    size_t n = strlen(C(h)->query);
    if (n >= size)
        return -1;
    memcpy(buf, C(h)->query, n + 1);
    return (int)n;
}

static void resp_add(chat__lb_http_resp *r, const char *name, const char *value)
{
    size_t used = strlen(r->headers);
    snprintf(r->headers + used, sizeof r->headers - used, "%s: %s\n", name, value);
}

static int lb_http_respond(chat__thttp *h, int status, const char *ctype, int64_t content_length,
                           const chat__http_hdr *hdr, int n, int close)
{
    chat__lb_conn *c = C(h);
    pthread_mutex_lock(&c->lb->mu);
    chat__lb_http_resp *r = c->resp;
    if (r) {
        r->status = status;
        r->headers[0] = '\0';
        if (ctype && ctype[0])
            resp_add(r, "content-type", ctype);
        if (content_length >= 0) {
            char len[24];
            snprintf(len, sizeof len, "%lld", (long long)content_length);
            resp_add(r, "content-length", len);
        }
        for (int i = 0; i < n; i++)
            resp_add(r, hdr[i].name, hdr[i].value);
        r->closed = close;
    }
    pthread_mutex_unlock(&c->lb->mu);
    return 0;
}

static int lb_http_write(chat__thttp *h, unsigned char *data, size_t len, int final)
{
    (void)final;
    chat__lb_conn *c = C(h);
    pthread_mutex_lock(&c->lb->mu);
    chat__lb_http_resp *r = c->resp;
    int rc = 0;
    if (r) {
        char *nb = chat__realloc(r->body, r->body_len + len + 1);
        if (!nb) {
            rc = -1;
        } else {
            memcpy(nb + r->body_len, data, len);
            r->body = nb;
            r->body_len += len;
            nb[r->body_len] = '\0';
        }
    }
    pthread_mutex_unlock(&c->lb->mu);
    return rc;
}

static int lb_http_continue(chat__thttp *h)
{
    (void)h;
    return 0;
}

static int lb_http_choked(chat__thttp *h)
{
    (void)h;
    return 0;
}

static void lb_http_want_write(chat__thttp *h)
{
    lb_want_write((chat__tconn *)h);
}

static int lb_http_complete(chat__thttp *h)
{
    chat__lb_conn *c = C(h);
    pthread_mutex_lock(&c->lb->mu);
    c->complete = 1;
    c->hangup = 1; /* one transaction per loopback connection */
    changed(c->lb);
    pthread_mutex_unlock(&c->lb->mu);
    return 0;
}

static void lb_http_progress(chat__thttp *h)
{
    (void)h;
}

static const chat__transport_ops loopback_ops = {
    .name = "loopback",
    .open = lb_open,
    .run = lb_run,
    .wake = lb_wake,
    .shutdown = lb_shutdown,
    .close = lb_close,
    .now_ms = lb_now_ms,
    .port = lb_port,
    .timer_init = lb_timer_init,
    .timer_start = lb_timer_start,
    .timer_stop = lb_timer_stop,
    .timer_close = lb_timer_close,
    .write = lb_write,
    .busy = lb_busy,
    .want_write = lb_want_write,
    .ping = lb_ping,
    .send_close = lb_send_close,
    .kill = lb_kill,
    .http_method = lb_http_method,
    .http_header = lb_http_header,
    .http_query = lb_http_query,
    .http_respond = lb_http_respond,
    .http_write = lb_http_write,
    .http_continue = lb_http_continue,
    .http_choked = lb_http_choked,
    .http_want_write = lb_http_want_write,
    .http_complete = lb_http_complete,
    .http_progress = lb_http_progress,
};

const chat__transport_ops *chat__transport_loopback(void)
{
    return &loopback_ops;
}
