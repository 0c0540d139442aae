/* Push on the engine's side: the push_register, push_unregister and mute frames, the resolution
 * of a message's offline recipients into their registered devices (one writer job per message,
 * reading mutes and registrations), and the tokens a notifier reports invalid, which the writer
 * deletes. Everything here needs a store with push registrations (version 3); without one the
 * frames answer ENOTSUP and pushes go to notify() alone, as before registrations existed. */
#include "server/push.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/json.h"
#include "store/checked.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Tokens waiting for deletion beyond this many are forgotten: the provider reports them again
 * at their next push. */
#define DEAD_MAX 1024

struct dead_token {
    struct dead_token *next;
    int platform;
    char token[];
};

struct chat__push_srv {
    pthread_mutex_t lock;
    struct dead_token *dead; /* guarded by lock, with n_dead and kicked */
    size_t n_dead;
    int kicked;              /* kick is posted to the loop and has not run yet */
    chat__job kick;
};

static int has_regs(const chat_server *srv)
{
    return chat__store_checked_has_push(srv->store, srv->store_st);
}

/* ---- tokens reported invalid ---- */

static struct dead_token *take_dead(struct chat__push_srv *p)
{
    pthread_mutex_lock(&p->lock);
    struct dead_token *list = p->dead;
    p->dead = NULL;
    p->n_dead = 0;
    pthread_mutex_unlock(&p->lock);
    return list;
}

/* Delete the registrations of every token in list, then free it. [writer thread, or the
 * releasing thread once the writer stopped] */
static void delete_tokens(chat_server *srv, const chat_store_ops *ops, void *st,
                          struct dead_token *list)
{
    int n = 0;
    while (list) {
        struct dead_token *next = list->next;
        int rc = ops->push_reg_del_token(st, list->platform, list->token);
        if (rc != CHAT_OK)
            chat__log(srv, CHAT_LOG_WARN, "push: cannot delete an invalid token: %s",
                      chat_error_name(rc));
        else
            n++;
        chat__free(list);
        list = next;
    }
    if (n)
        chat__log(srv, CHAT_LOG_INFO, "push: deleted the registrations of %d invalid token%s",
                  n, n == 1 ? "" : "s");
}

static int dead_run(chat__job *job, chat__txn *tx)
{
    delete_tokens(tx->srv, tx->ops, tx->st, take_dead(tx->srv->pushs));
    return CHAT_OK; /* a failed delete must not roll back the requests sharing the commit */
}

static void job_free_done(chat_server *srv, chat__job *job)
{
    (void)srv;
    chat__free(job);
}

static void delete_now(chat_server *srv)
{
    struct dead_token *list = take_dead(srv->pushs);
    if (!list)
        return;
    if (srv->store->begin(srv->store_st) != CHAT_OK) {
        delete_tokens(srv, srv->store, srv->store_st, NULL);
        while (list) {
            struct dead_token *next = list->next;
            chat__free(list);
            list = next;
        }
        return;
    }
    delete_tokens(srv, srv->store, srv->store_st, list);
    if (srv->store->commit(srv->store_st) != CHAT_OK)
        srv->store->rollback(srv->store_st);
}

/* Loop thread (or the final drain): hand the deletions to the writer, or do them here once the
 * writer has stopped. */
static void kick_done(chat_server *srv, chat__job *job)
{
    (void)job;
    struct chat__push_srv *p = srv->pushs;
    pthread_mutex_lock(&p->lock);
    p->kicked = 0;
    pthread_mutex_unlock(&p->lock);
    if (!srv->writer.started) {
        delete_now(srv);
        return;
    }
    chat__job *j = chat__calloc(1, sizeof *j);
    if (!j)
        return; /* the tokens wait for the next report */
    j->run = dead_run;
    j->done = job_free_done;
    chat__server_submit(srv, j);
}

static void sink_token_invalid(int platform, const char *token, void *ud)
{
    chat_server *srv = ud;
    struct chat__push_srv *p = srv->pushs;
    if (!token || (platform != CHAT_PUSH_APNS && platform != CHAT_PUSH_FCM) || !token[0] ||
        strlen(token) > CHAT_PUSH_TOKEN_MAX)
        return;
    size_t len = strlen(token);
    struct dead_token *d = chat__malloc(sizeof *d + len + 1);
    if (!d)
        return;
    d->platform = platform;
    memcpy(d->token, token, len + 1);
    pthread_mutex_lock(&p->lock);
    int post = 0;
    if (p->n_dead < DEAD_MAX) {
        d->next = p->dead;
        p->dead = d;
        p->n_dead++;
        d = NULL;
        post = !p->kicked;
        p->kicked = 1;
    }
    pthread_mutex_unlock(&p->lock);
    chat__free(d);
    if (post)
        chat__server_post(srv, &p->kick);
}

