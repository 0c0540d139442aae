/* The writer's group commit, over a fake store: a vtable that forwards every method to the
 * memory store, counts transactions, and can fail or hold a commit on request. The server is
 * created but never started: jobs go through chat__worker_run_sync from test threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "chat/errors.h"
#include "chat/server.h"
#include "chat/sys/store.h"
#include "server/internal.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* ---- the fake store ---- */

typedef struct fake_store {
    const chat_store_ops *mem;
    void *inner;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int begins, commits, rollbacks;
    int fail_begin_at;   /* this begin (1-based) fails; 0: none */
    int fail_commit_at;  /* this commit (1-based) fails; 0: none */
    int fail_put_at;     /* this user_put (1-based) fails; 0: none */
    int fail_rc;         /* with this code; 0: CHAT_EIO */
    int puts;
    int block_commit_at; /* this commit waits for release; 0: none */
    int blocked;         /* a commit is waiting */
    int released;
    int destroyed;
    int lock_calls;          /* lock_convs: how often, and the ids of the last call */
    chat_conv_id locked[16];
    size_t n_locked;
} fake_store;

static fake_store F;

#define FS(st) (((fake_store *)(st))->inner)
#define MEM(st) (((fake_store *)(st))->mem)

static void f_destroy(void *st)
{
    fake_store *f = st;
    f->mem->destroy(f->inner);
    f->inner = NULL;
    f->destroyed = 1;
}

static int f_begin(void *st)
{
    fake_store *f = st;
    pthread_mutex_lock(&f->lock);
    int fail = ++f->begins == f->fail_begin_at;
    pthread_mutex_unlock(&f->lock);
    if (fail)
        return F.fail_rc ? F.fail_rc : CHAT_EIO; /* no transaction was opened */
    return f->mem->begin(f->inner);
}

static int f_commit(void *st)
{
    fake_store *f = st;
    pthread_mutex_lock(&f->lock);
    int n = ++f->commits;
    if (n == f->block_commit_at) {
        f->blocked = 1;
        pthread_cond_broadcast(&f->cond);
        while (!f->released)
            pthread_cond_wait(&f->cond, &f->lock);
        f->blocked = 0;
    }
    int fail = n == f->fail_commit_at;
    pthread_mutex_unlock(&f->lock);
    if (fail)
        return F.fail_rc ? F.fail_rc : CHAT_EIO; /* the transaction stays open for rollback() */
    return f->mem->commit(f->inner);
}

static int f_rollback(void *st)
{
    fake_store *f = st;
    pthread_mutex_lock(&f->lock);
    f->rollbacks++;
    pthread_mutex_unlock(&f->lock);
    return f->mem->rollback(f->inner);
}

static int f_conv_insert(void *st, chat_store_conv *c) { return MEM(st)->conv_insert(FS(st), c); }
static int f_conv_get(void *st, int64_t id, chat_store_conv *o) { return MEM(st)->conv_get(FS(st), id, o); }
static int f_conv_find_direct(void *st, const char *k, chat_store_conv *o) { return MEM(st)->conv_find_direct(FS(st), k, o); }
static int f_conv_update(void *st, const chat_store_conv *c) { return MEM(st)->conv_update(FS(st), c); }
static int f_member_get(void *st, int64_t c, const char *u, chat_store_member *o) { return MEM(st)->member_get(FS(st), c, u, o); }
static int f_member_put(void *st, const chat_store_member *m) { return MEM(st)->member_put(FS(st), m); }
static int f_member_list(void *st, int64_t c, int a, chat_store_member_cb cb, void *ud) { return MEM(st)->member_list(FS(st), c, a, cb, ud); }
static int f_msg_insert(void *st, const chat_store_msg *m) { return MEM(st)->msg_insert(FS(st), m); }
static int f_msg_find_cmid(void *st, int64_t c, const char *s, const char *d, const char *id, chat_store_msg_cb cb, void *ud) { return MEM(st)->msg_find_cmid(FS(st), c, s, d, id, cb, ud); }
static int f_msg_range(void *st, int64_t c, uint64_t a, uint64_t b, int l, int d, chat_store_msg_cb cb, void *ud) { return MEM(st)->msg_range(FS(st), c, a, b, l, d, cb, ud); }
static int f_user_convs(void *st, const char *u, uint64_t s, int l, chat_store_member_cb cb, void *ud) { return MEM(st)->user_convs(FS(st), u, s, l, cb, ud); }
static int f_contacts(void *st, const char *u, chat_store_name_cb cb, void *ud) { return MEM(st)->contacts(FS(st), u, cb, ud); }
static int f_user_get(void *st, const char *n, chat_store_user *o) { return MEM(st)->user_get(FS(st), n, o); }
static int f_user_put(void *st, const chat_store_user *u)
{
    fake_store *f = st;
    pthread_mutex_lock(&f->lock);
    int fail = ++f->puts == f->fail_put_at;
    pthread_mutex_unlock(&f->lock);
    if (fail)
        return f->fail_rc ? f->fail_rc : CHAT_EIO;
    return f->mem->user_put(f->inner, u);
}
static int f_revoked_put(void *st, const char *s, int64_t e) { return MEM(st)->revoked_put(FS(st), s, e); }
static int f_revoked_list(void *st, int64_t now, int (*cb)(const char *, int64_t, void *), void *ud) { return MEM(st)->revoked_list(FS(st), now, cb, ud); }
static int f_meta_get(void *st, const char *k, int64_t *v) { return MEM(st)->meta_get(FS(st), k, v); }
static int f_meta_set(void *st, const char *k, int64_t v) { return MEM(st)->meta_set(FS(st), k, v); }
static int f_lock_convs(void *st, const chat_conv_id *ids, size_t n)
{
    fake_store *f = st;
    pthread_mutex_lock(&f->lock);
    f->lock_calls++;
    f->n_locked = n < 16 ? n : 16;
    memcpy(f->locked, ids, f->n_locked * sizeof *ids);
    pthread_mutex_unlock(&f->lock);
    return CHAT_OK;
}
static int f_ctl(void *st, int op, void *arg) { return MEM(st)->ctl ? MEM(st)->ctl(FS(st), op, arg) : CHAT_ENOTSUP; }

