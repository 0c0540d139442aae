/* Account deletion (chat_server_user_delete, chatd user delete) and the refusal of a deleted
 * account's tokens.
 *
 * The deletion runs as many small writer jobs, each its own transaction shared with live
 * traffic: the bodies of the user's messages, conversation by conversation, a batch at a time,
 * then the departure from that conversation (an "account_deleted" event the members receive,
 * which also tells their clients to drop the user's messages from their caches). The account's
 * row goes last, with the record of the deletion that keeps its old tokens refused, and its
 * devices' push registrations.
 * [any thread but the loop's; writer thread for the jobs] */
#include "server/lifecycle.h"
#include "server/push.h"
#include "store/checked.h"

#include "auth/token.h"
#include "core/alloc.h"
#include "core/array.h"
#include "core/error.h"
#include "core/ids.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

/* Messages erased per transaction. */
#define ERASE_BATCH 256

/* ---- the record of deleted accounts, for the token check ---- */

static int load_one(const char *name, int64_t deleted_ms, void *ud)
{
    chat_server *srv = ud;
    int64_t *v = chat__malloc(sizeof *v);
    if (!v)
        return CHAT_ENOMEM;
    *v = deleted_ms;
    pthread_mutex_lock(&srv->deleted_lock);
    int64_t *old = chat__strmap_get(&srv->deleted, name);
    int rc = chat__strmap_put(&srv->deleted, name, v);
    pthread_mutex_unlock(&srv->deleted_lock);
    chat__free(rc == CHAT_OK ? old : v);
    return rc == CHAT_OK ? 0 : CHAT_ENOMEM;
}

int chat__deleted_load(chat_server *srv)
{
    if (!srv->lifecycle)
        return CHAT_OK;
    return srv->store->user_deleted(srv->store_st, load_one, srv);
}

static void free_value(const char *key, void *value, void *ud)
{
    (void)key, (void)ud;
    chat__free(value);
}

void chat__deleted_free(chat_server *srv)
{
    chat__strmap_each(&srv->deleted, free_value, NULL);
    chat__strmap_clear(&srv->deleted);
}

int chat__deleted_check(chat_server *srv, const char *tok, size_t len,
                        const chat_auth_identity *id)
{
    pthread_mutex_lock(&srv->deleted_lock);
    int64_t *when = chat__strmap_get(&srv->deleted, id->user);
    int64_t deleted_ms = when ? *when : 0;
    pthread_mutex_unlock(&srv->deleted_lock);
    if (!when)
        return CHAT_OK;
    /* A token of libchat's own says when it was issued: one issued after the deletion is a
     * new account's. A host backend's token says nothing: refused. */
    chat__token t;
    if (!srv->auth_custom &&
        chat__token_verify(&srv->cfg.keys, tok, len, chat__now_ms(srv), &t) == CHAT_OK &&
        t.iat_ms > deleted_ms)
        return CHAT_OK;
    chat__log(srv, CHAT_LOG_INFO, "token refused: the account %s was deleted", id->user);
    return chat__error_set(CHAT_EAUTH, 0, "token refused");
}

/* ---- the deletion ---- */

typedef struct convs_of {
    chat_store_member *v;
    size_t n, cap;
} convs_of;

static int keep_row(const chat_store_member *m, void *ud)
{
    convs_of *c = ud;
    chat_store_member *v = chat__array_reserve(c->v, c->n, &c->cap, sizeof *v);
    if (!v)
        return CHAT_ENOMEM;
    c->v = v;
    c->v[c->n++] = *m;
    return 0;
}

typedef struct step {
    convs_of *convs;  /* list: every membership of the user */
    int64_t conv;     /* erase, leave: the conversation */
    int done;         /* erase: nothing left to erase there */
    chat__blobs blobs;
} step;

static void step_free(void *p)
{
    step *s = p;
    if (s)
        chat__blobs_free(&s->blobs);
    chat__free(s);
}

static int list_run(chat__job *job, chat__txn *tx)
{
    chat__req *r = (chat__req *)job;
    step *s = r->extra;
    int rc = tx->ops->user_convs(tx->st, r->user, 0, INT_MAX, keep_row, s->convs);
    return rc == CHAT_OK ? CHAT_OK
                         : chat__req_fail(r, rc == CHAT_ENOMEM ? CHAT_ENOMEM : CHAT_EIO,
                                          "storage", "cannot list the conversations");
}

static int erase_run(chat__job *job, chat__txn *tx)
{
    chat__req *r = (chat__req *)job;
    step *s = r->extra;
    chat__page p = {0};
    int rc = tx->ops->msg_by_sender(tx->st, s->conv, r->user, 0, ERASE_BATCH, chat__page_add,
                                    &p);
    s->done = rc == CHAT_OK && p.n < ERASE_BATCH;
    for (size_t i = 0; rc == CHAT_OK && i < p.n; i++)
        if (p.v[i].kind == CHAT_MSG_TEXT || p.v[i].kind == CHAT_MSG_MEDIA)
            rc = chat__txn_erase(tx, &p.v[i], CHAT_STORE_MSG_DELETED, &s->blobs);
    /* Other kinds (events, edits, reactions) hold no body of the user's: they stay, and the
     * listing would find them again. */
    if (rc == CHAT_OK && p.n == ERASE_BATCH) {
        int any = 0;
        for (size_t i = 0; i < p.n; i++)
            any |= p.v[i].kind == CHAT_MSG_TEXT || p.v[i].kind == CHAT_MSG_MEDIA;
        s->done = !any;
    }
    chat__page_free(&p);
    return rc == CHAT_OK ? CHAT_OK
                         : chat__req_fail(r, rc == CHAT_ENOMEM ? CHAT_ENOMEM : CHAT_EIO,
                                          "storage", "cannot erase the messages");
}

