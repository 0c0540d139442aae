/* Server lifecycle: backends, worker threads, the loop, and the any-thread entry points. */
#include "server/lifecycle.h"
#include "server/req.h"

#include "auth/builtin.h"
#include "auth/password.h"
#include "auth/token.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/ids.h"
#include "core/json.h"
#include "core/monowait.h"
#include "core/thread.h"
#include "server/media.h"
#include "server/push.h"
#include "store/checked.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* One line to the host's sink: the structured one with its fields, or the plain one with the
 * fields appended as " key=value". */
static void log_emit(const chat_server *srv, int level, const char *msg,
                     const char *const *fields)
{
    if (srv->cfg.log_kv) {
        static const char *const none[] = {NULL};
        srv->cfg.log_kv(level, msg, fields ? fields : none, srv->cfg.log_ud);
        return;
    }
    if (!fields || !fields[0]) {
        srv->cfg.log_cb(level, msg, srv->cfg.log_ud);
        return;
    }
    char line[768];
    size_t n = (size_t)snprintf(line, sizeof line, "%s", msg);
    for (size_t i = 0; fields[i] && n < sizeof line; i += 2)
        n += (size_t)snprintf(line + n, sizeof line - n, " %s=%s", fields[i], fields[i + 1]);
    srv->cfg.log_cb(level, line, srv->cfg.log_ud);
}

void chat__log(const chat_server *srv, int level, const char *fmt, ...)
{
    if (!chat__log_on(srv, level))
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log_emit(srv, level, buf, NULL);
}

/* The request id as a log field: a string (cut, quotes and control bytes dropped) or an
 * integer. */
static void req_field(const cJSON *re, char *out, size_t size)
{
    out[0] = '\0';
    if (cJSON_IsNumber(re)) {
        snprintf(out, size, "%.0f", re->valuedouble);
    } else if (cJSON_IsString(re)) {
        size_t n = 0;
        for (const char *p = re->valuestring; *p && n + 1 < size && n < 64; p++)
            if ((unsigned char)*p >= 0x20 && *p != '"' && *p != '\\')
                out[n++] = *p;
        out[n] = '\0';
    }
}

void chat__logc(const chat_server *srv, int level, const chat__conn *c, const cJSON *re,
                const char *code, const char *fmt, ...)
{
    if (!chat__log_on(srv, level))
        return;
    char msg[512], conn[24], req[72];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *fields[11];
    size_t n = 0;
    if (c) {
        snprintf(conn, sizeof conn, "%" PRIu64, c->id);
        fields[n++] = "conn";
        fields[n++] = conn;
        if (c->user[0]) {
            fields[n++] = "user";
            fields[n++] = c->user;
            fields[n++] = "device";
            fields[n++] = c->device;
        }
    }
    req_field(re, req, sizeof req);
    if (req[0]) {
        fields[n++] = "req";
        fields[n++] = req;
    }
    if (code) {
        fields[n++] = "code";
        fields[n++] = code;
    }
    fields[n] = NULL;
    log_emit(srv, level, msg, fields);
}

/* The transport's own lines (libwebsockets') reach the same sink. */
static void transport_log(int level, const char *line, void *ud)
{
    log_emit(ud, level, line, NULL);
}

int64_t chat__now_ms(const chat_server *srv)
{
    return srv->cfg.clock(srv->cfg.clock_ud);
}

int64_t chat__limit(const chat_server *srv, int limit)
{
    return srv->cfg.limits[limit];
}

/* ---- the hand-over from other threads to the loop thread ---- */

static void wake_loop(chat_server *srv)
{
    /* Under done_lock, so the transport cannot shut down between the check and the wake. */
    if (srv->loop_ready)
        srv->tp->wake(srv->tp_st);
}

void chat__server_post_list(chat_server *srv, chat__job *head, chat__job *tail)
{
    pthread_mutex_lock(&srv->done_lock);
    /* The loop drains the whole list per wake-up: wake it only when the list was empty. */
    int was_empty = srv->done_head == NULL;
    if (srv->done_tail)
        srv->done_tail->next = head;
    else
        srv->done_head = head;
    srv->done_tail = tail;
    if (was_empty)
        wake_loop(srv);
    pthread_mutex_unlock(&srv->done_lock);
}

void chat__server_post(chat_server *srv, chat__job *job)
{
    job->next = NULL;
    chat__server_post_list(srv, job, job);
}

void chat__server_drain(chat_server *srv)
{
    for (;;) {
        pthread_mutex_lock(&srv->done_lock);
        chat__job *list = srv->done_head;
        srv->done_head = srv->done_tail = NULL;
        pthread_mutex_unlock(&srv->done_lock);
        if (!list)
            return;
        while (list) {
            chat__job *next = list->next;
            list->done(srv, list);
            list = next;
        }
    }
}

uint64_t chat__rx_us_read(chat_server *srv)
{
    srv->stats.rx_us = chat__mono_ns() / 1000;
    srv->stats.rx_valid = 1;
    return srv->stats.rx_us;
}

