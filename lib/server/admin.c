/* Operating a running server: the drain, liveness and readiness, device revocation, and the
 * admin queries. What touches connections runs on the loop thread (chat__loop_call); what
 * reads the store runs on the writer. */
#include "server/req.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/ids.h"
#include "core/monowait.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the drain [loop thread] ---- */

static void drain_finish(chat_server *srv, int rc)
{
    srv->drain_phase = CHAT__DRAIN_DONE;
    if (srv->drain_timer_on) {
        srv->tp->timer_close(&srv->drain_timer);
        srv->drain_timer_on = 0;
    }
    pthread_mutex_lock(&srv->done_lock);
    srv->drain_done = 1;
    srv->drain_rc = rc;
    pthread_cond_broadcast(&srv->drain_cond);
    pthread_mutex_unlock(&srv->done_lock);
    chat__log(srv, rc == CHAT_OK ? CHAT_LOG_INFO : CHAT_LOG_WARN, "drain finished: %s",
              rc == CHAT_OK ? "every connection closed" : chat_strerror(rc));
}

/* The deadline: whatever is still connected is dropped. */
static void drain_deadline(chat__timer *t)
{
    chat_server *srv = CHAT__SERVER_OF_TIMER(t, drain_timer);
    if (srv->drain_phase == CHAT__DRAIN_DONE)
        return;
    chat__log(srv, CHAT_LOG_WARN, "drain deadline: dropping %zu connections", srv->n_conns);
    srv->drain_phase = CHAT__DRAIN_CLOSING;
    srv->drain_rc = CHAT_ETIMEDOUT; /* read by drain_step when the last one is gone */
    for (chat__conn *c = srv->conns; c; c = c->next)
        if (c->tc && !c->hung_up) {
            c->hung_up = 1;
            srv->tp->kill(c->tc);
        }
}

void chat__drain_step(chat_server *srv)
{
    switch (srv->drain_phase) {
    case CHAT__DRAIN_OFF: {
        if (!atomic_load(&srv->draining))
            return;
        pthread_mutex_lock(&srv->done_lock);
        int64_t ms = srv->drain_ms;
        pthread_mutex_unlock(&srv->done_lock);
        srv->drain_phase = CHAT__DRAIN_INFLIGHT;
        srv->drain_rc = CHAT_OK;
        if (srv->tp->timer_init(srv->tp_st, &srv->drain_timer, drain_deadline) == CHAT_OK) {
            srv->drain_timer_on = 1;
            srv->tp->timer_start(&srv->drain_timer, ms);
        }
        chat__log(srv, CHAT_LOG_INFO,
                  "draining: %zu connections, %zu requests in flight, deadline %" PRId64 " ms",
                  srv->n_conns, srv->writer_backlog, ms);
    }
        /* fall through */
    case CHAT__DRAIN_INFLIGHT:
        /* Every request already taken is answered first (acks of durable messages). */
        if (srv->writer_backlog || srv->sub_head || srv->logins_pending)
            return;
        srv->drain_phase = CHAT__DRAIN_CLOSING;
        for (chat__conn *c = srv->conns; c; c = c->next)
            chat__conn_close(c, 1001, "server going away: reconnect");
        /* fall through */
    case CHAT__DRAIN_CLOSING:
        if (srv->n_conns == 0)
            drain_finish(srv, srv->drain_rc);
        return;
    default:
        return;
    }
}

void chat__drain_abort(chat_server *srv)
{
    if (atomic_load(&srv->draining) && srv->drain_phase != CHAT__DRAIN_DONE)
        drain_finish(srv, CHAT_ECLOSED);
}

/* ---- liveness and readiness ---- */

static void nothing(chat_server *srv, void *arg)
{
    (void)srv;
    (void)arg;
}