static int leave_run(chat__job *job, chat__txn *tx)
{
    chat__req *r = (chat__req *)job;
    step *s = r->extra;
    if (tx->ops->reaction_clear(tx->st, s->conv, 0, r->user) != CHAT_OK)
        return chat__req_fail(r, CHAT_EIO, "storage", "cannot remove the reactions");
    /* A mute is the account's too: an account later made with the same name starts with none. */
    if (chat__store_checked_has_push(tx->ops, tx->st) &&
        tx->ops->push_mute_put(tx->st, r->user, s->conv, 0) != CHAT_OK)
        return chat__req_fail(r, CHAT_EIO, "storage", "cannot remove the mutes");
    chat_store_conv conv;
    chat_store_member me;
    int rc = tx->ops->member_get(tx->st, s->conv, r->user, &me);
    if (rc == CHAT_ENOTFOUND || (rc == CHAT_OK && me.role == CHAT_ROLE_NONE))
        return CHAT_OK; /* left before: nothing to tell */
    if (rc != CHAT_OK || (rc = chat__txn_conv(tx, r, s->conv, &conv)) != CHAT_OK)
        return chat__req_fail(r, CHAT_EIO, "storage", "the store failed");
    uint64_t seq;
    return chat__txn_leave(tx, r, &conv, &me, "account_deleted", &seq);
}

static int forget_run(chat__job *job, chat__txn *tx)
{
    chat__req *r = (chat__req *)job;
    if (tx->ops->user_delete(tx->st, r->user, tx->now_ms) != CHAT_OK)
        return chat__req_fail(r, CHAT_EIO, "storage", "cannot delete the account");
    /* its devices' push tokens go with it */
    int rc = chat__push_forget_user(tx, r->user);
    if (rc != CHAT_OK)
        return chat__req_fail(r, rc, rc == CHAT_ENOMEM ? "internal" : "storage",
                              "cannot delete the push registrations");
    return CHAT_OK;
}

static void step_after(chat_server *srv, chat__req *r)
{
    step *s = r->extra;
    if (s)
        chat__blobs_remove(srv, &s->blobs);
}

/* One step as a request of the user's own, with no connection. */
static chat__req *step_new(const char *user, int (*run)(chat__job *, chat__txn *), step *s)
{
    step *copy = chat__malloc(sizeof *copy);
    chat__req *r = copy ? chat__req_new(NULL, NULL, run) : NULL;
    if (!r) {
        chat__free(copy);
        return NULL;
    }
    *copy = *s;
    snprintf(r->user, sizeof r->user, "%s", user);
    r->extra = copy;
    r->extra_free = step_free;
    r->after = step_after;
    return r;
}

static int do_step(chat_server *srv, const char *user, int (*run)(chat__job *, chat__txn *),
                   step *s)
{
    chat__req *r = step_new(user, run, s);
    if (!r)
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    r->fanout_all_devices = 1;
    int rc = chat__worker_run_sync(&srv->writer, &r->job);
    s->done = ((step *)r->extra)->done;
    r->job.sync_lock = NULL;
    r->job.sync_cond = NULL;
    if (rc != CHAT_OK)
        chat__error_set(rc, 0, "account deletion: %s", r->job.message);
    chat__server_post(srv, &r->job); /* the loop publishes what it made, and frees it */
    return rc;
}

/* Close the user's connections. [loop thread] */
typedef struct close_job {
    chat__job job;
    char user[CHAT_ID_MAX + 1];
} close_job;

static void close_done(chat_server *srv, chat__job *job)
{
    close_job *j = (close_job *)job;
    for (chat__conn *c = srv->conns; c; c = c->next)
        if (c->authed && strcmp(c->user, j->user) == 0)
            chat__conn_close(c, 1008, "account deleted");
    chat__free(j);
}

int chat_server_user_delete(chat_server *srv, const char *user)
{
    if (!srv || !user || !chat__id_valid(user, strlen(user)))
        return chat__error_set(CHAT_EINVAL, 0, "a user id is 1-64 of [A-Za-z0-9_.@-]");
    if (!srv->lifecycle)
        return chat__error_set(CHAT_ENOTSUP, 0,
                               "the store keeps no message lifecycle (store version 5)");
    /* Refused from now on in this process, whatever follows. */
    if (load_one(user, chat__now_ms(srv), srv) != 0)
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    close_job *cj = chat__calloc(1, sizeof *cj);
    if (!cj)
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    snprintf(cj->user, sizeof cj->user, "%s", user);
    cj->job.done = close_done;
    chat__server_post(srv, &cj->job);

    convs_of convs = {0};
    step s = {.convs = &convs};
    int rc = do_step(srv, user, list_run, &s);
    for (size_t i = 0; rc == CHAT_OK && i < convs.n; i++) {
        step e = {.conv = convs.v[i].conv};
        do
            rc = do_step(srv, user, erase_run, &e);
        while (rc == CHAT_OK && !e.done);
        if (rc == CHAT_OK)
            rc = do_step(srv, user, leave_run, &e);
    }
    chat__free(convs.v);
    step f = {0};
    if (rc == CHAT_OK)
        rc = do_step(srv, user, forget_run, &f);
    return rc;
}