/* ---- calls run on the loop thread for other threads (stats, drain, admin) ---- */

struct chat__call {
    chat__call *next;
    void (*fn)(chat_server *srv, void *arg);
    void *arg;
    void (*arg_free)(void *arg);
    int refs;     /* the caller and the loop, under done_lock */
    int state;    /* 0 waiting, 1 ran, 2 released unrun */
    int orphan;   /* the caller gave up waiting: arg is the call's to free */
    pthread_cond_t cond;
};

static void call_unref(chat__call *call)
{
    /* under done_lock */
    if (--call->refs > 0)
        return;
    if (call->orphan && call->arg_free)
        call->arg_free(call->arg);
    pthread_cond_destroy(&call->cond);
    chat__free(call);
}

/* Under done_lock. */
static int on_loop_thread(const chat_server *srv)
{
    return srv->loop_tid_set && pthread_equal(srv->loop_tid, pthread_self());
}

int chat__on_loop_thread(chat_server *srv)
{
    pthread_mutex_lock(&srv->done_lock);
    int r = on_loop_thread(srv);
    pthread_mutex_unlock(&srv->done_lock);
    return r;
}

int chat__loop_call(chat_server *srv, void (*fn)(chat_server *srv, void *arg), void *arg,
                    void (*arg_free)(void *arg), int timeout_ms)
{
    pthread_mutex_lock(&srv->done_lock);
    if (on_loop_thread(srv)) {
        pthread_mutex_unlock(&srv->done_lock);
        fn(srv, arg);
        return CHAT_OK;
    }
    if (!srv->loop_ready) {
        pthread_mutex_unlock(&srv->done_lock);
        return CHAT_ECLOSED;
    }
    chat__call *call = chat__calloc(1, sizeof *call);
    if (!call || chat__cond_init_mono(&call->cond) != 0) {
        pthread_mutex_unlock(&srv->done_lock);
        chat__free(call);
        return CHAT_ENOMEM;
    }
    call->fn = fn;
    call->arg = arg;
    call->arg_free = arg_free;
    call->refs = 2;
    int was_empty = srv->calls_head == NULL;
    if (srv->calls_tail)
        srv->calls_tail->next = call;
    else
        srv->calls_head = call;
    srv->calls_tail = call;
    if (was_empty)
        wake_loop(srv);
    struct timespec until = chat__mono_deadline(timeout_ms);
    while (call->state == 0 &&
           pthread_cond_timedwait(&call->cond, &srv->done_lock, &until) == 0)
        ;
    int rc = call->state == 1 ? CHAT_OK : call->state == 2 ? CHAT_ECLOSED : CHAT_ETIMEDOUT;
    if (rc == CHAT_ETIMEDOUT)
        call->orphan = 1;
    call_unref(call);
    pthread_mutex_unlock(&srv->done_lock);
    return rc;
}

void chat__loop_calls_serve(chat_server *srv, int run)
{
    pthread_mutex_lock(&srv->done_lock);
    chat__call *list = srv->calls_head;
    srv->calls_head = srv->calls_tail = NULL;
    pthread_mutex_unlock(&srv->done_lock);
    while (list) {
        chat__call *call = list;
        list = call->next;
        if (run)
            call->fn(srv, call->arg);
        pthread_mutex_lock(&srv->done_lock);
        call->state = run ? 1 : 2;
        pthread_cond_signal(&call->cond);
        call_unref(call);
        pthread_mutex_unlock(&srv->done_lock);
    }
}

/* ---- the hand-over from the loop thread to the writer ---- */

static void flush_submits(chat_server *srv)
{
    chat__job *head = srv->sub_head, *tail = srv->sub_tail;
    srv->sub_head = srv->sub_tail = NULL;
    if (head)
        chat__worker_submit_list(&srv->writer, head, tail);
}

void chat__server_submit(chat_server *srv, chat__job *job)
{
    if (!srv->sub_ready) {
        chat__worker_submit(&srv->writer, job);
        return;
    }
    /* A store that never blocks runs the job here and now, like a relay: no hand-over to the
     * writer and back (two wake-ups), and at full load no pile of thousands of requests in
     * flight between the two threads, which is what held the memory store's ceiling down.
     * Only with nothing waiting anywhere, so jobs still run in the order they were submitted;
     * a job that a done() submits (here_depth) waits for the next flush. */
    if (srv->store_here && !srv->here_depth && !srv->sub_head && !srv->stopping) {
        srv->here_depth++;
        int ran = chat__worker_run_here(&srv->writer, job);
        srv->here_depth--;
        if (ran)
            return;
    }
    /* Everything a loop iteration submits goes to the writer together: one wake-up of the
     * writer per iteration instead of one per request, and bigger group commits. */
    job->next = NULL;
    if (srv->sub_tail)
        srv->sub_tail->next = job;
    else
        srv->sub_head = job;
    srv->sub_tail = job;
}

