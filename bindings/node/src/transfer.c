/* Uploads and downloads: blocking libchat calls, each on a thread of its own, settled as
 * Promises.
 *
 * Why not napi_create_async_work: it borrows one of libuv's four pool threads for the whole
 * transfer, and a few slow downloads would stall every fs call of the app. Each transfer has
 * its own thread-safe function that carries progress reports and, last, the completion, so
 * the JS thread sees progress strictly before the Promise settles. As with the C callback,
 * the transfer waits while onProgress runs: what it throws stops the transfer before another
 * byte moves (and a JS thread that is busy slows a transfer that asked for progress).
 *
 * Aborts: JS (abortTransfer, from an AbortSignal), a throwing onProgress, or close() set a
 * flag that the progress callback returns to libchat, which ends the call with CHAT_EUSER. */
#define _GNU_SOURCE
#include "addon.h"

#include <stdlib.h>
#include <string.h>

enum { ABORT_NONE, ABORT_JS, ABORT_THREW, ABORT_CLOSED };
enum { MSG_PROGRESS, MSG_DONE };

struct transfer {
    struct nclient *nc;
    struct transfer *next;
    uint32_t id;
    int upload;
    char *path, *mime, *url, *media_id;
    pthread_t thread;
    napi_threadsafe_function tsfn;
    napi_deferred deferred;
    napi_ref on_progress; /* NULL without one */
    napi_ref owner;       /* the NativeClient object, kept alive while this runs */
    napi_ref thrown;      /* what onProgress threw */
    atomic_int abort;
    pthread_mutex_t mu;   /* guards done, total, waiting */
    pthread_cond_t cv;    /* a report was shown, or an abort */
    uint64_t done, total;
    int waiting;          /* the thread waits for JS to show (done, total) */
    uint64_t shown_done, shown_total; /* last reported to JS */
    int shown;
    /* result, written by the thread before MSG_DONE */
    int rc;
    char *errmsg;
    char *out_id;
};

struct msg {
    int type;
    struct transfer *t;
};

static void transfer_free(struct transfer *t)
{
    free(t->path);
    free(t->mime);
    free(t->url);
    free(t->media_id);
    free(t->errmsg);
    chat_string_free(t->out_id);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t);
}

static void unlink_transfer(struct transfer *t)
{
    for (struct transfer **p = &t->nc->transfers; *p; p = &(*p)->next)
        if (*p == t) {
            *p = t->next;
            return;
        }
}

/* ---- the transfer thread ---- */

/* 0, or -1 when the message cannot reach the JS thread any more. */
static int post(struct transfer *t, int type)
{
    struct msg *m = malloc(sizeof *m);
    if (!m)
        return -1;
    m->type = type;
    m->t = t;
    if (napi_call_threadsafe_function(t->tsfn, m, napi_tsfn_nonblocking) != napi_ok) {
        free(m); /* napi_closing: the environment is going away (the function stays allocated
                    until the teardown that joins this thread is over) */
        return -1;
    }
    return 0;
}

static int progress_cb(uint64_t done, uint64_t total, void *ud)
{
    struct transfer *t = ud;
    if (atomic_load(&t->abort) != ABORT_NONE)
        return 1;
    if (!t->on_progress)
        return 0;
    pthread_mutex_lock(&t->mu);
    t->done = done;
    t->total = total;
    t->waiting = 1;
    if (post(t, MSG_PROGRESS) == 0)
        while (t->waiting && atomic_load(&t->abort) == ABORT_NONE)
            pthread_cond_wait(&t->cv, &t->mu);
    t->waiting = 0;
    pthread_mutex_unlock(&t->mu);
    return atomic_load(&t->abort) != ABORT_NONE;
}

