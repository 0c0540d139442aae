/* Worker threads and group commit; see worker.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* SCHED_BATCH */
#endif
#include "server/internal.h"

#include "core/error.h"
#include "core/monowait.h"
#include "core/thread.h"
#include "store/checked.h"

#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHANGE_KEY CHAT_STORE_CHANGE_KEY
/* retry_after_ms of requests refused because the store was unavailable. */
#define CHAT__STORE_RETRY_MS 500

int chat__job_fail(chat__job *job, int code, const char *reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(job->message, sizeof job->message, fmt, ap);
    va_end(ap);
    job->status = code;
    job->reason = reason;
    return code;
}

/* Hand a finished batch back: synchronous callers are signalled one by one, the rest goes to
 * the loop thread as one list, under one lock and with one wake-up; or, when the batch ran on
 * the loop thread itself (here), straight to each job's done(). */
static void finish(chat__worker *w, chat__job *batch, int here)
{
    chat__job *head = NULL, *last = NULL;
    while (batch) {
        chat__job *next = batch->next;
        batch->next = NULL;
        if (batch->sync_cond) {
            pthread_mutex_lock(batch->sync_lock);
            batch->sync_done = 1;
            pthread_cond_signal(batch->sync_cond);
            pthread_mutex_unlock(batch->sync_lock);
        } else if (here) {
            batch->done(w->srv, batch);
        } else {
            if (last)
                last->next = batch;
            else
                head = batch;
            last = batch;
        }
        batch = next;
    }
    if (head)
        chat__server_post_list(w->srv, head, last);
}

/* Conversations a batch's jobs name, locked first in id order: two servers' batches then take
 * the conversations they share in the same order, and never wait for each other in a cycle
 * (a store that several servers write; the others need not have lock_convs). At most
 * LOCK_MAX; the rest are locked as they are read. */
#define LOCK_MAX 1024

static int cmp_conv(const void *a, const void *b)
{
    chat_conv_id x = *(const chat_conv_id *)a, y = *(const chat_conv_id *)b;
    return x < y ? -1 : x > y;
}

static int lock_named_convs(const chat__txn *tx, const chat__job *batch)
{
    if (tx->ops->version < 4 || !tx->ops->lock_convs)
        return CHAT_OK;
    chat_conv_id ids[LOCK_MAX];
    size_t n = 0;
    for (const chat__job *j = batch; j && n < LOCK_MAX; j = j->next)
        if (j->lock_conv > 0)
            ids[n++] = j->lock_conv;
    if (n < 2)
        return CHAT_OK;
    qsort(ids, n, sizeof ids[0], cmp_conv);
    size_t m = 1;
    for (size_t i = 1; i < n; i++)
        if (ids[i] != ids[m - 1])
            ids[m++] = ids[i];
    /* One conversation has no order to keep: its job locks it when it reads it. */
    return m < 2 ? CHAT_OK : tx->ops->lock_convs(tx->st, ids, m);
}

/* Run one batch inside one transaction. A store failure anywhere rolls back the whole batch:
 * every job in it fails and nothing it computed is sent. The failure is CHAT_EAGAIN ("busy",
 * retry after CHAT__STORE_RETRY_MS) when the store answered CHAT_EAGAIN during the batch (a
 * database unreachable or restarting, a transaction lost to another server's), else
 * CHAT_EIO. */