static const chat_store_ops fake_ops = {
    .version = CHAT_STORE_OPS_VERSION,
    .destroy = f_destroy,
    .begin = f_begin,
    .commit = f_commit,
    .rollback = f_rollback,
    .conv_insert = f_conv_insert,
    .conv_get = f_conv_get,
    .conv_find_direct = f_conv_find_direct,
    .conv_update = f_conv_update,
    .member_get = f_member_get,
    .member_put = f_member_put,
    .member_list = f_member_list,
    .msg_insert = f_msg_insert,
    .msg_find_cmid = f_msg_find_cmid,
    .msg_range = f_msg_range,
    .user_convs = f_user_convs,
    .contacts = f_contacts,
    .user_get = f_user_get,
    .user_put = f_user_put,
    .revoked_put = f_revoked_put,
    .revoked_list = f_revoked_list,
    .meta_get = f_meta_get,
    .meta_set = f_meta_set,
    .ctl = f_ctl,
    .lock_convs = f_lock_convs,
};

static int counter(int *field)
{
    pthread_mutex_lock(&F.lock);
    int v = *field;
    pthread_mutex_unlock(&F.lock);
    return v;
}

/* Wait until a commit is held. */
static void wait_blocked(void)
{
    pthread_mutex_lock(&F.lock);
    while (!F.blocked)
        pthread_cond_wait(&F.cond, &F.lock);
    pthread_mutex_unlock(&F.lock);
}

static void release_commit(void)
{
    pthread_mutex_lock(&F.lock);
    F.released = 1;
    pthread_cond_broadcast(&F.cond);
    pthread_mutex_unlock(&F.lock);
}

/* ---- test jobs ---- */

#define MAX_JOBS 64

typedef struct tjob {
    chat__job job;
    chat__worker *w;
    int id;
    int fail_with;      /* run returns this (after chat__job_fail) instead of writing */
    int ran, discarded, done_called;
    int status;         /* what chat__worker_run_sync returned */
    int had_tx;
    pthread_t ran_on;
    chat_server *tx_srv;
    uint64_t change_seen; /* tx->change after this job's bump */
} tjob;

static chat_server *srv;
static tjob jobs[MAX_JOBS];
static pthread_t threads[MAX_JOBS];
static int n_threads;

/* Run order, appended by the writer thread. */
static pthread_mutex_t order_lock = PTHREAD_MUTEX_INITIALIZER;
static int order[MAX_JOBS * 2];
static int n_order;

static void user_name(char *buf, size_t size, int id)
{
    snprintf(buf, size, "u%d", id);
}