static void sink_log(int level, const char *msg, void *ud)
{
    chat__log(ud, level, "%s", msg);
}

int chat__push_init(chat_server *srv)
{
    struct chat__push_srv *p = chat__calloc(1, sizeof *p);
    if (!p)
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    pthread_mutex_init(&p->lock, NULL);
    p->kick.done = kick_done;
    srv->pushs = p;
    if (srv->push && srv->push->version >= 2 && srv->push->attach) {
        chat_push_sink sink = {sink_token_invalid, sink_log, srv};
        int rc = srv->push->attach(srv->push_st, &sink);
        if (rc != CHAT_OK)
            return chat__error_set(rc, 0, "push notifier: attach failed: %s",
                                   chat_error_last()->code == rc ? chat_error_last()->message
                                                                 : chat_strerror(rc));
    }
    return CHAT_OK;
}

void chat__push_release(chat_server *srv)
{
    struct chat__push_srv *p = srv->pushs;
    if (!p)
        return;
    if (srv->store)
        delete_now(srv); /* what the notifier reported while it flushed */
    pthread_mutex_destroy(&p->lock);
    chat__free(p);
    srv->pushs = NULL;
}

/* ---- offline recipients into devices ---- */

typedef struct push_dev {
    size_t user;            /* index into push_job.users */
    int platform, sandbox;
    char *device, *token, *topic; /* one allocation, device first */
} push_dev;

typedef struct push_user {
    char *user;
    uint64_t unread;
    int muted;
} push_user;

typedef struct push_job {
    chat__job job;
    chat_push_event ev;
    char *strs;             /* title, preview and sender, one allocation */
    push_user *users;
    size_t n_users;
    push_dev *devs;
    size_t n_devs, cap_devs;
    size_t cur;             /* the user whose devices are being listed */
} push_job;

static void push_job_free(push_job *j)
{
    for (size_t i = 0; i < j->n_users; i++)
        chat__free(j->users[i].user);
    for (size_t i = 0; i < j->n_devs; i++)
        chat__free(j->devs[i].device);
    chat__free(j->users);
    chat__free(j->devs);
    chat__free(j->strs);
    chat__free(j);
}

static int collect_dev(const chat_store_push_reg *reg, void *ud)
{
    push_job *j = ud;
    if (j->n_devs == j->cap_devs) {
        size_t cap = j->cap_devs ? 2 * j->cap_devs : 4;
        push_dev *d = chat__realloc(j->devs, cap * sizeof *d);
        if (!d)
            return CHAT_ENOMEM;
        j->devs = d;
        j->cap_devs = cap;
    }
    size_t ld = strlen(reg->device), lt = strlen(reg->token), lp = strlen(reg->topic);
    char *s = chat__malloc(ld + lt + lp + 3);
    if (!s)
        return CHAT_ENOMEM;
    push_dev *d = &j->devs[j->n_devs++];
    d->user = j->cur;
    d->platform = reg->platform;
    d->sandbox = reg->sandbox;
    d->device = memcpy(s, reg->device, ld + 1);
    d->token = memcpy(s + ld + 1, reg->token, lt + 1);
    d->topic = memcpy(s + ld + lt + 2, reg->topic, lp + 1);
    return 0;
}

/* Reads only. A failed read costs that recipient its device pushes (logged), never the
 * requests sharing the transaction. [writer thread] */
static int resolve_run(chat__job *job, chat__txn *tx)
{
    push_job *j = (push_job *)job;
    for (size_t i = 0; i < j->n_users; i++) {
        push_user *u = &j->users[i];
        int64_t until = 0;
        int rc = tx->ops->push_mute_get(tx->st, u->user, j->ev.conv, &until);
        if (rc == CHAT_OK && until > tx->now_ms) {
            u->muted = 1;
            continue;
        }
        j->cur = i;
        rc = tx->ops->push_reg_list(tx->st, u->user, collect_dev, j);
        if (rc != CHAT_OK)
            chat__log(tx->srv, CHAT_LOG_WARN, "push: cannot list the devices of %s: %s",
                      u->user, chat_error_name(rc));
    }
    return CHAT_OK;
}