static void run_batch(chat__worker *w, chat__job *batch)
{
    chat_server *srv = w->srv;
    chat__txn tx = {
        .ops = srv->store, .st = srv->store_st, .now_ms = chat__now_ms(srv), .srv = srv};
    int rc = CHAT_OK;
    int in_tx = 0;
    uint64_t t0 = w->transactional ? chat__mono_ns() : 0;

    if (w->transactional) {
        int64_t change = 0;
        rc = tx.ops->begin(tx.st);
        in_tx = rc == CHAT_OK;
        if (rc == CHAT_OK)
            rc = lock_named_convs(&tx, batch);
        if (rc == CHAT_OK) {
            int g = tx.ops->meta_get(tx.st, CHANGE_KEY, &change);
            if (g != CHAT_OK && g != CHAT_ENOTFOUND)
                rc = g;
        }
        tx.change = tx.horizon = (uint64_t)change;
    }
    uint64_t change0 = tx.change;
    const char *what = "begin";

    for (chat__job *j = batch; j && rc == CHAT_OK; j = j->next) {
        chat__job_clear(j);
        int r = j->run(j, w->transactional ? &tx : NULL);
        if (r == CHAT_EIO || r == CHAT_ENOMEM) {
            rc = r;
            what = "job";
        }
    }
    if (w->transactional && rc == CHAT_OK) {
        if (tx.change != change0)
            rc = tx.ops->meta_set(tx.st, CHANGE_KEY, (int64_t)tx.change);
        if (rc == CHAT_OK) {
            rc = tx.ops->commit(tx.st);
            what = "commit";
        }
    }
    if (rc != CHAT_OK) {
        /* Log the original failure before rollback() can overwrite the error record. */
        chat__log(srv, CHAT_LOG_ERROR, "store transaction failed at %s: %s (%s)", what,
                  chat_error_name(rc), chat_error_last()->message);
        if (in_tx)
            tx.ops->rollback(tx.st);
        int busy = w->transactional &&
                   (rc == CHAT_EAGAIN || chat__store_checked_transient(tx.ops, tx.st));
        for (chat__job *j = batch; j; j = j->next) {
            if (j->discard)
                j->discard(j);
            if (busy) {
                chat__job_fail(j, CHAT_EAGAIN, "busy",
                               "the store is unavailable; nothing was stored, retry");
                j->retry_after_ms = CHAT__STORE_RETRY_MS;
            } else {
                chat__job_fail(j, CHAT_EIO, "storage", "the store failed; nothing was stored");
            }
        }
    }
    /* Counted by the thread that holds busy: one owner at a time (stats.h). */
    uint64_t n = 0, commit_us = 0;
    if (w->transactional) {
        uint64_t t1 = chat__mono_ns();
        commit_us = t1 / 1000;
        if (rc == CHAT_OK) {
            chat__hist_latency(&w->stats.commit_us, (t1 - t0) / 1000);
            chat__count(&w->stats.stored, tx.stored);
        } else {
            chat__count(&w->stats.failed, 1);
        }
    }
    for (chat__job *j = batch; j; j = j->next) {
        j->commit_us = rc == CHAT_OK ? commit_us : 0;
        n++;
    }
    chat__count(&w->stats.batches, 1);
    chat__count(&w->stats.jobs, n);
    if (w->transactional)
        chat__hist_batch(&w->stats.batch, n);
}