static int job_run(chat__job *job, chat__txn *tx)
{
    tjob *j = (tjob *)job;
    j->ran++;
    j->ran_on = pthread_self();
    j->had_tx = tx != NULL;
    pthread_mutex_lock(&order_lock);
    order[n_order++] = j->id;
    pthread_mutex_unlock(&order_lock);
    if (j->fail_with)
        return chat__job_fail(job, j->fail_with, "test", "job %d fails", j->id);
    if (!tx)
        return CHAT_OK;
    j->tx_srv = tx->srv;
    chat_store_user u = {0};
    user_name(u.name, sizeof u.name, j->id);
    u.created_ms = tx->now_ms;
    int rc = tx->ops->user_put(tx->st, &u);
    if (rc != CHAT_OK)
        return chat__job_fail(job, CHAT_EIO, "storage", "user_put failed");
    j->change_seen = chat__txn_bump(tx);
    return CHAT_OK;
}

static void job_discard(chat__job *job)
{
    ((tjob *)job)->discarded++;
}

static void job_done(chat_server *s, chat__job *job)
{
    (void)s;
    ((tjob *)job)->done_called++;
}

static tjob *job_init(int id, chat__worker *w)
{
    assert_true(id < MAX_JOBS);
    tjob *j = &jobs[id];
    memset(j, 0, sizeof *j);
    j->id = id;
    j->w = w;
    j->job.run = job_run;
    j->job.done = job_done;
    j->job.discard = job_discard;
    return j;
}

static void *sync_thread(void *arg)
{
    tjob *j = arg;
    j->status = chat__worker_run_sync(j->w, &j->job);
    return NULL;
}

static void spawn(tjob *j)
{
    assert_true(n_threads < MAX_JOBS);
    assert_int_equal(pthread_create(&threads[n_threads], NULL, sync_thread, j), 0);
    n_threads++;
}

static void join_all(void)
{
    for (int i = 0; i < n_threads; i++)
        pthread_join(threads[i], NULL);
    n_threads = 0;
}

/* A sync job's caller wakes in done(), which the worker calls before it clears busy (it
 * keeps the batch's deliveries ahead of a job the loop runs itself): wait for that edge. */
static void wait_worker_idle(chat__worker *w)
{
    for (int i = 0; i < 5000; i++) {
        pthread_mutex_lock(&w->lock);
        int busy = w->busy;
        pthread_mutex_unlock(&w->lock);
        if (!busy)
            return;
        usleep(1000);
    }
    fail_msg("the worker stayed busy for 5 s");
}

static size_t queued(chat__worker *w)
{
    size_t n = 0;
    pthread_mutex_lock(&w->lock);
    for (chat__job *j = w->head; j; j = j->next)
        n++;
    pthread_mutex_unlock(&w->lock);
    return n;
}

/* Submit jobs from one thread each, one after the other: each is queued (behind a held
 * commit) before the next thread starts, so the submission order is known. */
static void spawn_queued(int first, int count, chat__worker *w)
{
    size_t before = queued(w);
    for (int i = 0; i < count; i++) {
        spawn(&jobs[first + i]);
        while (queued(w) < before + (size_t)i + 1)
            sched_yield();
    }
}

static int user_stored(int id)
{
    char name[16];
    chat_store_user u;
    user_name(name, sizeof name, id);
    /* The writer is idle: every job it was given has finished. */
    int rc = F.mem->user_get(F.inner, name, &u);
    assert_true(rc == CHAT_OK || rc == CHAT_ENOTFOUND);
    return rc == CHAT_OK;
}

static int64_t stored_change(void)
{
    int64_t v = 0;
    int rc = F.mem->meta_get(F.inner, "inbox_change", &v);
    assert_true(rc == CHAT_OK || rc == CHAT_ENOTFOUND);
    return v;
}

/* Jobs 0..n-1 ran, each once, in that order. */
static void assert_ran_in_order(int n)
{
    assert_int_equal(n_order, n);
    for (int i = 0; i < n; i++)
        assert_int_equal(order[i], i);
}

/* ---- fixture ---- */

static int64_t fixed_clock(void *ud)
{
    (void)ud;
    return 1764331200000;
}

/* A server config with the one token key every server needs, and nothing else. */
static chat_server_config *keyed_config(void)
{
    chat_server_config *cfg = NULL;
    assert_int_equal(chat_server_config_new(&cfg), CHAT_OK);
    static const unsigned char key[32] = {0};
    assert_int_equal(chat_server_config_add_token_key(cfg, 1, key, sizeof key), CHAT_OK);
    return cfg;
}

static int64_t window_us; /* CHAT_LIMIT_COMMIT_WINDOW_US of the next setup */