void chat__server_flush(chat_server *srv)
{
    if (srv->sub_ready)
        flush_submits(srv);
    srv->stats.rx_valid = 0; /* the next message reads the clock anew */
    if (srv->drain_phase == CHAT__DRAIN_INFLIGHT || srv->drain_phase == CHAT__DRAIN_CLOSING)
        chat__drain_step(srv);
}

/* Requests go to the writer at once from here on (the loop is ending or never ran). */
static void submits_direct(chat_server *srv)
{
    if (!srv->sub_ready)
        return;
    flush_submits(srv);
    srv->sub_ready = 0;
}

/* ---- bus sink ---- */

/* A version-1 bus hands bytes over: they become a frame of their own. */
static void sink_deliver(const char *user, const char *except_device, const void *frame,
                         size_t len, void *ud)
{
    chat__frame *f = chat__frame_new(frame, len);
    if (!f)
        chat__log(ud, CHAT_LOG_WARN, "bus delivery to %s failed: out of memory", user);
    chat__deliver_local(ud, user, except_device, f); /* NULL: closes who misses it */
    chat__frame_unref(f);
}

static void sink_deliver2(const char *user, const char *except_device, chat_buf *frame,
                          void *ud)
{
    chat__deliver_local(ud, user, except_device, frame);
}

static void sink_presence(const char *user, int online, void *ud)
{
    chat__presence_changed(ud, user, online);
}

static void sink_lost(void *ud)
{
    chat__hint_lost(ud);
}

static void sink_settled(uint64_t ticket, void *ud)
{
    chat__cluster_settled(ud, ticket);
}

static void sink_node(const char *node, int up, void *ud)
{
    chat__affinity_node(ud, node, up);
    chat__cluster_node(ud, node, up);
}

static void sink_reply(uint64_t id, int status, const void *msg, size_t len, void *ud)
{
    chat__affinity_reply(ud, id, status, msg, len);
}

static void sink_request(const char *from, uint64_t token, const void *msg, size_t len,
                         void *ud)
{
    chat__affinity_request(ud, from, token, msg, len);
}

static void sink_message(const char *from, const void *msg, size_t len, void *ud)
{
    chat__cluster_message(ud, from, msg, len);
}

static void sink_log(int level, const char *msg, void *ud)
{
    chat__log(ud, level, "%s", msg);
}

static void sink_wake(void *ud)
{
    chat_server *srv = ud;
    atomic_store(&srv->bus_wake, 1);
    pthread_mutex_lock(&srv->done_lock);
    wake_loop(srv);
    pthread_mutex_unlock(&srv->done_lock);
}

/* ---- revocation ---- */

int chat__server_revoked(chat_server *srv, const char *session)
{
    pthread_mutex_lock(&srv->revoked_lock);
    int r = chat__strmap_get(&srv->revoked, session) != NULL;
    pthread_mutex_unlock(&srv->revoked_lock);
    return r;
}

/* ---- authentication: every token goes through the auth backend ---- */

static int identity_field_ok(char *s)
{
    s[CHAT_ID_MAX] = '\0';
    return chat__id_valid(s, strlen(s));
}

int chat__server_verify(chat_server *srv, const char *tok, size_t len, chat_auth_identity *id)
{
    int64_t now = chat__now_ms(srv);
    memset(id, 0, sizeof *id);
    int rc;
    if (len == 0 || len > CHAT_AUTH_TOKEN_MAX) {
        rc = CHAT_EAUTH;
        snprintf(id->reason, sizeof id->reason, "token of %zu bytes", len);
    } else {
        pthread_mutex_lock(&srv->auth_lock);
        rc = srv->auth->verify(srv->auth_st, tok, len, now, id);
        pthread_mutex_unlock(&srv->auth_lock);
        id->reason[sizeof id->reason - 1] = '\0';
    }
    if (rc == CHAT_OK) {
        if (!identity_field_ok(id->user) || !identity_field_ok(id->device) ||
            !identity_field_ok(id->session)) {
            rc = CHAT_EAUTH;
            snprintf(id->reason, sizeof id->reason, "the auth backend returned invalid ids");
        } else if (id->exp_ms < 0 || (id->exp_ms != 0 && now >= id->exp_ms)) {
            rc = CHAT_EAUTH;
            snprintf(id->reason, sizeof id->reason, "expired");
        } else if (chat__device_revoked(srv, id->user, id->device, id->iat_ms)) {
            rc = CHAT_EAUTH;
            snprintf(id->reason, sizeof id->reason, "the device was revoked");
        } else if (id->exp_ms == 0) {
            id->exp_ms = INT64_MAX;
        }
    } else if (rc != CHAT_EAUTH) {
        chat__log(srv, CHAT_LOG_WARN, "auth backend: verify failed with %s (%s)",
                  chat_error_name(rc), id->reason);
        rc = CHAT_EAUTH;
    }
    if (rc != CHAT_OK)
        chat__log(srv, CHAT_LOG_INFO, "token refused: %s",
                  id->reason[0] ? id->reason : "no reason given");
    if (rc == CHAT_OK)
        rc = chat__deleted_check(srv, tok, len, id);
    return rc == CHAT_OK ? CHAT_OK : chat__error_set(CHAT_EAUTH, 0, "token refused");
}