/* As chat__loop_call: on CHAT_ETIMEDOUT arg is the call's, else still the caller's. */
static int loop_answers(chat_server *srv, int64_t timeout_ms, void (*fn)(chat_server *, void *),
                        void *arg, void (*arg_free)(void *))
{
    if (!atomic_load(&srv->running))
        return chat__error_set(CHAT_ECLOSED, 0, "the server is not running");
    int rc = chat__loop_call(srv, fn, arg, arg_free, (int)timeout_ms);
    if (rc == CHAT_ETIMEDOUT)
        return chat__error_set(rc, 0, "the loop thread did not answer within %" PRId64 " ms",
                               timeout_ms);
    if (rc == CHAT_ECLOSED)
        return chat__error_set(rc, 0, "the server is not running");
    return rc;
}

static int64_t clamp_timeout(int64_t ms)
{
    return ms < 0 ? 0 : ms > 3600000 ? 3600000 : ms;
}

int chat_server_alive(chat_server *srv, int64_t timeout_ms)
{
    if (!srv)
        return CHAT_EINVAL;
    return loop_answers(srv, clamp_timeout(timeout_ms), nothing, NULL, NULL);
}

static void bus_health(chat_server *srv, void *arg)
{
    int *rc = arg;
    *rc = srv->bus->ctl ? srv->bus->ctl(srv->bus_st, CHAT_BUS_CTL_HEALTH, NULL) : CHAT_ENOTSUP;
}

/* A store probe: one read in a writer transaction, answered once that transaction committed
 * and its result came back to the loop thread (done): the whole path a request takes, so a
 * commit that hangs, or a loop that no longer drains the writer's results, is not ready. The
 * caller may stop waiting: the probe is shared and freed by whoever lets go of it last. */
typedef struct probe {
    chat__job job;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int refs, answered, rc;
} probe;

static void probe_unref(probe *p)
{
    pthread_mutex_lock(&p->mu);
    int last = --p->refs == 0;
    pthread_mutex_unlock(&p->mu);
    if (!last)
        return;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cond);
    chat__free(p);
}

static void probe_answer(probe *p, int rc)
{
    pthread_mutex_lock(&p->mu);
    if (!p->answered) {
        p->answered = 1;
        p->rc = rc;
        pthread_cond_signal(&p->cond);
    }
    pthread_mutex_unlock(&p->mu);
}

static int probe_run(chat__job *job, chat__txn *tx)
{
    probe *p = (probe *)job;
    int64_t v;
    int rc = tx->ops->meta_get(tx->st, "inbox_change", &v);
    rc = rc == CHAT_ENOTFOUND ? CHAT_OK : rc;
    (void)p;
    /* Not CHAT_EIO: a failed probe must not roll back the requests it shares a batch with. */
    return rc == CHAT_OK ? CHAT_OK : chat__job_fail(job, CHAT_ERROR, "storage", "probe failed");
}

static void probe_done(chat_server *srv, chat__job *job)
{
    (void)srv;
    probe *p = (probe *)job;
    probe_answer(p, job->status == CHAT_OK ? CHAT_OK : CHAT_EIO);
    probe_unref(p);
}

static int store_answers(chat_server *srv, int64_t timeout_ms)
{
    probe *p = chat__calloc(1, sizeof *p);
    if (!p)
        return CHAT_ENOMEM;
    pthread_mutex_init(&p->mu, NULL);
    if (chat__cond_init_mono(&p->cond) != 0) {
        pthread_mutex_destroy(&p->mu);
        chat__free(p);
        return CHAT_ENOMEM;
    }
    p->refs = 2;
    p->job.run = probe_run;
    p->job.done = probe_done;
    chat__worker_submit(&srv->writer, &p->job);
    struct timespec until = chat__mono_deadline((int)timeout_ms);
    pthread_mutex_lock(&p->mu);
    while (!p->answered && pthread_cond_timedwait(&p->cond, &p->mu, &until) == 0)
        ;
    int rc = p->answered ? p->rc : CHAT_ETIMEDOUT;
    pthread_mutex_unlock(&p->mu);
    probe_unref(p);
    if (rc == CHAT_ETIMEDOUT)
        return chat__error_set(rc, 0, "the store did not answer within %" PRId64 " ms",
                               timeout_ms);
    if (rc != CHAT_OK)
        return chat__error_set(CHAT_EIO, 0, "the store failed: %s", chat_error_name(rc));
    return CHAT_OK;
}