static int setup(void **state)
{
    (void)state;
    memset(&F, 0, sizeof F);
    pthread_mutex_init(&F.lock, NULL);
    pthread_cond_init(&F.cond, NULL);
    F.mem = chat_store_memory_ops();
    assert_int_equal(chat_store_memory_new(&F.inner), CHAT_OK);
    n_order = 0;
    n_threads = 0;

    chat_server_config *cfg = keyed_config();
    assert_int_equal(chat_server_config_set_clock(cfg, fixed_clock, NULL), CHAT_OK);
    assert_int_equal(chat_server_config_set_store(cfg, &fake_ops, &F), CHAT_OK);
    assert_int_equal(chat_server_config_set_limit(cfg, CHAT_LIMIT_COMMIT_WINDOW_US, window_us),
                     CHAT_OK);
    srv = NULL;
    assert_int_equal(chat_server_new(&srv, cfg), CHAT_OK);
    chat_server_config_free(cfg);
    assert_non_null(srv);
    return 0;
}

/* A commit window far longer than any test: only a full queue or shutdown ends it early. The
 * writer starts as after an idle spell (jobs sparse, no wait): a zero gap makes it as busy as
 * a stream of requests does. */
static int setup_window(void **state)
{
    window_us = 100000; /* the largest allowed, 0.1 s */
    int rc = setup(state);
    window_us = 0;
    pthread_mutex_lock(&srv->writer.lock);
    srv->writer.gap_ns = 0;
    pthread_mutex_unlock(&srv->writer.lock);
    return rc;
}

static int setup_window_idle(void **state)
{
    window_us = 100000;
    int rc = setup(state);
    window_us = 0;
    return rc;
}

static int teardown(void **state)
{
    (void)state;
    release_commit(); /* never leave the writer held, even after a failed assertion */
    join_all();
    chat_server_free(srv);
    srv = NULL;
    assert_true(F.destroyed);
    pthread_mutex_destroy(&F.lock);
    pthread_cond_destroy(&F.cond);
    return 0;
}

/* ---- tests ---- */

static void test_worker_run_sync_runs_in_one_transaction(void **state)
{
    (void)state;
    tjob *j = job_init(1, &srv->writer);
    assert_int_equal(chat__worker_run_sync(&srv->writer, &j->job), CHAT_OK);
    assert_int_equal(j->ran, 1);
    assert_true(j->had_tx);
    assert_ptr_equal(j->tx_srv, srv);
    assert_int_equal(j->done_called, 0); /* synchronous callers get no done() */
    assert_int_equal(j->discarded, 0);
    assert_int_equal(counter(&F.begins), 1);
    assert_int_equal(counter(&F.commits), 1);
    assert_int_equal(counter(&F.rollbacks), 0);
    assert_true(user_stored(1));
    assert_int_equal(chat__counter_read(&srv->writer.stats.batches), 1);
    assert_int_equal(chat__counter_read(&srv->writer.stats.jobs), 1);
}

static void test_worker_run_here_runs_on_the_caller(void **state)
{
    (void)state;
    chat__worker *w = &srv->writer;
    tjob *j = job_init(1, w);
    assert_int_equal(chat__worker_run_here(w, &j->job), 1);
    /* on this thread, in a transaction of its own, and done() before the call returned */
    assert_int_equal(j->ran, 1);
    assert_true(pthread_equal(j->ran_on, pthread_self()));
    assert_true(j->had_tx);
    assert_int_equal(j->done_called, 1);
    assert_int_equal(counter(&F.begins), 1);
    assert_int_equal(counter(&F.commits), 1);
    assert_true(user_stored(1));
    assert_int_equal(chat__counter_read(&w->stats.batches), 1);
    assert_int_equal(chat__counter_read(&w->stats.jobs), 1);
    assert_int_equal(w->busy, 0);
}

static void test_worker_run_here_waits_its_turn(void **state)
{
    (void)state;
    chat__worker *w = &srv->writer;
    F.block_commit_at = 1;
    job_init(0, w);
    spawn(&jobs[0]);
    wait_blocked(); /* the worker thread is committing job 0 */
    tjob *j = job_init(1, w);
    /* a job may not overtake one that runs (or waits) on the worker */
    assert_int_equal(chat__worker_run_here(w, &j->job), 0);
    assert_int_equal(j->ran, 0);
    assert_int_equal(j->done_called, 0);
    release_commit();
    join_all();
    assert_int_equal(jobs[0].status, CHAT_OK);
    wait_worker_idle(w);
    /* idle again: now it runs here */
    assert_int_equal(chat__worker_run_here(w, &j->job), 1);
    assert_int_equal(j->ran, 1);
    assert_ran_in_order(2);
}