static int load_revoked(const char *session, int64_t exp_ms, void *ud)
{
    (void)exp_ms;
    chat_server *srv = ud;
    int dev = chat__device_revoked_load(srv, session);
    if (dev)
        return dev < 0 ? CHAT_ENOMEM : 0;
    return chat__strmap_put(&srv->revoked, session, srv) == CHAT_OK ? 0 : CHAT_ENOMEM;
}

/* ---- construction ---- */

static void server_release(chat_server *srv)
{
    chat__worker_stop(&srv->writer);
    chat__worker_stop(&srv->hasher);
    chat__server_drain(srv);
    chat__loop_calls_serve(srv, 0);
    chat__media_free(srv);
    chat__cluster_free(srv);
    chat__affinity_free(srv);
    if (srv->bus)
        srv->bus->destroy(srv->bus_st);
    if (srv->push) {
        if (srv->push->ctl)
            srv->push->ctl(srv->push_st, CHAT_PUSH_CTL_FLUSH, NULL);
        srv->push->destroy(srv->push_st);
    }
    chat__push_release(srv);
    if (srv->store)
        srv->store->destroy(srv->store_st);
    if (srv->auth)
        srv->auth->destroy(srv->auth_st);
    chat__strmap_clear(&srv->users);
    chat__strmap_clear(&srv->revoked);
    chat__deleted_free(srv);
    chat__revoked_devices_free(srv);
    chat__user_limits_free(srv);
    chat__typing_free(&srv->typing);
    chat__presence_free(srv);
    chat__hints_free(srv);
    chat__keyring_wipe(&srv->cfg.keys);
    chat__free(srv->cfg.address);
    chat__free(srv->cfg.data_dir);
    chat__free(srv->cfg.media_base_url);
    pthread_mutex_destroy(&srv->done_lock);
    pthread_mutex_destroy(&srv->revoked_lock);
    pthread_mutex_destroy(&srv->auth_lock);
    pthread_mutex_destroy(&srv->deleted_lock);
    pthread_cond_destroy(&srv->drain_cond);
    chat__free(srv);
}

static int open_default_store(chat_server *srv)
{
    int rc;
    if (srv->cfg.data_dir) {
        char path[4096];
        if ((size_t)snprintf(path, sizeof path, "%s/chat.db", srv->cfg.data_dir) >= sizeof path)
            return chat__error_set(CHAT_EINVAL, 0, "data dir path too long");
        rc = chat_store_sqlite_open(&srv->store_st, path, srv->cfg.store_flags, NULL);
        if (rc == CHAT_OK)
            srv->store = chat_store_sqlite_ops();
    } else {
        rc = chat_store_memory_new(&srv->store_st);
        if (rc == CHAT_OK)
            srv->store = chat_store_memory_ops();
    }
    return rc;
}