int chat_server_ready(chat_server *srv, int64_t timeout_ms)
{
    if (!srv)
        return CHAT_EINVAL;
    timeout_ms = clamp_timeout(timeout_ms);
    uint64_t t0 = chat__mono_ns();
    if (atomic_load(&srv->draining))
        return chat__error_set(CHAT_EBUSY, 0, "the server is draining");
    int *bus_rc = chat__malloc(sizeof *bus_rc);
    if (!bus_rc)
        return CHAT_ENOMEM;
    int rc = loop_answers(srv, timeout_ms, bus_health, bus_rc, chat__free);
    if (rc == CHAT_ETIMEDOUT)
        return rc; /* bus_rc belongs to the call */
    if (rc != CHAT_OK) {
        chat__free(bus_rc);
        return rc;
    }
    int bus = *bus_rc;
    chat__free(bus_rc);
    if (bus != CHAT_OK && bus != CHAT_ENOTSUP)
        return chat__error_set(CHAT_EIO, 0, "the bus is not connected (%s)",
                               chat_error_name(bus));
    int64_t left = timeout_ms - (int64_t)((chat__mono_ns() - t0) / 1000000);
    rc = store_answers(srv, left > 0 ? left : 0);
    if (rc == CHAT_OK && atomic_load(&srv->draining))
        return chat__error_set(CHAT_EBUSY, 0, "the server is draining");
    return rc;
}

/* ---- device revocation ---- */

/* Records in the store's revoked sessions: "dev:<revoked ms>:<user>:<device>", kept for ever.
 * Session ids are ids ([A-Za-z0-9_.@-]) and never contain ':', so the two cannot mix. */
#define DEV_PREFIX "dev:"

static int put_revoked_device(chat_server *srv, const char *user, const char *device,
                              int64_t at_ms)
{
    char key[2 * CHAT_ID_MAX + 2];
    snprintf(key, sizeof key, "%s:%s", user, device);
    pthread_mutex_lock(&srv->revoked_lock);
    int64_t *at = chat__strmap_get(&srv->revoked_devices, key);
    int rc = CHAT_OK;
    if (at) {
        if (*at < at_ms)
            *at = at_ms;
    } else if (!(at = chat__malloc(sizeof *at))) {
        rc = CHAT_ENOMEM;
    } else {
        *at = at_ms;
        rc = chat__strmap_put(&srv->revoked_devices, key, at);
        if (rc != CHAT_OK)
            chat__free(at);
    }
    pthread_mutex_unlock(&srv->revoked_lock);
    return rc;
}

int chat__device_revoked_load(chat_server *srv, const char *key)
{
    if (strncmp(key, DEV_PREFIX, sizeof DEV_PREFIX - 1) != 0)
        return 0;
    const char *p = key + sizeof DEV_PREFIX - 1;
    char *end;
    long long at = strtoll(p, &end, 10);
    const char *user = end + 1, *colon = *end == ':' ? strchr(user, ':') : NULL;
    char u[CHAT_ID_MAX + 1];
    size_t ulen = colon ? (size_t)(colon - user) : 0;
    if (!colon || !chat__id_valid(user, ulen) || !chat__id_valid(colon + 1, strlen(colon + 1))) {
        chat__log(srv, CHAT_LOG_WARN, "ignoring a malformed device revocation record");
        return 1;
    }
    memcpy(u, user, ulen);
    u[ulen] = '\0';
    return put_revoked_device(srv, u, colon + 1, at) == CHAT_OK ? 1 : -1;
}

