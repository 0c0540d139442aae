/*
 * The webhook notifier. notify() (loop thread) only serializes the event to JSON and appends
 * it to a bounded ring under a mutex; one worker thread POSTs the bodies in order over plain
 * blocking sockets with timeouts. A full ring drops the event rather than block the loop.
 * destroy() does not drain: it cuts the request in flight short and drops the rest, so it
 * never waits on a dead host; call CHAT__PUSH_CTL_FLUSH first to deliver what is queued.
 */
#include "chat/sys/push.h"
#include "chat/sys/store.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/monowait.h"
#include "core/threadname.h"
#include "push/http.h"
#include "push/webhook.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define QUEUE_CAP 4096
#define TIMEOUT_MS 5000      /* connect, send and receive, each */
#define RETRY_BACKOFF_MS 250 /* before the one retry of a failed connection */
#define FLUSH_LIMIT_MS 10000

struct job {
    size_t len;
    char body[];
};

struct webhook {
    chat__http_url url;
    chat__http_abort abort;
    pthread_t worker;
    int worker_started;
    pthread_mutex_t mu;
    pthread_cond_t work; /* worker waits: a job arrived or stopping */
    pthread_cond_t idle; /* flushers wait: a job finished */
    struct job **ring;   /* guarded by mu, with everything below */
    size_t head, count;
    int in_flight;
    int stopping;
    chat__push_webhook_stats stats;
};

/* ---- JSON ---- */

static int add_int(cJSON *o, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* 64-bit ids and counters go out as raw integer literals: a double would round them. */
static int add_int(cJSON *o, const char *key, const char *fmt, ...)
{
    char buf[24];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return cJSON_AddRawToObject(o, key, buf) != NULL;
}

/* Kinds outside the enums fall back to "group" / "event" rather than lose the push. */
static struct job *encode(const chat_push_event *ev)
{
    const char *conv_kind = ev->conv_kind == CHAT_CONV_DIRECT ? "direct" : "group";
    const char *kind = ev->msg_kind == CHAT_MSG_TEXT    ? "text"
                       : ev->msg_kind == CHAT_MSG_MEDIA ? "media"
                                                        : "event";
    cJSON *o = cJSON_CreateObject();
    int ok = o && cJSON_AddStringToObject(o, "user", ev->user) &&
             add_int(o, "conv", "%" PRId64, ev->conv) &&
             cJSON_AddStringToObject(o, "conv_kind", conv_kind) &&
             cJSON_AddStringToObject(o, "title", ev->title ? ev->title : "") &&
             add_int(o, "seq", "%" PRIu64, ev->seq) &&
             cJSON_AddStringToObject(o, "sender", ev->sender) &&
             cJSON_AddStringToObject(o, "kind", kind) &&
             (!ev->preview || cJSON_AddStringToObject(o, "preview", ev->preview)) &&
             add_int(o, "unread", "%" PRIu64, ev->unread) &&
             add_int(o, "ts", "%" PRId64, ev->ts_ms);
    char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!text)
        return NULL;
    /* Copied so that queued memory goes through the libchat allocator like everything else. */
    size_t len = strlen(text);
    struct job *j = chat__malloc(sizeof(*j) + len + 1);
    if (j) {
        j->len = len;
        memcpy(j->body, text, len + 1);
    }
    cJSON_free(text);
    return j;
}

/* ---- worker ---- */

/* One POST, plus one retry when no connection could be made (nothing was sent, so the
 * receiver cannot see it twice). @return 1 on a 2xx answer. */
static int post(struct webhook *w, const struct job *j)
{
    int rc = chat__http_post(&w->url, j->body, j->len, TIMEOUT_MS, &w->abort);
    if (rc == CHAT_ECLOSED) {
        struct timespec until = chat__mono_deadline(RETRY_BACKOFF_MS);
        pthread_mutex_lock(&w->mu);
        while (!w->stopping && pthread_cond_timedwait(&w->work, &w->mu, &until) != ETIMEDOUT)
            ;
        int stopping = w->stopping;
        pthread_mutex_unlock(&w->mu);
        if (!stopping)
            rc = chat__http_post(&w->url, j->body, j->len, TIMEOUT_MS, &w->abort);
    }
    return rc >= 200 && rc <= 299;
}

static void *worker_main(void *arg)
{
    struct webhook *w = arg;
    chat__thread_name("chat-webhook");
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->count && !w->stopping)
            pthread_cond_wait(&w->work, &w->mu);
        if (w->stopping)
            break;
        struct job *j = w->ring[w->head];
        w->head = (w->head + 1) % QUEUE_CAP;
        w->count--;
        w->in_flight = 1;
        pthread_mutex_unlock(&w->mu);

        int ok = post(w, j);
        chat__free(j);

        pthread_mutex_lock(&w->mu);
        w->in_flight = 0;
        if (ok)
            w->stats.sent++;
        else
            w->stats.failed++;
        pthread_cond_broadcast(&w->idle);
    }
    /* Stopping: what is still queued is dropped, not sent (see the file comment). */
    for (; w->count; w->count--, w->head = (w->head + 1) % QUEUE_CAP) {
        chat__free(w->ring[w->head]);
        w->stats.dropped++;
    }
    pthread_cond_broadcast(&w->idle);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---- ops ---- */