int chat_server_new(chat_server **out, chat_server_config *cfg)
{
    if (!out || !cfg)
        return CHAT_EINVAL;
    if (cfg->keys.n == 0)
        return chat__error_set(CHAT_EAUTH, 0, "no token key configured");
    if (chat__sodium_init() != CHAT_OK)
        return chat__error_set(CHAT_ERROR, 0, "libsodium failed to initialize");
    chat_server *srv = chat__calloc(1, sizeof *srv);
    if (!srv)
        return CHAT_ENOMEM;
    pthread_mutex_init(&srv->done_lock, NULL);
    pthread_mutex_init(&srv->revoked_lock, NULL);
    pthread_mutex_init(&srv->auth_lock, NULL);
    pthread_mutex_init(&srv->deleted_lock, NULL);
    chat__strmap_init(&srv->deleted);
    pthread_cond_init(&srv->drain_cond, NULL);
    chat__strmap_init(&srv->revoked_devices);
    chat__strmap_init(&srv->users);
    chat__strmap_init(&srv->revoked);
    chat__strmap_init(&srv->uploads);
    chat__strmap_init(&srv->user_limits);
    chat__typing_init(&srv->typing);
    srv->cfg = *cfg;
    chat__presence_init(srv);
    chat__cluster_init(srv);
    srv->cfg.address = chat__strdup(cfg->address);
    srv->cfg.data_dir = cfg->data_dir ? chat__strdup(cfg->data_dir) : NULL;
    srv->cfg.media_base_url = cfg->media_base_url ? chat__strdup(cfg->media_base_url) : NULL;
    srv->cfg.store_ops = NULL;
    srv->cfg.bus_ops = NULL;
    srv->cfg.push_ops = NULL;
    /* The backends move into the server. */
    srv->store = cfg->store_ops;
    srv->store_st = cfg->store_state;
    srv->bus = cfg->bus_ops;
    srv->bus_st = cfg->bus_state;
    srv->push = cfg->push_ops;
    srv->push_st = cfg->push_state;
    srv->blob = cfg->blob_ops;
    srv->blob_st = cfg->blob_state;
    srv->cfg.blob_ops = NULL;
    cfg->blob_ops = NULL;
    /* One code path: the server always calls auth->verify; the default verifies libchat's
     * tokens under the server's own copy of the keys. */
    srv->auth_custom = cfg->auth_ops != NULL;
    srv->auth = cfg->auth_ops ? cfg->auth_ops : chat__auth_builtin_ops();
    srv->auth_st = cfg->auth_ops ? cfg->auth_state : (void *)&srv->cfg.keys;
    srv->cfg.auth_ops = NULL;
    cfg->auth_ops = NULL;
    cfg->store_ops = NULL;
    cfg->bus_ops = NULL;
    cfg->push_ops = NULL;

    int rc = CHAT_OK;
    if (!srv->cfg.address || (cfg->data_dir && !srv->cfg.data_dir) ||
        (cfg->media_base_url && !srv->cfg.media_base_url))
        rc = CHAT_ENOMEM;
    if (rc == CHAT_OK && !srv->store)
        rc = open_default_store(srv);
    srv->store_here = srv->store == chat_store_memory_ops();
    /* Every store, built-in or the host's, sits behind the one argument-checking layer. */
    if (rc == CHAT_OK)
        rc = chat__store_checked_new(&srv->store, &srv->store_st);
    if (rc == CHAT_OK) {
        srv->lifecycle = chat__store_checked_has_lifecycle(srv->store, srv->store_st);
        srv->row_reactions = chat__store_checked_row_reactions(srv->store, srv->store_st);
        if (!srv->lifecycle && chat__limit(srv, CHAT_LIMIT_RETENTION_MS))
            chat__log(srv, CHAT_LOG_WARN, "retention_ms is ignored: the store keeps no "
                                          "message lifecycle (store version 5)");
    }
    if (rc == CHAT_OK)
        rc = chat__media_init(srv);
    if (rc == CHAT_OK && !srv->bus) {
        rc = chat_bus_local_new(&srv->bus_st);
        if (rc == CHAT_OK)
            srv->bus = chat_bus_local_ops();
    }
    if (rc == CHAT_OK) {
        rc = srv->store->revoked_list(srv->store_st, chat__now_ms(srv), load_revoked, srv);
        if (rc != CHAT_OK)
            chat__error_set(rc, 0, "cannot load revoked sessions");
    }
    if (rc == CHAT_OK && (rc = chat__deleted_load(srv)) != CHAT_OK)
        chat__error_set(rc, 0, "cannot load deleted accounts");
    if (rc == CHAT_OK) {
        chat_bus_sink sink = {sink_deliver, sink_presence, sink_wake,    srv,
                              sink_deliver2, sink_lost,     sink_settled, sink_node,
                              sink_message,  sink_log,      sink_reply,   sink_request};
        rc = srv->bus->attach(srv->bus_st, &sink);
        if (rc == CHAT_OK) {
            chat__hints_init(srv);
            chat__affinity_init(srv);
        }
    }
    if (rc == CHAT_OK)
        rc = chat__worker_start(&srv->writer, srv, 1);
    if (rc == CHAT_OK)
        rc = chat__worker_start(&srv->hasher, srv, 0);
    if (rc == CHAT_OK)
        rc = chat__push_init(srv);
    if (rc != CHAT_OK) {
        int keep = chat_error_last()->code == rc;
        char msg[256];
        snprintf(msg, sizeof msg, "%s", keep ? chat_error_last()->message : chat_strerror(rc));
        server_release(srv);
        return chat__error_set(rc, 0, "%s", msg);
    }
    *out = srv;
    return CHAT_OK;
}

/* ---- the loop ---- */

void chat__server_on_wake(chat_server *srv)
{
    if (atomic_exchange(&srv->bus_wake, 0) && srv->bus->poll)
        srv->bus->poll(srv->bus_st);
    chat__server_drain(srv);
    chat__loop_calls_serve(srv, 1);
    if (atomic_load(&srv->draining) && !atomic_load(&srv->stop_requested))
        chat__drain_step(srv);
    if (atomic_load(&srv->stop_requested) && !srv->stopping) {
        srv->stopping = 1;
        chat__drain_abort(srv);
        chat__presence_flush(srv);
        srv->timers_ready = 0;
        chat__presence_timers_stop(srv);
        chat__hints_stop(srv);
        chat__conntimer_stop(srv);
        chat__expiry_stop(srv);
        submits_direct(srv);
        pthread_mutex_lock(&srv->done_lock);
        srv->loop_ready = 0;
        pthread_mutex_unlock(&srv->done_lock);
        chat__loop_calls_serve(srv, 1); /* those queued before loop_ready fell */
        /* The transport closes every connection; then run() returns. */
        srv->tp->shutdown(srv->tp_st);
    }
}