int chat__device_revoked(chat_server *srv, const char *user, const char *device, int64_t iat_ms)
{
    char key[2 * CHAT_ID_MAX + 2];
    snprintf(key, sizeof key, "%s:%s", user, device);
    pthread_mutex_lock(&srv->revoked_lock);
    const int64_t *at = srv->revoked_devices.used ? chat__strmap_get(&srv->revoked_devices, key)
                                                  : NULL;
    int revoked = at && (iat_ms == 0 || iat_ms <= *at);
    pthread_mutex_unlock(&srv->revoked_lock);
    return revoked;
}

static void free_value(const char *key, void *value, void *ud)
{
    (void)key;
    (void)ud;
    chat__free(value);
}

void chat__revoked_devices_free(chat_server *srv)
{
    chat__strmap_each(&srv->revoked_devices, free_value, NULL);
    chat__strmap_clear(&srv->revoked_devices);
}

typedef struct revoke_dev_job {
    chat__job job;
    char key[sizeof DEV_PREFIX + 24 + 2 * CHAT_ID_MAX + 2];
} revoke_dev_job;

static int revoke_dev_run(chat__job *job, chat__txn *tx)
{
    revoke_dev_job *j = (revoke_dev_job *)job;
    int rc = tx->ops->revoked_put(tx->st, j->key, INT64_MAX);
    return rc == CHAT_OK ? CHAT_OK : chat__job_fail(job, CHAT_EIO, "storage", "revocation failed");
}

typedef struct close_dev {
    char user[CHAT_ID_MAX + 1], device[CHAT_ID_MAX + 1];
} close_dev;

static void close_device(chat_server *srv, void *arg)
{
    close_dev *d = arg;
    for (chat__conn *c = chat__strmap_get(&srv->users, d->user); c; c = c->next_of_user)
        if (strcmp(c->device, d->device) == 0) {
            chat__logc(srv, CHAT_LOG_WARN, c, NULL, "1008", "closing: the device was revoked");
            chat__conn_close(c, 1008, "device revoked");
        }
}

static int ids_ok(const char *user, const char *device)
{
    return user && chat__id_valid(user, strlen(user)) &&
           (!device || chat__id_valid(device, strlen(device)));
}

int chat_server_admin_revoke_device(chat_server *srv, const char *user, const char *device)
{
    if (!srv || !ids_ok(user, device) || !device)
        return chat__error_set(CHAT_EINVAL, 0, "user and device must be ids");
    if (chat__on_loop_thread(srv))
        return chat__error_set(CHAT_EMISUSE, 0, "not on the loop thread (it waits for the store)");
    int64_t at = chat__now_ms(srv);
    revoke_dev_job j;
    memset(&j, 0, sizeof j);
    snprintf(j.key, sizeof j.key, DEV_PREFIX "%" PRId64 ":%s:%s", at, user, device);
    j.job.run = revoke_dev_run;
    int rc = chat__worker_run_sync(&srv->writer, &j.job);
    if (rc != CHAT_OK)
        return chat__error_set(CHAT_EIO, 0, "%s", j.job.message);
    rc = put_revoked_device(srv, user, device, at);
    if (rc != CHAT_OK)
        return rc;
    chat__log(srv, CHAT_LOG_WARN, "device %s of %s revoked", device, user);
    close_dev *d = chat__malloc(sizeof *d);
    if (!d)
        return CHAT_OK; /* refused from now on; its connections end at their next auth */
    snprintf(d->user, sizeof d->user, "%s", user);
    snprintf(d->device, sizeof d->device, "%s", device);
    rc = chat__loop_call(srv, close_device, d, chat__free, 5000);
    if (rc != CHAT_ETIMEDOUT)
        chat__free(d);
    return CHAT_OK;
}

/* ---- admin queries ---- */

static int json_out(cJSON *o, char **out)
{
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!s)
        return CHAT_ENOMEM;
    char *copy = chat__strdup(s); /* freed with chat_string_free */
    cJSON_free(s);
    if (!copy)
        return CHAT_ENOMEM;
    *out = copy;
    return CHAT_OK;
}

