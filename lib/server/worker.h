/* Worker threads of the server. The writer runs store jobs in group-committed transactions:
 * every job queued while a commit is in flight joins the next transaction, so throughput
 * holds with real fsyncs and the loop thread never waits on the disk. The hasher runs
 * password hashing one at a time. Finished jobs go back to the loop thread. */
#ifndef CHAT_SERVER_WORKER_H
#define CHAT_SERVER_WORKER_H

#include "chat/server.h"
#include "server/stats.h"

#include <pthread.h>
#include <stdint.h>

typedef struct chat__job chat__job;

/* The store as a job sees it inside a transaction. */
typedef struct chat__txn {
    const chat_store_ops *ops;
    void *st;
    uint64_t change;   /* inbox change counter; jobs bump it with chat__txn_bump() */
    int64_t now_ms;
    chat_server *srv;
    uint64_t stored;   /* messages appended in this transaction (counted once committed) */
    /* The counter as committed when the transaction began: every change up to it is visible
     * to this transaction, and no change committed later is at or below it. Cursors handed to
     * clients are at most this, never change: with several servers on one store, this
     * transaction's own changes may be renumbered above what others commit before it. */
    uint64_t horizon;
} chat__txn;

struct chat__job {
    chat__job *next;
    /* Worker thread. tx is NULL on workers without a store. Must not write to the store when
     * it fails with anything but CHAT_EIO, which aborts the whole batch. */
    int (*run)(chat__job *job, chat__txn *tx);
    /* Loop thread, once, after run (or instead of it at shutdown, status CHAT_ECLOSED);
     * owns and frees the job. */
    void (*done)(chat_server *srv, chat__job *job);
    /* Optional: drop outputs of a run whose transaction was rolled back. */
    void (*discard)(chat__job *job);
    /* A conversation the job will read or write, or 0: its batch locks the ones its jobs name
     * first, in id order (chat_store_ops.lock_convs). A hint only: what a job reads is locked
     * as it is read anyway. */
    chat_conv_id lock_conv;
    int status;
    uint64_t commit_us;  /* CLOCK_MONOTONIC us when its transaction committed, 0: none */
    const char *reason;  /* wire reason of a failure */
    int64_t retry_after_ms; /* of a failure worth retrying later; 0: none said */
    char message[160];
    /* Synchronous callers wait here instead of getting done() on the loop thread. */
    pthread_mutex_t *sync_lock;
    pthread_cond_t *sync_cond;
    int sync_done;
};

typedef struct chat__worker {
    chat_server *srv;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    chat__job *head, *tail;
    int started, stop, transactional;
    size_t max_batch;
    /* Commit window (CHAT_LIMIT_COMMIT_WINDOW_US): the first job of a batch waits up to
     * window_ns for company, unless window_batch jobs are queued first. 0: no wait. It waits
     * only while jobs arrive at least twice per window (gap_ns, see chat__worker_gap_next):
     * a lone request is never held for company that is not coming. */
    uint64_t window_ns;
    size_t window_batch;
    size_t n_queued;    /* jobs in head..tail */
    uint64_t since_ns;  /* CLOCK_MONOTONIC time the oldest queued job has waited from */
    uint64_t gap_ns;    /* moving average of the time between submitted jobs */
    uint64_t submit_ns; /* CLOCK_MONOTONIC time of the last submission */
    int busy;           /* a batch is running, on the worker thread or on the caller's */
    /* Statistics, written by the thread that runs the batch (under busy). */
    chat__writer_stats stats;
} chat__worker;

int chat__worker_start(chat__worker *w, chat_server *srv, int transactional);
/* The moving average of the gap between jobs after n more arrived dt ns after the last ones
 * (an average of 1/8 weight per submission). A gap counts as at most four windows, so that
 * after an idle spell a steady stream engages the window again within about 20 submissions. */
uint64_t chat__worker_gap_next(uint64_t gap_ns, uint64_t dt_ns, size_t n, uint64_t window_ns);
/* Queue a job. [any thread] */
void chat__worker_submit(chat__worker *w, chat__job *job);
/* Queue a linked list of jobs (head..tail, in order) with one lock and one wake-up. */
void chat__worker_submit_list(chat__worker *w, chat__job *head, chat__job *tail);
/* Run one job on the calling thread, in its own transaction, then call its done(), if the
 * worker is idle (nothing queued, no batch running); else run nothing and return 0. For a
 * store that never blocks (the in-memory one): the hand-over to the worker thread and back
 * costs more than the job. [loop thread] */
int chat__worker_run_here(chat__worker *w, chat__job *job);
/* Queue a job and block until it ran; done() is not called. [any thread but the worker's] */
int chat__worker_run_sync(chat__worker *w, chat__job *job);
/* Finish what is queued, then join. */
void chat__worker_stop(chat__worker *w);

/* Next value of the inbox change counter. */
static inline uint64_t chat__txn_bump(chat__txn *tx)
{
    return ++tx->change;
}

/* Clear a job's outcome (status CHAT_OK, no reason, no message). */
static inline void chat__job_clear(chat__job *job)
{
    job->status = CHAT_OK;
    job->reason = NULL;
    job->retry_after_ms = 0;
    job->message[0] = '\0';
}

/* Record a failure on a job and return code. */
int chat__job_fail(chat__job *job, int code, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