static int loop_open(chat_server *srv)
{
    if (atomic_load(&srv->running))
        return chat__error_set(CHAT_EMISUSE, 0, "server already running");
    srv->stopping = 0;
    atomic_store(&srv->stop_requested, 0);
    chat__transport_config tc = {
        .address = srv->cfg.address,
        .port = srv->cfg.port,
        .reuse_port = (srv->cfg.flags & CHAT_SERVER_REUSE_PORT) != 0,
        .tls_cert = srv->cfg.tls_cert[0] ? srv->cfg.tls_cert : NULL,
        .tls_key = srv->cfg.tls_cert[0] ? srv->cfg.tls_key : NULL,
        .frame_max = (size_t)chat__limit(srv, CHAT_LIMIT_FRAME_BYTES),
        .frags_max = chat__limit(srv, CHAT_LIMIT_FRAGMENTS),
        .log_level = srv->cfg.log_level,
        .log = srv->cfg.log_cb || srv->cfg.log_kv ? transport_log : NULL,
        .log_ud = srv,
    };
    chat__transport_sink sink;
    chat__server_sink(srv, &sink);
    srv->tp = srv->cfg.transport ? srv->cfg.transport : chat__transport_native();
    int rc = srv->tp->open(&srv->tp_st, srv->cfg.transport_arg, &tc, &sink);
    if (rc != CHAT_OK) {
        srv->tp_st = NULL;
        return rc;
    }
    if (chat__conntimer_start(srv) != CHAT_OK) {
        srv->tp->close(srv->tp_st);
        srv->tp_st = NULL;
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    }
    int timers = chat__presence_timers_start(srv);
    if (timers == CHAT_OK && (timers = chat__hints_start(srv)) != CHAT_OK)
        chat__presence_timers_stop(srv);
    if (timers != CHAT_OK) {
        chat__conntimer_stop(srv);
        srv->tp->close(srv->tp_st);
        srv->tp_st = NULL;
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    }
    if (chat__expiry_start(srv) != CHAT_OK) {
        chat__presence_timers_stop(srv);
        chat__conntimer_stop(srv);
        srv->tp->close(srv->tp_st);
        srv->tp_st = NULL;
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    }
    srv->timers_ready = 1;
    srv->sub_ready = 1;
    pthread_mutex_lock(&srv->done_lock);
    srv->loop_ready = 1;
    pthread_mutex_unlock(&srv->done_lock);
    atomic_store(&srv->port, srv->tp->port(srv->tp_st));
    atomic_store(&srv->running, 1);
    /* Jobs may have finished before the loop existed. */
    srv->tp->wake(srv->tp_st);
    return CHAT_OK;
}

static void loop_run_and_close(chat_server *srv)
{
    pthread_mutex_lock(&srv->done_lock);
    srv->loop_tid = pthread_self();
    srv->loop_tid_set = 1;
    pthread_mutex_unlock(&srv->done_lock);
    srv->tp->run(srv->tp_st);
    pthread_mutex_lock(&srv->done_lock);
    srv->loop_tid_set = 0;
    pthread_mutex_unlock(&srv->done_lock);
    srv->tp->close(srv->tp_st);
    srv->tp_st = NULL;
    atomic_store(&srv->port, 0);
    atomic_store(&srv->running, 0);
}

static void *loop_thread(void *arg)
{
    chat__thread_name("chat-loop");
    loop_run_and_close(arg);
    return NULL;
}

int chat_server_start(chat_server *srv)
{
    if (!srv)
        return CHAT_EINVAL;
    if (srv->thread_started)
        return chat__error_set(CHAT_EMISUSE, 0, "server already started");
    int rc = loop_open(srv);
    if (rc != CHAT_OK)
        return rc;
    if (chat__thread_start(&srv->thread, loop_thread, srv) != 0) {
        chat_server_stop_async(srv);
        loop_run_and_close(srv);
        return chat__error_set(CHAT_ERROR, 0, "cannot start the loop thread");
    }
    srv->thread_started = 1;
    return CHAT_OK;
}

int chat_server_run(chat_server *srv)
{
    if (!srv)
        return CHAT_EINVAL;
    int rc = loop_open(srv);
    if (rc != CHAT_OK)
        return rc;
    chat__sigpipe_hold hold; /* the host's thread: its writes raise no SIGPIPE while it runs */
    chat__sigpipe_block(&hold);
    loop_run_and_close(srv);
    chat__sigpipe_release(&hold);
    return CHAT_OK;
}

int chat_server_stop_async(chat_server *srv)
{
    if (!srv)
        return CHAT_EINVAL;
    atomic_store(&srv->stop_requested, 1);
    pthread_mutex_lock(&srv->done_lock);
    wake_loop(srv);
    pthread_mutex_unlock(&srv->done_lock);
    return CHAT_OK;
}