static void resolve_done(chat_server *srv, chat__job *job)
{
    push_job *j = (push_job *)job;
    const chat_push_ops *ops = srv->push;
    int devices = ops->version >= 2 && ops->notify_device;
    size_t d = 0;
    for (size_t i = 0; i < j->n_users; i++) {
        push_user *u = &j->users[i];
        /* Online again since the message was stored: the device shows it; no push. */
        int skip = u->muted || srv->bus->online(srv->bus_st, u->user);
        j->ev.user = u->user;
        j->ev.unread = u->unread;
        /* The devices first, then the user: a notifier that sees the user event knows the
         * device events of that message are in. */
        for (; d < j->n_devs && j->devs[d].user == i; d++) {
            if (skip || !devices)
                continue;
            const push_dev *pd = &j->devs[d];
            chat_store_push_reg reg;
            memset(&reg, 0, sizeof reg);
            snprintf(reg.user, sizeof reg.user, "%s", u->user);
            snprintf(reg.device, sizeof reg.device, "%s", pd->device);
            reg.platform = pd->platform;
            reg.sandbox = pd->sandbox;
            snprintf(reg.token, sizeof reg.token, "%s", pd->token);
            snprintf(reg.topic, sizeof reg.topic, "%s", pd->topic);
            int rc = ops->notify_device(srv->push_st, &j->ev, &reg);
            if (rc != CHAT_OK)
                chat__log(srv, CHAT_LOG_WARN, "push notifier failed for a device of %s: %s",
                          u->user, chat_error_name(rc));
        }
        if (!skip) {
            int rc = ops->notify(srv->push_st, &j->ev);
            if (rc != CHAT_OK)
                chat__log(srv, CHAT_LOG_WARN, "push notifier failed: %s", chat_error_name(rc));
        }
    }
    push_job_free(j);
}

static char *dup_opt(const char *s, char **at)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = memcpy(*at, s, n);
    *at += n;
    return d;
}

int chat__push_resolve(chat_server *srv, chat__req *r)
{
    if (!has_regs(srv))
        return 0;
    push_job *j = chat__calloc(1, sizeof *j);
    if (!j)
        return 0;
    j->ev = r->pev;
    size_t n = strlen(r->pev.sender) + 1 + strlen(r->pev.title) + 1 +
               (r->pev.preview ? strlen(r->pev.preview) + 1 : 0);
    char *at = j->strs = chat__malloc(n);
    j->users = chat__calloc(r->to.n ? r->to.n : 1, sizeof *j->users);
    if (!j->strs || !j->users)
        goto oom;
    j->ev.sender = dup_opt(r->pev.sender, &at);
    j->ev.title = dup_opt(r->pev.title, &at);
    j->ev.preview = dup_opt(r->pev.preview, &at);
    for (size_t i = 0; i < r->to.n; i++) {
        const char *u = r->to.users[i];
        if (strcmp(u, r->user) == 0 || srv->bus->online(srv->bus_st, u))
            continue;
        push_user *pu = &j->users[j->n_users];
        if (!(pu->user = chat__strdup(u)))
            goto oom;
        pu->unread = r->head > r->to.read_seq[i] ? r->head - r->to.read_seq[i] : 0;
        j->n_users++;
    }
    if (!j->n_users) {
        push_job_free(j);
        return 1;
    }
    j->job.run = resolve_run;
    j->job.done = resolve_done;
    chat__server_submit(srv, &j->job);
    return 1;
oom:
    push_job_free(j);
    chat__log(srv, CHAT_LOG_WARN, "push: out of memory, pushes of conversation %" PRId64
                                  " seq %" PRIu64 " go to users only", r->pev.conv, r->pev.seq);
    return 0;
}

int64_t chat__push_muted_until(chat__txn *tx, const char *user, int64_t conv)
{
    int64_t until = 0;
    if (!chat__store_checked_has_push(tx->ops, tx->st) ||
        tx->ops->push_mute_get(tx->st, user, conv, &until) != CHAT_OK || until <= tx->now_ms)
        return 0;
    return until == INT64_MAX ? -1 : until;
}

int chat__push_forget_device(chat__txn *tx, const char *user, const char *device)
{
    if (!chat__store_checked_has_push(tx->ops, tx->st))
        return CHAT_OK;
    int rc = tx->ops->push_reg_del(tx->st, user, device);
    return rc == CHAT_OK || rc == CHAT_ENOTFOUND ? CHAT_OK : CHAT_EIO;
}

/* The devices listed, copied out: the registrations are deleted once the listing is over. */
typedef struct devices {
    char (*v)[CHAT_ID_MAX + 1];
    size_t n, cap;
} devices;