static const char *conn_state(const chat__conn *c)
{
    return c->close_code ? "closing" : c->authed ? "authenticated"
                                   : c->auth_pending ? "handshake" : "unauthenticated";
}

typedef struct user_query {
    char user[CHAT_ID_MAX + 1];
    cJSON *doc;
} user_query;

static void user_query_free(void *arg)
{
    user_query *q = arg;
    cJSON_Delete(q->doc);
    chat__free(q);
}

/* The device's object in devs, made on first use. */
static cJSON *device_obj(cJSON *devs, const char *device)
{
    cJSON *d;
    cJSON_ArrayForEach(d, devs)
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(d, "device");
        if (cJSON_IsString(name) && strcmp(name->valuestring, device) == 0)
            return d;
    }
    d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "device", device);
    cJSON_AddNumberToObject(d, "revoked_ms", 0);
    cJSON_AddArrayToObject(d, "connections");
    cJSON_AddItemToArray(devs, d);
    return d;
}

typedef struct revoked_of {
    const char *user;
    cJSON *devs;
} revoked_of;

static void add_revoked(const char *key, void *value, void *ud)
{
    revoked_of *r = ud;
    size_t n = strlen(r->user);
    if (strncmp(key, r->user, n) != 0 || key[n] != ':')
        return;
    cJSON *d = device_obj(r->devs, key + n + 1);
    cJSON_ReplaceItemInObjectCaseSensitive(d, "revoked_ms",
                                           cJSON_CreateNumber((double)*(int64_t *)value));
}

static void user_gather(chat_server *srv, void *arg)
{
    user_query *q = arg;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "user", q->user);
    cJSON_AddBoolToObject(o, "online", srv->bus->online(srv->bus_st, q->user) == 1);
    cJSON *devs = cJSON_AddArrayToObject(o, "devices");
    int64_t now = chat__loop_ms(srv);
    for (chat__conn *c = chat__strmap_get(&srv->users, q->user); c; c = c->next_of_user) {
        cJSON *conns = cJSON_GetObjectItemCaseSensitive(device_obj(devs, c->device),
                                                        "connections");
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "id", (double)c->id);
        cJSON_AddStringToObject(x, "state", conn_state(c));
        cJSON_AddNumberToObject(x, "age_ms", (double)(now - c->born_ms));
        cJSON_AddNumberToObject(x, "queue_frames", (double)c->q_count);
        cJSON_AddNumberToObject(x, "queue_bytes", (double)c->q_bytes);
        cJSON_AddItemToArray(conns, x);
    }
    revoked_of r = {q->user, devs};
    pthread_mutex_lock(&srv->revoked_lock);
    chat__strmap_each(&srv->revoked_devices, add_revoked, &r);
    pthread_mutex_unlock(&srv->revoked_lock);
    q->doc = o;
}

int chat_server_admin_user(char **out, chat_server *srv, const char *user)
{
    if (!out || !srv || !ids_ok(user, NULL))
        return chat__error_set(CHAT_EINVAL, 0, "out, srv and a user id are required");
    user_query *q = chat__calloc(1, sizeof *q);
    if (!q)
        return CHAT_ENOMEM;
    snprintf(q->user, sizeof q->user, "%s", user);
    int rc = chat__loop_call(srv, user_gather, q, user_query_free, 5000);
    if (rc == CHAT_ETIMEDOUT)
        return chat__error_set(rc, 0, "the loop thread did not answer");
    if (rc == CHAT_ECLOSED) {
        /* Not running: no connections; the revoked devices are known all the same. */
        q->doc = cJSON_CreateObject();
        cJSON_AddStringToObject(q->doc, "user", user);
        cJSON_AddBoolToObject(q->doc, "online", 0);
        revoked_of r = {q->user, cJSON_AddArrayToObject(q->doc, "devices")};
        pthread_mutex_lock(&srv->revoked_lock);
        chat__strmap_each(&srv->revoked_devices, add_revoked, &r);
        pthread_mutex_unlock(&srv->revoked_lock);
    } else if (rc != CHAT_OK) {
        user_query_free(q);
        return rc;
    }
    rc = json_out(q->doc, out);
    q->doc = NULL;
    user_query_free(q);
    return rc;
}