int chat_server_drain(chat_server *srv, int64_t deadline_ms)
{
    if (!srv || deadline_ms < 0)
        return chat__error_set(CHAT_EINVAL, 0, "srv and a deadline >= 0 are required");
    pthread_mutex_lock(&srv->done_lock);
    if (!atomic_load(&srv->draining)) {
        srv->drain_ms = deadline_ms;
        atomic_store(&srv->draining, 1);
        if (srv->loop_ready) {
            wake_loop(srv);
        } else { /* not running: nothing to drain */
            srv->drain_done = 1;
            srv->drain_rc = CHAT_OK;
            pthread_cond_broadcast(&srv->drain_cond);
        }
    }
    pthread_mutex_unlock(&srv->done_lock);
    return CHAT_OK;
}

int chat_server_drain_wait(chat_server *srv)
{
    if (!srv)
        return CHAT_EINVAL;
    pthread_mutex_lock(&srv->done_lock);
    int rc;
    if (!atomic_load(&srv->draining))
        rc = chat__error_set(CHAT_EMISUSE, 0, "no drain was started");
    else if (on_loop_thread(srv) && !srv->drain_done)
        rc = chat__error_set(CHAT_EMISUSE, 0, "the loop thread cannot wait for its own drain");
    else {
        while (!srv->drain_done)
            pthread_cond_wait(&srv->drain_cond, &srv->done_lock);
        rc = srv->drain_rc;
        if (rc != CHAT_OK)
            chat__error_set(rc, 0, rc == CHAT_ETIMEDOUT ? "the deadline passed: connections "
                                                          "still open were dropped"
                                                        : "the server stopped first");
    }
    pthread_mutex_unlock(&srv->done_lock);
    return rc;
}

int chat_server_stop(chat_server *srv)
{
    if (!srv)
        return CHAT_EINVAL;
    if (!srv->thread_started)
        return CHAT_OK;
    chat_server_stop_async(srv);
    pthread_join(srv->thread, NULL);
    srv->thread_started = 0;
    return CHAT_OK;
}

void chat_server_free(chat_server *srv)
{
    if (!srv)
        return;
    chat_server_stop(srv);
    server_release(srv);
}

int chat_server_port(const chat_server *srv)
{
    return srv ? atomic_load(&((chat_server *)srv)->port) : 0;
}

/* ---- tokens and accounts ---- */

int chat_server_issue_token(chat_server *srv, const char *user, const char *device,
                            int64_t ttl_ms, char **out)
{
    if (!srv || !user || !device || !out || ttl_ms <= 0)
        return CHAT_EINVAL;
    if (srv->auth_custom)
        return chat__error_set(CHAT_ENOTSUP, 0,
                               "the host's auth backend verifies tokens: libchat issues none");
    char *tok = NULL;
    int rc = chat__token_issue(&srv->cfg.keys, user, device, chat__now_ms(srv), ttl_ms, &tok);
    if (rc == CHAT_OK)
        *out = tok;
    return rc;
}

typedef struct revoke_job {
    chat__job job;
    char session[CHAT_ID_MAX + 1];
    char user[CHAT_ID_MAX + 1], device[CHAT_ID_MAX + 1]; /* whose push registration goes */
    int64_t exp_ms;
    chat__conn *by; /* logout: the connection that asked (a reference), else NULL */
    cJSON *re;      /* its request id */
} revoke_job;

static int revoke_run(chat__job *job, chat__txn *tx)
{
    revoke_job *j = (revoke_job *)job;
    int rc = tx->ops->revoked_put(tx->st, j->session, j->exp_ms);
    if (rc == CHAT_OK)
        rc = chat__push_forget_device(tx, j->user, j->device);
    return rc == CHAT_OK ? CHAT_OK : chat__job_fail(job, CHAT_EIO, "storage", "revocation failed");
}

/* Close live connections of a revoked session; by (a logout's own connection, or NULL) gets
 * the answer to its request re first and closes normally. [loop thread] */
static void close_session(chat_server *srv, const char *session, chat__conn *by,
                          const cJSON *re)
{
    for (chat__conn *c = srv->conns; c; c = c->next) {
        if (!c->authed || strcmp(c->session, session) != 0)
            continue;
        if (c != by) {
            chat__conn_close(c, 1008, "session revoked");
            continue;
        }
        cJSON *o = cJSON_CreateObject();
        int ok = o && cJSON_AddStringToObject(o, "type", "ok") &&
                 (!re || chat__json_add(o, "re", chat__json_id_copy(re)));
        chat__frame *f = ok ? chat__frame_json(o) : NULL;
        cJSON_Delete(o);
        if (f) {
            chat__conn_send(c, f);
            chat__frame_unref(f);
            chat__conn_close(c, 1000, "logged out");
        } else {
            chat__conn_close(c, 1011, "out of memory"); /* logged out, but unanswered */
        }
    }
}