static int keep_device(const chat_store_push_reg *reg, void *ud)
{
    devices *d = ud;
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 4;
        void *v = chat__realloc(d->v, cap * sizeof *d->v);
        if (!v)
            return CHAT_ENOMEM;
        d->v = v;
        d->cap = cap;
    }
    snprintf(d->v[d->n++], sizeof *d->v, "%s", reg->device);
    return 0;
}

int chat__push_forget_user(chat__txn *tx, const char *user)
{
    if (!chat__store_checked_has_push(tx->ops, tx->st))
        return CHAT_OK;
    devices d = {0};
    int rc = tx->ops->push_reg_list(tx->st, user, keep_device, &d);
    for (size_t i = 0; rc == CHAT_OK && i < d.n; i++)
        rc = chat__push_forget_device(tx, user, d.v[i]);
    chat__free(d.v);
    return rc == CHAT_OK || rc == CHAT_ENOMEM ? rc : CHAT_EIO;
}

/* ---- frames ---- */

struct reg_args {
    chat_store_push_reg reg;
};

static int need_regs(chat__req *r, chat__txn *tx)
{
    if (chat__store_checked_has_push(tx->ops, tx->st))
        return CHAT_OK;
    return chat__req_fail(r, CHAT_ENOTSUP, "push_disabled",
                          "this server keeps no push registrations");
}

static int reply_ok(chat__req *r)
{
    r->reply = chat__frame_take_json(chat__req_reply(r, "ok"));
    return r->reply ? CHAT_OK : chat__req_fail(r, CHAT_ENOMEM, "internal", "out of memory");
}

static int register_run(chat__job *job, chat__txn *tx)
{
    chat__req *r = (chat__req *)job;
    struct reg_args *a = r->extra;
    int rc = need_regs(r, tx);
    if (rc != CHAT_OK)
        return rc;
    snprintf(a->reg.user, sizeof a->reg.user, "%s", r->user);
    snprintf(a->reg.device, sizeof a->reg.device, "%s", r->device);
    a->reg.updated_ms = tx->now_ms;
    /* A token is one install of the app: whoever held it before (another account signed in on
     * the same phone) no longer gets its pushes. */
    if (tx->ops->push_reg_del_token(tx->st, a->reg.platform, a->reg.token) != CHAT_OK ||
        tx->ops->push_reg_put(tx->st, &a->reg) != CHAT_OK)
        return chat__req_fail(r, CHAT_EIO, "storage", "cannot store the registration");
    return reply_ok(r);
}

static int unregister_run(chat__job *job, chat__txn *tx)
{
    chat__req *r = (chat__req *)job;
    int rc = need_regs(r, tx);
    if (rc != CHAT_OK)
        return rc;
    rc = tx->ops->push_reg_del(tx->st, r->user, r->device);
    if (rc != CHAT_OK && rc != CHAT_ENOTFOUND)
        return chat__req_fail(r, CHAT_EIO, "storage", "cannot delete the registration");
    return reply_ok(r);
}

struct mute_args {
    int64_t conv;
    int64_t until_ms;
};

static int mute_run(chat__job *job, chat__txn *tx)
{
    chat__req *r = (chat__req *)job;
    struct mute_args *a = r->extra;
    int rc = need_regs(r, tx);
    chat_store_conv conv;
    chat_store_member me;
    if (rc == CHAT_OK)
        rc = chat__txn_member(tx, r, a->conv, r->user, &conv, &me);
    if (rc != CHAT_OK)
        return rc;
    if (tx->ops->push_mute_put(tx->st, r->user, a->conv, a->until_ms) != CHAT_OK)
        return chat__req_fail(r, CHAT_EIO, "storage", "cannot store the mute");
    /* The user's other devices learn of it, as of a read receipt of their own. */
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddStringToObject(o, "type", "mute");
        cJSON_AddNumberToObject(o, "conv", (double)a->conv);
        cJSON_AddNumberToObject(o, "muted_until", (double)(a->until_ms == INT64_MAX ? -1
                                                                               : a->until_ms));
    }
    r->fanout = chat__frame_take_json(o);
    if (!r->fanout || chat__userlist_add(&r->to, r->user, 0) != CHAT_OK)
        return chat__req_fail(r, CHAT_ENOMEM, "internal", "out of memory");
    return reply_ok(r);
}

/* Settings-like requests share the settings bucket; 1 when taken, else answered. */
static int take_settings(chat__conn *c, const cJSON *re)
{
    int64_t retry = 0;
    double per_min = (double)chat__limit(c->srv, CHAT_LIMIT_SETTINGS_RATE);
    if (chat__bucket_take(&c->settings_bucket, per_min / 60.0, per_min, chat__now_ms(c->srv),
                          &retry))
        return 1;
    chat__conn_decline(c, re, CHAT_EAGAIN, "rate_limited", "settings changes too fast", retry);
    return 0;
}

