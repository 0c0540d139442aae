/* The expiry sweep: every expiry_sweep_ms the loop hands the writer one job that erases up to
 * expiry_batch messages due (disappearing messages, the retention limit), as an ordinary job
 * of a group commit: the loop never waits for it, and live traffic shares its transactions.
 * When a batch came full, the next job follows at once. Afterwards every member's devices are
 * told which messages to drop: {"type":"expired","conv":12,"seqs":[5,6]}. Clients that were
 * away learn it from the tombstones history and sync bring, and drop what they held
 * themselves from the message's "expires" time. [loop thread, writer thread for run] */
#include "server/lifecycle.h"

#include "core/alloc.h"
#include "core/array.h"

#include <string.h>

/* What one conversation's members are told. */
typedef struct expired_conv {
    int64_t conv;
    cJSON *seqs;
    chat__userlist to;
    chat__frame *frame;
} expired_conv;

typedef struct expiry_job {
    chat__job job;
    int full;           /* the batch came full: more are due */
    chat__blobs blobs;
    expired_conv *convs;
    size_t n, cap;
} expiry_job;

static expired_conv *conv_of(expiry_job *j, int64_t conv)
{
    for (size_t i = 0; i < j->n; i++)
        if (j->convs[i].conv == conv)
            return &j->convs[i];
    expired_conv *v = chat__array_reserve(j->convs, j->n, &j->cap, sizeof *v);
    if (!v)
        return NULL;
    j->convs = v;
    expired_conv *e = &j->convs[j->n];
    memset(e, 0, sizeof *e);
    e->conv = conv;
    if (!(e->seqs = cJSON_CreateArray()))
        return NULL;
    j->n++;
    return e;
}

static void outputs_free(expiry_job *j)
{
    for (size_t i = 0; i < j->n; i++) {
        cJSON_Delete(j->convs[i].seqs);
        chat__userlist_free(&j->convs[i].to);
        chat__frame_unref(j->convs[i].frame);
    }
    chat__free(j->convs);
    j->convs = NULL;
    j->n = j->cap = 0;
    chat__blobs_free(&j->blobs);
}

static void expiry_discard(chat__job *job)
{
    outputs_free((expiry_job *)job);
}

static int add_active(const chat_store_member *m, void *ud)
{
    return chat__userlist_add(ud, m->user, m->read_seq) == CHAT_OK ? 0 : CHAT_ENOMEM;
}

static int expiry_run(chat__job *job, chat__txn *tx)
{
    expiry_job *j = (expiry_job *)job;
    int batch = (int)chat__limit(tx->srv, CHAT_LIMIT_EXPIRY_BATCH);
    chat__page due = {0};
    int rc = tx->ops->msg_expired(tx->st, tx->now_ms, batch, chat__page_add, &due);
    j->full = rc == CHAT_OK && due.n == (size_t)batch;
    for (size_t i = 0; rc == CHAT_OK && i < due.n; i++) {
        expired_conv *e = conv_of(j, due.v[i].conv);
        if (!e) {
            rc = CHAT_ENOMEM;
            break;
        }
        rc = chat__txn_erase(tx, &due.v[i], CHAT_STORE_MSG_EXPIRED, &j->blobs);
        if (rc == CHAT_OK && !cJSON_AddItemToArray(e->seqs, cJSON_CreateNumber((double)due.v[i].seq)))
            rc = CHAT_ENOMEM;
    }
    chat__page_free(&due);
    for (size_t i = 0; rc == CHAT_OK && i < j->n; i++) {
        expired_conv *e = &j->convs[i];
        rc = tx->ops->member_list(tx->st, e->conv, 1, add_active, &e->to);
        cJSON *o = rc == CHAT_OK ? cJSON_CreateObject() : NULL;
        if (o) {
            cJSON_AddStringToObject(o, "type", "expired");
            cJSON_AddNumberToObject(o, "conv", (double)e->conv);
            cJSON_AddItemReferenceToObject(o, "seqs", e->seqs);
            e->frame = chat__frame_take_json(o);
        }
        if (rc == CHAT_OK && !e->frame)
            rc = CHAT_ENOMEM;
    }
    if (rc != CHAT_OK) /* nothing of it may stay: the batch rolls back */
        return chat__job_fail(job, rc == CHAT_ENOMEM ? CHAT_ENOMEM : CHAT_EIO, "storage",
                              "the expiry sweep failed");
    return CHAT_OK;
}

static void arm(chat_server *srv, int64_t delay_ms)
{
    if (srv->timers_ready)
        srv->tp->timer_start(&srv->expiry_timer, delay_ms);
}

static void expiry_done(chat_server *srv, chat__job *job)
{
    expiry_job *j = (expiry_job *)job;
    srv->expiry_running = 0;
    if (job->status == CHAT_OK) {
        for (size_t i = 0; i < j->n; i++)
            if (j->convs[i].to.n)
                chat__publish(srv, &j->convs[i].to, NULL, NULL, j->convs[i].frame);
        chat__blobs_remove(srv, &j->blobs);
        if (j->n)
            chat__log(srv, CHAT_LOG_DEBUG, "expiry: %zu conversations swept", j->n);
    } else if (job->status != CHAT_ECLOSED) {
        chat__log(srv, CHAT_LOG_WARN, "expiry sweep: %s", job->message);
    }
    int full = job->status == CHAT_OK && j->full;
    outputs_free(j);
    chat__free(j);
    arm(srv, full ? 0 : chat__limit(srv, CHAT_LIMIT_EXPIRY_SWEEP_MS));
}

static void expiry_cb(chat__timer *t)
{
    chat_server *srv = CHAT__SERVER_OF_TIMER(t, expiry_timer);
    if (srv->expiry_running || srv->stopping)
        return;
    expiry_job *j = chat__calloc(1, sizeof *j);
    if (!j) {
        arm(srv, chat__limit(srv, CHAT_LIMIT_EXPIRY_SWEEP_MS));
        return;
    }
    j->job.run = expiry_run;
    j->job.done = expiry_done;
    j->job.discard = expiry_discard;
    srv->expiry_running = 1;
    chat__server_submit(srv, &j->job);
}

int chat__expiry_start(chat_server *srv)
{
    if (!srv->lifecycle)
        return CHAT_OK;
    if (srv->tp->timer_init(srv->tp_st, &srv->expiry_timer, expiry_cb) != CHAT_OK)
        return CHAT_ENOMEM;
    srv->tp->timer_start(&srv->expiry_timer, chat__limit(srv, CHAT_LIMIT_EXPIRY_SWEEP_MS));
    return CHAT_OK;
}

void chat__expiry_stop(chat_server *srv)
{
    if (srv->lifecycle)
        srv->tp->timer_close(&srv->expiry_timer);
}