static void revoke_done(chat_server *srv, chat__job *job)
{
    revoke_job *j = (revoke_job *)job;
    chat__cluster_revoked(srv, j->session, j->exp_ms);
    if (j->by) /* the answer waits until the other nodes refuse the session too */
        chat__cluster_hold(j->by);
    close_session(srv, j->session, j->by, j->re);
    if (j->by)
        chat__conn_unref(j->by);
    cJSON_Delete(j->re);
    chat__free(j);
}

void chat__server_revoked_elsewhere(chat_server *srv, const char *session)
{
    pthread_mutex_lock(&srv->revoked_lock);
    int rc = chat__strmap_put(&srv->revoked, session, srv);
    pthread_mutex_unlock(&srv->revoked_lock);
    if (rc != CHAT_OK)
        chat__log(srv, CHAT_LOG_WARN, "a session revoked on another node is not refused here: "
                                      "out of memory");
    close_session(srv, session, NULL, NULL);
}

/* Refuse the session from now on (memory at once, the store through the writer), then close
 * its connections. by and re (owned) are a logout's connection and request id, or NULL. */
static int revoke_session(chat_server *srv, const chat_auth_identity *id, chat__conn *by,
                          cJSON *re)
{
    const char *session = id->session;
    revoke_job *j = chat__calloc(1, sizeof *j);
    if (!j) {
        cJSON_Delete(re);
        return CHAT_ENOMEM;
    }
    pthread_mutex_lock(&srv->revoked_lock);
    int rc = chat__strmap_put(&srv->revoked, session, srv);
    pthread_mutex_unlock(&srv->revoked_lock);
    if (rc != CHAT_OK) {
        cJSON_Delete(re);
        chat__free(j);
        return rc;
    }
    snprintf(j->session, sizeof j->session, "%s", session);
    snprintf(j->user, sizeof j->user, "%s", id->user);
    snprintf(j->device, sizeof j->device, "%s", id->device);
    j->exp_ms = id->exp_ms;
    j->by = by ? chat__conn_ref(by) : NULL;
    j->re = re;
    j->job.run = revoke_run;
    j->job.done = revoke_done;
    chat__worker_submit(&srv->writer, &j->job);
    return CHAT_OK;
}

int chat_server_revoke_token(chat_server *srv, const char *token)
{
    if (!srv || !token)
        return CHAT_EINVAL;
    chat_auth_identity id;
    if (chat__server_verify(srv, token, strlen(token), &id) != CHAT_OK)
        return chat__error_set(CHAT_EAUTH, 0, "not a valid token");
    return revoke_session(srv, &id, NULL, NULL);
}

void chat__handle_logout(chat__conn *c, cJSON *f, cJSON *re)
{
    cJSON_Delete(f);
    chat_auth_identity id;
    memset(&id, 0, sizeof id);
    snprintf(id.user, sizeof id.user, "%s", c->user);
    snprintf(id.device, sizeof id.device, "%s", c->device);
    snprintf(id.session, sizeof id.session, "%s", c->session);
    id.exp_ms = c->session_exp_ms;
    if (revoke_session(c->srv, &id, c, re) != CHAT_OK)
        chat__conn_close(c, 1011, "out of memory");
}

typedef struct password_job {
    chat__job job;
    char user[CHAT_ID_MAX + 1];
    char hash[CHAT__PASSWORD_HASH_BYTES];
} password_job;

static int password_run(chat__job *job, chat__txn *tx)
{
    password_job *j = (password_job *)job;
    chat_store_user u;
    int rc = tx->ops->user_get(tx->st, j->user, &u);
    if (rc == CHAT_ENOTFOUND) {
        memset(&u, 0, sizeof u);
        strcpy(u.name, j->user);
        u.created_ms = tx->now_ms;
    } else if (rc != CHAT_OK) {
        return chat__job_fail(job, CHAT_EIO, "storage", "cannot read the account");
    }
    memcpy(u.pwhash, j->hash, sizeof u.pwhash);
    if (tx->ops->user_put(tx->st, &u) != CHAT_OK)
        return chat__job_fail(job, CHAT_EIO, "storage", "cannot store the account");
    return CHAT_OK;
}

int chat_server_user_set_password(chat_server *srv, const char *user, const char *password)
{
    if (!srv || !user || !password || !chat__id_valid(user, strlen(user)))
        return chat__error_set(CHAT_EINVAL, 0, "a user id is 1-64 of [A-Za-z0-9_.@-]");
    password_job j;
    memset(&j, 0, sizeof j);
    strcpy(j.user, user);
    int rc = chat__password_hash(password, strlen(password), j.hash);
    if (rc != CHAT_OK)
        return rc == CHAT_EINVAL ? chat__error_set(rc, 0, "a password is 1-1024 bytes") : rc;
    j.job.run = password_run;
    rc = chat__worker_run_sync(&srv->writer, &j.job);
    sodium_memzero(j.hash, sizeof j.hash);
    return rc == CHAT_OK ? CHAT_OK : chat__error_set(rc, 0, "%s", j.job.message);
}