static void webhook_destroy(void *state)
{
    struct webhook *w = state;
    if (!w)
        return;
    if (w->worker_started) {
        pthread_mutex_lock(&w->mu);
        w->stopping = 1;
        pthread_cond_broadcast(&w->work);
        pthread_mutex_unlock(&w->mu);
        chat__http_abort_fire(&w->abort);
        pthread_join(w->worker, NULL);
        pthread_cond_destroy(&w->work);
        pthread_cond_destroy(&w->idle);
        pthread_mutex_destroy(&w->mu);
        chat__http_abort_destroy(&w->abort);
    }
    chat__http_url_clear(&w->url);
    chat__free(w->ring);
    chat__free(w);
}

/* @return CHAT_OK, CHAT_EINVAL, CHAT_ENOMEM, CHAT_EAGAIN (queue full: dropped and counted). */
static int webhook_notify(void *state, const chat_push_event *ev)
{
    struct webhook *w = state;
    if (!w || !ev || !ev->user || !ev->sender)
        return chat__error_set(CHAT_EINVAL, 0, "webhook notify: event, user and sender are "
                                               "required");
    struct job *j = encode(ev);
    if (!j)
        return chat__error_set(CHAT_ENOMEM, 0, "webhook notify: out of memory");
    pthread_mutex_lock(&w->mu);
    if (w->count == QUEUE_CAP || w->stopping) {
        w->stats.dropped++;
        pthread_mutex_unlock(&w->mu);
        chat__free(j);
        return chat__error_set(CHAT_EAGAIN, 0, "webhook notify: queue full (%d), event dropped",
                               QUEUE_CAP);
    }
    w->ring[(w->head + w->count) % QUEUE_CAP] = j;
    w->count++;
    w->stats.queued++;
    pthread_cond_signal(&w->work);
    pthread_mutex_unlock(&w->mu);
    return CHAT_OK;
}

static int flush(struct webhook *w)
{
    struct timespec until = chat__mono_deadline(FLUSH_LIMIT_MS);
    int rc = CHAT_OK;
    pthread_mutex_lock(&w->mu);
    while ((w->count || w->in_flight) && !w->stopping) {
        if (pthread_cond_timedwait(&w->idle, &w->mu, &until) == ETIMEDOUT) {
            rc = chat__error_set(CHAT_ETIMEDOUT, 0, "webhook flush: %zu queued after %d ms",
                                 w->count, FLUSH_LIMIT_MS);
            break;
        }
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

static int webhook_ctl(void *state, int op, void *arg)
{
    struct webhook *w = state;
    if (!w)
        return chat__error_set(CHAT_EINVAL, 0, "webhook ctl: state is NULL");
    switch (op) {
    case CHAT__PUSH_CTL_STATS:
        if (!arg)
            return chat__error_set(CHAT_EINVAL, 0, "webhook ctl STATS: arg is NULL");
        pthread_mutex_lock(&w->mu);
        *(chat__push_webhook_stats *)arg = w->stats;
        pthread_mutex_unlock(&w->mu);
        return CHAT_OK;
    case CHAT__PUSH_CTL_FLUSH:
        return flush(w);
    default:
        return CHAT_ENOTSUP;
    }
}

static const chat_push_ops webhook_ops = {
    .version = CHAT_PUSH_OPS_VERSION,
    .destroy = webhook_destroy,
    .notify = webhook_notify,
    .ctl = webhook_ctl,
};

static int init_sync(struct webhook *w)
{
    int rc = pthread_mutex_init(&w->mu, NULL);
    if (rc == 0 && (rc = chat__cond_init_mono(&w->work)) != 0)
        pthread_mutex_destroy(&w->mu);
    if (rc == 0 && (rc = chat__cond_init_mono(&w->idle)) != 0) {
        pthread_cond_destroy(&w->work);
        pthread_mutex_destroy(&w->mu);
    }
    return rc;
}

/* The worker blocks every signal so the host's handlers keep running on the host's threads. */
static int start_worker(struct webhook *w)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&w->worker, NULL, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int chat_push_webhook_new(void **state_out, const char *url)
{
    if (!state_out)
        return chat__error_set(CHAT_EINVAL, 0, "chat_push_webhook_new: state_out is NULL");
    struct webhook *w = chat__calloc(1, sizeof(*w));
    if (!w)
        return chat__error_set(CHAT_ENOMEM, 0, "chat_push_webhook_new: out of memory");
    int rc = chat__http_url_parse(&w->url, url);
    if (rc) {
        chat__free(w);
        return rc;
    }
    w->ring = chat__calloc(QUEUE_CAP, sizeof(*w->ring));
    if (!w->ring) {
        webhook_destroy(w);
        return chat__error_set(CHAT_ENOMEM, 0, "chat_push_webhook_new: out of memory");
    }
    if (init_sync(w) != 0) {
        webhook_destroy(w);
        return chat__error_set(CHAT_ERROR, 0, "chat_push_webhook_new: mutex/condvar init failed");
    }
    chat__http_abort_init(&w->abort);
    rc = start_worker(w);
    if (rc != 0) {
        pthread_cond_destroy(&w->work);
        pthread_cond_destroy(&w->idle);
        pthread_mutex_destroy(&w->mu);
        chat__http_abort_destroy(&w->abort);
        webhook_destroy(w);
        return chat__error_set(CHAT_ERROR, rc, "chat_push_webhook_new: cannot start the worker "
                                               "thread: %s", strerror(rc));
    }
    w->worker_started = 1;
    *state_out = w;
    return CHAT_OK;
}

const chat_push_ops *chat_push_webhook_ops(void)
{
    return &webhook_ops;
}