static void *worker_main(void *arg)
{
    chat__worker *w = arg;
    chat__thread_name(w->transactional ? "chat-writer" : "chat-hasher");
#ifdef SCHED_BATCH
    /* A batch thread does not preempt the loop thread when woken: the loop finishes its pass
     * and blocks in epoll first, so the writer takes what the whole pass queued (larger group
     * commits, two context switches per pass instead of per request, when both threads share
     * a core). CFS still gives it its fair share under load, so it is not starved. */
    struct sched_param sp = {0};
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
#endif
    pthread_mutex_lock(&w->lock);
    for (;;) {
        /* Sleep on an empty queue, and while the loop thread runs a job itself. */
        while ((!w->head && !w->stop) || (w->head && w->busy))
            pthread_cond_wait(&w->cond, &w->lock);
        if (!w->head)
            break; /* stopping, and nothing left */
        if (w->window_ns && !w->stop && w->gap_ns * 2 <= w->window_ns) {
            /* Group commit: every commit costs pages written and two wake-ups whatever its
             * size, so under load waiting a moment for more requests is cheaper than
             * committing each alone. Only under load: when fewer than two jobs a window
             * arrive, the wait would add latency and save nothing. Jobs that already waited
             * through a commit (their since_ns is old) go at once; so does a queue of
             * window_batch. */
            struct timespec ts = chat__mono_at(w->since_ns + w->window_ns);
            while (!w->stop && w->n_queued < w->window_batch &&
                   pthread_cond_timedwait(&w->cond, &w->lock, &ts) == 0)
                ;
        }
        /* Take up to max_batch jobs: everything that queued up during the last commit. */
        chat__job *batch = w->head, *last = batch;
        size_t n = 1;
        while (last->next && n < w->max_batch) {
            last = last->next;
            n++;
        }
        w->head = last->next;
        w->n_queued -= n;
        if (!w->head)
            w->tail = NULL;
        else
            w->since_ns = 0; /* the rest waited through this batch: no window for them */
        last->next = NULL;
        w->busy = 1;
        pthread_mutex_unlock(&w->lock);
        run_batch(w, batch);
        finish(w, batch, 0);
        pthread_mutex_lock(&w->lock);
        w->busy = 0;
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int chat__worker_start(chat__worker *w, chat_server *srv, int transactional)
{
    memset(w, 0, sizeof *w);
    w->srv = srv;
    w->transactional = transactional;
    w->max_batch = transactional ? 1024 : 1;
    if (transactional) {
        w->window_ns = (uint64_t)chat__limit(srv, CHAT_LIMIT_COMMIT_WINDOW_US) * 1000u;
        w->window_batch = w->max_batch / 4;
        w->gap_ns = 4 * w->window_ns; /* idle: the first requests do not wait */
    }
    pthread_mutex_init(&w->lock, NULL);
    chat__cond_init_mono(&w->cond); /* the commit window's deadline */
    if (chat__thread_start(&w->thread, worker_main, w) != 0) {
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        return chat__error_set(CHAT_ERROR, 0, "cannot start a worker thread");
    }
    w->started = 1;
    return CHAT_OK;
}

uint64_t chat__worker_gap_next(uint64_t gap_ns, uint64_t dt_ns, size_t n, uint64_t window_ns)
{
    uint64_t cap = 4 * window_ns;
    uint64_t gap = (dt_ns < cap ? dt_ns : cap) / (n ? n : 1);
    return gap_ns - gap_ns / 8 + gap / 8;
}

void chat__worker_submit_list(chat__worker *w, chat__job *head, chat__job *tail)
{
    tail->next = NULL;
    size_t n = 1;
    for (chat__job *j = head; j != tail; j = j->next)
        n++;
    pthread_mutex_lock(&w->lock);
    /* The worker sleeps on an empty queue, or in a commit window until the queue is big
     * enough: wake it on those two edges only. */
    int was_empty = w->head == NULL;
    if (w->window_ns) { /* since_ns and gap_ns matter only with a window */
        uint64_t now = chat__mono_ns();
        w->gap_ns = chat__worker_gap_next(w->gap_ns, now - w->submit_ns, n, w->window_ns);
        w->submit_ns = now;
        if (was_empty)
            w->since_ns = now;
    }
    int filled = w->window_ns && w->n_queued < w->window_batch &&
                 w->n_queued + n >= w->window_batch;
    w->n_queued += n;
    if (w->tail)
        w->tail->next = head;
    else
        w->head = head;
    w->tail = tail;
    if (was_empty || filled)
        pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

void chat__worker_submit(chat__worker *w, chat__job *job)
{
    chat__worker_submit_list(w, job, job);
}

int chat__worker_run_here(chat__worker *w, chat__job *job)
{
    pthread_mutex_lock(&w->lock);
    /* Only with nothing queued or running: jobs run in the order they were submitted. */
    int idle = w->started && !w->stop && !w->head && !w->busy;
    if (idle)
        w->busy = 1;
    pthread_mutex_unlock(&w->lock);
    if (!idle)
        return 0;
    job->next = NULL;
    run_batch(w, job);
    pthread_mutex_lock(&w->lock);
    w->busy = 0;
    if (w->head) /* queued by another thread meanwhile: the worker waits for busy to clear */
        pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    finish(w, job, 1); /* after busy is clear: done() may submit again */
    return 1;
}

int chat__worker_run_sync(chat__worker *w, chat__job *job)
{
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
    job->sync_lock = &lock;
    job->sync_cond = &cond;
    job->sync_done = 0;
    chat__worker_submit(w, job);
    pthread_mutex_lock(&lock);
    while (!job->sync_done)
        pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    pthread_cond_destroy(&cond);
    pthread_mutex_destroy(&lock);
    return job->status;
}

void chat__worker_stop(chat__worker *w)
{
    if (!w->started)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    w->started = 0;
}