static void test_worker_jobs_run_here_with_the_memory_store_only(void **state)
{
    (void)state;
    assert_int_equal(srv->store_here, 0); /* a host's store may block */
    chat_server_config *cfg = keyed_config();
    chat_server *mem = NULL;
    assert_int_equal(chat_server_new(&mem, cfg), CHAT_OK); /* no data dir: the memory store */
    chat_server_config_free(cfg);
    assert_int_equal(mem->store_here, 1);
    chat_server_free(mem);
}

static void *run_here_thread(void *arg)
{
    tjob *j = arg;
    j->status = chat__worker_run_here(j->w, &j->job);
    return NULL;
}

static void test_worker_waits_while_a_job_runs_here(void **state)
{
    (void)state;
    chat__worker *w = &srv->writer;
    F.block_commit_at = 1;
    /* "the loop" runs job 0 itself and is held in its commit */
    tjob *here = job_init(0, w);
    pthread_t loop;
    assert_int_equal(pthread_create(&loop, NULL, run_here_thread, here), 0);
    wait_blocked();
    /* another thread's job queues, and the worker thread leaves it there */
    job_init(1, w);
    spawn_queued(1, 1, w);
    for (int i = 0; i < 50; i++)
        sched_yield();
    usleep(20000);
    assert_int_equal(counter(&F.begins), 1);
    assert_int_equal(jobs[1].ran, 0);
    assert_int_equal(queued(w), 1);
    release_commit();
    pthread_join(loop, NULL);
    join_all();
    assert_int_equal(here->status, 1);
    assert_int_equal(here->done_called, 1);
    assert_int_equal(jobs[1].status, CHAT_OK);
    assert_int_equal(counter(&F.commits), 2);
    assert_ran_in_order(2);
}

static void test_worker_change_counter_persists_across_batches(void **state)
{
    (void)state;
    assert_int_equal(stored_change(), 0);
    tjob *a = job_init(1, &srv->writer);
    assert_int_equal(chat__worker_run_sync(&srv->writer, &a->job), CHAT_OK);
    assert_int_equal(a->change_seen, 1);
    assert_int_equal(stored_change(), 1);
    /* the next transaction starts from the stored counter */
    tjob *b = job_init(2, &srv->writer);
    assert_int_equal(chat__worker_run_sync(&srv->writer, &b->job), CHAT_OK);
    assert_int_equal(b->change_seen, 2);
    assert_int_equal(stored_change(), 2);
}

static void test_worker_group_commits_queued_jobs_in_order(void **state)
{
    (void)state;
    enum { N = 8 };
    chat__worker *w = &srv->writer;
    F.block_commit_at = 1;
    job_init(0, w);
    spawn(&jobs[0]);
    wait_blocked(); /* batch 1 (job 0) is committing */
    for (int i = 1; i <= N; i++)
        job_init(i, w);
    spawn_queued(1, N, w);
    assert_int_equal(queued(w), N);
    assert_int_equal(counter(&F.commits), 1);
    release_commit();
    join_all();

    for (int i = 0; i <= N; i++) {
        assert_int_equal(jobs[i].status, CHAT_OK);
        assert_int_equal(jobs[i].ran, 1);
        assert_true(user_stored(i));
    }
    /* everything queued during the held commit went into one more transaction */
    assert_int_equal(counter(&F.begins), 2);
    assert_int_equal(counter(&F.commits), 2);
    assert_int_equal(counter(&F.rollbacks), 0);
    assert_int_equal(chat__counter_read(&w->stats.batches), 2);
    assert_int_equal(chat__counter_read(&w->stats.jobs), N + 1);
    /* run in submission order, sharing one change counter */
    assert_ran_in_order(N + 1);
    for (int i = 1; i <= N; i++)
        assert_int_equal(jobs[i].change_seen, (uint64_t)i + 1);
    assert_int_equal(stored_change(), N + 1);
}

static void test_worker_window_joins_a_later_job(void **state)
{
    (void)state;
    chat__worker *w = &srv->writer;
    assert_int_equal(w->window_ns, 100000000u);
    job_init(0, w);
    job_init(1, w);
    spawn_queued(0, 1, w);
    /* Without a window job 0 commits alone at once; with one it is still waiting. */
    usleep(20000);
    spawn(&jobs[1]);
    join_all();
    assert_int_equal(jobs[0].status, CHAT_OK);
    assert_int_equal(jobs[1].status, CHAT_OK);
    assert_int_equal(counter(&F.commits), 1);
    assert_int_equal(chat__counter_read(&w->stats.batches), 1);
    assert_int_equal(chat__counter_read(&w->stats.jobs), 2);
    assert_ran_in_order(2);
}