static int hex_token(char *dst, const char *s, size_t n)
{
    if (n < 16 || n > 200 || n % 2)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch >= 'A' && ch <= 'F')
            ch = (char)(ch - 'A' + 'a');
        else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return 0;
        dst[i] = ch;
    }
    dst[n] = '\0';
    return 1;
}

static int charset_ok(const char *s, size_t n, const char *extra)
{
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              (ch && strchr(extra, ch))))
            return 0;
    }
    return 1;
}

static void bad_field(chat__conn *c, const cJSON *re, const char *msg)
{
    chat__conn_error(c, re, CHAT_EINVAL, "bad_field", msg, 0);
}

/* Fields of push_register into reg; 0 when refused (answered). */
static int parse_register(chat__conn *c, const cJSON *f, const cJSON *re, chat_store_push_reg *reg)
{
    const char *platform, *token, *topic;
    size_t tlen, plen;
    if (!chat__arg_str(c, f, re, "platform", 1, &platform, NULL) ||
        !chat__arg_str(c, f, re, "token", 1, &token, &tlen) ||
        !chat__arg_str(c, f, re, "topic", 0, &topic, &plen))
        return 0;
    memset(reg, 0, sizeof *reg);
    if (strcmp(platform, "apns") == 0) {
        reg->platform = CHAT_PUSH_APNS;
        if (!hex_token(reg->token, token, tlen)) {
            bad_field(c, re, "an APNs token is 16-200 hex digits");
            return 0;
        }
    } else if (strcmp(platform, "fcm") == 0) {
        reg->platform = CHAT_PUSH_FCM;
        if (tlen == 0 || tlen > CHAT_PUSH_TOKEN_MAX || !charset_ok(token, tlen, "_-:.")) {
            bad_field(c, re, "an FCM token is 1-512 of [A-Za-z0-9_:.-]");
            return 0;
        }
        memcpy(reg->token, token, tlen + 1);
    } else {
        bad_field(c, re, "'platform' must be \"apns\" or \"fcm\"");
        return 0;
    }
    if (topic) {
        if (plen > CHAT_PUSH_TOPIC_MAX || !charset_ok(topic, plen, ".-_")) {
            bad_field(c, re, "'topic' is at most 255 of [A-Za-z0-9._-]");
            return 0;
        }
        memcpy(reg->topic, topic, plen + 1);
    }
    int sandbox = 0;
    int rc = chat__json_bool(f, "sandbox", &sandbox);
    if (rc != CHAT_OK && rc != CHAT_ENOTFOUND) {
        bad_field(c, re, "'sandbox' must be true or false");
        return 0;
    }
    reg->sandbox = sandbox;
    return 1;
}

static void drop(cJSON *f, cJSON *re)
{
    cJSON_Delete(re);
    cJSON_Delete(f);
}

void chat__handle_push_register(chat__conn *c, cJSON *f, cJSON *re)
{
    struct reg_args a;
    if (!parse_register(c, f, re, &a.reg) || !take_settings(c, re)) {
        drop(f, re);
        return;
    }
    chat__req_start(c, f, re, register_run, &a, sizeof a, NULL);
}

void chat__handle_push_unregister(chat__conn *c, cJSON *f, cJSON *re)
{
    if (!take_settings(c, re)) {
        drop(f, re);
        return;
    }
    chat__req *r = chat__req_new(c, f, unregister_run);
    if (!r) {
        cJSON_Delete(re);
        return;
    }
    r->re = re;
    chat__req_submit(c->srv, r);
}

void chat__handle_mute(chat__conn *c, cJSON *f, cJSON *re)
{
    struct mute_args a = {0, INT64_MAX};
    if (!chat__arg_conv(c, f, re, &a.conv)) {
        drop(f, re);
        return;
    }
    const cJSON *until = chat__json_get(f, "until");
    if (until && !cJSON_IsNull(until)) {
        uint64_t v;
        if (chat__json_u64(f, "until", &v) != CHAT_OK) {
            bad_field(c, re, "'until' must be a time in ms, or 0 to unmute");
            drop(f, re);
            return;
        }
        a.until_ms = (int64_t)v;
    }
    if (!take_settings(c, re)) {
        drop(f, re);
        return;
    }
    chat__req_start(c, f, re, mute_run, &a, sizeof a, NULL);
}