typedef struct disconnect_query {
    uint64_t id;
    int found;
} disconnect_query;

static void disconnect_one(chat_server *srv, void *arg)
{
    disconnect_query *q = arg;
    for (chat__conn *c = srv->conns; c; c = c->next)
        if (c->id == q->id && c->tc) {
            q->found = 1;
            chat__logc(srv, CHAT_LOG_WARN, c, NULL, "1008", "disconnected by an operator");
            chat__conn_close(c, 1008, "disconnected by an operator");
            return;
        }
}

int chat_server_admin_disconnect(chat_server *srv, uint64_t conn_id)
{
    if (!srv || conn_id == 0)
        return chat__error_set(CHAT_EINVAL, 0, "srv and a connection id are required");
    disconnect_query *q = chat__calloc(1, sizeof *q);
    if (!q)
        return CHAT_ENOMEM;
    q->id = conn_id;
    int rc = chat__loop_call(srv, disconnect_one, q, chat__free, 5000);
    if (rc == CHAT_ETIMEDOUT)
        return chat__error_set(rc, 0, "the loop thread did not answer");
    int found = q->found;
    chat__free(q);
    if (rc == CHAT_ECLOSED || (rc == CHAT_OK && !found))
        return chat__error_set(CHAT_ENOTFOUND, 0, "no connection %" PRIu64, conn_id);
    return rc;
}

typedef struct conv_job {
    chat__job job;
    int64_t conv;
    cJSON *doc;
} conv_job;

static int conv_run(chat__job *job, chat__txn *tx)
{
    conv_job *j = (conv_job *)job;
    chat_store_conv c;
    int rc = tx->ops->conv_get(tx->st, j->conv, &c);
    if (rc == CHAT_ENOTFOUND)
        return chat__job_fail(job, CHAT_ENOTFOUND, "not_found", "no conversation %" PRId64,
                              j->conv);
    if (rc != CHAT_OK)
        return chat__job_fail(job, CHAT_ERROR, "storage", "the store failed");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "conv", (double)c.id);
    cJSON_AddStringToObject(o, "kind", c.kind == CHAT_CONV_GROUP ? "group" : "direct");
    cJSON_AddStringToObject(o, "title", c.title);
    cJSON_AddNumberToObject(o, "head", (double)c.head_seq);
    cJSON_AddNumberToObject(o, "created_ms", (double)c.created_ms);
    cJSON_AddNumberToObject(o, "member_count", c.member_count);
    cJSON *members = cJSON_AddArrayToObject(o, "members");
    if (!members || tx->ops->member_list(tx->st, c.id, 0, chat__member_json_add, members) != CHAT_OK) {
        cJSON_Delete(o);
        return chat__job_fail(job, CHAT_ERROR, "storage", "cannot list the members");
    }
    j->doc = o;
    return CHAT_OK;
}

int chat_server_admin_conv(char **out, chat_server *srv, chat_conv_id conv)
{
    if (!out || !srv || conv <= 0)
        return chat__error_set(CHAT_EINVAL, 0, "out, srv and a conversation id are required");
    if (chat__on_loop_thread(srv))
        return chat__error_set(CHAT_EMISUSE, 0, "not on the loop thread (it waits for the store)");
    conv_job j;
    memset(&j, 0, sizeof j);
    j.conv = conv;
    j.job.run = conv_run;
    int rc = chat__worker_run_sync(&srv->writer, &j.job);
    if (rc != CHAT_OK) {
        cJSON_Delete(j.doc);
        return chat__error_set(rc == CHAT_ENOTFOUND ? rc : CHAT_EIO, 0, "%s", j.job.message);
    }
    return json_out(j.doc, out);
}