static void test_worker_window_ends_when_the_batch_is_full(void **state)
{
    (void)state;
    enum { N = 4 };
    chat__worker *w = &srv->writer;
    pthread_mutex_lock(&w->lock);
    w->window_ns = 3600ull * 1000000000u; /* an hour: the queue size must end the wait */
    w->window_batch = N;
    pthread_mutex_unlock(&w->lock);
    for (int i = 0; i < N; i++)
        job_init(i, w);
    spawn_queued(0, N - 1, w);
    usleep(20000);
    assert_int_equal(counter(&F.commits), 0); /* N - 1 jobs keep waiting */
    spawn(&jobs[N - 1]);
    join_all(); /* hangs (and the test times out) if the N-th job does not end the window */
    assert_int_equal(counter(&F.commits), 1);
    assert_int_equal(chat__counter_read(&w->stats.batches), 1);
    assert_int_equal(chat__counter_read(&w->stats.jobs), N);
    for (int i = 0; i < N; i++)
        assert_true(user_stored(i));
}

static void test_worker_window_skipped_when_jobs_are_sparse(void **state)
{
    (void)state;
    chat__worker *w = &srv->writer;
    pthread_mutex_lock(&w->lock);
    assert_true(w->gap_ns * 2 > w->window_ns); /* a new writer counts as idle */
    w->window_ns = 3600ull * 1000000000u; /* an hour: a wait would time the test out */
    w->gap_ns = 4 * w->window_ns;
    pthread_mutex_unlock(&w->lock);
    job_init(0, w);
    spawn(&jobs[0]);
    join_all(); /* hangs if the lone job waits for company */
    assert_int_equal(jobs[0].status, CHAT_OK);
    assert_int_equal(counter(&F.commits), 1);
    pthread_mutex_lock(&w->lock);
    assert_true(w->gap_ns * 2 > w->window_ns); /* one job after an hour is no stream */
    pthread_mutex_unlock(&w->lock);
}

static void test_worker_gap_average(void **state)
{
    (void)state;
    const uint64_t W = 250000; /* a 250 µs window */
    uint64_t gap = 4 * W;      /* a new writer: idle */
    /* A stream of one job per W/10 engages the window within 20 submissions. */
    int k = 0;
    while (gap * 2 > W && k < 100) {
        gap = chat__worker_gap_next(gap, W / 10, 1, W);
        k++;
    }
    assert_in_range(k, 1, 20);
    /* One job per window never does: company is not coming. */
    gap = 4 * W;
    for (int i = 0; i < 200; i++) {
        gap = chat__worker_gap_next(gap, W, 1, W);
        assert_true(gap * 2 > W);
    }
    /* ... but eight per window, submitted together, do: the gap is per job. */
    for (int i = 0; i < 200; i++)
        gap = chat__worker_gap_next(gap, W, 8, W);
    assert_true(gap * 2 <= W);
    /* An idle hour counts as four windows: a busy writer is idle again within one job... */
    uint64_t busy = W / 10;
    gap = chat__worker_gap_next(busy, 3600ull * 1000000000u, 1, W);
    assert_int_equal(gap, busy - busy / 8 + W / 2);
    /* ... and a burst after it engages again as fast as after the start. */
    k = 0;
    while (gap * 2 > W && k < 100) {
        gap = chat__worker_gap_next(gap, 0, 1, W);
        k++;
    }
    assert_in_range(k, 1, 20);
    assert_int_equal(chat__worker_gap_next(0, 800, 0, W), 100); /* n 0 counts as 1 */
}

static void test_worker_failed_commit_fails_the_whole_batch(void **state)
{
    (void)state;
    enum { N = 4 };
    chat__worker *w = &srv->writer;
    F.block_commit_at = 1;
    F.fail_commit_at = 2;
    job_init(0, w);
    spawn(&jobs[0]);
    wait_blocked();
    for (int i = 1; i <= N; i++)
        job_init(i, w);
    spawn_queued(1, N, w);
    release_commit();
    join_all();

    assert_int_equal(jobs[0].status, CHAT_OK);
    assert_int_equal(jobs[0].discarded, 0);
    assert_true(user_stored(0));
    for (int i = 1; i <= N; i++) {
        assert_int_equal(jobs[i].ran, 1);
        assert_int_equal(jobs[i].status, CHAT_EIO);
        assert_int_equal(jobs[i].job.status, CHAT_EIO);
        assert_string_equal(jobs[i].job.reason, "storage");
        assert_int_equal(jobs[i].discarded, 1);
        assert_int_equal(jobs[i].done_called, 0);
        assert_false(user_stored(i)); /* rolled back */
    }
    assert_int_equal(counter(&F.commits), 2);
    assert_int_equal(counter(&F.rollbacks), 1);
    assert_int_equal(stored_change(), 1); /* the failed batch's bumps are gone too */

    /* the writer carries on: the next batch commits */
    tjob *next = job_init(N + 1, w);
    assert_int_equal(chat__worker_run_sync(w, &next->job), CHAT_OK);
    assert_int_equal(next->discarded, 0);
    assert_true(user_stored(N + 1));
    assert_int_equal(next->change_seen, 2);
    assert_int_equal(counter(&F.begins), 3);
    assert_int_equal(counter(&F.commits), 3);
    assert_int_equal(counter(&F.rollbacks), 1);
}