static void set_abort(struct transfer *t, int why)
{
    int none = ABORT_NONE;
    atomic_compare_exchange_strong(&t->abort, &none, why);
    pthread_mutex_lock(&t->mu);
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

static void *transfer_main(void *arg)
{
    struct transfer *t = arg;
    chat_client *c = t->nc->c; /* freed only after this thread ends (nclient_maybe_free) */
    if (t->upload)
        t->rc = chat_client_upload_file(&t->out_id, c, t->path, t->mime, progress_cb, t);
    else
        t->rc = chat_client_download(c, t->url, t->media_id, t->path, progress_cb, t);
    if (t->rc < 0) {
        const chat_error_info *info = chat_error_last(); /* this thread's record */
        const char *m = info->code == t->rc && info->message && *info->message
                            ? info->message : chat_strerror(t->rc);
        t->errmsg = strdup(m);
    }
    post(t, MSG_DONE);
    napi_release_threadsafe_function(t->tsfn, napi_tsfn_release);
    return NULL;
}

/* ---- the JS side ---- */

/* Report the latest progress if JS has not seen it; 0, or -1 when onProgress threw. */
static int show_progress(napi_env env, struct transfer *t)
{
    if (!t->on_progress || t->thrown)
        return 0;
    pthread_mutex_lock(&t->mu);
    uint64_t done = t->done, total = t->total;
    pthread_mutex_unlock(&t->mu);
    if (t->shown && done == t->shown_done && total == t->shown_total)
        return 0;
    if (!t->shown && done == 0 && total == 0)
        return 0; /* nothing reported yet */
    t->shown = 1;
    t->shown_done = done;
    t->shown_total = total;
    napi_value fn = NULL, out = NULL;
    napi_get_reference_value(env, t->on_progress, &fn);
    if (!fn)
        return 0;
    napi_value argv[2] = {node_num(env, (double)done), node_num(env, (double)total)};
    if (napi_call_function(env, node_undefined(env), fn, 2, argv, &out) == napi_ok)
        return 0;
    napi_value exc = NULL;
    napi_get_and_clear_last_exception(env, &exc);
    napi_create_reference(env, exc ? exc : node_undefined(env), 1, &t->thrown);
    set_abort(t, ABORT_THREW);
    return -1;
}

static void settle(napi_env env, struct transfer *t)
{
    const char *what = t->upload ? "uploadFile" : "download";
    napi_value v = NULL;
    show_progress(env, t); /* the last (done, total) before the Promise settles */
    if (t->thrown) {
        napi_get_reference_value(env, t->thrown, &v);
        napi_reject_deferred(env, t->deferred, v ? v : node_undefined(env));
    } else if (t->rc >= 0) {
        v = t->upload ? node_str(env, t->out_id) : node_undefined(env);
        napi_resolve_deferred(env, t->deferred, v);
    } else if (atomic_load(&t->abort) == ABORT_CLOSED) {
        napi_reject_deferred(env, t->deferred,
                             node_error_value(env, CHAT_ECLOSED, what,
                                              "the Client was closed during the transfer"));
    } else if (atomic_load(&t->abort) == ABORT_JS) {
        napi_reject_deferred(env, t->deferred,
                             node_error_value(env, CHAT_EUSER, what, "aborted"));
    } else {
        napi_reject_deferred(env, t->deferred,
                             node_error_value(env, t->rc, what,
                                              t->errmsg ? t->errmsg : chat_strerror(t->rc)));
    }
}

static void transfer_call_js(napi_env env, napi_value js_cb, void *context, void *data)
{
    (void)js_cb;
    (void)context;
    struct msg *m = data;
    struct transfer *t = m->t;
    int type = m->type;
    free(m);
    if (!env)
        return; /* teardown: node_transfers_join_all owns the transfer */
    if (type == MSG_PROGRESS) {
        show_progress(env, t);
        pthread_mutex_lock(&t->mu);
        t->waiting = 0;
        pthread_cond_signal(&t->cv);
        pthread_mutex_unlock(&t->mu);
        return;
    }
    pthread_join(t->thread, NULL); /* it only releases the function after posting this */
    settle(env, t);
    struct nclient *nc = t->nc;
    unlink_transfer(t);
    if (t->on_progress)
        napi_delete_reference(env, t->on_progress);
    if (t->thrown)
        napi_delete_reference(env, t->thrown);
    napi_delete_reference(env, t->owner);
    transfer_free(t);
    nclient_maybe_free(nc);
    nclient_release(nc);
}

/* Start t (its strings filled in) for the NativeClient this_v; returns the Promise. */
static napi_value launch(napi_env env, struct nclient *nc, napi_value this_v, struct transfer *t,
                         napi_value id_v, napi_value progress)
{
    const char *what = t->upload ? "uploadFile" : "download";
    uint64_t id = 0;
    napi_value promise = NULL, fn = NULL;
    t->nc = nc;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    atomic_init(&t->abort, ABORT_NONE);
    if (node_get_id(env, id_v, what, "id", UINT32_MAX, &id) ||
        node_get_func(env, progress, what, "onProgress", 1, &fn)) {
        transfer_free(t);
        return NULL;
    }
    t->id = (uint32_t)id;
    if (napi_create_threadsafe_function(env, NULL, NULL, node_str(env, "libchat transfer"), 0,
                                        1, NULL, NULL, t, transfer_call_js, &t->tsfn) != napi_ok) {
        transfer_free(t);
        return node_throw(env, CHAT_ERROR, what, "napi_create_threadsafe_function failed");
    }
    if (napi_create_promise(env, &t->deferred, &promise) != napi_ok) {
        napi_release_threadsafe_function(t->tsfn, napi_tsfn_abort);
        transfer_free(t);
        return node_throw(env, CHAT_ERROR, what, "napi_create_promise failed");
    }
    if (pthread_create(&t->thread, NULL, transfer_main, t) != 0) {
        napi_reject_deferred(env, t->deferred,
                             node_error_value(env, CHAT_ERROR, what, "cannot start a thread"));
        napi_release_threadsafe_function(t->tsfn, napi_tsfn_abort);
        transfer_free(t);
        return promise;
    }
    if (fn)
        napi_create_reference(env, fn, 1, &t->on_progress);
    napi_create_reference(env, this_v, 1, &t->owner);
    t->next = nc->transfers;
    nc->transfers = t;
    nc->holders++;
    return promise;
}

/* upload(id, path, mime|null, onProgress|null) -> Promise<mediaId> */
napi_value node_client_upload(napi_env env, struct nclient *nc, napi_value this_v,
                              napi_value *argv)
{
    struct transfer *t = calloc(1, sizeof *t);
    if (!t)
        return node_throw(env, CHAT_ENOMEM, "uploadFile", "out of memory");
    t->upload = 1;
    if (node_get_str(env, argv[1], "uploadFile", "path", 0, &t->path, NULL) ||
        node_get_str(env, argv[2], "uploadFile", "mime", 1, &t->mime, NULL)) {
        free(t->path);
        free(t);
        return NULL;
    }
    return launch(env, nc, this_v, t, argv[0], argv[3]);
}

/* download(id, url, mediaId|null, path, onProgress|null) -> Promise<undefined> */
napi_value node_client_download(napi_env env, struct nclient *nc, napi_value this_v,
                                napi_value *argv)
{
    struct transfer *t = calloc(1, sizeof *t);
    if (!t)
        return node_throw(env, CHAT_ENOMEM, "download", "out of memory");
    if (node_get_str(env, argv[1], "download", "url", 0, &t->url, NULL) ||
        node_get_str(env, argv[2], "download", "mediaId", 1, &t->media_id, NULL) ||
        node_get_str(env, argv[3], "download", "path", 0, &t->path, NULL)) {
        free(t->url);
        free(t->media_id);
        free(t);
        return NULL;
    }
    return launch(env, nc, this_v, t, argv[0], argv[4]);
}

void node_transfers_abort(struct nclient *nc)
{
    for (struct transfer *t = nc->transfers; t; t = t->next)
        set_abort(t, ABORT_CLOSED);
}

void node_transfer_abort_id(struct nclient *nc, uint32_t id)
{
    for (struct transfer *t = nc->transfers; t; t = t->next)
        if (t->id == id)
            set_abort(t, ABORT_JS);
}

/* Environment teardown: no JS any more. The threads end at their next progress callback. */
void node_transfers_join_all(struct nclient *nc)
{
    node_transfers_abort(nc);
    while (nc->transfers) {
        struct transfer *t = nc->transfers;
        nc->transfers = t->next;
        pthread_join(t->thread, NULL);
        transfer_free(t);
        nclient_release(nc);
    }
}