static void test_worker_job_eio_rolls_back_the_batch(void **state)
{
    (void)state;
    chat__worker *w = &srv->writer;
    F.block_commit_at = 1;
    job_init(0, w);
    spawn(&jobs[0]);
    wait_blocked();
    job_init(1, w);
    job_init(2, w)->fail_with = CHAT_EIO;
    job_init(3, w);
    spawn_queued(1, 3, w);
    release_commit();
    join_all();

    assert_int_equal(jobs[0].status, CHAT_OK);
    assert_true(user_stored(0));
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(jobs[i].status, CHAT_EIO);
        assert_int_equal(jobs[i].discarded, 1);
    }
    assert_int_equal(jobs[1].ran, 1);
    assert_int_equal(jobs[2].ran, 1);
    assert_false(user_stored(1)); /* written before the failing job, rolled back */
    assert_false(user_stored(3));
    assert_int_equal(counter(&F.begins), 2);
    assert_int_equal(counter(&F.commits), 1); /* the failed batch never commits */
    assert_int_equal(counter(&F.rollbacks), 1);
    assert_int_equal(stored_change(), 1);

    tjob *next = job_init(4, w);
    assert_int_equal(chat__worker_run_sync(w, &next->job), CHAT_OK);
    assert_true(user_stored(4));
    assert_int_equal(counter(&F.commits), 2);
}

static void test_worker_failed_begin_fails_the_batch(void **state)
{
    (void)state;
    chat__worker *w = &srv->writer;
    F.fail_begin_at = 1;
    tjob *j = job_init(1, w);
    assert_int_equal(chat__worker_run_sync(w, &j->job), CHAT_EIO);
    assert_int_equal(j->ran, 0); /* never runs outside a transaction */
    assert_int_equal(j->discarded, 1);
    assert_string_equal(j->job.reason, "storage");
    assert_false(user_stored(1));
    assert_int_equal(counter(&F.commits), 0);

    tjob *next = job_init(2, w);
    assert_int_equal(chat__worker_run_sync(w, &next->job), CHAT_OK);
    assert_true(user_stored(2));
    assert_int_equal(counter(&F.begins), 2);
    assert_int_equal(counter(&F.commits), 1);
}

static void test_worker_unavailable_store_answers_busy(void **state)
{
    (void)state;
    /* A store that may recover (CHAT_EAGAIN: a database unreachable or restarting) makes the
     * request busy, with a time to retry after, not a storage failure. */
    chat__worker *w = &srv->writer;
    F.fail_begin_at = 1;
    F.fail_rc = CHAT_EAGAIN;
    tjob *j = job_init(1, w);
    assert_int_equal(chat__worker_run_sync(w, &j->job), CHAT_EAGAIN);
    assert_int_equal(j->ran, 0);
    assert_string_equal(j->job.reason, "busy");
    assert_true(j->job.retry_after_ms > 0);
    assert_false(user_stored(1));

    /* The same when a job's own store call answers it: the job reports a failure as jobs do,
     * the batch learns from the store that it was a transient one. */
    F.block_commit_at = 1;
    F.fail_put_at = 3;
    job_init(0, w);
    spawn(&jobs[0]);
    wait_blocked();
    for (int i = 1; i <= 3; i++)
        job_init(i, w);
    spawn_queued(1, 3, w);
    release_commit();
    join_all();
    assert_int_equal(jobs[0].status, CHAT_OK);
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(jobs[i].status, CHAT_EAGAIN);
        assert_string_equal(jobs[i].job.reason, "busy");
        assert_int_equal(jobs[i].discarded, 1);
        assert_false(user_stored(i));
    }
    /* And the next batch, the store back, commits with no trace of it. */
    tjob *next = job_init(4, w);
    assert_int_equal(chat__worker_run_sync(w, &next->job), CHAT_OK);
    assert_int_equal(next->job.retry_after_ms, 0);
    assert_true(user_stored(4));
}

static void test_worker_job_refusal_keeps_the_batch(void **state)
{
    (void)state;
    /* A job failing with anything but EIO/ENOMEM (here a permission refusal) fails alone:
     * the rest of its batch commits. */
    chat__worker *w = &srv->writer;
    F.block_commit_at = 1;
    job_init(0, w);
    spawn(&jobs[0]);
    wait_blocked();
    job_init(1, w);
    job_init(2, w)->fail_with = CHAT_EPERM;
    job_init(3, w);
    spawn_queued(1, 3, w);
    release_commit();
    join_all();

    assert_int_equal(jobs[1].status, CHAT_OK);
    assert_int_equal(jobs[2].status, CHAT_EPERM);
    assert_string_equal(jobs[2].job.reason, "test");
    assert_string_equal(jobs[2].job.message, "job 2 fails");
    assert_int_equal(jobs[3].status, CHAT_OK);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(jobs[i].discarded, 0);
    assert_true(user_stored(1));
    assert_false(user_stored(2));
    assert_true(user_stored(3));
    assert_int_equal(counter(&F.commits), 2);
    assert_int_equal(counter(&F.rollbacks), 0);
}

static void test_worker_status_is_reset_per_run(void **state)
{
    (void)state;
    /* A job object reused after a failure starts clean. */
    chat__worker *w = &srv->writer;
    tjob *j = job_init(1, w);
    j->fail_with = CHAT_EPERM;
    assert_int_equal(chat__worker_run_sync(w, &j->job), CHAT_EPERM);
    j->fail_with = 0;
    assert_int_equal(chat__worker_run_sync(w, &j->job), CHAT_OK);
    assert_int_equal(j->job.status, CHAT_OK);
    assert_null(j->job.reason);
    assert_string_equal(j->job.message, "");
}

/* The conversations a batch's jobs name are locked first, once each, in id order; one
 * conversation alone has no order to keep. */
static void test_worker_locks_named_convs_first_in_order(void **state)
{
    (void)state;
    static const chat_conv_id named[] = {9, 0, 3, 9, 5, 0};
    enum { N = sizeof named / sizeof named[0] };
    chat__worker *w = &srv->writer;
    tjob *first = job_init(0, w); /* names one: no call */
    first->job.lock_conv = 4;
    assert_int_equal(chat__worker_run_sync(w, &first->job), CHAT_OK);
    assert_int_equal(counter(&F.lock_calls), 0);
    F.block_commit_at = 2;
    job_init(1, w);
    spawn(&jobs[1]);
    wait_blocked();
    for (int i = 0; i < N; i++)
        job_init(2 + i, w)->job.lock_conv = named[i];
    spawn_queued(2, N, w);
    release_commit();
    join_all();
    assert_int_equal(counter(&F.begins), 3);
    assert_int_equal(counter(&F.lock_calls), 1);
    assert_int_equal(F.n_locked, 3);
    assert_int_equal(F.locked[0], 3);
    assert_int_equal(F.locked[1], 5);
    assert_int_equal(F.locked[2], 9);
    for (int i = 0; i < N; i++)
        assert_int_equal(jobs[2 + i].status, CHAT_OK);
}

static void test_worker_hasher_runs_without_store(void **state)
{
    (void)state;
    tjob *j = job_init(1, &srv->hasher);
    assert_int_equal(chat__worker_run_sync(&srv->hasher, &j->job), CHAT_OK);
    assert_int_equal(j->ran, 1);
    assert_false(j->had_tx);
    assert_int_equal(counter(&F.begins), 0);
    assert_int_equal(counter(&F.commits), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_worker_run_sync_runs_in_one_transaction, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_worker_change_counter_persists_across_batches,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_group_commits_queued_jobs_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_worker_window_joins_a_later_job, setup_window,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_worker_window_ends_when_the_batch_is_full,
                                        setup_window, teardown),
        cmocka_unit_test_setup_teardown(test_worker_window_skipped_when_jobs_are_sparse,
                                        setup_window_idle, teardown),
        cmocka_unit_test(test_worker_gap_average),
        cmocka_unit_test_setup_teardown(test_worker_failed_commit_fails_the_whole_batch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_worker_job_eio_rolls_back_the_batch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_worker_failed_begin_fails_the_batch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_worker_unavailable_store_answers_busy, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_worker_job_refusal_keeps_the_batch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_worker_status_is_reset_per_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_hasher_runs_without_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_locks_named_convs_first_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_worker_run_here_runs_on_the_caller, setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_run_here_waits_its_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_jobs_run_here_with_the_memory_store_only,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_worker_waits_while_a_job_runs_here, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
